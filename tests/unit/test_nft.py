"""nftables: `nft -j` JSON, `nft list` text, `nft -f` commands, and kube-proxy's nft mode."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from podpath.netfilter.kube_proxy_nft import nft_services
from podpath.netfilter.nft import (
    NftElement,
    parse_elements,
    parse_nft,
    parse_nft_json,
    render_expr,
    render_rule,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "realworld"
NFT = sorted((FIXTURES / "nftables").iterdir())


def _read(name: str) -> str:
    return (FIXTURES / "nftables" / name).read_text(encoding="utf-8", errors="surrogateescape")


@pytest.mark.parametrize("path", NFT, ids=[p.name for p in NFT])
def test_every_fixture_parses(path: Path) -> None:
    """Every nft fixture parses into at least one table, with no unparsed line."""
    rs = parse_nft(path.read_text(encoding="utf-8", errors="surrogateescape"))
    assert rs.format in ("json", "text", "commands")
    assert rs.tables
    assert not [w for w in rs.warnings if w.startswith("unparsed")]
    nft_services(rs)


def test_json_rules_render_as_nft_text() -> None:
    """JSON rule expressions get nft's own text; the comment is kept."""
    rs = parse_nft(_read("knftables-nft-j-list-rules-ct-comment.json"))
    assert [r.text for r in rs.rules] == [
        "ct state { established, related } accept",
        'ct status dnat accept comment "This rule does something"',
        'iifname "lo" accept',
    ]
    assert rs.rules[1].comment == "This rule does something"
    assert rs.rules[0].handle == 169
    assert rs.rules[2].position == 3


def test_json_base_chains_and_unknown_objects() -> None:
    """Chain hook/prio/policy are read; a counter object is reported, not dropped silently."""
    rs = parse_nft(_read("knftables-nft-j-list-mixed-objects.json"))
    pre = rs.get_chain("ip", "testing", "prerouting")
    assert pre is not None
    assert (pre.type, pre.hook, pre.prio, pre.policy) == ("nat", "prerouting", -100, "accept")
    assert rs.metainfo["version"] == "1.0.1"
    assert any("counter" in w for w in rs.warnings)


def test_json_sets_and_maps_with_concat_comment_prefix() -> None:
    """Concatenated keys split into parts; element comments and verdict values kept."""
    concat = parse_nft(_read("knftables-nft-j-list-set-concat-elem-comment.json"))
    elements = concat.sets[0].elements
    assert elements[2] == NftElement(("192.168.1.5", "tcp", "443"), None, "foo")
    interval = parse_nft(_read("knftables-nft-j-list-set-interval-concat-counter.json"))
    assert interval.sets[0].elements[0].key == ("10.0.0.1", "192.168.100.0/24")
    assert interval.sets[0].flags == ("interval",)
    vmap = parse_nft(_read("knftables-nft-j-list-verdict-map-concat.json")).sets[0]
    assert vmap.map_type == "verdict"
    assert [e.value for e in vmap.elements] == ["drop", "return", "goto test"]
    plain = parse_nft(_read("knftables-nft-j-list-map-elem-comment.json")).sets[0]
    assert plain.elements[1] == NftElement(("10.0.0.2",), "443", "a comment")


def test_listing_text_calico_table() -> None:
    """`nft list` text: base chain priorities by name, multi-line set elements, rules."""
    rs = parse_nft(_read("calico-felix-fv-table-ip-calico-nft-list.txt"))
    assert rs.format == "text"
    this_host = rs.get_set("ip", "calico", "cali40this-host")
    assert this_host is not None
    assert [e.key[0] for e in this_host.elements] == [
        "10.128.0.212",
        "127.0.0.0",
        "127.0.0.1",
        "192.168.122.1",
    ]
    post = rs.get_chain("ip", "calico", "nat-POSTROUTING")
    assert post is not None and post.prio == "srcnat + 10" and post.hook == "postrouting"
    fwd = rs.chain_rules("ip", "calico", "filter-FORWARD")
    assert len(fwd) == 3
    assert fwd[1].comment == "cali:yp7iNUYNEhDmKF6E; Policy explicitly accepted packet."


def test_commands_text_foreign_ruleset() -> None:
    """`nft -f` commands of another tool's ruleset: tables, chains and rules in order."""
    rs = parse_nft(_read("calico-issue13263-foreign-ruleset-nft-commands.txt"))
    assert {(t.family, t.name) for t in rs.tables} == {
        ("ip", "filter"),
        ("ip", "mangle"),
        ("ip", "nat"),
    }
    rules = rs.chain_rules("ip", "filter", "nixos-fw-log-refuse")
    assert rules[0].text == "pkttype != unicast counter jump nixos-fw-refuse"


def test_kube_proxy_nft_services_from_commands() -> None:
    """kube-proxy's nftables test ruleset: the six Services with VIPs, ports, endpoints."""
    svcs = {
        s.key: s
        for s in nft_services(
            parse_nft(_read("k8s-nftables-proxier-test-overall-rules-nft-f-dump.txt"))
        )
    }
    assert sorted(svcs) == [f"ns{i}/svc{i}:p80" for i in range(1, 7)]
    svc4 = svcs["ns4/svc4:p80"]
    assert (svc4.cluster_ip, svc4.port, svc4.protocol) == ("172.30.0.44", 80, "TCP")
    assert [(e.ip, e.port, e.probability) for e in svc4.endpoints] == [
        ("10.180.0.4", 80, 0.5),
        ("10.180.0.5", 80, 0.5),
    ]
    assert svc4.endpoints[0].dnat_rule_text == "meta l4proto tcp dnat to 10.180.0.4:80"
    assert svc4.external_ips == ("192.168.99.33",)
    assert svc4.masquerade == "when source not in 10.0.0.0/8"
    assert svc4.backend == "nftables"
    svc2 = svcs["ns2/svc2:p80"]
    assert svc2.node_port == 3001
    assert set(svc2.external_ips) == {"192.168.99.22", "1.2.3.4"}
    assert (svc2.external_policy, svc2.no_local_endpoints) == ("Local", "DROP")
    svc5 = svcs["ns5/svc5:p80"]
    assert svc5.source_ranges == ("203.0.113.0/25",)
    # A firewall-ips key is a LoadBalancer IP (as iptables mode's "loadbalancer IP" says).
    assert (svc5.load_balancer_ips, svc5.external_ips) == (("5.6.7.8",), ())
    assert (svc5.affinity_timeout, svc5.node_port, svc5.external_policy) == (10800, 3002, "Cluster")
    svc6 = svcs["ns6/svc6:p80"]
    assert (svc6.cluster_ip, svc6.no_endpoints, svc6.endpoints) == ("172.30.0.46", "REJECT", ())
    assert svcs["ns1/svc1:p80"].affinity_timeout is None


def _kube_proxy_json() -> str:
    """A small `nft -j list ruleset` of kube-proxy's table, as nft 1.0 prints it."""
    t: dict[str, Any] = {"family": "ip", "table": "kube-proxy"}
    svc = "service-AAAA-ns/web/tcp/http"
    eps = [
        "endpoint-BBBB-ns/web/tcp/http__10.1.0.5/8080",
        "endpoint-CCCC-ns/web/tcp/http__10.1.0.6/8080",
        "endpoint-DDDD-ns/web/tcp/http__10.1.0.7/8080",
    ]
    items: list[dict[str, Any]] = [
        {"metainfo": {"version": "1.0.6", "json_schema_version": 1}},
        {"table": {"family": "ip", "name": "kube-proxy", "handle": 1}},
        {"set": {**t, "name": "cluster-ips", "type": "ipv4_addr", "elem": ["10.96.0.20"]}},
        {
            "map": {
                **t,
                "name": "service-ips",
                "type": ["ipv4_addr", "inet_proto", "inet_service"],
                "map": "verdict",
                "elem": [[{"concat": ["10.96.0.20", "tcp", 80]}, {"goto": {"target": svc}}]],
            }
        },
        {"chain": {**t, "name": svc, "handle": 5}},
        {
            "rule": {
                **t,
                "chain": svc,
                "handle": 6,
                "expr": [
                    {
                        "match": {
                            "op": "==",
                            "left": {"payload": {"protocol": "ip", "field": "daddr"}},
                            "right": "10.96.0.20",
                        }
                    },
                    {
                        "match": {
                            "op": "!=",
                            "left": {"payload": {"protocol": "ip", "field": "saddr"}},
                            "right": {"prefix": {"addr": "10.0.0.0", "len": 8}},
                        }
                    },
                    {"jump": {"target": "mark-for-masquerade"}},
                ],
            }
        },
        {
            "rule": {
                **t,
                "chain": svc,
                "handle": 7,
                "expr": [
                    {
                        "vmap": {
                            "key": {"numgen": {"mode": "random", "mod": 3, "offset": 0}},
                            "data": {
                                "set": [[i, {"goto": {"target": ep}}] for i, ep in enumerate(eps)]
                            },
                        }
                    }
                ],
            }
        },
    ]
    for i, ep in enumerate(eps):
        items.append({"chain": {**t, "name": ep, "handle": 10 + i}})
        items.append(
            {
                "rule": {
                    **t,
                    "chain": ep,
                    "handle": 20 + i,
                    "expr": [
                        {
                            "match": {
                                "op": "==",
                                "left": {"meta": {"key": "l4proto"}},
                                "right": "tcp",
                            }
                        },
                        {"dnat": {"addr": f"10.1.0.{5 + i}", "port": 8080}},
                    ],
                }
            }
        )
    return json.dumps({"nftables": items})


def test_kube_proxy_nft_services_from_json() -> None:
    """The same extraction works on `nft -j` JSON: numgen mod 3 gives thirds."""
    rs = parse_nft(_kube_proxy_json())
    svc_rules = rs.chain_rules("ip", "kube-proxy", "service-AAAA-ns/web/tcp/http")
    assert (
        svc_rules[0].text == "ip daddr 10.96.0.20 ip saddr != 10.0.0.0/8 jump mark-for-masquerade"
    )
    assert svc_rules[1].text.startswith("numgen random mod 3 vmap { 0 : goto endpoint-BBBB")
    (svc,) = nft_services(rs)
    assert (svc.namespace, svc.name, svc.port_name, svc.protocol) == ("ns", "web", "http", "TCP")
    assert (svc.cluster_ip, svc.port) == ("10.96.0.20", 80)
    assert [e.ip for e in svc.endpoints] == ["10.1.0.5", "10.1.0.6", "10.1.0.7"]
    for endpoint in svc.endpoints:
        assert abs(endpoint.probability - 1 / 3) < 1e-9
        assert endpoint.port == 8080
    assert svc.masquerade == "when source not in 10.0.0.0/8"


def test_bad_json_is_reported_not_raised() -> None:
    """Garbage, wrong shapes and deep nesting become an error format with a warning."""
    assert parse_nft_json("{not json").format == "error"
    assert parse_nft_json('{"foo": 1}').format == "error"
    assert parse_nft_json("[" * 100000 + "]" * 100000).format == "error"
    deep: Any = "x"
    for _ in range(5000):
        deep = {"&": [deep, 1]}
    assert render_rule([deep]) == "<expression nested too deeply>"
    odd = parse_nft_json(
        '{"nftables": [{"rule": {"family": "ip", "table": "t", "chain": "c",'
        ' "expr": [{"weird": {"a": 1}}], "comment": 5}}, 3, {"x": 1, "y": 2}]}'
    )
    assert odd.rules[0].text == '{"weird":{"a":1}}'
    assert odd.rules[0].comment is None
    assert len(odd.warnings) == 2


def test_render_unknown_expression_verbatim() -> None:
    """An expression the renderer does not know is shown as its compact JSON."""
    assert render_expr({"osf": {"key": "name"}}) == '{"osf":{"key":"name"}}'
    assert render_expr({"accept": None}) == "accept"
    assert render_expr({"&": [{"meta": {"key": "mark"}}, 16384]}) == "mark & 16384"


def test_text_elements_with_comments_and_ipv6() -> None:
    """Element lists: ` . ` concatenations, comments, verdicts, and IPv6 colons."""
    elems = parse_elements(
        '1.2.3.4 . tcp . 80 comment "ns2/svc2:p80" : drop, fd00::1 . udp . 53 : goto svc-x'
    )
    assert elems[0] == NftElement(("1.2.3.4", "tcp", "80"), "drop", "ns2/svc2:p80")
    assert elems[1] == NftElement(("fd00::1", "udp", "53"), "goto svc-x", None)
    assert parse_elements("fd00::1, 10.0.0.1") == (
        NftElement(("fd00::1",)),
        NftElement(("10.0.0.1",)),
    )
    assert parse_elements('1.1.1.1 comment "a : b . c" : accept') == (
        NftElement(("1.1.1.1",), "accept", "a : b . c"),
    )


@given(st.text(max_size=300))
def test_arbitrary_text_never_raises(text: str) -> None:
    """Any text parses (as something) without an exception."""
    parse_nft(text)
    nft_services(parse_nft(text))


_LISTED = """table ip kube-proxy {
\tcomment "rules for kube-proxy"
\tset cluster-ips {
\t\ttype ipv4_addr
\t\tcomment "Active ClusterIPs"
\t\telements = { 172.30.0.41, 172.30.0.44,
\t\t\t     172.30.0.46 }
\t}

\tmap no-endpoint-services {
\t\ttype ipv4_addr . inet_proto . inet_service : verdict
\t\telements = { 172.30.0.46 . tcp . 80 comment "ns6/svc6:p80" : goto reject-chain }
\t}

\tmap service-ips {
\t\ttype ipv4_addr . inet_proto . inet_service : verdict
\t\tcomment "ClusterIP, ExternalIP and LoadBalancer IP traffic"
\t\telements = { 172.30.0.41 . tcp . 80 : goto service-ULMVA6XW-ns1/svc1/tcp/p80,
\t\t\t     172.30.0.44 . tcp . 80 : goto service-LAUZTJTB-ns4/svc4/tcp/p80 }
\t}

\tchain nat-prerouting {
\t\ttype nat hook prerouting priority dstnat; policy accept;
\t\tjump services
\t}

\tchain services {
\t\tip daddr . meta l4proto . th dport vmap @service-ips
\t}

\tchain service-ULMVA6XW-ns1/svc1/tcp/p80 {
\t\tip daddr 172.30.0.41 ip saddr != 10.0.0.0/8 jump mark-for-masquerade
\t\tnumgen random mod 1 vmap { 0 : goto endpoint-5OJB2KTY-ns1/svc1/tcp/p80__10.180.0.1/80 }
\t}

\tchain endpoint-5OJB2KTY-ns1/svc1/tcp/p80__10.180.0.1/80 {
\t\tip saddr 10.180.0.1 jump mark-for-masquerade
\t\tmeta l4proto tcp dnat to 10.180.0.1:80
\t}

\tchain service-LAUZTJTB-ns4/svc4/tcp/p80 {
\t\tip daddr 172.30.0.44 ip saddr != 10.0.0.0/8 jump mark-for-masquerade
\t\tnumgen random mod 2 vmap { 0 : goto endpoint-UNZV3OEC-ns4/svc4/tcp/p80__10.180.0.4/80, 1 : goto endpoint-5RFCDDV7-ns4/svc4/tcp/p80__10.180.0.5/80 }
\t}

\tchain endpoint-UNZV3OEC-ns4/svc4/tcp/p80__10.180.0.4/80 {
\t\tmeta l4proto tcp dnat to 10.180.0.4:80
\t}

\tchain endpoint-5RFCDDV7-ns4/svc4/tcp/p80__10.180.0.5/80 {
\t\tmeta l4proto tcp dnat to 10.180.0.5:80
\t}
}
"""


def test_kube_proxy_nft_services_from_listing() -> None:
    """`nft list table ip kube-proxy` block text gives the same Services as the commands."""
    rs = parse_nft(_LISTED)
    assert rs.format == "text"
    assert rs.tables[0].comment == "rules for kube-proxy"
    service_ips = rs.get_set("ip", "kube-proxy", "service-ips")
    assert service_ips is not None
    assert service_ips.comment == "ClusterIP, ExternalIP and LoadBalancer IP traffic"
    assert service_ips.type == ("ipv4_addr", "inet_proto", "inet_service")
    assert service_ips.map_type == "verdict"
    no_ep = rs.get_set("ip", "kube-proxy", "no-endpoint-services")
    assert no_ep is not None and no_ep.comment is None
    pre = rs.get_chain("ip", "kube-proxy", "nat-prerouting")
    assert pre is not None and (pre.hook, pre.prio, pre.policy) == (
        "prerouting",
        "dstnat",
        "accept",
    )
    svcs = {s.key: s for s in nft_services(rs)}
    assert sorted(svcs) == ["ns1/svc1:p80", "ns4/svc4:p80", "ns6/svc6:p80"]
    assert [(e.ip, e.port, e.probability) for e in svcs["ns4/svc4:p80"].endpoints] == [
        ("10.180.0.4", 80, 0.5),
        ("10.180.0.5", 80, 0.5),
    ]
    assert svcs["ns1/svc1:p80"].cluster_ip == "172.30.0.41"
    assert svcs["ns6/svc6:p80"].no_endpoints == "REJECT"


def test_kep_minimal_listing_table_comment() -> None:
    """The KEP's illustrative listing: one table with its comment and one vmap rule."""
    rs = parse_nft(_read("kep3866-nft-list-table-ip-kube-proxy-minimal.txt"))
    assert rs.tables[0].comment == "Kubernetes service proxying rules"
    assert [r.text for r in rs.rules] == ["ip daddr . ip protocol . th dport vmap @service_ips"]
    assert nft_services(rs) == ()


# --- lazy rule text and the GC pause ----------------------------------------------------------

_JSON_FIXTURES = [p for p in NFT if p.suffix == ".json"]


@pytest.mark.parametrize("path", _JSON_FIXTURES, ids=[p.name for p in _JSON_FIXTURES])
def test_json_rule_text_is_rendered_on_first_use_and_equals_render_rule(path: Path) -> None:
    """A JSON rule renders its text lazily, once, to exactly what render_rule gives."""
    rs = parse_nft_json(path.read_text(encoding="utf-8", errors="surrogateescape"))
    for rule in rs.rules:
        assert "text" not in vars(rule)
        assert rule.text == render_rule(list(rule.expr), rule.comment)
        assert vars(rule)["text"] is rule.text


def test_parse_nft_json_restores_the_garbage_collector() -> None:
    """The GC paused while parsing is enabled again after, even for input it rejects."""
    import gc

    assert gc.isenabled()
    parse_nft_json(_read("knftables-nft-j-list-mixed-objects.json"))
    parse_nft_json("{not json")
    assert gc.isenabled()
    gc.disable()
    try:
        parse_nft_json("{}")
        assert not gc.isenabled()  # a caller's own pause is left alone
    finally:
        gc.enable()


def _kp_json(dnat_comment: str | None = None) -> str:
    """A one-Service kube-proxy table as `nft -j` prints it (endpoint chain: masq + dnat)."""
    svc, ep = "service-AAAA-ns/web/tcp/http", "endpoint-BBBB-ns/web/tcp/http__10.244.0.5/80"
    masq: dict[str, Any] = {
        "family": "ip",
        "table": "kube-proxy",
        "chain": ep,
        "expr": [
            {
                "match": {
                    "op": "==",
                    "left": {"payload": {"protocol": "ip", "field": "saddr"}},
                    "right": "10.244.0.5",
                }
            },
            {"jump": {"target": "mark-for-masquerade"}},
        ],
    }
    if dnat_comment is not None:
        masq["comment"] = dnat_comment
    items: list[dict[str, Any]] = [
        {"table": {"family": "ip", "name": "kube-proxy"}},
        {"chain": {"family": "ip", "table": "kube-proxy", "name": svc}},
        {"chain": {"family": "ip", "table": "kube-proxy", "name": ep}},
        {
            "map": {
                "family": "ip",
                "table": "kube-proxy",
                "name": "service-ips",
                "type": ["ipv4_addr", "inet_proto", "inet_service"],
                "map": "verdict",
                "elem": [[{"concat": ["10.96.0.9", "tcp", 80]}, {"goto": {"target": svc}}]],
            }
        },
        {
            "rule": {
                "family": "ip",
                "table": "kube-proxy",
                "chain": svc,
                "expr": [
                    {
                        "vmap": {
                            "key": {"numgen": {"mode": "random", "mod": 1}},
                            "data": {"set": [[0, {"goto": {"target": ep}}]]},
                        }
                    }
                ],
            }
        },
        {"rule": masq},
        {
            "rule": {
                "family": "ip",
                "table": "kube-proxy",
                "chain": ep,
                "expr": [
                    {"match": {"op": "==", "left": {"meta": {"key": "l4proto"}}, "right": "tcp"}},
                    {"dnat": {"addr": "10.244.0.5", "port": 80}},
                ],
            }
        },
    ]
    return json.dumps({"nftables": items})


def test_services_from_lazily_rendered_json_rules() -> None:
    """nft_services reads endpoints from rules whose text is rendered only on demand."""
    rs = parse_nft_json(_kp_json())
    (svc,) = nft_services(rs)
    assert [(e.ip, e.port, e.probability) for e in svc.endpoints] == [("10.244.0.5", 80, 1.0)]
    assert svc.endpoints[0].dnat_rule_text == "meta l4proto tcp dnat to 10.244.0.5:80"


def test_a_dnat_named_only_in_a_comment_is_not_an_endpoint() -> None:
    """A comment saying `dnat to` is text, not a statement: the endpoint is the real dnat's."""
    rs = parse_nft_json(_kp_json("dnat to 10.9.9.9:8080"))
    (svc,) = nft_services(rs)
    assert [(e.ip, e.port) for e in svc.endpoints] == [("10.244.0.5", 80)]


def test_nat_statements_read_as_nft_prints_them_in_both_renderings() -> None:
    """NAT flags joined by commas and the family kept, in a rule's text and in an expression's
    (the renderer of set and map values)."""
    from podpath.netfilter.nft import render_expr
    from podpath.netfilter.nft_text import rule_text

    masquerade = [{"masquerade": {"flags": ["fully-random", "persistent"]}}]
    dnat = [{"dnat": {"family": "ip", "addr": "10.244.0.5", "port": 80}}]
    for rule, want in (
        (masquerade, "masquerade fully-random,persistent"),
        (dnat, "dnat ip to 10.244.0.5:80"),
    ):
        assert rule_text(rule) == want
        assert render_expr(rule[0]) == want


def test_statements_read_alike_alone_and_in_a_rule_as_nft_printed_them() -> None:
    """Each statement of Calico's real `nft list` rules, rendered alone by render_expr, joins to
    the text nft printed: one table (nft_text) says how a statement reads."""
    rs = parse_nft(_read("calico-felix-fv-table-ip-calico-nft-list.txt"))
    assert len(rs.rules) > 50
    for rule in rs.rules:
        alone = " ".join(render_expr(s, rule.family) for s in rule.expr)
        assert alone + (f' comment "{rule.comment}"' if rule.comment else "") == rule.text
    masked = {"match": {"op": "==", "left": {"&": [{"meta": {"key": "mark"}}, 16384]}, "right": 0}}
    assert render_expr(masked) == "meta mark & 0x00004000 == 0x00000000"
    reject = {"reject": {"type": "icmp", "expr": "port-unreachable"}}
    assert render_expr(reject, "ip") == "reject"
    assert render_expr(reject) == "reject with icmp port-unreachable"  # family unknown
