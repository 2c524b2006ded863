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
