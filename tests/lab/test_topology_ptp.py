"""A kindnet-shaped lab (Debian's ptp plugin, 2 nodes, dual-stack): the trace against the kernel and traffic.

Also the most nodes a lab takes (5), each routing every other node's pod CIDRs.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest
from topology_proof import (
    assert_pod_to_pod,
    assert_service,
    family_ip,
    hostport,
    ordered,
    snapshots,
    topology_fixtures,
    web_pods,
)

from podpath.analysis.dataplane import detect
from podpath.analysis.index import SnapshotIndex
from podpath.doctor import diagnose
from podpath.trace import sysctls
from podpath.trace.engine import trace
from podpath.trace.probe import Probe
from podpath.trace.routing import validate_source

if TYPE_CHECKING:
    from podpath.lab import Lab

pytestmark = pytest.mark.lab


# 2 kindnet nodes, dual-stack, routes via the node addresses.
lab, indexes = topology_fixtures(
    "ptp", nodes=2, pods=3, services=3, cni="ptp", ip_family="dual", runtime="containerd"
)


def test_nodes_have_kindnets_shape(lab: Lab, indexes: dict[str, SnapshotIndex]) -> None:
    """ptp veths whose host end holds the gateway, /32 routes, host-local state in /run/cni-ipam-state."""
    index = indexes["node1"]
    root = index.root_netns
    assert root is not None
    veths = [lk for lk in root.links if lk.kind == "veth" and lk.name != "eth0"]
    assert len(veths) == 3
    assert all(any(a.address == "10.244.0.1" for a in lk.addresses) for lk in veths)
    pods = lab.pods_on("node1")
    assert {f"{p.ip}/32" for p in pods} <= {r.dst for r in root.routes}
    allocated = {a.ip for a in index.snapshot.cni.allocations}
    assert {ip for p in pods for ip in p.ips} <= allocated
    listing = lab.exec("node1", ["ls", "/run/cni-ipam-state/kindnet"]).stdout.split()
    assert {p.ip for p in pods} <= set(listing)
    assert detect(index).cni == "kindnet/ptp"


@pytest.mark.parametrize("family", [4, 6])
@pytest.mark.parametrize("node", ["node1", "node2"])
def test_pod_to_pod(lab: Lab, indexes: dict[str, SnapshotIndex], family: int, node: str) -> None:
    """On the node and across: routes equal `ip route get`, real traffic answered by the pod."""
    src = web_pods(lab, "node1")[0]
    dst = web_pods(lab, node)[-1]
    branch = assert_pod_to_pod(lab, indexes, src, dst, family)
    assert not any(h.kind == "vxlan" for h in branch.hops)


@pytest.mark.parametrize("family", [4, 6])
def test_service_and_back(lab: Lab, indexes: dict[str, SnapshotIndex], family: int) -> None:
    """pod -> web Service (both families): endpoints, real traffic, conntrack's reply tuple."""
    assert_service(lab, indexes, web_pods(lab, "node1")[0], family)


def test_five_nodes_route_to_each_other(make_lab: Callable[..., Lab]) -> None:
    """A 5-node lab: every node routes the 4 other pod CIDRs via their addresses; pods reach node5."""
    lab = make_lab(nodes=5, pods=1, services=2, cni="ptp")
    routes = json.loads(lab.exec("node1", ["ip", "-j", "route", "show", "proto", "boot"]).stdout)
    via = {(r["dst"], r.get("gateway")) for r in routes}
    for n in range(2, 6):
        node = lab.node(f"node{n}")
        assert (node.pod_cidr, node.address) in via
    src = lab.pods_on("node1")[0]
    dst = lab.pods_on("node5")[0]
    answer = lab.probe(src.ref, dst.ip, 80)
    assert answer.ok and answer.served_by == dst.ref, answer.error


def _sysctl(lab: Lab, *settings: str) -> None:
    lab.exec("node1", ["sysctl", "-qw", *settings])


def test_ipv6_force_forwarding_forwards_what_its_interface_receives(lab: Lab) -> None:
    """conf/all/forwarding 0 in node1: pod to pod (routed by the host on ptp) is forwarded
    only while both pods' host veths have force_forwarding (Linux 6.17+), as the trace
    says from a fresh snapshot and real traffic shows."""
    src, dst = web_pods(lab, "node1")[:2]
    veths = (src.host_veth, dst.host_veth)
    ip = family_ip(dst, 6)
    _sysctl(lab, "net.ipv6.conf.all.forwarding=0")
    try:
        _sysctl(lab, *(f"net.ipv6.conf.{v}.force_forwarding=1" for v in veths))
        (branch,) = trace(ordered(snapshots(lab)), Probe(src.ref, hostport(ip, 80))).branches
        assert (branch.outcome or branch.verdict) == "delivered", branch.reason
        answer = lab.probe(src.ref, ip, 80)
        assert answer.ok and answer.served_by == dst.ref, answer.error
        _sysctl(lab, *(f"net.ipv6.conf.{v}.force_forwarding=0" for v in veths))
        taken = ordered(snapshots(lab))
        (branch,) = trace(taken, Probe(src.ref, hostport(ip, 80))).branches
        assert branch.verdict == "dropped", branch.reason
        assert branch.reason.startswith(
            f"net.ipv6.conf.all.forwarding and net.ipv6.conf.{src.host_veth}.force_forwarding are 0"
        ), branch.reason
        # The doctor: a finding of its own for IPv6, with IPv6's switch, and nothing said
        # to still work between ptp's routed pods.
        report = diagnose(taken)
        (six,) = [f for f in report.findings if f.id == "ip-forward-off:node1:ipv6"]
        assert six.grade == "critical" and "net.ipv6.conf.all.forwarding=1" in six.fix, six
        assert "pod to pod on this node (its pods are routed" in six.cause, six.cause
        answer = lab.probe(src.ref, ip, 80)
        assert not answer.ok and "timed out" in answer.error, answer
    finally:
        _sysctl(lab, *(f"net.ipv6.conf.{v}.force_forwarding=0" for v in veths))
        _sysctl(lab, "net.ipv6.conf.all.forwarding=1")


def test_accept_local_with_rp_filter_agrees_with_the_kernels_input_route(lab: Lab) -> None:
    """A packet from a pod's veth carrying one of node1's own addresses as source: podpath's
    reverse path check (from a fresh snapshot's routes and sysctls) against the kernel's
    own (`ip route get DST from SRC iif VETH` runs fib_validate_source), for accept_local
    0/1 and rp_filter strict/loose, and real traffic for one accepted and one refused case."""
    src, dst = web_pods(lab, "node1")[:2]
    veth = src.host_veth
    node_ip = lab.node("node1").address
    gateway = "10.244.0.1"  # ptp puts it on every host veth, this one included
    pod_ns = src.netns_path.rsplit("/", 1)[1]
    conf = f"net.ipv4.conf.{veth}"
    every = lab.exec("node1", ["sysctl", "-n", "net.ipv4.conf.all.rp_filter"]).stdout.strip()
    _sysctl(lab, "net.ipv4.conf.all.rp_filter=0")  # the veth's own value decides (max)
    try:
        for accept, mode in ((0, 1), (1, 1), (1, 2)):
            _sysctl(lab, f"{conf}.accept_local={accept}", f"{conf}.rp_filter={mode}")
            index = snapshots(lab)["node1"]
            root = index.root_netns
            assert root is not None
            iif = index.link_by_name(root.inode, veth)
            assert iif is not None
            assert sysctls.accept_local(root, iif) is bool(accept)
            for source in (node_ip, gateway):
                mine = validate_source(
                    root,
                    source,
                    dst.ip,
                    iif,
                    sysctls.rp_filter(root, iif),
                    accept_local=sysctls.accept_local(root, iif) is True,
                )
                argv = ["ip", "route", "get", dst.ip, "from", source, "iif", veth]
                kernel = lab.exec("node1", argv, check=False)
                assert mine.ok == (kernel.returncode == 0), (accept, mode, source, mine, kernel)
        # Real packets: pod src sends with node1's address (added to its eth0) as source.
        lab.exec("node1", ["ip", "-n", pod_ns, "addr", "add", f"{node_ip}/32", "dev", "eth0"])
        # The pod's ARP for its gateway would carry that source too, and be refused the same
        # way: a permanent entry keeps the data packet the only thing the kernel decides on.
        (link,) = json.loads(lab.exec("node1", ["ip", "-j", "link", "show", veth]).stdout)
        neigh = [gateway, "lladdr", link["address"], "dev", "eth0", "nud", "permanent"]
        lab.exec("node1", ["ip", "-n", pod_ns, "neigh", "replace", *neigh])
        _count_forwarded(lab, node_ip, dst.ip)
        for mode, forwarded in ((1, False), (2, True)):
            _sysctl(lab, f"{conf}.accept_local=1", f"{conf}.rp_filter={mode}")
            before = _forwarded_from(lab)
            send = f"import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(({node_ip!r}, 0)); s.sendto(b'x', ({dst.ip!r}, 9))"
            lab.exec("node1", ["ip", "netns", "exec", pod_ns, sys.executable, "-c", send])
            assert (_forwarded_from(lab) > before) == forwarded, mode
    finally:
        lab.exec("node1", ["nft", "delete", "table", "ip", COUNTER_TABLE], check=False)
        lab.exec("node1", ["ip", "-n", pod_ns, "neigh", "del", gateway, "dev", "eth0"], check=False)
        lab.exec(
            "node1",
            ["ip", "-n", pod_ns, "addr", "del", f"{node_ip}/32", "dev", "eth0"],
            check=False,
        )
        _sysctl(lab, f"{conf}.accept_local=0", f"{conf}.rp_filter=0")
        _sysctl(lab, f"net.ipv4.conf.all.rp_filter={every}")


COUNTER_TABLE = "podpath_test_acclocal"


def _count_forwarded(lab: Lab, source: str, dst: str) -> None:
    """A counter in node1's forward hook of packets from `source` to `dst` (test's own table)."""
    rules = (
        f"add table ip {COUNTER_TABLE}\n"
        f"add chain ip {COUNTER_TABLE} forwarded {{ type filter hook forward priority -300; }}\n"
        f"add rule ip {COUNTER_TABLE} forwarded ip saddr {source} ip daddr {dst} counter\n"
    )
    lab.exec("node1", ["nft", "-f", "-"], input=rules)


def _forwarded_from(lab: Lab) -> int:
    """Packets the counter of `_count_forwarded` has seen."""
    listing = lab.exec("node1", ["nft", "-j", "list", "table", "ip", COUNTER_TABLE])
    for item in json.loads(listing.stdout)["nftables"]:
        for expr in item.get("rule", {}).get("expr", ()):
            if "counter" in expr:
                return int(expr["counter"]["packets"])
    raise AssertionError("no counter in the test's table")
