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
    lab.probe(pod.ref, OUTSIDE, 80, wait=1)  # nothing answers outside the lab: only counted
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


def _uplink(lab: Lab) -> str:
    """The node's device of its default route (the way out of the lab node)."""
    (default,) = json.loads(lab.exec("node1", ["ip", "-j", "route", "show", "default"]).stdout)
    return str(default["dev"])


def _rule_lines(lab: Lab) -> list[str]:
    """`ip rule show` of the node, as podpath words each rule (`PRIO: RULE`)."""
    out = lab.exec("node1", ["ip", "-4", "rule", "show"]).stdout
    return [line.replace(":\t", ": ").strip() for line in out.splitlines()]


@pytest.fixture
def ifgroup_rules(lab: Lab) -> Iterator[dict[str, SnapshotIndex]]:
    """The uplink in device group 7; rule 80 looks in main but rejects routes via group 7."""
    uplink = _uplink(lab)
    _ip(lab, "link", "set", uplink, "group", "7")
    _ip(lab, "route", "add", "blackhole", "default", "table", "100")
    _ip(lab, "rule", "add", "lookup", "main", "suppress_ifgroup", "7", "pref", "80")
    _ip(lab, "rule", "add", "lookup", "100", "pref", "85")
    try:
        yield snapshots(lab)
    finally:
        for pref in ("80", "85"):
            lab.exec("node1", ["ip", "rule", "del", "pref", pref], check=False)
        lab.exec("node1", ["ip", "route", "flush", "table", "100"], check=False)
        lab.exec("node1", ["ip", "link", "set", uplink, "group", "default"], check=False)


def test_suppress_ifgroup_reads_the_devices_group(
    lab: Lab, ifgroup_rules: dict[str, SnapshotIndex], counted: None
) -> None:
    """Main's route via the group-7 uplink is suppressed, rule 85 blackholes: as the kernel."""
    pod = lab.pods_on("node1")[0]
    uplink = _uplink(lab)
    index = ifgroup_rules["node1"]
    root = index.root_netns
    assert root is not None
    assert next(lk.group for lk in root.links if lk.name == uplink) == 7
    result = trace(ordered(ifgroup_rules), Probe(pod.ref, f"{OUTSIDE}:80"))
    (branch,) = result.branches
    assert branch.verdict == "dropped", branch.reason
    host = next(h for h in branch.hops if h.kind == "route" and h.data["iif"])
    assert (host.data["type"], host.data["rule"]) == ("blackhole", "85: from all lookup 100")
    assert any(f"dev {uplink} is in group 7" in d for d in host.details), host.details
    assert assert_routes_equal_kernel(lab, ifgroup_rules, result.branches) >= 2
    lab.probe(pod.ref, OUTSIDE, 80)
    assert _routed_packets(lab)["tcp"] == 0


@pytest.fixture
def realms_rule(lab: Lab) -> Iterator[dict[str, SnapshotIndex]]:
    """Rule 80: `lookup main realms 3/7`: the route is main's, tagged with realms."""
    _ip(lab, "rule", "add", "lookup", "main", "realms", "3/7", "pref", "80")
    try:
        yield snapshots(lab)
    finally:
        lab.exec("node1", ["ip", "rule", "del", "pref", "80"], check=False)


def test_rule_realms_are_read_shown_and_route_as_the_kernel(
    lab: Lab, realms_rule: dict[str, SnapshotIndex]
) -> None:
    """`ls rules` words rule 80 as `ip rule` does; the trace routes by main and names the tag,
    which the kernel's own answer carries (`ip route get`: realms 3/7)."""
    from podpath.listing import rules

    index = realms_rule["node1"]
    mine = [
        f"{r['priority']}: {r['text']}" for r in rules(index).rows if r["netns_label"] == "root"
    ]
    assert [line for line in mine if line.startswith("80:")] == _rule_lines(lab)[1:2]
    assert "80: from all lookup main realms 3/7" in mine
    pod = lab.pods_on("node1")[0]
    result = trace(ordered(realms_rule), Probe(pod.ref, f"{OUTSIDE}:80"))
    (branch,) = result.branches
    assert branch.verdict == "leaves-node", branch.reason
    host = next(h for h in branch.hops if h.kind == "route" and h.data["iif"])
    assert host.data["rule"] == "80: from all lookup main realms 3/7"
    assert any("realms 3/7" in d for d in host.details), host.details
    assert assert_routes_equal_kernel(lab, realms_rule, result.branches) >= 2
    (kernel,) = json.loads(lab.exec("node1", ["ip", "-j", "route", "get", OUTSIDE]).stdout)
    assert kernel.get("flow") == {"from": "3", "to": "7"}, kernel


@pytest.fixture
def reverse_port_rule(lab: Lab) -> Iterator[dict[str, SnapshotIndex]]:
    """Strict rp_filter on the node, and a rule that sends TCP *from* port 80 to an unreachable
    table: only a reverse lookup with the flow's swapped ports meets it."""
    pod = lab.pods_on("node1")[0]
    _ip(lab, "route", "add", "unreachable", f"{pod.ip}/32", "table", "100")
    _ip(lab, "rule", "add", "ipproto", "tcp", "sport", "80", "lookup", "100", "pref", "90")
    old = lab.exec("node1", ["sysctl", "-n", "net.ipv4.conf.all.rp_filter"]).stdout.strip()
    lab.exec("node1", ["sysctl", "-qw", "net.ipv4.conf.all.rp_filter=1"])
    try:
        yield snapshots(lab)
    finally:
        lab.exec("node1", ["sysctl", "-qw", f"net.ipv4.conf.all.rp_filter={old}"], check=False)
        lab.exec("node1", ["ip", "rule", "del", "pref", "90"], check=False)
        lab.exec("node1", ["ip", "route", "flush", "table", "100"], check=False)


def test_rp_filter_reverse_lookup_uses_the_flows_reversed_ports(
    lab: Lab, reverse_port_rule: dict[str, SnapshotIndex], counted: None
) -> None:
    """pod -> OUTSIDE:80: the way back (sport 80) is unreachable, so rp_filter drops the packet,
    as `ip route get ... iif` says; to port 81 the way back is main and the packet passes."""
    pod = lab.pods_on("node1")[0]
    # A client's port is ephemeral (never 80): given, so the forward lookup need not assume.
    dropped = trace(ordered(reverse_port_rule), Probe(pod.ref, f"{OUTSIDE}:80", sport=40000))
    (branch,) = dropped.branches
    assert branch.verdict == "dropped", branch.reason
    assert branch.hops[-1].data["by"] == "rp_filter", branch.hops[-1].text
    passed = trace(ordered(reverse_port_rule), Probe(pod.ref, f"{OUTSIDE}:81", sport=40000))
    (other,) = passed.branches
    assert other.verdict == "leaves-node", other.reason
    assert assert_routes_equal_kernel(lab, reverse_port_rule, [other]) >= 2
    # The kernel's input lookup of the same packet refuses it as a martian source (EINVAL
    # here, as for any failed reverse path check on this path); to port 81 it routes.
    iif = next(h for h in branch.hops if h.kind == "route" and h.data["iif"]).data["iif"]
    ask = ["ip", "route", "get", OUTSIDE, "from", pod.ip, "iif", str(iif), "ipproto", "tcp"]
    refused = lab.exec("node1", [*ask, "sport", "40000", "dport", "80"], check=False)
    assert refused.returncode != 0 and "Invalid argument" in refused.stderr, refused
    assert lab.exec("node1", [*ask, "sport", "40000", "dport", "81"], check=False).returncode == 0
    lab.probe(pod.ref, OUTSIDE, 80)
    assert _routed_packets(lab)["tcp"] == 0  # dropped on input, by rp_filter
    lab.probe(pod.ref, OUTSIDE, 81)
    assert _routed_packets(lab)["tcp"] >= 1


MARK_TABLE = "podpath_test_vmark"


@pytest.fixture
def marked_way_back(lab: Lab) -> Iterator[Lab]:
    """Packets from the pod to port 82 are marked 0x40 in prerouting; marked lookups go to a
    table where the pod is unreachable; strict rp_filter. Whether the way back is found then
    depends on src_valid_mark, which each test sets before its snapshot."""
    pod = lab.pods_on("node1")[0]
    rules = (
        f"add table ip {MARK_TABLE}\n"
        f"add chain ip {MARK_TABLE} pre {{ type filter hook prerouting priority -150; }}\n"
        f"add rule ip {MARK_TABLE} pre ip saddr {pod.ip} tcp dport 82 meta mark set 0x40\n"
    )
    lab.exec("node1", ["nft", "-f", "-"], input=rules)
    _ip(lab, "route", "add", "unreachable", f"{pod.ip}/32", "table", "100")
    _ip(lab, "rule", "add", "fwmark", "0x40", "lookup", "100", "pref", "90")
    old = lab.exec("node1", ["sysctl", "-n", "net.ipv4.conf.all.rp_filter"]).stdout.strip()
    lab.exec("node1", ["sysctl", "-qw", "net.ipv4.conf.all.rp_filter=1"])
    try:
        yield lab
    finally:
        lab.exec("node1", ["sysctl", "-qw", f"net.ipv4.conf.all.rp_filter={old}"], check=False)
        lab.exec("node1", ["sysctl", "-qw", "net.ipv4.conf.all.src_valid_mark=0"], check=False)
        lab.exec("node1", ["ip", "rule", "del", "pref", "90"], check=False)
        lab.exec("node1", ["ip", "route", "flush", "table", "100"], check=False)
        lab.exec("node1", ["nft", "delete", "table", "ip", MARK_TABLE], check=False)


@pytest.mark.parametrize("valid_mark", [0, 1])
def test_rp_filter_uses_the_mark_only_with_src_valid_mark(
    marked_way_back: Lab, counted: None, valid_mark: int
) -> None:
    """src_valid_mark 0: the reverse lookup ignores the mark and the packet passes; 1: it takes
    the marked way back, which is unreachable, and the packet is dropped; real packets agree."""
    lab = marked_way_back
    lab.exec("node1", ["sysctl", "-qw", f"net.ipv4.conf.all.src_valid_mark={valid_mark}"])
    pod = lab.pods_on("node1")[0]
    result = trace(ordered(snapshots(lab)), Probe(pod.ref, f"{OUTSIDE}:82", sport=40000))
    (branch,) = result.branches
    assert any("mark 0x0 -> 0x40" in h.text for h in branch.hops), [h.text for h in branch.hops]
    lab.probe(pod.ref, OUTSIDE, 82)
    routed = _routed_packets(lab)["tcp"]
    if valid_mark:
        assert branch.verdict == "dropped" and branch.hops[-1].data["by"] == "rp_filter"
        assert routed == 0
    else:
        assert branch.verdict == "leaves-node", branch.reason
        assert routed >= 1
