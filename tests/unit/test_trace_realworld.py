"""Traces through real kube-proxy rulesets: the iptables proxier dump and the nftables proxier dump."""

from __future__ import annotations

from pathlib import Path

import nft_real
import pytest
from trace_factory import NodeSpec, PodSpec, build_node

from podpath.netfilter.iptables_save import parse_ruleset
from podpath.snapshot.model import Snapshot
from podpath.trace.engine import trace
from podpath.trace.matches import MatchEnv
from podpath.trace.model import Packet
from podpath.trace.netfilter import NfEnv, walk_table
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


# The dump's endpoints are 10.180.0.x in a 10.0.0.0/8 cluster: pods live there too.
_PODS = [PodSpec("a", "10.180.0.9"), PodSpec("ep3", "10.180.0.3"), PodSpec("ep4", "10.180.0.4")]


_NFT_JSON: list[str] = []


def _nft_json() -> str:
    """The dump loaded into the real nft and read back with `nft -j list ruleset` (cached)."""
    if not _NFT_JSON:
        _NFT_JSON.append(nft_real.load(nft_real.commands_for(NFT.read_text())[1]).json)
    return _NFT_JSON[0]


@pytest.fixture(params=["json", "text"])
def nft_form(request: pytest.FixtureRequest) -> str:
    """The ruleset as a node's snapshot holds it (nft -j) and as the dump's own text."""
    return str(request.param)


def _nft_node(form: str = "json") -> Snapshot:
    text = _nft_json() if form == "json" else NFT.read_text()
    return build_node(NodeSpec(pod_cidr="10.180.0.0/24", pods=_PODS, nft_json=text))


def test_nft_numgen_splits_into_equal_branches(nft_form: str) -> None:
    """kube-proxy's nftables `numgen random mod 2 vmap` gives two branches of 0.5."""
    result = trace([_nft_node(nft_form)], Probe("default/a", "172.30.0.44:80"))
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


def test_nft_service_by_name(nft_form: str) -> None:
    """A Service name resolves through the service-ips map."""
    result = trace([_nft_node(nft_form)], Probe("default/a", "ns1/svc1:p80"))
    assert [b.packet.dst for b in result.branches] == ["10.180.0.1"]


def test_nft_no_endpoints_is_rejected_in_forward(nft_form: str) -> None:
    """A ClusterIP without endpoints is rejected via no-endpoint-services -> reject-chain."""
    result = trace([_nft_node(nft_form)], Probe("default/a", "172.30.0.46:80"))
    assert [b.verdict for b in result.branches] == ["dropped"]
    assert "reject" in result.branches[0].reason


def test_nft_nodeport_on_the_node_address(nft_form: str) -> None:
    """A NodePort on the node's address goes through nodeport-ips and service-nodeports."""
    result = trace([_nft_node(nft_form)], Probe("default/a", "192.168.0.2:3001"))
    assert [(b.packet.dst, b.packet.dport) for b in result.branches] == [("10.180.0.2", 80)]


def test_nft_affinity_without_a_pin_follows_numgen_and_says_what_it_records(nft_form: str) -> None:
    """An empty affinity set means no pin: numgen picks, and the endpoint chain records the client."""
    result = trace([_nft_node(nft_form)], Probe("default/a", "172.30.0.45:80"))
    (branch,) = result.branches
    assert branch.verdict == "delivered" and branch.packet.dst == "10.180.0.3"
    notes = [d for h in branch.hops for d in h.details]
    assert any("is not in set affinity-GTK6MW7G" in n for n in notes)
    assert any("records 10.180.0.9 in set affinity-GTK6MW7G" in n for n in notes)


def test_nft_pod_to_cluster_ip_is_not_masqueraded(nft_form: str) -> None:
    """A pod inside the cluster CIDR reaches a ClusterIP without SNAT: the mark is never set."""
    result = trace([_nft_node(nft_form)], Probe("default/a", "172.30.0.44:80"))
    branch = next(b for b in result.branches if b.packet.dst == "10.180.0.4")
    assert branch.verdict == "delivered", branch.reason
    assert [r.kind for r in branch.nat] == ["DNAT"]
    assert not any(h.kind == "nat" and h.data["type"] == "SNAT" for h in branch.hops)
    assert not branch.uncertain


def test_nft_hairpin_is_masqueraded_through_the_mark(nft_form: str) -> None:
    """An endpoint reaching its own Service is marked in its endpoint chain and masqueraded."""
    result = trace([_nft_node(nft_form)], Probe("default/ep3", "172.30.0.43:80"))
    (branch,) = result.branches
    assert branch.verdict == "delivered", branch.reason
    kinds = [(h.data["type"], h.data["target"]) for h in branch.hops if h.kind == "nat"]
    assert kinds == [("DNAT", "dnat"), ("SNAT", "masquerade")], [h.text for h in branch.hops]
    marks = [h.text for h in branch.hops if "mark 0x" in h.text]
    assert any("0x0 -> 0x4000" in t for t in marks) and any("0x4000 -> 0x0" in t for t in marks)


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


def test_nft_no_endpoint_reject_names_the_service_of_the_map_element(nft_form: str) -> None:
    """ns6/svc6 has no endpoints: the no-endpoint-services element kube-proxy commented
    `ns6/svc6:p80` sends it to the shared reject-chain; the drop reason and both hops name it."""
    from podpath.trace.render import render_text

    result = trace([_nft_node(nft_form)], Probe("default/a", "172.30.0.46:80"))
    (branch,) = result.branches
    assert branch.reason.endswith("(Service ns6/svc6:p80 (kube-proxy))"), branch.reason
    owners = {
        str(h.data["chain"]): h.data["owner"]
        for h in branch.hops
        if h.kind == "netfilter" and h.data["chain"] in ("service-endpoints-check", "reject-chain")
    }
    how = "comment of its element in map no-endpoint-services"
    want = {"kind": "service", "agent": "kube-proxy", "name": "ns6/svc6:p80", "how": how}
    assert owners == {"service-endpoints-check": want, "reject-chain": want}
    assert "rule of Service ns6/svc6:p80 (kube-proxy)" in render_text(result)


def test_nft_no_endpoint_nodeport_drop_names_the_service() -> None:
    """A NodePort whose no-endpoint-nodeports element says `drop` names ns2/svc2:p80 there."""
    from podpath.netfilter.nft import parse_nft
    from podpath.trace.nft import NftIndex, NftWalker

    idx = NftIndex.build(parse_nft(NFT.read_text()))
    walker = NftWalker(idx, ("ip", "kube-proxy", "nodeport-endpoints-check"), _env())
    (out,) = walker.walk(Packet("10.0.0.5", "192.168.0.2", "tcp", 40000, 3001), 1.0)
    assert out.verdict == "DROP"
    assert out.hops[-1].data["owner"] == {
        "kind": "service",
        "agent": "kube-proxy",
        "name": "ns2/svc2:p80",
        "how": "comment of its element in map no-endpoint-nodeports",
    }


_JUMPED = """table ip kube-proxy {
\tmap no-endpoint-services {
\t\ttype ipv4_addr . inet_proto . inet_service : verdict
\t\telements = { 10.96.0.9 . tcp . 80 comment "ns/svc:http" : jump helper }
\t}
\tchain filter-forward {
\t\ttype filter hook forward priority filter; policy accept;
\t\tip daddr . meta l4proto . th dport vmap @no-endpoint-services
\t\tdrop
\t}
\tchain helper {
\t\tmeta mark set 0x00000001
\t}
}
"""


def test_nft_element_service_ends_when_its_chain_returns() -> None:
    """The Service an element names owns the chain it jumps to, not the rules after the return."""
    from podpath.netfilter.nft import parse_nft
    from podpath.trace.nft import NftIndex, NftWalker

    walker = NftWalker(
        NftIndex.build(parse_nft(_JUMPED)), ("ip", "kube-proxy", "filter-forward"), _env()
    )
    (out,) = walker.walk(Packet("10.0.0.5", "10.96.0.9", "tcp", 40000, 80), 1.0)
    assert out.verdict == "DROP"
    owners = [h.data["owner"] for h in out.hops]
    names = [o["name"] if isinstance(o, dict) else None for o in owners]
    chains = [h.data["chain"] for h in out.hops]
    assert chains == ["filter-forward", "helper", "filter-forward"]
    assert names == ["ns/svc:http", "ns/svc:http", ""]


def test_nft_firewall_drop_names_the_service(nft_form: str) -> None:
    """A source outside ns5/svc5's LoadBalancerSourceRanges is dropped in its firewall chain."""
    result = trace([_nft_node(nft_form)], Probe("default/a", "5.6.7.8:80"))
    (branch,) = result.branches
    assert branch.verdict == "dropped"
    assert branch.reason.endswith("(Service ns5/svc5:p80 (kube-proxy))"), branch.reason
