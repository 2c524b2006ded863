"""A namespace wired to the network outside the node (a client on the lab's underlay):
its veth's peer is in no namespace of the node, and the trace follows the frame to the
node that holds the next hop's address instead of stopping unsure."""

from __future__ import annotations

from dataclasses import replace

from trace_factory import ETH0, mac, two_nodes

from podpath.snapshot.model import Address, Link, Neighbour, NetNamespace, Route, Snapshot
from podpath.trace.engine import trace
from podpath.trace.probe import Probe

OUTSIDE = 0x0C11E47
CLIENT = "192.168.0.50"


def _with_client(node: Snapshot, gateway: str, gateway_mac: str | None) -> Snapshot:
    """node with an `outside` namespace: eth0 (a veth whose peer is elsewhere) on the
    nodes' network, a route to 203.0.113.9 via `gateway` and, when known, its MAC."""
    lo = Link(OUTSIDE, 1, "lo", None, "00:00:00:00:00:00", 65536, "UNKNOWN", ("LOOPBACK", "UP"))
    eth0 = Link(
        OUTSIDE,
        2,
        "eth0",
        "veth",
        "02:00:00:00:0c:11",
        1500,
        "UP",
        ("UP",),
        link=7,
        link_netnsid=0,
        addresses=(Address(4, CLIENT, 24),),
    )
    routes = (
        Route(OUTSIDE, 4, 255, "local", f"{CLIENT}/32", dev=2, scope="host", prefsrc=CLIENT),
        Route(OUTSIDE, 4, 254, "unicast", "192.168.0.0/24", dev=2, scope="link", prefsrc=CLIENT),
        Route(OUTSIDE, 4, 254, "unicast", "203.0.113.9/32", gateway=gateway, dev=2),
    )
    neighbours = (
        (Neighbour(OUTSIDE, 4, 2, gateway, gateway_mac, ("REACHABLE",)),) if gateway_mac else ()
    )
    ns = NetNamespace(
        OUTSIDE,
        paths=("/run/netns/outside",),
        links=(lo, eth0),
        routes=routes,
        neighbours=neighbours,
    )
    return replace(node, netns=(*node.netns, ns))


def test_a_client_outside_the_node_reaches_the_node_holding_its_next_hop() -> None:
    """From netns:outside on node-a via node-b's address: the frame leaves and node-b
    receives it on eth0 (no 'peer not in the snapshot')."""
    a, b = two_nodes()
    a = _with_client(a, "192.168.0.3", mac(1, ETH0))
    (branch,) = trace([a, b], Probe("netns:outside", "203.0.113.9:80")).branches
    assert "not in the snapshot" not in branch.reason, branch.reason
    assert any(h.kind == "leave" and "node-b" in h.text for h in branch.hops), branch.hops
    assert branch.hops[-1].node == "node-b", branch.hops[-1]


def test_a_next_hop_no_snapshot_holds_still_stops_unsure() -> None:
    """The same client toward a router no loaded node holds: the trace cannot follow it."""
    a, b = two_nodes()
    a = _with_client(a, "192.168.0.77", "02:00:00:00:00:77")
    (branch,) = trace([a, b], Probe("netns:outside", "203.0.113.9:80")).branches
    assert branch.verdict == "uncertain", branch.reason
    assert "the peer of veth eth0 is not in the snapshot" in branch.reason
