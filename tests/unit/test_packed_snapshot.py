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
