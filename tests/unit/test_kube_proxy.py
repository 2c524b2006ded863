"""kube-proxy Services read back from real iptables dumps, and backend detection."""

from __future__ import annotations

from pathlib import Path

import pytest

from podpath.netfilter.iptables_save import parse_ruleset
from podpath.netfilter.kube_proxy import (
    Service,
    detect_backend,
    detect_mode,
    endpoint_shares,
    parse_service_comment,
    services,
    split_host_port,
)

FIXTURES = Path(__file__).resolve().parents[2].parent / "shared" / "fixtures" / "realworld"
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
        ("10.180.0.4", 80, "KUBE-SEP-UKSFD7AGPMPPLUHC"), ("10.180.0.5", 80, "KUBE-SEP-C6EBXVWJJZMIWKLZ")]
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
        "default/agnhost-server/TCP"]
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
        ("10.244.0.113", 80, 0.5), ("10.244.1.136", 80, 0.5)]
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
        "default/nginx-service:http/TCP"]
    assert (svc.cluster_ip, svc.port, svc.node_port) == ("10.101.28.148", 3080, 31604)


def test_endpoint_shares_formula() -> None:
    """p1, (1-p1)p2, ..., the last rule takes what is left."""
    assert endpoint_shares([0.25, 1 / 3, 0.5, None]) == pytest.approx([0.25] * 4, abs=1e-12)
    assert endpoint_shares([None]) == (1.0,)
    assert endpoint_shares([]) == ()


def test_comment_and_address_helpers() -> None:
    """Comment forms across versions, and ip:port forms including IPv6."""
    assert parse_service_comment("default/kubernetes:https cluster IP") == (
        "default", "kubernetes", "https", "cluster IP")
    assert parse_service_comment("portal for default/kubernetes:") == (
        "default", "kubernetes", "", "")
    assert parse_service_comment("kubernetes service portals") is None
    assert split_host_port("[fd00::5]:8080") == ("fd00::5", 8080)
    assert split_host_port("10.0.0.1:80") == ("10.0.0.1", 80)
    assert split_host_port("10.0.0.1") == ("10.0.0.1", None)


def test_backend_detection_from_canaries() -> None:
    """KUBE-PROXY-CANARY picks the backend; rules in two backends give a warning."""
    proxy = parse_ruleset(
        (FIXTURES / "iptables" / "aks-kube-proxy-netns-iptables-save-truncated.txt").read_text())
    legacy = parse_ruleset("*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -j ACCEPT\nCOMMIT\n")
    mode = detect_mode({"iptables-legacy": legacy, "iptables-nft": proxy})
    assert (mode.mode, mode.backend) == ("iptables", "iptables-nft")
    assert any("several iptables backends" in w for w in mode.warnings)
    assert detect_backend({"iptables-nft": proxy}, [("ip", "kube-proxy")]) == "nftables"
    assert detect_mode({"iptables-legacy": legacy}).mode is None


def test_ipvs_mode_detection() -> None:
    """KUBE-LOAD-BALANCER and ipset matches mean IPVS mode."""
    rs = parse_ruleset(
        (FIXTURES / "iptables" / "k8s-ipvs-mode-iptables-t-nat-nL-loadbalancer.txt").read_text())
    assert detect_mode({"iptables-nft": rs}).mode == "ipvs"


def test_services_round_trip_the_labs_kube_proxy_rules() -> None:
    """What the lab programs (its kube-proxy-shaped restore input) reads back exactly."""
    kubeproxy = pytest.importorskip("podpath.lab.kubeproxy")
    records = pytest.importorskip("podpath.lab.records")
    names = pytest.importorskip("podpath.lab.names")
    recs = []
    for i, (proto, count, node_port) in enumerate([("TCP", 3, 30080), ("UDP", 1, None),
                                                   ("TCP", 0, None), ("TCP", 4, None)]):
        ref = f"lab/svc{i}:p{i}"
        eps = tuple((f"10.244.1.{10 + i * 5 + k}", 8000 + k) for k in range(count))
        recs.append(records.ServiceRecord(
            "lab", f"svc{i}", f"p{i}", proto, f"10.96.0.{50 + i}", 80 + i, node_port, eps,
            names.svc_chain(ref, proto),
            tuple(names.sep_chain(ref, proto, f"{ip}:{port}") for ip, port in eps)))
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
