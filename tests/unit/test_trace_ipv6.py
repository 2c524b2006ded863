"""IPv6 end to end: the source of the destination's family, NDP, ip6 rules, IPv6 Services, [v6]:port."""

from __future__ import annotations

from routed_factory import GW6, RoutedNode, RoutedPod, build, root_inode

from podpath.snapshot.model import IptablesDump, Route, Rule
from podpath.trace.engine import trace
from podpath.trace.probe import Probe, ProbeError
from podpath.trace.render import render_text

PODS = [
    RoutedPod("a", "10.244.0.5", "fd00:10:244::5"),
    RoutedPod("b", "10.244.0.6", "fd00:10:244::6"),
]


def _node(**kw: object) -> RoutedNode:
    return RoutedNode(address6="fd00:172:18::2", pods=list(PODS), **kw)  # type: ignore[arg-type]


def test_dual_stack_pod_sends_to_ipv6_from_its_ipv6_address() -> None:
    """A dual-stack pod tracing to an IPv6 pod uses its IPv6 address, not its IPv4 one."""
    t = trace([build(_node())], Probe("default/a", "[fd00:10:244::6]:80"))
    (b,) = t.branches
    assert t.probe["src"] == "fd00:10:244::5"
    assert b.verdict == "delivered", b.reason
    assert b.hops[-1].data["address"] == "fd00:10:244::6"


def test_pod_name_with_family_six_picks_the_ipv6_address() -> None:
    """--to ns/pod with family 6 means the pod's IPv6 address."""
    t = trace([build(_node())], Probe("default/a", "default/b:80", family=6))
    assert (t.probe["src"], t.probe["dst"]) == ("fd00:10:244::5", "fd00:10:244::6")


def test_header_prints_ipv6_with_brackets() -> None:
    """The trace header says [fd00::6]:80, never fd00::6:80."""
    text = render_text(trace([build(_node())], Probe("default/a", "[fd00:10:244::6]:80")))
    first = text.splitlines()[0]
    assert "(fd00:10:244::5)" in first and "([fd00:10:244::6]:80)" in first
    assert "fd00:10:244::6:80" not in text


def test_ndp_for_the_link_local_gateway_is_answered_by_the_host_veth() -> None:
    """The pod's IPv6 gateway fe80::ecee:eeff:feee:eeee is the host veth's own address: NDP answers."""
    (b,) = trace([build(_node())], Probe("default/a", "[fd00:10:244::6]:80")).branches
    ndp = next(h for h in b.hops if h.kind == "neighbour")
    assert ndp.data["ip"] == GW6 and ndp.text.startswith("no neighbour entry") and "NDP" in ndp.text


def test_ipv4_only_pod_cannot_reach_an_ipv6_destination() -> None:
    """A pod without an IPv6 address: one clear sentence."""
    node = RoutedNode(pods=[RoutedPod("a", "10.244.0.5")])
    try:
        trace([build(node)], Probe("default/a", "[fd00::9]:80"))
    except ProbeError as exc:
        assert "has no an" not in str(exc) and "IPv6" in str(exc)
    else:
        raise AssertionError("expected a ProbeError")


def test_ip6_rules_choose_the_table() -> None:
    """An IPv6 `to` rule sends traffic through its own table."""
    root = root_inode(0)
    rules = (
        Rule(root, 6, 0, "lookup", 255),
        Rule(root, 6, 100, "lookup", 9, dst="fd00:99::/64"),
        Rule(root, 6, 32766, "lookup", 254),
    )
    extra = (Route(root, 6, 9, "blackhole", "fd00:99::/64"),)
    snap = build(_node(rules=rules, extra_routes=extra))
    (b,) = trace([snap], Probe("node", "[fd00:99::1]:80")).branches
    assert b.verdict == "dropped" and "blackhole" in b.reason
    assert b.hops[0].data["table"] == 9


IP6TABLES = """*nat
:PREROUTING ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:KUBE-SERVICES - [0:0]
:KUBE-SVC-WEB6 - [0:0]
:KUBE-SEP-WEB6 - [0:0]
-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-A OUTPUT -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-A KUBE-SERVICES -d fd00:10:96::64/128 -p tcp -m comment --comment "default/web:http cluster IP" -m tcp --dport 80 -j KUBE-SVC-WEB6
-A KUBE-SVC-WEB6 -m comment --comment "default/web:http -> [fd00:10:244::6]:80" -j KUBE-SEP-WEB6
-A KUBE-SEP-WEB6 -p tcp -m comment --comment "default/web:http" -m tcp -j DNAT --to-destination [fd00:10:244::6]:80
COMMIT
"""


def test_ipv6_service_is_dnatted_by_ip6tables_and_answered_from_the_vip() -> None:
    """An IPv6 ClusterIP found in ip6tables is DNATed to the endpoint; the reply comes from the VIP."""
    from dataclasses import replace

    snap = build(_node())
    snap = replace(snap, iptables=(IptablesDump("nft", "ipv6", ("ip6tables-save",), IP6TABLES),))
    t = trace([snap], Probe("default/a", "default/web:80", family=6), reply=True)
    (b,) = t.branches
    assert t.probe["dst"] == "fd00:10:96::64"
    assert b.verdict == "delivered", b.reason
    assert (b.packet.dst, b.packet.dport) == ("fd00:10:244::6", 80)
    (r,) = b.reply
    assert r.verdict == "delivered", r.reason
    assert (r.packet.src, r.packet.sport, r.packet.dst) == ("fd00:10:96::64", 80, "fd00:10:244::5")
