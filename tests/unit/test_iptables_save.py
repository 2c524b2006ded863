"""The iptables-save parser: every real-world dump, quoting, truncation, the dispatch index."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from podpath.netfilter.iptables_save import (
    _DISPATCH_LINE as _DISPATCH_FAST,
)
from podpath.netfilter.iptables_save import (
    FORMAT_ERROR,
    FORMAT_FRAGMENT,
    FORMAT_LISTING,
    FORMAT_SAVE,
    FORMAT_SPEC,
    _dispatch_key,
    _dispatch_key_tokens,
    _parse_rule_fast,
    _parse_rule_tokens,
    count_rules,
    parse_rule,
    parse_ruleset,
    quote,
    tokenize,
    unquote,
)
from podpath.netfilter.model import Match

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "realworld"
IPTABLES = sorted((FIXTURES / "iptables").iterdir())


def _read(name: str) -> str:
    return (FIXTURES / "iptables" / name).read_text(encoding="utf-8", errors="surrogateescape")


def kube_proxy_dump(services: int, endpoints: int = 3) -> str:
    """A synthetic nat table in kube-proxy's exact iptables shape (1 + 1 + 3e rules a Service)."""
    heads = [
        "*nat",
        ":PREROUTING ACCEPT [0:0]",
        ":KUBE-SERVICES - [0:0]",
        ":KUBE-MARK-MASQ - [0:0]",
    ]
    rules = ['-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES']
    for s in range(services):
        svc = f"KUBE-SVC-{s:016X}"
        vip = f"10.96.{s // 250}.{s % 250 + 1}"
        heads.append(f":{svc} - [0:0]")
        rules.append(
            f"-A KUBE-SERVICES -d {vip}/32 -p tcp -m comment --comment "
            f'"ns{s}/svc{s}:http cluster IP" -m tcp --dport 80 -j {svc}'
        )
        rules.append(
            f"-A {svc} ! -s 10.244.0.0/16 -d {vip}/32 -p tcp -m comment --comment "
            f'"ns{s}/svc{s}:http cluster IP" -m tcp --dport 80 -j KUBE-MARK-MASQ'
        )
        for e in range(endpoints):
            sep = f"KUBE-SEP-{s:012X}{e:04X}"
            n = s * endpoints + e
            ip = f"10.244.{n // 250 % 250}.{n % 250 + 1}"
            heads.append(f":{sep} - [0:0]")
            stat = (
                f" -m statistic --mode random --probability {1 / (endpoints - e):.11f}"
                if e < endpoints - 1
                else ""
            )
            rules.append(
                f'-A {svc} -m comment --comment "ns{s}/svc{s}:http -> {ip}:8080"{stat} -j {sep}'
            )
            rules.append(
                f'-A {sep} -s {ip}/32 -m comment --comment "ns{s}/svc{s}:http" -j KUBE-MARK-MASQ'
            )
            rules.append(
                f'-A {sep} -p tcp -m comment --comment "ns{s}/svc{s}:http" -m tcp '
                f"-j DNAT --to-destination {ip}:8080"
            )
    return "\n".join(heads + rules + ["COMMIT", ""])


@pytest.mark.parametrize("path", IPTABLES, ids=[p.name for p in IPTABLES])
def test_every_fixture_parses_fully(path: Path) -> None:
    """Every real-world file indexes and every rule parses, without raising."""
    rs = parse_ruleset(path.read_text(encoding="utf-8", errors="surrogateescape"))
    rules = list(rs.all_rules())
    assert len(rules) == rs.rule_count()
    for rule in rules:
        assert rule.text.startswith("-A ")


@pytest.mark.parametrize("path", IPTABLES, ids=[p.name for p in IPTABLES])
def test_fast_and_token_parsers_agree_on_fixtures(path: Path) -> None:
    """The split-based fast path gives exactly what the general tokenizer gives."""
    rs = parse_ruleset(path.read_text(encoding="utf-8", errors="surrogateescape"))
    for table in rs.tables:
        for chain in rs.chains(table):
            for pos, line in enumerate(rs.rule_lines(table, chain.name), 1):
                fast = _parse_rule_fast(table, chain.name, pos, line)
                if fast is not None:
                    assert fast == _parse_rule_tokens(table, chain.name, pos, line)


def test_formats_are_detected() -> None:
    """save dumps, -S specs, -nL listings, grep fragments and error text are told apart."""
    assert (
        parse_ruleset(_read("calico-felix-fv-cali-iptables-dump-v1.8.4.txt")).format == FORMAT_SAVE
    )
    assert parse_ruleset(_read("cilium-test-iptables-t-mangle-S-tproxy.txt")).format == FORMAT_SPEC
    assert (
        parse_ruleset(_read("k8s-ipvs-mode-iptables-t-nat-nL-loadbalancer.txt")).format
        == FORMAT_LISTING
    )
    assert (
        parse_ruleset(_read("aks-kubenet-lb-service-grep-fragment.txt")).format == FORMAT_FRAGMENT
    )
    err = parse_ruleset(_read("aks-iptables-save-nf_tables-permission-denied-stderr.txt"))
    assert err.format == FORMAT_ERROR
    assert err.tables == ()
    assert "Permission denied" in err.warnings[0]


def test_full_dump_tables_chains_and_counts() -> None:
    """A Calico node's dump: four tables, policies with counters, exact rule counts."""
    rs = parse_ruleset(_read("calico-felix-fv-cali-iptables-dump-v1.8.4.txt"))
    assert rs.tables == ("raw", "nat", "filter", "mangle")
    prerouting = rs.chain("raw", "PREROUTING")
    assert prerouting is not None
    assert prerouting.policy == "ACCEPT"
    assert prerouting.counters == (78416, 301973864)
    assert prerouting.builtin
    user = rs.chain("raw", "cali-OUTPUT")
    assert user is not None and user.policy is None and not user.builtin
    assert rs.rule_count("raw") == 13
    assert rs.rule_count("nat") == 8
    assert rs.rule_count() == 57
    assert rs.warnings == ()


def test_structured_matches_and_target_options() -> None:
    """Addresses, negation, ports, comment, mark, addrtype flags and MASQUERADE options."""
    rs = parse_ruleset(_read("calico-felix-fv-cali-iptables-dump-v1.8.4.txt"))
    masq = rs.rules("nat", "cali-POSTROUTING")[2]
    assert masq.matches_of("", "out-interface") == (Match("", "out-interface", "vxlan.calico"),)
    assert Match("addrtype", "src-type", "LOCAL", True) in masq.matches
    assert Match("addrtype", "limit-iface-out", "", False) in masq.matches
    assert masq.target is not None
    assert masq.target.name == "MASQUERADE"
    assert masq.target.kind == "extension"
    assert masq.target.options == {"random-fully": ""}
    rpf = rs.rules("raw", "cali-PREROUTING")[4]
    assert rpf.first("mark") == Match("mark", "mark", "0x80000/0x80000")
    assert Match("rpfilter", "validmark", "") in rpf.matches
    assert Match("rpfilter", "invert", "") in rpf.matches
    vxlan = rs.rules("raw", "cali-OUTPUT")[2]
    assert vxlan.first("dport") == Match("udp", "dport", "4789")
    assert vxlan.target is not None and vxlan.target.name == "NOTRACK"


def test_kube_proxy_rule_shapes() -> None:
    """KUBE-SVC statistic, SEP DNAT, `! -s` masquerade and jumps to declared chains."""
    rs = parse_ruleset(_read("k8s-proxier-test-overall-rules-restore-input.txt"))
    svc = rs.rules("nat", "KUBE-SVC-4SW47YFZTEDKD3PK")
    assert svc[0].matches_of("", "source") == (Match("", "source", "10.0.0.0/8", True),)
    assert svc[1].first("probability") == Match("statistic", "probability", "0.5000000000")
    assert svc[1].target is not None and svc[1].target.kind == "jump"
    dnat = rs.rules("nat", "KUBE-SEP-C6EBXVWJJZMIWKLZ")[1]
    assert dnat.target is not None
    assert dnat.target.options == {"to-destination": "10.180.0.5:80"}
    assert dnat.modules == ("comment", "tcp")
    affinity = rs.rules("nat", "KUBE-SVC-NUKIZ6OKUXPJNT4C")[1]
    assert Match("recent", "rcheck", "") in affinity.matches
    assert Match("recent", "seconds", "10800") in affinity.matches
    firewall = rs.rules("filter", "KUBE-FIREWALL")[0]
    assert Match("conntrack", "ctstate", "RELATED,ESTABLISHED,DNAT", True) in firewall.matches
    # A rule with no target only counts packets.
    assert rs.rules("nat", "KUBE-FW-NUKIZ6OKUXPJNT4C")[1].target is None


def test_unknown_module_option_is_kept_as_match() -> None:
    """`-m nfacct --nfacct-name X` (no special support) becomes Match(nfacct, nfacct-name, X)."""
    rs = parse_ruleset(_read("k8s-proxier-test-overall-rules-restore-input.txt"))
    rule = rs.rules("filter", "KUBE-FORWARD")[0]
    assert Match("nfacct", "nfacct-name", "ct_state_invalid_dropped_pkts") in rule.matches


def test_unparseable_words_are_kept_verbatim() -> None:
    """A stray word is never dropped: it lands in Rule.unknown, in order."""
    rule = parse_rule("filter", "X", 1, "-A X -p tcp bogus words --dport 80 -j ACCEPT")
    assert rule.unknown == ("bogus", "words")
    assert rule.first("dport") == Match("tcp", "dport", "80")
    truncated = parse_ruleset(_read("kep265-ipvs-era-iptables-t-nat-nL-nodeport-truncated.txt"))
    last = truncated.rules("nat", "KUBE-SEP-Q3UCPZ54E6Q2R4UT")[-1]
    assert last.unknown == ('"DNAT"',)
    assert any("truncated row" in w for w in truncated.warnings)


def test_escaped_quote_comment() -> None:
    """ip-masq-agent's comment with backslash-escaped quotes is unescaped exactly."""
    rs = parse_ruleset(_read("aks-ip-masq-agent-escaped-quote-comment-fragment.txt"))
    rule = rs.rules("nat", "POSTROUTING")[0]
    assert rule.comment == (
        '"ip-masq-agent: ensure nat POSTROUTING directs all non-LOCAL '
        'destination traffic to our custom IP-MASQ-AGENT chain"'
    )
    assert Match("addrtype", "dst-type", "LOCAL", True) in rule.matches
    assert rule.target is not None and rule.target.name == "IP-MASQ-AGENT"


def test_double_comments_are_both_kept() -> None:
    """Calico writes two comments per rule; both are matches, `comment` joins them."""
    rs = parse_ruleset(_read("aks-calico-policy-chains-grep-fragment.txt"))
    rule = rs.rules("filter", "cali-fw-azve0cf0fbcf9f")[3]
    assert rule.comments == (
        "cali:X5UXgW1SU0LxFZdH",
        "Drop VXLAN encapped packets originating in workloads",
    )
    assert rule.first("dports") == Match("multiport", "dports", "4789")
    goto = rs.rules("filter", "cali-from-wl-dispatch")[0]
    assert goto.target is not None and goto.target.kind == "goto"


def test_truncated_dump_is_reported_and_rules_kept() -> None:
    """A table without COMMIT is named in warnings; its headers and rules stay."""
    rs = parse_ruleset(_read("aks-kube-proxy-netns-iptables-save-truncated.txt"))
    assert rs.warnings == ("table nat: no COMMIT (truncated dump); rules kept",)
    assert len(rs.chains("nat")) == 34
    assert rs.rule_count("nat") == 2
    assert rs.chain("nat", "KUBE-PROXY-CANARY") is not None


def test_truncated_mid_line_never_raises() -> None:
    """Cutting a dump at every offset of a rule with a quoted comment still parses."""
    text = _read("kep2086-kind-worker-iptables-save-tail-svc-probability.txt")
    for cut in range(0, len(text), 7):
        rs = parse_ruleset(text[:cut])
        list(rs.all_rules())


def test_legacy_tables_warning_is_surfaced() -> None:
    """iptables-nft's `# Warning: iptables-legacy tables present` becomes a warning."""
    rs = parse_ruleset(_read("aks-iptables-nft-vnL-legacy-tables-present-warning-truncated.txt"))
    assert any("iptables-legacy tables present" in w for w in rs.warnings)
    save = parse_ruleset(
        "# Warning: iptables-legacy tables present, use iptables-legacy "
        "to see them\n*filter\n:INPUT ACCEPT [0:0]\nCOMMIT\n"
    )
    assert save.warnings[0].startswith("Warning: iptables-legacy tables present")


def test_counters_form_of_iptables_save_c() -> None:
    """`iptables-save -c` puts [packets:bytes] before each rule."""
    rs = parse_ruleset(
        "*filter\n:INPUT ACCEPT [5:600]\n[12:3400] -A INPUT -s 10.0.0.0/8 -j DROP\nCOMMIT\n"
    )
    rule = rs.rules("filter", "INPUT")[0]
    assert rule.counters == (12, 3400)
    assert rule.text == "-A INPUT -s 10.0.0.0/8 -j DROP"
    assert rule.target is not None and rule.target.kind == "verdict"


def test_spec_format_policies_and_tproxy() -> None:
    """`iptables -S`: -P gives policies, -N user chains; TPROXY options kept."""
    rs = parse_ruleset(_read("cilium-test-iptables-t-mangle-S-tproxy.txt"))
    assert rs.tables == ("mangle",)
    chain = rs.chain("mangle", "PREROUTING")
    assert chain is not None and chain.policy == "ACCEPT"
    tproxy = rs.rules("mangle", "OLD_CILIUM_PRE_mangle")[1]
    assert tproxy.target is not None
    assert tproxy.target.options == {
        "on-port": "43477",
        "on-ip": "127.0.0.1",
        "tproxy-mark": "0x200/0xffffffff",
    }
    assert (
        Match("socket", "transparent", "") in rs.rules("mangle", "OLD_CILIUM_PRE_mangle")[0].matches
    )


def test_listing_rows_are_rebuilt() -> None:
    """`iptables -nL` rows become rules with addresses, comment, ports and set matches."""
    rs = parse_ruleset(_read("kep265-ipvs-era-iptables-t-nat-nL-nodeport-truncated.txt"))
    masq = rs.rules("nat", "KUBE-SERVICES")[0]
    assert Match("", "source", "172.16.0.0/16", True) in masq.matches
    assert Match("", "destination", "10.101.28.148") in masq.matches
    assert masq.first("dport") == Match("tcp", "dport", "3080")
    assert masq.comment == "default/nginx-service:http cluster IP"
    ipvs = parse_ruleset(_read("k8s-ipvs-mode-iptables-t-nat-nL-loadbalancer.txt"))
    rule = ipvs.rules("nat", "KUBE-FIREWALL")[0]
    assert rule.first("match-set") == Match(
        "set", "match-set", "KUBE-LOAD-BALANCER-SOURCE-CIDR dst,dst,src"
    )
    mark = ipvs.rules("nat", "KUBE-MARK-MASQ")[0]
    assert mark.target is not None and mark.target.options == {"or-mark": "0x4000"}


def test_fragment_elision_and_table_guess() -> None:
    """A `...`-elided tail is flagged, and its kube-proxy rules are put in nat."""
    rs = parse_ruleset(_read("kep2086-kind-worker-iptables-save-tail-svl.txt"))
    assert rs.tables == ("nat",)
    assert any("'...'" in w for w in rs.warnings)
    assert parse_ruleset("-A INPUT -j ACCEPT\n", default_table="filter").tables == ("filter",)


def test_dispatch_indexes_exact_destinations() -> None:
    """KUBE-SERVICES: VIP rules are indexed by (ip, proto, port); the rest is fallback."""
    rs = parse_ruleset(_read("k8s-proxier-test-overall-rules-restore-input.txt"))
    dispatch = rs.dispatch("nat", "KUBE-SERVICES")
    rules = rs.rules("nat", "KUBE-SERVICES")
    nodeports = len(rules)  # the last rule matches any destination
    assert dispatch.fallback == (nodeports,)
    assert dispatch.candidates("172.30.0.42", "tcp", 80) == (2, nodeports)
    assert dispatch.candidates("172.30.0.42", "udp", 80) == (nodeports,)
    assert dispatch.candidates("1.2.3.4", "TCP", 80) == (4, nodeports)
    assert dispatch.candidates("9.9.9.9", "tcp", 80) == (nodeports,)


def test_dispatch_key_fast_match_agrees_with_tokens_on_fixtures() -> None:
    """The one-match dispatch key is the token loop's on every real-world rule line, and
    reads kube-proxy's own ClusterIP lines (the point of it)."""
    matched = 0
    for path in IPTABLES:
        text = path.read_text(encoding="utf-8", errors="surrogateescape")
        for line in text.splitlines():
            line = line.partition("] ")[2] if line.startswith("[") else line
            if not line.startswith("-A "):
                continue
            assert _dispatch_key(line) == _dispatch_key_tokens(line), line
            matched += _DISPATCH_FAST.match(line) is not None
    assert matched
    # kube-proxy's ClusterIP lines as iptables-save prints them: every one read by the match.
    lines = [line for line in kube_proxy_dump(20).splitlines() if line.startswith("-A KUBE-SERV")]
    assert len(lines) == 20
    for line in lines:
        assert _DISPATCH_FAST.match(line) is not None
        assert _dispatch_key(line) == _dispatch_key_tokens(line)


_SOURCES = st.sampled_from(["", " -s 10.244.0.0/16", " ! -s 10.244.0.0/16", " -s 10.0.0.5/32"])
_DESTS = st.sampled_from(
    ["", " -d 10.96.0.1/32", " -d 10.96.0.1", " ! -d 10.96.0.1/32", " -d 10.0.0.0/8",
     " -d fd00::0:1/128", " -d fd00::/32", " -d 10.96.0.1/255.255.255.255"]
)  # fmt: skip
_PROTOS = st.sampled_from(["", " -p tcp", " -p udp", " -p 6", " ! -p tcp", " -p TCP", " -p icmp"])
_COMMENTS = st.sampled_from(
    ["", ' -m comment --comment "ns/svc:http cluster IP"', " -m comment --comment plain",
     ' -m comment --comment "say \\"hi\\""', ' -m comment --comment "-j X --dport 9"',
     " -m comment --comment -j"]
)  # fmt: skip
_PORTS = st.sampled_from(
    ["", " -m tcp --dport 80", " -m udp --dport 53", " -m tcp ! --dport 80",
     " -m tcp --dport 80:90", " -m multiport --dports 80,443", " --dport 8080"]
)  # fmt: skip
_TARGETS = st.sampled_from(
    [" -j KUBE-SVC-X", " -j DNAT --to-destination 10.0.0.1:80", ' -j LOG --log-prefix "a\\"b"',
     " -g X", ""]
)  # fmt: skip


@given(
    st.sampled_from(["KUBE-SERVICES", "-d", "X"]), _SOURCES, _DESTS, _PROTOS, _COMMENTS, _PORTS,
    _TARGETS,
)  # fmt: skip
def test_dispatch_key_fast_match_agrees_with_tokens(
    chain: str, src: str, dst: str, proto: str, comment: str, port: str, target: str
) -> None:
    """Any mix of the options the fast match reads, and of ones it must leave to the
    token loop (negations, masks, numbers, escapes, a `-j` inside a comment), keys alike."""
    line = f"-A {chain}{src}{dst}{proto}{comment}{port}{target}"
    assert _dispatch_key(line) == _dispatch_key_tokens(line)


def test_dispatch_sends_negated_and_masked_destinations_to_fallback() -> None:
    """`! -d` and non-/32 destinations can match many addresses: never indexed."""
    rs = parse_ruleset(
        "*nat\n:X - [0:0]\n-A X ! -d 10.0.0.1/32 -j RETURN\n"
        "-A X -d 10.0.0.0/8 -j RETURN\n-A X -d 10.0.0.1/32 -j RETURN\n"
        "-A X -d fd00::0:1/128 -p udp -m udp --dport 53 -j RETURN\nCOMMIT\n"
    )
    dispatch = rs.dispatch("nat", "X")
    assert dispatch.fallback == (1, 2)
    assert dispatch.candidates("10.0.0.1", "tcp", 443) == (1, 2, 3)
    assert dispatch.candidates("fd00::1", "udp", 53) == (1, 2, 4)


def test_rule_by_position_without_parsing_chain() -> None:
    """Ruleset.rule parses one rule; positions are 1-based like --line-numbers."""
    rs = parse_ruleset(_read("k8s-proxier-test-overall-rules-restore-input.txt"))
    rule = rs.rule("nat", "KUBE-SERVICES", 1)
    assert rule is not None and rule.position == 1
    assert rule.comment == "ns1/svc1:p80 cluster IP"
    assert rs.rule("nat", "KUBE-SERVICES", 999) is None
    assert rs.rule("nat", "NOPE", 1) is None


def test_hostile_bytes_survive() -> None:
    """Escape sequences, markup and surrogate-escaped bytes in comments come back as-is."""
    comment = "\x1b]0;pwn\x07[@click=app.quit]x[/]\udcff\u202e"
    line = f"-A INPUT -m comment --comment {quote(comment)} -j ACCEPT"
    rule = parse_rule("filter", "INPUT", 1, line)
    assert rule.comment == comment


def test_scale_dump_indexes_and_parses() -> None:
    """A 1,000-Service kube-proxy dump: counts, chains and one Service lookup agree."""
    rs = parse_ruleset(kube_proxy_dump(1000))
    assert rs.rule_count("nat") == 1 + 1000 * (2 + 3 * 3)
    assert len(rs.chains("nat")) == 3 + 1000 * 4
    dispatch = rs.dispatch("nat", "KUBE-SERVICES")
    assert dispatch.candidates("10.96.1.8", "tcp", 80) == (258,)
    assert sum(1 for _ in rs.all_rules("nat")) == rs.rule_count("nat")


_COMMENT_TEXT = st.text(
    st.characters(exclude_characters="\n\x00\r", exclude_categories=["Cs"]), max_size=60
)


@given(_COMMENT_TEXT)
def test_quoted_comment_round_trips(comment: str) -> None:
    """Any comment quoted the way iptables-save quotes it tokenizes back unchanged."""
    tokens = tokenize(f"-A X -m comment --comment {quote(comment)} -j ACCEPT")
    assert tokens[:4] == ["-A", "X", "-m", "comment"]
    assert unquote(tokens[5]) == comment
    rule = parse_rule("filter", "X", 1, f"-A X -m comment --comment {quote(comment)} -j ACCEPT")
    assert rule.comment == comment
    assert rule.target is not None and rule.target.name == "ACCEPT"


@given(st.text(max_size=200))
def test_arbitrary_text_never_raises(text: str) -> None:
    """Any text at all indexes and parses without an exception."""
    rs = parse_ruleset(text)
    list(rs.all_rules())


_WORDS = st.sampled_from(
    [
        "-p",
        "tcp",
        "!",
        "-s",
        "10.0.0.0/8",
        "-m",
        "comment",
        "--comment",
        '"a b"',
        '"x -y"',
        "--dport",
        "80",
        "-j",
        "DNAT",
        "--to-destination",
        "1.2.3.4:80",
        "-1",
        "-A",
        "word",
        '"q\\"q"',
        "--set",
        "-g",
        "KUBE-SVC-X",
        " ",
        "--mark",
        "0x1/0x1",
        '""',
        "-f",
        '"!"',
        '"-x"',
        "--match-set",
        "a",
        "b",
        "--rsource",
    ]
)


@given(st.lists(_WORDS, max_size=14))
def test_fast_path_equals_tokenizer_on_random_rules(words: list[str]) -> None:
    """Whenever the fast path accepts a line, it parses it exactly like the tokenizer."""
    line = " ".join(["-A", "X", *words])
    fast = _parse_rule_fast("filter", "X", 1, line)
    if fast is not None:
        assert fast == _parse_rule_tokens("filter", "X", 1, line)


def test_spec_verbose_counters_and_empty_input() -> None:
    """`iptables -S -v` puts `-c PKTS BYTES` in the rule; empty text is an empty ruleset."""
    rs = parse_ruleset(
        "-P INPUT ACCEPT -c 1 2\n-A INPUT -s 10.1.0.0/16 -c 7 700 -j DROP\n", default_table="filter"
    )
    rule = rs.rules("filter", "INPUT")[0]
    assert rule.counters == (7, 700)
    assert rule.matches == (Match("", "source", "10.1.0.0/16"),)
    empty = parse_ruleset("")
    assert (empty.format, empty.tables, empty.rule_count(), empty.warnings) == ("empty", (), 0, ())


def test_rules_are_counted_with_and_without_save_counters() -> None:
    """`iptables-save -c` puts `[packets:bytes]` before `-A`: those rules count too."""
    plain = "*nat\n:PREROUTING ACCEPT [0:0]\n-A PREROUTING -j KUBE-SERVICES\n-A KUBE-SERVICES -j RETURN\nCOMMIT\n"
    counted = "*nat\n:PREROUTING ACCEPT [3:180]\n[3:180] -A PREROUTING -j KUBE-SERVICES\n[0:0] -A KUBE-SERVICES -j RETURN\nCOMMIT\n"
    assert count_rules(plain) == count_rules(counted) == 2
    assert (
        count_rules("# Generated by iptables-nft-save\n*filter\n:INPUT ACCEPT [0:0]\nCOMMIT\n") == 0
    )


@pytest.mark.parametrize("path", IPTABLES, ids=[p.name for p in IPTABLES])
def test_rules_counted_whole_lines_at_a_time_are_the_lines_that_start_a_rule(path: Path) -> None:
    """count_rules matches a rule line whole: it counts exactly the lines that start with
    `-A ` or `[packets:bytes] -A `, in real dumps and in their edge variants."""
    text = _read(path.name)
    start = re.compile(r"(?:\[\d+:\d+\] )?-A ")
    variants = (
        text,
        text.rstrip("\n"),
        "\n" + text,
        text.replace("\n-A ", "\n[3:180] -A "),
        text.replace("\n-A ", "\n -A "),  # indented: no rule line
        text + '-A X -m comment --comment "a -A b" -j RETURN',
    )
    for variant in variants:
        assert count_rules(variant) == sum(1 for line in variant.split("\n") if start.match(line))


@pytest.mark.parametrize("path", IPTABLES, ids=[p.name for p in IPTABLES])
def test_pickled_ruleset_answers_as_the_one_indexed(path: Path) -> None:
    """A ruleset pickled (as `trace --cache` keeps it) and read back has every chain's lines and rules."""
    import pickle

    ruleset = parse_ruleset(path.read_text(encoding="utf-8", errors="surrogateescape"))
    for table in ruleset.tables[:1]:
        for chain in ruleset.chain_names(table)[:1]:
            ruleset.rules(table, chain)  # one chain parsed before pickling
    again = pickle.loads(pickle.dumps(ruleset))
    twice = pickle.loads(pickle.dumps(again))  # a read-back ruleset pickles the same
    for table in ruleset.tables:
        assert again.chain_names(table) == ruleset.chain_names(table) == twice.chain_names(table)
        for chain in ruleset.chain_names(table):
            assert again.rule_lines(table, chain) == ruleset.rule_lines(table, chain)
            assert twice.rules(table, chain) == ruleset.rules(table, chain)
            assert again.chain(table, chain) == ruleset.chain(table, chain)
    assert again.rule_count() == ruleset.rule_count()


def test_pickled_listing_keeps_empty_chains() -> None:
    """A chain without rules (an `iptables -nL` listing's) reads back empty, not as one blank line."""
    import pickle

    text = (
        "Chain INPUT (policy ACCEPT)\ntarget prot opt source destination\n\n"
        "Chain EMPTY (0 references)\ntarget prot opt source destination\n"
    )
    ruleset = parse_ruleset(text, "filter")
    again = pickle.loads(pickle.dumps(ruleset))
    assert ruleset.rule_lines("filter", "EMPTY") == again.rule_lines("filter", "EMPTY") == ()
    assert again.has_chain("filter", "EMPTY")


_COUNTED = """*nat
:PREROUTING ACCEPT [3:180]
:KUBE-SERVICES - [0:0]
:KUBE-SVC-A - [0:0]
:KUBE-MIXED - [0:0]
[12:720] -A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
[0:0] -A KUBE-SERVICES -d 10.96.0.10/32 -p udp -m udp --dport 53 -j KUBE-SVC-A
[5:300] -A KUBE-SERVICES -d 10.96.0.1/32 -p tcp -m tcp --dport 443 -j KUBE-SVC-A
[7:420] -A KUBE-SVC-A -m statistic --mode random --probability 0.5 -j KUBE-MARK-MASQ
-A KUBE-MIXED -j RETURN
[1:60] -A KUBE-MIXED -j ACCEPT
[2:120] -A KUBE-SVC-A -j ACCEPT
COMMIT
"""


@pytest.mark.parametrize("text", [_COUNTED, _COUNTED.replace("\n", "\r\n")], ids=["lf", "crlf"])
def test_pickled_counted_ruleset_keeps_every_counter(text: str) -> None:
    """`iptables-save -c` rules read back with their counters: chains together, mixed, interleaved."""
    import pickle

    ruleset = parse_ruleset(text)
    again = pickle.loads(pickle.dumps(ruleset))
    twice = pickle.loads(pickle.dumps(again))
    for chain in ruleset.chain_names("nat"):
        assert again.rule_lines("nat", chain) == ruleset.rule_lines("nat", chain)
        for pos in range(1, ruleset.rule_count_of("nat", chain) + 1):
            assert again.rule("nat", chain, pos) == ruleset.rule("nat", chain, pos)
        assert twice.rules("nat", chain) == again.rules("nat", chain) == ruleset.rules("nat", chain)
    assert again.rule("nat", "KUBE-SERVICES", 2).counters == (5, 300)
    assert again.rule("nat", "KUBE-MIXED", 1).counters is None
    # A chain whose first line has no counters keeps those of its later lines.
    assert ruleset.rules("nat", "KUBE-MIXED")[1].counters == (1, 60)
    assert again.rule("nat", "KUBE-MIXED", 2).counters == (1, 60)
    kept = again._tables["nat"].lines._joined
    # Together in the text: a span with counters; interleaved or mixed: joined.
    assert isinstance(kept["KUBE-SVC-A"], str) and isinstance(kept["KUBE-MIXED"], str)
    # The lines of a CRLF dump are not the text's own (the CRs were cut): never spans.
    assert len(kept["KUBE-SERVICES"]) == 3 if "\r" not in text else kept["KUBE-SERVICES"][0] == "\n"
