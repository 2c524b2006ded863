"""Every screen at 80x24, the classic terminal: its main rows on screen, whole footer keys
with `?` among them, help wrapped rather than cut, the header's progress readable.

Behaviour, not pixels: what is checked is where widgets were laid out and what they hold.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest
from netconf_tc_snapshot import with_tc_and_netconf
from textual.geometry import Region
from textual.pilot import Pilot
from textual.widget import Widget
from textual.widgets import Footer, Header, Input
from textual.widgets._footer import FooterKey
from trace_pilot import traced

from podpath.snapshot.model import Snapshot
from podpath.tui import registry
from podpath.tui.app import PodpathApp, create_app
from podpath.tui.rows.trace import hop_owner
from podpath.tui.screens.help import HelpScreen, key_rows
from podpath.tui.screens.trace import TraceScreen
from podpath.tui.source import Progress, live_source, static_source
from podpath.tui.widgets.footer import KeysFooter, keep_whole
from podpath.tui.widgets.table import RowTable

SMALL = (80, 24)
CLIENT = "default/client-6f9b8d7c4-qp2ld"
# Rows a list must show at 80x24 (or all of them, when it has fewer): a screenful.
MIN_ROWS = 8
# The views whose main content is not a list of rows (map: a tree; home: its menu).
MAIN_TABLE = {"node": "#table", "map": "#table", "service": "#endpoints"}


def visible_rows(table: RowTable, footer: Widget) -> int:
    """Data rows of `table` drawn on screen: inside the screen, above the footer."""
    bottom = min(table.region.bottom, footer.region.y, SMALL[1])
    header = 1  # the column headings stay on the table's first line
    return max(0, min(bottom - table.region.y - header, table.row_count))


async def settled(pilot: Pilot[None]) -> None:
    """Let screens, workers and the footer's fitting finish."""
    await pilot.pause()
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()
    await pilot.pause()


def footer_of(app: PodpathApp) -> Footer:
    """The current screen's footer."""
    return app.screen.query_one(Footer)


def shown_keys(footer: Footer) -> list[FooterKey]:
    """The footer's keys that are drawn."""
    return [k for k in footer.query(FooterKey) if k.display]


def assert_footer_whole(app: PodpathApp) -> None:
    """Each key drawn is whole inside the footer, `?` is one of them, no palette key."""
    footer = footer_of(app)
    keys = shown_keys(footer)
    assert keys, "no key in the footer"
    for key in keys:
        assert key.region.right <= footer.region.right, (key.key, key.region)
        assert not key.has_class("-command-palette")
    if app.screen.active_bindings.get("question_mark") is not None:
        assert "question_mark" in [k.key for k in keys]


@pytest.mark.parametrize("name", [v.name for v in registry.VIEWS if v.name != "trace"])
async def test_every_view_shows_its_rows_at_80x24(
    name: str, make_app: Callable[..., PodpathApp], fixed_snapshot: Snapshot
) -> None:
    """Each registered view (and a pod, a Service) at 80x24: its rows are on screen."""
    # The fixture has no sysctls or tc: those two views get a snapshot that has some.
    app = (
        make_app(with_tc_and_netconf(fixed_snapshot)[0])
        if name in ("netconf", "tc")
        else make_app()
    )
    argument = {"pod": CLIENT, "service": "default/web:http/10.96.0.20:80/tcp"}.get(name)
    async with app.run_test(size=SMALL) as pilot:
        await settled(pilot)
        app.open_screen(name, argument)
        await settled(pilot)
        screen = app.screen
        tables = list(screen.query(RowTable))
        selector = MAIN_TABLE.get(name)
        table = screen.query_one(selector, RowTable) if selector else tables[0]
        if name == "pod":
            # The tab shown first (Containers): its first table.
            table = next(t for t in tables if t.display and t.region.height)
        assert table.row_count > 0, name
        shown = visible_rows(table, footer_of(app))
        assert shown >= min(table.row_count, MIN_ROWS), (name, shown, table.row_count)
        if name == "node":
            assert shown == table.row_count  # home: every view of the menu
        if name == "service":
            walk = screen.query_one("#walk", RowTable)  # the chain walk under the endpoints
            assert visible_rows(walk, footer_of(app)) >= min(walk.row_count, 4)
        assert_footer_whole(app)


async def test_the_trace_shows_its_hops_at_80x24(make_app: Callable[..., PodpathApp]) -> None:
    """A 5-branch trace at 80x24: the branches, four hops or more, and the hop's detail."""
    app = make_app()
    async with app.run_test(size=SMALL) as pilot:
        screen, result = await traced(pilot, CLIENT, "default/web:80")
        await settled(pilot)
        assert len(result.branches) > 1
        footer = footer_of(app)
        branches = screen.query_one("#branches", RowTable)
        hops = screen.query_one("#hops", RowTable)
        assert visible_rows(branches, footer) >= 2
        assert visible_rows(hops, footer) >= min(hops.row_count, 4)
        detail = screen.query_one("#hop-detail")
        assert detail.region.height >= 2 and detail.region.bottom <= footer.region.y
        assert_footer_whole(app)
        # Picking branch 2 moves into its hops, still on screen.
        await pilot.press("2")
        await settled(pilot)
        assert app.focused is hops and visible_rows(hops, footer) >= 4


@pytest.mark.parametrize("where", ["node", "pods", "pod", "trace"])
async def test_help_wraps_every_line_into_80_columns(
    where: str, make_app: Callable[..., PodpathApp]
) -> None:
    """`?` at 80 columns: no line is wider than the table, and no word of one is lost."""
    app = make_app()
    async with app.run_test(size=SMALL) as pilot:
        await settled(pilot)
        if where == "trace":
            app.push_screen(TraceScreen(CLIENT, "default/web:80"))
            await settled(pilot)
            app.set_focus(None)  # ? typed in an input is text, not help
        elif where != "node":
            app.open_screen(where, CLIENT if where == "pod" else None)
        await settled(pilot)
        under = app.screen
        await pilot.press("question_mark")
        await settled(pilot)
        assert isinstance(app.screen, HelpScreen)
        table = app.screen.query_one(RowTable)
        room = table.size.width - table.styles.scrollbar_size_vertical
        lines = [table.row_texts(i) for i in range(table.row_count)]
        # The rows' width (the table's virtual width) fits: nothing to scroll sideways to.
        assert table.virtual_size.width <= room, (table.virtual_size, room)
        # Joined back, the wrapped lines say every word of each key's line.
        said = {w.strip("()") for t in lines for w in " ".join(t[1:]).split()}
        for original in key_rows(under):
            for word in " ".join(c.text for c in original.cells[1:]).split():
                assert word.strip("()") in said, word


async def test_the_header_says_what_is_read_at_80_columns(fixed_snapshot: Snapshot) -> None:
    """While a live node is read, the header's first 60 columns say which part and how far."""
    reading = threading.Event()
    release = threading.Event()

    def collect(cancel: threading.Event, previous: Snapshot | None, progress: Progress) -> Snapshot:
        progress("network namespaces", 3, 8)
        reading.set()
        release.wait(30)
        return fixed_snapshot

    app = create_app(live_source(collect, "/"))
    async with app.run_test(size=SMALL) as pilot:
        for _ in range(100):
            await pilot.pause(0.02)
            if reading.is_set() and "reading" in app.sub_title:
                break
        header = app.screen.query_one(Header)
        title = header.query_one("HeaderTitle").render()
        shown = str(title)[: SMALL[0] - 20]  # what fits beside the icon and the clock
        release.set()
        assert "⟳ reading network namespaces (4/8)…" in shown, shown


# Columns of WHAT HAPPENS a hop row must show at 80 columns without scrolling sideways.
READABLE = 50


async def test_what_happens_is_readable_at_80x24_with_rule_of_folded(
    make_app: Callable[..., PodpathApp],
) -> None:
    """At 80 columns RULE OF gives its width to WHAT HAPPENS (the hop's detail says whose
    rule it is); at 160 it is back."""
    app = make_app()
    async with app.run_test(size=SMALL) as pilot:
        screen, result = await traced(pilot, CLIENT, "default/web:80")
        await settled(pilot)
        hops = screen.query_one("#hops", RowTable)
        owned = [i for i, h in enumerate(result.branches[0].hops) if hop_owner(h) is not None]
        assert owned, "the path to a Service takes kube-proxy's rules"
        assert "RULE OF" not in hops.shown_columns
        assert hops.scroll_x == 0
        what = hops.cell_region(0, "WHAT HAPPENS")
        assert what is not None
        assert hops.region.right - what.x >= READABLE, (what, hops.region)
        hops.move_cursor(row=owned[0])
        await settled(pilot)
        detail = str(screen.query_one("#hop-detail").render())
        assert "rule of " in detail, detail
        await pilot.resize_terminal(160, 36)
        await settled(pilot)
        assert "RULE OF" in hops.shown_columns


async def test_an_all_empty_rule_of_takes_no_width(make_app: Callable[..., PodpathApp]) -> None:
    """A path no owned rule decided (a pod to its own IP) has no RULE OF column, wide or not."""
    app = make_app()
    async with app.run_test(size=SMALL) as pilot:
        screen, result = await traced(pilot, CLIENT, "10.244.0.8:80")
        await settled(pilot)
        assert all(hop_owner(h) is None for h in result.branches[0].hops)
        hops = screen.query_one("#hops", RowTable)
        assert hops.shown_columns == ("#", "KIND", "NODE", "WHAT HAPPENS")
        what = hops.cell_region(0, "WHAT HAPPENS")
        assert what is not None and hops.region.right - what.x >= READABLE
        await pilot.resize_terminal(300, 36)
        await settled(pilot)
        assert hops.virtual_size.width < hops.size.width  # room to spare, still folded
        assert "RULE OF" not in hops.shown_columns


async def test_the_header_shows_the_node_before_a_long_path_at_80x24(
    fixed_snapshot: Snapshot,
) -> None:
    """A snapshot file's long path comes last in the header: a cut loses it, not the
    node's name or the time it was taken."""
    path = "/var/lib/podpath/snapshots/2025/11/25/" + "x" * 40 + "/node.json"
    app = create_app(static_source(fixed_snapshot, "snapshot", path))
    async with app.run_test(size=SMALL) as pilot:
        await settled(pilot)
        title = app.screen.query_one(Header).query_one("HeaderTitle")
        painted = title.render_lines(Region(0, 0, title.size.width, 1))[0].text
        assert title.region.right <= SMALL[0]
        assert fixed_snapshot.node.hostname in painted, painted
        assert "2025-11-25 10:00:00 UTC" in painted, painted
        assert "node.json" not in painted, painted  # the path's end is what was cut


def test_keep_whole_keeps_help_and_drops_what_does_not_fit() -> None:
    """Keys are kept in order while they fit whole; `?`'s room is set aside first."""
    assert keep_whole([10, 10, 10, 6], 3, 30) == [True, True, False, True]
    assert keep_whole([10, 10, 10], None, 30) == [True, True, True]
    assert keep_whole([10, 25, 5], None, 30) == [True, False, True]


async def test_a_wide_footer_keeps_its_keys_whole_beside_the_palette_key(
    make_app: Callable[..., PodpathApp],
) -> None:
    """At 120 columns the trace's many keys do not run under the palette's key: each key
    shown ends before it, `?` Help is among them."""
    app = make_app()
    async with app.run_test(size=(120, 36)) as pilot:
        await traced(pilot, CLIENT, "default/web:80")
        await settled(pilot)
        footer = footer_of(app)
        everything = list(footer.query(FooterKey))
        palette = [k for k in everything if k.has_class("-command-palette")]
        assert palette and palette[0].display
        keys = [k for k in everything if k.display and not k.has_class("-command-palette")]
        assert keys and "question_mark" in [k.key for k in keys]
        assert not all(k.display for k in everything)  # some gave way
        for key in keys:
            assert key.region.right <= palette[0].region.x, (key.key, key.region)


async def test_the_footer_is_rebuilt_only_when_its_keys_change(
    make_app: Callable[..., PodpathApp], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Opening a trace moves the focus several times with the same keys: the footer is
    rebuilt once (Textual's, on every focus change: 6 times). A focus change that changes
    the keys (↓ Branches, offered only from an input) rebuilds it with them."""
    rebuilt: list[object] = []
    recompose = KeysFooter.recompose

    async def counted(self: KeysFooter) -> None:
        rebuilt.append(self)
        await recompose(self)

    monkeypatch.setattr(KeysFooter, "recompose", counted)
    app = make_app()
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.pause()
        rebuilt.clear()
        await traced(pilot, CLIENT, "default/web:80")
        await settled(pilot)
        assert len(rebuilt) <= 2, len(rebuilt)

        def shown_actions() -> list[str]:
            return [k.action for k in footer_of(app).query(FooterKey)]

        assert not isinstance(app.focused, Input) and "to_branches" not in shown_actions()
        await pilot.press("f")  # the From input: ↓ goes to the branches from there
        await settled(pilot)
        assert isinstance(app.focused, Input) and "to_branches" in shown_actions()
