"""eBPF dataplanes: detected from what they attach, and every hop they decide is named, never traced through."""

from __future__ import annotations

from dataclasses import replace

from routed_factory import ETH0, RoutedNode, RoutedPod, bpf_filter, build, host_index

from podpath.analysis.dataplane import detect
from podpath.analysis.index import SnapshotIndex
from podpath.snapshot.model import BpfProgram, IptablesDump, Link, Xdp
from podpath.trace.engine import trace
from podpath.trace.probe import Probe
from podpath.trace.render import render_text

PODS = [RoutedPod("a", "10.0.1.5", host_veth="lxc80a882bfd44a"), RoutedPod("b", "10.0.1.6")]
CILIUM_HOST = Link(
    4026532000,
    5,
    "cilium_host",
    "veth",
    "ee:33:1a:5c:1d:6c",
    1500,
    "UP",
    ("BROADCAST", "MULTICAST", "NOARP", "UP", "LOWER_UP"),
)


def _cilium(**changes: object) -> RoutedNode:
    node = RoutedNode(
        hostname="cilium-fl-worker",
        pods=list(PODS),
        host_prefix="lxc",
        extra_links=(CILIUM_HOST,),
        tc_filters=(bpf_filter(host_index(0)),),
    )
    return replace(node, **changes)  # type: ignore[arg-type]


def test_cilium_node_is_detected_with_its_evidence() -> None:
    """cilium_host, lxc veths and a bpf_lxc classifier make it Cilium; no KUBE-* rules: kube-proxy replaced."""
    plane = detect(SnapshotIndex(build(_cilium())))
    assert (plane.cni, plane.ebpf, plane.kube_proxy_rules) == ("cilium", True, False)
    assert "links cilium_host" in plane.evidence
    assert "Services are resolved in eBPF" in plane.summary
    (prog,) = plane.programs
    assert (prog.interface, prog.hook) == ("lxc80a882bfd44a", "tc ingress")


def test_kube_proxy_rules_are_noticed_next_to_ebpf() -> None:
    """With KUBE-SERVICES in iptables, the node still runs kube-proxy (no replacement)."""
    snap = build(_cilium())
    dump = IptablesDump("nft", "ipv4", ("iptables-save",), "*nat\n:KUBE-SERVICES - [0:0]\nCOMMIT\n")
    plane = detect(SnapshotIndex(replace(snap, iptables=(dump,))))
    assert plane.ebpf and plane.kube_proxy_rules
    assert "Services are resolved in eBPF" not in plane.summary


def test_packet_from_a_cilium_pod_stops_at_the_lxc_classifier() -> None:
    """The pod's packet meets bpf_lxc's from-container at tc ingress of its lxc veth: named, uncertain."""
    t = trace([build(_cilium())], Probe("default/a", "10.0.1.6:80"))
    (b,) = t.branches
    assert b.verdict == "uncertain" and b.outcome is None
    hop = b.hops[-1]
    assert hop.kind == "ebpf"
    assert (hop.data["dev"], hop.data["hook"]) == ("lxc80a882bfd44a", "tc ingress")
    assert (hop.data["program_id"], hop.data["program_name"]) == (2404, "cil_from_contai")
    assert "bpf_lxc.o:[from-container]" in hop.text and "cannot run eBPF" in hop.text
    assert not any(h.kind in ("netfilter", "nat") for h in b.hops)


def test_service_address_on_a_kube_proxy_free_node_is_flagged_before_any_packet() -> None:
    """A ClusterIP on a node without kube-proxy rules: socket-level LB is named as unknowable."""
    t = trace([build(_cilium())], Probe("default/a", "10.96.0.10:53", "udp"))
    (b,) = t.branches
    assert b.verdict == "uncertain"
    assert any("socket-level load balancing" in u for u in b.uncertain)


def test_egress_classifier_stops_the_packet_leaving() -> None:
    """A packet routed out of a device with a tc egress program is decided there."""
    node = _cilium(tc_filters=(bpf_filter(ETH0, "egress"),))
    (b,) = trace([build(node)], Probe("node", "198.51.100.7:80")).branches
    assert b.hops[-1].kind == "ebpf" and b.hops[-1].data["hook"] == "tc egress"


def test_xdp_program_on_the_receiving_device_is_named() -> None:
    """Arriving on a device with XDP: the XDP program decides first."""
    xdp = Xdp("drv", BpfProgram(7, "cil_xdp_entry", "0011223344556677", None, "xdp"))
    b_node = RoutedNode(
        number=1,
        hostname="b",
        address="192.168.0.3",
        xdp_on_eth0=xdp,
        pods=[RoutedPod("c", "10.0.2.5")],
    )
    a_node = RoutedNode(
        pods=[RoutedPod("x", "10.0.1.9")], remote_routes=(("10.0.2.0/24", "192.168.0.3"),)
    )
    (b,) = trace([build(a_node), build(b_node)], Probe("default/x", "10.0.2.5:80")).branches
    hop = b.hops[-1]
    assert hop.kind == "ebpf" and hop.node == "b" and hop.data["hook"] == "xdp (drv)"
    assert hop.data["program_name"] == "cil_xdp_entry"


def test_ebpf_hop_renders_as_text_and_json_kind() -> None:
    """The text output shows an `ebpf` hop line naming the program."""
    t = trace([build(_cilium())], Probe("default/a", "10.0.1.6:80"))
    text = render_text(t)
    assert "ebpf       tc ingress of lxc80a882bfd44a: eBPF program cil_from_contai" in text


def test_ebpf_hop_is_placed_on_the_device_in_the_picture() -> None:
    """trace --svg: the ebpf hop lands on the lxc veth it is attached to, captioned by program."""
    from podpath.draw.build import build_map
    from podpath.draw.path import trace_path

    snap = build(_cilium())
    (branch,) = trace([snap], Probe("default/a", "10.0.1.6:80")).branches
    path = trace_path(build_map([snap]), branch)
    last = path.steps[-1]
    # Elements are named by netns and ifindex: the lxc veth is ifindex 10 of the root.
    assert last.kind == "ebpf" and last.element == f"n0.link.{snap.root_netns}.{host_index(0)}"
    assert last.text == "tc ingress of lxc80a882bfd44a: cil_from_contai decides"
    assert not path.unplaced
