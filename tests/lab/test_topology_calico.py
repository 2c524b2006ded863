"""A Calico-shaped lab (3 nodes, dual-stack, vxlan.calico): the trace against the kernel and real traffic.

Plus the issue's hand-built case on a private node: a cali veth with proxy_arp=1 and a
pod default route `via 169.254.1.1 onlink`, on a node without any route covering
169.254.1.1 -- proxy ARP never answers, the real probe fails, and the trace must say
so; with a covering route the trace, the kernel's neighbour entry and the probe agree.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest
from topology_proof import (
    RUN_ID,
    assert_pod_to_pod,
    assert_routes_equal_kernel,
    assert_service,
    module_lab,
    ordered,
    snapshots,
    topology_fixtures,
    web_pods,
)

from podpath.analysis.dataplane import detect
from podpath.analysis.index import SnapshotIndex
from podpath.draw.build import build_map
from podpath.draw.outline import outline
from podpath.trace import sysctls
from podpath.trace.engine import trace
from podpath.trace.probe import Probe

if TYPE_CHECKING:
    from podpath.lab import Lab

pytestmark = pytest.mark.lab


# 3 Calico nodes, dual-stack, VXLAN between them.
lab, indexes = topology_fixtures(
    "calico", nodes=3, pods=3, services=3, cni="calico", ip_family="dual", runtime="containerd"
)


def test_nodes_have_calicos_shape(lab: Lab, indexes: dict[str, SnapshotIndex]) -> None:
    """cali* veths with ee:ee:ee:ee:ee:ee and proxy_arp=1, 169.254.1.1 routes, vxlan.calico, blackholes."""
    index = indexes["node1"]
    root = index.root_netns
    assert root is not None
    cali = [lk for lk in root.links if lk.name.startswith("cali")]
    assert len(cali) == 3 and {lk.mac for lk in cali} == {"ee:ee:ee:ee:ee:ee"}
    assert all(sysctls.proxy_arp(root, lk) for lk in cali)
    assert any(lk.name == "vxlan.calico" and lk.vxlan and lk.vxlan.vni == 4096 for lk in root.links)
    blackholes = {r.dst for r in root.routes if r.type == "blackhole"}
    assert blackholes == {"10.244.0.0/24", "fd00:10:244::/64"}
    pod = web_pods(lab, "node1")[0]
    netns = pod.netns_path.rsplit("/", 1)[1]
    routes = json.loads(lab.exec("node1", ["ip", "-n", netns, "-j", "route"]).stdout)
    assert {"dst": "default", "gateway": "169.254.1.1", "dev": "eth0", "flags": []} in routes
    assert detect(index).cni == "calico"


@pytest.mark.parametrize("family", [4, 6])
def test_pod_to_pod_on_the_node(lab: Lab, indexes: dict[str, SnapshotIndex], family: int) -> None:
    """Same node: through proxy ARP, the host and the other cali veth; kernel and traffic agree."""
    src, dst = web_pods(lab, "node1")[:2]
    branch = assert_pod_to_pod(lab, indexes, src, dst, family)
    assert any(h.kind == "link" and str(h.data["to"]).startswith("cali") for h in branch.hops)


@pytest.mark.parametrize("family", [4, 6])
@pytest.mark.parametrize("node", ["node2", "node3"])
def test_pod_to_pod_across_nodes(
    lab: Lab, indexes: dict[str, SnapshotIndex], family: int, node: str
) -> None:
    """Across nodes through vxlan.calico (vxlan-v6.calico for IPv6), decapsulated on the other node."""
    src, dst = web_pods(lab, "node1")[0], web_pods(lab, node)[0]
    branch = assert_pod_to_pod(lab, indexes, src, dst, family)
    device = "vxlan.calico" if family == 4 else "vxlan-v6.calico"
    assert [h.data["dev"] for h in branch.hops if h.kind == "vxlan"] == [device, device]


@pytest.mark.parametrize("family", [4, 6])
def test_service_and_back(lab: Lab, indexes: dict[str, SnapshotIndex], family: int) -> None:
    """pod -> web Service (IPv4 and IPv6 ClusterIP): endpoints, real traffic, conntrack's reply tuple."""
    assert_service(lab, indexes, web_pods(lab, "node1")[0], family)


def test_node_to_pod_source_is_the_kernels(lab: Lab, indexes: dict[str, SnapshotIndex]) -> None:
    """From the node itself: cali veths have no address, the chosen source equals `ip route get`'s."""
    dst = web_pods(lab, "node1")[0]
    result = trace(ordered(indexes), Probe("node1", f"{dst.ip}:80"))
    (branch,) = result.branches
    assert branch.verdict == "delivered", branch.reason
    assert branch.hops[0].data["chosen_src"] == lab.node("node1").address
    assert assert_routes_equal_kernel(lab, indexes, result.branches) >= 2


# --- the hand-built case: no route covers 169.254.1.1 ----------------------------

HAND = "handpod"
HAND_IP = "10.244.0.50"
HAND_VETH = "cali1234567890a"


def test_map_draws_the_routed_nodes_as_the_kernel_has_them(
    lab: Lab, indexes: dict[str, SnapshotIndex]
) -> None:
    """No bridge; every cali veth and pod address drawn; both Calico VXLAN devices join every pair."""
    m = build_map([i.snapshot for i in ordered(indexes)])
    assert not [e for e in m.elements if e.kind == "bridge"]
    for number, node in enumerate(sorted(indexes)):
        kernel = json.loads(lab.exec(node, ["ip", "-j", "link", "show", "type", "veth"]).stdout)
        cali = {lk["ifname"] for lk in kernel if lk["ifname"].startswith("cali")}
        drawn = {e.name for e in m.elements if e.node == number and e.kind == "veth"}
        assert cali and cali == drawn
        pods = {e.pod: set(e.addresses) for e in m.elements if e.node == number and e.kind == "pod"}
        for pod in lab.pods_on(node):
            assert set(pod.ips) <= pods[pod.ref], pod.ref
    joined: dict[str, set[frozenset[int | None]]] = {}
    for tunnel in (c for c in m.connections if c.kind == "tunnel"):
        ends = [m.element(tunnel.source), m.element(tunnel.target)]
        names = {e.name for e in ends if e is not None}
        assert len(names) == 1 and len(ends) == 2, tunnel  # a device joins its own kind
        joined.setdefault(names.pop() or "", set()).add(frozenset(e.node for e in ends if e))
    pairs = {frozenset(pair) for pair in ((0, 1), (0, 2), (1, 2))}
    assert joined == {"vxlan.calico": pairs, "vxlan-v6.calico": pairs}


def test_outline_of_two_of_three_nodes_names_the_third_as_their_tunnels_end(
    indexes: dict[str, SnapshotIndex],
) -> None:
    """With node3's snapshot left out, its VTEP is the far end of node1's and node2's tunnels."""
    first_two = [i.snapshot for i in ordered(indexes)][:2]
    third = ordered(indexes)[2].snapshot
    rows = outline(build_map(first_two))
    underlay = next(
        a.address
        for ns in third.netns
        for link in ns.links
        if link.name == "eth0" and ns.inode == third.root_netns
        for a in link.addresses
        if a.family == 4
    )
    vtep = next(i for i, r in enumerate(rows) if r.text.startswith(f"VTEP {underlay} "))
    assert rows[vtep + 1].text == "tunnels to it from node1, node2"
    assert rows[vtep + 1].depth == rows[vtep].depth + 1


@pytest.fixture(scope="module")
def bare() -> Iterator[Lab]:
    """One Calico node whose default route is removed, with a pod built by hand."""
    from podpath.lab import LabSpec

    spec = LabSpec(f"{RUN_ID}-calico-bare", nodes=1, pods=2, services=2, cni="calico")
    with module_lab(spec) as built:
        script = (
            "set -e\n"
            "ip route del default\n"
            f"ip netns add {HAND}\n"
            f"ip link add {HAND_VETH} type veth peer name eth0 netns {HAND}\n"
            f"echo 1 > /proc/sys/net/ipv4/conf/{HAND_VETH}/proxy_arp\n"
            f"ip link set {HAND_VETH} up\n"
            f"ip route add {HAND_IP}/32 dev {HAND_VETH} scope link\n"
            f"ip -n {HAND} link set lo up\n"
            f"ip -n {HAND} link set eth0 up\n"
            f"ip -n {HAND} addr add {HAND_IP}/32 dev eth0\n"
            f"ip -n {HAND} route add default via 169.254.1.1 dev eth0 onlink\n"
        )
        built.exec("node1", ["sh", "-c", script])
        yield built


def _hand_neighbour(lab: Lab) -> list[dict[str, Any]]:
    out = lab.exec("node1", ["ip", "-n", HAND, "-j", "neigh", "show", "169.254.1.1"]).stdout
    return list(json.loads(out)) if out.strip() else []


def test_handbuilt_pod_without_a_covering_route_is_not_delivered(bare: Lab) -> None:
    """The trace from the hand-built netns says dropped (proxy ARP stays silent); so does the kernel."""
    target = web_pods(bare, "node1")[0]
    indexes = snapshots(bare)
    result = trace(ordered(indexes), Probe(HAND_IP, f"{target.ip}:80"))
    (branch,) = result.branches
    assert result.probe["src_label"] == f"netns /run/netns/{HAND}"
    assert branch.verdict == "dropped", branch.reason
    assert "no route to 169.254.1.1" in branch.reason
    answer = bare.probe(f"node1:/run/netns/{HAND}", target.ip, 80)
    assert not answer.ok
    states = {s for n in _hand_neighbour(bare) for s in n.get("state", [])}
    assert states & {"FAILED", "INCOMPLETE"}, _hand_neighbour(bare)


def test_handbuilt_pod_with_a_covering_route_is_answered_by_proxy_arp(bare: Lab) -> None:
    """With a route covering 169.254.1.1 the trace predicts the proxy ARP answer the kernel then gets."""
    bare.exec("node1", ["ip", "route", "add", "default", "via", "172.18.0.1", "dev", "eth0"])
    bare.exec("node1", ["ip", "-n", HAND, "neigh", "flush", "dev", "eth0"])
    target = web_pods(bare, "node1")[0]
    indexes = snapshots(bare)
    result = trace(ordered(indexes), Probe(f"netns:{HAND}", f"{target.ip}:80"))
    (branch,) = result.branches
    assert branch.verdict == "delivered", branch.reason
    arp = next(h for h in branch.hops if h.kind == "neighbour")
    veth = indexes["node1"].link_by_name(indexes["node1"].snapshot.root_netns, HAND_VETH)
    assert veth is not None
    assert arp.data["lladdr"] == veth.mac and "proxy ARP" in arp.text
    answer = bare.probe(f"node1:/run/netns/{HAND}", target.ip, 80)
    assert answer.ok and answer.served_by == target.ref, answer.error
    (entry,) = _hand_neighbour(bare)
    assert entry["lladdr"] == arp.data["lladdr"]
    assert assert_routes_equal_kernel(bare, indexes, result.branches) >= 3
