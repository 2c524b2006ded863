"""A concatenated key with a part a snapshot cannot read is decided by the parts it can."""

from __future__ import annotations

import ipaddress

import pytest

from podpath.trace.nft_values import Unknown, Unread, key_matches

VIP = ipaddress.ip_address("10.96.0.100")
CHECKSUM = Unread("th dport of an icmp packet reads bytes of its own header")


def test_a_part_read_that_differs_decides_no_match() -> None:
    """(VIP, icmp, ?) against kube-proxy's (VIP, tcp, 80): the protocol already differs."""
    assert key_matches((VIP, "icmp", CHECKSUM), ("10.96.0.100", "tcp", "80")) is False


def test_every_part_read_equal_leaves_the_unread_one_to_decide() -> None:
    """(VIP, icmp, ?) against a key with icmp: only the unread part could tell; Unknown, why."""
    with pytest.raises(Unknown, match="th dport of an icmp packet"):
        key_matches((VIP, "icmp", CHECKSUM), ("10.96.0.100", "icmp", "80"))
