"""Pickling of trace indexes for `trace --cache DIR`: what may be built, and what stays packed.

A cache file is a pickle, and a pickle names the callables that rebuild it. Only the
classes of `CACHED_MODULES` and a few plain containers may be named here; anything
else makes the read fail (and the CLI parse the snapshot instead).

`PickledValues` keeps each value of a large mapping as its own pickle, unpacked the
first time it is asked for: kube-proxy's nft table at 10k Services has 36k chains of
73k rules and 256 sets, and a trace walks 15-34 chains and looks in a few sets.
Unpickling all of it took 0.6 s; its keys alone take milliseconds. `PackedBuckets`
does the same for a mapping with many small values that is asked for one key (a map's
10k elements, 10k Service names), and `PackedNftSet` for a set's elements: a trace
reads the flags of kube-proxy's 10k-element maps and looks one key up in them.
"""

from __future__ import annotations

import gc
import io
import itertools
import pickle
import sys
import zlib
from collections.abc import Iterator, Mapping, MutableMapping
from typing import Any, BinaryIO, TypeVar

from podpath.netfilter.nft import NftChain, NftRule, NftSet
from podpath.snapshot.packed import (
    LOAD_ERRORS,
    CorruptCache,
    FileValue,
    Packed,
    beside_the_pickle_value,
    pack_state,
    same_fields,
    unpacked_bytes,
    values_set_aside,
)

# The modules whose objects a cached index holds; their source is part of the cache's
# key (podpath.trace.index_cache), and only their classes may be built from it.
CACHED_MODULES = (
    "podpath.snapshot.model",
    "podpath.snapshot.packed",
    "podpath.analysis.index",
    "podpath.netfilter.iptables_save",
    "podpath.netfilter.model",
    "podpath.netfilter.kube_proxy",
    "podpath.netfilter.nft",
    "podpath.netfilter.nft_syntax",
    "podpath.trace.nft",
    "podpath.trace.index_pickle",
    "podpath.conntrack",
)
# Plain containers pickle records by name (everything else is a CACHED_MODULES class).
_BUILTINS = {("builtins", "set"), ("builtins", "frozenset"), ("collections", "defaultdict")}
_K = TypeVar("_K")
_V = TypeVar("_V")


class _Unpickler(pickle.Unpickler):
    """Builds only CACHED_MODULES' classes and plain containers, nothing callable else."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _BUILTINS:
            return super().find_class(module, name)
        if module in CACHED_MODULES:
            found = getattr(sys.modules.get(module), name, None)
            if isinstance(found, type) and found.__module__ == module:
                return found
        raise pickle.UnpicklingError(f"{module}.{name} is not allowed in an index cache")


def load(data: bytes | BinaryIO) -> Any:
    """Unpickle with the restricted unpickler, the cyclic GC paused; raises LOAD_ERRORS."""
    fp = io.BytesIO(data) if isinstance(data, bytes) else data
    collecting = gc.isenabled()
    # The unpickler makes ~10^5 objects at once; the cyclic GC's passes over them
    # tripled the read (0.07 s against 0.23 s for the iptables index at 10k Services).
    gc.disable()
    try:
        return _Unpickler(fp).load()
    finally:
        if collecting:
            gc.enable()


def dump(value: object) -> bytes:
    """A value pickled for `load`."""
    return pickle.dumps(value, protocol=5)


def dump_beside(value: object) -> tuple[bytes, list[bytes]]:
    """A value pickled for `load`, and the large packed values it set aside
    (podpath.snapshot.packed.beside_the_pickle), to be written after it in its file."""
    with values_set_aside() as aside:
        return pickle.dumps(value, protocol=5), aside


class PickledValues(MutableMapping[_K, _V]):
    """A mapping whose values are unpickled one by one, on first access.

    The values are taken as read-only: one is packed again only when it was set here.
    A value whose pickle turns out damaged raises `CorruptCache` (a KeyError would
    read as absent).
    """

    def __init__(self, packed: dict[_K, bytes | None]) -> None:
        self._packed = packed  # None: set here, not packed yet
        self._live: dict[_K, _V] = {}

    @classmethod
    def of(cls, values: Mapping[_K, _V]) -> PickledValues[_K, _V]:
        """Each value of `values` packed on its own."""
        if isinstance(values, PickledValues):
            return values
        return cls({key: dump(value) for key, value in values.items()})

    def __getitem__(self, key: _K) -> _V:
        if key in self._live:
            return self._live[key]
        packed = self._packed[key]  # KeyError: absent, as in a dict
        assert packed is not None  # a value set here is live
        try:
            found: _V = load(packed)
        except LOAD_ERRORS as exc:
            raise CorruptCache(f"a cached index is damaged ({exc})") from None
        self._live[key] = found
        return found

    def __setitem__(self, key: _K, value: _V) -> None:
        self._packed[key] = None
        self._live[key] = value

    def __delitem__(self, key: _K) -> None:
        del self._packed[key]
        self._live.pop(key, None)

    def __contains__(self, key: object) -> bool:
        return key in self._packed

    def __iter__(self) -> Iterator[_K]:
        return iter(self._packed)

    def __len__(self) -> int:
        return len(self._packed)

    def __reduce__(self) -> tuple[object, tuple[object, ...]]:
        packed = {
            key: dump(self._live[key]) if value is None else value
            for key, value in self._packed.items()
        }
        return (PickledValues, (packed,))


# Keys per bucket of a PackedBuckets: a lookup unpickles one bucket (~64 values).
_BUCKET = 64


def _bucket_of(key: object, buckets: int) -> int:
    """A key's bucket, the same in every process (hash() of str is salted per process)."""
    return zlib.crc32(repr(key).encode("utf-8", "surrogatepass")) % buckets


class PackedBuckets(Mapping[_K, _V]):
    """A read-only mapping kept as pickled buckets of keys; a lookup unpacks one bucket.

    Keys are plain values (str, int, tuples of them) whose repr is stable.
    """

    def __init__(self, packed: tuple[bytes, ...], size: int) -> None:
        self._packed = packed
        self._size = size
        self._live: dict[int, dict[_K, _V]] = {}

    @classmethod
    def of(cls, values: Mapping[_K, _V]) -> PackedBuckets[_K, _V]:
        """`values` packed in buckets."""
        count = max(1, len(values) // _BUCKET)
        buckets: list[dict[_K, _V]] = [{} for _ in range(count)]
        for key, value in values.items():
            buckets[_bucket_of(key, count)][key] = value
        return cls(tuple(dump(b) for b in buckets), len(values))

    def _bucket(self, number: int) -> dict[_K, _V]:
        found = self._live.get(number)
        if found is None:
            try:
                found = load(self._packed[number])
            except LOAD_ERRORS as exc:
                raise CorruptCache(f"a cached index is damaged ({exc})") from None
            if not isinstance(found, dict):
                raise CorruptCache("a cached index is damaged (a bucket is not a mapping)")
            self._live[number] = found
        return found

    def __getitem__(self, key: _K) -> _V:
        return self._bucket(_bucket_of(key, len(self._packed)))[key]

    def __contains__(self, key: object) -> bool:
        return key in self._bucket(_bucket_of(key, len(self._packed)))

    def __iter__(self) -> Iterator[_K]:
        for number in range(len(self._packed)):
            yield from self._bucket(number)

    def __len__(self) -> int:
        return self._size

    def __reduce__(self) -> tuple[object, tuple[object, ...]]:
        return (PackedBuckets, (self._packed, self._size))


def _load_packed(data: bytes) -> Any:
    try:
        return load(data)
    except LOAD_ERRORS as exc:
        raise CorruptCache(f"a cached index is damaged ({exc})") from None


class PackedNftSet(NftSet):
    """An NftSet whose elements are unpickled when first read (its flags and types are not packed)."""

    elements = Packed(_load_packed)

    @classmethod
    def of(cls, s: NftSet) -> PackedNftSet:
        """A packed copy of `s`."""
        packed = cls.__new__(cls)
        packed.__dict__.update(pack_state(s, ("elements",)))
        return packed

    def __eq__(self, other: object) -> bool:
        return isinstance(other, NftSet) and same_fields(self, other)

    __hash__ = NftSet.__hash__


_ChainKey = tuple[str, str, str]  # (family, table, chain)


class PackedTable:
    """One nft table's chains in a PackedChains: each chain's pickle, one after another
    in one byte string, found by the chain's name and where each pickle ends."""

    def __init__(
        self, names: tuple[str, ...], ends: tuple[int, ...], blob: bytes | FileValue
    ) -> None:
        if len(ends) != len(names):
            raise CorruptCache("a cached index is damaged (a table's chains are not all there)")
        self.names = names
        self.ends = ends
        # Usually left in the cache file (beside_the_pickle): a chain asked for is the
        # only part of it ever read.
        self.blob = blob
        self.position = {name: i for i, name in enumerate(names)}

    @classmethod
    def of(cls, pickles: Mapping[str, bytes]) -> PackedTable:
        """A table of these chains' pickles, by name."""
        ends = list(itertools.accumulate(len(p) for p in pickles.values()))
        return cls(tuple(pickles), tuple(ends), b"".join(pickles.values()))

    def pickle_of(self, name: str) -> bytes | None:
        """The pickle of the chain with this name, if listed."""
        i = self.position.get(name)
        if i is None:
            return None
        start, end = self.ends[i - 1] if i else 0, self.ends[i]
        if isinstance(self.blob, FileValue):
            return self.blob.read(start, end)
        return self.blob[start:end]

    def pickles(self) -> Iterator[tuple[str, bytes]]:
        """Each chain's name and pickle, in order, the blob read once (not a read per
        chain from its file: 36k at 10k Services)."""
        blob = unpacked_bytes(self.blob)
        start = 0
        for name, end in zip(self.names, self.ends, strict=True):
            yield name, blob[start:end]
            start = end

    def __reduce__(self) -> tuple[object, tuple[object, ...]]:
        return (PackedTable, (self.names, self.ends, beside_the_pickle_value(self.blob)))


class PackedChains:
    """An nft ruleset's chains and their rules: one pickle per chain, found by table and name.

    The walk asks `chains` and `rules` (the two views) for 15-34 of kube-proxy's 36k
    chains. Kept per (family, table) as one byte string of the chains' pickles and their
    names (`PackedTable`), the store unpickles 36k strings, not 36k byte strings (32 MB
    at 10k Services) nor 72k tuples of them.
    """

    def __init__(
        self,
        packed: dict[tuple[str, str], PackedTable],
        no_chain: frozenset[_ChainKey],
        no_rules: frozenset[_ChainKey],
    ) -> None:
        self._packed = packed
        self.no_chain = no_chain  # rules whose chain was not listed
        self.no_rules = no_rules  # chains without rules
        self._live: dict[_ChainKey, tuple[NftChain | None, list[NftRule]]] = {}

    @classmethod
    def of(
        cls, chains: Mapping[_ChainKey, NftChain], rules: Mapping[_ChainKey, list[NftRule]]
    ) -> PackedChains:
        """Each chain with its rules packed on its own."""
        pickles: dict[tuple[str, str], dict[str, bytes]] = {}
        for key in dict.fromkeys([*chains, *rules]):
            family, table, name = key
            pair = (chains.get(key), list(rules.get(key, ())))
            pickles.setdefault((family, table), {})[name] = dump(pair)
        no_chain = frozenset(k for k in rules if k not in chains)
        no_rules = frozenset(k for k in chains if not rules.get(k))
        return cls({t: PackedTable.of(p) for t, p in pickles.items()}, no_chain, no_rules)

    def has(self, key: _ChainKey) -> bool:
        """True when the chain or rules of it were listed."""
        family, table, name = key
        found = self._packed.get((family, table))
        return found is not None and name in found.position

    def get(self, key: _ChainKey) -> tuple[NftChain | None, list[NftRule]]:
        """A listed chain and its rules (KeyError when not listed)."""
        found = self._live.get(key)
        if found is None:
            family, table, name = key
            packed_table = self._packed.get((family, table))
            packed = None if packed_table is None else packed_table.pickle_of(name)
            if packed is None:
                raise KeyError(key)
            found = _load_packed(packed)
            if not isinstance(found, tuple) or len(found) != 2:
                raise CorruptCache("a cached index is damaged (a chain is not a pair)")
            self._live[key] = found
        return found

    def keys(self) -> Iterator[_ChainKey]:
        """Every listed chain's key."""
        for (family, table), packed_table in self._packed.items():
            for name in packed_table.names:
                yield (family, table, name)

    def __len__(self) -> int:
        return sum(len(t.names) for t in self._packed.values())

    def __reduce__(self) -> tuple[object, tuple[object, ...]]:
        if not self._live:
            return (PackedChains, (self._packed, self.no_chain, self.no_rules))
        # A chain read here is packed again from what was read (as PickledValues does).
        packed = {}
        for (family, table), t in self._packed.items():
            pickles = {}
            for name, pickled in t.pickles():
                live = self._live.get((family, table, name))
                pickles[name] = pickled if live is None else dump(live)
            packed[(family, table)] = PackedTable.of(pickles)
        return (PackedChains, (packed, self.no_chain, self.no_rules))


class _StoreView:
    """What the two views of a PackedChains share: its keys, less those they leave out."""

    def __init__(self, store: PackedChains) -> None:
        self.store = store

    def _left_out(self) -> frozenset[_ChainKey]:
        raise NotImplementedError

    def __contains__(self, key: object) -> bool:
        return (
            isinstance(key, tuple)
            and len(key) == 3
            and self.store.has(key)
            and key not in self._left_out()
        )

    def __iter__(self) -> Iterator[_ChainKey]:
        left_out = self._left_out()
        return (k for k in self.store.keys() if k not in left_out)

    def __len__(self) -> int:
        return len(self.store) - len(self._left_out())

    def __reduce__(self) -> tuple[object, tuple[object, ...]]:
        return (self.__class__, (self.store,))


class ChainsView(_StoreView, Mapping[_ChainKey, NftChain]):
    """The chains of a PackedChains, as NftIndex.chains."""

    def _left_out(self) -> frozenset[_ChainKey]:
        return self.store.no_chain

    def __getitem__(self, key: _ChainKey) -> NftChain:
        if key not in self:
            raise KeyError(key)
        chain = self.store.get(key)[0]
        assert chain is not None  # keys of unlisted chains are not in the view
        return chain


class RulesView(_StoreView, Mapping[_ChainKey, list[NftRule]]):
    """The rules by chain of a PackedChains, as NftIndex.rules (chains with rules only)."""

    def _left_out(self) -> frozenset[_ChainKey]:
        return self.store.no_rules

    def __getitem__(self, key: _ChainKey) -> list[NftRule]:
        if key not in self:
            raise KeyError(key)
        return self.store.get(key)[1]
