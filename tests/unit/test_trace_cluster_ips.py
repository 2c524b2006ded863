"""What a trace says of a packet leaving for a ClusterIP kube-proxy did not translate.

kube-proxy's KUBE-SERVICES in iptables mode, as it writes it: a ClusterIP's rules, an
external IP's, and the NodePorts jump. Only a ClusterIP on a port it does not serve gets
the note; an external IP may be a real host's, and a served port that was never
translated has another cause (the doctor's service-not-dnated)."""

from __future__ import annotations

import pytest

from podpath.netfilter.iptables_save import parse_ruleset
from podpath.trace.cluster_ips import ClusterIps
from podpath.trace.model import Packet

RULES = """*nat
:PREROUTING ACCEPT [0:0]
:KUBE-SERVICES - [0:0]
:KUBE-NODEPORTS - [0:0]
:KUBE-SVC-A - [0:0]
:KUBE-EXT-A - [0:0]
-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-A KUBE-SERVICES -d 10.96.0.10/32 -p udp -m comment --comment "kube-system/kube-dns:dns cluster IP" -m udp --dport 53 -j KUBE-SVC-A
-A KUBE-SERVICES -d 10.96.0.10/32 -p tcp -m comment --comment "kube-system/kube-dns:dns-tcp cluster IP" -m tcp --dport 53 -j KUBE-SVC-A
-A KUBE-SERVICES -d 192.0.2.7/32 -p tcp -m comment --comment "default/web:http external IP" -m tcp --dport 80 -j KUBE-EXT-A
-A KUBE-SERVICES -d fd00:96::10/128 -p tcp -m comment --comment "default/web6:http cluster IP" -m tcp --dport 80 -j KUBE-SVC-A
-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS
COMMIT
"""


@pytest.fixture
def cluster_ips() -> ClusterIps:
    return ClusterIps(parse_ruleset(RULES))


def _to(dst: str, proto: str = "icmp", dport: int | None = None) -> Packet:
    return Packet("10.244.0.3", dst, proto, 40000 if dport else None, dport)


def test_a_ping_to_a_cluster_ip_is_named_with_every_port_it_serves(
    cluster_ips: ClusterIps,
) -> None:
    assert cluster_ips.untranslated(_to("10.96.0.10")) == (
        "10.96.0.10 is the ClusterIP of kube-system/kube-dns:dns, kube-system/kube-dns:dns-tcp, "
        "which kube-proxy translates for 53/TCP, 53/UDP only: nothing answers icmp for the "
        "address itself"
    )


def test_a_port_the_cluster_ip_does_not_serve_is_named(cluster_ips: ClusterIps) -> None:
    said = cluster_ips.untranslated(_to("10.96.0.10", "tcp", 80))
    assert said.endswith("nothing answers tcp/80 for the address itself")
    six = cluster_ips.untranslated(_to("fd00:96:0:0::10", "udp", 80))
    assert six.startswith("fd00:96:0:0::10 is the ClusterIP of default/web6:http, ")


@pytest.mark.parametrize(
    ("dst", "proto", "dport"),
    [
        ("10.96.0.10", "udp", 53),  # served: something else kept it from kube-proxy's rules
        ("192.0.2.7", "icmp", None),  # an external IP: a real host may hold it
        ("10.96.0.11", "icmp", None),  # no Service's address
    ],
)
def test_nothing_is_said_of_other_packets(
    cluster_ips: ClusterIps, dst: str, proto: str, dport: int | None
) -> None:
    assert cluster_ips.untranslated(_to(dst, proto, dport)) == ""


def test_a_ruleset_without_kube_proxy_says_nothing() -> None:
    empty = ClusterIps(parse_ruleset("*nat\n:PREROUTING ACCEPT [0:0]\nCOMMIT\n"))
    assert empty.untranslated(_to("10.96.0.10")) == ""
