"""External IPs and a LoadBalancer IP with source ranges, built for real and proven.

`--load-balancer` adds default/web-lb (web's pods behind an external IP and a
LoadBalancer IP that only 172.18.100.0/24 may reach) and the `outside` namespace: a
client on the underlay whose routes send those IPs to a node, with one address in the
source range and one outside it. `--traffic-policy-local` gives web-local an external
IP (routed to node2, which has no endpoint of it) and a LoadBalancer IP (routed to
node1, which has). kube-proxy's rules are written as kube-proxy writes them in each
mode (iptables: KUBE-EXT-, KUBE-FW-, KUBE-PROXY-FIREWALL; nftables: service-ips
elements to external-, firewall-ips to a firewall- chain). Real traffic from outside
and the kernel's conntrack entries then say who answered and whether the client's
address was kept, as `podpath trace` from the outside namespace predicts.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest
from topology_proof import ordered, snapshots

from podpath.analysis.index import SnapshotIndex
from podpath.conntrack import ConntrackEntry, parse_conntrack
from podpath.lab.outside import OUTSIDE_NETNS
from podpath.lab.plan import LB_SOURCE_RANGE, OUTSIDE_ALLOWED, OUTSIDE_REFUSED
from podpath.trace.engine import trace
from podpath.trace.model import Branch
from podpath.trace.probe import Probe

if TYPE_CHECKING:
    from podpath.lab import Lab, ServiceRecord

pytestmark = pytest.mark.lab

NODES = ("node1", "node2")
NETNS = f"/run/netns/{OUTSIDE_NETNS}"
# What refuses a source outside loadBalancerSourceRanges, in each mode: the filter
# table's drop of a packet KUBE-FW- did not DNAT, or the firewall- chain before DNAT.
FIREWALL_DROP = {
    "iptables": '"default/web-lb:http traffic not accepted by KUBE-FW-',
    "nftables": "firewall-",
}
NO_LOCAL_DROP = {
    "iptables": '"default/web-local:http has no local endpoints"',
    "nftables": "vmap @no-endpoint-services",
}
_PAGE = re.compile(r"served by pod (\S+/\S+) on ")
# A client bound to one of the outside namespace's addresses: one HTTP request.
_CLIENT = r"""
import socket, sys
s = socket.socket()
s.settimeout(3)
s.bind((sys.argv[1], 0))
s.connect((sys.argv[2], int(sys.argv[3])))
s.sendall(b"GET / HTTP/1.0\r\nUser-Agent: podpath-lab\r\n\r\n")
out = b""
while chunk := s.recv(4096):
    out += chunk
sys.stdout.write(out.decode(errors="replace"))
"""


@pytest.fixture(scope="module", params=["iptables", "nftables"])
def lb_lab(request: pytest.FixtureRequest) -> Iterator[Lab]:
    """A private 2-node lab with web-lb, web-local and the outside client, in one mode."""
    from podpath.lab import LabSpec, running_lab

    mode = str(request.param)
    spec = LabSpec(
        f"t{os.getpid()}-lb-{mode[:3]}",
        nodes=2,
        pods=3,
        services=4,
        proxy_mode=mode,
        traffic_policy_local=True,
        load_balancer=True,
    )
    with running_lab(spec) as lab:
        yield lab


@pytest.fixture(scope="module")
def indexes(lb_lab: Lab) -> list[SnapshotIndex]:
    """A snapshot of each node by the real CLI, after the outside client met node1 and node2."""
    web_lb = _svc(lb_lab, "default/web-lb")
    local = _svc(lb_lab, "default/web-local")
    # Real traffic first: the outside namespace's neighbour entries for both nodes.
    _request(lb_lab, OUTSIDE_ALLOWED, web_lb.external_ips[0], web_lb.port)
    _request(lb_lab, OUTSIDE_ALLOWED, local.external_ips[0], local.port)
    return ordered(snapshots(lb_lab))


def _svc(lab: Lab, ref: str) -> ServiceRecord:
    (svc,) = lab.service(ref)
    return svc


def _mode(lab: Lab) -> str:
    return lab.record.spec.proxy_mode


def _request(lab: Lab, source: str, ip: str, port: int) -> str | None:
    """One real HTTP request from the outside namespace, from `source`: the pod that
    answered, or None when nothing did."""
    done = lab.exec(
        "node1",
        ["nsenter", f"--net={NETNS}", "--", sys.executable, "-c", _CLIENT, source, ip, str(port)],
        timeout=15,
        check=False,
    )
    page = _PAGE.search(done.stdout)
    return page.group(1) if done.returncode == 0 and page else None


def _conntrack(lab: Lab, node: str, source: str, ip: str) -> tuple[ConntrackEntry, ...]:
    """The kernel's TCP entries of one client toward one address, on a node."""
    done = lab.exec(
        node,
        ["conntrack", "-L", "-p", "tcp", "--orig-src", source, "--orig-dst", ip],
        check=False,
    )
    return parse_conntrack(done.stdout)


def _endpoint_of(lab: Lab, ref: str) -> tuple[str, int]:
    return (lab.pod(ref).ip, 80)


def _delivered(branches: tuple[Branch, ...], svc: ServiceRecord) -> None:
    assert {(b.packet.dst, b.packet.dport) for b in branches} == set(svc.endpoints), branches
    assert all(b.verdict == "delivered" for b in branches), [b.reason for b in branches]


@pytest.mark.parametrize("which", ["external_ips", "lb_ips"])
def test_allowed_client_reaches_web_lb_masqueraded(
    lb_lab: Lab, indexes: list[SnapshotIndex], which: str
) -> None:
    """From inside the source range, web-lb's external and LB IPs reach one of its pods,
    SNATed by node1 (externalTrafficPolicy Cluster): trace, answer and conntrack agree."""
    svc = _svc(lb_lab, "default/web-lb")
    ip = getattr(svc, which)[0]
    result = trace(indexes, Probe(f"netns:{OUTSIDE_NETNS}", f"{ip}:{svc.port}"))
    assert result.probe["src"] == OUTSIDE_ALLOWED
    _delivered(result.branches, svc)
    assert all(b.packet.src != OUTSIDE_ALLOWED for b in result.branches)  # masqueraded
    served = _request(lb_lab, OUTSIDE_ALLOWED, ip, svc.port)
    assert served is not None and _endpoint_of(lb_lab, served) in svc.endpoints
    entries = _conntrack(lb_lab, "node1", OUTSIDE_ALLOWED, ip)
    assert entries
    for e in entries:
        assert (e.reply.src, e.reply.sport) in svc.endpoints
        assert e.reply.dst != OUTSIDE_ALLOWED  # the endpoint answers node1, not the client
    predicted = {b.packet.src for b in result.branches if b.packet.dst == e.reply.src}
    assert predicted == {e.reply.dst}  # the trace's masquerade address is the kernel's


def test_refused_source_is_dropped_by_web_lbs_firewall(
    lb_lab: Lab, indexes: list[SnapshotIndex]
) -> None:
    """From outside loadBalancerSourceRanges the LB IP is dropped where the trace says,
    naming web-lb; the real connection times out and conntrack holds no DNAT for it."""
    svc = _svc(lb_lab, "default/web-lb")
    assert svc.source_ranges == (LB_SOURCE_RANGE,)
    ip = svc.lb_ips[0]
    (branch,) = trace(indexes, Probe(OUTSIDE_REFUSED, f"{ip}:{svc.port}")).branches
    assert branch.verdict == "dropped", branch.reason
    assert FIREWALL_DROP[_mode(lb_lab)] in branch.reason, branch.reason
    assert "default/web-lb" in branch.reason, branch.reason
    assert _request(lb_lab, OUTSIDE_REFUSED, ip, svc.port) is None
    for e in _conntrack(lb_lab, "node1", OUTSIDE_REFUSED, ip):
        assert (e.reply.src, e.reply.sport) not in svc.endpoints, e


def test_refused_source_still_reaches_the_external_ip(
    lb_lab: Lab, indexes: list[SnapshotIndex]
) -> None:
    """Source ranges guard only the LB IP: the same client reaches web-lb's external IP."""
    svc = _svc(lb_lab, "default/web-lb")
    ip = svc.external_ips[0]
    result = trace(indexes, Probe(OUTSIDE_REFUSED, f"{ip}:{svc.port}"))
    _delivered(result.branches, svc)
    served = _request(lb_lab, OUTSIDE_REFUSED, ip, svc.port)
    assert served is not None and _endpoint_of(lb_lab, served) in svc.endpoints


def test_local_policy_lb_ip_keeps_the_client_address(
    lb_lab: Lab, indexes: list[SnapshotIndex]
) -> None:
    """web-local's LB IP, routed to node1 (its endpoints' node): delivered to a node1 pod
    with the client's address kept, in the trace and in node1's conntrack entry."""
    svc = _svc(lb_lab, "default/web-local")
    ip = svc.lb_ips[0]
    result = trace(indexes, Probe(f"netns:{OUTSIDE_NETNS}", f"{ip}:{svc.port}"))
    _delivered(result.branches, svc)
    assert all(b.packet.src == OUTSIDE_ALLOWED for b in result.branches)
    served = _request(lb_lab, OUTSIDE_ALLOWED, ip, svc.port)
    assert served is not None and _endpoint_of(lb_lab, served) in svc.endpoints
    entries = _conntrack(lb_lab, "node1", OUTSIDE_ALLOWED, ip)
    assert entries
    for e in entries:
        assert (e.reply.src, e.reply.sport) in svc.endpoints
        assert e.reply.dst == OUTSIDE_ALLOWED  # no SNAT


def test_local_policy_external_ip_on_a_node_without_endpoints_is_dropped(
    lb_lab: Lab, indexes: list[SnapshotIndex]
) -> None:
    """web-local's external IP, routed to node2 (no endpoint of its own): the trace drops
    it at kube-proxy's no-local-endpoints rule on node2; the real request times out."""
    svc = _svc(lb_lab, "default/web-local")
    ip = svc.external_ips[0]
    (branch,) = trace(indexes, Probe(f"netns:{OUTSIDE_NETNS}", f"{ip}:{svc.port}")).branches
    assert branch.verdict == "dropped", branch.reason
    assert NO_LOCAL_DROP[_mode(lb_lab)] in branch.reason, branch.reason
    assert branch.hops[-1].node == "node2", branch.hops[-1]
    assert _request(lb_lab, OUTSIDE_ALLOWED, ip, svc.port) is None


def test_ls_services_shows_external_and_lb_ips_and_source_ranges(
    lb_lab: Lab, run_podpath: Any
) -> None:
    """`ls services` (JSON and text) reads web-lb's and web-local's IPs and ranges back."""
    web_lb, local = _svc(lb_lab, "default/web-lb"), _svc(lb_lab, "default/web-local")
    done = run_podpath(lb_lab, "node1", "ls", "services", "--json")
    assert done.returncode == 0, done.stderr
    rows = {r["name"]: r for r in json.loads(done.stdout)["services"]}
    for svc in (web_lb, local):
        row = rows[svc.name]
        assert tuple(row["source_ranges"]) == svc.source_ranges, row
        shown = (set(row["load_balancer_ips"]), set(row["external_ips"]))
        if _mode(lb_lab) == "nftables" and not svc.source_ranges:
            # An LB IP without source ranges is a service-ips element to external-,
            # exactly as an external IP is: nftables mode's rules cannot tell them apart.
            assert shown == (set(), {*svc.external_ips, *svc.lb_ips}), row
            continue
        assert row["type"] == "LoadBalancer", row
        assert shown == (set(svc.lb_ips), set(svc.external_ips)), row
    text = run_podpath(lb_lab, "node1", "ls", "services").stdout
    (line,) = [x for x in text.splitlines() if " web-lb " in x]
    assert f"{web_lb.lb_ips[0]},{web_lb.external_ips[0]}" in line, line
    assert LB_SOURCE_RANGE in line, line


def test_doctor_tells_the_source_ranges_as_the_service_asks(
    lb_lab: Lab, indexes: list[SnapshotIndex]
) -> None:
    """The doctor's outside client is outside web-lb's ranges: its LB IP's drop (as the
    kernel drops a refused client above) is `lb-source-ranges` (info), the external IP of
    the same Service is not named dropped, and nothing is critical on this healthy lab."""
    from podpath.doctor import diagnose

    web_lb = _svc(lb_lab, "default/web-lb")
    report = diagnose(indexes)
    assert not report.critical, [(f.check, f.subject) for f in report.findings]
    told = [f for f in report.findings if f.check == "lb-source-ranges"]
    assert told and all(f.grade == "info" for f in told)
    reached = {p.destination for f in told for p in f.paths}
    assert reached == {f"{ip}:{web_lb.port}" for ip in web_lb.lb_ips}
    assert all(LB_SOURCE_RANGE in f.cause for f in told)
