"""The packed mappings of `trace --cache`: they answer as the dicts they were made from."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from podpath.netfilter.nft import NftChain, NftElement, NftRule, NftSet
from podpath.snapshot.packed import CorruptCache, FileValue
from podpath.trace import index_cache
from podpath.trace.index_pickle import (
    ChainsView,
    PackedBuckets,
    PackedChains,
    PackedNftSet,
    PackedTable,
    PickledValues,
    RulesView,
    dump,
    load,
)


def _rule(chain: str, position: int) -> NftRule:
    return NftRule("ip", "t", chain, position, f"jump c{position}", ({"jump": {"target": "x"}},))


CHAINS = {("ip", "t", name): NftChain("ip", "t", name, handle=n) for n, name in enumerate("abc")}
RULES = {
    ("ip", "t", "a"): [_rule("a", 1), _rule("a", 2)],
    ("ip", "t", "b"): [_rule("b", 1)],
    ("ip", "t", "orphan"): [_rule("orphan", 1)],  # rules of a chain that was not listed
}  # chain c has no rules


def test_chain_views_answer_as_the_dicts() -> None:
    """chains and rules views of a PackedChains, pickled and read back, equal the dicts."""
    store = load(dump(PackedChains.of(CHAINS, RULES)))
    chains, rules = ChainsView(store), RulesView(store)
    for view, plain in ((chains, CHAINS), (rules, RULES)):
        assert dict(view) == plain and len(view) == len(plain)
        for key in [*CHAINS, *RULES, ("ip", "t", "missing"), ("ip6", "t", "a"), "a"]:
            assert (key in view) == (key in plain)
            assert view.get(key) == plain.get(key)  # type: ignore[call-overload]
    again = load(dump((chains, rules)))
    assert dict(again[0]) == CHAINS and dict(again[1]) == RULES


def test_chains_read_back_from_their_file_are_packed_again_from_one_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A store read back from a cache file (its table left in the file) with one chain
    read, pickled again: every chain as it was, the table's bytes read once."""
    chains = {("ip", "t", f"c{n}"): NftChain("ip", "t", f"c{n}", handle=n) for n in range(3000)}
    path = tmp_path / "cache"
    path.write_bytes(b"".join(index_cache.file_chunks(PackedChains.of(chains, {}))))
    with path.open("rb") as fp:
        store = index_cache.value_in(fp)
    assert isinstance(store, PackedChains)
    (table,) = store._packed.values()
    assert isinstance(table.blob, FileValue)
    assert ChainsView(store)[("ip", "t", "c7")] == chains[("ip", "t", "c7")]
    reads: list[tuple[int, ...]] = []
    real_read = FileValue.read

    def counted(value: FileValue, *span: int) -> bytes:
        reads.append(span)
        return real_read(value, *span)

    monkeypatch.setattr(FileValue, "read", counted)
    again = load(dump(store))
    assert dict(ChainsView(again)) == chains and len(reads) == 1


def test_packed_buckets_answer_as_the_dict() -> None:
    """Every key is found in its bucket; absent keys are absent; iteration sees them all."""
    plain = {(f"10.0.{i // 250}.{i % 250}", "tcp", str(i)): i for i in range(1000)}
    packed = load(dump(PackedBuckets.of(plain)))
    assert len(packed) == 1000 and dict(packed) == plain
    assert all(packed[k] == v for k, v in plain.items())
    assert ("10.9.9.9", "tcp", "1") not in packed and packed.get("x") is None


def test_pickled_values_keep_what_was_set() -> None:
    """A value set on a read-back PickledValues is kept, and packed when pickled again."""
    values = load(dump(PickledValues.of({"a": [1], "b": [2]})))
    values["c"] = [3]
    assert dict(load(dump(values))) == {"a": [1], "b": [2], "c": [3]}


def test_packed_set_equals_the_set() -> None:
    """A packed set has the same flags and elements, and equals the original."""
    elements = (NftElement(("10.0.0.1",), "goto x"),)
    s = NftSet("ip", "t", "m", "map", ("ipv4_addr",), "verdict", ("interval",), elements)
    packed = load(dump(PackedNftSet.of(s)))
    assert "elements" not in vars(packed)
    assert packed.flags == s.flags and packed == s and s == packed
    assert packed.elements == s.elements


def test_damaged_packed_values_are_corrupt_cache() -> None:
    """A packed value that does not unpickle raises CorruptCache, not a KeyError or a crash."""
    store = PackedChains({("ip", "t"): PackedTable.of({"a": b"junk"})}, frozenset(), frozenset())
    with pytest.raises(CorruptCache):
        ChainsView(store)[("ip", "t", "a")]
    with pytest.raises(CorruptCache):
        PickledValues({"a": pickle.dumps(print)})["a"]
    with pytest.raises(CorruptCache):
        list(PackedBuckets((b"junk",), 1))
