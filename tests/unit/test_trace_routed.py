"""Traces through routed nodes: proxy ARP, onlink gateways, rp_filter, forwarding, source choice."""

from __future__ import annotations

from dataclasses import replace

import pytest
from routed_factory import (
    CALI_MAC,
    ETH0,
    GW4,
    RoutedNode,
    RoutedPod,
    build,
    host_index,
    pod_inode,
    root_inode,
    without_netconf,
)

from podpath.snapshot.model import Address, Link, Neighbour, NetNamespace, Route, Snapshot
from podpath.trace.engine import trace
from podpath.trace.model import Branch
from podpath.trace.probe import Probe, ProbeError

PODS = [RoutedPod("a", "10.244.0.5"), RoutedPod("b", "10.244.0.6")]


def _only(branches: tuple[Branch, ...]) -> Branch:
    assert len(branches) == 1, [b.reason for b in branches]
    return branches[0]


def _calico(**changes: object) -> RoutedNode:
    return replace(RoutedNode(pods=list(PODS)), **changes)  # type: ignore[arg-type]


def test_calico_pod_to_pod_is_answered_by_proxy_arp() -> None:
    """Pod -> pod on a Calico node: the host veth answers ARP for 169.254.1.1 by proxy ARP."""
    b = _only(trace([build(_calico())], Probe("default/a", "10.244.0.6:80")).branches)
    assert b.verdict == "delivered", b.reason
    (arp, *_) = [h for h in b.hops if h.kind == "neighbour"]
    assert arp.data["ip"] == GW4 and arp.data["lladdr"] == CALI_MAC
    assert "proxy ARP" in arp.text and "eth0" in arp.text
    assert b.hops[-1].data["pod"] == "default/b"


def test_no_route_covering_the_gateway_means_no_proxy_arp_answer() -> None:
    """The issue's case: without a route for 169.254.1.1 proxy ARP stays silent; dropped, not delivered."""
    snap = build(_calico(default_gateway=None))
    b = _only(trace([snap], Probe("default/a", "10.244.0.6:80")).branches)
    assert b.verdict == "dropped"
    assert "no route to 169.254.1.1" in b.reason and "proxy ARP does not answer" in b.reason
    assert b.hops[-2].kind == "neighbour" and b.hops[-2].data["answered"] is False


def test_a_failed_neighbour_entry_is_reported_with_the_reason() -> None:
    """A FAILED entry in the pod's table is named next to why nobody answers."""
    failed = (Neighbour(pod_inode(0, 0), 4, ETH0, GW4, None, ("FAILED",)),)
    snap = build(_calico(default_gateway=None, pod_neighbours=failed))
    b = _only(trace([snap], Probe("default/a", "10.244.0.6:80")).branches)
    assert b.verdict == "dropped" and "FAILED" in b.reason


def test_proxy_arp_off_drops() -> None:
    """With proxy_arp=0 on the host veth nobody answers for 169.254.1.1."""
    b = _only(trace([build(_calico(proxy_arp=0))], Probe("default/a", "10.244.0.6")).branches)
    assert b.verdict == "dropped" and "proxy_arp is 0" in b.reason


def test_forwarding_off_on_the_host_veth_stops_proxy_arp() -> None:
    """Proxy ARP needs forwarding on the receiving interface too (IN_DEV_FORWARD)."""
    b = _only(trace([build(_calico(forwarding=0))], Probe("default/a", "10.244.0.6")).branches)
    assert b.verdict == "dropped" and "forwarding=0" in b.reason


def test_unknown_proxy_arp_is_an_assumption_not_a_fact() -> None:
    """An older snapshot without netconf: the trace goes on, uncertain, saying what it assumed."""
    snap = without_netconf(build(_calico()))
    b = _only(trace([snap], Probe("default/a", "10.244.0.6:80")).branches)
    assert b.verdict == "uncertain" and b.outcome == "delivered"
    assert any("proxy_arp" in u and "not collected" in u for u in b.uncertain)


def test_onlink_default_route_resolves_the_gateway_the_same_way() -> None:
    """`default via 169.254.1.1 dev eth0 onlink`: same proxy ARP answer, the route notes onlink."""
    b = _only(trace([build(_calico(onlink=True))], Probe("default/a", "10.244.0.6:80")).branches)
    assert b.verdict == "delivered", b.reason
    first = b.hops[0]
    assert first.data["gateway"] == GW4 and any("onlink" in d for d in first.details)


def test_static_arp_entry_needs_no_proxy_arp() -> None:
    """AWS VPC CNI: a PERMANENT neighbour for 169.254.1.1 in the pod; the kernel never asks."""
    snap = build(_calico(proxy_arp=0, static_arp=True, host_prefix="eni"))
    b = _only(trace([snap], Probe("default/a", "10.244.0.6:80")).branches)
    assert b.verdict == "delivered", b.reason
    arp = next(h for h in b.hops if h.kind == "neighbour")
    assert arp.data["from_table"] is True and arp.data["state"] == ["PERMANENT"]


def test_node_source_is_chosen_from_another_device_when_the_veth_has_none() -> None:
    """Node -> pod: caliX has no address, so inet_select_addr takes eth0's, and says so."""
    t = trace([build(_calico())], Probe("node", "10.244.0.5:80"))
    b = _only(t.branches)
    assert b.verdict == "delivered", b.reason
    route = b.hops[0]
    assert route.data["chosen_src"] == "192.168.0.2"
    assert any("has no usable address" in d for d in route.details)


def _with_extra_address(snap: Snapshot, ip: str, neighbours: tuple[Neighbour, ...]) -> Snapshot:
    """Pod a also holds `ip`, which the node routes elsewhere (its default route)."""
    ns_a = next(ns for ns in snap.netns if ns.inode == pod_inode(0, 0))
    eth0 = next(lk for lk in ns_a.links if lk.name == "eth0")
    more = replace(eth0, addresses=(*eth0.addresses, Address(4, ip, 32)))
    ns_a = replace(
        ns_a,
        links=tuple(more if lk is eth0 else lk for lk in ns_a.links),
        neighbours=ns_a.neighbours + neighbours,
    )
    return replace(snap, netns=tuple(ns_a if ns.inode == ns_a.inode else ns for ns in snap.netns))


def test_strict_rp_filter_drops_a_source_routed_elsewhere() -> None:
    """rp_filter=1 on the host veth: a source the node routes via eth0 is a martian there."""
    snap = build(_calico(rp_filter_host=1))
    b = _only(trace([snap], Probe("default/a", "10.244.0.6:80")).branches)
    assert b.verdict == "delivered"
    assert any("rp_filter=1" in d for h in b.hops for d in h.details)
    known = (Neighbour(pod_inode(0, 0), 4, ETH0, GW4, CALI_MAC, ("REACHABLE",)),)
    spoofing = _with_extra_address(snap, "10.244.0.77", known)
    b = _only(trace([spoofing], Probe("10.244.0.77", "192.168.0.2:22")).branches)
    assert b.verdict == "dropped" and b.hops[-1].data["by"] == "rp_filter"
    assert "the route back to 10.244.0.77 does not use it" in b.reason


def test_strict_rp_filter_also_silences_proxy_arp_for_such_a_sender() -> None:
    """Without a cached neighbour, the ARP request's sender fails the same check: no answer."""
    spoofing = _with_extra_address(build(_calico(rp_filter_host=1)), "10.244.0.77", ())
    b = _only(trace([spoofing], Probe("10.244.0.77", "192.168.0.2:22")).branches)
    assert b.verdict == "dropped" and b.hops[-1].data["by"] == "neighbour"
    assert "rp_filter=1" in b.reason


def test_loose_rp_filter_accepts_any_routable_source() -> None:
    """rp_filter=2 (loose): a source routed back through another device passes."""
    snap = build(_calico(rp_filter_all=2))
    b = _only(trace([snap], Probe("default/a", "10.244.0.6:80")).branches)
    assert b.verdict == "delivered"


def test_cross_node_route_and_arp_answered_by_the_other_snapshot() -> None:
    """Calico BGP routes: node a routes node b's block via b; b's snapshot answers the ARP."""
    a = build(_calico(remote_routes=(("10.244.1.0/26", "192.168.0.3"),)))
    b_node = RoutedNode(
        number=1, hostname="calico-b", address="192.168.0.3", pods=[RoutedPod("c", "10.244.1.5")]
    )
    b = _only(trace([a, build(b_node)], Probe("default/a", "10.244.1.5:80")).branches)
    assert b.verdict == "delivered", b.reason
    arp = [h for h in b.hops if h.kind == "neighbour" and h.data["ip"] == "192.168.0.3"]
    assert arp and "node calico-b" in arp[0].text and arp[0].data["lladdr"] == "02:00:00:00:01:02"
    assert b.hops[-1].node == "calico-b"


def _eth0_as_veth_to_nowhere(snap: Snapshot) -> Snapshot:
    """The node's eth0 is a veth whose peer no snapshot holds (a kind node, a lab node)."""
    root = next(ns for ns in snap.netns if ns.inode == snap.root_netns)
    veth = tuple(
        replace(lk, kind="veth", link=9, link_netnsid=0) if lk.name == "eth0" else lk
        for lk in root.links
    )
    root = replace(root, links=veth)
    return replace(snap, netns=tuple(root if ns.inode == root.inode else ns for ns in snap.netns))


def test_next_hop_behind_an_unresolved_veth_is_answered_by_the_other_snapshot() -> None:
    """Node a's eth0 is a veth into a network outside the snapshots; the gateway is node b's
    address, so b's snapshot answers the ARP (not "an unknown host")."""
    a = _eth0_as_veth_to_nowhere(build(_calico(remote_routes=(("10.244.1.0/26", "192.168.0.3"),))))
    b_node = RoutedNode(
        number=1, hostname="calico-b", address="192.168.0.3", pods=[RoutedPod("c", "10.244.1.5")]
    )
    b = _only(trace([a, build(b_node)], Probe("default/a", "10.244.1.5:80")).branches)
    assert b.verdict == "delivered", b.reason
    arp = [h for h in b.hops if h.kind == "neighbour" and h.data["ip"] == "192.168.0.3"]
    assert arp and "node calico-b" in arp[0].text, [h.text for h in arp]
    assert arp[0].data["lladdr"] == "02:00:00:00:01:02"


def test_leaving_through_a_router_outside_the_snapshots_says_so() -> None:
    """Node a has no route to b's pods but its default (a VPC-like router): the packet is
    assumed to reach b, and the leave hop names the router as such, not as node b."""
    b_node = RoutedNode(
        number=1, hostname="calico-b", address="192.168.0.3", pods=[RoutedPod("c", "10.244.1.5")]
    )
    branches = trace([build(_calico()), build(b_node)], Probe("default/a", "10.244.1.5:80"))
    b = _only(branches.branches)
    (leave,) = [h for h in b.hops if h.kind == "leave"]
    assert leave.data["via"] == "192.168.0.1" and leave.data["toward"] == "calico-b"
    assert "(a router outside the snapshots, on to node calico-b)" in leave.text, leave.text
    assert b.verdict == "uncertain" and "not in the snapshots" in b.reason, b.reason


def test_unknown_next_hop_is_named_as_outside_the_snapshots() -> None:
    """The default gateway is no loaded node: the ARP answer comes from outside the snapshots."""
    b = _only(trace([build(_calico())], Probe("default/a", "198.51.100.7:80")).branches)
    assert b.verdict == "leaves-node"
    assert any("outside the loaded snapshots" in h.text for h in b.hops if h.kind == "neighbour")


def test_any_netns_can_be_the_source_by_path_or_address() -> None:
    """A namespace no runtime knows is a source by netns:NAME, by path, and by its address."""
    snap = build(_calico())
    pods = tuple(p for p in snap.pods if p.name != "a")
    snap = replace(snap, pods=pods)  # pod a's netns is now just a namespace
    for spec in ("netns:cni-0-0", "/var/run/netns/cni-0-0", "10.244.0.5", str(pod_inode(0, 0))):
        t = trace([snap], Probe(spec, "10.244.0.6:80"))
        b = _only(t.branches)
        assert b.verdict == "delivered", (spec, b.reason)
        assert t.probe["src"] == "10.244.0.5" and "cni-0-0" in str(t.probe["src_label"])


def test_any_netns_can_be_the_destination() -> None:
    """`--to netns:NAME:PORT` sends to that namespace's address."""
    t = trace([build(_calico())], Probe("default/a", "netns:cni-0-1:80"))
    assert t.probe["dst"] == "10.244.0.6" and t.probe["dport"] == 80


def test_policy_rules_pick_the_table_and_the_second_lookup_uses_the_chosen_source() -> None:
    """A `from` rule only matches once the source is chosen: ip_route_connect looks up again."""
    root = root_inode(0)
    from podpath.snapshot.model import Rule

    rules = (
        Rule(root, 4, 0, "lookup", 255),
        Rule(root, 4, 100, "lookup", 7, src="192.168.0.2/32"),
        Rule(root, 4, 32766, "lookup", 254),
    )
    extra = (Route(root, 4, 7, "unicast", "0.0.0.0/0", gateway="192.168.0.254", dev=ETH0),)
    snap = build(_calico(rules=rules, extra_routes=extra))
    b = _only(trace([snap], Probe("node", "198.51.100.7:443")).branches)
    routes = [h for h in b.hops if h.kind == "route"]
    assert [r.data["table"] for r in routes] == [254, 7]
    assert routes[1].data["gateway"] == "192.168.0.254"
    assert "second lookup" in routes[1].details[0]


def test_pod_with_a_down_host_side_forwarding_drops_forwarded_packets() -> None:
    """A packet the pod must forward (not its own address) is dropped: forwarding is 0 there."""
    snap = build(_calico())
    root = root_inode(0)
    # The node routes 10.99.0.0/16 via pod a: pod a would have to forward it.
    extra = Route(root, 4, 254, "unicast", "10.99.0.0/16", gateway="10.244.0.5", dev=host_index(0))
    ns = snap.netns[0]
    snap = replace(snap, netns=(replace(ns, routes=ns.routes + (extra,)), *snap.netns[1:]))
    b = _only(trace([snap], Probe("node", "10.99.1.1:80")).branches)
    assert b.verdict == "dropped" and "forwarding is 0" in b.reason


def test_a_link_without_any_ipv4_address_cannot_source() -> None:
    """A namespace with no IPv4 address on any device cannot send IPv4 (no source)."""
    inode = 99
    ns = NetNamespace(
        inode,
        paths=("/run/netns/empty",),
        links=(
            Link(
                inode,
                2,
                "eth0",
                "veth",
                "0a:00:00:00:00:01",
                1500,
                "UP",
                addresses=(Address(4, "10.1.0.9", 32),),
            ),
        ),
        routes=(Route(inode, 4, 254, "unicast", "10.2.0.0/16", dev=2, scope="link"),),
    )
    snap = build(_calico())
    snap = replace(snap, netns=(*snap.netns, ns))
    t = trace([snap], Probe("netns:empty", "10.2.0.1:80"))
    assert t.probe["src"] == "10.1.0.9"


def test_a_pod_without_a_pod_ip_of_the_family_sources_from_what_its_netns_holds() -> None:
    """An AWS VPC CNI IPv6 pod's IPv4 (egress-cni's v4if0 address) is no pod IP: an IPv4 probe
    from the pod leaves with the source the kernel picks from its namespace's addresses,
    not an error; a pod whose namespace holds no IPv4 at all still cannot send IPv4."""
    snap = build(_calico(address6="fd00::2", pods=[RoutedPod("a", "10.244.0.5", "fd00::a")]))
    only6 = tuple(replace(p, ips=("fd00::a",)) for p in snap.pods)
    snap = replace(snap, pods=only6)
    t = trace([snap], Probe("default/a", "198.51.100.7:80"))
    b = _only(t.branches)
    assert b.verdict == "leaves-node", b.reason
    first = b.hops[0]
    assert (first.kind, first.data["chosen_src"]) == ("route", "10.244.0.5"), first.text
    assert b.packet.src == "10.244.0.5"
    six = trace([snap], Probe("default/a", "[fd00::b]:80"))
    assert six.probe["src"] == "fd00::a"
    pod_ns = next(ns for ns in snap.netns if ns.inode == pod_inode(0, 0))
    no4 = tuple(
        replace(lk, addresses=tuple(a for a in lk.addresses if a.family == 6))
        for lk in pod_ns.links
    )
    bare = replace(
        snap, netns=tuple(replace(ns, links=no4) if ns is pod_ns else ns for ns in snap.netns)
    )
    with pytest.raises(ProbeError, match="has no IPv4 address"):
        trace([bare], Probe("default/a", "198.51.100.7:80"))
