"""The polish found by using the TUI: keys in bursts, focus after a filter, the
trace's branch keys, help's key names, and the namespaces view on a 160-column screen.

Bursts are posted the way a terminal delivers fast typing: all keys queued before the
first is handled (tests/tui/test_every_key.py's post_key).
"""

from __future__ import annotations

import dataclasses
import html
import re
from collections.abc import Callable

from test_every_key import keys_handled, post_key
from textual import events
from textual.widgets import Input, TabbedContent
from trace_pilot import traced

from podpath.snapshot.model import HolderFd, Namespace, Snapshot
from podpath.tui import registry
from podpath.tui.app import PodpathApp
from podpath.tui.screens.help import HelpScreen, key_rows
from podpath.tui.screens.namespaces import NamespacesScreen
from podpath.tui.screens.pod import TABS, PodScreen
from podpath.tui.screens.pods import PodsScreen
from podpath.tui.widgets.table import RowTable

SIZE = (120, 36)
CLIENT = "default/client-6f9b8d7c4-qp2ld"
TAB_IDS = [f"tab-{t[0]}" for t in TABS]


def _drawn(app: PodpathApp) -> str:
    """The screen's text as drawn (SVG tags dropped, entities decoded)."""
    svg = app.export_screenshot()
    return html.unescape(re.sub(r"<[^>]*>", "", svg)).replace("\xa0", " ")


def _focused(app: PodpathApp) -> object:
    """The focused widget, read afresh after keys (mypy keeps no narrowing across presses)."""
    return app.focused


async def test_a_burst_of_tab_keys_moves_one_tab_per_key(
    make_app: Callable[..., PodpathApp],
) -> None:
    """`h h h h h` at once moves five tabs back; then `l`, `right` and `]` each move one on."""
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        app.open_screen("pod", CLIENT)
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, PodScreen)
        tabs = screen.query_one(TabbedContent)
        for _ in range(5):
            post_key(app, "h")
        await keys_handled(pilot)
        at = TAB_IDS.index(tabs.active)
        assert at == (-5) % len(TAB_IDS)
        for key in ("l", "right", "right_square_bracket", "l"):
            await pilot.press(key)
            await pilot.pause()
            at = (at + 1) % len(TAB_IDS)
            assert tabs.active == TAB_IDS[at], key
            # The keys reach the table on screen, not one in a hidden tab.
            focused = app.focused
            assert isinstance(focused, RowTable)
            assert tabs.active_pane is not None and focused in tabs.active_pane.query(RowTable)


async def test_enter_in_a_filter_hands_the_next_keys_to_the_table(
    make_app: Callable[..., PodpathApp],
) -> None:
    """`/web enter down enter` typed at once opens the second web pod, not more filter text."""
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("colon", *"pods", "enter")
        await pilot.pause()
        pods = app.screen
        assert isinstance(pods, PodsScreen)
        for key in ("slash", "w", "e", "b", "enter", "down", "enter"):
            post_key(app, key)
        await keys_handled(pilot)
        assert isinstance(app.screen, PodScreen)
        assert app.screen.pod_key == "default/web-7d4b9c6f5d-x7k2p"  # second of two, by name
        assert pods.query_one("#filter", Input).value == "web"


async def test_keys_right_after_slash_go_to_the_filter(
    make_app: Callable[..., PodpathApp],
) -> None:
    """`/` then `w` at once: the w is filter text, not the write prompt of the app."""
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("colon", *"pods", "enter")
        await pilot.pause()
        for key in ("slash", "w", "c"):
            post_key(app, key)
        await keys_handled(pilot)
        screen = app.screen
        assert isinstance(screen, PodsScreen)
        assert screen.needle == "wc" and screen.query_one("#filter", Input).has_focus


async def test_trace_down_leaves_the_inputs_and_2_picks_the_second_branch(
    make_app: Callable[..., PodpathApp],
) -> None:
    """From the inputs, ↓ (shown in the footer) reaches the branches; `2` shows branch 2's hops."""
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        screen, result = await traced(pilot, CLIENT, "default/web:80")
        assert len(result.branches) >= 2
        await pilot.press("f")
        await pilot.pause()
        assert _focused(app) is screen.query_one("#from", Input)
        assert "↓" in _drawn(app) and "Branches" in _drawn(app)  # the key is on screen
        await pilot.press("down")
        await pilot.pause()
        assert _focused(app) is screen.query_one("#branches", RowTable)
        await pilot.press("2")
        await pilot.pause()
        assert screen.query_one("#branches", RowTable).selected_key == "b:1"
        assert screen.selected_branch() is result.branches[1]
        assert _focused(app) is screen.query_one("#hops", RowTable)
        # Typing digits in an input stays typing.
        await pilot.press("f", "1")
        await pilot.pause()
        assert screen.query_one("#from", Input).value.endswith("1")


def test_help_names_keys_as_they_are_typed() -> None:
    """`left,h,left_square_bracket` is shown as `← h [`, and no Textual key name is left."""
    rows = {r.cells[1].text: r.cells[0].text for r in key_rows(PodScreen(CLIENT))}
    assert rows["Previous tab"] == "← h ["
    assert rows["Next tab"] == "→ l ]"
    assert rows["Back"] == "esc"
    keys = [r.cells[0].text for r in key_rows(PodsScreen())]
    assert len(keys) == len(set(keys)) and "⏎" not in keys  # each key once, as typed
    names = " ".join(rows.values())
    assert not re.search(r"square_bracket|escape|question_mark|slash|colon|,", names)


async def test_help_shows_every_view_whole(make_app: Callable[..., PodpathApp]) -> None:
    """Each `:name` has a line of its own in help, and every line fits the modal."""
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        drawn = _drawn(app)
        table = app.screen.query_one(RowTable)
        shown = [table.row_texts(i) for i in range(table.row_count)]
        for view in registry.jump_views():
            line = next(r for r in shown if r[0] == f":{view.name}")
            assert line[1] in drawn, line  # not cut at the modal's edge


def _busy_namespaces(snap: Snapshot) -> Snapshot:
    """The fixture with a long command line and a netns held only by containerd's open fd."""
    script = "python3 -u -c " + "import socket; " * 12
    namespaces = tuple(
        dataclasses.replace(ns, command=script) if ns.type == "mnt" else ns
        for ns in snap.namespaces
    )
    held = Namespace(
        "net",
        4026599999,
        4,
        0,
        None,
        None,
        None,
        None,
        held_by=("fd",),
        holder_fds=(HolderFd(812, 7),),
    )
    return dataclasses.replace(snap, namespaces=(*namespaces, held))


async def test_ns_fits_160_columns_and_names_the_fd_that_holds_a_namespace(
    make_app: Callable[..., PodpathApp], fixed_snapshot: Snapshot
) -> None:
    """:ns keeps HELD BY on a 160-column screen despite long commands, and says `fd 7 of pid 812`."""
    app = make_app(_busy_namespaces(fixed_snapshot))
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.press("colon", *"ns", "enter")
        await pilot.pause()
        assert isinstance(app.screen, NamespacesScreen)
        await pilot.press("slash", *"4026599999", "enter")
        await pilot.pause()
        drawn = _drawn(app)
        assert "HELD BY" in drawn
        assert "fd 7 of pid 812 (containerd)" in drawn
        await pilot.press("escape")
        await pilot.pause()
        drawn = _drawn(app)
        assert "HELD BY" in drawn and "bind /run/netns/cni-" in drawn


async def test_keys_handed_on_keep_their_order(make_app: Callable[..., PodpathApp]) -> None:
    """Two waiting keys released before the first is read again stay in order (`pods`, not `pdso`).

    Under load the release timer fired again before the key it had handed on was read;
    that key then queued behind the others. The two releases are made back to back here.
    """
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("colon")
        await pilot.pause()
        for key in "ods":
            app._waiting_keys.append(events.Key(key, key))
        app._release_key()
        app._release_key()  # the first key is still on its way back in
        await keys_handled(pilot)
        assert app.screen.query_one("#jump-input", Input).value == "ods"
