"""Values remembered about one object for as long as it lives, found by its identity.

Snapshot objects compare and hash by value: two equal ones may come from two nodes, and
hashing a network namespace or a whole snapshot walks all of it. What is derived from
one particular object (a namespace's lookup tables, the bundles a snapshot's collection
parsed) is kept by the object's id instead, and dropped by a weak reference's callback
when the object is freed, before its id can be reused.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class ByIdentity(Generic[K, V]):
    """A value per live object, by the object's identity."""

    def __init__(self) -> None:
        self._entries: dict[int, tuple[weakref.ref[K], V]] = {}

    def get(self, obj: K) -> V | None:
        """The value remembered for this very object, or None."""
        found = self._entries.get(id(obj))
        return found[1] if found is not None and found[0]() is obj else None

    def put(self, obj: K, value: V) -> None:
        """Remember `value` for `obj` until `obj` is freed."""
        key = id(obj)
        self._entries[key] = (weakref.ref(obj, self._forget(key)), value)

    def __contains__(self, key: object) -> bool:
        """Whether a value is remembered for the object with this id."""
        return key in self._entries

    def _forget(self, key: int) -> Callable[[weakref.ref[K]], None]:
        def forget(_gone: weakref.ref[K]) -> None:
            self._entries.pop(key, None)

        return forget
