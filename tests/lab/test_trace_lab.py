"""Proof of the trace engine against the kernel of real lab nodes.

Snapshots are taken by `podpath snapshot` inside each node; every route decision the
engine makes is compared with `ip -j route get` in the same namespace; Service traces
are compared with real traffic (`lab.probe`) and the real conntrack table.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

from podpath.analysis.index import SnapshotIndex
from podpath.snapshot import codec
from podpath.trace.engine import trace
from podpath.trace.model import Branch, Hop
from podpath.trace.probe import Probe

if TYPE_CHECKING:
    from podpath.lab import Lab, PodRecord

pytestmark = pytest.mark.lab

NODES = ("node1", "node2")


@pytest.fixture(scope="module")
def indexes(shared_lab: Lab, run_podpath: Any) -> dict[str, SnapshotIndex]:
    """A snapshot of each lab node, taken by the real CLI inside the node."""
    web = shared_lab.service("default/web")[0]
    for node in NODES:
        first = shared_lab.pods_on(node)[0]
        shared_lab.probe(first.ref, web.cluster_ip, web.port)  # warm neighbours and FDBs
    out: dict[str, SnapshotIndex] = {}
    for node in NODES:
        done = run_podpath(shared_lab, node, "snapshot", "-o", "-")
        assert done.returncode == 0, done.stderr
        out[node] = SnapshotIndex(codec.loads(done.stdout))
    return out


def _both(indexes: dict[str, SnapshotIndex]) -> list[SnapshotIndex]:
    return [indexes[n] for n in NODES]


def _netns_path(index: SnapshotIndex, inode: int) -> str | None:
    """How to enter a namespace inside the node: None for the node's own."""
    if inode == index.snapshot.root_netns:
        return None
    pod = index.pods_by_netns.get(inode)
    if pod is not None and pod.netns_path:
        return pod.netns_path
    ns = index.netns_by_inode.get(inode)
    if ns is not None and ns.paths:
        return ns.paths[0]
    raise AssertionError(f"no path to enter netns {inode}")


def _kernel_route(lab: Lab, node: str, index: SnapshotIndex, hop: Hop) -> dict[str, Any]:
    """`ip -j route get` for the same question the hop answered, in the same namespace."""
    d = hop.data
    argv = ["ip", "-j", "route", "get", str(d["dst"])]
    if d.get("iif"):
        argv += ["from", str(d["src"]), "iif", str(d["iif"])]
    elif d.get("src") and d.get("type") != "local":
        argv += ["from", str(d["src"])]
    if d.get("mark"):
        argv += ["mark", str(d["mark"])]
    path = _netns_path(index, int(str(d["netns"])))
    if path is not None:
        argv = ["nsenter", f"--net={path}", "--", *argv]
    done = lab.exec(node, argv, check=False)
    # The kernel answers a lookup that finds nothing with ENETUNREACH: the engine's "none".
    if done.returncode != 0 and "Network is unreachable" in done.stderr:
        return {"type": "none"}
    assert done.returncode == 0, f"{argv}: {done.stderr}"
    (route,) = json.loads(done.stdout)
    return dict(route)


def _route_hops(branch: Branch) -> list[Hop]:
    # The underlay lookup of a VXLAN packet has no pod source: compared like the others.
    return [h for h in branch.hops if h.kind == "route"]


def _assert_routes_equal_kernel(
    lab: Lab, indexes: dict[str, SnapshotIndex], branches: tuple[Branch, ...]
) -> int:
    by_host = {indexes[n].snapshot.node.hostname: n for n in NODES}
    checked = 0
    for branch in branches:
        for hop in _route_hops(branch):
            node = by_host[hop.node]
            kernel = _kernel_route(lab, node, indexes[node], hop)
            want_type = kernel.get("type", "unicast")
            assert hop.data["type"] == want_type, (hop.text, kernel)
            if want_type == "unicast":
                assert hop.data["dev"] == kernel.get("dev"), (hop.text, kernel)
                assert hop.data["gateway"] == kernel.get("gateway"), (hop.text, kernel)
            checked += 1
    return checked


def _destinations(lab: Lab) -> list[str]:
    node2 = lab.node("node2")
    same = lab.pods_on("node1")[1]
    other = lab.pods_on("node2")[0]
    web = lab.service("default/web")[0]
    return [
        f"{same.ip}:80",
        f"{other.ip}:80",
        f"{web.cluster_ip}:{web.port}",
        f"{node2.address}:22",
        "198.51.100.7:80",
    ]


def test_pod_route_decisions_equal_ip_route_get(
    shared_lab: Lab, indexes: dict[str, SnapshotIndex]
) -> None:
    """From a pod: every route hop (pod netns, node root netns, both nodes) equals `ip route get`."""
    src = shared_lab.pods_on("node1")[0]
    checked = 0
    for dst in _destinations(shared_lab):
        result = trace(_both(indexes), Probe(src.ref, dst))
        checked += _assert_routes_equal_kernel(shared_lab, indexes, result.branches)
    assert checked >= 10


def test_node_route_decisions_equal_ip_route_get(
    shared_lab: Lab, indexes: dict[str, SnapshotIndex]
) -> None:
    """From the node itself: route hops equal `ip route get` too."""
    checked = 0
    for dst in _destinations(shared_lab):
        result = trace(_both(indexes), Probe(indexes["node1"].snapshot.node.hostname, dst))
        checked += _assert_routes_equal_kernel(shared_lab, indexes, result.branches)
    assert checked >= 5


def test_service_branches_are_the_endpoints_with_equal_shares(
    shared_lab: Lab, indexes: dict[str, SnapshotIndex]
) -> None:
    """A Service trace lists exactly the Service's endpoints, each with probability 1/n."""
    web = shared_lab.service("default/web")[0]
    src = shared_lab.pods_on("node1")[0]
    result = trace(_both(indexes), Probe(src.ref, f"{web.cluster_ip}:{web.port}"))
    got = {(b.packet.dst, b.packet.dport): b.probability for b in result.branches}
    assert set(got) == set(web.endpoints)
    for p in got.values():
        assert abs(p - 1 / len(web.endpoints)) < 1e-6
    assert all(b.verdict == "delivered" for b in result.branches), [
        b.reason for b in result.branches
    ]


def test_real_traffic_lands_on_listed_endpoints(
    shared_lab: Lab, indexes: dict[str, SnapshotIndex]
) -> None:
    """Repeated real probes land only on endpoints the trace listed, and reach all of them."""
    web = shared_lab.service("default/web")[0]
    src = shared_lab.pods_on("node1")[0]
    result = trace(_both(indexes), Probe(src.ref, f"{web.cluster_ip}:{web.port}"))
    listed = {b.end for b in result.branches}
    pods_by_ip = {p.ip: p.ref for p in shared_lab.pods}
    want = {pods_by_ip[b.packet.dst] for b in result.branches}
    seen: set[str] = set()
    for _ in range(60):
        answer = shared_lab.probe(src.ref, web.cluster_ip, web.port)
        assert answer.ok, answer.error
        assert answer.served_by in want, (answer.served_by, want)
        seen.add(answer.served_by)
        if seen == want:
            break
    assert seen == want and len(listed) == len(want)


def test_conntrack_reply_tuple_equals_the_traced_reply(
    shared_lab: Lab, indexes: dict[str, SnapshotIndex]
) -> None:
    """The kernel's conntrack reply tuple for a real Service connection is one the trace predicted."""
    web = shared_lab.service("default/web")[0]
    src = shared_lab.pods_on("node1")[0]
    result = trace(_both(indexes), Probe(src.ref, f"{web.cluster_ip}:{web.port}"), reply=True)
    predicted = {(b.packet.dst, b.packet.dport, b.packet.src) for b in result.branches}
    for b in result.branches:
        (reply,) = b.reply
        assert reply.verdict == "delivered", reply.reason
        assert (reply.packet.src, reply.packet.sport, reply.packet.dst) == (
            web.cluster_ip,
            web.port,
            src.ip,
        )
    shared_lab.probe(src.ref, web.cluster_ip, web.port)
    done = shared_lab.exec(
        "node1",
        ["conntrack", "-L", "-p", "tcp", "--orig-dst", web.cluster_ip, "--orig-src", src.ip],
        check=False,
    )
    from podpath.conntrack import parse_conntrack

    entries = parse_conntrack(done.stdout)
    assert entries, done.stderr
    for e in entries:
        assert (e.reply.src, e.reply.sport, e.reply.dst) in predicted


def test_live_trace_cli_inside_a_node(shared_lab: Lab, run_podpath: Any) -> None:
    """`podpath trace --json` on the live node lists the web Service's endpoints with 1/n each."""
    web = shared_lab.service("default/web")[0]
    src = shared_lab.pods_on("node1")[0]
    done = run_podpath(
        shared_lab,
        "node1",
        "trace",
        "--from",
        src.ref,
        "--to",
        f"{web.cluster_ip}:{web.port}",
        "--json",
        "--reply",
    )
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    finals = {(b["final"]["dst"], b["final"]["dport"]) for b in data["branches"]}
    assert finals == set(web.endpoints)
    for b in data["branches"]:
        assert abs(b["probability"] - 1 / len(web.endpoints)) < 1e-6


# --- host-gw: the same proofs on a private lab whose pod CIDRs are routed via the underlay.

HOSTGW_LAB = f"t{os.getpid()}-trace-hostgw"


def _web_pod(lab: Lab, node: str) -> PodRecord:
    """A pod on `node` that serves HTTP on port 80 (coredns pods do not)."""
    return next(p for p in lab.pods_on(node) if p.app == "web")


@pytest.fixture(scope="module")
def hostgw_lab() -> Iterator[Lab]:
    """A private 2-node host-gw lab for this module (the shared lab is VXLAN)."""
    from podpath.lab import LabSpec, running_lab

    with running_lab(LabSpec(HOSTGW_LAB, nodes=2, pods=2, services=3, overlay="host-gw")) as lab:
        yield lab


@pytest.fixture(scope="module")
def hostgw_indexes(hostgw_lab: Lab, run_podpath: Any) -> dict[str, SnapshotIndex]:
    """Snapshots of both host-gw nodes, taken by the real CLI inside each node."""
    web = hostgw_lab.service("default/web")[0]
    for node, other in zip(NODES, reversed(NODES), strict=True):
        first = _web_pod(hostgw_lab, node)
        remote = _web_pod(hostgw_lab, other)
        # Warm the underlay neighbours (node -> other node) and the bridge FDBs.
        assert hostgw_lab.probe(first.ref, remote.ip, 80).ok
        hostgw_lab.probe(first.ref, web.cluster_ip, web.port)
    out: dict[str, SnapshotIndex] = {}
    for node in NODES:
        done = run_podpath(hostgw_lab, node, "snapshot", "-o", "-")
        assert done.returncode == 0, done.stderr
        out[node] = SnapshotIndex(codec.loads(done.stdout))
    return out


def test_hostgw_lab_has_no_overlay_device(hostgw_lab: Lab) -> None:
    """The host-gw lab routes the other node's pod CIDR via its underlay address, no VXLAN."""
    node2 = hostgw_lab.node("node2")
    done = hostgw_lab.exec("node1", ["ip", "-j", "route", "show", node2.pod_cidr])
    (route,) = json.loads(done.stdout)
    assert (route["gateway"], route["dev"]) == (node2.address, "eth0")
    links = json.loads(
        hostgw_lab.exec("node1", ["ip", "-j", "link", "show", "type", "vxlan"]).stdout
    )
    assert links == []


def test_hostgw_pod_route_decisions_equal_ip_route_get(
    hostgw_lab: Lab, hostgw_indexes: dict[str, SnapshotIndex]
) -> None:
    """host-gw, from a pod: every route hop on both nodes equals `ip route get`."""
    src = hostgw_lab.pods_on("node1")[0]
    checked = 0
    for dst in _destinations(hostgw_lab):
        result = trace(_both(hostgw_indexes), Probe(src.ref, dst))
        checked += _assert_routes_equal_kernel(hostgw_lab, hostgw_indexes, result.branches)
    assert checked >= 10


def test_hostgw_node_route_decisions_equal_ip_route_get(
    hostgw_lab: Lab, hostgw_indexes: dict[str, SnapshotIndex]
) -> None:
    """host-gw, from each node's root netns: route hops equal `ip route get`."""
    checked = 0
    for node in NODES:
        me = hostgw_indexes[node].snapshot.node.hostname
        for dst in _destinations(hostgw_lab):
            result = trace(_both(hostgw_indexes), Probe(me, dst))
            checked += _assert_routes_equal_kernel(hostgw_lab, hostgw_indexes, result.branches)
    assert checked >= 10


def test_hostgw_cross_node_pod_trace_crosses_via_the_underlay_gateway(
    hostgw_lab: Lab, hostgw_indexes: dict[str, SnapshotIndex]
) -> None:
    """Pod -> pod on the other node: node1 routes via node2's address, delivered on node2."""
    src = _web_pod(hostgw_lab, "node1")
    dst = _web_pod(hostgw_lab, "node2")
    node1 = hostgw_indexes["node1"].snapshot.node.hostname
    node2 = hostgw_indexes["node2"].snapshot.node.hostname
    result = trace(_both(hostgw_indexes), Probe(src.ref, f"{dst.ip}:80"))
    (branch,) = result.branches
    assert branch.verdict == "delivered", branch.reason
    assert not any(h.kind == "vxlan" for h in branch.hops)
    underlay = hostgw_lab.node("node2").address
    root1 = hostgw_indexes["node1"].snapshot.root_netns
    crossing = [h for h in _route_hops(branch) if h.data["netns"] == root1]
    assert [(h.data["dev"], h.data["gateway"]) for h in crossing] == [("eth0", underlay)]
    (leave,) = [h for h in branch.hops if h.kind == "leave"]
    assert (leave.node, leave.data["via"], leave.data["toward"]) == (node1, underlay, node2)
    deliver = branch.hops[-1]
    assert deliver.kind == "deliver" and deliver.node == node2
    assert (deliver.data["pod"], deliver.data["address"]) == (dst.ref, dst.ip)
    assert _assert_routes_equal_kernel(hostgw_lab, hostgw_indexes, result.branches) >= 3


def test_hostgw_service_probe_lands_on_a_listed_endpoint(
    hostgw_lab: Lab, hostgw_indexes: dict[str, SnapshotIndex]
) -> None:
    """host-gw Service trace lists the endpoints (1/n each); real probes land on all, only them."""
    web = hostgw_lab.service("default/web")[0]
    src = _web_pod(hostgw_lab, "node1")
    result = trace(_both(hostgw_indexes), Probe(src.ref, f"{web.cluster_ip}:{web.port}"))
    got = {(b.packet.dst, b.packet.dport): b.probability for b in result.branches}
    assert set(got) == set(web.endpoints)
    assert all(abs(p - 1 / len(web.endpoints)) < 1e-6 for p in got.values())
    pods_by_ip = {p.ip: p.ref for p in hostgw_lab.pods}
    want = {pods_by_ip[b.packet.dst] for b in result.branches}
    # An endpoint on node2 proves the DNATed packet crosses host-gw in real life too.
    assert {hostgw_lab.pod(r).node for r in want} == set(NODES)
    seen: set[str] = set()
    for _ in range(60):
        answer = hostgw_lab.probe(src.ref, web.cluster_ip, web.port)
        assert answer.ok, answer.error
        assert answer.served_by in want, (answer.served_by, want)
        seen.add(answer.served_by)
        if seen == want:
            break
    assert seen == want
    assert _assert_routes_equal_kernel(hostgw_lab, hostgw_indexes, result.branches) >= 2


def test_hostgw_service_branches_are_delivered_on_the_endpoint_node(
    hostgw_lab: Lab, hostgw_indexes: dict[str, SnapshotIndex]
) -> None:
    """Every host-gw Service branch is delivered to its endpoint pod, on that pod's node."""
    web = hostgw_lab.service("default/web")[0]
    src = _web_pod(hostgw_lab, "node1")
    result = trace(_both(hostgw_indexes), Probe(src.ref, f"{web.cluster_ip}:{web.port}"))
    hostname = {n: hostgw_indexes[n].snapshot.node.hostname for n in NODES}
    for b in result.branches:
        assert b.verdict == "delivered", b.reason
        pod = hostgw_lab.pod(b.packet.dst)
        deliver = b.hops[-1]
        assert (deliver.kind, deliver.node) == ("deliver", hostname[pod.node])
        assert deliver.data["pod"] == pod.ref
