"""Packed snapshots (`trace --cache`): the same snapshot, its large fields unpickled when read."""

from __future__ import annotations

import dataclasses
import os
import pickle

import pytest
from hypothesis import HealthCheck, given, settings
from test_codec import _whole_snapshots

from podpath.snapshot import codec
from podpath.snapshot.model import NftDump, Snapshot
from podpath.snapshot.packed import CorruptCache, PackedNftDump, PackedSnapshot
from podpath.trace.index_pickle import dump, load


@settings(max_examples=20, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(_whole_snapshots())
def test_packed_snapshot_equals_and_dumps_as_the_original(snapshot: Snapshot) -> None:
    """Packed, pickled and read back, a snapshot equals the original and writes the same JSON."""
    packed = load(dump(PackedSnapshot.of(snapshot)))
    assert isinstance(packed, PackedSnapshot)
    assert packed == snapshot and snapshot == packed
    assert _unhashable(snapshot) or hash(packed) == hash(snapshot)
    assert codec.dumps(packed) == codec.dumps(snapshot)
    assert isinstance(packed.nft, PackedNftDump | None)
    assert dataclasses.replace(packed, duration=1.5) == dataclasses.replace(snapshot, duration=1.5)


def _unhashable(snapshot: Snapshot) -> bool:
    """Snapshots holding dicts (rp_filter, namespaces by type) have no hash at all."""
    try:
        hash(snapshot)
    except TypeError:
        return True
    return False


def test_fields_stay_packed_until_read() -> None:
    """Unpickling a packed snapshot builds no process and no nft text until they are read."""
    snap = codec.load_path(
        os.path.join(os.path.dirname(codec.__file__), "..", "data", "demo-snapshot.json")
    )
    snap = dataclasses.replace(snap, nft=NftDump('{"nftables": []}', 7))
    packed = load(dump(PackedSnapshot.of(snap)))
    assert "processes" not in vars(packed) and "_packed_processes" in vars(packed)
    assert packed.nft is not None and "json_text" not in vars(packed.nft)
    assert packed.processes == snap.processes and "processes" in vars(packed)
    assert packed.nft.json_text == '{"nftables": []}' and packed.nft.generation == 7


def test_damaged_packed_field_is_a_corrupt_cache() -> None:
    """A packed field that does not unpickle, or names other callables, raises CorruptCache when read."""
    snap = codec.load_path(
        os.path.join(os.path.dirname(codec.__file__), "..", "data", "demo-snapshot.json")
    )
    packed = PackedSnapshot.of(snap)
    vars(packed)["_packed_processes"] = b"not a pickle"
    with pytest.raises(CorruptCache):
        _ = packed.processes
    vars(packed)["_packed_namespaces"] = pickle.dumps(os.system)
    with pytest.raises(CorruptCache):
        _ = packed.namespaces


def test_network_namespaces_unpickle_one_by_one_and_answer_as_the_plain_ones() -> None:
    """A cached index's lookups by namespace (links, peers, addresses) unpickle only the
    namespaces asked about, answer as the plain snapshot's do, and share their objects
    with the whole tuple once it is read."""
    from podpath.analysis.index import SnapshotIndex

    snap = codec.load_path(
        os.path.join(os.path.dirname(codec.__file__), "..", "data", "demo-snapshot.json")
    )
    assert len(snap.netns) > 2
    packed = load(dump(PackedSnapshot.of(snap)))
    plain, lazy = SnapshotIndex(snap), SnapshotIndex(packed)
    root = snap.root_netns
    assert lazy.root_netns == plain.root_netns
    unpacked = vars(packed)["_netns_unpacked"].live
    assert len(unpacked) == 1 and "netns" not in vars(packed)
    for ns in snap.netns:
        for link in ns.links:
            assert lazy.link(ns.inode, link.ifindex) == link
            assert lazy.peer(link) == plain.peer(link)
        assert lazy.local_addresses.get(ns.inode) == plain.local_addresses.get(ns.inode)
    assert lazy.link(root, 10**6) is None and lazy.link(1, 1) is None
    assert sorted(lazy.netns_by_inode) == sorted(plain.netns_by_inode)
    assert all(a is b for a, b in zip(packed.netns, lazy.netns_by_inode.values(), strict=True))
    assert packed.netns == snap.netns


def test_the_mac_behind_each_veth_is_known_without_unpickling_a_namespace() -> None:
    """`peer_mac` (asked for every port of a bridge a frame crosses) answers as the peer's
    MAC on a plain and a packed snapshot, and unpickles no namespace to do it."""
    from podpath.analysis.index import SnapshotIndex

    snap = codec.load_path(
        os.path.join(os.path.dirname(codec.__file__), "..", "data", "demo-snapshot.json")
    )
    packed = load(dump(PackedSnapshot.of(snap)))
    plain, lazy = SnapshotIndex(snap), SnapshotIndex(packed)
    veths = [link for ns in snap.netns for link in ns.links if link.peer is not None]
    assert len(veths) > 2
    for link in veths:
        peer = plain.peer(link)
        assert lazy.peer_mac(link) == plain.peer_mac(link) == (peer.mac if peer else None)
    assert "_netns_unpacked" not in vars(packed) and "netns" not in vars(packed)


def test_a_damaged_network_namespace_is_a_corrupt_cache_when_asked_for() -> None:
    """One namespace's pickle damaged: the others still read, that one raises CorruptCache."""
    from podpath.analysis.index import SnapshotIndex

    snap = codec.load_path(
        os.path.join(os.path.dirname(codec.__file__), "..", "data", "demo-snapshot.json")
    )
    packed = PackedSnapshot.of(snap)
    items = list(vars(packed)["_packed_netns_items"])
    bad = next(i for i, (inode, _) in enumerate(items) if inode != snap.root_netns)
    items[bad] = (items[bad][0], b"not a pickle")
    vars(packed)["_packed_netns_items"] = tuple(items)
    index = SnapshotIndex(packed)
    assert index.root_netns == SnapshotIndex(snap).root_netns
    with pytest.raises(CorruptCache):
        index.netns_by_inode[items[bad][0]]
