"""Pod-to-pod paths through hand-built nodes: veth, bridge (FDB or flooding), host-gw, VXLAN, drops."""

from __future__ import annotations

from dataclasses import replace

import pytest
from trace_factory import (
    ETH0,
    MAIN,
    NodeSpec,
    PodSpec,
    build_node,
    root_inode,
    two_nodes,
    with_root,
)

from podpath.snapshot.model import Route, Rule, Snapshot
from podpath.trace.engine import trace
from podpath.trace.model import Branch
from podpath.trace.probe import Probe


def _only(branches: tuple[Branch, ...]) -> Branch:
    assert len(branches) == 1, [b.reason for b in branches]
    return branches[0]


def _kinds(branch: Branch) -> list[str]:
    return [h.kind for h in branch.hops]


def test_same_node_pod_to_pod_through_the_bridge() -> None:
    """Pod a reaches pod b on the same bridge: veth, neighbour, FDB port, veth, local delivery."""
    a, _b = two_nodes()
    b = _only(trace([a], Probe("default/a", "default/b:80")).branches)
    assert b.verdict == "delivered"
    assert "pod default/b" in b.reason
    bridge = next(h for h in b.hops if h.kind == "bridge")
    assert bridge.data["port"] == "veth0001" and bridge.data["flooded"] is False
    neigh = next(h for h in b.hops if h.kind == "neighbour")
    assert neigh.data["ip"] == "10.244.0.6" and neigh.data["lladdr"] == "02:00:00:00:00:41"
    assert _kinds(b)[-1] == "deliver"


def test_unknown_mac_is_flooded_and_says_so() -> None:
    """Without an FDB entry the bridge floods; the trace says so and follows the owning port."""
    snap = build_node(
        NodeSpec(pods=[PodSpec("a", "10.244.0.5"), PodSpec("b", "10.244.0.6")], fdb_known=False)
    )
    b = _only(trace([snap], Probe("default/a", "10.244.0.6:80")).branches)
    bridge = next(h for h in b.hops if h.kind == "bridge")
    assert bridge.data["flooded"] is True and "flooded" in bridge.text
    assert b.verdict == "delivered"


def test_missing_neighbour_entry_says_arp_would_resolve_it() -> None:
    """With no ARP entry the trace names who would answer the ARP request."""
    snap = build_node(
        NodeSpec(
            pods=[PodSpec("a", "10.244.0.5"), PodSpec("b", "10.244.0.6")], neighbours_known=False
        )
    )
    b = _only(trace([snap], Probe("default/a", "10.244.0.6:80")).branches)
    neigh = next(h for h in b.hops if h.kind == "neighbour")
    assert "ARP would be answered by" in neigh.text and neigh.data["lladdr"] == "02:00:00:00:00:41"
    assert b.verdict == "delivered"


def test_cross_node_host_gw_continues_on_the_other_node() -> None:
    """host-gw: node-a routes via node-b's address; the trace continues in node-b's snapshot."""
    a, bn = two_nodes("host-gw")
    b = _only(trace([a, bn], Probe("default/a", "default/c:80")).branches)
    assert b.verdict == "delivered" and "pod default/c" in b.reason
    routes = [h for h in b.hops if h.kind == "route"]
    on_a = next(h for h in routes if h.node == "node-a" and h.data["iif"] == "cni0")
    assert (on_a.data["matched"], on_a.data["gateway"], on_a.data["dev"]) == (
        "10.244.1.0/24",
        "192.168.0.3",
        "eth0",
    )
    leave = next(h for h in b.hops if h.kind == "leave")
    assert leave.data["toward"] == "node-b"


def test_cross_node_without_the_other_snapshot_leaves_the_node() -> None:
    """With only node-a's snapshot the packet leaves via eth0 toward the gateway."""
    a, _ = two_nodes("host-gw")
    b = _only(trace([a], Probe("default/a", "10.244.1.5:80")).branches)
    assert b.verdict == "leaves-node"
    leave = b.hops[-1]
    assert (leave.kind, leave.data["dev"], leave.data["via"], leave.data["toward"]) == (
        "leave",
        "eth0",
        "192.168.0.3",
        None,
    )


def test_cross_node_vxlan_encapsulates_to_the_remote_vtep() -> None:
    """VXLAN: onlink route via flannel.1, VNI and remote VTEP from the FDB, decapsulated on node-b."""
    a, bn = two_nodes("vxlan")
    b = _only(trace([a, bn], Probe("default/a", "default/c:80")).branches)
    assert b.verdict == "delivered"
    vx = [h for h in b.hops if h.kind == "vxlan"]
    assert vx[0].data["vni"] == 1 and vx[0].data["remote"] == "192.168.0.3"
    assert vx[1].node == "node-b" and vx[1].data.get("decap") is True
    route = next(h for h in b.hops if h.kind == "route" and h.data["dev"] == "flannel.1")
    assert route.data["gateway"] == "10.244.1.0"


_VXLAN_BLOCKED = {
    # node-b's host firewall drops the encapsulated UDP as it arrives (firewalld without
    # flannel's port open), or node-a's as it leaves.
    "receiver INPUT": (
        "",
        "*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -p udp -m udp --dport 8472 -j DROP\nCOMMIT\n",
        "node-b",
        "INPUT",
    ),
    "sender OUTPUT": (
        "*filter\n:OUTPUT ACCEPT [0:0]\n-A OUTPUT -d 192.168.0.3/32 -p udp -j REJECT\nCOMMIT\n",
        "",
        "node-a",
        "OUTPUT",
    ),
}


@pytest.mark.parametrize("where", list(_VXLAN_BLOCKED))
def test_a_host_firewall_that_drops_the_vxlan_packet_stops_pod_traffic(where: str) -> None:
    """The encapsulated packet is the kernel's own (UDP from VTEP to VTEP, port 8472): it
    crosses the sender's OUTPUT and POSTROUTING and the receiver's PREROUTING and INPUT.
    The inner packet was followed as though the tunnel had no rules: delivered."""
    rules_a, rules_b, node, hook = _VXLAN_BLOCKED[where]
    a, bn = two_nodes("vxlan", iptables_a=rules_a, iptables_b=rules_b)
    b = _only(trace([a, bn], Probe("default/a", "default/c:80")).branches)
    assert b.verdict == "dropped", b.reason
    assert b.reason.startswith("the VXLAN packet (udp 192.168.0.2 -> 192.168.0.3:8472): "), b.reason
    assert f"at {hook}" in b.reason and b.hops[-1].node == node
    assert b.packet.dst == "10.244.1.5" and b.packet.dport == 80  # the traced packet
    # Without the rule, the tunnel delivers.
    a, bn = two_nodes("vxlan")
    assert _only(trace([a, bn], Probe("default/a", "default/c:80")).branches).verdict == "delivered"


def _vtep_of_node_b(port: int = 8472, vni: int = 1) -> list[Snapshot]:
    """The VXLAN pair, node-b's flannel.1 on another port or VNI."""
    a, bn = two_nodes("vxlan")
    root = next(ns for ns in bn.netns if ns.inode == bn.root_netns)
    links = tuple(
        replace(lk, vxlan=replace(lk.vxlan, port=port, vni=vni)) if lk.vxlan is not None else lk
        for lk in root.links
    )
    return [a, with_root(bn, links=links)]


def test_a_vtep_on_another_udp_port_takes_nothing() -> None:
    """node-b's flannel.1 has VNI 1 but listens on UDP 4789; node-a sends to 8472. The
    kernel finds the VXLAN socket by port first: nothing takes the packet. It was
    decapsulated by VNI alone, and delivered."""
    b = _only(trace(_vtep_of_node_b(port=4789), Probe("default/a", "default/c:80")).branches)
    assert b.verdict == "dropped", b.reason
    assert "takes VXLAN on UDP port 4789, and the packet was sent to port 8472" in b.reason
    assert b.hops[-1].node == "node-b"


def test_a_vtep_of_another_vni_takes_nothing() -> None:
    """node-b's flannel.1 listens on 8472 with VNI 2; node-a sends VNI 1. The VXLAN socket
    finds no device of that VNI and drops the packet (it was left uncertain)."""
    b = _only(trace(_vtep_of_node_b(vni=2), Probe("default/a", "default/c:80")).branches)
    assert b.verdict == "dropped", b.reason
    assert "has no VXLAN device with VNI 1 (its VTEPs: flannel.1 VNI 2 on UDP 8472)" in b.reason
    assert "no VXLAN device with that VNI takes it" in b.reason
    assert b.hops[-1].node == "node-b"


def test_blackhole_route_drops() -> None:
    """A blackhole route in the node drops the forwarded packet and names the route."""
    a, _ = two_nodes()
    a = with_root(
        a,
        routes=next(n for n in a.netns if n.inode == a.root_netns).routes
        + (Route(a.root_netns, 4, MAIN, "blackhole", "10.99.0.0/16"),),
    )
    b = _only(trace([a], Probe("default/a", "10.99.0.1:80")).branches)
    assert b.verdict == "dropped" and "blackhole" in b.reason
    assert b.hops[-1].kind == "drop"


def test_unreachable_route_drops() -> None:
    """An unreachable route drops with host unreachable."""
    a, _ = two_nodes()
    a = with_root(
        a,
        routes=next(n for n in a.netns if n.inode == a.root_netns).routes
        + (Route(a.root_netns, 4, MAIN, "unreachable", "10.98.0.0/16"),),
    )
    b = _only(trace([a], Probe("default/a", "10.98.0.1:80")).branches)
    assert b.verdict == "dropped" and "unreachable" in b.reason


def test_policy_routing_by_fwmark_from_a_mangle_rule() -> None:
    """A mangle OUTPUT MARK makes the node reroute through the fwmark rule's table."""
    mangle = "\n".join(
        [
            "*mangle",
            ":PREROUTING ACCEPT [0:0]",
            ":INPUT ACCEPT [0:0]",
            ":FORWARD ACCEPT [0:0]",
            ":OUTPUT ACCEPT [0:0]",
            ":POSTROUTING ACCEPT [0:0]",
            "-A OUTPUT -d 203.0.113.0/24 -j MARK --set-xmark 0x1/0xffffffff",
            "COMMIT",
            "",
        ]
    )
    spec = NodeSpec(
        iptables=mangle,
        rules=(
            Rule(root_inode(0), 4, 0, "lookup", table=255),
            Rule(root_inode(0), 4, 100, "lookup", table=100, fwmark=0x1, fwmask=0xFFFFFFFF),
            Rule(root_inode(0), 4, 32766, "lookup", table=254),
        ),
        extra_routes=(
            Route(root_inode(0), 4, 100, "unicast", "0.0.0.0/0", gateway="192.168.0.254", dev=ETH0),
        ),
    )
    snap = build_node(spec)
    b = _only(trace([snap], Probe("node", "203.0.113.5:443")).branches)
    routes = [h for h in b.hops if h.kind == "route"]
    assert routes[0].data["table"] == 254 and routes[-1].data["table"] == 100
    assert routes[-1].data["gateway"] == "192.168.0.254"
    assert b.verdict == "leaves-node"


def test_ip_forward_off_drops_forwarded_packets() -> None:
    """With net.ipv4.ip_forward=0 the node does not forward pod traffic."""
    a, _ = two_nodes()
    a = replace(a, node=replace(a.node, ip_forward=0))
    b = _only(trace([a], Probe("default/a", "10.244.1.5:80")).branches)
    assert b.verdict == "dropped" and "ip_forward" in b.reason
