"""podpath.analysis: the conclusions the CLI and the TUI share, on real dumps and built snapshots."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest
from trace_factory import NodeSpec, build_node, kube_services

from podpath.analysis.conntrack import (
    is_stale,
    nat_note,
    service_addresses,
    stale_entries,
    stale_in_listing,
)
from podpath.analysis.dataplane import mode_text
from podpath.analysis.index import SnapshotIndex
from podpath.analysis.mentions import mention_index, mentions_of
from podpath.analysis.parsed import ParsedSnapshot
from podpath.analysis.services import endpoint_place, endpoints_of
from podpath.conntrack import parse_conntrack
from podpath.netfilter.kube_proxy import KubeProxyMode
from podpath.snapshot.codec import load_path
from podpath.snapshot.model import IptablesDump, Snapshot

REPO = Path(__file__).resolve().parents[2]
FIXTURE = REPO / "tests" / "tui" / "fixtures" / "snapshot.json"
REALWORLD = REPO / "tests" / "fixtures" / "realworld"


@pytest.fixture(scope="module")
def fixed() -> Snapshot:
    """The TUI tests' fixed snapshot (one node, kube-proxy iptables mode, conntrack)."""
    return load_path(str(FIXTURE))


def _parsed(snapshot: Snapshot) -> ParsedSnapshot:
    return ParsedSnapshot(SnapshotIndex(snapshot))


def _node(**changes: object) -> Snapshot:
    """A built node (trace_factory) with kube-proxy rules for one Service, then `changes`."""
    snap = build_node(NodeSpec(iptables=kube_services("10.96.0.10", 80, ["10.244.0.2"])))
    return dataclasses.replace(snap, **changes)  # type: ignore[arg-type]


def test_mode_text_words_every_outcome_of_detect_mode() -> None:
    """iptables with its backend, nftables alone, not found (with kubelet's hint), unreadable."""
    assert mode_text(KubeProxyMode("iptables", "iptables-nft")) == "iptables (iptables-nft)"
    assert mode_text(KubeProxyMode("nftables", "nftables")) == "nftables"
    assert mode_text(KubeProxyMode("ipvs", "iptables-legacy")) == "ipvs (iptables-legacy)"
    assert mode_text(KubeProxyMode(None, "iptables-nft")) == (
        "not found (kubelet's chains are in iptables-nft)"
    )
    assert mode_text(None).startswith("unknown")


def test_an_ipvs_mode_node_is_called_ipvs() -> None:
    """The real IPVS-mode nat table (kubernetes pkg/proxy/ipvs/README) reads as ipvs mode."""
    text = (REALWORLD / "iptables" / "k8s-ipvs-mode-iptables-t-nat-nL-loadbalancer.txt").read_text()
    snap = _node(iptables=(IptablesDump("nft", "ipv4", ("iptables-nft-save",), text),))
    assert mode_text(_parsed(snap).kube_proxy_mode()) == "ipvs (iptables-nft)"


CONNTRACK = """\
tcp      6 86390 ESTABLISHED src=10.244.0.8 dst=10.96.0.20 sport=5000 dport=80 src=10.244.0.5 dst=10.244.0.8 sport=80 dport=5000 [ASSURED] mark=0 use=1
tcp      6 86390 ESTABLISHED src=10.244.0.8 dst=10.96.0.20 sport=5001 dport=80 src=10.244.0.9 dst=10.244.0.8 sport=80 dport=5001 [ASSURED] mark=0 use=1
udp      17 20 src=10.244.0.8 dst=10.96.0.20 sport=5002 dport=80 src=10.244.0.9 dst=10.244.0.8 sport=80 dport=5002 mark=0 use=1
tcp      6 100 ESTABLISHED src=10.244.0.8 dst=1.1.1.1 sport=5003 dport=443 src=1.1.1.1 dst=192.168.1.10 sport=443 dport=5003 [ASSURED] mark=0 use=1
"""


def test_nat_notes_tell_dnat_stale_and_snat_apart(fixed: Snapshot) -> None:
    """To a live endpoint: DNAT; to a former one: stale (same protocol only); rewritten source: SNAT."""
    services = _parsed(fixed).services()
    addresses = service_addresses(services)
    live, former, udp, snat = parse_conntrack(CONNTRACK)
    assert nat_note(live, addresses).text == "DNAT 10.96.0.20 → 10.244.0.5"
    assert nat_note(former, addresses).kind == "stale"
    assert not is_stale(udp, addresses)  # default/web is a TCP Service
    assert nat_note(snat, addresses).text == "SNAT 10.244.0.8 → 192.168.1.10"
    assert stale_entries((live, former, udp, snat), services) == [former]


def test_endpoints_are_placed_on_a_pod_this_node_or_elsewhere(fixed: Snapshot) -> None:
    """A local pod's IP names the pod; the node's own address is host network; others are remote."""
    index = SnapshotIndex(fixed)
    assert endpoint_place(index, "10.244.0.5").label == "default/web-7d4b9c6f5d-x7k2p"
    root = index.root_netns
    assert root is not None
    node_ip = next(a.address for link in root.links for a in link.addresses if link.name != "lo")
    assert endpoint_place(index, node_ip).kind == "node"
    assert endpoint_place(index, "10.244.7.7").kind == "remote"


def test_endpoints_of_a_pod_give_its_share_of_each_service(fixed: Snapshot) -> None:
    """The web pod is one endpoint of three of default/web."""
    found = endpoints_of(_parsed(fixed).services(), frozenset({"10.244.0.5"}))
    assert [(s.name, round(e.probability, 4)) for s, e in found] == [("web", 0.3333)]


def test_mentions_find_whole_addresses_only(fixed: Snapshot) -> None:
    """10.244.0.5 is found in its KUBE-SEP rules and never inside another address."""
    parsed = _parsed(fixed)
    index = mention_index(parsed.rule_dumps(), ["10.244.0.5", "10.244.0.50"])
    found = mentions_of(index, ["10.244.0.5", "10.244.0.5"])
    assert found and len({(m.chain, m.position) for m in found}) == len(found)
    assert all("10.244.0.5" in m.text for m in found)
    assert "10.244.0.50" not in index


def test_no_core_conclusion_is_left_in_the_tui() -> None:
    """The TUI's old copies (its own mode heuristic, problems, table names, adapters) are gone."""
    tui = REPO / "tui"
    text = "\n".join(p.read_text() for p in tui.rglob("*.py"))
    for copy in ("kube_proxy_mode", "problems", "_table_name", "mention_index", "masquerades"):
        assert not re.search(rf"^def {copy}\(", text, re.MULTILINE), copy
    assert not (tui / "adapters.py").exists()


ODD_LINES = """\
ipv4     2 tcp      6 86390 ESTABLISHED src=10.244.0.8 dst=10.96.0.20 sport=5004 dport=80 packets=3 bytes=180 src=10.244.0.7 dst=10.244.0.8 sport=80 dport=5004 packets=2 bytes=120 [ASSURED] mark=0 zone=3 use=1
tcp      6 110 SYN_SENT src=10.244.0.8 dst=10.96.0.20 sport=5005 dport=80 [UNREPLIED] src=10.244.0.66 dst=10.244.0.8 sport=80 dport=5005 mark=0 use=1
tcp      6 110 SYN_SENT src=10.244.0.8 dst=10.96.0.20 sport=5006 dport=80 [UNREPLIED] src=10.244.0.66 dst=10.244.0.8 sport=80 dport=5006 mark=0 secctx=system_u:object_r:unlabeled_t:s0 use=1
icmp     1 29 src=10.244.0.8 dst=10.96.0.20 type=8 code=0 id=7 src=10.244.0.5 dst=10.244.0.8 type=0 code=0 id=7 mark=0 use=1
tcp      6 86390 ESTABLISHED src=10.244.0.8 dst=10.96.0.20 sport=5007 dport=81 src=10.244.0.6 dst=10.244.0.8 sport=80 dport=5007 [ASSURED] mark=0 use=1
 3 flow entries have been shown.
"""


def test_stale_in_listing_finds_what_the_full_parse_finds(fixed: Snapshot) -> None:
    """The scan that skips lines unparsed agrees with parsing every line: common shapes,
    counters, zones, UNREPLIED, secctx (the token parser's), ICMP, another port."""
    services = _parsed(fixed).services()
    text = CONNTRACK + ODD_LINES
    want = stale_entries(parse_conntrack(text), services)
    assert [e.original.sport for e in want] == [5001, 5004, 5005, 5006]
    assert stale_in_listing(text, services) == want
    assert stale_in_listing("", services) == []
