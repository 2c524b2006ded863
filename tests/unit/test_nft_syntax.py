"""nft rule text and nft's JSON agree: podpath's converter and printer against the real nft.

Each ruleset is loaded into nft in a throw-away network namespace; nft's own `nft -j`
and `nft list` of it are the reference. The converter must give nft's structure (or
say a statement is unparsed, never a different one); the printer must give nft's text.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import nft_real
import pytest

from podpath.netfilter.kube_proxy import Service
from podpath.netfilter.kube_proxy_nft import nft_services
from podpath.netfilter.nft import parse_nft_json, parse_nft_text
from podpath.netfilter.nft_syntax import rule_expressions

NFTABLES = Path(__file__).resolve().parents[1] / "fixtures" / "realworld" / "nftables"
# The real-world text rulesets nft can load (the KEP's listing is illustrative only).
LOADABLE = (
    "k8s-nftables-proxier-test-overall-rules-nft-f-dump.txt",
    "calico-felix-fv-table-ip-calico-nft-list.txt",
    "calico-issue13263-foreign-ruleset-nft-commands.txt",
)
# Shapes the fixtures lack: families, NAT forms, flags, ranges, limits, maps, ct keys.
SHAPES = """\
add table inet x
add table ip y
add table ip6 z
add set ip y s4 { type ipv4_addr ; flags interval ; }
add map ip y m { type ipv4_addr . inet_proto . inet_service : verdict ; }
add set ip y aff { type ipv4_addr ; flags dynamic,timeout ; timeout 10800s ; }
add chain inet x c { type nat hook prerouting priority dstnat ; }
add chain ip y d { type filter hook forward priority 0 ; policy drop ; }
add chain ip y e
add chain ip y n { type nat hook postrouting priority srcnat ; }
add chain ip6 z f { type filter hook input priority 0 ; }
add rule inet x c meta l4proto tcp dnat ip to 10.0.0.1:80
add rule inet x c meta nfproto ipv4 ip daddr 10.96.0.0/12 reject
add rule inet x c meta l4proto { tcp, udp } th dport 53 accept
add rule inet x c tcp dport 8080 redirect to :80
add rule ip y d ct state invalid drop
add rule ip y d ct state new,untracked accept
add rule ip y d reject with icmp host-unreachable
add rule ip y d reject with tcp reset
add rule ip y d ip saddr != { 10.0.0.0/8, 192.168.0.0/16 } drop
add rule ip y d ip daddr 10.0.0.1-10.0.0.9 accept
add rule ip y d tcp dport 1000-2000 accept
add rule ip y d tcp dport != 22 counter
add rule ip y d ip daddr . meta l4proto . th dport vmap @m
add rule ip y d ip daddr . meta l4proto . th dport vmap { 10.0.0.1 . tcp . 80 : jump e, 10.0.0.2 . udp . 53 : drop }
add rule ip y d log prefix "podpath: " level info
add rule ip y d limit rate 10/second accept
add rule ip y d limit rate over 5/minute burst 3 packets drop
add rule ip y n masquerade random,persistent
add rule ip y n snat to 192.168.1.1
add rule ip y n meta l4proto tcp snat to 192.168.1.1-192.168.1.9:1000-2000
add rule ip y d ip saddr @s4 accept
add rule ip y d ip daddr != @s4 ct status dnat,snat accept
add rule ip y d meta mark 0x4000 accept
add rule ip y d meta mark set 0x1
add rule ip y d ct mark set 0x10
add rule ip y d ct original ip daddr 10.96.0.1 accept
add rule ip y d ct direction reply accept
add rule ip y d fib daddr type local accept
add rule ip y d fib daddr . iif type != local drop
add rule ip y d meta pkttype host accept
add rule ip y d iif "lo" accept
add rule ip y d udp sport 53 udp dport 1024-65535 accept
add rule ip y d icmp type { echo-request, echo-reply } accept
add rule ip y d notrack
add rule ip y d add @aff { ip saddr } goto e
add rule ip y d numgen random mod 3 offset 1 vmap { 1 : goto e, 2 : goto e, 3 : drop }
add rule ip6 z f ip6 saddr fd00::/8 accept
add rule ip6 z f ip6 daddr fd00::1 tcp dport 80 accept
add rule ip6 z f reject
add rule ip6 z f meta l4proto ipv6-icmp accept
add rule ip y d tcp flags syn accept
add rule ip y d meta iifname "cali*" meta oifname != "eth0" accept
add rule ip y d jhash ip saddr mod 2 vmap { 0 : drop, 1 : accept }
add rule ip y d ip daddr 10.0.0.1 counter packets 5 bytes 300 accept comment "hello world"
"""


def _unordered(value: Any) -> Any:
    """Anonymous set elements in a canonical order (nft sorts them by value; order is meaningless)."""
    if isinstance(value, dict):
        out = {k: _unordered(v) for k, v in value.items()}
        if isinstance(out.get("set"), list):
            out["set"] = sorted(out["set"], key=lambda e: json.dumps(e, sort_keys=True))
        return out
    if isinstance(value, list):
        return [_unordered(v) for v in value]
    return value


def _nft_rules(loaded: nft_real.Loaded) -> dict[tuple[str, str, str], list[Any]]:
    out: dict[tuple[str, str, str], list[Any]] = {}
    for item in json.loads(loaded.json)["nftables"]:
        if "rule" in item:
            r = item["rule"]
            out.setdefault((r["family"], r["table"], r["chain"]), []).append(r)
    return out


def _compare(text: str) -> tuple[int, list[str]]:
    """(rules equal to nft's structure, rules the converter calls unparsed); asserts no other."""
    rs, commands = nft_real.commands_for(text)
    nft = _nft_rules(nft_real.load(commands))
    equal, unparsed = 0, []
    for rule in rs.rules:
        ours, comment = rule_expressions(rule.text, rule.family)
        theirs = nft[(rule.family, rule.table, rule.chain)][rule.position - 1]
        if any(isinstance(e, dict) and "unparsed" in e for e in ours):
            unparsed.append(rule.text)
            continue
        assert _unordered(ours) == _unordered(theirs["expr"]), rule.text
        assert comment == theirs.get("comment"), rule.text
        equal += 1
    return equal, unparsed


@pytest.mark.parametrize("name", LOADABLE)
def test_converted_fixture_rules_equal_nft_json(name: str) -> None:
    """Every rule of a real-world text ruleset converts to exactly what nft -j prints for it."""
    equal, unparsed = _compare((NFTABLES / name).read_text())
    assert equal > 50 and unparsed == []


def test_converted_shapes_equal_nft_json_or_are_called_unparsed() -> None:
    """Other shapes convert to nft's structure too; a hash map is named unparsed, not guessed."""
    equal, unparsed = _compare(SHAPES)
    assert equal == SHAPES.count("add rule") - 1
    assert unparsed == ["jhash ip saddr mod 2 vmap { 0 : drop, 1 : accept }"]


@pytest.mark.parametrize("source", [*LOADABLE, "shapes"])
def test_rendered_json_rules_equal_nft_list(source: str) -> None:
    """`ls nft` text of nft -j rules is what `nft list` prints, operators and all."""
    text = SHAPES if source == "shapes" else (NFTABLES / source).read_text()
    loaded = nft_real.load(nft_real.commands_for(text)[1])
    ours = parse_nft_json(loaded.json)
    listed = {
        (r.family, r.table, r.chain, r.position): r.text
        for r in parse_nft_text(loaded.listing).rules
    }
    assert ours.rules
    for rule in ours.rules:
        assert rule.text == listed[(rule.family, rule.table, rule.chain, rule.position)]


def test_kube_proxy_masquerade_rules_print_as_nft_does() -> None:
    """The rules of the issue: nft prints mark tests and sets with `meta` and hex operands."""
    loaded = nft_real.load(nft_real.commands_for((NFTABLES / LOADABLE[0]).read_text())[1])
    rules = parse_nft_json(loaded.json).chain_rules("ip", "kube-proxy", "masquerading")
    assert [r.text for r in rules] == [
        "meta mark & 0x00004000 == 0x00000000 return",
        "meta mark set meta mark ^ 0x00004000",
        "masquerade fully-random",
    ]


def test_unknown_text_becomes_an_unparsed_statement() -> None:
    """What the grammar does not know is kept, verbatim, as one unparsed statement at the end."""
    exprs, comment = rule_expressions('ip saddr 10.0.0.1 frobnicate hard comment "x"')
    assert exprs[0]["match"]["right"] == "10.0.0.1"
    assert exprs[1] == {"unparsed": 'frobnicate hard comment "x"'}
    assert rule_expressions("")[0] == []


def test_services_from_text_equal_services_from_nft_json() -> None:
    """kube-proxy's Services read from its dump's text equal those read from nft's JSON of it."""
    text = (NFTABLES / LOADABLE[0]).read_text()
    loaded = nft_real.load(nft_real.commands_for(text)[1])
    from_text = nft_services(parse_nft_text(text))
    from_json = nft_services(parse_nft_json(loaded.json))
    assert len(from_text) == 6

    def unordered(svcs: tuple[Service, ...]) -> list[Service]:
        # nft lists set elements sorted by value; the dump adds them in its own order.
        return [
            replace(
                s, external_ips=tuple(sorted(s.external_ips)), evidence=tuple(sorted(s.evidence))
            )
            for s in svcs
        ]

    assert unordered(from_text) == unordered(from_json)


def test_a_queued_packet_is_uncertain_and_says_why() -> None:
    """kube-network-policies-style NFQUEUE: the trace cannot know the agent's verdict.

    This kernel has no nft_queue, so the rule is written as libnftables-json(5) documents
    the queue statement (`{"queue": {"num": N, "flags": ...}}`).
    """
    from trace_factory import NodeSpec, PodSpec, build_node

    from podpath.trace.engine import trace
    from podpath.trace.probe import Probe

    t = {"family": "inet", "table": "kube-network-policies"}
    doc = {
        "nftables": [
            {"table": {"family": "inet", "name": "kube-network-policies"}},
            {"chain": {**t, "name": "forward", "type": "filter", "hook": "forward", "prio": -1}},
            {
                "rule": {
                    **t,
                    "chain": "forward",
                    "expr": [
                        {"match": {"op": "in", "left": {"ct": {"key": "state"}}, "right": "new"}},
                        {"queue": {"num": 100, "flags": "bypass"}},
                    ],
                }
            },
        ]
    }
    pods = [PodSpec("a", "10.244.0.5"), PodSpec("b", "10.244.0.6")]
    node = build_node(NodeSpec(pods=pods, nft_json=json.dumps(doc)))
    (branch,) = trace([node], Probe("default/a", "192.0.2.10:80")).branches
    assert branch.verdict == "uncertain"
    assert any("NFQUEUE" in u for u in branch.uncertain), branch.uncertain
    hop = next(h for h in branch.hops if h.data.get("backend") == "nftables")
    owner = hop.data["owner"]
    assert isinstance(owner, dict) and owner["agent"] == "kube-network-policies"
