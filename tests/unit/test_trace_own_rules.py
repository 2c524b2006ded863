"""A pod's own netfilter rules make its paths uncertain, where a packet meets them.

Which hooks a table acts at (an nf_tables base chain with rules; a legacy table's
built-in chains), which family (inet both), and that only a connection's first packet
meets nat chains. The doctor sets such a pod apart and says it once, for the pod. The
lab test in tests/lab/test_doctor_lab.py writes Istio's rules for real and sends traffic.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
from sidecar_rules import istio_commands
from trace_factory import NodeSpec, PodSpec, build_node

from podpath.analysis.index import SnapshotIndex
from podpath.doctor import diagnose
from podpath.doctor.classes import pod_classes
from podpath.snapshot.model import NetfilterChain, NetfilterTable, Snapshot
from podpath.trace.engine import trace
from podpath.trace.own_rules import note
from podpath.trace.probe import Probe

ISTIO = NetfilterTable(
    "nft",
    "ip",
    "nat",
    (
        NetfilterChain("PREROUTING", "prerouting", 1, "nat"),
        NetfilterChain("OUTPUT", "output", 1, "nat"),
        NetfilterChain("ISTIO_OUTPUT", None, 2),
        NetfilterChain("ISTIO_REDIRECT", None, 1),
    ),
)
FILTER = NetfilterTable("nft", "inet", "guard", (NetfilterChain("in", "input", 3, "filter"),))
EMPTY = NetfilterTable("nft", "ip", "nat", (NetfilterChain("OUTPUT", "output", 0, "nat"),))
PODS = [PodSpec(f"web-{i}", f"10.244.0.{i + 2}") for i in range(3)]


def test_a_sidecar_redirect_is_named_with_its_chains() -> None:
    said = note((ISTIO,), "OUTPUT", 4, "pod default/web-0", True)
    assert said == (
        "pod default/web-0's own network namespace has netfilter rules at OUTPUT (ip nat: "
        "PREROUTING 1 rule, OUTPUT 1 rule, ISTIO_OUTPUT 2 rules, ISTIO_REDIRECT 1 rule; "
        "Istio's sidecar redirect): podpath reads only the node's rules, so where they send "
        "the packet is not known"
    )


@pytest.mark.parametrize(
    ("tables", "hook", "family", "first"),
    [
        ((ISTIO,), "OUTPUT", 4, False),  # an answer: nat chains are not met
        ((ISTIO,), "OUTPUT", 6, True),  # an ip table: IPv4 only
        ((ISTIO,), "INPUT", 4, True),  # no chain at that hook
        ((EMPTY,), "OUTPUT", 4, True),  # a chain without rules
        ((), "OUTPUT", 4, True),
        (None, "OUTPUT", 4, True),  # not read
    ],
)
def test_nothing_is_said_where_no_rule_acts(
    tables: tuple[NetfilterTable, ...] | None, hook: str, family: int, first: bool
) -> None:
    assert note(tables, hook, family, "pod default/web-0", first) == ""


def test_inet_filter_and_legacy_tables_act_in_either_direction() -> None:
    assert note((FILTER,), "INPUT", 6, "pod p", False)
    legacy = NetfilterTable("legacy", "ip", "nat")
    assert "legacy ip nat, rules not counted" in note((legacy,), "PREROUTING", 4, "pod p", True)
    assert note((legacy,), "PREROUTING", 4, "pod p", False) == ""
    assert note((NetfilterTable("legacy", "ip", "filter"),), "PREROUTING", 4, "pod p", True) == ""
    # A netdev table's ingress chain sees what arrives just before PREROUTING.
    guard = NetfilterTable(
        "nft", "netdev", "guard", (NetfilterChain("in", "ingress", 1, "filter"),)
    )
    assert "netdev guard: in 1 rule" in note((guard,), "PREROUTING", 6, "pod p", False)
    assert note((guard,), "OUTPUT", 4, "pod p", True) == ""


def _node() -> Snapshot:
    """Three pods on cni0; web-1's namespace has Istio's nat rules."""
    snap = build_node(NodeSpec(pods=PODS))
    web1 = next(p for p in snap.pods if p.name == "web-1")
    netns = tuple(
        replace(ns, netfilter=(ISTIO,)) if ns.inode == web1.netns_inode else ns for ns in snap.netns
    )
    return replace(snap, netns=netns)


def test_the_trace_goes_on_uncertain_both_ways() -> None:
    index = SnapshotIndex(_node())
    (out,) = trace([index], Probe("default/web-1", "10.244.0.2:80")).branches
    assert out.verdict == "uncertain" and out.outcome == "delivered", out.reason
    assert "pod default/web-1's own network namespace has netfilter rules at OUTPUT" in out.reason
    (into,) = trace([index], Probe("default/web-0", "10.244.0.3:80")).branches
    assert "has netfilter rules at PREROUTING" in into.reason, into.reason
    (other,) = trace([index], Probe("default/web-0", "10.244.0.4:80")).branches
    assert other.verdict == "delivered", other.reason


def test_the_doctor_sets_the_pod_apart_and_says_it_once() -> None:
    index = SnapshotIndex(_node())
    found = sorted(sorted(p.name for p in c.members) for c in pod_classes(index, 0))
    assert found == [["web-0", "web-2"], ["web-1"]]
    report = diagnose([index])
    (finding,) = [f for f in report.findings if f.check == "own-netfilter-rules"]
    assert finding.grade == "info" and finding.subject == "pod default/web-1"


def test_istios_own_rules_are_named_as_istios() -> None:
    """The chains istio/istio's golden file writes (tests/fixtures/sidecar), counted as
    the namespace scan counts them: the note names them as Istio's, at OUTPUT and at
    PREROUTING alike."""
    counts: dict[str, int] = {}
    for command in istio_commands():
        action, chain = command[3], command[4]
        counts[chain] = counts.get(chain, 0) + (action != "-N")
    hooks = {"PREROUTING": "prerouting", "OUTPUT": "output"}
    table = NetfilterTable(
        "nft",
        "ip",
        "nat",
        tuple(
            NetfilterChain(c, hooks.get(c), n, "nat" if c in hooks else None)
            for c, n in counts.items()
        ),
    )
    for hook in ("OUTPUT", "PREROUTING"):
        said = note((table,), hook, 4, "pod p", True)
        assert "ISTIO_OUTPUT 9 rules" in said and "; Istio's sidecar redirect)" in said, said
