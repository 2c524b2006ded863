"""externalTrafficPolicy and internalTrafficPolicy Local, built for real and proven.

`--traffic-policy-local` adds default/web-local: a NodePort Service with both policies
Local whose endpoints are node1's web pods only. kube-proxy's rules are written per
node as kube-proxy writes them (iptables: KUBE-SVL, KUBE-EXT's short-circuits, the
"has no local endpoints" DROPs; nftables: the local- chain, external-'s
short-circuits, drop elements of no-endpoint-nodeports/no-endpoint-services). Real
traffic and the real conntrack table then say: a NodePort on node1 is delivered with
the client's address kept, on node2 it is dropped, and a pod of node2 gets nothing
from the ClusterIP, as podpath's trace predicts with the rule that decides.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest
from topology_proof import ordered, snapshots

from podpath.analysis.index import SnapshotIndex
from podpath.conntrack import parse_conntrack
from podpath.trace.engine import trace
from podpath.trace.probe import Probe

if TYPE_CHECKING:
    from podpath.lab import Lab, ServiceRecord

pytestmark = pytest.mark.lab

NODES = ("node1", "node2")
# What decides each drop on node2, in each mode: kube-proxy's own rule.
NODEPORT_DROP = {
    "iptables": '"default/web-local:http has no local endpoints" -m addrtype --dst-type LOCAL',
    "nftables": "vmap @no-endpoint-nodeports",
}
CLUSTER_IP_DROP = {
    "iptables": '"default/web-local:http has no local endpoints"',
    "nftables": "vmap @no-endpoint-services",
}


@pytest.fixture(scope="module", params=["iptables", "nftables"])
def local_lab(request: pytest.FixtureRequest) -> Iterator[Lab]:
    """A private 2-node lab with web-local, in one kube-proxy mode."""
    from podpath.lab import LabSpec, running_lab

    mode = str(request.param)
    spec = LabSpec(
        f"t{os.getpid()}-tpl-{mode[:3]}",
        nodes=2,
        pods=3,
        services=4,
        proxy_mode=mode,
        traffic_policy_local=True,
    )
    with running_lab(spec) as lab:
        yield lab


@pytest.fixture(scope="module")
def indexes(local_lab: Lab) -> list[SnapshotIndex]:
    """A snapshot of each node, taken by the real CLI inside it (neighbours warmed)."""
    web = local_lab.service("default/web")[0]
    for node in NODES:
        local_lab.probe(local_lab.pods_on(node)[0].ref, web.cluster_ip, web.port)
    return ordered(snapshots(local_lab))


def _web_local(lab: Lab) -> ServiceRecord:
    svc = lab.service("default/web-local")[0]
    assert svc.node_port is not None and svc.external_local and svc.internal_local
    return svc


def _mode(lab: Lab) -> str:
    return lab.record.spec.proxy_mode


def test_endpoints_are_node1s_web_pods_only(local_lab: Lab) -> None:
    """web-local's endpoints are exactly node1's web pods (node2 has none of its own)."""
    svc = _web_local(local_lab)
    node1_web = {(p.ip, 80) for p in local_lab.pods_on("node1") if p.app == "web"}
    assert node1_web and set(svc.endpoints) == node1_web


def test_nodeport_with_a_local_endpoint_keeps_the_client_address(
    local_lab: Lab, indexes: list[SnapshotIndex]
) -> None:
    """node2 -> node1's NodePort: delivered to a node1 pod without SNAT, in the trace and
    in node1's conntrack entry (reply to node2's own address)."""
    svc = _web_local(local_lab)
    node1, node2 = local_lab.node("node1"), local_lab.node("node2")
    result = trace(indexes, Probe("node2", f"{node1.address}:{svc.node_port}"))
    assert {(b.packet.dst, b.packet.dport) for b in result.branches} == set(svc.endpoints)
    for b in result.branches:
        assert b.verdict == "delivered", b.reason
        assert b.packet.src == node2.address, b.packet
    answer = local_lab.probe("node2", node1.address, svc.node_port)
    assert answer.ok, answer.error
    assert (local_lab.pod(str(answer.served_by)).ip, 80) in svc.endpoints
    done = local_lab.exec(
        "node1",
        ["conntrack", "-L", "-p", "tcp", "--orig-dst", node1.address, "--orig-src", node2.address],
        check=False,
    )
    entries = [e for e in parse_conntrack(done.stdout) if e.original.dport == svc.node_port]
    assert entries, done.stdout
    for e in entries:
        assert (e.reply.src, e.reply.sport) in svc.endpoints
        assert e.reply.dst == node2.address  # no SNAT: the endpoint answers the client


def test_nodeport_without_a_local_endpoint_is_dropped(
    local_lab: Lab, indexes: list[SnapshotIndex]
) -> None:
    """node1 -> node2's NodePort: the trace drops it at kube-proxy's no-local-endpoints
    rule on node2; the real connection attempt times out (a drop, not a refusal)."""
    svc = _web_local(local_lab)
    node2 = local_lab.node("node2")
    (branch,) = trace(indexes, Probe("node1", f"{node2.address}:{svc.node_port}")).branches
    assert branch.verdict == "dropped", branch.reason
    assert NODEPORT_DROP[_mode(local_lab)] in branch.reason, branch.reason
    answer = local_lab.probe("node1", node2.address, svc.node_port, wait=1)
    assert not answer.ok and "timed out" in answer.error, answer


def test_cluster_ip_from_a_pod_without_a_local_endpoint_is_dropped(
    local_lab: Lab, indexes: list[SnapshotIndex]
) -> None:
    """internalTrafficPolicy Local: a pod of node2 gets nothing from the ClusterIP (the
    trace names kube-proxy's drop), a pod of node1 reaches only node1's endpoints."""
    svc = _web_local(local_lab)
    far = local_lab.pods_on("node2")[0]
    (branch,) = trace(indexes, Probe(far.ref, f"{svc.cluster_ip}:{svc.port}")).branches
    assert branch.verdict == "dropped", branch.reason
    assert CLUSTER_IP_DROP[_mode(local_lab)] in branch.reason, branch.reason
    answer = local_lab.probe(far.ref, svc.cluster_ip, svc.port, wait=1)
    assert not answer.ok and "timed out" in answer.error, answer
    near = local_lab.pods_on("node1")[0]
    result = trace(indexes, Probe(near.ref, f"{svc.cluster_ip}:{svc.port}"))
    assert {(b.packet.dst, b.packet.dport) for b in result.branches} == set(svc.endpoints)
    assert all(b.verdict == "delivered" for b in result.branches)
    served = local_lab.probe(near.ref, svc.cluster_ip, svc.port)
    assert served.ok and (local_lab.pod(str(served.served_by)).ip, 80) in svc.endpoints


def test_ls_services_says_both_policies_on_either_node(local_lab: Lab, run_podpath: Any) -> None:
    """`ls services --json` on each node reads both policies Local back from the rules."""
    for node in NODES:
        done = run_podpath(local_lab, node, "ls", "services", "--json")
        assert done.returncode == 0, done.stderr
        rows = [r for r in json.loads(done.stdout)["services"] if r["name"] == "web-local"]
        assert rows, done.stdout
        (row,) = rows
        assert (row["internal_policy"], row["external_policy"]) == ("Local", "Local"), row
        assert row["cluster_ip"] == _web_local(local_lab).cluster_ip


def test_a_pod_to_another_nodes_nodeport_is_answered_past_that_node(
    local_lab: Lab, indexes: list[SnapshotIndex]
) -> None:
    """A node1 pod that is none of web-local's endpoints -> node2's NodePort: node2 takes it
    as pod traffic (kube-proxy's short-circuit to the Service's cluster chain, without
    masquerade) and DNATs it to a web pod back on node1, which answers the client
    straight, past node2's conntrack: from its own address, which the client never asked.
    The trace delivers each request and drops each answer at the client (its TCP resets
    it; the reply was said delivered); real connections time out."""
    svc = _web_local(local_lab)
    node2 = local_lab.node("node2")
    client = next(p for p in local_lab.pods_on("node1") if (p.ip, 80) not in svc.endpoints)
    asked = f"{node2.address}:{svc.node_port}"
    result = trace(indexes, Probe(client.ref, asked), reply=True)
    assert {(b.packet.dst, b.packet.dport) for b in result.branches} == set(svc.endpoints)
    for b in result.branches:
        assert b.verdict == "delivered", b.reason
        (answer,) = b.reply
        assert answer.verdict == "dropped", answer.reason
        assert answer.reason.startswith(
            f"the answer comes from {b.packet.dst}:80, not from {asked}, which the client "
            "sent to: its TCP has no connection for it"
        ), answer.reason
    for _ in range(3):
        real = local_lab.probe(client.ref, node2.address, svc.node_port, wait=2)
        assert not real.ok and "timed out" in real.error, real
