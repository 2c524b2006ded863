"""A VXLAN device takes up only the frames for its own MAC (ip_rcv drops
PACKET_OTHERHOST), broadcast and multicast ones, or what its bridge forwards."""

from __future__ import annotations

from dataclasses import replace

from podpath.snapshot.model import Link, Vxlan
from podpath.trace.engine import _foreign_frame, _Inner

VTEP = Link(
    4026531840, 3, "flannel.1", "vxlan", "b2:cc:9b:b9:b1:05", 1450, "UNKNOWN", vxlan=Vxlan(1, 8472)
)


def _foreign(mac: str, device: Link = VTEP) -> bool:
    return _foreign_frame(device, _Inner(mac, "10.244.1.0", "flannel.1"))


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
