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
import pickle
import sys
import zlib
from collections.abc import Iterator, Mapping, MutableMapping
from typing import Any, TypeVar

from podpath.netfilter.nft import NftSet
from podpath.snapshot.packed import LOAD_ERRORS, CorruptCache, Packed, pack_state, same_fields

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


def load(data: bytes | io.BufferedIOBase) -> Any:
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
