"""The bridge topology, dual-stack (flannel.1 and flannel-v6.1): IPv6 end to end against the kernel."""

from __future__ import annotations

import subprocess
import sys
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

from podpath.analysis.index import SnapshotIndex
from podpath.trace.engine import trace
from podpath.trace.probe import Probe
from podpath.trace.render import render_text

if TYPE_CHECKING:
    from podpath.lab import Lab

pytestmark = pytest.mark.lab


# 2 bridge nodes, dual-stack, flannel-style VXLAN for both families.
lab, indexes = topology_fixtures(
    "dual", nodes=2, pods=3, services=3, cni="bridge", ip_family="dual", runtime="containerd"
)


def test_no_node_address_is_tentative_when_up_returns(lab: Lab) -> None:
    """First in the module, right after `lab up`: no IPv6 address of a node is still in
    duplicate address detection. cni0's tentative gateway answered no neighbour
    solicitation, so the first IPv6 connection waited one or two SYN retransmissions."""
    for node in lab.nodes:
        tentative = lab.exec(node.name, ["ip", "-6", "addr", "show", "tentative"]).stdout
        assert tentative.strip() == "", f"{node.name}: {tentative}"


@pytest.mark.parametrize("node", ["node1", "node2"])
def test_ipv6_pod_to_pod(lab: Lab, indexes: dict[str, SnapshotIndex], node: str) -> None:
    """IPv6 on cni0 and across flannel-v6.1: NDP, routes equal `ip -6 route get`, traffic answered."""
    src, dst = web_pods(lab, "node1")[0], web_pods(lab, node)[-1]
    branch = assert_pod_to_pod(lab, indexes, src, dst, 6)
    if node == "node2":
        assert {h.data["dev"] for h in branch.hops if h.kind == "vxlan"} == {"flannel-v6.1"}


def test_ipv6_service_and_back(lab: Lab, indexes: dict[str, SnapshotIndex]) -> None:
    """pod -> web's IPv6 ClusterIP: ip6tables DNAT to the endpoints, traffic and conntrack agree."""
    assert_service(lab, indexes, web_pods(lab, "node1")[0], 6)


def test_dual_stack_pod_uses_the_destinations_family(
    lab: Lab, indexes: dict[str, SnapshotIndex]
) -> None:
    """`--to` an IPv6 address from a dual-stack pod: the IPv6 source, and [addr]:port in the header."""
    src, dst = web_pods(lab, "node1")[0], web_pods(lab, "node2")[0]
    ip6 = next(ip for ip in dst.ips if ":" in ip)
    result = trace(ordered(indexes), Probe(src.ref, f"[{ip6}]:80"))
    assert result.probe["src"] == next(ip for ip in src.ips if ":" in ip)
    assert f"([{ip6}]:80)" in render_text(result).splitlines()[0]
    assert assert_routes_equal_kernel(lab, indexes, result.branches) >= 3


def test_node_to_ipv6_pod_source_is_the_kernels(
    lab: Lab, indexes: dict[str, SnapshotIndex]
) -> None:
    """From the node to an IPv6 pod on the other node: the chosen source equals the kernel's."""
    dst = web_pods(lab, "node2")[0]
    ip6 = next(ip for ip in dst.ips if ":" in ip)
    result = trace(ordered(indexes), Probe("node1", f"[{ip6}]:80"))
    (branch,) = result.branches
    assert branch.hops[0].data["chosen_src"]
    assert assert_routes_equal_kernel(lab, indexes, result.branches) >= 2


def _cli_probe(lab: Lab, *args: str) -> subprocess.CompletedProcess[str]:
    """`podpath lab probe` on this lab, as a user runs it."""
    argv = [sys.executable, "-m", "podpath", "lab", "probe", "--name", lab.name, *args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)


def test_lab_probe_6_names_the_ipv6_address_it_reached(lab: Lab) -> None:
    """`lab probe -6 SRC POD`: the answering pod is named with the IPv6 address used, not its IPv4."""
    src, dst = web_pods(lab, "node1")[0], web_pods(lab, "node2")[0]
    ip4 = next(ip for ip in dst.ips if ":" not in ip)
    ip6 = next(ip for ip in dst.ips if ":" in ip)
    done = _cli_probe(lab, "-6", src.ref, dst.ref)
    assert done.returncode == 0, done.stderr
    assert f"([{ip6}]:80/tcp)" in done.stdout
    assert f"served by pod {dst.ref} on node2 ({ip6})" in done.stdout
    assert ip4 not in done.stdout
    four = _cli_probe(lab, src.ref, dst.ref)
    assert f"served by pod {dst.ref} on node2 ({ip4})" in four.stdout, four.stdout


@pytest.mark.parametrize("family", [4, 6])
def test_lab_probe_icmp_pings_like_trace_says(
    lab: Lab, indexes: dict[str, SnapshotIndex], family: int
) -> None:
    """`lab probe --proto icmp` sends a real echo request; the trace of it delivers, too."""
    src, dst = web_pods(lab, "node1")[0], web_pods(lab, "node2")[-1]
    addr = next(ip for ip in dst.ips if (":" in ip) == (family == 6))
    result = trace(ordered(indexes), Probe(src.ref, addr, proto="icmp"))
    assert [b.verdict for b in result.branches] == ["delivered"]
    done = _cli_probe(lab, "--proto", "icmp", src.ref, addr)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"({addr}/icmp)" in done.stdout and "1 packets received" in done.stdout
    refused = _cli_probe(lab, "--proto", "icmp", src.ref, f"{dst.ip}:80")
    assert refused.returncode == 2
    assert refused.stderr.strip() == f"podpath: ICMP has no ports: give {dst.ip} without a port"


@pytest.mark.parametrize(("family", "cidr"), [(4, "10.244.0.0/16"), (6, "fd00:10:244::/56")])
def test_off_cluster_sources_to_a_service_are_masqueraded(
    lab: Lab, indexes: dict[str, SnapshotIndex], family: int, cidr: str
) -> None:
    """kube-proxy here has the pod CIDRs as its cluster CIDR: the kernel's KUBE-SVC chain of
    web holds `! -s CIDR -j KUBE-MARK-MASQ`, and the node's own connection to web (its
    source is no pod address) passes that rule and is masqueraded in every branch."""
    web = next(s for s in lab.service("default/web") if (":" in s.cluster_ip) == (family == 6))
    tool = "iptables-save" if family == 4 else "ip6tables-save"
    saved = lab.exec("node1", [tool, "-t", "nat"]).stdout.splitlines()
    masq = [r for r in saved if r.startswith(f"-A {web.svc_chain} ") and f"! -s {cidr} " in r]
    assert len(masq) == 1 and masq[0].endswith("-j KUBE-MARK-MASQ"), masq
    target = f"[{web.cluster_ip}]:80" if family == 6 else f"{web.cluster_ip}:80"
    result = trace(ordered(indexes), Probe("node1", target))
    assert len(result.branches) == len(web.endpoints)
    for branch in result.branches:
        texts = [h.text for h in branch.hops]
        assert any(f"{web.svc_chain} #1: -> KUBE-MARK-MASQ" in t for t in texts), texts
        assert any(h.kind == "nat" and "MASQUERADE" in h.text for h in branch.hops), texts
