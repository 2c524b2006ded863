"""The lab's external IPs, LoadBalancer IPs and source ranges, line by line as kube-proxy
writes them: its proxier test dumps among the real-world fixtures (svc2: external IP and
LB IP with externalTrafficPolicy Local; svc4: an external IP; svc5: an LB IP with
loadBalancerSourceRanges) are rendered from the same Service and compared."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from podpath.lab.kubeproxy import restore_input
from podpath.lab.kubeproxy_nft import render
from podpath.lab.names import sep_chain, svc_chain
from podpath.lab.records import ServiceRecord

REALWORLD = Path(__file__).resolve().parents[1] / "fixtures" / "realworld"
PROXIER = REALWORLD / "iptables" / "k8s-proxier-test-overall-rules-restore-input.txt"
NFT_PROXIER = REALWORLD / "nftables" / "k8s-nftables-proxier-test-overall-rules-nft-f-dump.txt"


def _svc(n: int, cluster_ip: str, endpoints: tuple[str, ...], **kw: object) -> ServiceRecord:
    """The fixture's nsN/svcN:p80 (TCP 80), with its endpoints and extra fields."""
    name = f"ns{n}/svc{n}:p80"
    draft = ServiceRecord(
        f"ns{n}",
        f"svc{n}",
        "p80",
        "TCP",
        cluster_ip,
        80,
        None,
        tuple((ip, 80) for ip in endpoints),
        svc_chain(name, "tcp"),
        tuple(sep_chain(name, "tcp", f"{ip}:80") for ip in endpoints),
    )
    return replace(draft, **kw)  # type: ignore[arg-type]


def _svc2() -> ServiceRecord:
    return _svc(
        2,
        "172.30.0.42",
        ("10.180.0.2",),
        node_port=3001,
        external_local=True,
        external_ips=("192.168.99.22",),
        lb_ips=("1.2.3.4",),
    )


def _svc4() -> ServiceRecord:
    return _svc(4, "172.30.0.44", ("10.180.0.4", "10.180.0.5"), external_ips=("192.168.99.33",))


def _svc5() -> ServiceRecord:
    return _svc(
        5,
        "172.30.0.45",
        ("10.180.0.3",),
        node_port=3002,
        affinity=10800,
        lb_ips=("5.6.7.8",),
        source_ranges=("203.0.113.0/25",),
    )


def _as_fixture(line: str) -> str:
    """A rendered line in the fixture's terms: its cluster CIDR is 10.0.0.0/8."""
    return line.replace("10.244.0.0/16", "10.0.0.0/8")


def _lines(text: str, *needles: str) -> list[str]:
    return [_as_fixture(x) for x in text.splitlines() if any(n in x for n in needles)]


def test_iptables_lb_ip_with_source_ranges_equals_kube_proxy_lines() -> None:
    """svc5: KUBE-SERVICES to KUBE-FW-, KUBE-FW-'s range rule and fall-through comment,
    KUBE-EXT-'s masquerade, and KUBE-PROXY-FIREWALL's DROP are the fixture's lines."""
    text = restore_input([_svc5()])
    fixture = PROXIER.read_text().splitlines()
    mine = _lines(text, "KUBE-FW-", "loadbalancer IP", "-A KUBE-EXT-NUKIZ6OKUXPJNT4C")
    theirs = [x for x in fixture if "KUBE-FW-" in x or "-A KUBE-EXT-NUKIZ6OKUXPJNT4C" in x]
    theirs += [x for x in fixture if "ns5/svc5:p80 loadbalancer IP" in x and x not in theirs]
    assert len(theirs) == 7, theirs
    assert sorted(mine) == sorted(theirs)


def test_iptables_external_ips_equal_kube_proxy_lines() -> None:
    """svc4's external IP jumps to KUBE-EXT-; svc2 (Local, no endpoint here) has its
    external and LB IPs dropped in KUBE-EXTERNAL-SERVICES, as the fixture's."""
    fixture = PROXIER.read_text().splitlines()
    svc4 = _lines(restore_input([_svc4()]), "external IP")
    assert svc4 == [
        '-A KUBE-SERVICES -m comment --comment "ns4/svc4:p80 external IP" -m tcp -p tcp '
        "-d 192.168.99.33 --dport 80 -j KUBE-EXT-4SW47YFZTEDKD3PK"
    ]
    assert svc4[0] in fixture
    svc2 = _lines(restore_input([_svc2()], local_ips=()), "-d 192.168.99.22", "-d 1.2.3.4")
    assert len(svc2) == 4, svc2  # nat: two jumps to KUBE-EXT-; filter: two DROPs
    assert [x for x in svc2 if x not in fixture] == []


def test_nft_lb_ip_with_source_ranges_equals_kube_proxy_lines() -> None:
    """nftables mode, svc5: the firewall- chain's rule and the firewall-ips and
    service-ips elements of its LB IP are the fixture's lines."""
    text = render([_svc5()], ("192.0.2.1",), 4)
    fixture = NFT_PROXIER.read_text().splitlines()
    mine = _lines(text, "firewall-HVFWP5L3", "5.6.7.8")
    assert len(mine) == 4, mine  # chain, rule, firewall-ips and service-ips elements
    assert [x for x in mine if x not in fixture] == []


def test_nft_external_ips_equal_kube_proxy_lines() -> None:
    """nftables mode: svc4's external IP, and svc2's external and LB IPs (Local, no
    endpoint here: to external- and dropped by no-endpoint-services) are the fixture's."""
    fixture = NFT_PROXIER.read_text().splitlines()
    svc4 = _lines(render([_svc4()], (), 4), "192.168.99.33")
    assert len(svc4) == 1 and svc4[0] in fixture, svc4
    svc2 = _lines(render([_svc2()], (), 4, local_ips=()), "192.168.99.22", "1.2.3.4")
    assert len(svc2) == 4, svc2
    assert [x for x in svc2 if x not in fixture] == []
