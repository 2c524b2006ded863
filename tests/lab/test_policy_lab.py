"""NetworkPolicy enforced by kube-router's real rules (`lab up --policy kube-router`).

One node per kube-proxy mode, read only: real probes say which connections the
kernel refuses, and the trace of the same path must drop it naming the policies
and the rule, or deliver it with a note naming the policy that allowed it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest
from topology_proof import RUN_ID, module_lab, snapshots

from podpath.analysis.index import SnapshotIndex
from podpath.lab.kube_router import LAB_POLICIES, client_pod, policy_chain
from podpath.netfilter.owners import Owner, iptables_owner
from podpath.trace.engine import trace
from podpath.trace.model import Branch, Trace
from podpath.trace.probe import Probe

if TYPE_CHECKING:
    from podpath.lab import Lab, PodRecord, ProbeResult

pytestmark = pytest.mark.lab

DENY, ALLOW = (p.ref for p in LAB_POLICIES)
ALLOW_NOTE = f"NetworkPolicy {ALLOW} (kube-router) allows this packet"


@pytest.fixture(scope="module", params=["iptables", "nftables"])
def lab(request: pytest.FixtureRequest) -> Iterator[Lab]:
    """One node with kube-router's policy rules, kube-proxy in the given mode."""
    from podpath.lab import LabSpec

    mode = str(request.param)
    spec = LabSpec(
        f"{RUN_ID}-pol-{mode[:3]}", pods=4, services=2, proxy_mode=mode, policy="kube-router"
    )
    with module_lab(spec) as built:
        yield built


@pytest.fixture(scope="module")
def index(lab: Lab) -> SnapshotIndex:
    """node1's snapshot, taken by the real CLI inside the node before any probe."""
    return snapshots(lab)["node1"]


def _pods(lab: Lab) -> tuple[PodRecord, PodRecord, PodRecord, PodRecord]:
    """coredns, the client (access=web), and two other web pods."""
    client = client_pod(lab.pods)
    assert client is not None
    dns = next(p for p in lab.pods if p.app == "dns")
    a, b = (p for p in lab.pods if p.app == "web" and p is not client)
    return dns, client, a, b


def _trace(index: SnapshotIndex, src: str, dst: str) -> Trace:
    return trace([index], Probe(src, dst, "tcp"))


def _assert_denied(branch: Branch, dst: PodRecord) -> None:
    assert branch.verdict == "dropped", branch.reason
    assert "REJECT" in branch.reason and "KUBE-POD-FW-" in branch.reason, branch.reason
    assert f"NetworkPolicies selecting {dst.ref}: " in branch.reason, branch.reason
    assert DENY in branch.reason and ALLOW in branch.reason, branch.reason


def _notes(branch: Branch) -> list[str]:
    return [d for hop in branch.hops for d in hop.details]


def _refused(result: ProbeResult) -> bool:
    return not result.ok and "refused" in result.error.lower()


def _shown(results: list[ProbeResult]) -> list[str]:
    """One line a probe, for assertion messages: who answered or the error, and how long."""
    return [f"{r.served_by if r.ok else r.error or 'no answer'} ({r.seconds}s)" for r in results]


def test_pod_to_pod_denied_by_policy_is_refused_and_traced(lab: Lab, index: SnapshotIndex) -> None:
    """A web pod and coredns cannot reach a web pod: refused for real; the trace names both policies."""
    dns, _client, a, b = _pods(lab)
    for src in (a, dns):
        real = lab.probe(src.ref, b.ref, 80)
        assert not real.ok and "refused" in real.error.lower(), real
        (branch,) = _trace(index, src.ref, f"{b.ref}:80").branches
        _assert_denied(branch, b)


def test_pod_to_pod_allowed_by_policy_answers_and_is_noted(lab: Lab, index: SnapshotIndex) -> None:
    """The access=web pod reaches a web pod: it answers; the trace passes the policy with a note."""
    _dns, client, _a, b = _pods(lab)
    real = lab.probe(client.ref, b.ref, 80)
    assert real.ok and real.served_by == b.ref, real
    (branch,) = _trace(index, client.ref, f"{b.ref}:80").branches
    assert branch.verdict == "delivered", branch.reason
    assert ALLOW_NOTE in _notes(branch)


def test_service_paths_follow_the_policy_per_endpoint(lab: Lab, index: SnapshotIndex) -> None:
    """Through the web Service: every branch as the kernel decides it, checked by real traffic."""
    dns, client, a, _b = _pods(lab)
    by_client = _trace(index, client.ref, "default/web:80").branches
    assert len(by_client) == 3 and all(b.verdict == "delivered" for b in by_client)
    assert all(ALLOW_NOTE in _notes(b) for b in by_client)
    for _ in range(3):
        real = lab.probe(client.ref, "default/web", 80)
        assert real.ok, real
    from_dns = _trace(index, dns.ref, "default/web:80").branches
    assert len(from_dns) == 3 and all(b.verdict == "dropped" for b in from_dns)
    real = lab.probe(dns.ref, "default/web", 80)
    assert not real.ok and "refused" in real.error.lower(), real
    # A web pod that is no client reaches only itself (its own egress rule marks the
    # hairpinned packet before its ingress policies run, in the kernel as in the trace).
    from_a = {b.packet.dst: b for b in _trace(index, a.ref, "default/web:80").branches}
    assert from_a[a.ip].verdict == "delivered"
    others = [b for ip, b in from_a.items() if ip != a.ip]
    assert len(others) == 2 and all(b.verdict == "dropped" for b in others)
    # A probe is one connect(), not one choice of endpoint: a rejected SYN leaves no
    # conntrack entry, and its ICMP port unreachable comes back (through the veths, in
    # the same softirq) while connect() still holds the socket lock, so the client's TCP
    # keeps it as a soft error and sends the SYN again a second later, a new random
    # choice. A probe is refused only when both SYNs are rejected (4 times in 9), else
    # `a` answers: 12 probes all answered by `a` happen (5/9)^12, about once in 1000
    # runs, so probe on until one is refused ((5/9)^40 is about 6e-11).
    answers = [lab.probe(a.ref, "default/web", 80) for _ in range(12)]
    while not any(_refused(r) for r in answers) and len(answers) < 40:
        answers.append(lab.probe(a.ref, "default/web", 80))
    assert {r.served_by for r in answers if r.ok} <= {a.ref}, _shown(answers)
    assert any(_refused(r) for r in answers), _shown(answers)


def test_rules_are_attributed_like_the_real_world_kube_router_rules(
    lab: Lab, index: SnapshotIndex, run_podpath: Any
) -> None:
    """The lab's policy chain rules name NS/NAME like kube-router's own test dump; `ls` shows it."""
    allow = next(p for p in LAB_POLICIES if p.ref == ALLOW)
    chain = policy_chain(allow)
    owners = set()
    for _dump, ruleset in index.rulesets:
        for rule in ruleset.rules("filter", chain) if "filter" in ruleset.tables else ():
            target = rule.target.name if rule.target else None
            owners.add(iptables_owner("filter", chain, rule.comments, target))
    assert owners == {Owner("network-policy", "kube-router", ALLOW, f"chain {chain}")}
    done = run_podpath(lab, "node1", "ls", "iptables", "--json")
    assert done.returncode == 0, done.stderr
    rows = [r for r in json.loads(done.stdout)["iptables"] if r["chain"] == chain]
    assert len(rows) == 2 and all(r["owner"]["name"] == ALLOW for r in rows)
    text = run_podpath(lab, "node1", "ls", "iptables").stdout
    assert f"NetworkPolicy {ALLOW} (kube-router)" in text


def test_the_nodes_own_connections_pass_the_node_port_rule_decided(
    lab: Lab, index: SnapshotIndex
) -> None:
    """kube-router's INPUT rule for node ports (`-m multiport --dports 30000:32767`) meets
    every answer to the node's own connections. The answer's port is the node's client
    port, from its ip_local_port_range (32768-60999, in the snapshot): the rule is
    decided, not assumed (the doctor judged these paths "cannot be judged"). Each web
    pod, from the node, as real traffic says."""
    assert index.root_netns is not None and index.root_netns.local_ports == (32768, 60999)
    for pod in (p for p in lab.pods if p.app == "web"):
        (branch,) = trace([index], Probe("node1", f"{pod.ref}:80", "tcp"), reply=True).branches
        unsure = [u for b in (branch, *branch.reply) for u in b.uncertain]
        assert not unsure, unsure
        answered = branch.verdict == "delivered" and all(
            r.verdict == "delivered" for r in branch.reply
        )
        real = lab.probe("node1", pod.ref, 80)
        assert answered == real.ok, (pod.ref, branch.reason, real)
