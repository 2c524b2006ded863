"""Pod screen rows for policy rules and route types, and the links view's counters."""

from __future__ import annotations

from dataclasses import replace

from podpath.analysis.index import SnapshotIndex
from podpath.snapshot.model import LinkStats, Route, Rule, Snapshot
from podpath.tui.rows.links import link_rows
from podpath.tui.rows.pod import route_rows, rule_rows
from podpath.tui.rows.routing import routing_rows

WEB = "default/web-7d4b9c6f5d-x7k2p"


def _texts(rows: list) -> list[list[str]]:  # type: ignore[type-arg]
    return [[c.text for c in r.cells] for r in rows]


def _aws_like(snapshot: Snapshot, pod_ip: str) -> SnapshotIndex:
    """The fixed snapshot with AWS-style rules for the web pod and another pod, and table 2."""
    root = snapshot.root_netns
    rules = (
        Rule(root, 4, 512, "lookup", table=254, dst=f"{pod_ip}/32"),
        Rule(root, 4, 1025, "lookup", table=254, dst="172.18.0.0/16", invert=True),
        Rule(root, 4, 1536, "lookup", table=2, src=f"{pod_ip}/32"),
        Rule(root, 4, 1537, "lookup", table=3, src="10.99.99.99/32"),
    )
    routes = (
        Route(root, 4, 2, "unicast", "0.0.0.0/0", gateway="172.18.0.1", dev=2),
        Route(root, 4, 3, "unicast", "0.0.0.0/0", gateway="172.18.0.9", dev=2),
        Route(root, 4, 254, "blackhole", "10.244.0.0/24", protocol="bird"),
    )
    netns = tuple(
        replace(ns, rules=ns.rules + rules, routes=ns.routes + routes) if ns.inode == root else ns
        for ns in snapshot.netns
    )
    return SnapshotIndex(replace(snapshot, netns=netns))


def test_rules_tab_shows_the_node_rules_that_take_the_pods_packets(index: SnapshotIndex) -> None:
    """`from POD lookup 2`, `to POD lookup main` and `not ... to` are shown as ip rule prints them;
    another pod's `from` rule is not."""
    pod = index.pods_by_name[WEB]
    aws = _aws_like(index.snapshot, pod.ips[0])
    shown = [r for r in _texts(rule_rows(aws, aws.pods_by_name[WEB])) if r[0] == "node"]
    texts = {(r[2], r[3]) for r in shown}
    assert ("1536", f"from {pod.ips[0]} lookup 2") in texts
    assert ("512", f"from all to {pod.ips[0]} lookup main") in texts
    assert ("1025", "not from all to 172.18.0.0/16 lookup main") in texts
    assert not any(prio == "1537" for prio, _ in texts)


def test_routes_tab_has_type_and_the_table_a_rule_picks(index: SnapshotIndex) -> None:
    """Calico's `blackhole 10.244.0.0/24 proto bird` reads as a blackhole (in red), and table 2's
    default, picked by `from POD lookup 2`, is listed; table 3 (another pod's) is not."""
    pod = index.pods_by_name[WEB]
    aws = _aws_like(index.snapshot, pod.ips[0])
    rows = route_rows(aws, aws.pods_by_name[WEB])
    texts = _texts(rows)
    black = next(i for i, r in enumerate(texts) if r[3] == "10.244.0.0/24" and r[2] == "blackhole")
    assert texts[black][7] == "bird" and rows[black].cells[2].role == "error"
    assert any(r[:4] == ["node", "2", "unicast", "0.0.0.0/0"] for r in texts)
    assert not any(r[1] == "3" for r in texts)


def test_links_view_shows_rx_tx_counters(index: SnapshotIndex) -> None:
    """Each link's RX/TX packets/bytes and errors/drops, a drop marked as a warning."""
    snap = index.snapshot
    stats = LinkStats(rx_packets=35, rx_bytes=4328, tx_packets=26, tx_bytes=3343, tx_dropped=3)
    netns = tuple(
        replace(ns, links=tuple(replace(link, stats=stats) for link in ns.links))
        if ns.inode == snap.root_netns
        else ns
        for ns in snap.netns
    )
    rows = link_rows(SnapshotIndex(replace(snap, netns=netns)))
    assert rows and all(
        [c.text for c in r.cells][5:9] == ["35/4328", "0/0", "26/3343", "0/3"] for r in rows
    )
    assert rows[0].cells[8].role == "warning"


def test_routing_view_lists_rules_then_their_tables_routes(index: SnapshotIndex) -> None:
    """The Routing view: every root rule as `ip rule` words (`not` kept), then routes by table,
    the table a rule consults first, with TYPE (blackhole in red)."""
    pod = index.pods_by_name[WEB]
    aws = _aws_like(index.snapshot, pod.ips[0])
    rows = routing_rows(aws)
    texts = _texts(rows)
    rules = [r for r in texts if r[0].startswith("rule ")]
    root = aws.root_netns
    assert root is not None and len(rules) == len(root.rules)
    assert ["rule 1025", "main", "lookup", "not from all to 172.18.0.0/16 lookup main"] in [
        r[:4] for r in rules
    ]
    routes = [r for r in texts if r[0] == "route"]
    assert len(routes) == len(root.routes) and texts.index(routes[0]) == len(rules)
    tables = [r[1] for r in routes]
    # In the order rules first consult them: 0 local, 512 main, 1536 table 2.
    assert tables.index("local") < tables.index("main") < tables.index("2")
    black = next(i for i, r in enumerate(texts) if r[2] == "blackhole")
    assert rows[black].cells[2].role == "error"
