"""The same Services traced in kube-proxy's iptables and nftables modes give the same paths.

Rules come from the lab's renderers (kube-proxy's exact shapes); the nftables table is
loaded into the real nft and read back with `nft -j`, as a node's snapshot holds it.
"""

from __future__ import annotations

import nft_real
import pytest
from trace_factory import NodeSpec, PodSpec, build_node

from podpath.lab.kubeproxy import restore_input
from podpath.lab.kubeproxy_nft import affinity_set, render
from podpath.lab.plan import _service
from podpath.snapshot.model import Snapshot
from podpath.trace.engine import trace
from podpath.trace.model import Branch
from podpath.trace.probe import Probe

NODE_IP = "192.168.0.2"
PODS = [PodSpec("client", "10.244.0.5"), PodSpec("ep1", "10.244.0.6"), PodSpec("ep2", "10.244.0.7")]
EPS = (("10.244.0.6", 80), ("10.244.0.7", 80))
WEB = _service("default", "web", "http", "TCP", "10.96.0.100", 80, 30080, EPS)
STICKY = _service("default", "web-sticky", "http", "TCP", "10.96.0.101", 80, None, EPS, 10800)
NOEP = _service("default", "noep", "http", "TCP", "10.96.0.102", 80, None, ())
SERVICES = [WEB, STICKY, NOEP]


def _node(mode: str, extra_nft: str = "") -> Snapshot:
    if mode == "iptables":
        return build_node(NodeSpec(pods=PODS, iptables=restore_input(SERVICES, jumps=True)))
    loaded = nft_real.load(render(SERVICES, (NODE_IP,)) + extra_nft)
    return build_node(NodeSpec(pods=PODS, nft_json=loaded.json))


@pytest.fixture(params=["iptables", "nftables"])
def mode(request: pytest.FixtureRequest) -> str:
    """kube-proxy's mode."""
    return str(request.param)


def _snat(branch: Branch) -> list[str]:
    return [str(h.data["to"]) for h in branch.hops if h.kind == "nat" and h.data["type"] == "SNAT"]


def test_cluster_ip_splits_evenly_without_snat(mode: str) -> None:
    """A pod to web's ClusterIP: one branch per endpoint, 1/2 each, delivered, source kept."""
    result = trace([_node(mode)], Probe("default/client", "default/web:http"))
    got = {(b.packet.dst, b.packet.dport): b.probability for b in result.branches}
    assert got == pytest.approx({ep: 0.5 for ep in EPS})
    for b in result.branches:
        assert b.verdict == "delivered" and not b.uncertain, b.reason
        assert _snat(b) == [] and b.packet.src == "10.244.0.5"


def test_service_without_endpoints_is_rejected_by_name(mode: str) -> None:
    """`--to default/noep:http` resolves the Service without endpoints; the kernel rejects it."""
    (branch,) = trace([_node(mode)], Probe("default/client", "default/noep:http")).branches
    assert branch.verdict == "dropped" and "reject" in branch.reason.lower(), branch.reason
    assert branch.packet.dst == NOEP.cluster_ip


def test_hairpin_is_masqueraded_only_toward_itself(mode: str) -> None:
    """An endpoint calling its own Service is SNATed when it lands on itself, not elsewhere."""
    result = trace([_node(mode)], Probe("default/ep1", "default/web:http"))
    by_dst = {b.packet.dst: b for b in result.branches}
    assert _snat(by_dst["10.244.0.6"]) and by_dst["10.244.0.6"].verdict == "delivered"
    assert _snat(by_dst["10.244.0.7"]) == []


def test_node_port_from_the_node_is_masqueraded(mode: str) -> None:
    """The node to its own NodePort: DNAT to an endpoint, and SNAT (external traffic is masqueraded)."""
    result = trace([_node(mode)], Probe("node-a", f"{NODE_IP}:30080"))
    assert {(b.packet.dst, b.packet.dport) for b in result.branches} == set(EPS)
    for b in result.branches:
        assert b.verdict == "delivered", b.reason
        assert _snat(b), [h.text for h in b.hops]


def test_nft_affinity_pin_is_followed() -> None:
    """A client in web-sticky's affinity set goes to its pinned endpoint, and the hop says so."""
    pinned = affinity_set(STICKY, *EPS[1])
    extra = f"add element ip kube-proxy {pinned} {{ 10.244.0.5 timeout 3h }}\n"
    (branch,) = trace(
        [_node("nftables", extra)], Probe("default/client", "default/web-sticky:http")
    ).branches
    assert (branch.packet.dst, branch.probability, branch.verdict) == (EPS[1][0], 1.0, "delivered")
    notes = [d for h in branch.hops for d in h.details]
    assert any("10.244.0.5 is in set " + pinned in n and "pinned" in n for n in notes), notes


def test_nft_affinity_without_pin_spreads_and_records() -> None:
    """No pin yet: the Service spreads as usual, and the endpoint chain says it records the client."""
    result = trace([_node("nftables")], Probe("default/client", "default/web-sticky:http"))
    assert {b.packet.dst for b in result.branches} == {ip for ip, _ in EPS}
    for b in result.branches:
        notes = [d for h in b.hops for d in h.details]
        assert any("records 10.244.0.5 in set affinity-" in n for n in notes), notes


def test_ipv6_services_are_kube_proxys_ip6_table_read_back() -> None:
    """IPv6 Services render to `table ip6 kube-proxy` (what kube-proxy's IPv6 proxier writes),
    which the real nft loads and podpath reads back: VIPs, endpoints, affinity, no endpoints."""
    from podpath.netfilter.kube_proxy_nft import nft_services
    from podpath.netfilter.nft import parse_nft_json

    eps6 = (("fd00:10:244::6", 80), ("fd00:10:244::7", 80))
    web6 = _service("default", "web", "http", "TCP", "fd00:10:96::64", 80, 30080, eps6)
    sticky6 = _service(
        "default", "web-sticky", "http", "TCP", "fd00:10:96::65", 80, None, eps6, 10800
    )
    noep6 = _service("default", "noep", "http", "TCP", "fd00:10:96::66", 80, None, ())
    both = [*SERVICES, web6, sticky6, noep6]
    text = render(both, (NODE_IP, "fd00:172:18::2"), 4) + render(
        both, (NODE_IP, "fd00:172:18::2"), 6
    )
    assert "table ip6 kube-proxy" in text and "endpoint-" in text
    services = nft_services(parse_nft_json(nft_real.load(text).json))
    by_vip = {s.cluster_ip: s for s in services}
    assert set(by_vip) == {s.cluster_ip for s in both}
    for svc in (web6, sticky6):
        got = by_vip[svc.cluster_ip]
        assert {(e.ip, e.port) for e in got.endpoints} == set(eps6)
        assert all(":" not in e.sep_chain for e in got.endpoints)  # dots, as kube-proxy writes
    assert by_vip[web6.cluster_ip].node_port == 30080
    assert by_vip[sticky6.cluster_ip].affinity_timeout == 10800
    assert by_vip[noep6.cluster_ip].endpoints == ()


def test_node_to_cluster_ip_is_masqueraded_by_kube_proxys_port_matching_rule(mode: str) -> None:
    """The node (not a pod: off the cluster CIDR) to web's ClusterIP is SNATed; in nftables
    mode by the rule kube-proxy's nftables proxier writes, which matches the Service's
    protocol and port (kubernetes/kubernetes pkg/proxy/nftables/proxier.go, the
    localDetector.IsImplemented() branch): the trace shows it and reads it back."""
    result = trace([_node(mode)], Probe("node-a", "default/web:http"))
    assert {(b.packet.dst, b.packet.dport) for b in result.branches} == set(EPS)
    masq = "ip daddr 10.96.0.100 tcp dport 80 ip saddr != 10.244.0.0/16 jump mark-for-masquerade"
    for b in result.branches:
        assert b.verdict == "delivered" and _snat(b), b.reason
        rules = [h.data.get("rule") for h in b.hops if h.kind == "netfilter"]
        assert mode == "iptables" or masq in rules, rules


def test_nft_cluster_ip_masquerade_rule_is_kube_proxys() -> None:
    """The lab writes the ClusterIP's off-cluster masquerade as kube-proxy's proxier_test.go
    expects it (`ip daddr 172.30.0.41 tcp dport 80 ip saddr != 10.0.0.0/8 jump
    mark-for-masquerade`), the cluster CIDR being the lab's own."""
    svc1 = _service("ns1", "svc1", "p80", "TCP", "172.30.0.41", 80, None, (("10.180.0.1", 80),))
    lines = render([svc1], (NODE_IP,)).splitlines()
    chain = "service-ULMVA6XW-ns1/svc1/tcp/p80"
    expected = (
        f"add rule ip kube-proxy {chain} ip daddr 172.30.0.41 tcp dport 80 "
        "ip saddr != 10.244.0.0/16 jump mark-for-masquerade"
    )
    assert expected in lines, [x for x in lines if chain in x]


def test_ping_between_pods_is_certain_in_both_modes(mode: str) -> None:
    """An ICMP echo pod -> pod meets kube-proxy's `ip daddr . meta l4proto . th dport` maps in
    nftables mode; th dport of ICMP is its checksum, but the protocol part already differs
    from every element's (tcp, udp): no element matches, and the trace is certain."""
    (branch,) = trace([_node(mode)], Probe("default/client", "10.244.0.6", proto="icmp")).branches
    assert branch.verdict == "delivered" and not branch.uncertain, branch.uncertain


def test_ping_to_a_cluster_ip_is_rejected_for_certain(mode: str) -> None:
    """ICMP to web's ClusterIP: no Service port matches, so kube-proxy does not DNAT it; in
    nftables mode cluster-ips-check rejects it (as the kernel does: ICMP port unreachable
    from the node), decided without an unread checksum standing in the way."""
    (branch,) = trace([_node(mode)], Probe("default/client", "default/web", proto="icmp")).branches
    assert not branch.uncertain, branch.uncertain
    if mode == "nftables":
        assert branch.verdict == "dropped" and "cluster-ips-check" in branch.reason, branch.reason
