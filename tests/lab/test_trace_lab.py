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
from topology_proof import snapshot_text, snapshots

from podpath.analysis.index import SnapshotIndex
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
    return snapshots(shared_lab)


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


# --- Services, in each kube-proxy mode the lab runs: the iptables shared lab, and an
# nftables lab of the same shape. Every prediction is checked against real traffic
# (who answered) and the kernel's conntrack entry (endpoint chosen, SNAT or not).

NFT_LAB = f"t{os.getpid()}-trace-nft"
_SNAPSHOTS: dict[str, dict[str, SnapshotIndex]] = {}


@pytest.fixture(scope="module")
def nft_lab() -> Iterator[Lab]:
    """A 2-node VXLAN lab whose Services kube-proxy programs in nftables mode."""
    from podpath.lab import LabSpec, running_lab

    spec = LabSpec(NFT_LAB, nodes=2, pods=3, services=4, overlay="vxlan", proxy_mode="nftables")
    with running_lab(spec) as lab:
        yield lab


@pytest.fixture(params=["iptables", "nftables"])
def proxy_lab(request: pytest.FixtureRequest) -> Lab:
    """The lab of one kube-proxy mode (built on first use)."""
    lab: Lab = request.getfixturevalue("shared_lab" if request.param == "iptables" else "nft_lab")
    return lab


def _snapshots(lab: Lab, run_podpath: Any, fresh: bool = False) -> list[SnapshotIndex]:
    """A snapshot of each node taken by the real CLI inside it (after warming neighbours)."""
    if fresh or lab.name not in _SNAPSHOTS:
        web = lab.service("default/web")[0]
        for node in NODES:
            lab.probe(lab.pods_on(node)[0].ref, web.cluster_ip, web.port)
        _SNAPSHOTS[lab.name] = snapshots(lab)
    return [_SNAPSHOTS[lab.name][n] for n in NODES]


def _conntrack(lab: Lab, node: str, *filters: str) -> list[Any]:
    from podpath.conntrack import parse_conntrack

    done = lab.exec(node, ["conntrack", "-L", *filters], check=False)
    return list(parse_conntrack(done.stdout))


def _predicted_replies(
    branches: tuple[Branch, ...],
) -> set[tuple[str | None, int | None, str | None]]:
    """(reply source, reply source port, reply destination) the kernel's entry must show."""
    return {(b.packet.dst, b.packet.dport, b.packet.src) for b in branches}


def test_service_branches_are_the_endpoints_with_equal_shares(
    proxy_lab: Lab, run_podpath: Any
) -> None:
    """A Service trace lists exactly the Service's endpoints, each with probability 1/n."""
    web = proxy_lab.service("default/web")[0]
    src = proxy_lab.pods_on("node1")[0]
    result = trace(
        _snapshots(proxy_lab, run_podpath), Probe(src.ref, f"{web.cluster_ip}:{web.port}")
    )
    got = {(b.packet.dst, b.packet.dport): b.probability for b in result.branches}
    assert set(got) == set(web.endpoints)
    for p in got.values():
        assert abs(p - 1 / len(web.endpoints)) < 1e-6
    assert all(b.verdict == "delivered" and not b.uncertain for b in result.branches), [
        b.reason for b in result.branches
    ]


def test_real_traffic_lands_on_listed_endpoints(proxy_lab: Lab, run_podpath: Any) -> None:
    """Repeated real probes land only on endpoints the trace listed, and reach all of them."""
    web = proxy_lab.service("default/web")[0]
    src = proxy_lab.pods_on("node1")[0]
    result = trace(
        _snapshots(proxy_lab, run_podpath), Probe(src.ref, f"{web.cluster_ip}:{web.port}")
    )
    listed = {b.end for b in result.branches}
    pods_by_ip = {p.ip: p.ref for p in proxy_lab.pods}
    want = {pods_by_ip[b.packet.dst] for b in result.branches}
    seen: set[str] = set()
    for _ in range(60):
        answer = proxy_lab.probe(src.ref, web.cluster_ip, web.port)
        assert answer.ok, answer.error
        assert answer.served_by in want, (answer.served_by, want)
        seen.add(answer.served_by)
        if seen == want:
            break
    assert seen == want and len(listed) == len(want)


def test_conntrack_reply_tuple_equals_the_traced_reply(proxy_lab: Lab, run_podpath: Any) -> None:
    """The kernel's conntrack entry (endpoint chosen, source NATed or not) is one the trace predicted."""
    web = proxy_lab.service("default/web")[0]
    src = proxy_lab.pods_on("node1")[0]
    probe = Probe(src.ref, f"{web.cluster_ip}:{web.port}")
    result = trace(_snapshots(proxy_lab, run_podpath), probe, reply=True)
    for b in result.branches:
        (reply,) = b.reply
        assert reply.verdict == "delivered", reply.reason
        assert (reply.packet.src, reply.packet.sport, reply.packet.dst) == (
            web.cluster_ip,
            web.port,
            src.ip,
        )
    proxy_lab.probe(src.ref, web.cluster_ip, web.port)
    entries = _conntrack(
        proxy_lab, "node1", "-p", "tcp", "--orig-dst", web.cluster_ip, "--orig-src", src.ip
    )
    assert entries
    for e in entries:
        assert (e.reply.src, e.reply.sport, e.reply.dst) in _predicted_replies(result.branches)


def test_live_trace_cli_inside_a_node(proxy_lab: Lab, run_podpath: Any) -> None:
    """`podpath trace --json` on the live node lists the web Service's endpoints with 1/n each."""
    web = proxy_lab.service("default/web")[0]
    src = proxy_lab.pods_on("node1")[0]
    done = run_podpath(
        proxy_lab,
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
        backends = {h["backend"] for h in b["hops"] if h["kind"] == "netfilter"}
        assert ("nftables" in backends) == (proxy_lab.record.spec.proxy_mode == "nftables")


def test_service_without_endpoints_is_rejected_like_the_kernel(
    proxy_lab: Lab, run_podpath: Any
) -> None:
    """`--to default/noep:http`: the trace says kube-proxy rejects it; a real connect is refused."""
    noep = proxy_lab.service("default/noep")[0]
    src = proxy_lab.pods_on("node1")[0]
    (branch,) = trace(
        _snapshots(proxy_lab, run_podpath), Probe(src.ref, "default/noep:http")
    ).branches
    assert branch.verdict == "dropped" and "reject" in branch.reason.lower(), branch.reason
    assert branch.packet.dst == noep.cluster_ip
    answer = proxy_lab.probe(src.ref, noep.cluster_ip, noep.port)
    assert not answer.ok and "refused" in answer.error, answer


def test_a_cluster_ip_answers_nothing_but_its_ports(proxy_lab: Lab, run_podpath: Any) -> None:
    """UDP to a port web's ClusterIP does not serve, and a ping: iptables mode routes them
    out of the node untranslated, and the trace says the address is a ClusterIP served on
    80/TCP only (before, a bare "leaves the node" read as a routing fault); nftables mode
    rejects them by kube-proxy's cluster-ips-check. Nothing answers either way."""
    web = proxy_lab.service("default/web")[0]
    src = proxy_lab.pods_on("node1")[0]
    indexes = _snapshots(proxy_lab, run_podpath)
    iptables = proxy_lab.record.spec.proxy_mode != "nftables"
    # UDP first: its ICMP error is the node's first to the pod (ICMP errors are rate-limited).
    for proto, dst in (("udp", f"{web.cluster_ip}:8081"), ("icmp", web.cluster_ip)):
        (branch,) = trace(indexes, Probe(src.ref, dst, proto)).branches
        answer = proxy_lab.probe(src.ref, dst, proto=proto, wait=1)
        assert not answer.ok, answer
        if iptables:
            assert branch.verdict == "leaves-node", branch.reason
            assert (
                f"({web.cluster_ip} is the ClusterIP of default/web:http, which kube-proxy "
                f"translates for 80/TCP only: nothing answers {proto}"
            ) in branch.reason
            assert "refused" not in answer.error, answer
        else:
            assert branch.verdict == "dropped", branch.reason
            assert "rejected by kube-proxy/cluster-ips-check" in branch.reason
            assert proto == "icmp" or "refused" in answer.error, answer


def test_hairpin_is_masqueraded_like_conntrack_shows(proxy_lab: Lab, run_podpath: Any) -> None:
    """A web pod reaching web's VIP and landing on itself is SNATed; the kernel's entry agrees."""
    web = proxy_lab.service("default/web")[0]
    src = next(p for p in proxy_lab.pods_on("node1") if p.app == "web")
    result = trace(
        _snapshots(proxy_lab, run_podpath), Probe(src.ref, f"{web.cluster_ip}:{web.port}")
    )
    (self_branch,) = [b for b in result.branches if b.packet.dst == src.ip]
    assert self_branch.verdict == "delivered" and self_branch.packet.src != src.ip
    others = [b for b in result.branches if b.packet.dst != src.ip]
    assert others and all(b.packet.src == src.ip for b in others)
    for _ in range(60):
        if proxy_lab.probe(src.ref, web.cluster_ip, web.port).served_by == src.ref:
            break
    else:
        pytest.fail("60 probes never landed on the probing pod itself")
    entries = _conntrack(
        proxy_lab, "node1", "-p", "tcp", "--orig-dst", web.cluster_ip, "--orig-src", src.ip
    )
    hairpin = [e for e in entries if e.reply.src == src.ip]
    assert hairpin and all(e.reply.dst == self_branch.packet.src for e in hairpin)
    for e in entries:
        assert (e.reply.src, e.reply.sport, e.reply.dst) in _predicted_replies(result.branches)


def test_node_port_from_the_other_node_is_masqueraded_like_conntrack_shows(
    proxy_lab: Lab, run_podpath: Any
) -> None:
    """A pod on node2 to node1's NodePort: DNAT and SNAT on node1, as its conntrack entry says."""
    web = proxy_lab.service("default/web")[0]
    assert web.node_port is not None
    node1 = proxy_lab.node("node1")
    src = proxy_lab.pods_on("node2")[0]
    result = trace(
        _snapshots(proxy_lab, run_podpath), Probe(src.ref, f"{node1.address}:{web.node_port}")
    )
    assert {(b.packet.dst, b.packet.dport) for b in result.branches} == set(web.endpoints)
    assert all(b.verdict == "delivered" and b.packet.src != src.ip for b in result.branches), [
        b.reason for b in result.branches
    ]
    answer = proxy_lab.probe(src.ref, node1.address, web.node_port)
    assert answer.ok, answer.error
    entries = _conntrack(
        proxy_lab, "node1", "-p", "tcp", "--orig-dst", node1.address, "--orig-src", src.ip
    )
    assert entries
    for e in entries:
        assert (e.reply.src, e.reply.sport, e.reply.dst) in _predicted_replies(result.branches)


def test_session_affinity_pin_is_followed(proxy_lab: Lab, run_podpath: Any) -> None:
    """web-sticky (ClientIP): real probes stick to one pod; a fresh snapshot's trace follows that pin."""
    sticky = proxy_lab.service("default/web-sticky")[0]
    src = proxy_lab.pods_on("node1")[0]
    served = {proxy_lab.probe(src.ref, sticky.cluster_ip, sticky.port).served_by for _ in range(4)}
    (pinned,) = served
    assert pinned is not None, served
    indexes = _snapshots(proxy_lab, run_podpath, fresh=True)
    (branch,) = trace(indexes, Probe(src.ref, "default/web-sticky:http")).branches
    assert branch.verdict == "delivered" and branch.probability == 1.0, branch.reason
    assert branch.packet.dst == proxy_lab.pod(pinned).ip
    notes = [d for h in branch.hops for d in h.details]
    assert any("pinned" in n and src.ip in n for n in notes), notes


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
    return snapshots(hostgw_lab)


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


def test_cached_trace_equals_the_full_parse_on_lab_snapshots(
    proxy_lab: Lab, run_podpath: Any, tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """`trace --cache DIR` on both nodes' snapshots prints the full parse's `--json --reply`, miss and hit."""
    from podpath.cli import main

    files = []
    for node in NODES:
        path = tmp_path / f"{node}.json"
        path.write_text(snapshot_text(proxy_lab, node))
        files += ["--snapshot", str(path)]
    web = proxy_lab.service("default/web")[0]
    src = proxy_lab.pods_on("node1")[0].ref
    args = ["trace", *files, "--from", src, "--to", f"{web.cluster_ip}:{web.port}", "--json"]
    cache = tmp_path / "cache"
    cache.mkdir()
    outputs = []
    for extra in ([], ["--cache", str(cache)], ["--cache", str(cache)]):
        assert main([*args, "--reply", *extra]) == 0
        outputs.append(capsys.readouterr().out)
    assert outputs[0] == outputs[1] == outputs[2]
    finals = {(b["final"]["dst"], b["final"]["dport"]) for b in json.loads(outputs[0])["branches"]}
    assert finals == set(web.endpoints)
    assert len(os.listdir(cache)) == len(NODES)
