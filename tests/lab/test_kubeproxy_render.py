"""The lab's kube-proxy rules: names and shapes as the real kube-proxy writes them."""

from __future__ import annotations

import re
from pathlib import Path

from podpath.lab.kubeproxy import restore_input
from podpath.lab.names import ext_chain, sep_chain, svc_chain
from podpath.lab.records import ServiceRecord

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "realworld" / "iptables"
PROXIER = FIXTURES / "k8s-proxier-test-overall-rules-restore-input.txt"


def _proxier_text() -> str:
    return PROXIER.read_text()


def test_svc_chain_names_match_kube_proxy_fixture() -> None:
    """Every 'ns/svc:port cluster IP' rule in kube-proxy's test output jumps to our computed KUBE-SVC."""
    pairs = re.findall(
        r'-A KUBE-SERVICES -m comment --comment "(\S+) cluster IP" -m (\w+) .* -j (KUBE-SVC-\w+)',
        _proxier_text(),
    )
    assert len(pairs) >= 4
    for name, proto, chain in pairs:
        assert svc_chain(name, proto) == chain


def test_sep_chain_names_match_kube_proxy_fixture() -> None:
    """Every DNAT rule's KUBE-SEP chain equals base32(sha256(name+proto+endpoint))[:16]."""
    rules = re.findall(
        r"-A (KUBE-SEP-\w+) -m comment --comment (\S+) .*-m (\w+) -p \w+ -j DNAT --to-destination (\S+)",
        _proxier_text(),
    )
    assert len(rules) >= 4
    for chain, name, proto, endpoint in rules:
        assert sep_chain(name, proto, endpoint) == chain


def test_ext_chain_names_match_kube_proxy_fixture() -> None:
    """KUBE-EXT chains of the fixture's NodePort services match our computation."""
    pairs = re.findall(
        r"-A KUBE-NODEPORTS -m comment --comment (\S+) -m (\w+) -p \w+ --dport \d+ -j (KUBE-EXT-\w+)",
        _proxier_text(),
    )
    assert pairs
    for name, proto, chain in pairs:
        assert ext_chain(name, proto) == chain


def _svc(endpoints: tuple[tuple[str, int], ...], node_port: int | None = None) -> ServiceRecord:
    name = "ns1/svc1:p80"
    seps = tuple(sep_chain(name, "tcp", f"{ip}:{port}") for ip, port in endpoints)
    return ServiceRecord(
        "ns1",
        "svc1",
        "p80",
        "TCP",
        "172.30.0.41",
        80,
        node_port,
        endpoints,
        svc_chain(name, "tcp"),
        seps,
    )


def test_rendered_single_endpoint_service_equals_kube_proxy_lines() -> None:
    """A one-endpoint ClusterIP service renders the same nat lines kube-proxy's test expects."""
    text = restore_input([_svc((("10.180.0.1", 80),))])
    proxier = _proxier_text()
    for line in text.splitlines():
        if "svc1" in line or "SXIVWICOYRO3J4NJ" in line or "XPGD46QRK7WJZT7O" in line:
            rule = line.replace(" ! -s 10.244.0.0/16 ", " ! -s 10.0.0.0/8 ")
            assert rule in proxier, rule


def test_rendered_probabilities_are_kube_proxy_formatted() -> None:
    """Three endpoints get --probability 0.3333333333 then 0.5000000000, the last none."""
    eps = (("10.244.0.2", 80), ("10.244.0.3", 80), ("10.244.1.2", 80))
    text = restore_input([_svc(eps)])
    assert re.findall(r"--probability (\S+)", text) == ["0.3333333333", "0.5000000000"]


def test_node_port_goes_through_kube_ext_chain() -> None:
    """A NodePort service gets KUBE-NODEPORTS -> KUBE-EXT (masquerade) -> KUBE-SVC."""
    svc = _svc((("10.244.0.2", 80),), node_port=30080)
    text = restore_input([svc])
    ext = ext_chain(svc.port_ref, "tcp")
    assert (
        f"-A KUBE-NODEPORTS -m comment --comment ns1/svc1:p80 -m tcp -p tcp --dport 30080 -j {ext}"
        in text
    )
    assert f"-A {ext} -j {svc.svc_chain}" in text


def test_service_without_endpoints_is_rejected_in_filter() -> None:
    """A service with no endpoints gets a REJECT rule in filter KUBE-SERVICES, no KUBE-SVC chain."""
    text = restore_input([_svc(())])
    filter_part = text.split("*filter", 1)[1].split("COMMIT", 1)[0]
    assert '"ns1/svc1:p80 has no endpoints"' in filter_part and "-j REJECT" in filter_part
    assert "KUBE-SVC-" not in text


NFT_PROXIER = (
    FIXTURES.parent / "nftables" / "k8s-nftables-proxier-test-overall-rules-nft-f-dump.txt"
)


def _svc2() -> ServiceRecord:
    """The fixture's ns2/svc2:p80: externalTrafficPolicy Local, NodePort 3001, one
    endpoint 10.180.0.2 (local_ips says whether the node rendered for has it)."""
    name = "ns2/svc2:p80"
    endpoint = ("10.180.0.2", 80)
    return ServiceRecord(
        "ns2",
        "svc2",
        "p80",
        "TCP",
        "172.30.0.42",
        80,
        3001,
        (endpoint,),
        svc_chain(name, "tcp"),
        (sep_chain(name, "tcp", "10.180.0.2:80"),),
        external_local=True,
    )


def _as_fixture(line: str) -> str:
    """A rendered line in the fixture's terms: its cluster CIDR is 10.0.0.0/8."""
    return line.replace("10.244.0.0/16", "10.0.0.0/8")


def test_etp_local_without_a_local_endpoint_equals_kube_proxy_lines() -> None:
    """svc2 on a node without its endpoint: KUBE-EXT's three short-circuit rules, no jump
    to KUBE-SVL, and the NodePort DROP in KUBE-EXTERNAL-SERVICES, as kube-proxy wrote them."""
    text = restore_input([_svc2()], local_ips=())
    proxier = _proxier_text()
    ext = ext_chain("ns2/svc2:p80", "tcp")
    ext_rules = [_as_fixture(x) for x in text.splitlines() if x.startswith(f"-A {ext} ")]
    assert len(ext_rules) == 3 and all(r in proxier for r in ext_rules), ext_rules
    assert [r for r in proxier.splitlines() if r.startswith(f"-A {ext} ")] == ext_rules
    drop = (
        '-A KUBE-EXTERNAL-SERVICES -m comment --comment "ns2/svc2:p80 has no local endpoints" '
        "-m addrtype --dst-type LOCAL -m tcp -p tcp --dport 3001 -j DROP"
    )
    assert drop in text and drop in proxier
    assert "KUBE-SVL-" not in text


def test_etp_local_with_a_local_endpoint_goes_through_kube_svl() -> None:
    """svc2 on its endpoint's node: KUBE-EXT ends in KUBE-SVL, which picks that endpoint;
    no DROP is written."""
    svc = _svc2()
    text = restore_input([svc], local_ips=("10.180.0.2",))
    svl = svc.svc_chain.replace("KUBE-SVC-", "KUBE-SVL-")
    assert f"-A {ext_chain(svc.port_ref, 'tcp')} -j {svl}" in text
    assert (
        f'-A {svl} -m comment --comment "ns2/svc2:p80 -> 10.180.0.2:80" -j {svc.sep_chains[0]}'
        in text
    )
    assert "has no local endpoints" not in text


def test_internal_policy_local_without_a_local_endpoint_drops_the_cluster_ip() -> None:
    """internalTrafficPolicy Local, no endpoint here: filter KUBE-SERVICES drops the
    ClusterIP ("has no local endpoints") and no nat rule names the VIP."""
    from dataclasses import replace

    svc = replace(_svc2(), node_port=None, external_local=False, internal_local=True)
    text = restore_input([svc], local_ips=())
    filter_part = text.split("*filter", 1)[1].split("COMMIT", 1)[0]
    assert (
        '-A KUBE-SERVICES -m comment --comment "ns2/svc2:p80 has no local endpoints" '
        "-m tcp -p tcp -d 172.30.0.42 --dport 80 -j DROP"
    ) in filter_part
    nat_part = text.split("*nat", 1)[1]
    assert "172.30.0.42" not in nat_part


def test_nft_etp_local_without_a_local_endpoint_equals_kube_proxy_lines() -> None:
    """nftables mode, svc2 without a local endpoint: the external- chain's rules, the
    service-nodeports element and the no-endpoint-nodeports drop are the fixture's."""
    from podpath.lab.kubeproxy_nft import render

    text = render([_svc2()], ("192.0.2.1",), 4, local_ips=())
    fixture = NFT_PROXIER.read_text().splitlines()
    mine = [_as_fixture(x) for x in text.splitlines() if "ns2/svc2" in x and "external-" in x]
    assert len(mine) >= 4
    for line in mine:
        assert line in fixture, line
    assert (
        'add element ip kube-proxy no-endpoint-nodeports { tcp . 3001 comment "ns2/svc2:p80" : drop }'
        in text.splitlines()
    )
    assert "local-" not in text
