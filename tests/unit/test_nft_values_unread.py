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


def test_a_lookup_with_an_unread_part_reads_the_elements_only_when_a_read_part_agrees() -> None:
    """A ping at kube-proxy's service-ips map: no exact key has protocol icmp, so its
    elements (in a cached index, pickled buckets) need not be read; a key that agrees on
    every part read is still looked at (and leaves the lookup Unknown)."""
    from podpath.netfilter.nft import NftElement, NftSet
    from podpath.trace.nft import _index_set, _may_agree

    elements = (
        NftElement(("10.96.0.100", "tcp", "80"), "goto service-a"),
        NftElement(("10.96.0.100", "udp", "53"), "goto service-b"),
        NftElement(("10.96.0.0/16", "tcp", "80"), "goto service-c"),
    )
    index = _index_set(NftSet("ip", "kube-proxy", "service-ips", "map", elements=elements))
    assert index.parts == (
        frozenset({"10.96.0.100"}),
        frozenset({"tcp", "udp"}),
        frozenset({"80", "53"}),
    )
    assert not _may_agree(index.parts, (VIP, "icmp", CHECKSUM))
    assert _may_agree(index.parts, (VIP, "tcp", CHECKSUM))
    assert not _may_agree(index.parts, (ipaddress.ip_address("10.96.0.1"), "tcp", CHECKSUM))
