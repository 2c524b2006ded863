"""`:ipvs`: kube-proxy's IPVS virtual services, from real dumps, and why the view is empty."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from ipvs_node import DNS_POD, KUBE_ROUTER, PROC_HEX, ipvs_node, listing
from textual.pilot import Pilot

from podpath.analysis.index import SnapshotIndex
from podpath.snapshot.model import IpvsDump, Snapshot
from podpath.tui import registry
from podpath.tui.app import PodpathApp, create_app
from podpath.tui.rows.ipvs import EMPTY_KEY, IPVS_COLUMNS, empty_reason, ipvs_rows
from podpath.tui.rows.model import Row
from podpath.tui.screens.ipvs import IpvsScreen
from podpath.tui.screens.pod import PodScreen
from podpath.tui.screens.service import ServiceScreen
from podpath.tui.source import static_source
from podpath.tui.tour import press_and_settle

SIZE = (120, 36)


def _app(snap: Snapshot, *peers: Snapshot) -> PodpathApp:
    return create_app(static_source(snap, "snapshot", "ipvs.json", peers=peers))


def _texts(row: Row) -> dict[str, str]:
    return {col: c.text for col, c in zip(IPVS_COLUMNS, row.cells, strict=True)}


def _rows(snap: Snapshot) -> list[dict[str, str]]:
    index = SnapshotIndex(snap)
    return [_texts(r) for r in ipvs_rows([index], index.services)]


async def _open_ipvs(pilot: Pilot[None]) -> IpvsScreen:
    await press_and_settle(pilot, ("colon", *"ipvs", "enter"))
    screen = pilot.app.screen
    assert isinstance(screen, IpvsScreen)
    return screen


def _cursor_to(screen: IpvsScreen, text: str) -> None:
    table = screen.table
    row = next(i for i in range(table.row_count) if table.row_texts(i)[0].strip() == text)
    table.move_cursor(row=row)


def test_rows_are_ipvsadm_ln_in_order_with_counts_and_persistence() -> None:
    """kube-router's listing: each service then its servers, weights, connections, persistence."""
    rows = _rows(ipvs_node())
    firsts = [r[IPVS_COLUMNS[0]] for r in rows]
    assert firsts == [
        "TCP 10.3.0.1:443",
        "  -> 10.10.3.2:443",
        "TCP 10.3.0.10:53",
        "  -> 10.2.0.2:53",
        "TCP 10.3.0.15:2379",
        "  -> 10.10.3.3:2379",
        "TCP 10.3.0.155:2379",
        "  -> 10.10.3.3:2379",
        "UDP 10.3.0.10:53",
        "  -> 10.2.0.2:53",
    ]
    api, api_server = rows[0], rows[1]
    assert api["SCHED / FWD"] == "rr" and api["SHARE"] == "even"
    assert api["TYPE, FLAGS / WHERE"] == "ClusterIP, persistent 10800 mask 0.0.0.0"
    assert (api_server["SCHED / FWD"], api_server["WEIGHT"], api_server["SHARE"]) == (
        "Masq",
        "1",
        "100%",
    )
    assert api_server["TYPE, FLAGS / WHERE"] == "this node"
    etcd = rows[5]
    assert (etcd["ACTIVE"], etcd["INACTIVE"]) == ("45", "0")
    assert rows[3]["TYPE, FLAGS / WHERE"] == f"pod {DNS_POD}"


def test_a_scheduler_that_chooses_by_live_state_is_not_modelled() -> None:
    """/proc/net/ip_vs in hex: wlc and sh say 'not modelled', weight 0 is never chosen, IPv6, FWM."""
    rows = _rows(ipvs_node(listing(PROC_HEX)))
    by_first = {r[IPVS_COLUMNS[0]]: r for r in rows}
    wlc = by_first["TCP 192.168.0.22:3306"]
    assert (wlc["SCHED / FWD"], wlc["SHARE"], wlc["ACTIVE"], wlc["INACTIVE"]) == (
        "wlc",
        "not modelled",
        "744",
        "5",
    )
    assert by_first["  -> 192.168.82.22:3306"]["SCHED / FWD"] == "Tunnel"
    assert by_first["  -> 192.168.82.22:3306"]["SHARE"] == "not modelled"
    assert by_first["  -> 192.168.84.22:3306"]["SHARE"] == "0 (weight 0)"
    assert by_first["TCP [2620::1]:80"]["SCHED / FWD"] == "sh"
    assert by_first["  -> [2620::4]:80"]["SCHED / FWD"] == "Route"
    fwm = by_first["FWM 268439552"]
    assert "every weight 0: refused" in fwm["TYPE, FLAGS / WHERE"]


def test_weighted_round_robin_shares_follow_the_weights() -> None:
    """wrr: a server's share is its weight over the sum of the usable weights."""
    text = listing(KUBE_ROUTER).replace(
        "TCP  10.3.0.10:53 rr\n  -> 10.2.0.2:53                  Masq    1      0          0\n",
        "TCP  10.3.0.10:53 wrr\n"
        "  -> 10.2.0.2:53                  Masq    3      0          0\n"
        "  -> 10.2.0.3:53                  Masq    1      0          0\n",
    )
    assert text != listing(KUBE_ROUTER)
    rows = _rows(ipvs_node(text))
    start = next(i for i, r in enumerate(rows) if r[IPVS_COLUMNS[0]] == "TCP 10.3.0.10:53")
    assert rows[start]["SHARE"] == "by weight"
    assert [r["SHARE"] for r in rows[start + 1 : start + 3]] == ["75%", "25%"]


def test_empty_view_says_why_in_one_sentence(fixed_snapshot: Snapshot) -> None:
    """No ip_vs: the mode is named; IPVS mode without /proc/net/ip_vs: unknown; loaded but empty."""
    plain = SnapshotIndex(fixed_snapshot)
    reason = empty_reason(plain, plain.kube_proxy_mode.mode)
    assert reason is not None and reason.startswith("No IPVS here: ")
    assert "kube-proxy runs in iptables mode" in reason
    unread = SnapshotIndex(ipvs_node(ipvs=False))
    reason = empty_reason(unread, "ipvs")
    assert reason is not None and "IPVS mode" in reason and "not read" in reason
    loaded = SnapshotIndex(dataclasses.replace(ipvs_node(), ipvs=IpvsDump(listing(PROC_HEX)[:90])))
    reason = empty_reason(loaded, "iptables")
    assert (
        reason == "ip_vs is loaded but holds no virtual service; kube-proxy runs in iptables mode."
    )
    assert empty_reason(SnapshotIndex(ipvs_node()), "ipvs") is None


async def test_empty_view_shows_the_sentence_and_home_counts_a_dash(
    make_app: Callable[..., PodpathApp],
) -> None:
    """On an iptables-mode node :ipvs is one line of why, its count "none", home's count "-"."""
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert app.loaded is not None
        view = registry.find("ipvs")
        assert view is not None and registry.count_text(view, app.loaded) == "-"
        screen = await _open_ipvs(pilot)
        assert screen.table.row_count == 1 and screen.table.selected_key == EMPTY_KEY
        assert screen.table.row_texts(0)[0].startswith("No IPVS here: ")
        assert "no virtual services" in str(screen.query_one("#count").render())
        await pilot.press("enter")  # the sentence opens nothing
        await pilot.pause()
        assert app.screen is screen


async def test_enter_on_a_real_server_opens_its_pod_and_escape_returns() -> None:
    """Enter on coredns's real server opens the coredns pod; esc comes back to :ipvs."""
    app = _app(ipvs_node())
    async with app.run_test(size=SIZE) as pilot:
        screen = await _open_ipvs(pilot)
        assert app.loaded is not None
        view = registry.find("ipvs")
        assert view is not None and registry.count_text(view, app.loaded) == "5"
        _cursor_to(screen, "-> 10.2.0.2:53")
        await press_and_settle(pilot, ("enter",))
        pod = app.screen
        assert isinstance(pod, PodScreen) and pod.pod_key == DNS_POD
        await press_and_settle(pilot, ("escape",))
        assert app.screen is screen
        _cursor_to(screen, "-> 10.10.3.3:2379")  # no pod of the loaded nodes: said so
        await press_and_settle(pilot, ("enter",))
        assert app.screen is screen
        assert any("outside the loaded nodes" in str(n.message) for n in app._notifications)


async def test_enter_on_a_virtual_service_opens_it_and_t_traces_to_it() -> None:
    """Enter on a virtual service: its Service screen, titled by the service; t: Trace to VIP:port."""
    app = _app(ipvs_node())
    async with app.run_test(size=SIZE) as pilot:
        screen = await _open_ipvs(pilot)
        _cursor_to(screen, "TCP 10.3.0.10:53")
        await press_and_settle(pilot, ("enter",))
        shown = app.screen
        assert isinstance(shown, ServiceScreen)
        heading = str(shown.query_one("#heading").render())
        assert heading.startswith("IPVS virtual service TCP 10.3.0.10:53 · 1 endpoint ·")
        await press_and_settle(pilot, ("escape",))
        _cursor_to(screen, "TCP 10.3.0.10:53")
        await pilot.press("t")
        await pilot.pause()
        from podpath.tui.screens.trace import TraceScreen

        assert isinstance(app.screen, TraceScreen)
        assert app.screen.destination_spec == "10.3.0.10:53"


async def test_the_filter_keeps_matching_lines() -> None:
    """`/2379` keeps etcd's two virtual services and their servers."""
    app = _app(ipvs_node())
    async with app.run_test(size=SIZE) as pilot:
        screen = await _open_ipvs(pilot)
        await press_and_settle(pilot, ("slash", *"2379", "enter"))
        table = screen.table
        assert [table.row_texts(i)[0].strip() for i in range(table.row_count)] == [
            "TCP 10.3.0.15:2379",
            "-> 10.10.3.3:2379",
            "TCP 10.3.0.155:2379",
            "-> 10.10.3.3:2379",
        ]


async def test_a_real_server_on_another_loaded_node_opens_that_nodes_pod() -> None:
    """With node-b loaded too, etcd's real server is node-b's pod: enter opens it there."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))
    from trace_factory import NodeSpec, PodSpec, build_node

    node_b = build_node(
        NodeSpec(
            number=1,
            hostname="node-b",
            address="10.10.4.2",
            gateway="10.10.4.1",
            pod_cidr="10.10.3.0/24",
            pods=[PodSpec("etcd-0", "10.10.3.3", "kube-system")],
        )
    )
    app = _app(ipvs_node(), node_b)
    async with app.run_test(size=SIZE) as pilot:
        screen = await _open_ipvs(pilot)
        row = next(
            i
            for i in range(screen.table.row_count)
            if screen.table.row_texts(i)[0].strip() == "-> 10.10.3.3:2379"
        )
        assert screen.table.row_texts(row)[-1] == "pod kube-system/etcd-0 on node-b"
        screen.table.move_cursor(row=row)
        await press_and_settle(pilot, ("enter",))
        shown = app.screen
        assert isinstance(shown, PodScreen) and (shown.pod_key, shown.node) == (
            "kube-system/etcd-0",
            1,
        )


def test_ipvs_view_looks_as_approved(snap_compare: Callable[..., bool]) -> None:
    """:ipvs on kube-router's real listing renders exactly as the approved SVG."""

    async def keys(pilot: Pilot[None]) -> None:
        await press_and_settle(pilot, ("colon", *"ipvs", "enter"))

    assert snap_compare(_app(ipvs_node()), run_before=keys, terminal_size=SIZE)


def test_services_list_names_no_service_for_an_ipvs_virtual_service() -> None:
    """:svc on an IPVS node: the SERVICE cell is a dash, as in `ls services`, never a bare '/'."""
    from podpath.tui.rows.services import service_rows

    index = SnapshotIndex(ipvs_node())
    rows = service_rows(index, index.services)
    assert rows and {r.cells[0].text for r in rows} == {"-"}


def test_home_counts_every_virtual_service_without_parsing() -> None:
    """Home's count, read from the text, is the number of virtual services parse_ipvs finds."""
    from podpath.netfilter.ipvs import parse_ipvs
    from podpath.tui.state import Loaded

    view = registry.find("ipvs")
    assert view is not None
    for name in (KUBE_ROUTER, PROC_HEX):
        text = listing(name)
        count = registry.count_text(view, Loaded(ipvs_node(text)))
        assert count == str(len(parse_ipvs(text))), name
