"""net.ipv4.ip_forward=0 inside one lab node: what the kernel still delivers, and what not.

Linux 6.18 with br_netfilter (bridge-nf-call-iptables=1 in the node): pod to pod on one
bridge is bridged and never routed, so it works; a pod's packet to a ClusterIP whose
endpoint is behind that same bridge is DNATed in PREROUTING and then routed, and with
forwarding off the input lookup hands it to ip_error(), which drops it without an ICMP
error and counts it in IpInAddrErrors: no conntrack entry is ever confirmed. IPv6 bridges
that DNATed frame all the same (its input lookup does not fail). The trace and the doctor
must say exactly that, and real probes prove it. The sysctls are written in the lab
node's own network namespace only.
"""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from collections.abc import Callable

    from podpath.lab import Lab, PodRecord

pytestmark = pytest.mark.lab
_PODPATH = (sys.executable, "-m", "podpath")


def _trace(lab: Lab, node: str, src: str, dst: str, run_podpath: Any) -> dict[str, Any]:
    """The one branch of `podpath trace --json` run live inside a node."""
    done = run_podpath(lab, node, "trace", "--from", src, "--to", dst, "--json")
    assert done.returncode == 0, done.stderr
    branches: list[dict[str, Any]] = json.loads(done.stdout)["branches"]
    assert len(branches) == 1, [b["reason"] for b in branches]
    return branches[0]


def _in_addr_errors(lab: Lab, node: str) -> int:
    """The node's IpInAddrErrors counter (/proc/net/snmp of its network namespace)."""
    lines = lab.exec(node, ["cat", "/proc/net/snmp"]).stdout.splitlines()
    names, values = lines[0].split(), lines[1].split()
    return int(dict(zip(names, values, strict=True))["InAddrErrors"])


def _flows(lab: Lab, node: str, src: str, dst: str) -> set[str]:
    """Original source ports of the node's tcp conntrack entries from src to dst."""
    argv = ["conntrack", "-L", "-p", "tcp", "--orig-src", src, "--orig-dst", dst]
    lines = lab.exec(node, argv, check=False).stdout.splitlines()
    return {next(w for w in line.split() if w.startswith("sport=")) for line in lines}


def _pods(lab: Lab) -> tuple[PodRecord, PodRecord, PodRecord, PodRecord]:
    """Two web pods of node1, its coredns pod, and a pod of the last node."""
    webs = [p for p in lab.pods_on("node1") if p.app == "web"]
    dns = next(p for p in lab.pods_on("node1") if p.app == "dns")
    return webs[0], webs[1], dns, lab.pods_on(lab.nodes[-1].name)[0]


def test_ip_forward_off_bridges_pod_to_pod_but_drops_dnat_and_routed_traffic(
    make_lab: Callable[..., Lab], run_podpath: Any
) -> None:
    """With ip_forward=0 in node1: pod to pod on cni0 is delivered; pod to kube-dns, whose
    only endpoint is behind cni0 too, and pod to a pod of node2 are dropped silently, as
    the trace says (IpInAddrErrors rises, no conntrack entry, the probe times out)."""
    lab = make_lab(nodes=2, pods=3, services=3)
    web, other, dns, remote = _pods(lab)
    # With forwarding on, the same Service path works: the failure below is the sysctl's.
    before = lab.probe(web.ref, "kube-system/kube-dns", 53, "tcp")
    assert before.ok and before.served_by == dns.ref, before
    lab.exec("node1", ["sysctl", "-qw", "net.ipv4.ip_forward=0"])

    bridged = _trace(lab, "node1", web.ref, f"{other.ip}:80", run_podpath)
    assert bridged["verdict"] == "delivered", bridged["reason"]
    probe = lab.probe(web.ref, other.ip, 80)
    assert probe.ok and probe.served_by == other.ref, probe

    dnat = _trace(lab, "node1", web.ref, "kube-system/kube-dns:53", run_podpath)
    assert dnat["verdict"] == "dropped"
    assert dnat["reason"].startswith("net.ipv4.conf.cni0.forwarding is 0: node node1")
    assert "without an ICMP error" in dnat["reason"] and "IpInAddrErrors" in dnat["reason"]
    assert f"DNATed to {dns.ip}, behind the bridge cni0 it came in by" in dnat["reason"]
    counted, seen = _in_addr_errors(lab, "node1"), _flows(lab, "node1", web.ip, "10.96.0.10")
    probe = lab.probe(web.ref, "kube-system/kube-dns", 53, "tcp", wait=1)
    # A timeout, not "No route to host": ip_error() sent no ICMP error back.
    assert not probe.ok and "timed out" in probe.error, probe
    assert _in_addr_errors(lab, "node1") > counted
    # The entry made in PREROUTING was never confirmed: only the earlier probe's is left.
    assert _flows(lab, "node1", web.ip, "10.96.0.10") == seen and len(seen) == 1

    routed = _trace(lab, "node1", web.ref, f"{remote.ip}:80", run_podpath)
    assert routed["verdict"] == "dropped" and "does not forward" in routed["reason"]
    assert "DNATed" not in routed["reason"]
    counted = _in_addr_errors(lab, "node1")
    probe = lab.probe(web.ref, remote.ip, 80, wait=1)
    assert not probe.ok and "timed out" in probe.error, probe
    assert _in_addr_errors(lab, "node1") > counted


def test_doctor_reports_only_the_paths_forwarding_off_breaks(
    make_lab: Callable[..., Lab], run_podpath: Any
) -> None:
    """The doctor's ip-forward-off finding on node1 counts every pod -> Service port path and
    every outside -> NodePort path (all DNATed, so all routed) and none of the pod -> pod
    paths on cni0, which still work."""
    lab = make_lab(nodes=1, pods=3, services=3)
    web, other, dns, _ = _pods(lab)
    lab.exec("node1", ["sysctl", "-qw", "net.ipv4.ip_forward=0"])
    done = run_podpath(lab, "node1", "doctor", "--json")
    assert done.returncode == 1, done.stderr
    report = json.loads(done.stdout)
    found = [f for f in report["findings"] if f["check"] == "ip-forward-off"]
    assert len(found) == 1, [f["id"] for f in report["findings"]]
    finding = found[0]
    assert finding["grade"] == "critical"
    assert "only pod to pod on one bridge works" in finding["cause"]
    ports = {(s.namespace, s.name, s.port_name) for s in lab.services}
    # ... and a client outside the node to each NodePort: DNATed to a pod, so routed too.
    node_ports = {(s.namespace, s.name, s.port_name) for s in lab.services if s.node_port}
    assert node_ports
    assert finding["affected"] == len(lab.pods) * len(ports) + len(node_ports)
    pod_paths = [path for path in finding["paths"] for p in (web, other, dns) if p.ip in path]
    assert pod_paths == []
    # What it leaves out still works, by real traffic.
    for src, dst in ((web, other), (other, dns)):
        probe = lab.probe(src.ref, dst.ip)
        assert probe.ok and probe.served_by == dst.ref, probe
    assert not lab.probe(web.ref, "default/web", 80, wait=1).ok


def test_ipv6_forwarding_off_still_bridges_a_dnat_behind_the_same_bridge(
    make_lab: Callable[..., Lab], run_podpath: Any
) -> None:
    """IPv6 differs: with net.ipv6.conf.all.forwarding=0 in node1, a pod's packet to kube-dns,
    whose endpoint is behind cni0 too, is delivered. br_nf_pre_routing_finish_ipv6() finds
    the DNATed frame's route back out of cni0 (IPv6's input lookup does not fail with
    forwarding off, IPv4's does) and bridges it, never reaching ip6_forward(). Routed
    traffic is still dropped. Before, the trace and the doctor said the Service was dropped
    too."""
    lab = make_lab(nodes=2, pods=3, services=3, ip_family="ipv6")
    web, _, dns, remote = _pods(lab)
    lab.exec("node1", ["sysctl", "-qw", "net.ipv6.conf.all.forwarding=0"])

    dnat = _trace(lab, "node1", web.ref, "kube-system/kube-dns:53", run_podpath)
    assert dnat["verdict"] == "delivered", dnat["reason"]
    details = [d for hop in dnat["hops"] for d in hop["details"]]
    assert any("it is never forwarded (ip6_forward)" in d for d in details), details
    probe = lab.probe(web.ref, "kube-system/kube-dns", 53, "tcp")
    assert probe.ok and probe.served_by == dns.ref, probe

    routed = _trace(lab, "node1", web.ref, f"[{remote.ip}]:80", run_podpath)
    assert routed["verdict"] == "dropped" and "does not forward" in routed["reason"]
    assert not lab.probe(web.ref, remote.ip, 80, wait=1).ok

    done = run_podpath(lab, "node1", "doctor", "--json")
    assert done.returncode == 1, done.stderr
    found = [f for f in json.loads(done.stdout)["findings"] if f["check"] == "ip-forward-off"]
    assert len(found) == 1, found
    assert "but for an endpoint behind the client's own bridge" in found[0]["cause"], found
    assert not [p for p in found[0]["paths"] if "53" in p["to"] and p["from"] == web.ref]
    # The switch the trace relied on was read: the node's own value.
    switch = lab.exec("node1", ["cat", "/proc/sys/net/bridge/bridge-nf-call-ip6tables"])
    facts = json.loads(lab.exec("node1", [*_PODPATH, "snapshot", "-o", "-"]).stdout)["node"]
    assert facts["bridge_nf_call_ip6tables"] == int(switch.stdout) == 1
    # Without br_netfilter's IPv6 hooks the frame goes up to the stack, is DNATed there
    # and forwarded: dropped.
    lab.exec("node1", ["sysctl", "-qw", "net.bridge.bridge-nf-call-ip6tables=0"])
    dnat = _trace(lab, "node1", web.ref, "kube-system/kube-dns:53", run_podpath)
    assert dnat["verdict"] == "dropped" and "routed all the same" in dnat["reason"], dnat
    assert not lab.probe(web.ref, "kube-system/kube-dns", 53, "tcp", wait=1).ok
