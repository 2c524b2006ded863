"""`podpath doctor` on real lab nodes: each fault built for real, then found and proven.

Every check has a test that breaks a node of a private lab the way the field breaks
them (a sysctl, a deleted route or FDB entry, a killed server, hairpin mode off,
Calico-shaped policy rules, a second iptables backend, a leaked IPAM file, a stale
conntrack entry), runs the real `podpath doctor --json` inside the node (or over the
snapshots of every node), and checks the finding: its grade, the hop that decided it,
its evidence and fix. Where the fault fails a path, `lab probe` then sends real
traffic along it and the kernel must fail it as predicted. The healthy shared lab must
give no finding but the Service the lab leaves without endpoints on purpose.

A conntrack table near full is built without writing any sysctl: the kernel compares
each network namespace's own nf_conntrack_count with the machine's global
nf_conntrack_max (podpath.lab.conntrack_fill), so real UDP flows from a pod fill its
node's table alone, and the table is flushed after (that namespace's only).
"""

from __future__ import annotations

import ipaddress
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from sidecar_rules import istio_commands
from topology_proof import snapshot_text

from podpath.analysis.problems import CONNTRACK_CRITICAL, CONNTRACK_WARN
from podpath.lab import conntrack_fill
from podpath.snapshot.codec import load_path, loads
from podpath.trace.engine import trace
from podpath.trace.probe import Probe

if TYPE_CHECKING:
    from collections.abc import Callable

    from podpath.lab import Lab, PodRecord, ProbeResult
    from podpath.snapshot.model import Snapshot

pytestmark = pytest.mark.lab

Report = dict[str, Any]
_PID = re.compile(r'\("[^"]*",pid=(\d+),fd=\d+\)')


def _doctor(lab: Lab, node: str, run_podpath: Any) -> tuple[int, Report]:
    """`podpath doctor --json` run live inside a node: its exit status and report."""
    done = run_podpath(lab, node, "doctor", "--json")
    assert done.returncode in (0, 1), done.stderr
    report: Report = json.loads(done.stdout)
    return done.returncode, report


def _doctor_all(lab: Lab, run_podpath: Any, tmp_path: Path) -> tuple[int, Report]:
    """`podpath doctor --json --snapshot A B` over a snapshot of every node of the lab."""
    files = []
    for record in lab.record.nodes:
        path = tmp_path / f"{record.name}.json"
        path.write_text(snapshot_text(lab, record.name))
        files.append(str(path))
    argv = [sys.executable, "-m", "podpath", "doctor", "--json", "--snapshot", *files]
    done2 = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False)
    assert done2.returncode in (0, 1), done2.stderr
    report: Report = json.loads(done2.stdout)
    return done2.returncode, report


def _checks(report: Report) -> set[tuple[str, str]]:
    return {(f["grade"], f["check"]) for f in report["findings"]}


def _one(report: Report, check: str, subject: str | None = None) -> dict[str, Any]:
    found = [
        f for f in report["findings"] if f["check"] == check and subject in (None, f["subject"])
    ]
    assert len(found) == 1, [f["id"] for f in report["findings"]]
    first: dict[str, Any] = found[0]
    return first


def _criticals(report: Report) -> list[dict[str, Any]]:
    return [f for f in report["findings"] if f["grade"] == "critical"]


def _web(lab: Lab, node: str = "node1") -> PodRecord:
    return next(p for p in lab.pods_on(node) if p.app == "web")


def _other(lab: Lab, node: str = "node1") -> PodRecord:
    """A pod of the node that is no web pod (the dns pod), a client of web's Services."""
    return next(p for p in lab.pods_on(node) if p.app != "web")


def _vip(lab: Lab, name: str = "default/web") -> str:
    return lab.service(name)[0].cluster_ip


def _routes(lab: Lab, pod: PodRecord) -> list[dict[str, Any]]:
    """`ip -j route` in a pod's network namespace."""
    argv = ["nsenter", f"--net={pod.netns_path}", "ip", "-j", "route"]
    routes: list[dict[str, Any]] = json.loads(lab.exec(pod.node, argv).stdout)
    return routes


def _sh(lab: Lab, node: str, script: str) -> str:
    return lab.exec(node, ["sh", "-c", script]).stdout


# --- the healthy lab: no false alarm -------------------------------------------------


@pytest.fixture(scope="module")
def healthy(shared_lab: Lab, run_podpath: Any) -> tuple[int, Report]:
    """The doctor run live in node1 of the shared (healthy) lab."""
    return _doctor(shared_lab, "node1", run_podpath)


def test_the_healthy_lab_has_only_the_service_it_leaves_without_endpoints(
    shared_lab: Lab, healthy: tuple[int, Report]
) -> None:
    """One warning (default/noep, which the lab makes without endpoints), exit 0; the
    kernel agrees: noep refuses, web answers."""
    status, report = healthy
    assert status == 0
    assert _checks(report) == {("warning", "service-no-endpoints")}
    noep = _one(report, "service-no-endpoints")
    assert noep["subject"] == "Service default/noep:http"
    assert "REJECT" in (noep["hop"] or "") and "kubectl get endpointslices" in noep["fix"]
    assert report["coverage"]["paths"] > 0 and report["coverage"]["service_ports"] >= 4
    client = _web(shared_lab)
    assert not shared_lab.probe(client.ref, _vip(shared_lab, "default/noep"), 80, wait=1).ok
    assert shared_lab.probe(client.ref, _vip(shared_lab), 80).ok


def test_a_dual_stack_service_without_endpoints_names_both_cluster_ips(
    make_lab: Callable[..., Lab], run_podpath: Any
) -> None:
    """A dual-stack Service port without endpoints is one finding for its paths to both
    ClusterIPs; its cause names each (it named the first path's IPv4 one only). Real
    traffic: both refused."""
    lab = make_lab(nodes=1, pods=2, services=4, ip_family="dual")
    _status, report = _doctor(lab, "node1", run_podpath)
    noep = _one(report, "service-no-endpoints")
    v4, v6 = (p.cluster_ip for p in lab.service("default/noep"))
    assert ":" in v6 and ":" not in v4
    assert noep["cause"].endswith(f"every connection to {v4}:80/tcp and [{v6}]:80/tcp")
    assert {p["to"] for p in noep["paths"]} >= {f"{v4}:80", f"[{v6}]:80"}
    client = _web(lab)
    for address, family in ((v4, 4), (v6, 6)):
        # Refused at the SYN's retransmission, ~1 s on: the first SYN's ICMP error comes
        # back while connect() still holds its socket, which keeps it as a soft error.
        refused = lab.probe(client.ref, address, 80, family=family)
        assert not refused.ok and "refused" in refused.error.lower(), refused


def test_a_policy_engines_accept_ahead_of_kube_proxys_reject_is_named(
    make_lab: Callable[..., Lab], run_podpath: Any
) -> None:
    """kube-router's KUBE-ROUTER-FORWARD (hooked first in FORWARD) accepts what its
    policies let through before kube-proxy's KUBE-SERVICES jump, whose REJECT is how
    iptables mode refuses a Service without endpoints: a pod's connection to it leaves
    the node untranslated and times out, while the node's own is refused (OUTPUT meets
    the REJECT). The doctor named that a missing DNAT and told to restart kube-proxy
    (critical); it now names the ACCEPT and the REJECT it passes. Real traffic agrees."""
    lab = make_lab(nodes=1, pods=3, services=4, policy="kube-router")
    _status, report = _doctor(lab, "node1", run_podpath)
    assert "service-not-dnated" not in {c for _, c in _checks(report)}, report["findings"]
    bypassed = _one(report, "service-reject-bypassed")
    assert bypassed["grade"] == "warning" and bypassed["subject"] == "Service default/noep:http"
    assert "kube-router's KUBE-ROUTER-FORWARD #" in bypassed["cause"], bypassed["cause"]
    assert bypassed["evidence"][0].endswith("-m mark --mark 0x20000/0x20000 -j ACCEPT")
    assert '"default/noep:http has no endpoints"' in bypassed["evidence"][1]
    vip = _vip(lab, "default/noep")
    pods = {p["from"] for p in bypassed["paths"]}
    assert pods == {p.ref for p in lab.pods_on("node1")}, bypassed["paths"]
    timed_out = lab.probe(_web(lab).ref, vip, 80, wait=2)
    assert not timed_out.ok and "timed out" in timed_out.error, timed_out
    refused = lab.probe("node1", vip, 80)
    assert not refused.ok and "refused" in refused.error.lower(), refused


def test_a_pod_whose_default_route_is_gone_is_named_not_its_node(
    make_lab: Callable[..., Lab], run_podpath: Any
) -> None:
    """A pod's default route deleted from inside it: every Service and every other node's
    pod is unreachable from it (network unreachable). The doctor blamed the node ("give
    the node a route for Service addresses"); it now names the pod, and the route the
    node's other pods have, which puts it back. Real traffic: unreachable, then answered
    once the route the fix names is added."""
    lab = make_lab(nodes=1, pods=2, services=3)
    web, dns = _web(lab), _other(lab)
    pod_ns = ["nsenter", f"--net={web.netns_path}", "ip", "route"]
    lab.exec("node1", [*pod_ns, "del", "default"])
    _status, report = _doctor(lab, "node1", run_podpath)
    found = _one(report, "no-route")
    assert found["subject"] == f"pod {web.ref}", found
    assert found["cause"].startswith(f"pod {web.ref}'s own routing table has no route to ")
    (default,) = [r for r in _routes(lab, dns) if r["dst"] == "default"]
    given = f"default via {default['gateway']} dev {default['dev']}"
    assert f"(the node's other pods have `{given}`)" in found["fix"], found["fix"]
    assert {p["from"] for p in found["paths"]} == {web.ref}, found["paths"]
    unreachable = lab.probe(web.ref, _vip(lab), 80)
    assert not unreachable.ok and "unreachable" in unreachable.error.lower(), unreachable
    lab.exec("node1", [*pod_ns, "add", *given.split()])
    assert lab.probe(web.ref, _vip(lab), 80).ok


def test_a_pods_veth_taken_off_its_bridge_is_named(
    make_lab: Callable[..., Lab], run_podpath: Any
) -> None:
    """A pod's host veth taken off cni0 (what a bridge deleted and made again leaves its
    old pods with): nothing the node sends the pod by cni0 reaches it. The doctor said
    neighbour-unresolved three times over (ARP for the pod on cni0, for the dns pod on the
    pod's eth0, ...), never the veth; it now names the pod, its veth and the command that
    puts it back (the hairpin mode the bridge plugin gave it included: a port made again
    starts without), for every path it breaks. Real traffic: lost both ways, then
    answered once the fix is run, and the doctor finds nothing critical then."""
    lab = make_lab(nodes=1, pods=2, services=3)
    web, dns = _web(lab), _other(lab)
    lab.exec("node1", ["ip", "link", "set", web.host_veth, "nomaster"])
    _status, report = _doctor(lab, "node1", run_podpath)
    assert {c for g, c in _checks(report) if g == "critical"} == {"bridge-port-detached"}
    found = _one(report, "bridge-port-detached")
    assert found["subject"] == f"pod {web.ref}", found
    assert found["fix"].startswith(f"ip link set {web.host_veth} master cni0"), found["fix"]
    assert f"{web.host_veth}: no master" in found["evidence"]
    shown = json.loads(lab.exec("node1", ["ip", "-j", "link", "show", web.host_veth]).stdout)
    assert "master" not in shown[0], shown
    assert {web.ref, dns.ref} <= {p["from"] for p in found["paths"]}, found["paths"]
    assert not lab.probe(dns.ref, web.ip, 80, wait=1).ok
    assert not lab.probe(web.ref, dns.ip, 53, proto="udp", wait=1).ok
    fix = found["fix"].split(" (as its other ports")[0].split(", or ")[0]
    assert fix == f"ip link set {web.host_veth} master cni0; bridge link set dev " + (
        f"{web.host_veth} hairpin on"
    ), found["fix"]
    for command in fix.split("; "):
        lab.exec("node1", command.split())
    # Routed while detached, a pod learns its gateway as the veth's own MAC (the node
    # answers ARP on the veth) and keeps it, once the veth is back, until an ARP from the
    # node replaces it: pinned here, so that every frame the pod routes goes to that MAC.
    # A frame in by a port to its own MAC (a local fdb entry) goes up to the node's
    # stack: the doctor judged it bridged back to the pod and called the entry
    # misplaced (critical), while real traffic answers.
    veth = json.loads(lab.exec("node1", ["ip", "-j", "link", "show", web.host_veth]).stdout)[0]
    gateway = next(r["gateway"] for r in _routes(lab, web) if r["dst"] == "default")
    pin = ["ip", "neigh", "replace", gateway, "lladdr", veth["address"], "dev", "eth0"]
    lab.exec("node1", ["nsenter", f"--net={web.netns_path}", *pin, "nud", "permanent"])
    status, healed = _doctor(lab, "node1", run_podpath)
    assert status == 0 and not [g for g, _ in _checks(healed) if g == "critical"], healed
    assert lab.probe(web.ref, _vip(lab), 80).ok
    # The dns pod's ARP for the web pod, begun while it was cut off, fails a few seconds
    # on (its last probe): a connection then is told "no route to host".
    assert any(lab.probe(dns.ref, web.ip, 80).ok for _ in range(5))


def test_a_bridge_deleted_from_under_its_pods_is_named_once(
    make_lab: Callable[..., Lab], run_podpath: Any
) -> None:
    """cni0 deleted (a network manager's reload, a cleanup script): every pod's host veth
    is on no bridge and the node's route to its pods' network went with cni0's address.
    The doctor said neighbour-unresolved and no-route, a finding per symptom; it now
    says once that the bridge the CNI config names is gone, for every path it breaks.
    Real traffic: nothing reaches the pods."""
    lab = make_lab(nodes=1, pods=2, services=3)
    web, dns = _web(lab), _other(lab)
    lab.exec("node1", ["ip", "link", "del", "cni0"])
    _status, report = _doctor(lab, "node1", run_podpath)
    assert {c for g, c in _checks(report) if g == "critical"} == {"bridge-port-detached"}
    (found,) = [f for f in report["findings"] if f["check"] == "bridge-port-detached"]
    assert found["subject"] == "bridge cni0", found
    assert "that the CNI config /etc/cni/net.d/" in found["cause"], found["cause"]
    assert {f"{p.host_veth}: no master ({p.name})" for p in (web, dns)} <= set(found["evidence"])
    assert {web.ref, dns.ref} <= {p["from"] for p in found["paths"]}, found["paths"]
    assert not lab.probe(dns.ref, web.ip, 80, wait=1).ok
    assert not lab.probe("node1", web.ip, 80, wait=1).ok


def test_a_pod_whose_veth_pair_was_deleted_is_named_once(
    make_lab: Callable[..., Lab], run_podpath: Any
) -> None:
    """A pod's host veth deleted (and its eth0 with it: a cleanup script taking it for a
    leftover): the pod keeps running with lo alone. The doctor said neighbour-unresolved
    twice and no-route for the pod's own table; it now says once that the pod's eth0 is
    gone, for every path it breaks, and that only a new sandbox gets a network. Real
    traffic: nothing reaches the pod's address."""
    lab = make_lab(nodes=1, pods=2, services=3)
    web, dns = _web(lab), _other(lab)
    lab.exec("node1", ["ip", "link", "del", web.host_veth])
    _status, report = _doctor(lab, "node1", run_podpath)
    assert {c for g, c in _checks(report) if g == "critical"} == {"pod-interface-gone"}
    found = _one(report, "pod-interface-gone")
    assert found["subject"] == f"pod {web.ref}", found
    assert found["evidence"] == [f"pod {web.ref}'s network namespace: lo"], found
    assert f"kubectl delete pod -n {web.namespace} {web.name}" in found["fix"]
    assert {web.ref, dns.ref} <= {p["from"] for p in found["paths"]}, found["paths"]
    assert not lab.probe(dns.ref, web.ip, 80, wait=1).ok


def test_a_blackhole_route_over_service_addresses_is_named_with_its_error(
    make_lab: Callable[..., Lab], run_podpath: Any
) -> None:
    """A blackhole route over the Service CIDR on the node: the node's own connections to
    Services are refused by the route lookup, before kube-proxy's DNAT, with EINVAL, and
    nothing is sent; the pods' are DNATed first and work. The trace said "silently
    discarded" and the doctor told to give the node a route for Service addresses; the
    trace now says what the sender gets, the doctor which route to delete. Real traffic:
    "Invalid argument" from the node, answered from a pod, answered from the node once
    the route is deleted as the fix says."""
    lab = make_lab(nodes=1, pods=2, services=3)
    lab.exec("node1", ["ip", "route", "add", "blackhole", "10.96.0.0/12"])
    _status, report = _doctor(lab, "node1", run_podpath)
    found = _one(report, "no-route")
    assert "the sender gets EINVAL, Invalid argument, nothing is sent" in found["cause"]
    fix = "ip route del blackhole 10.96.0.0/12"
    assert found["fix"].startswith(f"delete the blackhole route 10.96.0.0/12 ({fix})")
    assert {p["from"] for p in found["paths"]} == {"node1"}, found["paths"]
    refused = lab.probe("node1", _vip(lab), 80, wait=1)
    assert not refused.ok and "invalid argument" in refused.error.lower(), refused
    assert lab.probe(_other(lab).ref, _vip(lab), 80).ok
    lab.exec("node1", fix.split())
    assert lab.probe("node1", _vip(lab), 80).ok


def test_a_routed_pods_route_gone_from_its_node_is_named(
    make_lab: Callable[..., Lab], run_podpath: Any
) -> None:
    """Calico: a pod's route on its node (`POD_IP dev caliXXX`, Felix's) deleted, its
    veth up: what is sent to the pod falls into the block's blackhole. The doctor said
    no-route for the node with host-gw's fix (the remote pod CIDR via the node that owns
    it); it now names the pod and the route to add. Real traffic: lost, then answered
    once the route the fix names is added."""
    lab = make_lab(nodes=1, pods=2, services=3, cni="calico")
    web, dns = _web(lab), _other(lab)
    lab.exec("node1", ["ip", "route", "del", web.ip, "dev", web.host_veth])
    _status, report = _doctor(lab, "node1", run_podpath)
    found = _one(report, "no-route")
    assert found["subject"] == f"pod {web.ref}", found
    assert "blackhole route 10.244.0.0/24" in found["cause"], found["cause"]
    fix = f"ip route add {web.ip} dev {web.host_veth}"
    assert found["fix"].startswith(f"{fix}: "), found["fix"]
    assert not lab.probe(dns.ref, web.ip, 80, wait=1).ok
    lab.exec("node1", fix.split())
    assert lab.probe(dns.ref, web.ip, 80).ok


def test_an_ipv6_lab_judges_nodeports_on_the_nodes_ipv6_address(
    make_lab: Callable[..., Lab], run_podpath: Any
) -> None:
    """kube-proxy programs an IPv6 Service's NodePort in ip6tables only: the doctor aims
    it at the node's IPv6 address (aimed at its IPv4 one, every NodePort was a false
    CRITICAL no-listener), and every NodePort is still judged."""
    lab = make_lab(nodes=1, pods=2, services=3, ip_family="ipv6")
    status, report = _doctor(lab, "node1", run_podpath)
    without = (
        {("warning", "service-no-endpoints")}
        if any(not s.endpoints for s in lab.services)
        else set()
    )
    assert _checks(report) == without, report["findings"]
    assert status == 0
    coverage = report["coverage"]
    nodeports = sum(1 for s in lab.services if s.node_port is not None)
    assert nodeports and all(":" in s.cluster_ip for s in lab.services)
    # Each Service port from every pod position and the node, each NodePort from outside,
    # and each pod to every other pod.
    pods = coverage["pods"]
    expected = (coverage["classes"] + 1) * coverage["service_ports"] + nodeports
    expected += pods * (pods - 1)
    assert coverage["paths"] == expected


def test_a_dual_stack_pods_ipv6_address_is_judged_apart(
    make_lab: Callable[..., Lab], run_podpath: Any, tmp_path: Path
) -> None:
    """Dual stack: node1's ip6tables rejects TCP straight to node2's web pod's IPv6
    address (not DNATed on node1). The doctor over both nodes judges each pod's path to
    every other pod's address of each family (it aimed at the first, IPv4, one only) and
    names the rule on node1's paths to that IPv6 address. The rule also meets the web
    pod's own IPv6 connections to node1's pods on their way back (node1 did not DNAT
    them); the other pod of node2 is not named by it and works. Before, the two node2
    pods were one class: its first pod's verdicts stood for both, so one of them was
    either blamed for the other's failures or left unjudged (a CI flake of 2026-12-07).
    Real traffic: refused, timed out, answered."""
    lab = make_lab(nodes=2, pods=2, services=3, ip_family="dual")
    web = _web(lab, "node2")
    (neighbour,) = [p for p in lab.pods_on("node2") if p.ref != web.ref]
    v4, v6 = (next(ip for ip in web.ips if (":" in ip) == six) for six in (False, True))
    rule = f"-d {v6}/128 -p tcp -m conntrack ! --ctstate DNAT -j REJECT --reject-with tcp-reset"
    lab.exec("node1", ["ip6tables", "-I", "FORWARD", *rule.split()])
    _status, report = _doctor_all(lab, run_podpath, tmp_path)
    found = [
        f
        for f in report["findings"]
        if f["check"] == "netfilter-drop" and any(v6 in e for e in f["evidence"])
    ]
    paths = {(p["from"], p["to"]) for f in found for p in f["paths"]}
    node1 = {p.ref for p in lab.pods_on("node1")}
    sources = {source for source, _ in paths}
    assert web.ref in sources and sources <= node1 | {web.ref}, report["findings"]
    assert {(source, to) for source, to in paths if source in node1} <= {
        (ref, f"[{v6}]:80") for ref in node1
    }, report["findings"]
    # Every path is IPv6: a dual-stack Service port by its address (its name is the
    # IPv4 port's in `podpath trace --to`).
    assert all(to.startswith("[") for _, to in paths), paths
    # Counted: each node1 pod's path to the address; web's own IPv6 TCP paths to each
    # Service port with an endpoint on node1 and to each node1 pod (every one serves TCP).
    # One class for both node2 pods counted the neighbour's paths too.
    on_node1 = {ip for p in lab.pods_on("node1") for ip in p.ips}
    ports = [
        s
        for s in lab.services
        if ":" in s.cluster_ip and s.protocol == "TCP" and {ip for ip, _ in s.endpoints} & on_node1
    ]
    expected = 2 * len(node1) + len(ports)
    assert sum(f["affected"] for f in found) == expected, report["findings"]
    client = _other(lab)
    refused = lab.probe(client.ref, v6, 80, family=6)
    assert not refused.ok and "refused" in refused.error.lower(), refused
    assert lab.probe(client.ref, v4, 80).ok
    server = next(ip for ip in _web(lab, "node1").ips if ":" in ip)
    assert not lab.probe(web.ref, server, 80, family=6, wait=1).ok
    assert lab.probe(neighbour.ref, server, 80, family=6).ok


def test_every_node_together_has_no_more(shared_lab: Lab, run_podpath: Any, tmp_path: Path) -> None:
    """Pod to every other pod across both nodes, every Service from each: nothing more."""
    status, report = _doctor_all(shared_lab, run_podpath, tmp_path)
    assert status == 0
    assert _checks(report) == {("warning", "service-no-endpoints")}
    assert report["coverage"]["nodes"] == ["node1", "node2"]
    assert report["coverage"]["pods"] == len(shared_lab.pods)


def test_ls_problems_lists_the_doctors_findings(
    shared_lab: Lab, run_podpath: Any, healthy: tuple[int, Report]
) -> None:
    """`ls problems` is the same analysis: the same findings, by id."""
    done = run_podpath(shared_lab, "node1", "ls", "problems", "--json")
    assert done.returncode == 0, done.stderr
    listed = json.loads(done.stdout)["problems"]
    assert [p["id"] for p in listed] == [f["id"] for f in healthy[1]["findings"]]


# --- faults on the path, proven by real traffic --------------------------------------


def test_nothing_listening_behind_a_service(make_lab: Callable[..., Lab], run_podpath: Any) -> None:
    """web's only pod loses its server: critical no-listener for each Service it backs,
    decided at delivery; the probe is refused."""
    lab = make_lab(nodes=1, pods=2, services=3)
    web = _web(lab)
    ss = _sh(lab, "node1", f"nsenter --net={web.netns_path} -- ss -H -tlnp 'sport = :80'")
    (pid,) = set(_PID.findall(ss))
    lab.exec("node1", ["kill", "-9", pid])
    lab.exec("node1", ["sh", "-c", f"while kill -0 {pid} 2>/dev/null; do sleep 0.1; done"])
    status, report = _doctor(lab, "node1", run_podpath)
    assert status == 1
    # web's NodePort is judged from outside the cluster too (the node's eth0 address).
    assert {f["subject"] for f in report["findings"] if f["check"] == "no-listener"} == {
        "Service default/web:http",
        "Service default/web:http (NodePort)",
        "Service default/web-sticky:http",
    }
    finding = _one(report, "no-listener", "Service default/web:http")
    assert finding["grade"] == "critical"
    assert f"nothing listens on {web.ip}:80/tcp" in finding["cause"]
    assert "delivered to pod" in finding["hop"] and "targetPort" in finding["fix"]
    answer = lab.probe(_other(lab).ref, _vip(lab), 80)
    assert not answer.ok and "refused" in answer.error.lower()

    # A server on 127.0.0.1:80 only: still refused from outside the pod. Before, the fix
    # said to point targetPort at 80, the port already asked for.
    server = "python3 -m http.server --bind 127.0.0.1 80 >/dev/null 2>&1 &"
    _sh(lab, "node1", f"nsenter --net={web.netns_path} -- sh -c '{server}'")
    _sh(
        lab,
        "node1",
        f"until nsenter --net={web.netns_path} -- ss -Htln | grep -q :80; do sleep 0.1; done",
    )
    finding = _one(_doctor(lab, "node1", run_podpath)[1], "no-listener", "Service default/web:http")
    assert finding["evidence"] == [f"pod {web.ref} listens on 127.0.0.1:80/tcp"]
    assert finding["fix"].startswith("the server listens on 127.0.0.1:80 only, which nothing")
    answer = lab.probe(_other(lab).ref, _vip(lab), 80)
    assert not answer.ok and "refused" in answer.error.lower()


# A UDP server bound to the DNS ClusterIP on the node, as NodeLocal DNSCache's node-cache.
_NODE_CACHE = """
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("{vip}", 53))
while True:
    data, peer = s.recvfrom(4096)
    s.sendto(b"node-local-dns: " + data, peer)
"""


def test_node_local_dns_cache_answers_for_the_dns_cluster_ip(
    make_lab: Callable[..., Lab], run_podpath: Any
) -> None:
    """NodeLocal DNSCache's shape: the DNS ClusterIP on the node itself, raw NOTRACK rules
    that keep kube-proxy's DNAT off it, and a node process answering on UDP 53. A pod's
    query is answered by the node (the trace says so, hop by hop); TCP 53, which nothing
    on the node serves, is refused, and the doctor says what answers there instead of
    advising a targetPort (before: "point the Service's targetPort ... (53 -> PORT)",
    PORT a node socket on 127.0.0.1)."""
    lab = make_lab(nodes=1, pods=2, services=3)
    client = _web(lab)
    vip = _vip(lab, "kube-system/kube-dns")
    script = [f"ip addr add {vip}/32 dev lo"]
    for proto in ("udp", "tcp"):
        script += [
            f"iptables -t raw -A PREROUTING -d {vip}/32 -p {proto} --dport 53 -j NOTRACK",
            f"iptables -t raw -A OUTPUT -s {vip}/32 -p {proto} --sport 53 -j NOTRACK",
        ]
    _sh(lab, "node1", " && ".join(script))
    cache = _NODE_CACHE.format(vip=vip).replace("'", "")
    _sh(lab, "node1", f"nohup python3 -c '{cache}' >/dev/null 2>&1 &")
    _sh(lab, "node1", "until ss -Hlun | grep -q :53; do sleep 0.1; done")

    done = run_podpath(
        lab, "node1", "trace", "--from", client.ref, "--to", f"{vip}:53", "--proto", "udp", "--json"
    )
    assert done.returncode == 0, done.stderr
    (branch,) = json.loads(done.stdout)["branches"]
    assert branch["verdict"] == "delivered" and "python3" in branch["reason"], branch["reason"]
    assert branch["reason"].startswith("delivered to node node1 (root netns)")
    answer = lab.probe(client.ref, vip, 53, "udp")
    assert answer.ok and answer.answer.startswith("node-local-dns: "), answer

    finding = _one(_doctor(lab, "node1", run_podpath)[1], "no-listener")
    assert finding["subject"] == "Service kube-system/kube-dns:dns-tcp"
    assert finding["fix"].startswith(f"{vip} reaches the node untranslated (a NOTRACK rule")
    assert "targetPort" not in finding["fix"]
    answer = lab.probe(client.ref, vip, 53, "tcp")
    assert not answer.ok and "refused" in answer.error.lower(), answer


def test_an_address_two_pods_hold(make_lab: Callable[..., Lab], run_podpath: Any) -> None:
    """web's address also on the dns pod's eth0 (as when IPAM gives one address twice):
    each answers ARP for it, and the dns pod drops what web sends as a martian. Before,
    the doctor blamed rp_filter (fix: accept_local) and a targetPort (80 -> 53); now one
    critical finding names the address, both pods and the one IPAM gave it to, with every
    path it breaks; the trace says either may answer. Real traffic fails."""
    lab = make_lab(nodes=1, pods=2, services=3)
    web, dns = _web(lab), _other(lab)
    enter = ["nsenter", f"--net={dns.netns_path}", "--"]
    lab.exec("node1", [*enter, "ip", "addr", "add", f"{web.ip}/24", "dev", "eth0"])
    status, report = _doctor(lab, "node1", run_podpath)
    assert status == 1
    finding = _one(report, "address-conflict")
    assert [f["id"] for f in _criticals(report)] == [finding["id"]], report["findings"]
    assert finding["subject"] == f"address {web.ip}"
    assert sorted(finding["evidence"]) == sorted(
        [f"pod {web.ref}: eth0 {web.ip}", f"pod {dns.ref}: eth0 {web.ip}"]
    )
    assert f"host-local IPAM gave it to pod {web.ref}" in finding["fix"]
    assert any(p["from"] == web.ref and "kube-dns" in p["to"] for p in finding["paths"])
    assert not lab.probe(web.ref, "kube-system/kube-dns", 53, "udp", wait=1).ok

    lab.exec("node1", ["ip", "neigh", "flush", "dev", "cni0", "to", web.ip])
    done = run_podpath(lab, "node1", "trace", "--from", "node1", "--to", f"{web.ip}:80", "--json")
    assert done.returncode == 0, done.stderr
    (branch,) = json.loads(done.stdout)["branches"]
    assert branch["verdict"] == "uncertain", branch["reason"]
    pair = (f"pod {web.ref}", f"pod {dns.ref}")
    said = [
        f"{web.ip} is an address of {a} and of {b} on cni0: each answers"
        for a, b in (pair, pair[::-1])
    ]
    assert any(s in branch["reason"] for s in said), branch["reason"]


def test_an_ipv6_address_that_failed_duplicate_address_detection(
    make_lab: Callable[..., Lab], run_podpath: Any
) -> None:
    """Dual stack: the dns pod holds web's IPv6 address too (nodad), and web's own copy,
    added again with DAD on, fails it. The kernel does not use a dadfailed address: web
    reaches the DNS Service over IPv6 from its link-local address, which kube-proxy
    masquerades (real traffic answers). Before, address flags were not read: the trace
    sent from the dadfailed address, and no finding named it. Now one finding
    names the address, the pod left without IPv6, and who holds it; the trace picks the
    source the kernel picks."""
    lab = make_lab(nodes=1, pods=2, services=3, ip_family="dual")
    web, dns = _web(lab), _other(lab)
    six = next(ip for ip in web.ips if ":" in ip)
    _sh(lab, "node1", f"nsenter --net={dns.netns_path} -- ip addr add {six}/64 dev eth0 nodad")
    inside = f"nsenter --net={web.netns_path} --"
    _sh(
        lab,
        "node1",
        f"{inside} sysctl -qw net.ipv6.conf.eth0.accept_dad=1 && "
        f"{inside} ip addr del {six}/64 dev eth0 && {inside} ip addr add {six}/64 dev eth0 && "
        f"until {inside} ip -6 addr show dev eth0 | grep -q dadfailed; do sleep 0.1; done",
    )
    status, report = _doctor(lab, "node1", run_podpath)
    assert status == 1
    finding = _one(report, "address-dadfailed")
    assert [f["id"] for f in _criticals(report)] == [finding["id"]], report["findings"]
    assert f"({'pod ' + dns.ref} holds it)" in finding["cause"]
    assert finding["cause"].endswith(f"pod {web.ref} has no other IPv6 address")
    assert finding["evidence"] == [f"pod {web.ref}: eth0 {six} dadfailed"]

    done = run_podpath(
        lab, "node1", "trace", "--from", web.ref, "--to", "kube-system/kube-dns:53", "-6", "--json"
    )
    assert done.returncode == 0, done.stderr
    (branch,) = json.loads(done.stdout)["branches"]
    assert branch["verdict"] == "delivered", branch["reason"]
    route = next(h for h in branch["hops"] if h["kind"] == "route")
    assert any("a link-local one (RFC 6724 rule 2)" in d for d in route["details"]), route
    answer = lab.probe(web.ref, "kube-system/kube-dns", 53, family=6)
    assert answer.ok and answer.served_by == dns.ref, answer


def test_ip_forward_off(make_lab: Callable[..., Lab], run_podpath: Any) -> None:
    """net.ipv4.ip_forward=0 on node1: critical, with the sysctl as evidence; a pod of
    node1 no longer reaches a pod of node2."""
    lab = make_lab(nodes=2, pods=2, services=3)
    lab.exec("node1", ["sysctl", "-qw", "net.ipv4.ip_forward=0"])
    status, report = _doctor(lab, "node1", run_podpath)
    assert status == 1
    finding = _one(report, "ip-forward-off")
    assert finding["grade"] == "critical" and finding["subject"] == "node node1"
    assert "net.ipv4.ip_forward = 0" in finding["evidence"]
    assert "does not forward" in finding["hop"] and "ip_forward=1" in finding["fix"]
    assert not lab.probe(_web(lab).ref, _web(lab, "node2").ip, 80, wait=1).ok


def test_rp_filter_drops_the_way_back(
    make_lab: Callable[..., Lab], run_podpath: Any, tmp_path: Path
) -> None:
    """node1 sends node2's pods the underlay way but their answers come back over VXLAN,
    where rp_filter=1 checks the way back: critical, decided on node1's way back."""
    lab = make_lab(nodes=2, pods=2, services=3)
    node2 = lab.node("node2")
    half = f"{node2.pod_cidr.rsplit('/', 1)[0]}/25"
    lab.exec("node1", ["ip", "route", "add", half, "via", node2.address, "dev", "eth0"])
    lab.exec("node1", ["sysctl", "-qw", "net.ipv4.conf.flannel/1.rp_filter=1"])
    status, report = _doctor_all(lab, run_podpath, tmp_path)
    assert status == 1
    finding = _one(report, "rp-filter")
    assert finding["grade"] == "critical" and finding["node"] == "node1"
    assert finding["cause"].startswith("on the way back, rp_filter=1 (strict) on flannel.1")
    assert finding["hop"].startswith("[node1] dropped: rp_filter=1")
    assert "loose" in finding["fix"]
    assert not lab.probe(_web(lab).ref, _web(lab, "node2").ip, 80, wait=1).ok


def test_bridge_nf_call_iptables_off(make_lab: Callable[..., Lab], run_podpath: Any) -> None:
    """A bridge CNI with kube-proxy and bridge-nf-call-iptables=0: the answer of a Service
    endpoint on the same bridge is bridged past conntrack; the client never connects.
    Then cni0's own nf_call_iptables on: br_netfilter hands its frames over whatever the
    sysctl says (br_nf_pre_routing), and the client connects. Before, a bridge's own
    switch was not read: the doctor and the trace still called the answer untranslated."""
    lab = make_lab(nodes=1, pods=2, services=3)
    lab.exec("node1", ["sysctl", "-qw", "net.bridge.bridge-nf-call-iptables=0"])
    status, report = _doctor(lab, "node1", run_podpath)
    assert status == 1
    finding = _one(report, "bridge-nf-off")
    assert finding["grade"] == "critical"
    assert "net.bridge.bridge-nf-call-iptables = 0" in finding["evidence"]
    assert finding["hop"].startswith("[node1] bridge cni0")
    assert "modprobe br_netfilter" in finding["fix"]
    assert not lab.probe(_other(lab).ref, _vip(lab), 80, wait=1).ok

    lab.exec("node1", ["ip", "link", "set", "cni0", "type", "bridge", "nf_call_iptables", "1"])
    status, report = _doctor(lab, "node1", run_podpath)
    assert not _criticals(report), report["findings"]
    assert "bridge-nf-off" not in {f["check"] for f in report["findings"]}
    client = _other(lab).ref
    done = run_podpath(lab, "node1", "trace", "--from", client, "--to", "default/web:80", "--json")
    assert done.returncode == 0, done.stderr
    branches = json.loads(done.stdout)["branches"]
    assert branches and {b["verdict"] for b in branches} == {"delivered"}, branches
    assert lab.probe(client, _vip(lab), 80).ok


def test_bridge_nf_call_ip6tables_off(make_lab: Callable[..., Lab], run_podpath: Any) -> None:
    """Dual stack with bridge-nf-call-ip6tables=0 only: IPv6 answers of a Service endpoint
    on the same bridge are bridged past conntrack, IPv4's are not. Before, the switch was
    not read: the doctor said reply-untranslated, with the advice to mend the routing."""
    lab = make_lab(nodes=1, pods=2, services=3, ip_family="dual")
    lab.exec("node1", ["sysctl", "-qw", "net.bridge.bridge-nf-call-ip6tables=0"])
    status, report = _doctor(lab, "node1", run_podpath)
    assert status == 1
    finding = _one(report, "bridge-nf-off")
    assert [f["id"] for f in _criticals(report)] == [finding["id"]], report["findings"]
    assert finding["evidence"] == ["net.bridge.bridge-nf-call-ip6tables = 0"]
    assert "sysctl -w net.bridge.bridge-nf-call-ip6tables=1" in finding["fix"]
    assert all(p["to"].startswith("[") for p in finding["paths"]), finding["paths"]
    client = _other(lab)
    six = next(s.cluster_ip for s in lab.service("default/web") if ":" in s.cluster_ip)
    assert not lab.probe(client.ref, six, 80, family=6, wait=1).ok
    assert lab.probe(client.ref, _vip(lab), 80).ok


def test_vxlan_fdb_entry_missing(
    make_lab: Callable[..., Lab], run_podpath: Any, tmp_path: Path
) -> None:
    """node2's VTEP gone from node1's flannel.1 FDB: critical, naming the MAC; node2's
    pods are out of reach."""
    lab = make_lab(nodes=2, pods=2, services=3)
    node2 = lab.node("node2")
    fdb = _sh(lab, "node1", "bridge fdb show dev flannel.1")
    (line,) = [x for x in fdb.splitlines() if f"dst {node2.address}" in x]
    mac = line.split()[0]
    lab.exec("node1", ["bridge", "fdb", "del", mac, "dev", "flannel.1", "dst", node2.address])
    status, report = _doctor_all(lab, run_podpath, tmp_path)
    assert status == 1
    finding = _one(report, "vxlan-fdb-missing")
    assert finding["grade"] == "critical" and finding["node"] == "node1"
    assert f"no remote VTEP for {mac} on flannel.1" in finding["cause"]
    assert "bridge fdb append" in finding["fix"]
    assert not lab.probe(_web(lab).ref, _web(lab, "node2").ip, 80, wait=1).ok


def test_vxlan_neighbour_missing(make_lab: Callable[..., Lab], run_podpath: Any) -> None:
    """node2's VTEP address gone from node1's neighbours on flannel.1 (no FDB entry floods
    ARP): critical, naming the next hop; the probe fails."""
    lab = make_lab(nodes=2, pods=2, services=3)
    vtep = lab.node("node2").pod_cidr.split("/")[0]
    lab.exec("node1", ["ip", "neigh", "del", vtep, "dev", "flannel.1"])
    status, report = _doctor(lab, "node1", run_podpath)
    assert status == 1
    finding = _one(report, "neighbour-unresolved")
    assert finding["grade"] == "critical"
    assert finding["subject"] == f"next hop {vtep} on flannel.1 of node node1"
    assert "the broadcast request has nowhere to go" in finding["cause"]
    assert f"ip neigh add {vtep} lladdr MAC dev flannel.1" in finding["fix"]
    assert not lab.probe(_web(lab).ref, _web(lab, "node2").ip, 80, wait=1).ok


def test_host_gw_route_missing(
    make_lab: Callable[..., Lab], run_podpath: Any, tmp_path: Path
) -> None:
    """host-gw without the route to node2's pod CIDR: pods of node2 are sent to the default
    gateway instead; critical no-route on node1."""
    lab = make_lab(nodes=2, pods=2, services=3, overlay="host-gw")
    cidr = lab.node("node2").pod_cidr
    lab.exec("node1", ["ip", "route", "del", cidr])
    status, report = _doctor_all(lab, run_podpath, tmp_path)
    assert status == 1
    finding = _one(report, "no-route")
    assert finding["grade"] == "critical" and finding["node"] == "node1"
    assert "add the route" in finding["fix"]
    assert not lab.probe(_web(lab).ref, _web(lab, "node2").ip, 80, wait=1).ok


def test_hairpin_off(make_lab: Callable[..., Lab], run_podpath: Any) -> None:
    """web's only pod calls its own Service with hairpin mode off on its bridge port:
    critical, naming the pod and the port; the probe times out."""
    lab = make_lab(nodes=1, pods=2, services=3)
    web = _web(lab)
    lab.exec("node1", ["bridge", "link", "set", "dev", web.host_veth, "hairpin", "off"])
    status, report = _doctor(lab, "node1", run_podpath)
    assert status == 1
    finding = _one(report, "hairpin-off")
    assert finding["grade"] == "critical" and finding["subject"] == f"pod {web.ref}"
    assert f"{web.host_veth} is the port the frame came in by" in finding["cause"]
    assert "hairpin on" in finding["fix"]
    assert not lab.probe(web.ref, _vip(lab), 80, wait=1).ok
    lab.exec("node1", ["bridge", "link", "set", "dev", web.host_veth, "hairpin", "on"])
    assert lab.probe(web.ref, _vip(lab), 80).ok


def test_a_bridge_port_that_does_not_forward(
    make_lab: Callable[..., Lab], run_podpath: Any
) -> None:
    """STP on for cni0 (forward_delay 30 s), then web's host veth bounced: STP holds the
    port listening, then learning, for a minute, and it forwards nothing; then the port
    disabled by hand. Before, a port's STP state was not read: the doctor found nothing
    and the trace delivered. Each time: critical, naming the port and its pod, with a fix
    that works (real traffic before and after)."""
    lab = make_lab(nodes=1, pods=2, services=3)
    web, client = _web(lab), _other(lab)
    port = web.host_veth
    stp = ["ip", "link", "set", "cni0", "type", "bridge", "forward_delay", "3000", "stp_state"]
    lab.exec("node1", [*stp, "1"])
    _sh(lab, "node1", f"ip link set {port} down && ip link set {port} up")
    status, report = _doctor(lab, "node1", run_podpath)
    assert status == 1
    finding = _one(report, "bridge-port-state")
    assert finding["subject"] == f"interface {port} of node node1 (the host side of pod {web.ref})"
    assert finding["evidence"][0] in (
        f"bridge link show dev {port}: state listening",
        f"bridge link show dev {port}: state learning",
    )
    assert "ip link set cni0 type bridge stp_state 0" in finding["fix"]
    assert not lab.probe(client.ref, web.ip, 80, wait=1).ok
    # STP off alone leaves the port to its timers; the fix sets it forwarding too.
    lab.exec("node1", [*stp, "0"])
    lab.exec("node1", ["bridge", "link", "set", "dev", port, "state", "3"])
    assert lab.probe(client.ref, web.ip, 80).ok

    lab.exec("node1", ["bridge", "link", "set", "dev", port, "state", "0"])
    done = run_podpath(
        lab, "node1", "trace", "--from", client.ref, "--to", f"{web.ip}:80", "--json"
    )
    assert done.returncode == 0, done.stderr
    (branch,) = json.loads(done.stdout)["branches"]
    assert branch["verdict"] == "dropped"
    assert branch["reason"] == (
        f"bridge port {port} is in STP state disabled: the bridge sends no frame out by it"
    )
    finding = _one(_doctor(lab, "node1", run_podpath)[1], "bridge-port-state")
    assert f"bridge link set dev {port} state 3" in finding["fix"]
    assert not lab.probe(client.ref, web.ip, 80, wait=1).ok
    lab.exec("node1", ["bridge", "link", "set", "dev", port, "state", "3"])
    assert lab.probe(client.ref, web.ip, 80).ok


def test_a_pod_with_a_sidecar_redirect_of_its_own(
    make_lab: Callable[..., Lab], run_podpath: Any
) -> None:
    """The dns pod's namespace gets the rules Istio's istio-init writes, from istio/istio's
    own golden file (nat OUTPUT -> ISTIO_OUTPUT -> ISTIO_REDIRECT -> REDIRECT to 15001,
    and PREROUTING rules for what comes in): its TCP connections go to its own port
    15001, where nothing listens, and are refused. Before, a pod's own rules were not
    read: the trace delivered its connections to web's pods, and the doctor found
    nothing. Now its paths are uncertain, naming the rules; the doctor says so once, for
    the pod, and judges nothing else wrong."""
    lab = make_lab(nodes=1, pods=2, services=3)
    client = _other(lab)
    enter = ["nsenter", f"--net={client.netns_path}", "--"]
    for command in istio_commands():
        lab.exec("node1", [*enter, *command])
    done = run_podpath(
        lab, "node1", "trace", "--from", client.ref, "--to", "default/web:80", "--json"
    )
    assert done.returncode == 0, done.stderr
    branches = json.loads(done.stdout)["branches"]
    assert {(b["verdict"], b["outcome"]) for b in branches} == {("uncertain", "delivered")}
    said = f"pod {client.ref}'s own network namespace has netfilter rules at OUTPUT (ip nat: "
    assert all(said in b["reason"] and "Istio's sidecar redirect" in b["reason"] for b in branches)
    answer = lab.probe(client.ref, _vip(lab), 80, wait=1)
    assert not answer.ok and "refused" in answer.error, answer

    status, report = _doctor(lab, "node1", run_podpath)
    assert status == 0 and not _criticals(report), report["findings"]
    finding = _one(report, "own-netfilter-rules")
    assert finding["grade"] == "info" and finding["subject"] == f"pod {client.ref}"
    # Paths from the pod (its OUTPUT rules), and into it by its Service (its PREROUTING's).
    paths = finding["paths"]
    assert any(p["from"] == client.ref for p in paths), paths
    assert all(p["from"] == client.ref or p["to"].startswith("kube-system/kube-dns") for p in paths)


def test_a_host_firewall_that_drops_the_overlay(
    make_lab: Callable[..., Lab], run_podpath: Any, tmp_path: Path
) -> None:
    """node2's INPUT drops UDP to flannel's VXLAN port (firewalld without it opened): every
    pod packet between the nodes travels in such a packet, so node1's pods reach node2's
    no longer, while the pod packets themselves match no rule. The doctor over both nodes
    names the rule and the VXLAN packet it drops (it followed the inner packet alone and
    found nothing); real traffic times out, and is answered once the rule is gone."""
    lab = make_lab(nodes=2, pods=2, services=3)
    client, server = _other(lab), _web(lab, "node2")
    assert lab.probe(client.ref, server.ip, 80).ok
    shown = lab.exec("node2", ["ip", "-j", "-d", "link", "show", "flannel.1"]).stdout
    port = str(json.loads(shown)[0]["linkinfo"]["info_data"]["port"])
    rule = ["INPUT", "-p", "udp", "--dport", port, "-j", "DROP"]
    lab.exec("node2", ["iptables", "-I", *rule])
    status, report = _doctor_all(lab, run_podpath, tmp_path)
    assert status == 1
    finding = _one(report, "netfilter-drop")
    assert "drops the VXLAN packet (udp " in finding["cause"], finding
    assert f":{port}) that carries " in finding["cause"], finding
    assert finding["hop"].startswith("[node2] ") and "INPUT" in finding["hop"], finding
    assert {p["from"] for p in finding["paths"]} & {client.ref, server.ref}, finding
    assert not lab.probe(client.ref, server.ip, 80, wait=1).ok
    lab.exec("node2", ["iptables", "-D", *rule])
    assert lab.probe(client.ref, server.ip, 80).ok


# How a node comes to drop what no rule accepts in FORWARD: Docker's policy (set when
# dockerd starts, moby/moby#28257), or a host firewall's nftables base chain; and how
# the chain is put back.
_POLICY_DROPS = {
    "iptables": (
        [["iptables", "-P", "FORWARD", "DROP"]],
        "policy of filter/FORWARD",
        "(-P FORWARD DROP)",
        [["iptables", "-P", "FORWARD", "ACCEPT"]],
    ),
    "nftables": (
        [
            ["nft", "add", "table", "inet", "hostfw"],
            [
                "nft",
                "add chain inet hostfw forward { type filter hook forward priority 0; policy drop; }",
            ],
            [
                "nft",
                "add",
                "rule",
                "inet",
                "hostfw",
                "forward",
                "ct",
                "state",
                "established",
                "accept",
            ],
        ],
        "policy of inet hostfw forward",
        "(policy drop)",
        [["nft", "delete", "table", "inet", "hostfw"]],
    ),
}


@pytest.mark.parametrize("firewall", sorted(_POLICY_DROPS))
def test_a_forward_policy_that_drops_what_no_rule_accepts(
    make_lab: Callable[..., Lab], run_podpath: Any, tmp_path: Path, firewall: str
) -> None:
    """node2's FORWARD drops by its policy what no rule accepts: node1's pods reach node2's
    no longer. The finding names the chain's policy and how to accept the pods' traffic.
    Before, the doctor said "a rule drops" (iptables), or blamed kube-proxy's last ACCEPT
    in another table (a host firewall's nftables chain, whose policy left no hop)."""
    make, subject, said, undo = _POLICY_DROPS[firewall]
    owner = {"iptables": "filter/FORWARD", "nftables": "hostfw/forward"}[firewall]
    lab = make_lab(nodes=2, pods=2, services=3)
    client, server = _other(lab), _web(lab, "node2")
    assert lab.probe(client.ref, server.ip, 80).ok
    for argv in make:
        lab.exec("node2", argv)
    status, report = _doctor_all(lab, run_podpath, tmp_path)
    assert status == 1
    finding = _one(report, "chain-policy-drop", subject)
    assert [f["id"] for f in _criticals(report)] == [finding["id"]], report["findings"]
    assert finding["cause"].startswith(f"no rule of {subject[len('policy of ') :]} accepts ")
    assert finding["cause"].endswith(f", so the chain's policy drops it {said}"), finding
    assert finding["hop"].startswith("[node2] ") and "no rule decided" in finding["hop"]
    assert "ACCEPT" in finding["fix"] or "accept" in finding["fix"], finding
    assert {p["from"] for p in finding["paths"]} & {client.ref, server.ref}, finding
    # The trace says whose drop it is: the chain's (the host firewall's), not kube-proxy's.
    nodes = [load_path(str(tmp_path / f"{n.name}.json")) for n in lab.record.nodes]
    (branch,) = trace(nodes, Probe(client.ref, f"{server.ip}:80")).branches
    assert branch.verdict == "dropped" and branch.reason.endswith(f"(host firewall {owner})")
    assert not lab.probe(client.ref, server.ip, 80, wait=1).ok
    for argv in undo:
        lab.exec("node2", argv)
    assert lab.probe(client.ref, server.ip, 80).ok


def test_a_notrack_rule_for_one_direction(
    make_lab: Callable[..., Lab], run_podpath: Any, tmp_path: Path
) -> None:
    """node1 NOTRACKs its pods' TCP to port 80 in raw PREROUTING. A Service's VIP is then
    never DNATed (nat runs for tracked packets only) and leaves the node; a pod's answer
    meets a conntrack with no entry for it, as INVALID, which kube-proxy's KUBE-FORWARD
    drops. With the answers NOTRACKed too (as NodeLocal DNSCache does for its traffic),
    pod to pod works again and only the Services fail. Before, the trace took the NOTRACK
    for a mark that changes nothing: every path delivered."""
    lab = make_lab(nodes=2, pods=2, services=3)
    client, here, there = _other(lab), _web(lab), _web(lab, "node2")
    cidr = str(ipaddress.ip_network(f"{client.ip}/24", strict=False))
    request = ["PREROUTING", "-s", cidr, "-p", "tcp", "--dport", "80", "-j", "NOTRACK"]
    lab.exec("node1", ["iptables", "-t", "raw", "-I", *request])
    status, report = _doctor_all(lab, run_podpath, tmp_path)
    assert status == 1
    finding = _one(report, "untracked-request", "rule raw/PREROUTING")
    assert [f["id"] for f in _criticals(report)] == [finding["id"]], report["findings"]
    assert "-j NOTRACK leaves " in finding["cause"], finding
    targets = {p["to"] for p in finding["paths"]}
    pods = {f"{p.ip}:80" for p in lab.pods if p.app == "web"}
    assert "default/web:80" in targets and targets & pods, finding["paths"]
    nodes = [load_path(str(tmp_path / f"{n.name}.json")) for n in lab.record.nodes]
    (to_vip,) = trace(nodes, Probe(client.ref, f"{_vip(lab)}:80")).branches
    assert to_vip.verdict == "leaves-node" and to_vip.packet.dst == _vip(lab), to_vip.reason
    (to_pod,) = trace(nodes, Probe(client.ref, f"{there.ip}:80"), reply=True).branches
    (back,) = to_pod.reply
    assert back.verdict == "dropped" and "--ctstate INVALID -j DROP" in back.reason, back
    for target in (_vip(lab), there.ip, here.ip):
        assert not lab.probe(client.ref, target, 80, wait=1).ok, target
    answer = ["PREROUTING", "-d", cidr, "-p", "tcp", "--sport", "80", "-j", "NOTRACK"]
    lab.exec("node1", ["iptables", "-t", "raw", "-I", *answer])
    _, both = _doctor_all(lab, run_podpath, tmp_path)
    finding = _one(both, "untracked-request", "rule raw/PREROUTING")
    assert {p["to"] for p in finding["paths"]} <= {"default/web:80", "default/web-sticky:80"}
    assert lab.probe(client.ref, there.ip, 80).ok and lab.probe(client.ref, here.ip, 80).ok
    assert not lab.probe(client.ref, _vip(lab), 80, wait=1).ok


def test_kube_proxys_prerouting_jump_missing(
    make_lab: Callable[..., Lab], run_podpath: Any, tmp_path: Path
) -> None:
    """node1's nat PREROUTING has lost kube-proxy's jump to KUBE-SERVICES: its pods' packets
    to a ClusterIP leave the node untranslated and its NodePort is refused, while the node's
    own (OUTPUT keeps its jump) still reach the Service. Before, the doctor called the pods'
    paths healthy and asked the NodePort for another targetPort."""
    lab = make_lab(nodes=2, pods=2, services=3)
    client, vip = _other(lab), _vip(lab)
    node_port = next(s for s in lab.services if s.node_port is not None).node_port
    jump = ["PREROUTING", "-m", "comment", "--comment", "kubernetes service portals"]
    lab.exec("node1", ["iptables", "-t", "nat", "-D", *jump, "-j", "KUBE-SERVICES"])
    status, report = _doctor_all(lab, run_podpath, tmp_path)
    assert status == 1
    finding = _one(report, "service-not-dnated", "nat PREROUTING of node node1")
    assert [f["id"] for f in _criticals(report)] == [finding["id"]], report["findings"]
    assert (
        "jump to KUBE-SERVICES is missing" in finding["cause"]
        and "restart kube-proxy" in finding["fix"]
    )
    assert {p["from"] for p in finding["paths"]} & {client.ref, "outside"}, finding["paths"]
    nodes = [load_path(str(tmp_path / f"{n.name}.json")) for n in lab.record.nodes]
    (to_vip,) = trace(nodes, Probe(client.ref, f"{vip}:80")).branches
    assert to_vip.verdict == "leaves-node" and to_vip.packet.dst == vip, to_vip.reason
    own = trace(nodes, Probe("node1", f"{vip}:80")).branches
    assert all(b.verdict == "delivered" for b in own), [b.reason for b in own]
    address = lab.node("node1").address
    assert not lab.probe(client.ref, vip, 80, wait=1).ok
    assert not lab.probe("node2", f"{address}:{node_port}", wait=1).ok
    assert lab.probe("node1", vip, 80).ok
    lab.exec("node1", ["iptables", "-t", "nat", "-I", *jump, "-j", "KUBE-SERVICES"])
    assert lab.probe(client.ref, vip, 80).ok


def test_kube_proxys_nftables_prerouting_jump_missing(
    make_lab: Callable[..., Lab], run_podpath: Any, tmp_path: Path
) -> None:
    """nftables mode: node1's nat-prerouting has lost `jump services`. kube-proxy's own
    cluster-ips-check rejects its pods' packets to a ClusterIP, and its NodePort is
    refused. Before, the doctor blamed that reject ("remove or narrow the rule") and asked
    the NodePort for another targetPort."""
    lab = make_lab(nodes=2, pods=2, services=3, proxy_mode="nftables")
    client, vip = _other(lab), _vip(lab)
    node_port = next(s for s in lab.services if s.node_port is not None).node_port
    chain = ["ip", "kube-proxy", "nat-prerouting"]
    lab.exec("node1", ["nft", "flush", "chain", *chain])
    status, report = _doctor_all(lab, run_podpath, tmp_path)
    assert status == 1
    finding = _one(report, "service-not-dnated", "ip kube-proxy nat-prerouting of node node1")
    assert [f["id"] for f in _criticals(report)] == [finding["id"]], report["findings"]
    assert "jump to services is missing" in finding["cause"], finding
    assert "cluster-ips-check" in finding["cause"], finding
    assert finding["evidence"] == ["nft list chain ip kube-proxy nat-prerouting: no jump services"]
    # The refused NodePort is among its paths: no other finding is critical.
    assert client.ref in {p["from"] for p in finding["paths"]}, finding["paths"]
    address = lab.node("node1").address
    assert not lab.probe(client.ref, vip, 80, wait=1).ok
    assert not lab.probe("node2", f"{address}:{node_port}", wait=1).ok
    assert lab.probe("node1", vip, 80).ok
    lab.exec("node1", ["nft", "add", "rule", *chain, "jump", "services"])
    assert lab.probe(client.ref, vip, 80).ok


def test_a_bridge_family_nftables_chain_is_said_not_modelled(
    make_lab: Callable[..., Lab], run_podpath: Any, tmp_path: Path
) -> None:
    """node1 has an nftables bridge-family table whose forward chain drops every bridged
    frame. podpath does not model those hooks: a path whose frames cross them is
    uncertain, naming the chain, never delivered for sure (its real traffic times out);
    a path that crosses only the bridge's other hooks is judged as before. Before, the
    trace delivered frames the chain drops."""
    lab = make_lab(nodes=2, pods=2, services=3)
    client, here, there = _other(lab), _web(lab), _web(lab, "node2")
    lab.exec("node1", ["nft", "add", "table", "bridge", "filt"])
    chain = "add chain bridge filt forward { type filter hook forward priority 0; policy drop; }"
    lab.exec("node1", ["nft", chain])
    status, report = _doctor_all(lab, run_podpath, tmp_path)
    assert status == 0 and not _criticals(report), report["findings"]
    (unjudged,) = [f for f in report["findings"] if f["check"] == "unmodelled-chains"]
    assert unjudged["subject"] == "node node1" and "(bridge filt forward)" in unjudged["cause"]
    nodes = [load_path(str(tmp_path / f"{n.name}.json")) for n in lab.record.nodes]
    (bridged,) = trace(nodes, Probe(client.ref, f"{here.ip}:80")).branches
    assert bridged.verdict == "uncertain" and "not modelled" in bridged.reason, bridged
    assert not lab.probe(client.ref, here.ip, 80, wait=1).ok
    (routed,) = trace(nodes, Probe(client.ref, f"{there.ip}:80"), reply=True).branches
    assert routed.verdict == "delivered" and routed.reply[0].verdict == "delivered", routed
    assert lab.probe(client.ref, there.ip, 80).ok


def test_a_netdev_ingress_chain_is_said_not_modelled(
    make_lab: Callable[..., Lab], run_podpath: Any, tmp_path: Path
) -> None:
    """node1 has an nftables netdev table whose ingress chain on eth0 drops flannel's
    VXLAN packets: node2's pods reach node1's no longer (real traffic times out). podpath
    does not walk ingress chains, and nft 1.0.6's JSON does not say a chain's device: a
    path arriving by any of node1's devices is uncertain, naming the chain, and the
    doctor says so once for the node. Before, the trace delivered what the chain drops."""
    lab = make_lab(nodes=2, pods=2, services=3)
    here, there = _web(lab), _web(lab, "node2")
    lab.exec("node1", ["nft", "add", "table", "netdev", "guard"])
    hook = "{ type filter hook ingress device eth0 priority 0; policy accept; }"
    lab.exec("node1", ["nft", f"add chain netdev guard in {hook}"])
    lab.exec("node1", ["nft", "add rule netdev guard in udp dport 8472 drop"])
    status, report = _doctor_all(lab, run_podpath, tmp_path)
    assert status == 0 and not _criticals(report), report["findings"]
    (unjudged,) = [f for f in report["findings"] if f["check"] == "unmodelled-chains"]
    assert unjudged["subject"] == "node node1"
    assert "nftables ingress chains of node node1 (netdev guard in" in unjudged["cause"]
    nodes = [load_path(str(tmp_path / f"{n.name}.json")) for n in lab.record.nodes]
    (crossed,) = trace(nodes, Probe(there.ref, f"{here.ip}:80")).branches
    assert crossed.verdict == "uncertain" and "netdev guard in" in crossed.reason, crossed
    assert not lab.probe(there.ref, here.ip, 80, wait=1).ok


def test_isolated_bridge_ports(
    make_lab: Callable[..., Lab], run_podpath: Any, tmp_path: Path
) -> None:
    """node1's pod ports on cni0 isolated (`bridge link set dev X isolated on`): its pods
    no longer reach each other, directly or through a Service that picks the other (the
    answer is bridged port to port); to node2's pods they still do (routed). Before, the
    trace bridged the frames as if the ports were not isolated."""
    lab = make_lab(nodes=2, pods=2, services=3)
    client, here, there = _other(lab), _web(lab), _web(lab, "node2")
    ports = lab.exec("node1", ["bridge", "-j", "link", "show"]).stdout
    veths = [p["ifname"] for p in json.loads(ports) if p.get("master") == "cni0"]
    assert len(veths) == 2, veths
    for flag in ("on", "off"):
        for veth in veths:
            lab.exec("node1", ["bridge", "link", "set", "dev", veth, "isolated", flag])
        status, report = _doctor_all(lab, run_podpath, tmp_path)
        nodes = [load_path(str(tmp_path / f"{n.name}.json")) for n in lab.record.nodes]
        (direct,) = trace(nodes, Probe(client.ref, f"{here.ip}:80"), reply=True).branches
        (far,) = trace(nodes, Probe(client.ref, f"{there.ip}:80"), reply=True).branches
        assert far.verdict == "delivered" and far.reply[0].verdict == "delivered", far.reason
        assert lab.probe(client.ref, there.ip, 80).ok
        if flag == "off":
            assert status == 0 and not _criticals(report), report["findings"]
            assert direct.verdict == "delivered", direct.reason
            assert lab.probe(client.ref, here.ip, 80).ok
            continue
        finding = _one(report, "bridge-port-isolated", "bridge cni0 of node node1")
        assert [f["id"] for f in _criticals(report)] == [finding["id"]], report["findings"]
        assert direct.verdict == "dropped" and "are isolated ports" in direct.reason, direct
        assert not lab.probe(client.ref, here.ip, 80, wait=1).ok


def test_vteps_on_different_udp_ports(
    make_lab: Callable[..., Lab], run_podpath: Any, tmp_path: Path
) -> None:
    """node2's flannel.1 is made again on UDP 4789 (Calico's default; flannel's is 8472),
    as a node set up by another release would have it: each node sends to a port no VXLAN
    socket of the other listens on. The doctor names both receiving nodes; real traffic
    between the nodes times out both ways."""
    lab = make_lab(nodes=2, pods=2, services=3)
    node1, node2 = lab.record.nodes
    client, server = _other(lab), _web(lab, "node2")
    assert lab.probe(client.ref, server.ip, 80).ok and lab.probe(server.ref, client.ip, 53).ok
    gateway = node1.pod_cidr.split("/")[0]  # flannel.1's address: the block's first
    _sh(
        lab,
        "node2",
        f"ip link del flannel.1 && "
        f"ip link add flannel.1 address {node2.vtep_mac} type vxlan id 1 local {node2.address} "
        f"dev eth0 dstport 4789 nolearning && ip link set flannel.1 mtu 1450 && "
        f"ip addr add {node2.pod_cidr.split('/')[0]}/32 dev flannel.1 && "
        f"ip link set flannel.1 up && "
        f"ip route add {node1.pod_cidr} via {gateway} dev flannel.1 onlink && "
        f"ip neigh add {gateway} lladdr {node1.vtep_mac} dev flannel.1 nud permanent && "
        f"bridge fdb append {node1.vtep_mac} dev flannel.1 dst {node1.address}",
    )
    status, report = _doctor_all(lab, run_podpath, tmp_path)
    assert status == 1
    found = {(f["check"], f["node"]) for f in _criticals(report)}
    assert found == {("vxlan-port-mismatch", "node1"), ("vxlan-port-mismatch", "node2")}, report
    assert (
        "takes VXLAN on UDP port 4789, and the packet was sent to port 8472"
        in _one(report, "vxlan-port-mismatch", "node node2")["cause"]
    )
    assert not lab.probe(client.ref, server.ip, 80, wait=1).ok
    assert not lab.probe(server.ref, client.ip, 53, wait=1).ok


def test_a_stale_vtep_mac_on_the_sending_node(
    make_lab: Callable[..., Lab], run_podpath: Any, tmp_path: Path
) -> None:
    """node1's neighbour and fdb entries for node2's VTEP name a MAC node2's flannel.1 does
    not have (node2's VTEP made again, node1's flanneld not told): node1's frames reach
    node2 and are dropped there as another host's, node1's answers too. The trace said
    delivered. The doctor names node2's device and node1's entry; real traffic times out
    both ways."""
    lab = make_lab(nodes=2, pods=2, services=3)
    node2 = lab.record.nodes[1]
    client, server = _other(lab), _web(lab, "node2")
    assert lab.probe(client.ref, server.ip, 80).ok and lab.probe(server.ref, client.ip, 53).ok
    gateway = node2.pod_cidr.split("/")[0]  # node2's flannel.1 address
    stale = "02:00:00:00:00:99"
    _sh(
        lab,
        "node1",
        f"ip neigh replace {gateway} lladdr {stale} dev flannel.1 nud permanent && "
        f"bridge fdb del {node2.vtep_mac} dev flannel.1 dst {node2.address} && "
        f"bridge fdb append {stale} dev flannel.1 dst {node2.address}",
    )
    status, report = _doctor_all(lab, run_podpath, tmp_path)
    assert status == 1
    found = {(f["check"], f["node"]) for f in _criticals(report)}
    assert found == {("vxlan-mac-stale", "node2")}, report
    cause = _one(report, "vxlan-mac-stale")["cause"]
    assert (
        f"node node2's flannel.1 has MAC {node2.vtep_mac}, and the frame inside is for "
        f"{stale}, node1's neighbour entry for {gateway} on flannel.1" in cause
    ), cause
    assert not lab.probe(client.ref, server.ip, 80, wait=1).ok
    assert not lab.probe(server.ref, client.ip, 53, wait=1).ok


@pytest.mark.parametrize("cni", ["bridge", "calico"])
def test_a_pods_host_veth_set_down(
    make_lab: Callable[..., Lab], run_podpath: Any, tmp_path: Path, cni: str
) -> None:
    """node2's host side of its web pod's veth is set down, and the pod's eth0 has no
    carrier. On a bridge the disabled port forwards nothing (ARP for the pod gets no
    answer, a frame for it goes nowhere): the trace delivered into the pod. On Calico
    the kernel deleted the pod's /32 route and the node's blackhole for its block
    swallows what is sent to the pod: the doctor asked for a host-gw route. Either way
    it blamed the pod's eth0 for the pod's own paths. Now one finding names the host
    veth and its fix, for the paths to the pod and from it; real traffic times out both
    ways until it is up."""
    lab = make_lab(nodes=2, pods=2, services=3, cni=cni)
    client, server = _other(lab), _web(lab, "node2")
    lab.exec("node2", ["ip", "link", "set", server.host_veth, "down"])
    status, report = _doctor_all(lab, run_podpath, tmp_path)
    assert status == 1
    found = _criticals(report)
    assert [(f["check"], f["subject"]) for f in found] == [
        ("link-down", f"interface {server.host_veth} of node node2")
    ], report
    assert f"ip link set {server.host_veth} up" in found[0]["fix"]
    # The pod's own paths: its eth0 has no carrier (the snapshots the doctor read).
    taken = [load_path(str(tmp_path / f"{n.name}.json")) for n in lab.record.nodes]
    (out,) = trace(taken, Probe(server.ref, f"{client.ip}:53", "tcp")).branches
    assert out.verdict == "dropped", out.reason
    assert out.reason.startswith(f"eth0 has no carrier: its peer {server.host_veth} in node node2")
    assert not lab.probe(client.ref, server.ip, 80, wait=1).ok
    assert not lab.probe(server.ref, client.ip, 53, wait=1).ok
    lab.exec("node2", ["ip", "link", "set", server.host_veth, "up"])
    if cni == "calico":  # the route calico-node would put back, as the fix says
        lab.exec("node2", ["ip", "route", "add", server.ip, "dev", server.host_veth])
    assert lab.probe(client.ref, server.ip, 80).ok


def test_a_stale_endpoint_in_kube_proxys_rules(
    make_lab: Callable[..., Lab], run_podpath: Any
) -> None:
    """One of web's KUBE-SEP chains DNATs to an address of the node's pod network that no
    pod holds (kube-proxy stopped syncing after the pod was gone): the doctor could not
    judge it ("no MAC"), though every port of the bridge leads into a namespace it read.
    Now ARP gets no answer, and the finding names the Service and the endpoint; real
    connections to the Service fail when they are sent there."""
    lab = make_lab(nodes=1, pods=3, services=3)
    client = _other(lab)
    gone = "10.244.0.99"
    rules = _sh(lab, "node1", "iptables-save -t nat")
    sep = next(
        line.split()[1]
        for line in rules.splitlines()
        if line.startswith("-A KUBE-SEP-") and '"default/web:http"' in line and "DNAT" in line
    )
    _sh(
        lab,
        "node1",
        f"iptables -t nat -R {sep} 2 -p tcp -m comment --comment default/web:http -m tcp "
        f"-j DNAT --to-destination {gone}:80",
    )
    _status, report = _doctor(lab, "node1", run_podpath)
    found = _one(report, "endpoint-gone")
    assert found["subject"] == "Service default/web:http", found
    assert f"endpoint {gone}:80, which no pod of node node1 holds" in found["cause"]
    assert "kubernetes.io/service-name=web -n default" in found["fix"]
    # Each connection picks an endpoint at random: for half of them ARP gets no answer
    # (no route to host, or a timeout).
    answers: list[ProbeResult] = []
    while len(answers) < 20 and all(a.ok for a in answers):
        answers.append(lab.probe(client.ref, _vip(lab), 80))
    assert not answers[-1].ok, answers


def test_a_pods_own_eth0_set_down(make_lab: Callable[..., Lab], run_podpath: Any) -> None:
    """A web pod's eth0 set down inside the pod: the kernel took the pod's routes with
    it (the doctor asked the node for a route to Service addresses), and its host veth
    has no carrier (the bridge port forwards nothing to it). One finding names the pod's
    eth0 and says to bring it up in the pod; real traffic fails both ways."""
    lab = make_lab(nodes=1, pods=3, services=3)
    client, web = _other(lab), _web(lab)
    netns = web.netns_path.rsplit("/", 1)[1]
    lab.exec("node1", ["ip", "netns", "exec", netns, "ip", "link", "set", "eth0", "down"])
    status, report = _doctor(lab, "node1", run_podpath)
    assert status == 1
    found = _criticals(report)
    assert [(f["check"], f["subject"]) for f in found] == [
        ("link-down", f"interface eth0 of pod {web.ref}")
    ], report
    assert "ip link set eth0 up, in the pod's network namespace" in found[0]["fix"]
    assert not lab.probe(web.ref, client.ip, 53, wait=1).ok
    assert not lab.probe(client.ref, web.ip, 80, wait=1).ok


def test_a_nodes_bridge_set_down(
    make_lab: Callable[..., Lab], run_podpath: Any, tmp_path: Path
) -> None:
    """node2's cni0 set down: its ports are disabled (pod to pod on it fails; the trace
    delivered it) and the kernel deleted its route to the node's pods (packets for them
    leave by the default route; the doctor asked for a host-gw route). One finding names
    the bridge; real traffic fails on the node and from the other."""
    lab = make_lab(nodes=2, pods=2, services=3)
    client = _other(lab)
    here, there = lab.pods_on("node2")[:2]
    lab.exec("node2", ["ip", "link", "set", "cni0", "down"])
    status, report = _doctor_all(lab, run_podpath, tmp_path)
    assert status == 1
    found = _criticals(report)
    assert [(f["check"], f["subject"], f["node"]) for f in found] == [
        ("link-down", "interface cni0 of node node2", "node2")
    ], report
    taken = [load_path(str(tmp_path / f"{n.name}.json")) for n in lab.record.nodes]
    (near,) = trace(taken, Probe(here.ref, f"{there.ip}:80", "tcp")).branches
    assert near.verdict == "dropped" and "cni0 is down: its ports are disabled" in near.reason
    assert not lab.probe(here.ref, there.ip, 80, wait=1).ok
    assert not lab.probe(client.ref, there.ip, 80, wait=1).ok


def test_a_vtep_set_down_and_a_vxlan_route_gone(
    make_lab: Callable[..., Lab], run_podpath: Any, tmp_path: Path
) -> None:
    """node2's flannel.1 set down: it takes nothing off UDP 8472 (the trace decapsulated
    there), and the kernel deleted its route to node1's pods. One finding names the
    device, for both ways; real traffic times out both ways. Up again, without flanneld
    to put the route back: node2's packets for node1's pods leave by the default route,
    and the doctor says node1 routes node2's pods over VXLAN (it said host-gw)."""
    lab = make_lab(nodes=2, pods=2, services=3)
    client, server = _other(lab), _web(lab, "node2")
    lab.exec("node2", ["ip", "link", "set", "flannel.1", "down"])
    status, report = _doctor_all(lab, run_podpath, tmp_path)
    assert status == 1
    found = [(f["check"], f["subject"]) for f in _criticals(report)]
    assert found == [("link-down", "interface flannel.1 of node node2")], report
    assert not lab.probe(client.ref, server.ip, 80, wait=1).ok
    assert not lab.probe(server.ref, client.ip, 53, wait=1).ok
    lab.exec("node2", ["ip", "link", "set", "flannel.1", "up"])
    status, report = _doctor_all(lab, run_podpath, tmp_path)
    cause = _one(report, "no-route", "node node2")["cause"]
    assert "while node1 routes node2's pods over its VXLAN device flannel.1 to node2" in cause
    assert not lab.probe(server.ref, client.ip, 53, wait=1).ok


def test_proxy_arp_without_a_route(make_lab: Callable[..., Lab], run_podpath: Any) -> None:
    """A Calico node loses its default route: its pods' gateway 169.254.1.1 is answered by
    proxy ARP only for addresses the node routes elsewhere, so nothing answers; and the
    node itself cannot route to ClusterIPs. Two criticals; both probes fail."""
    lab = make_lab(nodes=1, pods=2, services=3, cni="calico")
    lab.exec("node1", ["ip", "route", "del", "default"])
    status, report = _doctor(lab, "node1", run_podpath)
    assert status == 1
    proxy = _one(report, "proxy-arp-no-route")
    assert proxy["subject"] == "next hop 169.254.1.1 on eth0 of node node1"
    assert "has proxy_arp=1, but its namespace has no route to 169.254.1.1" in proxy["cause"]
    assert "default route" in proxy["fix"]
    # The evidence is the facts, each as the node's own tools show it: per pod that
    # asked, its host veth's proxy_arp sysctls and the input lookup that found no route.
    evidence = proxy["evidence"]
    assert len(evidence) == 4, evidence
    for sysctl, route in zip(evidence[::2], evidence[1::2], strict=True):
        asked = re.fullmatch(r"(ip route get 169\.254\.1\.1 from \S+ iif (\S+)): (.*)", route)
        assert asked is not None, route
        real = lab.exec("node1", asked.group(1).split(), check=False)
        assert real.returncode != 0 and real.stderr.strip() in asked.group(3)
        veth = asked.group(2)
        values = _sh(
            lab, "node1", f"sysctl -n net.ipv4.conf.all.proxy_arp net.ipv4.conf.{veth}.proxy_arp"
        )
        every, mine = values.split()
        assert sysctl == (
            f"net.ipv4.conf.all.proxy_arp = {every}, net.ipv4.conf.{veth}.proxy_arp = {mine}"
        )
        assert mine == "1"
    unrouted = _one(report, "no-route")
    assert {p["from"] for p in unrouted["paths"]} == {"node1"}
    assert "before kube-proxy's DNAT" in unrouted["fix"]
    assert not lab.probe(_other(lab).ref, _web(lab).ip, 80, wait=1).ok
    assert not lab.probe("node1", _vip(lab), 80, wait=1).ok


def test_a_host_rule_on_a_network_of_some_endpoints(
    make_lab: Callable[..., Lab], run_podpath: Any
) -> None:
    """A rule of the node's own rejects a network (an ipBlock, not an address) that holds
    some of web's endpoints: the doctor follows those apart from the endpoints alike and
    names the rule on the node's path to web, partly; from the node, real connections
    through the Service are refused for some endpoints and answered by the others."""
    lab = make_lab(nodes=1, pods=4, services=3)
    webs = [p for p in lab.pods_on("node1") if p.app == "web"]
    network = _network_apart([p.ip for p in webs], {ip for p in lab.pods for ip in p.ips})
    _sh(lab, "node1", f"iptables -A OUTPUT -d {network} -p tcp -j REJECT --reject-with tcp-reset")
    _status, report = _doctor(lab, "node1", run_podpath)
    found = [
        f
        for f in report["findings"]
        if f["check"] == "netfilter-drop" and any(f"-d {network}" in e for e in f["evidence"])
    ]
    assert found, [(f["check"], f["subject"], f["evidence"]) for f in report["findings"]]
    paths = {(p["from"], p["to"]) for f in found for p in f["paths"]}
    assert ("node1", "default/web:80") in paths, paths
    # Each connection picks an endpoint at random, and the reset ends its connect() at
    # once: probe until both kinds were seen (one endpoint in 3 is in the network; both
    # not seen in 60 probes: under (2/3)^60).
    answers = [lab.probe("node1", "default/web", 80)]
    while not ({True, False} <= {r.ok for r in answers}) and len(answers) < 60:
        answers.append(lab.probe("node1", "default/web", 80))
    assert any(not r.ok and "refused" in r.error.lower() for r in answers), answers
    outside = {p.ref for p in webs if ipaddress.ip_address(p.ip) not in network}
    assert {r.served_by for r in answers if r.ok} <= outside, answers
    assert any(r.ok for r in answers), answers


def _network_apart(
    webs: list[str], pods: set[str]
) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    """A network that holds some of the web endpoints but not all, and whose own address is
    no pod's (a rule naming a pod's address sets it apart in any case)."""
    for web in webs:
        for length in range(31, 23, -1):
            net = ipaddress.ip_network(f"{web}/{length}", strict=False)
            held = [ip for ip in webs if ipaddress.ip_address(ip) in net]
            if str(net.network_address) not in pods and len(held) < len(webs):
                return net
    raise AssertionError(f"no network apart in this lab's addresses: web {webs}, pods {pods}")


CALICO_RULES = """
iptables -N cali-FORWARD
iptables -N cali-tw-{port}
iptables -N cali-pi-_Jx0r1UzJG1w5pqnZ
iptables -I FORWARD 1 -m comment --comment cali:wUHhoiAYhphO9Mso -j cali-FORWARD
iptables -A cali-FORWARD -d {ip}/32 -m comment --comment cali:8ZoYfO5HKXWbB3pk -j cali-tw-{port}
iptables -A cali-tw-{port} -m comment --comment cali:Pw4yEo0gO4x6TzaQ \
  -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
iptables -A cali-tw-{port} -m comment --comment cali:pm-LK-c1ra31tRwz -j cali-pi-_Jx0r1UzJG1w5pqnZ
iptables -A cali-pi-_Jx0r1UzJG1w5pqnZ -p tcp -m comment --comment cali:Qc7dsXqnnl_8bfDa \
  -m comment --comment "Policy default/deny-web ingress" -j DROP
"""


def test_network_policy_drop_names_the_policy(
    make_lab: Callable[..., Lab], run_podpath: Any
) -> None:
    """Calico-shaped rules (cali-FORWARD, cali-tw-PORT, a cali-pi- chain whose Deny rule is
    commented with its policy) drop TCP to web: the finding names the policy."""
    lab = make_lab(nodes=1, pods=2, services=3)
    web = _web(lab)
    _sh(lab, "node1", CALICO_RULES.format(port=web.host_veth, ip=web.ip))
    status, report = _doctor(lab, "node1", run_podpath)
    finding = _one(report, "network-policy-drop")
    assert finding["subject"] == "NetworkPolicy default/deny-web"
    assert finding["cause"].startswith("NetworkPolicy default/deny-web (Calico) drops ")
    assert finding["hop"] == "[node1] netfilter filter/cali-pi-_Jx0r1UzJG1w5pqnZ #1: -> DROP"
    assert not [p for p in finding["paths"] if "kube-dns" in p["to"]], finding["paths"]
    assert "cali-pi-_Jx0r1UzJG1w5pqnZ" in " ".join(finding["evidence"])
    assert status == (1 if finding["grade"] == "critical" else 0)
    assert not lab.probe(_other(lab).ref, web.ip, 80, wait=1).ok


@pytest.mark.parametrize("mode", ["iptables", "nftables"])
def test_traffic_policy_local_without_a_local_endpoint(
    make_lab: Callable[..., Lab], run_podpath: Any, mode: str
) -> None:
    """web-local (both traffic policies Local, endpoints on node1 only): node2's doctor
    warns of the NodePort outside clients lose there and of the ClusterIP its own pods
    lose, each decided by kube-proxy's rule; node1's doctor warns of neither. Real
    traffic agrees: node2's NodePort and ClusterIP time out, node1's NodePort answers."""
    lab = make_lab(nodes=2, pods=3, services=4, proxy_mode=mode, traffic_policy_local=True)
    svc = lab.service("default/web-local")[0]
    node1, node2 = lab.node("node1"), lab.node("node2")
    status, report = _doctor(lab, "node2", run_podpath)
    assert status == 0, [
        (f["check"], f["grade"], f["subject"], f.get("hop")) for f in report["findings"]
    ]  # warnings only
    etp = _one(report, "etp-local-no-endpoint")
    assert (etp["grade"], etp["subject"]) == ("warning", "Service default/web-local:http")
    assert f"{node2.address}:{svc.node_port}/tcp from outside is dropped" in etp["cause"]
    itp = _one(report, "itp-local-no-endpoint")
    assert itp["grade"] == "warning" and f"{svc.cluster_ip}:80/tcp" in itp["cause"]
    if mode == "iptables":
        assert "KUBE-EXTERNAL-SERVICES" in etp["hop"] and "has no local endpoints" in str(
            etp["evidence"]
        )
        assert "filter/KUBE-SERVICES" in itp["hop"]
    else:
        assert "nodeport-endpoints-check" in etp["hop"] and "@no-endpoint-nodeports" in etp["hop"]
        assert "@no-endpoint-services" in itp["hop"]
    assert "externalTrafficPolicy: Cluster" in etp["fix"]
    _, healthy = _doctor(lab, "node1", run_podpath)
    assert not {"etp-local-no-endpoint", "itp-local-no-endpoint"} & {
        f["check"] for f in healthy["findings"]
    }
    dropped = lab.probe("node1", node2.address, svc.node_port, wait=1)
    assert not dropped.ok and "timed out" in dropped.error
    assert not lab.probe(lab.pods_on("node2")[0].ref, svc.cluster_ip, 80, wait=1).ok
    assert lab.probe("node2", node1.address, svc.node_port).ok


# --- facts of the node -----------------------------------------------------------------


def test_facts_of_the_node(make_lab: Callable[..., Lab], run_podpath: Any) -> None:
    """A second iptables backend with a rule, an IPAM file for no pod, and a conntrack entry
    still DNATing web's VIP to an address that is no endpoint: one warning each, with the
    file, the rule's chain and the entry as evidence, and a fix for each."""
    lab = make_lab(nodes=1, pods=2, services=3)
    web, client = _web(lab), _other(lab)
    gone = web.ip.rsplit(".", 1)[0] + ".77"
    ipam = _sh(lab, "node1", "ls -d /var/lib/cni/networks/*/").split()[0].rstrip("/")
    _sh(
        lab,
        "node1",
        f"printf '%s\\n%s' 0123456789abcdef0123 eth0 > {ipam}/{gone}; "
        "iptables-legacy -N DOCTOR-LEFTOVER; iptables-legacy -A DOCTOR-LEFTOVER -j ACCEPT; "
        f"conntrack -I -p tcp -s {client.ip} -d {_vip(lab)} --sport 40000 --dport 80 "
        f"--reply-src {gone} --reply-dst {client.ip} --reply-port-src 80 "
        "--reply-port-dst 40000 --state ESTABLISHED --timeout 600 -u ASSURED",
    )
    status, report = _doctor(lab, "node1", run_podpath)
    assert status == 0, [
        (f["check"], f["grade"], f["subject"], f.get("hop")) for f in report["findings"]
    ]  # warnings only
    assert _checks(report) == {
        ("warning", "ipam-leaked"),
        ("warning", "netfilter-backends"),
        ("warning", "stale-conntrack"),
    }
    leaked = _one(report, "ipam-leaked")
    assert gone in leaked["subject"] and f"{ipam}/{gone}" in leaked["fix"]
    backends = _one(report, "netfilter-backends")
    assert "iptables-legacy/ipv4: 1 rule, in filter/DOCTOR-LEFTOVER" in backends["evidence"]
    stale = _one(report, "stale-conntrack")
    assert f"{gone}:80/tcp" in stale["cause"]
    assert f"--reply-src {gone}" in stale["fix"]


def test_pod_mtu_above_the_overlays(make_lab: Callable[..., Lab], run_podpath: Any) -> None:
    """A pod whose eth0 MTU exceeds what the VXLAN overlay carries: found with both MTUs."""
    lab = make_lab(nodes=2, pods=2, services=3)
    web = _web(lab)
    overlay = int(_sh(lab, "node1", "cat /sys/class/net/flannel.1/mtu"))
    _sh(lab, "node1", f"nsenter --net={web.netns_path} -- ip link set dev eth0 mtu 1500")
    _sh(lab, "node1", f"ip link set dev {web.host_veth} mtu 1500")
    status, report = _doctor(lab, "node1", run_podpath)
    mtu = [f for f in report["findings"] if "mtu" in f["check"]]
    assert mtu, [f["id"] for f in report["findings"]]
    text = json.dumps(mtu)
    assert "1500" in text and str(overlay) in text
    assert status in (0, 1)


def test_an_underlay_mtu_below_the_pods_names_whose_devices(
    make_lab: Callable[..., Lab], run_podpath: Any
) -> None:
    """node1's eth0 lowered to 1400 under pods of 1450 and a VXLAN device of 1450: the
    overlay's packets no longer fit, and what a pod sends off the node needs path MTU
    discovery. Both findings name each device by whose it is (a pod's eth0 and the
    node's eth0 read alike as "eth0" before)."""
    lab = make_lab(nodes=2, pods=2, services=3)
    lab.exec("node1", ["ip", "link", "set", "dev", "eth0", "mtu", "1400"])
    _status, report = _doctor(lab, "node1", run_podpath)
    causes = [f["cause"] for f in report["findings"] if f["check"] == "mtu-mismatch"]
    assert any("exceed eth0's MTU 1400" in c for c in causes), causes
    routed = [c for c in causes if "are routed out of node node1's eth0 (MTU 1400)" in c]
    assert routed and all(re.search(r"from pod \S+/\S+'s eth0", c) for c in routed), causes


# --- the prediction checked by the kernel ------------------------------------------------


def test_trace_shows_the_conntrack_entry_the_kernel_made(shared_lab: Lab, run_podpath: Any) -> None:
    """After a real connection to web's VIP, `trace --conntrack --json` lists its entry: DNAT
    to the pod that answered (the probe says which), one the trace predicted; the entries
    are those `conntrack -L` lists for the flow."""
    client = _web(shared_lab)
    vip = _vip(shared_lab)
    answer = shared_lab.probe(client.ref, vip, 80)
    assert answer.ok and answer.served_by is not None, answer
    served = shared_lab.pod(answer.served_by)
    done = run_podpath(
        shared_lab,
        "node1",
        "trace",
        "--from",
        client.ref,
        "--to",
        f"{vip}:80",
        "--conntrack",
        "--json",
    )
    assert done.returncode == 0, done.stderr
    observed = json.loads(done.stdout)["observed"]
    assert observed["source"] == "conntrack -L, live"
    mine = [e for e in observed["conntrack"] if e["endpoint"] == f"{served.ip}:80"]
    assert mine and all(e["dnat"] and e["predicted_by"] for e in mine), observed
    listed = _sh(shared_lab, "node1", f"conntrack -L -p tcp -s {client.ip} -d {vip} --dport 80")
    ports = {int(m) for m in re.findall(r"^tcp .*? sport=(\d+)", listed, re.M)}
    assert {e["original"]["sport"] for e in observed["conntrack"]} <= ports
    assert {e["original"]["sport"] for e in mine} & ports


def test_watch_shows_the_rule_counters_a_real_connection_moves(shared_lab: Lab) -> None:
    """`trace --watch` while a real connection is made: its conntrack entry and the KUBE-SEP
    rule of the endpoint that answered are printed as they move; Ctrl-C ends it with a
    summary."""
    import os
    import signal
    import time

    client = _other(shared_lab)
    vip = _vip(shared_lab)
    argv = [sys.executable, "-m", "podpath", "trace", "--from", client.ref, "--to", f"{vip}:80"]
    watcher = subprocess.Popen(
        shared_lab.enter_argv("node1", [*argv, "--watch", "0.5"]),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert watcher.stdout is not None
        for line in watcher.stdout:
            if line.startswith("watching every"):
                break
        answer = shared_lab.probe(client.ref, vip, 80)
        assert answer.ok and answer.served_by is not None, answer
        time.sleep(3)
        os.killpg(watcher.pid, signal.SIGINT)
        out, err = watcher.communicate(timeout=60)
    finally:
        if watcher.poll() is None:
            os.killpg(watcher.pid, signal.SIGKILL)
            watcher.wait()
    # Ctrl-C reaches the whole group: nsenter ends by it, podpath prints its summary.
    assert "Traceback" not in err, err
    served = shared_lab.pod(answer.served_by)
    assert re.search(
        rf" conntrack  tcp \S+ {client.ip}:\d+ -> {vip}:80 .*DNAT to {served.ip}:80", out
    )
    assert re.search(
        rf" counter    \+\d+ packets? .*KUBE-SEP-\S+ .*--to-destination {served.ip}:80", out
    )
    assert "watched: " in out


def test_conntrack_max_is_the_machines_in_a_lab_node(shared_lab: Lab) -> None:
    """Why the fill needs no sysctl: in a node's network namespace nf_conntrack_max is
    mode 0444 and shows the machine's value (the kernel's
    nf_conntrack_standalone_init_sysctl: "Don't allow non-init_net ns to alter global
    sysctls"), while nf_conntrack_count is the namespace's own."""
    path = "/proc/sys/net/netfilter/nf_conntrack_max"
    mode, value = _sh(shared_lab, "node1", f"stat -c %a {path}; cat {path}").split()
    assert mode == "444"
    assert int(value) == int(Path(path).read_text())


def _conntrack_finding(lab: Lab, run_podpath: Any, grade: str, status: int, least: int) -> None:
    """The doctor's one conntrack-full finding as the node's kernel counted it."""
    done, report = _doctor(lab, "node1", run_podpath)
    assert done == status
    found = _one(report, "conntrack-full")
    assert found["grade"] == grade and found["subject"] == "node node1"
    count = int(found["evidence"][0].removeprefix("net.netfilter.nf_conntrack_count = "))
    limit = int(found["evidence"][1].removeprefix("net.netfilter.nf_conntrack_max = "))
    assert limit == conntrack_fill.conntrack_max()
    # Entries may expire meanwhile (30 s each): the grade's own threshold is what holds.
    assert least <= count
    assert f"{count} of {limit} entries" in found["cause"]
    assert "nf_conntrack_max" in found["fix"]


def test_conntrack_table_near_full(make_lab: Callable[..., Lab], run_podpath: Any) -> None:
    """A pod sends UDP with distinct 5-tuples to its node until the node's own table
    is 85% of the machine's maximum: a warning with the kernel's count and maximum, exit
    0; at 96% it is critical, exit 1. Before, the healthy node has no such finding; the
    machine's own count is not what moved."""
    limit = conntrack_fill.conntrack_max()
    need = conntrack_fill.entries_for(0.96, limit)
    if need > conntrack_fill.MOST_ENTRIES:
        pytest.skip(f"nf_conntrack_max is {limit}: filling needs {need} entries, too many")
    lab = make_lab(nodes=1, pods=2, services=3)
    client = _web(lab)
    _, healthy = _doctor(lab, "node1", run_podpath)
    assert "conntrack-full" not in {f["check"] for f in healthy["findings"]}
    try:
        warn = conntrack_fill.entries_for(0.85, limit)
        filled = conntrack_fill.fill(lab, client.ref, 0.85)
        assert filled.limit == limit and filled.count >= warn
        assert int(Path(conntrack_fill.COUNT).read_text()) < warn
        _conntrack_finding(lab, run_podpath, "warning", 0, int(CONNTRACK_WARN * limit))
        conntrack_fill.fill(lab, client.ref, 0.96)
        _conntrack_finding(lab, run_podpath, "critical", 1, int(CONNTRACK_CRITICAL * limit))
    finally:
        conntrack_fill.flush(lab, client.ref)
    assert conntrack_fill.node_count(lab, "node1") < 1000


def _pin_neighbour(lab: Lab, pod: PodRecord, ip: str, mac: str) -> str:
    """Replace the pod's neighbour entry for ip on eth0 with a PERMANENT one for mac, as a
    CNI writes it; the MAC it held before."""
    inside = ["ip", "netns", "exec", pod.netns_path.rsplit("/", 1)[1]]
    shown = lab.exec(pod.node, [*inside, "ip", "-j", "neigh", "show", ip, "dev", "eth0"])
    before = [str(e.get("lladdr")) for e in json.loads(shown.stdout or "[]")]
    argv = ["ip", "neigh", "replace", ip, "lladdr", mac, "dev", "eth0", "nud", "permanent"]
    lab.exec(pod.node, [*inside, *argv])
    return before[0] if before else ""


def test_a_pods_static_gateway_entry_for_a_mac_no_host_veth_has(
    make_lab: Callable[..., Lab], run_podpath: Any, tmp_path: Path
) -> None:
    """AWS VPC CNI writes a pod's entry for its gateway 169.254.1.1 once, PERMANENT, with
    the host veth's MAC. Naming a MAC no device has (the host side made again), every
    frame the pod sends reaches the host veth for another host, and ip_rcv drops it.
    Before, the trace delivered them: it never compared a routed veth's MAC with the
    frame's."""
    lab = make_lab(nodes=2, pods=2, services=3, cni="aws-vpc")
    client, web, remote = _other(lab), _web(lab), _web(lab, "node2")
    right = _pin_neighbour(lab, client, "169.254.1.1", "02:00:00:00:00:09")
    assert right
    status, report = _doctor_all(lab, run_podpath, tmp_path)
    assert status == 1
    subject = f"neighbour 169.254.1.1 on eth0 of pod {client.ref}"
    finding = _one(report, "neighbour-wrong-mac", subject)
    assert [f["id"] for f in _criticals(report)] == [finding["id"]], report["findings"]
    assert "PACKET_OTHERHOST" in finding["cause"] and "PERMANENT" in finding["cause"]
    assert f"nsenter --net={client.netns_path} ip neigh del 169.254.1.1" in finding["fix"]
    assert not lab.probe(client.ref, web.ip, 80, wait=1).ok
    assert not lab.probe(client.ref, remote.ip, 80, wait=1).ok
    assert lab.probe(web.ref, remote.ip, 80).ok
    _pin_neighbour(lab, client, "169.254.1.1", right)
    assert lab.probe(client.ref, web.ip, 80).ok


def test_a_pods_static_gateway_entry_for_a_mac_no_bridge_port_leads_to(
    make_lab: Callable[..., Lab], run_podpath: Any, tmp_path: Path
) -> None:
    """Bridge CNI: coredns's entry for its gateway names a MAC no port leads to. The bridge
    floods its frames and every pod drops them, but for what kube-proxy DNATs:
    br_netfilter re-routes that whatever its MAC (br_nf_pre_routing_finish), so coredns
    still reaches the web Service, on either node. Before, the trace called every such
    path uncertain (flooded) and the doctor could not judge."""
    lab = make_lab(nodes=2, pods=2, services=3)
    client, remote = _other(lab), _web(lab, "node2")
    _pin_neighbour(lab, client, "10.244.0.1", "02:00:00:00:00:02")
    status, report = _doctor_all(lab, run_podpath, tmp_path)
    assert status == 1
    subject = f"neighbour 10.244.0.1 on eth0 of pod {client.ref}"
    finding = _one(report, "neighbour-wrong-mac", subject)
    assert [f["id"] for f in _criticals(report)] == [finding["id"]], report["findings"]
    assert "no device behind them has that MAC" in finding["cause"], finding
    assert not lab.probe(client.ref, remote.ip, 80, wait=1).ok
    nodes = [load_path(str(tmp_path / f"{n.name}.json")) for n in lab.record.nodes]
    branches = trace(nodes, Probe(client.ref, f"{_vip(lab)}:80"), reply=True).branches
    assert {b.packet.dst for b in branches} == {p.ip for p in lab.pods if p.app == "web"}
    for branch in branches:
        assert branch.verdict == "delivered" and not branch.uncertain, branch.reason
        assert [r.verdict for r in branch.reply] == ["delivered"], branch.reply
    served = {lab.probe(client.ref, _vip(lab), 80).served_by for _ in range(6)}
    assert None not in served, served


def test_a_bridge_fdb_entry_that_sends_a_pods_mac_to_another_port(
    make_lab: Callable[..., Lab], run_podpath: Any, tmp_path: Path
) -> None:
    """node1's cni0 gets a static entry sending the web pod's MAC to the dns pod's port.
    Not sticky, it moves back as soon as a frame from the web pod comes in by its own port
    (br_fdb_update): the trace calls the path uncertain, and real traffic gets through.
    Sticky, it stays: the dns pod's eth0 drops the frames as another host's, and the
    doctor names the entry. Before, the trace took any entry as final, and said the dns
    pod does not forward."""
    lab = make_lab(nodes=1, pods=2, services=3)
    client, web = _other(lab), _web(lab)
    inside = ["ip", "netns", "exec", web.netns_path.rsplit("/", 1)[1]]
    mac = lab.exec("node1", [*inside, "cat", "/sys/class/net/eth0/address"]).stdout.strip()
    entry = ["bridge", "fdb", "replace", mac, "dev", client.host_veth, "master", "static"]
    # Any frame from the web pod moves the entry back: snapshots are taken until one
    # holds it where it was put.
    for _ in range(10):
        lab.exec("node1", entry)
        snap = loads(snapshot_text(lab, "node1"))
        if _fdb_port(snap, mac) == client.host_veth:
            break
    else:
        pytest.fail(f"{mac} moved back before every snapshot")
    (roams,) = trace([snap], Probe(client.ref, f"{web.ip}:80")).branches
    assert roams.verdict == "uncertain", roams.reason
    assert f"the entry moves there as soon as a frame from it comes in by {web.host_veth}" in (
        roams.reason
    )
    assert lab.probe(client.ref, web.ip, 80).ok
    lab.exec("node1", [*entry, "sticky"])
    status, report = _doctor_all(lab, run_podpath, tmp_path)
    assert status == 1
    finding = _one(report, "fdb-misplaced", f"fdb {mac} of cni0 on node node1")
    assert [f["id"] for f in _criticals(report)] == [finding["id"]], report["findings"]
    assert f"bridge fdb del {mac} dev {client.host_veth} master" in finding["fix"]
    assert "PACKET_OTHERHOST" in finding["cause"], finding
    assert not lab.probe(client.ref, web.ip, 80, wait=1).ok


def _fdb_port(snap: Snapshot, mac: str) -> str | None:
    """The port a node's bridge FDB sends a MAC to, by the snapshot."""
    root = next(ns for ns in snap.netns if ns.inode == snap.root_netns)
    ports = {link.ifindex: link.name for link in root.links}
    found = [e.ifindex for e in root.fdb if e.mac.lower() == mac.lower() and e.master]
    return ports.get(found[0]) if found else None


@pytest.mark.parametrize(
    ("mode", "remove", "put_back", "subject", "evidence"),
    [
        (
            "iptables",
            ["iptables", "-t", "nat", "-D", "POSTROUTING", "-m", "comment", "--comment",
             "kubernetes postrouting rules", "-j", "KUBE-POSTROUTING"],
            ["iptables", "-t", "nat", "-A", "POSTROUTING", "-j", "KUBE-POSTROUTING"],
            "nat POSTROUTING of node node1",
            "iptables -t nat -S POSTROUTING: no -j KUBE-POSTROUTING",
        ),
        (
            "nftables",
            ["nft", "flush", "chain", "ip", "kube-proxy", "masquerading"],
            ["nft", "add", "rule", "ip", "kube-proxy", "masquerading", "masquerade"],
            "ip kube-proxy masquerading of node node1",
            "nft list chain ip kube-proxy masquerading: no masquerade",
        ),
    ],
)  # fmt: skip
def test_kube_proxys_masquerade_gone(
    make_lab: Callable[..., Lab],
    run_podpath: Any,
    tmp_path: Path,
    mode: str,
    remove: list[str],
    put_back: list[str],
    subject: str,
    evidence: str,
) -> None:
    """node1's nat POSTROUTING no longer reaches kube-proxy's masquerade (a host firewall's
    reload flushed it). coredns asks kube-dns, whose one endpoint is coredns itself: the
    packet comes back with coredns's own address as its source, a martian coredns drops.
    Before, the doctor called it rp_filter's doing and advised loosening rp_filter."""
    lab = make_lab(nodes=1, pods=2, services=3, proxy_mode=mode)
    dns = _other(lab)
    assert lab.probe(dns.ref, "kube-system/kube-dns", 53, "tcp").ok
    lab.exec("node1", remove)
    status, report = _doctor_all(lab, run_podpath, tmp_path)
    assert status == 1
    finding = _one(report, "masquerade-missing", subject)
    assert [f["id"] for f in _criticals(report)] == [finding["id"]], report["findings"]
    assert finding["evidence"] == [evidence]
    assert "is an address of this namespace" in finding["cause"], finding
    assert {"kube-system/kube-dns:53"} <= {p["to"] for p in finding["paths"]}, finding
    assert not lab.probe(dns.ref, "kube-system/kube-dns", 53, "tcp", wait=1).ok
    lab.exec("node1", put_back)
    assert lab.probe(dns.ref, "kube-system/kube-dns", 53, "tcp").ok


def test_kube_proxys_nodeports_jump_missing(
    make_lab: Callable[..., Lab], run_podpath: Any, tmp_path: Path
) -> None:
    """KUBE-SERVICES has lost its last rule, the jump to KUBE-NODEPORTS: node1's NodePort
    is refused by the node itself. Before, the doctor asked the Service to point its
    targetPort at whatever the node happened to listen on."""
    lab = make_lab(nodes=2, pods=2, services=3)
    node_port = next(s for s in lab.services if s.node_port is not None).node_port
    address = lab.node("node1").address
    jump = [
        "KUBE-SERVICES", "-m", "comment", "--comment",
        "kubernetes service nodeports; NOTE: this must be the last rule in this chain",
        "-m", "addrtype", "--dst-type", "LOCAL", "-j", "KUBE-NODEPORTS",
    ]  # fmt: skip
    assert lab.probe("node2", f"{address}:{node_port}").ok
    lab.exec("node1", ["iptables", "-t", "nat", "-D", *jump])
    status, report = _doctor_all(lab, run_podpath, tmp_path)
    assert status == 1
    finding = _one(report, "service-not-dnated", "nat KUBE-SERVICES of node node1")
    assert [f["id"] for f in _criticals(report)] == [finding["id"]], report["findings"]
    assert finding["evidence"] == ["iptables -t nat -S KUBE-SERVICES: no -j KUBE-NODEPORTS"]
    assert "targetPort" not in finding["fix"], finding
    assert not lab.probe("node2", f"{address}:{node_port}", wait=1).ok
    lab.exec("node1", ["iptables", "-t", "nat", "-A", *jump])
    assert lab.probe("node2", f"{address}:{node_port}").ok
