"""Who takes a frame: a VXLAN device or veth only the frames for its own MAC (ip_rcv
drops PACKET_OTHERHOST), broadcast and multicast ones, or what its bridge forwards; on a
bridge, the namespace behind a port that holds the address ARP asks for."""

from __future__ import annotations

from dataclasses import replace

from trace_factory import NodeSpec, PodSpec, build_node

from podpath.analysis.index import SnapshotIndex
from podpath.snapshot.model import Address, Link, Snapshot, Vxlan
from podpath.trace.engine import _foreign_frame
from podpath.trace.links import MacResolution, resolve_mac

VTEP = Link(
    4026531840, 3, "flannel.1", "vxlan", "b2:cc:9b:b9:b1:05", 1450, "UNKNOWN", vxlan=Vxlan(1, 8472)
)


def _foreign(mac: str, device: Link = VTEP) -> bool:
    return _foreign_frame(device, mac)


def test_a_frame_for_another_mac_is_another_hosts() -> None:
    assert _foreign("02:00:00:00:00:99")
    assert not _foreign("B2:CC:9B:B9:B1:05")  # the device's own, in any case


def test_broadcast_multicast_and_bridged_frames_are_taken() -> None:
    assert not _foreign("ff:ff:ff:ff:ff:ff")
    assert not _foreign("01:00:5e:00:00:01")
    bridged = replace(VTEP, master=7)
    assert not _foreign("02:00:00:00:00:99", bridged)


def test_what_cannot_be_read_is_not_judged() -> None:
    assert not _foreign("not-a-mac")
    assert not _foreign("02:00:00:00:00:99", replace(VTEP, mac=None))


# --- ARP on a bridge whose every port the snapshot holds -------------------------------


def _arp_on_cni0(snapshot: Snapshot, ip: str) -> MacResolution:
    index = SnapshotIndex(snapshot)
    root = index.root_netns
    assert root is not None
    (cni0,) = [lk for lk in root.links if lk.name == "cni0"]
    return resolve_mac(index, root, cni0, ip)


def test_an_address_no_namespace_behind_the_bridge_holds_gets_no_answer() -> None:
    """Every port of cni0 is a veth into a pod the snapshot holds, none holds the address:
    the flooded request reaches them all and nothing answers (it was 'nobody known')."""
    res = _arp_on_cni0(build_node(NodeSpec(pods=[PodSpec("web-0", "10.244.0.2")])), "10.244.0.99")
    assert not res.answered and "gets no answer: nobody: every port of cni0" in res.how, res


def test_a_pod_holding_the_address_on_another_device_may_answer() -> None:
    """A pod that holds the address on lo answers ARP for it on eth0 too (arp_ignore=0):
    not judged as nobody."""
    snap = build_node(NodeSpec(pods=[PodSpec("web-0", "10.244.0.2")]))
    pod_ns = next(ns for ns in snap.netns if ns.inode != snap.root_netns)
    links = tuple(
        replace(lk, addresses=(*lk.addresses, Address(4, "10.244.0.99", 32, "host")))
        if lk.name == "lo"
        else lk
        for lk in pod_ns.links
    )
    netns = tuple(replace(ns, links=links) if ns is pod_ns else ns for ns in snap.netns)
    res = _arp_on_cni0(replace(snap, netns=netns), "10.244.0.99")
    assert res.answered and res.mac is None and "answered by nobody known" in res.how, res
