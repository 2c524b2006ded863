"""ETP=Local without a local endpoint, on kube-proxy's own rules (its proxier test's output)."""

from __future__ import annotations

from pathlib import Path

from trace_factory import NodeSpec, PodSpec, build_node

from podpath.analysis.index import SnapshotIndex
from podpath.doctor import diagnose

RULES = (
    Path(__file__).resolve().parents[1]
    / "fixtures"
    / "realworld"
    / "iptables"
    / "k8s-proxier-test-overall-rules-restore-input.txt"
)
# The jumps from the built-in chains, which kube-proxy adds apart from the restore input
# (iptablesJumpChains in pkg/proxy/iptables/proxier.go): without them nothing is reached.
JUMPS = {
    "*filter": [
        ":INPUT ACCEPT [0:0]",
        ":FORWARD ACCEPT [0:0]",
        ":OUTPUT ACCEPT [0:0]",
        "-A INPUT -m conntrack --ctstate NEW -m comment --comment "
        '"kubernetes externally-visible service portals" -j KUBE-EXTERNAL-SERVICES',
        "-A FORWARD -m conntrack --ctstate NEW -m comment --comment "
        '"kubernetes externally-visible service portals" -j KUBE-EXTERNAL-SERVICES',
        "-A FORWARD -m conntrack --ctstate NEW -m comment --comment "
        '"kubernetes service portals" -j KUBE-SERVICES',
        '-A FORWARD -m comment --comment "kubernetes forwarding rules" -j KUBE-FORWARD',
        "-A OUTPUT -m conntrack --ctstate NEW -m comment --comment "
        '"kubernetes service portals" -j KUBE-SERVICES',
    ],
    "*nat": [
        ":PREROUTING ACCEPT [0:0]",
        ":INPUT ACCEPT [0:0]",
        ":OUTPUT ACCEPT [0:0]",
        ":POSTROUTING ACCEPT [0:0]",
        '-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
        '-A OUTPUT -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
        '-A POSTROUTING -m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING',
    ],
}


def _with_jumps(text: str) -> str:
    out = []
    for line in text.splitlines():
        out.append(line)
        out.extend(JUMPS.get(line, []))
    return "\n".join(out) + "\n"


def test_a_local_policy_service_without_a_local_endpoint_is_found_from_outside() -> None:
    """ns2/svc2:p80 (externalTrafficPolicy Local, its endpoint elsewhere): kube-proxy drops
    what arrives from outside on its LB IP, external IP and NodePort; the doctor says so
    once, naming the Service, the DROP rule and the fix, as a warning."""
    rules = _with_jumps(RULES.read_text())
    node = build_node(NodeSpec(pods=[PodSpec("web-0", "10.244.0.2")], iptables=rules))
    report = diagnose([SnapshotIndex(node)])
    found = [f for f in report.findings if f.check == "etp-local-no-endpoint"]
    assert [f.subject for f in found] == ["Service ns2/svc2:p80"], [f.id for f in report.findings]
    etp = found[0]
    assert etp.grade == "warning"
    assert any("has no local endpoints" in e and "DROP" in e for e in etp.evidence)
    assert {p.source for p in etp.paths} == {"outside"}


def test_what_cannot_be_judged_is_one_info_per_service() -> None:
    """ns5/svc5:p80's ClientIP affinity depends on xt_recent lists this node did not give:
    one info finding for the Service, whichever of its addresses (ClusterIP, NodePort, LB)
    was traced, and nothing critical."""
    rules = _with_jumps(RULES.read_text())
    node = build_node(NodeSpec(pods=[PodSpec("web-0", "10.244.0.2")], iptables=rules))
    report = diagnose([SnapshotIndex(node)])
    unjudged = [f for f in report.findings if f.check == "cannot-judge"]
    assert [(f.grade, f.subject) for f in unjudged] == [("info", "Service ns5/svc5:p80")]
    assert {p.source for p in unjudged[0].paths} == {"default/web-0", "node-a", "outside"}
    assert not report.critical
