"""Snapshots whose large fields stay pickled until they are read (`trace --cache DIR`).

A trace reads a snapshot's pods and network namespaces, not its process table, its
namespace list, its conntrack listing or the text of its nft ruleset (the cached
trace index holds that ruleset's chains already). Unpickling those anyway was a
third of a cached trace at 10k Services: the nft text alone is 30 MB.

`PackedSnapshot` and `PackedNftDump` are a `Snapshot` and an `NftDump` with the same
fields, equal to the plain objects with the same values; a packed field is unpickled
the first time it is read, by whoever reads it, and may build only the model's classes.
"""

from __future__ import annotations

import io
import pickle
import sys
from collections.abc import Callable
from typing import Any

from podpath.snapshot.model import NftDump, Snapshot

_MODEL = "podpath.snapshot.model"
_BUILTINS = {("builtins", "set"), ("builtins", "frozenset")}


class _Unpickler(pickle.Unpickler):
    """Builds only the snapshot model's classes (a packed field holds nothing else)."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _BUILTINS:
            return super().find_class(module, name)
        found = getattr(sys.modules.get(module), name, None) if module == _MODEL else None
        if isinstance(found, type) and found.__module__ == _MODEL:
            return found
        raise pickle.UnpicklingError(f"{module}.{name} is not allowed in a packed snapshot field")


class CorruptCache(Exception):
    """A cached value that does not unpickle, found after the cache was read."""


# What a damaged or foreign pickle raises while it is read.
LOAD_ERRORS = (
    pickle.UnpicklingError,
    EOFError,
    ValueError,
    TypeError,
    AttributeError,
    KeyError,
    IndexError,
    RecursionError,
)


def _load(data: bytes) -> Any:
    try:
        return _Unpickler(io.BytesIO(data)).load()
    except LOAD_ERRORS as exc:
        raise CorruptCache(f"a cached snapshot field is damaged ({exc})") from None


class Packed:
    """A field kept as pickle bytes in the instance's dict until it is first read.

    `loader` unpickles it (by default allowing the snapshot model's classes only) and
    raises CorruptCache for a damaged value.
    """

    def __init__(self, loader: Callable[[bytes], Any] | None = None) -> None:
        self.loader = loader or _load

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name
        self.key = f"_packed_{name}"

    def __get__(self, obj: object, objtype: type | None = None) -> Any:
        if obj is None:
            return self
        state = obj.__dict__
        if self.name not in state:
            state[self.name] = self.loader(state[self.key])
            del state[self.key]
        return state[self.name]

    def __set__(self, obj: object, value: Any) -> None:
        obj.__dict__[self.name] = value  # a frozen dataclass sets its fields through here


def pack_state(obj: object, fields: tuple[str, ...]) -> dict[str, Any]:
    """The instance dict of a packed copy of `obj`: `fields` as pickle bytes."""
    state = dict(vars(obj))
    for name in fields:
        if name in state:
            state[f"_packed_{name}"] = pickle.dumps(state.pop(name), protocol=5)
    return state


def same_fields(a: object, b: object) -> bool:
    """Field-by-field equality of two snapshots or dumps (packed or not)."""
    names = a.__dataclass_fields__  # type: ignore[attr-defined]
    return all(getattr(a, name) == getattr(b, name) for name in names)


class PackedNftDump(NftDump):
    """An NftDump whose JSON text is unpickled when first read."""

    json_text = Packed()

    @classmethod
    def of(cls, dump: NftDump) -> PackedNftDump:
        """A packed copy of `dump`."""
        packed = cls.__new__(cls)
        packed.__dict__.update(pack_state(dump, ("json_text",)))
        return packed

    def __eq__(self, other: object) -> bool:
        return isinstance(other, NftDump) and same_fields(self, other)

    __hash__ = NftDump.__hash__


# Snapshot fields a trace does not read (nft's text: the cached index has its chains).
_SNAPSHOT_FIELDS = ("processes", "namespaces", "conntrack")


class PackedSnapshot(Snapshot):
    """A Snapshot whose process table, namespace list and conntrack text are unpickled when read."""

    processes = Packed()
    namespaces = Packed()
    conntrack = Packed()

    @classmethod
    def of(cls, snapshot: Snapshot) -> PackedSnapshot:
        """A packed copy of `snapshot` (its nft dump packed too)."""
        packed = cls.__new__(cls)
        state = pack_state(snapshot, _SNAPSHOT_FIELDS)
        if snapshot.nft is not None:
            state["nft"] = PackedNftDump.of(snapshot.nft)
        packed.__dict__.update(state)
        return packed

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Snapshot) and same_fields(self, other)

    __hash__ = Snapshot.__hash__
