"""An AWS VPC CNI-shaped lab (2 nodes, two ENIs each, policy routing): the trace against the kernel.

Pods on the secondary ENI leave by its table (rule 1536) and pods on the primary by
main; rule 512 brings traffic for a pod to main. The VPC between the nodes is not in
any snapshot: a trace that leaves toward its router continues, as an assumption it
states, on the node that owns the destination -- and real traffic must land there.
Traffic leaving the VPC is SNATed to the node's primary address, as the real
conntrack entry shows.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest
from topology_proof import (
    assert_pod_to_pod,
    assert_routes_equal_kernel,
    assert_service,
    ordered,
    topology_fixtures,
    web_pods,
)

from podpath.analysis.dataplane import detect
from podpath.analysis.index import SnapshotIndex
from podpath.conntrack import parse_conntrack
from podpath.lab.cni_plugin import secondary_eni
from podpath.listing import render_text
from podpath.listing import rules as rules_listing
from podpath.trace.engine import trace
from podpath.trace.probe import Probe

if TYPE_CHECKING:
    from podpath.lab import Lab, PodRecord

pytestmark = pytest.mark.lab


# 2 AWS-style nodes, 3 pods each (addresses alternate between the two ENIs).
lab, indexes = topology_fixtures(
    "aws", nodes=2, pods=3, services=3, cni="aws-vpc", runtime="containerd"
)


def _on(lab: Lab, node: str, secondary: bool) -> PodRecord:
    """A pod of the node on the secondary ENI (odd address) or the primary one (pods are
    made in parallel, so which pod got which address differs between runs)."""
    return next(p for p in lab.pods_on(node) if secondary_eni(p.ip) == secondary)


def test_rules_and_static_neighbours_equal_the_kernel(
    lab: Lab, indexes: dict[str, SnapshotIndex]
) -> None:
    """Rules 512/1025/1536 equal `ip -j rule`; each pod holds 169.254.1.1 PERMANENT; detected as AWS."""
    index = indexes["node1"]
    root = index.root_netns
    assert root is not None
    kernel = json.loads(lab.exec("node1", ["ip", "-j", "rule"]).stdout)

    def side(addr: str, length: object) -> str:
        return addr if addr == "all" or length in (None, 32) else f"{addr}/{length}"

    want = sorted(
        (
            r["priority"],
            "not" in r,
            side(r.get("src", "all"), r.get("srclen")),
            side(r.get("dst", "all"), r.get("dstlen")),
        )
        for r in kernel
    )
    got = sorted(
        (
            r.priority,
            r.invert,
            (r.src or "all").removesuffix("/32"),
            (r.dst or "all").removesuffix("/32"),
        )
        for r in root.rules
        if r.family == 4
    )
    assert got == want
    prios = {r.priority for r in root.rules}
    assert {512, 1025, 1536} <= prios
    for pod in lab.pods_on("node1"):
        ns = index.netns_by_inode[index.pods_by_name[pod.ref].netns_inode or 0]
        (gw,) = [n for n in ns.neighbours if n.dst == "169.254.1.1"]
        assert gw.state == ("PERMANENT",)
    assert detect(index).cni == "aws-vpc-cni"


def test_ls_rules_says_what_ip_rule_says(lab: Lab, indexes: dict[str, SnapshotIndex]) -> None:
    """`ls rules` of the root netns, line for line, is `ip rule show` (with `not`, host prefixes)."""
    index = indexes["node1"]
    root = index.root_netns
    assert root is not None
    kernel = lab.exec("node1", ["ip", "rule", "show"]).stdout.splitlines()
    listing = rules_listing(index)
    got = [
        f"{row['priority']}:\t{row['text']}"
        for row in listing.rows
        if row["netns"] == root.inode and row["family"] == 4
    ]
    assert got == [line.rstrip() for line in kernel]
    text = render_text(listing)
    assert any(" 1025 not from all to " in line for line in text.splitlines())


@pytest.mark.parametrize("secondary", [False, True])
def test_pod_to_pod_on_the_node(
    lab: Lab, indexes: dict[str, SnapshotIndex], secondary: bool
) -> None:
    """Same node: rule 512 sends the packet to the other pod's eni veth; no ARP for 169.254.1.1."""
    src = _on(lab, "node1", secondary)
    dst = next(p for p in web_pods(lab, "node1") if p.ref != src.ref)
    branch = assert_pod_to_pod(lab, indexes, src, dst, 4)
    rules = [h.data["rule"] for h in branch.hops if h.kind == "route"]
    assert any(str(r).startswith("512:") for r in rules), rules
    gw = next(h for h in branch.hops if h.kind == "neighbour")
    assert gw.data["state"] == ["PERMANENT"]


@pytest.mark.parametrize("secondary", [False, True])
def test_pod_to_pod_across_the_vpc(
    lab: Lab, indexes: dict[str, SnapshotIndex], secondary: bool
) -> None:
    """Across nodes: the secondary ENI's pods leave by table 2, the primary's by main; the trace
    continues on the owner node as a stated assumption, and real traffic lands there."""
    src = _on(lab, "node1", secondary)
    dst = web_pods(lab, "node2")[0]
    branch = assert_pod_to_pod(lab, indexes, src, dst, 4)
    assert branch.verdict == "uncertain" and branch.outcome == "delivered"
    assert any("not in the snapshots" in u for u in branch.uncertain)
    first_host = next(h for h in branch.hops if h.kind == "route" and h.data["iif"])
    assert first_host.data["table"] == (2 if secondary else 254), first_host.text


def test_service_and_back(lab: Lab, indexes: dict[str, SnapshotIndex]) -> None:
    """pod -> web Service: endpoints on both nodes, real traffic, conntrack's reply tuple."""
    assert_service(lab, indexes, _on(lab, "node1", False), 4)


def test_leaving_the_vpc_is_snatted_to_the_primary_address(
    lab: Lab, indexes: dict[str, SnapshotIndex]
) -> None:
    """To an address outside the VPC: rule 1025 -> main -> eth0, AWS-SNAT-CHAIN SNATs to the node."""
    src = _on(lab, "node1", True)
    result = trace(ordered(indexes), Probe(src.ref, "198.51.100.7:80"))
    (branch,) = result.branches
    assert branch.verdict == "leaves-node", branch.reason
    node_ip = lab.node("node1").address
    assert branch.packet.src == node_ip
    assert any(h.kind == "nat" and "SNAT" in h.text for h in branch.hops)
    host = next(h for h in branch.hops if h.kind == "route" and h.data["iif"])
    assert str(host.data["rule"]).startswith("1025:") and host.data["dev"] == "eth0"
    assert assert_routes_equal_kernel(lab, indexes, result.branches) >= 2
    lab.probe(src.ref, "198.51.100.7", 80)  # fails (nothing leaves the lab); conntrack remembers
    done = lab.exec(
        "node1",
        ["conntrack", "-L", "-p", "tcp", "--orig-src", src.ip, "--orig-dst", "198.51.100.7"],
        check=False,
    )
    entries = parse_conntrack(done.stdout)
    assert entries, done.stderr
    assert {e.reply.dst for e in entries} == {node_ip}
