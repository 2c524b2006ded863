"""What using the TUI as a newcomer found (tmux on the demo and a lab node), one test each."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

from test_every_key import post_key
from textual.pilot import Pilot
from textual.widgets import Input

from podpath.analysis.index import SnapshotIndex
from podpath.snapshot.codec import load_path
from podpath.snapshot.model import Address, Snapshot
from podpath.tui import registry
from podpath.tui.app import PodpathApp
from podpath.tui.screens.netfilter import NetfilterScreen
from podpath.tui.widgets.table import RowTable

SIZE = (120, 36)


async def test_a_filter_typed_then_a_drill_in_leaves_the_next_level_unfiltered(
    make_app: Callable[..., PodpathApp],
) -> None:
    """`/nat enter enter` at once in Netfilter opens nat with every chain, not those matching nat."""
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("colon", *"ipt", "enter")
        await pilot.pause()
        await pilot.press("enter")  # the first backend: its tables
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, NetfilterScreen)
        for key in ("slash", "n", "a", "t", "enter", "enter"):
            post_key(app, key)
        await pilot.pause(0.5)
        assert screen.level.table == "nat"
        assert screen.needle == "" and not screen.query_one("#filter", Input).display
        assert "match" not in str(screen.query_one("#count").render())
        assert screen.table.row_count > 1  # KUBE-* chains and the rest, not only "nat" ones


DATA = Path(__file__).resolve().parents[2] / "src" / "podpath" / "data"


def _demo_index() -> SnapshotIndex:
    """The bundled demo's node1, recorded from a lab (its default/noep has no endpoints)."""
    return SnapshotIndex(load_path(str(DATA / "demo-snapshot.json")))


def test_home_counts_the_links_that_links_lists(fixed_snapshot: Snapshot) -> None:
    """Home's Links count is the root namespace's links, the rows :links shows, not every netns's."""
    from podpath.tui.rows.links import link_rows
    from podpath.tui.state import Loaded

    loaded = Loaded(fixed_snapshot)
    view = registry.find("links")
    assert view is not None
    assert registry.count_text(view, loaded) == str(len(link_rows(loaded.index)))
    assert sum(len(ns.links) for ns in fixed_snapshot.netns) > len(link_rows(loaded.index))


def test_a_bridge_port_says_its_pod_before_its_addresses(index: SnapshotIndex) -> None:
    """:links: a veth's last cell starts with its pod, not with a link-local address."""
    from podpath.tui.rows.links import link_rows

    ports = [r for r in link_rows(index) if r.cells[0].text.startswith(("├─ ", "└─ "))]
    assert ports and all(r.cells[-1].text.startswith("pod ") for r in ports)


def test_a_service_without_endpoints_walks_to_its_reject_rule() -> None:
    """default/noep: the walk shows the filter table's REJECT kube-proxy wrote, and says so."""
    from podpath.analysis.parsed import ParsedSnapshot
    from podpath.tui.rows.services import chain_walk_rows, service_name, walk_heading

    index = _demo_index()
    parsed = ParsedSnapshot(index)
    noep = next(s for s in parsed.services() if s.name == "noep")
    assert service_name(noep) == "default/noep:http"
    rows = [[c.text for c in r.cells] for r in chain_walk_rows(parsed.rule_dumps(), noep)]
    assert rows and rows[0][0] == "filter KUBE-SERVICES"
    assert rows[0][-1].startswith("REJECT") and f"-d {noep.cluster_ip}/32" in rows[0][2]
    assert "without endpoints" in walk_heading(noep)
    web = next(s for s in parsed.services() if s.name == "web")
    assert walk_heading(web) == "Chain walk (nat table)"
    assert all(
        not r[0].startswith("filter")
        for r in ([c.text for c in x.cells] for x in chain_walk_rows(parsed.rule_dumps(), web))
    )


async def test_j_and_k_move_the_cursor_as_in_k9s(make_app: Callable[..., PodpathApp]) -> None:
    """In a list, j goes down a row and k back up, as ↓ and ↑ do."""
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("colon", *"pods", "enter")
        await pilot.pause()
        table = app.screen.query_one(RowTable)
        assert table.cursor_row == 0
        await pilot.press("j", "j")
        assert table.cursor_row == 2
        await pilot.press("k")
        assert table.cursor_row == 1


def test_help_says_what_enter_does_on_the_map_and_lists_moving() -> None:
    """Map's help: enter opens a pod and folds a box; every help lists ↑ ↓ j k."""
    from podpath.tui.screens.help import key_rows
    from podpath.tui.screens.map import MapScreen

    rows = {r.cells[0].text: r.cells[1].text for r in key_rows(MapScreen())}
    assert rows["enter"].startswith("Open a pod") and "fold" in rows["enter"]
    assert "j k" in next(k for k in rows if "↑" in k)


def test_a_restarted_container_is_told_apart_in_the_namespace_matrix(
    index: SnapshotIndex,
) -> None:
    """Two attempts of one container are `web#0` and `web#1`; the exited one says `exited`."""
    from podpath.tui.rows.pod import namespace_columns, namespace_rows

    pod = index.pods_by_name["default/web-7d4b9c6f5d-m9q4z"]
    pause, web = sorted(pod.containers, key=lambda c: c.kind != "sandbox")
    old = dataclasses.replace(web, id="0ld" * 20, attempt=0, state="exited", pids=())
    new = dataclasses.replace(web, attempt=1, state="running")
    pod = dataclasses.replace(pod, containers=(pause, old, new))
    columns = namespace_columns(pod)
    assert columns[2:] == ("web#0", "web#1")
    net = next(r for r in namespace_rows(index, pod) if r.key == "ns:net")
    assert net.cells[2].text == "exited" and net.cells[3].text.startswith("shared")


async def test_one_row_is_one_row(
    make_app: Callable[..., PodpathApp], fixed_snapshot: Snapshot
) -> None:
    """A list of one pod says `1 row`, and of two `2 rows`."""
    for pods, said in ((1, "1 row"), (2, "2 rows")):
        app = make_app(dataclasses.replace(fixed_snapshot, pods=fixed_snapshot.pods[:pods]))
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("colon", *"pods", "enter")
            await pilot.pause()
            assert str(app.screen.query_one("#count").render()) == said


async def test_at_80x24_the_trace_keeps_room_for_its_hops(
    make_app: Callable[..., PodpathApp],
) -> None:
    """On an 80x24 terminal the branches and the hop detail shrink: hops stay on screen."""
    from trace_pilot import traced

    for size, at_least in (((80, 24), 4), ((120, 36), 8)):
        app = make_app()
        async with app.run_test(size=size) as pilot:
            screen, _trace = await traced(pilot, "default/client-6f9b8d7c4-qp2ld", "default/web:80")
            await pilot.pause()
            hops = screen.query_one("#hops", RowTable)
            assert hops.size.height - 1 >= at_least, (size, hops.size)  # rows under the header


async def _open_row_of(pilot: Pilot[None], view: str, text: str, column: int | None = None) -> None:
    """`:view`, the cursor on the first row holding `text` (in `column`, or any), then enter."""
    app = pilot.app
    await pilot.press("colon", *view, "enter")
    await pilot.pause()
    await app.workers.wait_for_complete()
    await pilot.pause()
    table = app.screen.query_one(RowTable)
    cells = [table.row_texts(i) for i in range(table.row_count)]
    row = next(
        i for i, r in enumerate(cells) if text in (r[column] if column is not None else " ".join(r))
    )
    table.move_cursor(row=row)
    await pilot.press("enter")
    await pilot.pause()
    await app.workers.wait_for_complete()
    await pilot.pause()


async def test_enter_on_a_conntrack_entry_traces_that_connection(
    make_app: Callable[..., PodpathApp],
) -> None:
    """:ct enter on the UDP lookup of pod 10.244.0.5: Trace runs from it to 10.96.0.10:53/udp."""
    from podpath.tui.screens.trace import TraceScreen

    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await _open_row_of(pilot, "ct", "10.244.0.5:", column=2)  # ORIGINAL's source
        screen = app.screen
        assert isinstance(screen, TraceScreen)
        assert (screen.source_spec, screen.destination_spec, screen.proto) == (
            "10.244.0.5",
            "10.96.0.10:53",
            "udp",
        )
        assert screen.trace is not None and screen.trace.branches


async def test_enter_on_a_pods_namespace_link_or_address_opens_the_pod(
    make_app: Callable[..., PodpathApp], index: SnapshotIndex
) -> None:
    """:ns on a pod's netns, :links on its veth, :cni on its reserved IP: enter opens the pod."""
    from podpath.tui.screens.pod import PodScreen

    pod = index.pods_by_name["default/client-6f9b8d7c4-qp2ld"]
    assert pod.netns_inode is not None and pod.ips
    host_veth = next(
        link.name
        for link in index.root_netns.links  # type: ignore[union-attr]
        if link.peer is not None and link.peer.netns == pod.netns_inode
    )
    for view, text in (("ns", str(pod.netns_inode)), ("links", host_veth), ("cni", pod.ips[0])):
        app = make_app()
        async with app.run_test(size=SIZE) as pilot:
            await _open_row_of(pilot, view, text)
            shown = app.screen
            assert isinstance(shown, PodScreen), view
            assert shown.pod_key == "default/client-6f9b8d7c4-qp2ld", view


async def test_enter_on_the_nodes_own_namespace_says_it_is_no_pods(
    make_app: Callable[..., PodpathApp], fixed_snapshot: Snapshot
) -> None:
    """:ns enter on the root netns: one line saying no pod holds it, the list stays."""
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await _open_row_of(pilot, "ns", str(fixed_snapshot.root_netns))
        assert type(app.screen).__name__ == "NamespacesScreen"
        assert any("no pod of this node" in str(n.message) for n in app._notifications)


async def test_p_on_a_branch_that_leaves_the_node_says_why_there_is_no_reply(
    make_app: Callable[..., PodpathApp],
) -> None:
    """p on the branch to the remote endpoint: no reply shown, and the heading says why."""
    from trace_pilot import traced

    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        screen, result = await traced(pilot, "default/client-6f9b8d7c4-qp2ld", "default/web:80")
        leaving = next(i for i, b in enumerate(result.branches) if b.verdict == "leaves-node")
        await pilot.press(str(leaving + 1), "p")
        await pilot.pause()
        heading = str(screen.query_one("#path-heading").render())
        assert heading.startswith("no reply path (p: forward): the packet leaves the loaded nodes")


def test_every_help_line_fits_an_80_column_terminal() -> None:
    """What each key and view does is said in 61 characters: help's modal at 80 columns."""
    from podpath.tui.screens.help import key_rows

    for view in registry.VIEWS:
        screen = view.screen("x" if view.detail else "")
        for row in key_rows(screen):
            assert len(row.cells[1].text) <= 61, (view.name, row.cells[1].text)


async def test_a_key_that_arrives_after_the_screens_are_gone_is_dropped(
    make_app: Callable[..., PodpathApp],
) -> None:
    """A key read, or coming back up, once every screen is torn down (q, then more keys): no crash."""
    from textual import events

    app = make_app()
    assert not app.screen_stack  # not running: as after the screens were popped on quit
    key = events.Key("t", "t")
    await app.on_event(key)  # raised ScreenStackError (App.on_event reads self.screen)
    forwarded = events.Key("t", "t")
    forwarded._set_forwarded()
    await app.on_event(forwarded)
    await app._on_key(events.Key("y", "y"))  # App._check_bindings read self.screen too


def test_an_address_the_kernel_does_not_use_says_so_in_links(fixed_snapshot: Snapshot) -> None:
    """:links: an address that failed duplicate address detection reads as ip says it."""
    from podpath.tui.rows.links import link_rows

    root = next(ns for ns in fixed_snapshot.netns if ns.inode == fixed_snapshot.root_netns)
    bridge = next(lk for lk in root.links if lk.kind == "bridge")
    failed = Address(6, "fd00::1", 64, flags=("dadfailed", "tentative"))
    links = tuple(
        dataclasses.replace(lk, addresses=(*lk.addresses, failed)) if lk is bridge else lk
        for lk in root.links
    )
    netns = tuple(
        dataclasses.replace(ns, links=links) if ns is root else ns for ns in fixed_snapshot.netns
    )
    index = SnapshotIndex(dataclasses.replace(fixed_snapshot, netns=netns))
    (shown,) = [r for r in link_rows(index) if r.key == f"link:{bridge.ifindex}"]
    assert "fd00::1/64(dadfailed)" in shown.cells[-1].text
