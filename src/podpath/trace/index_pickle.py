"""Pickling of trace indexes for `trace --cache DIR`: what may be built, and what stays packed.

A cache file is a pickle, and a pickle names the callables that rebuild it. Only the
classes of `CACHED_MODULES` and a few plain containers may be named here; anything
else makes the read fail (and the CLI parse the snapshot instead).

`PickledValues` keeps each value of a large mapping as its own pickle, unpacked the
first time it is asked for: kube-proxy's nft table at 10k Services has 36k chains of
73k rules and 256 sets, and a trace walks 15-34 chains and looks in a few sets.
Unpickling all of it took 0.6 s; its keys alone take milliseconds.
"""

from __future__ import annotations

import gc
import io
import pickle
import sys
from collections.abc import Iterator, Mapping, MutableMapping
from typing import Any, TypeVar

from podpath.snapshot.packed import LOAD_ERRORS, CorruptCache

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
