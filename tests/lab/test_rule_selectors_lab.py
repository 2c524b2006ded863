"""Policy rules that select on protocol, port and route prefix length, on a real lab node.

The node's root netns gets the review's two cases: `ipproto udp dport 53 lookup 100` with
`blackhole default` in table 100 (TCP must still route by main), and wg-quick's
`lookup main suppress_prefixlength 0` before `lookup 100` (the default route is suppressed,
so everything off-link is blackholed). Each traced route hop is compared with `ip route get`
(given the flow's ipproto/sport/dport), and real packets from a pod are counted in the
node's POSTROUTING by a counter this test adds after the snapshot.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest
from topology_proof import assert_routes_equal_kernel, ordered, snapshots, topology_fixtures

from podpath.trace.engine import trace
from podpath.trace.probe import Probe

if TYPE_CHECKING:
    from podpath.analysis.index import SnapshotIndex
    from podpath.lab import Lab

pytestmark = pytest.mark.lab

lab, _indexes = topology_fixtures("rsel", nodes=1, pods=2, services=2)
OUTSIDE = "198.51.100.7"
COUNTER_TABLE = "podpath_test_rsel"


def _ip(lab: Lab, *words: str) -> None:
    lab.exec("node1", ["ip", *words])


@pytest.fixture
def dns_rule(lab: Lab) -> Iterator[dict[str, SnapshotIndex]]:
    """Rule 90 sends UDP to port 53 into table 100, whose default route is a blackhole."""
    _ip(lab, "route", "add", "blackhole", "default", "table", "100")
    _ip(lab, "rule", "add", "ipproto", "udp", "dport", "53", "lookup", "100", "pref", "90")
    try:
        yield snapshots(lab)
    finally:
        lab.exec("node1", ["ip", "rule", "del", "pref", "90"], check=False)
        lab.exec("node1", ["ip", "route", "flush", "table", "100"], check=False)


@pytest.fixture
def suppress_rules(lab: Lab) -> Iterator[dict[str, SnapshotIndex]]:
    """wg-quick's pattern: rule 80 looks in main but rejects /0, rule 85 then blackholes."""
    _ip(lab, "route", "add", "blackhole", "default", "table", "100")
    _ip(lab, "rule", "add", "lookup", "main", "suppress_prefixlength", "0", "pref", "80")
    _ip(lab, "rule", "add", "lookup", "100", "pref", "85")
    try:
        yield snapshots(lab)
    finally:
        for pref in ("80", "85"):
            lab.exec("node1", ["ip", "rule", "del", "pref", pref], check=False)
        lab.exec("node1", ["ip", "route", "flush", "table", "100"], check=False)


@pytest.fixture
def counted(lab: Lab) -> Iterator[None]:
    """Counters in the node's POSTROUTING of packets to OUTSIDE, per protocol (after routing)."""
    rules = (
        f"add table ip {COUNTER_TABLE}\n"
        f"add chain ip {COUNTER_TABLE} post {{ type filter hook postrouting priority 0; }}\n"
        f"add rule ip {COUNTER_TABLE} post ip daddr {OUTSIDE} meta l4proto tcp counter\n"
        f"add rule ip {COUNTER_TABLE} post ip daddr {OUTSIDE} meta l4proto udp counter\n"
    )
    lab.exec("node1", ["nft", "-f", "-"], input=rules)
    try:
        yield
    finally:
        lab.exec("node1", ["nft", "delete", "table", "ip", COUNTER_TABLE], check=False)


def _routed_packets(lab: Lab) -> dict[str, int]:
    out = json.loads(lab.exec("node1", ["nft", "-j", "list", "table", "ip", COUNTER_TABLE]).stdout)
    counts: dict[str, int] = {}
    for item in out["nftables"]:
        rule = item.get("rule")
        if rule is None:
            continue
        proto = next(
            e["match"]["right"]
            for e in rule["expr"]
            if "match" in e and e["match"]["left"].get("meta")
        )
        counts[proto] = next(e["counter"]["packets"] for e in rule["expr"] if "counter" in e)
    return counts


def test_udp_53_rule_leaves_tcp_on_main(
    lab: Lab, dns_rule: dict[str, SnapshotIndex], counted: None
) -> None:
    """TCP leaves by main's default route; UDP to 53 is blackholed by rule 90; as the kernel says."""
    pod = lab.pods_on("node1")[0]
    tcp = trace(ordered(dns_rule), Probe(pod.ref, f"{OUTSIDE}:80"))
    (branch,) = tcp.branches
    assert branch.verdict == "leaves-node", branch.reason
    host = next(h for h in branch.hops if h.kind == "route" and h.data["iif"])
    assert str(host.data["rule"]).startswith("32766:"), host.data["rule"]
    udp = trace(ordered(dns_rule), Probe(pod.ref, f"{OUTSIDE}:53", proto="udp"))
    (dropped,) = udp.branches
    assert dropped.verdict == "dropped", dropped.reason
    host = next(h for h in dropped.hops if h.kind == "route" and h.data["iif"])
    assert host.data["type"] == "blackhole"
    assert host.data["rule"] == "90: from all ipproto udp dport 53 lookup 100"
    assert assert_routes_equal_kernel(lab, dns_rule, [*tcp.branches, *udp.branches]) >= 4
    lab.probe(pod.ref, OUTSIDE, 80)  # nothing answers outside the lab: only counted
    lab.probe(pod.ref, OUTSIDE, 53, proto="udp")
    routed = _routed_packets(lab)
    assert routed["tcp"] >= 1 and routed["udp"] == 0, routed


def test_suppress_prefixlength_rejects_the_default_route(
    lab: Lab, suppress_rules: dict[str, SnapshotIndex], counted: None
) -> None:
    """Main's default is suppressed by rule 80, rule 85 blackholes: as `ip route get`, and nothing leaves."""
    pod = lab.pods_on("node1")[0]
    result = trace(ordered(suppress_rules), Probe(pod.ref, f"{OUTSIDE}:80"))
    (branch,) = result.branches
    assert branch.verdict == "dropped", branch.reason
    host = next(h for h in branch.hops if h.kind == "route" and h.data["iif"])
    assert (host.data["type"], host.data["rule"]) == ("blackhole", "85: from all lookup 100")
    assert any("suppress_prefixlength 0" in d for d in host.details), host.details
    assert assert_routes_equal_kernel(lab, suppress_rules, result.branches) >= 2
    # The pod's own node address is on-link in main (a longer prefix): not suppressed.
    to_node = trace(ordered(suppress_rules), Probe(pod.ref, lab.pods_on("node1")[1].ip + ":80"))
    assert all(b.verdict != "dropped" for b in to_node.branches)
    lab.probe(pod.ref, OUTSIDE, 80)
    assert _routed_packets(lab)["tcp"] == 0
