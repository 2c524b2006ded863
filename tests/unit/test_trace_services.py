"""Services through kube-proxy's iptables rules: branches, NodePort, filtering, uncertainty, the reply."""

from __future__ import annotations

import pytest
from trace_factory import kube_services, two_nodes

from podpath.trace.engine import trace
from podpath.trace.model import Branch
from podpath.trace.probe import Probe, ProbeError

VIP = "10.96.0.10"
ENDPOINTS = ["10.244.0.6", "10.244.1.5", "10.244.1.6"]


def _delivered_to(branches: tuple[Branch, ...]) -> dict[str, float]:
    out: dict[str, float] = {}
    for b in branches:
        assert b.verdict == "delivered", b.reason
        out[b.packet.dst] = out.get(b.packet.dst, 0.0) + b.probability
    return out


def test_service_splits_into_one_branch_per_endpoint_with_equal_shares() -> None:
    """Three endpoints give three branches of probability 1/3 each, DNATed to each endpoint."""
    rules = kube_services(VIP, 80, ENDPOINTS)
    a, b = two_nodes("vxlan", rules, rules)
    result = trace([a, b], Probe("default/a", "default/web:80"))
    shares = _delivered_to(result.branches)
    assert sorted(shares) == sorted(ENDPOINTS)
    for p in shares.values():
        assert abs(p - 1 / 3) < 1e-6
    nat = next(h for h in result.branches[0].hops if h.kind == "nat")
    assert nat.data["from"] == f"{VIP}:80" and nat.data["to"] in {f"{e}:8080" for e in ENDPOINTS}


def test_service_by_vip_and_by_name_agree() -> None:
    """Tracing the VIP:port directly finds the same endpoints as the Service name."""
    rules = kube_services(VIP, 80, ENDPOINTS)
    a, b = two_nodes("host-gw", rules, rules)
    by_vip = _delivered_to(trace([a, b], Probe("default/a", f"{VIP}:80")).branches)
    by_name = _delivered_to(trace([a, b], Probe("default/a", "default/web:http")).branches)
    assert by_vip == by_name


def test_netfilter_hops_name_table_chain_rule_and_backend() -> None:
    """Every netfilter hop carries table, chain, the rule's text and the backend."""
    rules = kube_services(VIP, 80, ENDPOINTS)
    a, _ = two_nodes("host-gw", rules)
    branch = trace([a], Probe("default/a", f"{VIP}:80")).branches[0]
    nf = [h for h in branch.hops if h.kind == "netfilter"]
    assert nf and all({"table", "chain", "rule", "backend"} <= set(h.data) for h in nf)
    assert any(
        h.data["chain"] == "KUBE-SERVICES" and "-j KUBE-SVC-" in str(h.data["rule"]) for h in nf
    )
    assert all(h.data["backend"] == "nft" for h in nf)


def test_nodeport_on_another_node_masquerades_and_reply_is_translated_back() -> None:
    """A NodePort on node-b DNATs to a local endpoint, masquerades, and the reply returns as NODE:PORT."""
    rules = kube_services(VIP, 80, ["10.244.1.5"], nodeport=30080)
    a, b = two_nodes("host-gw", rules, rules)
    result = trace([a, b], Probe("default/a", "192.168.0.3:30080"), reply=True)
    branch = next(iter(result.branches))
    assert branch.verdict == "delivered" and branch.packet.dst == "10.244.1.5"
    kinds = [(h.kind, h.data.get("type")) for h in branch.hops if h.kind == "nat"]
    assert ("nat", "DNAT") in kinds and ("nat", "SNAT") in kinds
    assert branch.packet.src == "10.244.1.1"  # masqueraded to cni0's address on node-b
    reply = branch.reply[0]
    assert reply.verdict == "delivered" and "pod default/a" in reply.reason
    assert (reply.packet.src, reply.packet.sport) == ("192.168.0.3", 30080)
    assert reply.packet.dst == "10.244.0.5"
    undone = [h.data["type"] for h in reply.hops if h.kind == "conntrack"]
    assert undone == ["un-SNAT", "un-DNAT"]


def test_reply_from_a_service_comes_back_from_the_vip() -> None:
    """Every endpoint's reply reaches the client with the Service VIP and port as its source."""
    rules = kube_services(VIP, 80, ENDPOINTS)
    a, b = two_nodes("vxlan", rules, rules)
    result = trace([a, b], Probe("default/a", f"{VIP}:80", sport=40000), reply=True)
    for branch in result.branches:
        reply = branch.reply[0]
        assert reply.verdict == "delivered", reply.reason
        assert (reply.packet.src, reply.packet.sport, reply.packet.dst, reply.packet.dport) == (
            VIP,
            80,
            "10.244.0.5",
            40000,
        )


def test_node_to_service_masquerades_through_kube_mark_masq() -> None:
    """A node process reaching a ClusterIP is marked (not from the pod CIDR) and masqueraded."""
    rules = kube_services(VIP, 80, ["10.244.1.5"])
    a, b = two_nodes("host-gw", rules, rules)
    branch = trace([a, b], Probe("node", f"{VIP}:80"), reply=True).branches[0]
    marks = [h.text for h in branch.hops if h.kind == "netfilter" and "MARK" in h.text]
    assert any("0x0 -> 0x4000" in m for m in marks)
    assert any(h.kind == "nat" and h.data["type"] == "SNAT" for h in branch.hops)
    assert branch.verdict == "delivered"
    assert branch.reply[0].packet.src == VIP


def test_reject_in_forward_drops_the_branch() -> None:
    """A NetworkPolicy-style REJECT in FORWARD ends the branch as dropped, naming the rule."""
    extra = "-A KUBE-FORWARD -s 10.244.0.5/32 -d 10.244.1.5/32 -p tcp -m tcp --dport 80 -j REJECT --reject-with icmp-port-unreachable"
    rules = kube_services(VIP, 80, ENDPOINTS, extra_filter=extra)
    a, b = two_nodes("host-gw", rules, rules)
    result = trace([a, b], Probe("default/a", "10.244.1.5:80"))
    branch = result.branches[0]
    assert branch.verdict == "dropped" and "rejected" in branch.reason and "REJECT" in branch.reason


def test_forward_policy_drop() -> None:
    """A FORWARD policy DROP with no accepting rule drops the new connection."""
    rules = kube_services(VIP, 80, ENDPOINTS, forward_policy="DROP")
    a, b = two_nodes("host-gw", rules, rules)
    branch = trace([a, b], Probe("default/a", "10.244.1.5:80")).branches[0]
    assert branch.verdict == "dropped" and "policy DROP" in branch.reason


def test_unknown_match_makes_the_branch_uncertain_and_names_the_rule() -> None:
    """An ipset match cannot be decided from a snapshot: uncertain, naming the rule."""
    extra = "-A KUBE-FORWARD -m set --match-set blocked dst -j DROP"
    rules = kube_services(VIP, 80, ENDPOINTS, extra_filter=extra)
    a, b = two_nodes("host-gw", rules, rules)
    branch = trace([a, b], Probe("default/a", "10.244.1.5:80")).branches[0]
    assert branch.verdict == "uncertain"
    assert branch.outcome == "delivered"
    assert any("--match-set blocked dst" in u for u in branch.uncertain)


def test_unknown_service_is_a_probe_error() -> None:
    """A Service name not in kube-proxy's rules is one clear error."""
    rules = kube_services(VIP, 80, ENDPOINTS)
    a, _ = two_nodes("host-gw", rules)
    with pytest.raises(ProbeError, match="nosuch/svc"):
        trace([a], Probe("default/a", "nosuch/svc:80"))


def test_jump_loop_ends_uncertain_instead_of_hanging() -> None:
    """Chains that jump to each other end the branch as uncertain, not in an endless walk."""
    rules = "\n".join(
        [
            "*filter",
            ":INPUT ACCEPT [0:0]",
            ":FORWARD ACCEPT [0:0]",
            ":OUTPUT ACCEPT [0:0]",
            ":LOOP-A - [0:0]",
            ":LOOP-B - [0:0]",
            "-A FORWARD -j LOOP-A",
            "-A LOOP-A -j LOOP-B",
            "-A LOOP-B -j LOOP-A",
            "COMMIT",
            "",
        ]
    )
    a, b = two_nodes("host-gw", rules, rules)
    branch = trace([a, b], Probe("default/a", "10.244.1.5:80")).branches[0]
    assert branch.verdict == "uncertain" and "loop" in branch.reason


def test_garbage_ruleset_does_not_crash() -> None:
    """A dump that is not iptables-save text leaves the path to routing, without a crash."""
    a, b = two_nodes("host-gw", "\x1b[31mgarbage\n-A\n*nat\n-A PREROUTING -j\nCOMMIT\n", "")
    result = trace([a, b], Probe("default/a", "10.244.1.5:80"))
    assert result.branches and result.branches[0].verdict in {"delivered", "uncertain"}


def test_icmp_probe_has_no_ports_and_is_delivered() -> None:
    """An ICMP probe crosses nodes without port matches getting in the way."""
    rules = kube_services(VIP, 80, ENDPOINTS)
    a, b = two_nodes("host-gw", rules, rules)
    branch = trace([a, b], Probe("default/a", "10.244.1.5", proto="icmp")).branches[0]
    assert branch.verdict == "delivered" and branch.packet.dport is None
