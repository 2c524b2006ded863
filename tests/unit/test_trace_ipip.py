"""Calico's IPIP mode on the routes of a real node: the other nodes' blocks `via NODE dev
tunl0 proto bird onlink`, its own block a blackhole (fixtures/realworld/calico, from
Calico's troubleshooting guide; SOURCES.md).

This kernel has no ipip module, so IP in IP is modelled: the trace wraps the packet in
an IPv4 header to the route's gateway, routes that over the underlay, and lets the
receiving node's tunl0 unwrap it. What the dump does not show (the nodes' eth0 and
tunl0, the pods, the way back) is built minimally here, as Calico makes it.
"""

from __future__ import annotations

from dataclasses import replace

from realworld_ip import REALWORLD, routes
from routed_factory import RoutedNode, RoutedPod, build, root_inode

from podpath.analysis.index import SnapshotIndex
from podpath.doctor import diagnose
from podpath.doctor.causes import Aim
from podpath.doctor.mtu import path_mtu_cause
from podpath.snapshot.model import Address, Link, Route, Snapshot
from podpath.trace.engine import trace
from podpath.trace.model import Branch
from podpath.trace.probe import Probe

ROUTES = REALWORLD / "calico" / "calico-docs-ipip-bird-routes.txt"
TUNL0 = 4  # ifindex of tunl0 on each node
CLIENT, SERVER = "192.168.231.2", "192.168.66.130"


def _tunl0(node: int, block_address: str, mtu: int = 1480) -> Link:
    """Calico's tunl0: the fallback IP-in-IP device, NOARP, an address of the node's block."""
    flags = ("NOARP", "UP", "LOWER_UP")
    address = (Address(4, block_address, 32),)
    return Link(
        root_inode(node), TUNL0, "tunl0", "ipip", None, mtu, "UNKNOWN", flags, addresses=address
    )


def _node_11(mtu: int = 1480) -> Snapshot:
    """10.0.0.11, whose `ip r | grep bird` the fixture is."""
    spec = RoutedNode(
        number=1,
        hostname="ip-10-0-0-11",
        address="10.0.0.11",
        default_gateway="10.0.0.1",
        pods=[RoutedPod("client", CLIENT)],
        extra_links=(_tunl0(1, "192.168.231.0", mtu),),
        extra_routes=tuple(routes(ROUTES, root_inode(1), {"tunl0": TUNL0})),
    )
    return build(spec)


def _node_12(with_tunl0: bool = True) -> Snapshot:
    """10.0.0.12, owner of 192.168.66.128/26, with the route back the same BGP mesh gives it."""
    back = Route(
        root_inode(2),
        4,
        254,
        "unicast",
        "192.168.231.0/26",
        gateway="10.0.0.11",
        dev=TUNL0,
        protocol="bird",
        flags=("onlink",),
    )
    spec = RoutedNode(
        number=2,
        hostname="ip-10-0-0-12",
        address="10.0.0.12",
        default_gateway="10.0.0.1",
        pods=[RoutedPod("server", SERVER)],
        extra_links=(_tunl0(2, "192.168.66.128"),) if with_tunl0 else (),
        extra_routes=(back,),
    )
    return build(spec)


def _only(snaps: list[Snapshot], destination: str) -> Branch:
    (branch,) = trace(
        [SnapshotIndex(s) for s in snaps], Probe("default/client", destination)
    ).branches
    return branch


def test_the_fixtures_routes_read_as_calico_writes_them() -> None:
    """Two blocks via their nodes on tunl0, onlink, by bird; the node's own block a blackhole."""
    found = routes(ROUTES, root_inode(1), {"tunl0": TUNL0})
    assert [(r.dst, r.type, r.gateway, r.dev, r.protocol, r.flags) for r in found] == [
        ("192.168.66.128/26", "unicast", "10.0.0.12", TUNL0, "bird", ("onlink",)),
        ("192.168.180.192/26", "unicast", "10.0.0.10", TUNL0, "bird", ("onlink",)),
        ("192.168.231.0/26", "blackhole", None, None, "bird", ()),
    ]


def test_a_pod_on_another_node_is_reached_wrapped_in_ip_in_ip() -> None:
    """Pod -> pod across nodes: the route to the other block is tunl0's, the packet is
    wrapped to 10.0.0.12, the outer packet leaves by eth0, 10.0.0.12's tunl0 unwraps it
    and routes it to the pod."""
    branch = _only([_node_11(), _node_12()], f"{SERVER}:80")
    assert branch.verdict == "delivered", branch.reason
    kinds = [(h.kind, h.node) for h in branch.hops]
    wrap = kinds.index(("ipip", "ip-10-0-0-11"))
    unwrap = kinds.index(("ipip", "ip-10-0-0-12"))
    assert wrap < unwrap and ("leave", "ip-10-0-0-11") in kinds[wrap:unwrap]
    encap, decap = branch.hops[wrap], branch.hops[unwrap]
    assert encap.data == {"dev": "tunl0", "remote": "10.0.0.12"}
    assert "encapsulate in IPv4 (protocol 4) to 10.0.0.12" in encap.text
    underlay = branch.hops[wrap + 1]
    assert underlay.kind == "route" and underlay.data["dev"] == "eth0", underlay.text
    assert decap.data["decap"] is True and decap.data["dev"] == "tunl0"
    assert branch.hops[-1].kind == "deliver" and branch.hops[-1].node == "ip-10-0-0-12"


def test_an_unused_address_of_the_nodes_own_block_is_blackholed() -> None:
    """The fixture's blackhole: an address of the node's own block that no pod holds."""
    branch = _only([_node_11(), _node_12()], "192.168.231.50:80")
    assert branch.verdict == "dropped" and "blackhole" in branch.reason, branch.reason


def test_a_node_without_an_ip_in_ip_device_cannot_unwrap_it() -> None:
    """The receiving node has no tunl0 (nor any IP-in-IP device): the kernel answers
    protocol unreachable, on that node (it was left uncertain)."""
    branch = _only([_node_11(), _node_12(with_tunl0=False)], f"{SERVER}:80")
    assert branch.verdict == "dropped"
    assert "no IP-in-IP device (tunl0)" in branch.reason, branch.reason
    assert "protocol unreachable" in branch.reason and branch.hops[-1].data["by"] == "ipip"
    assert branch.hops[-1].node != branch.hops[0].node
    nodes = [SnapshotIndex(_node_11()), SnapshotIndex(_node_12(with_tunl0=False))]
    found = {(f.check, f.node) for f in diagnose(nodes).findings if f.grade == "critical"}
    assert ("ipip-device-missing", "ip-10-0-0-12") in found, found


def test_a_gatewayless_ip_in_ip_route_is_uncertain() -> None:
    """`dev tunl0` without `via`: the remote end is the tunnel's own, not collected."""
    node = _node_11()
    root = next(ns for ns in node.netns if ns.inode == node.root_netns)
    bare = tuple(replace(r, gateway=None) if r.dev == TUNL0 else r for r in root.routes)
    node = replace(
        node, netns=tuple(replace(ns, routes=bare) if ns is root else ns for ns in node.netns)
    )
    branch = _only([node, _node_12()], f"{SERVER}:80")
    assert branch.verdict == "uncertain" and "remote end" in branch.reason, branch.reason


def test_a_tunl0_as_wide_as_the_underlay_is_an_mtu_warning() -> None:
    """Pods and tunl0 at 1500 on a 1500 underlay: 1520-byte outer packets, a warning;
    at Calico's 1480 the wrapped packet fits."""
    aim = Aim("pod", "pod default/server", SERVER, 80, "tcp")
    wide = [SnapshotIndex(_pod_mtu(_node_11(mtu=1500), 1500)), SnapshotIndex(_node_12())]
    (branch,) = trace(wide, Probe("default/client", f"{SERVER}:80")).branches
    cause = path_mtu_cause(branch, aim, wide)
    assert cause is not None and "IP-in-IP packets of 1520 bytes" in cause.text, cause
    narrow = [SnapshotIndex(_pod_mtu(_node_11(), 1480)), SnapshotIndex(_node_12())]
    (fits,) = trace(narrow, Probe("default/client", f"{SERVER}:80")).branches
    assert fits.verdict == "delivered" and path_mtu_cause(fits, aim, narrow) is None


def _pod_mtu(snap: Snapshot, mtu: int) -> Snapshot:
    """The pods' interfaces and their host veths at `mtu`."""

    def sized(root: bool, link: Link) -> Link:
        return (
            replace(link, mtu=mtu)
            if link.kind == "veth" or (not root and link.name != "lo")
            else link
        )

    return replace(
        snap,
        netns=tuple(
            replace(ns, links=tuple(sized(ns.inode == snap.root_netns, lk) for lk in ns.links))
            for ns in snap.netns
        ),
    )
