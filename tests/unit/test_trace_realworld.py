"""Traces through real kube-proxy rulesets: the iptables proxier dump and the nftables proxier dump."""

from __future__ import annotations

from pathlib import Path

import pytest
from trace_factory import NodeSpec, PodSpec, build_node

from podpath.netfilter.iptables_save import parse_ruleset
from podpath.trace.engine import trace
from podpath.trace.matches import MatchEnv
from podpath.trace.model import Packet
from podpath.trace.netfilter import NfEnv, walk_table
from podpath.trace.nft import parse_rule
from podpath.trace.probe import Probe

REALWORLD = Path(__file__).resolve().parents[1] / "fixtures" / "realworld"
IPTABLES = REALWORLD / "iptables" / "k8s-proxier-test-overall-rules-restore-input.txt"
NFT = REALWORLD / "nftables" / "k8s-nftables-proxier-test-overall-rules-nft-f-dump.txt"

pytestmark = pytest.mark.skipif(
    not IPTABLES.exists() or not NFT.exists(), reason="real-world fixtures missing"
)


def _env(local: frozenset[str] = frozenset({"192.168.0.2"})) -> NfEnv:
    return NfEnv(0, "node", "legacy", MatchEnv(local_addresses=local, in_iface="eth0"))


def _walk(dst: str, dport: int, src: str = "10.0.0.5") -> list[tuple[float, str, str, int | None]]:
    ruleset = parse_ruleset(IPTABLES.read_text())
    out = walk_table(
        ruleset,
        "nat",
        "PREROUTING",
        Packet(src, dst, "tcp", 40000, dport),
        _env(),
        chain="KUBE-SERVICES",
    )
    return sorted((round(o.probability, 6), o.verdict, o.packet.dst, o.packet.dport) for o in out)


def test_iptables_dump_two_endpoints_half_each() -> None:
    """ns4/svc4 in the real proxier dump splits 0.5/0.5 between its two endpoints."""
    assert _walk("172.30.0.44", 80) == [
        (0.5, "ACCEPT", "10.180.0.4", 80),
        (0.5, "ACCEPT", "10.180.0.5", 80),
    ]


def test_iptables_dump_single_endpoint_dnat() -> None:
    """ns1/svc1 DNATs to its one endpoint."""
    assert _walk("172.30.0.41", 80) == [(1.0, "ACCEPT", "10.180.0.1", 80)]


def test_iptables_dump_recent_match_is_uncertain() -> None:
    """ns5/svc5's session affinity (-m recent --rcheck) cannot be decided: uncertain, naming the rule."""
    ruleset = parse_ruleset(IPTABLES.read_text())
    out = walk_table(
        ruleset,
        "nat",
        "PREROUTING",
        Packet("10.0.0.5", "172.30.0.45", "tcp", 40000, 80),
        _env(),
        chain="KUBE-SERVICES",
    )
    assert [o.packet.dst for o in out] == ["10.180.0.3"]
    assert any("--rcheck" in u and "KUBE-SVC-NUKIZ6OKUXPJNT4C" in u for u in out[0].uncertain)


def test_iptables_dump_nodeport_via_addrtype_local() -> None:
    """A NodePort on a local address reaches KUBE-NODEPORTS through `addrtype --dst-type LOCAL`."""
    assert _walk("192.168.0.2", 3001) == [(1.0, "ACCEPT", "10.180.0.2", 80)]


def test_iptables_dump_filter_rejects_service_without_endpoints() -> None:
    """The filter table's KUBE-SERVICES REJECTs ns6/svc6, which has no endpoints."""
    ruleset = parse_ruleset(IPTABLES.read_text())
    out = walk_table(
        ruleset,
        "filter",
        "FORWARD",
        Packet("10.0.0.5", "172.30.0.46", "tcp", 40000, 80),
        _env(),
        chain="KUBE-SERVICES",
    )
    assert [o.verdict for o in out] == ["REJECT"]


def _nft_node() -> object:
    return build_node(NodeSpec(pods=[PodSpec("a", "10.244.0.5")], nft_json=NFT.read_text()))


def test_nft_numgen_splits_into_equal_branches() -> None:
    """kube-proxy's nftables `numgen random mod 2 vmap` gives two branches of 0.5."""
    result = trace([_nft_node()], Probe("default/a", "172.30.0.44:80"))  # type: ignore[list-item]
    assert sorted((round(b.probability, 6), b.packet.dst) for b in result.branches) == [
        (0.5, "10.180.0.4"),
        (0.5, "10.180.0.5"),
    ]
    hop = next(
        h
        for h in result.branches[0].hops
        if h.kind == "netfilter" and "vmap @service-ips" in str(h.data["rule"])
    )
    assert hop.data["backend"] == "nftables" and hop.data["table"] == "ip kube-proxy"


def test_nft_service_by_name() -> None:
    """A Service name resolves through the service-ips map."""
    result = trace([_nft_node()], Probe("default/a", "ns1/svc1:p80"))  # type: ignore[list-item]
    assert [b.packet.dst for b in result.branches] == ["10.180.0.1"]


def test_nft_no_endpoints_is_rejected_in_forward() -> None:
    """A ClusterIP without endpoints is rejected via no-endpoint-services -> reject-chain."""
    result = trace([_nft_node()], Probe("default/a", "172.30.0.46:80"))  # type: ignore[list-item]
    assert [b.verdict for b in result.branches] == ["dropped"]
    assert "reject" in result.branches[0].reason


def test_nft_nodeport_on_the_node_address() -> None:
    """A NodePort on the node's address goes through nodeport-ips and service-nodeports."""
    result = trace([_nft_node()], Probe("default/a", "192.168.0.2:3001"))  # type: ignore[list-item]
    assert [(b.packet.dst, b.packet.dport) for b in result.branches] == [("10.180.0.2", 80)]


def test_nft_affinity_set_is_uncertain() -> None:
    """The dynamic affinity set is kernel state: the branch is uncertain and names the rule."""
    result = trace([_nft_node()], Probe("default/a", "172.30.0.45:80"))  # type: ignore[list-item]
    branch = result.branches[0]
    assert branch.verdict == "uncertain" and any("@affinity-" in u for u in branch.uncertain)


def test_nft_rule_parser_reads_kube_proxy_shapes() -> None:
    """The rule parser understands concatenated vmaps, numgen and mark arithmetic."""
    kinds = [e.kind for e in parse_rule("ip daddr . meta l4proto . th dport vmap @service-ips")]
    assert kinds == ["vmap"]
    assert [e.kind for e in parse_rule("numgen random mod 2 vmap { 0 : goto a , 1 : goto b }")] == [
        "numgen"
    ]
    assert [e.kind for e in parse_rule("mark and 0x4000 == 0 return")] == ["markcmp", "stmt"]
    assert [e.kind for e in parse_rule("frobnicate the packet")] == ["unknown"]


def test_nft_stages_come_from_the_base_chain_index() -> None:
    """A hook's stages are exactly the table's base chains at that hook (indexed once)."""
    from podpath.netfilter.nft import parse_nft
    from podpath.trace.nft import NftIndex, stages_for

    idx = NftIndex.build(parse_nft(NFT.read_text()))
    hooked = {k for k, c in idx.chains.items() if c.hook}
    assert hooked and {k for keys in idx.base_chains.values() for k in keys} == hooked
    labels = [s.label for s in stages_for(idx, "PREROUTING", 4)]
    expected = [f"nft {f} {t} {n}" for (f, t, n), c in idx.chains.items() if c.hook == "prerouting"]
    assert labels == expected and "nft ip kube-proxy nat-prerouting" in labels
