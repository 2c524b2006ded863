"""The doctor on a dual-stack Service: a path names the family it was judged in."""

from __future__ import annotations

from dataclasses import replace

from routed_factory import RoutedNode, RoutedPod, build
from test_trace_ipv6 import IP6TABLES
from trace_factory import kube_services

from podpath.analysis.index import SnapshotIndex
from podpath.doctor import diagnose
from podpath.doctor.render import trace_command
from podpath.snapshot.model import IptablesDump
from podpath.trace.engine import trace
from podpath.trace.probe import Probe

PODS = [
    RoutedPod("a", "10.244.0.5", "fd00:10:244::5"),
    RoutedPod("b", "10.244.0.6", "fd00:10:244::6"),
]
# The host firewall rejects TCP to pod b's IPv6 address: default/web's IPv6 ClusterIP
# fails from pod a, its IPv4 one works.
IP6_FILTER = """*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A FORWARD -d fd00:10:244::6/128 -p tcp -j REJECT --reject-with icmp6-port-unreachable
COMMIT
"""


def _dual_stack_web() -> SnapshotIndex:
    snap = build(RoutedNode(address6="fd00:172:18::2", pods=list(PODS)))
    dumps = (
        IptablesDump(
            "nft", "ipv4", ("iptables-save",), kube_services("10.96.0.100", 80, ["10.244.0.6"])
        ),
        IptablesDump("nft", "ipv6", ("ip6tables-save",), IP6TABLES + IP6_FILTER),
    )
    return SnapshotIndex(replace(snap, iptables=dumps))


def test_a_failing_ipv6_service_port_is_named_by_its_address() -> None:
    """`trace --to default/web:80` takes the IPv4 ClusterIP, which works: the finding's
    paths to the IPv6 port, and its trace command, name the IPv6 address. Before, both
    said `default/web:80`, and the command showed a trace that was delivered."""
    index = _dual_stack_web()
    assert trace([index.snapshot], Probe("default/a", "default/web:80")).branches[0].verdict == (
        "delivered"
    )
    report = diagnose([index])
    (found,) = [f for f in report.findings if f.check == "netfilter-drop"]
    to_web = [p for p in found.paths if p.source == "default/a" and "96" in p.destination]
    assert [p.destination for p in to_web] == ["[fd00:10:96::64]:80"], found.paths
    command = trace_command(found)
    assert "--to '[" in command, command
    again = trace([index.snapshot], Probe("default/a", to_web[0].destination))
    assert [(b.verdict, b.reason[:18]) for b in again.branches] == [
        ("dropped", "rejected at FORWAR")
    ]


def test_a_node_that_forwards_in_neither_family_has_a_finding_for_each() -> None:
    """Pod to pod on a routed node crosses its stack. With forwarding off in both families
    (on a kernel before 6.17, which has no force_forwarding) IPv6 paths are dropped where
    the node would forward them, under the IPv6 switch; IPv4 ones earlier, at ARP (proxy
    ARP needs forwarding too). Before, IPv6 paths were delivered (a force_forwarding the
    kernel lacks was taken for unknown), and one finding said `net.ipv4.ip_forward=1`."""
    snap = build(RoutedNode(address6="fd00:172:18::2", pods=list(PODS), forwarding=0))
    snap = replace(snap, node=replace(snap.node, ip_forward=0))
    report = diagnose([SnapshotIndex(snap)])
    found = {f.id: f for f in report.findings}
    six = found["ip-forward-off:calico-a:ipv6"]
    assert six.grade == "critical" and "net.ipv6.conf.all.forwarding=1" in six.fix, six
    assert six.paths and all(_six(p.destination) for p in six.paths), six.paths
    assert found["ip-forward-off:calico-a"].grade == "warning"  # the fact alone
    (arp,) = [f for f in report.findings if f.check == "neighbour-unresolved"]
    assert "proxy ARP needs both" in arp.cause
    assert arp.paths and not any(_six(p.destination) for p in arp.paths), arp.paths


def _six(destination: str) -> bool:
    """Whether a path's destination (ADDRESS, ADDRESS:PORT, [ADDRESS]:PORT) is IPv6."""
    return destination.startswith("[") or destination.count(":") > 1
