"""The lab's external IPs, LoadBalancer IPs and source ranges, line by line as kube-proxy
writes them: its proxier test dumps among the real-world fixtures (svc2: external IP and
LB IP with externalTrafficPolicy Local; svc4: an external IP; svc5: an LB IP with
loadBalancerSourceRanges) are rendered from the same Service and compared. Also the
plan that gives web-lb and web-local those IPs, the outside client's routes, and the
lab state that keeps them."""

from __future__ import annotations

import json
from dataclasses import replace
from ipaddress import ip_network
from pathlib import Path

import pytest

from podpath.lab.kubeproxy import restore_input
from podpath.lab.kubeproxy_nft import render
from podpath.lab.names import sep_chain, svc_chain
from podpath.lab.outside import routes
from podpath.lab.plan import (
    LB_SOURCE_RANGE,
    LOCAL_EXTERNAL_IP,
    LOCAL_INGRESS_IP,
    OUTSIDE_ALLOWED,
    OUTSIDE_REFUSED,
    WEB_LB_EXTERNAL_IP,
    WEB_LB_INGRESS_IP,
    services,
)
from podpath.lab.records import LabError, LabRecord, LabSpec, NodeRecord, PodRecord, ServiceRecord

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


def _pods() -> list[PodRecord]:
    """A coredns pod and a web pod on node1, a web pod on node2 (dual-stack addresses)."""

    def pod(node: str, name: str, app: str, ips: tuple[str, ...]) -> PodRecord:
        return PodRecord(
            node,
            "default",
            name,
            "uid",
            "sb",
            1,
            1,
            ips[0],
            "/run/netns/x",
            "veth",
            (),
            app,
            "b",
            ips,
        )

    return [
        pod("node1", "coredns", "dns", ("10.244.0.2", "fd00:10:244::2")),
        pod("node1", "web-1", "web", ("10.244.0.3", "fd00:10:244::3")),
        pod("node2", "web-2", "web", ("10.244.1.2", "fd00:10:244:1::2")),
    ]


def test_load_balancer_plan_is_ipv4_web_lb_and_web_locals_ips() -> None:
    """--load-balancer adds web-lb (IPv4 only in a dual lab) over web's pods with its
    external IP, LB IP and range; web-local gets an external and an LB IP, no range."""
    spec = LabSpec("x", nodes=2, pods=3, ip_family="dual", traffic_policy_local=True)
    without = services(spec, _pods())
    assert not any(s.name == "web-lb" for s in without)
    svcs = services(replace(spec, load_balancer=True), _pods())
    (lb,) = [s for s in svcs if s.name == "web-lb"]
    assert lb.endpoints == (("10.244.0.3", 80), ("10.244.1.2", 80))
    assert (lb.external_ips, lb.lb_ips, lb.source_ranges) == (
        (WEB_LB_EXTERNAL_IP,),
        (WEB_LB_INGRESS_IP,),
        (LB_SOURCE_RANGE,),
    )
    assert lb.node_port is not None and not lb.external_local
    local = [s for s in svcs if s.name == "web-local"]
    assert [(s.external_ips, s.lb_ips) for s in local] == [
        ((LOCAL_EXTERNAL_IP,), (LOCAL_INGRESS_IP,)),
        ((), ()),  # the IPv6 web-local
    ]
    assert ip_network(OUTSIDE_ALLOWED).subnet_of(ip_network(LB_SOURCE_RANGE))  # type: ignore[arg-type]
    assert not ip_network(OUTSIDE_REFUSED).subnet_of(ip_network(LB_SOURCE_RANGE))  # type: ignore[arg-type]


def test_outside_routes_send_web_locals_external_ip_to_the_last_node() -> None:
    """The outside router: every external/LB IP to node1, web-local's external IP to the
    last node (no endpoint of it there)."""
    spec = LabSpec("x", nodes=2, pods=3, traffic_policy_local=True, load_balancer=True)
    nodes = [
        NodeRecord(f"node{i}", 1, 1, f"172.18.0.{i + 1}", f"10.244.{i - 1}.0/24", "m")
        for i in (1, 2)
    ]
    assert routes(services(spec, _pods()), nodes) == {
        LOCAL_EXTERNAL_IP: "172.18.0.3",
        LOCAL_INGRESS_IP: "172.18.0.2",
        WEB_LB_EXTERNAL_IP: "172.18.0.2",
        WEB_LB_INGRESS_IP: "172.18.0.2",
    }


@pytest.mark.parametrize(
    ("kw", "words"),
    [({"ip_family": "ipv6"}, "needs IPv4"), ({"cni": "aws-vpc"}, "not built for --cni aws-vpc")],
)
def test_load_balancer_refuses_what_it_does_not_build(kw: dict[str, str], words: str) -> None:
    """--load-balancer with an IPv6-only lab or the aws-vpc CNI: one clear sentence."""
    with pytest.raises(LabError, match=words):
        LabSpec("x", load_balancer=True, **kw).validate()  # type: ignore[arg-type]


def test_service_record_fields_survive_the_lab_state_json() -> None:
    """The new Service fields round-trip through the lab's JSON state as tuples, and a
    state written before them still loads (empty)."""
    spec = LabSpec("x", nodes=2, pods=3, load_balancer=True)
    svcs = tuple(services(spec, _pods()))
    record = LabRecord(spec, (), (), svcs, 1, 1, (), 0.0, 0.0)
    assert LabRecord.from_json(record.to_json()) == record
    raw = json.loads(record.to_json())
    for s in raw["services"]:
        for key in ("external_ips", "lb_ips", "source_ranges"):
            del s[key]
    raw["spec"].pop("load_balancer")
    old = LabRecord.from_json(json.dumps(raw))
    assert all(s.external_ips == s.lb_ips == s.source_ranges == () for s in old.services)
