"""kube-proxy Services read back from real iptables dumps, and backend detection."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from podpath.netfilter.iptables_save import parse_ruleset
from podpath.netfilter.kube_proxy import (
    Service,
    _split_any,
    detect_backend,
    detect_mode,
    endpoint_shares,
    parse_service_comment,
    services,
    split_host_port,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "realworld"
IPTABLES = sorted((FIXTURES / "iptables").iterdir())


def _services(name: str) -> dict[str, Service]:
    text = (FIXTURES / "iptables" / name).read_text(encoding="utf-8", errors="surrogateescape")
    return {f"{s.key}/{s.protocol}": s for s in services(parse_ruleset(text))}


@pytest.mark.parametrize("path", IPTABLES, ids=[p.name for p in IPTABLES])
def test_every_fixture_yields_services_without_raising(path: Path) -> None:
    """services() runs on every dump, even errors, listings and fragments."""
    found = services(parse_ruleset(path.read_text(encoding="utf-8", errors="surrogateescape")))
    for svc in found:
        assert abs(sum(e.probability for e in svc.endpoints) - 1.0) < 1e-9 or not svc.endpoints


def test_proxier_test_all_six_services() -> None:
    """kube-proxy's own test ruleset: VIPs, ports, node ports, external and LB IPs."""
    svcs = _services("k8s-proxier-test-overall-rules-restore-input.txt")
    assert sorted(svcs) == [f"ns{i}/svc{i}:p80/TCP" for i in range(1, 7)]
    svc2 = svcs["ns2/svc2:p80/TCP"]
    assert (svc2.cluster_ip, svc2.port, svc2.node_port) == ("172.30.0.42", 80, 3001)
    assert svc2.external_ips == ("192.168.99.22",)
    assert svc2.load_balancer_ips == ("1.2.3.4",)
    assert svc2.health_check_node_port == 30000
    assert svc2.no_local_endpoints == "DROP"
    assert svc2.ext_chain == "KUBE-EXT-GNZBNJ2PO5MGZ6GT"
    assert [(e.ip, e.port) for e in svc2.endpoints] == [("10.180.0.2", 80)]
    assert svc2.masquerade == "when source not in 10.0.0.0/8"


def test_two_endpoints_split_half_and_half() -> None:
    """svc4: probability 0.5 then the rest: each endpoint gets exactly one half."""
    svc4 = _services("k8s-proxier-test-overall-rules-restore-input.txt")["ns4/svc4:p80/TCP"]
    assert [(e.ip, e.port, e.sep_chain) for e in svc4.endpoints] == [
        ("10.180.0.4", 80, "KUBE-SEP-UKSFD7AGPMPPLUHC"),
        ("10.180.0.5", 80, "KUBE-SEP-C6EBXVWJJZMIWKLZ"),
    ]
    assert [e.probability for e in svc4.endpoints] == [0.5, 0.5]
    assert svc4.endpoints[0].dnat_rule_text.endswith("-j DNAT --to-destination 10.180.0.4:80")
    assert svc4.external_ips == ("192.168.99.33",)


def test_firewall_and_affinity_service() -> None:
    """svc5: LB IP behind KUBE-FW with source ranges; the affinity rcheck rule is no endpoint."""
    svc5 = _services("k8s-proxier-test-overall-rules-restore-input.txt")["ns5/svc5:p80/TCP"]
    assert svc5.cluster_ip == "172.30.0.45"
    assert svc5.load_balancer_ips == ("5.6.7.8",)
    assert svc5.fw_chain == "KUBE-FW-NUKIZ6OKUXPJNT4C"
    assert svc5.source_ranges == ("203.0.113.0/25",)
    assert svc5.node_port == 3002
    assert [(e.ip, e.probability) for e in svc5.endpoints] == [("10.180.0.3", 1.0)]


def test_service_without_endpoints_is_rejected() -> None:
    """svc6: only the filter-table REJECT exists; the Service is listed with no endpoints."""
    svc6 = _services("k8s-proxier-test-overall-rules-restore-input.txt")["ns6/svc6:p80/TCP"]
    assert (svc6.cluster_ip, svc6.port, svc6.no_endpoints) == ("172.30.0.46", 80, "REJECT")
    assert svc6.endpoints == ()


def test_three_endpoints_from_rounded_probabilities() -> None:
    """0.33333333349 then 0.5 then the rest: shares multiply out exactly (1e-9)."""
    svc = _services("kep2086-kind-worker-iptables-save-tail-svc-probability.txt")[
        "default/agnhost-server/TCP"
    ]
    assert [e.ip for e in svc.endpoints] == ["10.244.1.4", "10.244.2.3", "10.244.2.4"]
    p1 = 0.33333333349
    expected = [p1, (1 - p1) * 0.5, (1 - p1) * 0.5]
    for endpoint, share in zip(svc.endpoints, expected, strict=True):
        assert abs(endpoint.probability - share) < 1e-9
    assert svc.cluster_ip == "10.96.226.141"
    assert svc.port == 80
    assert svc.port_name == ""


def test_internal_traffic_policy_local_chain() -> None:
    """KUBE-SVL alone (tail of a kind worker): the one local endpoint, marked local."""
    svc = _services("kep2086-kind-worker-iptables-save-tail-svl.txt")["default/agnhost-server/TCP"]
    assert svc.local_chain == "KUBE-SVL-VPG43MSD43N5Z7KJ"
    assert [(e.ip, e.port, e.local) for e in svc.endpoints] == [("10.244.1.4", 80, True)]


def test_external_traffic_policy_local_with_endpoint() -> None:
    """AKS ETP=Local: node port, health-check port, LB IP, and KUBE-SVL membership."""
    svc = _services("aks-etp-local-node-with-endpoint-grep-fragment.txt")["default/nginx/TCP"]
    assert (svc.cluster_ip, svc.port, svc.node_port) == ("10.0.11.45", 80, 32643)
    assert svc.health_check_node_port == 31701
    assert svc.load_balancer_ips == ("20.91.172.24",)
    assert [(e.ip, e.local) for e in svc.endpoints] == [("10.244.2.5", True)]


def test_external_traffic_policy_local_without_endpoint() -> None:
    """AKS ETP=Local on a node with no endpoint: KUBE-EXTERNAL-SERVICES drops."""
    svc = _services("aks-etp-local-node-without-endpoint-grep-fragment.txt")["default/nginx/TCP"]
    assert svc.no_local_endpoints == "DROP"
    assert svc.load_balancer_ips == ("20.91.172.24",)
    assert svc.external_ips == ()


def test_kubenet_lb_fragment_with_interface_masquerade() -> None:
    """AKS kubenet: two endpoints at 0.5, masquerade decided by `! -i azv+`."""
    svc = _services("aks-kubenet-lb-service-grep-fragment.txt")["default/nginx/TCP"]
    assert svc.cluster_ip == "10.0.42.82"
    assert svc.load_balancer_ips == ("4.225.83.202",)
    assert [(e.ip, e.port, e.probability) for e in svc.endpoints] == [
        ("10.244.0.113", 80, 0.5),
        ("10.244.1.136", 80, 0.5),
    ]
    assert svc.masquerade == "when not from interface azv+"


def test_old_kube_proxy_masquerade_in_services_chain() -> None:
    """2019 kube-proxy: MASQ rule in KUBE-SERVICES; no-endpoint REJECTs in filter."""
    svcs = _services("calico-felix-fv-iptables-dump-kube-docker-v1.8.3.txt")
    api = svcs["default/kubernetes:https/TCP"]
    assert (api.cluster_ip, api.port) == ("10.96.0.1", 443)
    assert api.masquerade == "when source not in 192.168.0.0/16"
    assert [(e.ip, e.port) for e in api.endpoints] == [("10.128.0.183", 6443)]
    dns = svcs["kube-system/kube-dns:dns/UDP"]
    assert (dns.cluster_ip, dns.port, dns.no_endpoints) == ("10.96.0.10", 53, "REJECT")
    assert "kube-system/kube-dns:metrics/TCP" in svcs


def test_2015_userspace_portals() -> None:
    """v1.4.21 era: `portal for ns/name:port` comments and DNAT inside KUBE-SVC chains."""
    svcs = _services("k8s-2015-iptables-save-v1.4.21-userspace-portals.txt")
    api = svcs["default/kubernetes/TCP"]
    assert (api.cluster_ip, api.port) == ("10.247.0.1", 443)
    assert [(e.ip, e.port, e.probability) for e in api.endpoints] == [("10.245.1.2", 443, 1.0)]
    dns = svcs["kube-system/kube-dns:dns/UDP"]
    assert [(e.ip, e.port) for e in dns.endpoints] == [("10.246.1.2", 53)]


def test_ipvs_listing_reads_nodeport() -> None:
    """An `iptables -nL` listing still yields the Service's VIP, port and node port."""
    svc = _services("kep265-ipvs-era-iptables-t-nat-nL-nodeport-truncated.txt")[
        "default/nginx-service:http/TCP"
    ]
    assert (svc.cluster_ip, svc.port, svc.node_port) == ("10.101.28.148", 3080, 31604)


def test_endpoint_shares_formula() -> None:
    """p1, (1-p1)p2, ..., the last rule takes what is left."""
    assert endpoint_shares([0.25, 1 / 3, 0.5, None]) == pytest.approx([0.25] * 4, abs=1e-12)
    assert endpoint_shares([None]) == (1.0,)
    assert endpoint_shares([]) == ()


def test_comment_and_address_helpers() -> None:
    """Comment forms across versions, and ip:port forms including IPv6."""
    assert parse_service_comment("default/kubernetes:https cluster IP") == (
        "default",
        "kubernetes",
        "https",
        "cluster IP",
    )
    assert parse_service_comment("portal for default/kubernetes:") == (
        "default",
        "kubernetes",
        "",
        "",
    )
    assert parse_service_comment("kubernetes service portals") is None
    assert split_host_port("[fd00::5]:8080") == ("fd00::5", 8080)
    assert split_host_port("10.0.0.1:80") == ("10.0.0.1", 80)
    assert split_host_port("10.0.0.1") == ("10.0.0.1", None)


def test_backend_detection_from_canaries() -> None:
    """KUBE-PROXY-CANARY picks the backend; rules in two backends give a warning."""
    proxy = parse_ruleset(
        (FIXTURES / "iptables" / "aks-kube-proxy-netns-iptables-save-truncated.txt").read_text()
    )
    legacy = parse_ruleset("*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -j ACCEPT\nCOMMIT\n")
    mode = detect_mode({"iptables-legacy": legacy, "iptables-nft": proxy})
    assert (mode.mode, mode.backend) == ("iptables", "iptables-nft")
    assert any("several iptables backends" in w for w in mode.warnings)
    assert detect_backend({"iptables-nft": proxy}, [("ip", "kube-proxy")]) == "nftables"
    assert detect_mode({"iptables-legacy": legacy}).mode is None


def test_ipvs_mode_detection() -> None:
    """KUBE-LOAD-BALANCER and ipset matches mean IPVS mode."""
    rs = parse_ruleset(
        (FIXTURES / "iptables" / "k8s-ipvs-mode-iptables-t-nat-nL-loadbalancer.txt").read_text()
    )
    assert detect_mode({"iptables-nft": rs}).mode == "ipvs"


def test_services_round_trip_the_labs_kube_proxy_rules() -> None:
    """What the lab programs (its kube-proxy-shaped restore input) reads back exactly."""
    kubeproxy = pytest.importorskip("podpath.lab.kubeproxy")
    records = pytest.importorskip("podpath.lab.records")
    names = pytest.importorskip("podpath.lab.names")
    recs = []
    for i, (proto, count, node_port) in enumerate(
        [("TCP", 3, 30080), ("UDP", 1, None), ("TCP", 0, None), ("TCP", 4, None)]
    ):
        ref = f"lab/svc{i}:p{i}"
        eps = tuple((f"10.244.1.{10 + i * 5 + k}", 8000 + k) for k in range(count))
        recs.append(
            records.ServiceRecord(
                "lab",
                f"svc{i}",
                f"p{i}",
                proto,
                f"10.96.0.{50 + i}",
                80 + i,
                node_port,
                eps,
                names.svc_chain(ref, proto),
                tuple(names.sep_chain(ref, proto, f"{ip}:{port}") for ip, port in eps),
            )
        )
    found = {s.key: s for s in services(parse_ruleset(kubeproxy.restore_input(recs)))}
    for rec in recs:
        svc = found[rec.port_ref]
        assert (svc.protocol, svc.cluster_ip, svc.port) == (rec.protocol, rec.cluster_ip, rec.port)
        assert svc.node_port == rec.node_port
        assert tuple((e.ip, e.port) for e in svc.endpoints) == rec.endpoints
        if rec.endpoints:
            assert svc.svc_chain == rec.svc_chain
            assert tuple(e.sep_chain for e in svc.endpoints) == rec.sep_chains
            for endpoint in svc.endpoints:
                assert abs(endpoint.probability - 1 / len(rec.endpoints)) < 1e-9
        else:
            assert svc.no_endpoints == "REJECT"


# --- the line-regex fast path must give exactly what the parser gives ---------------------


def _save_text(count: int) -> str:
    """kube-proxy's nat rules for `count` Services, in iptables-save's option order."""
    from podpath.netfilter import kube_proxy as kp

    assert kp.USE_LINE_REGEX
    head = [
        "*nat",
        ":PREROUTING ACCEPT [0:0]",
        ":KUBE-SERVICES - [0:0]",
        ":KUBE-NODEPORTS - [0:0]",
        ":KUBE-MARK-MASQ - [0:0]",
    ]
    rules: list[str] = []
    for i in range(count):
        svc, ip, name = f"KUBE-SVC-H{i:04d}", f"10.96.0.{i + 1}", f"ns/svc{i}:http"
        head.append(f":{svc} - [0:0]")
        rules.append(
            f'-A KUBE-SERVICES -d {ip}/32 -p tcp -m comment --comment "{name} cluster IP"'
            f" -m tcp --dport 80 -j {svc}"
        )
        rules.append(
            f"-A {svc} ! -s 10.244.0.0/16 -d {ip}/32 -p tcp -m comment --comment "
            f'"{name} cluster IP" -m tcp --dport 80 -j KUBE-MARK-MASQ'
        )
        for k in range(3):
            sep, pod = f"KUBE-SEP-H{i:04d}E{k}", f"10.244.{k}.{i % 250 + 1}"
            prob = f" -m statistic --mode random --probability {1 / (3 - k):0.11f}" if k < 2 else ""
            head.append(f":{sep} - [0:0]")
            rules.append(f'-A {svc} -m comment --comment "{name} -> {pod}:8080"{prob} -j {sep}')
            rules.append(f'-A {sep} -s {pod}/32 -m comment --comment "{name}" -j KUBE-MARK-MASQ')
            rules.append(
                f'-A {sep} -p tcp -m comment --comment "{name}" -m tcp -j DNAT '
                f"--to-destination {pod}:8080"
            )
    rules.append(
        '-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: '
        'this must be the last rule in this chain" -m addrtype --dst-type LOCAL '
        "-j KUBE-NODEPORTS"
    )
    return "\n".join([*head, *rules, "COMMIT", ""])


def _both_ways(text: str) -> tuple[tuple[Service, ...], tuple[Service, ...]]:
    from podpath.netfilter import kube_proxy as kp

    fast = services(parse_ruleset(text))
    kp.USE_LINE_REGEX = False
    try:
        slow = services(parse_ruleset(text))
    finally:
        kp.USE_LINE_REGEX = True
    return fast, slow


def test_line_regex_reads_canonical_kube_proxy_lines() -> None:
    """Every rule of a canonical kube-proxy dump but the nodeports jump takes the regex path."""
    from podpath.netfilter.kube_proxy import _line_facts

    lines = [x for x in _save_text(3).split("\n") if x.startswith("-A ")]
    missed = [x for x in lines if _line_facts(x) is None]
    assert len(missed) == 1 and "KUBE-NODEPORTS" in missed[0]


LINE_CASES = [
    '-A KUBE-SERVICES -d 10.96.0.1/32 -p tcp -m comment --comment "default/kubernetes:https cluster IP" -m tcp --dport 443 -j KUBE-SVC-NPX46M4PTMTKRN6Y',
    '-A KUBE-SVC-X ! -s 10.244.0.0/16 -d 10.96.0.1/32 -p tcp -m comment --comment "a/b:c cluster IP" -m tcp --dport 443 -j KUBE-MARK-MASQ',
    "-A KUBE-SVC-X -d 10.96.0.1/32 -p udp -m comment --comment a/b:c -m udp --dport 53 -j KUBE-MARK-MASQ",
    '-A KUBE-SVC-X -m comment --comment "a/b:c -> 10.244.1.3:80" -m statistic --mode random --probability 0.33333333349 -j KUBE-SEP-Y',
    '-A KUBE-SEP-Y -s 10.244.1.3/32 -m comment --comment "a/b:c" -j KUBE-MARK-MASQ',
    '-A KUBE-SEP-Y -p tcp -m comment --comment "a/b:c" -m tcp -j DNAT --to-destination 10.244.1.3:80',
    '-A KUBE-SEP-Y -p tcp -m comment --comment "" -m tcp -j DNAT --to-destination [fd00::1]:80',
    '-A KUBE-SERVICES ! -d 10.96.0.1/32 -p tcp -m comment --comment "x/y has no endpoints" -m tcp --dport 80 -j REJECT --reject-with icmp-port-unreachable',
    "-A KUBE-SERVICES -d 10.96.0.0/24 -p sctp -m sctp --dport 80 -j KUBE-SVC-Z",
    "-A KUBE-FW-Z -s 192.0.2.0/24 -m comment --comment ns/n:p -j KUBE-EXT-Z",
    '-A KUBE-SEP-Y -s fd00::1/128 -m comment --comment "q\'uote <[b]> \x1b[31m" -j KUBE-MARK-MASQ',
    "-A KUBE-MARK-MASQ -j MARK --set-xmark 0x4000/0x4000",
]


@pytest.mark.parametrize("line", LINE_CASES)
def test_line_facts_equal_parsed_rule_facts(line: str) -> None:
    """The regex's reading of a line equals the parser's, field by field."""
    from podpath.netfilter.iptables_save import parse_rule
    from podpath.netfilter.kube_proxy import _line_facts, _rule_facts

    chain = line.split()[1]
    fast = _line_facts(line)
    slow = _rule_facts(parse_rule("nat", chain, 1, line, frozenset({"KUBE-MARK-MASQ"})))
    if "MARK --set-xmark" in line:
        assert fast is None
    else:
        assert fast is not None and fast.astuple() == slow.astuple()


@pytest.mark.parametrize("path", IPTABLES, ids=[p.name for p in IPTABLES])
def test_fixture_services_equal_with_and_without_line_regex(path: Path) -> None:
    """The fast path changes no Service of any real-world dump."""
    fast, slow = _both_ways(path.read_text(encoding="utf-8", errors="surrogateescape"))
    assert fast == slow


def test_canonical_dump_services_equal_with_and_without_line_regex() -> None:
    """A kube-proxy dump in iptables-save order gives the same Services both ways."""
    fast, slow = _both_ways(_save_text(40))
    assert fast == slow
    assert len(fast) == 40 and all(len(s.endpoints) == 3 for s in fast)
    assert fast[0].masquerade == "when source not in 10.244.0.0/16"


def test_quoted_dnat_target_still_found() -> None:
    """A SEP chain whose DNAT target is spelled with quotes ("DN"AT) is still read."""
    text = _save_text(1).replace("-j DNAT --to", '-j "DN"AT --to')
    fast, slow = _both_ways(text)
    assert fast == slow and fast[0].endpoints[0].ip == "10.244.0.1"
    assert fast[0].endpoints[0].port == 8080 and '"DN"AT' in fast[0].endpoints[0].dnat_rule_text


def test_service_semantics_from_real_iptables_dumps() -> None:
    """ClientIP affinity (its --seconds), externalTrafficPolicy and internalTrafficPolicy Local."""
    overall = _services("k8s-proxier-test-overall-rules-restore-input.txt")
    assert overall["ns5/svc5:p80/TCP"].affinity_timeout == 10800
    assert overall["ns1/svc1:p80/TCP"].affinity_timeout is None
    assert overall["ns2/svc2:p80/TCP"].external_policy == "Local"
    assert overall["ns3/svc3:p80/TCP"].external_policy == "Cluster"
    with_ep = _services("aks-etp-local-node-with-endpoint-grep-fragment.txt")
    assert with_ep["default/nginx/TCP"].external_policy == "Local"
    without = _services("aks-etp-local-node-without-endpoint-grep-fragment.txt")
    assert without["default/nginx/TCP"].no_local_endpoints == "DROP"
    svl = _services("kep2086-kind-worker-iptables-save-tail-svl.txt")
    assert svl["default/agnhost-server/TCP"].internal_policy == "Local"
    svc = _services("kep2086-kind-worker-iptables-save-tail-svc-probability.txt")
    assert svc["default/agnhost-server/TCP"].internal_policy == "Cluster"


def test_element_service_reads_kube_proxys_element_comments_only() -> None:
    """`ns/name:port` (or `ns/name`) as kube-proxy comments map elements; other text is not one."""
    from podpath.netfilter.kube_proxy_nft import element_service

    assert element_service("ns2/svc2:p80") == "ns2/svc2:p80"
    assert element_service("kube-system/kube-dns") == "kube-system/kube-dns"
    for other in (None, "", "short-circuit pod traffic", "a/b/c", "ns/svc:http drop"):
        assert element_service(other) is None


def _same_as_constructed(made: object) -> None:
    """`made` equals what its dataclass's __init__ builds from its fields, field by field
    and in field order (so its repr, hash and pickle are the constructor's)."""
    cls = type(made)
    names = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
    assert list(vars(made)) == names
    again = cls(**vars(made))
    assert again == made and list(vars(again).items()) == list(vars(made).items())
    assert repr(again) == repr(made) and hash(again) == hash(made)


@pytest.mark.parametrize("path", IPTABLES, ids=[p.name for p in IPTABLES])
def test_services_built_without_init_equal_constructed_ones(path: Path) -> None:
    """`_frozen` builds every Service and Endpoint as the dataclass constructor would."""
    text = path.read_text(encoding="utf-8", errors="surrogateescape")
    for svc in (*services(parse_ruleset(text)), *services(parse_ruleset(_save_text(5)))):
        _same_as_constructed(svc)
        for endpoint in svc.endpoints:
            _same_as_constructed(endpoint)


@pytest.mark.parametrize(
    "text",
    ["10.0.0.1:80", "10.0.0.1:080", "10.0.0.1:80-90", "10.0.0.1:", ":80", "10.0.0.1", "",
     "[fd00::1]:80", "[a:80", "[a]:80", "fd00::1", "a:b:80", "a:8b", "x:\u0663", "a:-1"],
)  # fmt: skip
def test_split_host_port_shortcut_equals_general_branches(text: str) -> None:
    """The `ip:port` shortcut reads every form as the general branches do (or fails alike)."""

    def outcome(split: object) -> object:
        try:
            return split(text)  # type: ignore[operator]
        except ValueError as exc:
            return type(exc)

    assert outcome(split_host_port) == outcome(_split_any)


@pytest.mark.parametrize(
    "to",
    ["10.244.1.3:80", "10.244.1.3:080", "10.244.1.3:80-90", "10.244.1.3", "1:2:80",
     "[fd00::1]:80", "fd00::1", "1..2:5", ".:0", "10.0.0.1:", "10.0.0.1:8a"],
)  # fmt: skip
def test_sep_dnat_split_destination_equals_split_host_port(to: str) -> None:
    """The endpoint read from `_SEP_DNAT`'s split IPv4 groups equals the one built from
    its whole --to-destination (split_host_port), for every destination it matches."""
    from podpath.netfilter.iptables_save import Ruleset, parse_ruleset
    from podpath.netfilter.kube_proxy import _SEP_DNAT, _Builder, _endpoint_to

    line = f'-A KUBE-SEP-Y -p tcp -m comment --comment "a/b:c" -m tcp -j DNAT --to-destination {to}'
    found = _SEP_DNAT.fullmatch(line)
    assert found is not None and found.group(1) == to
    ruleset: Ruleset = parse_ruleset(f"*nat\n:KUBE-SEP-Y - [0:0]\n{line}\nCOMMIT\n")
    endpoint = _Builder(ruleset).dnat_endpoint("KUBE-SEP-Y", 0.5)
    assert endpoint == _endpoint_to(to, line, 0.5, "KUBE-SEP-Y")
    assert repr(endpoint) == repr(_endpoint_to(to, line, 0.5, "KUBE-SEP-Y"))
