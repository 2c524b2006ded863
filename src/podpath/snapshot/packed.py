"""Snapshots whose large fields stay pickled until they are read (`trace --cache DIR`).

A trace reads a snapshot's pods and a few of its network namespaces (the node's, the
source's, the destinations'), not its process table, its namespace list, its conntrack
listing or the text of its nft ruleset (the cached trace index holds that ruleset's
chains already). Unpickling those anyway was a third of a cached trace at 10k
Services: the nft text alone is 30 MB; the 251 network namespaces of the synthetic
node 40 ms, of which a trace reads 4 or 5 (`NetnsByInode`).

`PackedSnapshot` and `PackedNftDump` are a `Snapshot` and an `NftDump` with the same
fields, equal to the plain objects with the same values; a packed field is unpickled
the first time it is read, by whoever reads it, and may build only the model's classes.
In a cache file a packed value of `LARGE_VALUE` bytes or more is not even read until
then: it stays in the file (`FileValue`).
"""

from __future__ import annotations

import copyreg
import io
import os
import pickle
import sys
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, SupportsIndex

from podpath.snapshot.model import NetNamespace, NftDump, Snapshot

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
            state[self.name] = self.loader(unpacked_bytes(state[self.key]))
            del state[self.key]
        return state[self.name]

    def __set__(self, obj: object, value: Any) -> None:
        obj.__dict__[self.name] = value  # a frozen dataclass sets its fields through here


# A packed value at least this long is written after a cache file's pickle, not in it,
# and read from the file only when something asks for it (docs/performance.md, "A
# cache hit reads only what the trace reads").
LARGE_VALUE = 64 * 1024


class _Source:
    """An open cache file and where each value written after its pickle lies in it."""

    def __init__(self, fd: int, spans: Sequence[tuple[int, int]]) -> None:
        # Its own descriptor: the file stays open while a value of it is alive.
        self.file = io.FileIO(os.dup(fd), "rb")
        self.spans = spans


class FileValue:
    """A large packed value left in its cache file, read (os.pread) when asked for.

    The file is never rewritten in place (podpath.output_file writes a new one and
    renames it), so what lies at the value's offset stays the value; a read that fails
    or comes back short is a damaged cache (CorruptCache), which a trace answers by
    parsing the snapshot. Not mmap: a mapped file that shrinks or fails to read ends
    the process with SIGBUS.
    """

    __slots__ = ("_source", "offset", "size")

    def __init__(self, number: int) -> None:
        source = _READING.get()
        if source is None or not 0 <= number < len(source.spans):
            raise pickle.UnpicklingError("a value written after the pickle is not there")
        self._source = source
        self.offset, self.size = source.spans[number]

    def __len__(self) -> int:
        return self.size

    def read(self, start: int = 0, end: int | None = None) -> bytes:
        """Bytes `start` to `end` of the value (all of it by default)."""
        end = self.size if end is None else min(end, self.size)
        parts: list[bytes] = []
        at, left = self.offset + start, max(0, end - start)
        try:
            while left:
                part = os.pread(self._source.file.fileno(), left, at)
                if not part:
                    raise CorruptCache("a cached index is cut short")
                parts.append(part)
                at, left = at + len(part), left - len(part)
        except OSError as exc:
            raise CorruptCache(f"a cached index could not be read ({exc.strerror})") from None
        return b"".join(parts)

    def __reduce__(self) -> tuple[Any, ...]:
        # Written again as its bytes (beside_the_pickle_value), never as a file offset.
        raise pickle.PicklingError("a FileValue is pickled by beside_the_pickle_value")


class _Written:
    """What the pickle holds for a value written after it: unpickled as a FileValue."""

    __slots__ = ("number",)

    def __init__(self, number: int) -> None:
        self.number = number

    def __reduce__(self) -> tuple[Any, ...]:
        return (FileValue, (self.number,))


# The values set aside by the pickling under way (`values_set_aside`), and the file a
# load under way reads them from (`values_read_from`).
_SET_ASIDE: ContextVar[list[bytes] | None] = ContextVar("podpath_set_aside", default=None)
_READING: ContextVar[_Source | None] = ContextVar("podpath_reading", default=None)


@contextmanager
def values_set_aside() -> Iterator[list[bytes]]:
    """While it lasts, `beside_the_pickle_value` sets large values aside into the list."""
    token = _SET_ASIDE.set([])
    try:
        found = _SET_ASIDE.get()
        assert found is not None
        yield found
    finally:
        _SET_ASIDE.reset(token)


@contextmanager
def values_read_from(fd: int, spans: Sequence[tuple[int, int]]) -> Iterator[None]:
    """While it lasts, the FileValues unpickled read from the file `fd` at `spans`."""
    token = _READING.set(_Source(fd, spans))
    try:
        yield
    finally:
        _READING.reset(token)


def beside_the_pickle(state: dict[str, Any]) -> dict[str, Any]:
    """`state` with each large bytes value set aside (`beside_the_pickle_value`)."""
    return {name: beside_the_pickle_value(value) for name, value in state.items()}


def beside_the_pickle_value(value: Any) -> Any:
    """`value`, or what stands for it in the pickle if it is large and a cache file is
    being written (`values_set_aside`); a FileValue is written as its bytes. Pickled
    any other way, a value is as it always was."""
    if isinstance(value, FileValue):
        value = value.read()
    aside = _SET_ASIDE.get()
    if aside is None or type(value) is not bytes or len(value) < LARGE_VALUE:
        return value
    aside.append(value)
    return _Written(len(aside) - 1)


def unpacked_bytes(value: bytes | FileValue) -> bytes:
    """A packed value's bytes, read from its file if it was left there."""
    return value.read() if isinstance(value, FileValue) else value


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

    def __reduce_ex__(self, protocol: SupportsIndex) -> tuple[Any, ...]:
        return _reduced(self)


def addresses_by_netns(netns: Iterable[NetNamespace]) -> dict[int, frozenset[str]]:
    """The addresses configured on each namespace's links (addrtype LOCAL), by inode: a
    SnapshotIndex's `local_addresses`, kept beside packed namespaces so that asking
    which namespace holds an address unpickles none of them."""
    out: dict[int, set[str]] = defaultdict(set)
    for ns in netns:
        for link in ns.links:
            # A tentative or dadfailed IPv6 address is not local: no local route.
            out[ns.inode].update(a.address for a in link.addresses if a.usable)
    return {k: frozenset(v) for k, v in out.items()}


def macs_by_netns(netns: Iterable[NetNamespace]) -> dict[int, dict[int, str]]:
    """The MAC address of each namespace's links by ifindex, by inode: a SnapshotIndex's
    `link_macs`, kept beside packed namespaces so that asking which bridge port a MAC is
    behind (the far ends of hundreds of veths) unpickles none of them."""
    return {
        ns.inode: {link.ifindex: link.mac for link in ns.links if link.mac is not None}
        for ns in netns
    }


class _PackedNetns:
    """A snapshot's network namespaces as (inode, pickle) in their order, each unpickled
    once, when first read (by position, so the tuple and the mapping share objects)."""

    def __init__(self, items: tuple[tuple[int, bytes], ...]) -> None:
        self.items = items
        self.live: dict[int, NetNamespace] = {}
        # The last of a repeated inode, as `{ns.inode: ns for ns in netns}` keeps it.
        self.position = {inode: i for i, (inode, _) in enumerate(items)}

    def at(self, i: int) -> NetNamespace:
        """The namespace at position `i`."""
        found = self.live.get(i)
        if found is None:
            found = self.live[i] = _load(self.items[i][1])
        return found

    def all(self) -> tuple[NetNamespace, ...]:
        """Every namespace, in the snapshot's order."""
        return tuple(self.at(i) for i in range(len(self.items)))


class NetnsByInode(Mapping[int, NetNamespace]):
    """A packed snapshot's network namespaces by inode, each unpickled when asked for."""

    def __init__(self, packed: _PackedNetns) -> None:
        self._packed = packed

    def __getitem__(self, inode: int) -> NetNamespace:
        return self._packed.at(self._packed.position[inode])

    def __contains__(self, inode: object) -> bool:
        return inode in self._packed.position

    def __iter__(self) -> Iterator[int]:
        return iter(self._packed.position)

    def __len__(self) -> int:
        return len(self._packed.position)


class _NetnsField:
    """`Snapshot.netns` of a PackedSnapshot: the whole tuple, unpickled when first read."""

    def __get__(self, obj: object, objtype: type | None = None) -> Any:
        if obj is None:
            return self
        state = obj.__dict__
        if "netns" not in state:
            state["netns"] = _netns_of(obj).all()
        return state["netns"]

    def __set__(self, obj: object, value: Any) -> None:
        obj.__dict__["netns"] = value  # a frozen dataclass sets its fields through here


_NETNS_KEY = "_packed_netns_items"
_ADDRESSES_KEY = "_netns_addresses"
_MACS_KEY = "_netns_link_macs"


def _netns_of(obj: object) -> _PackedNetns:
    """The packed namespaces of a PackedSnapshot (kept in its dict once unpacked)."""
    state = obj.__dict__
    found = state.get("_netns_unpacked")
    if not isinstance(found, _PackedNetns):
        found = state["_netns_unpacked"] = _PackedNetns(state[_NETNS_KEY])
    return found


# Snapshot fields a trace does not read (nft's text: the cached index has its chains).
_SNAPSHOT_FIELDS = ("processes", "namespaces", "conntrack")


class PackedSnapshot(Snapshot):
    """A Snapshot whose process table, namespace list and conntrack text are unpickled when read."""

    processes = Packed()
    namespaces = Packed()
    conntrack = Packed()
    netns = _NetnsField()

    @classmethod
    def of(cls, snapshot: Snapshot) -> PackedSnapshot:
        """A packed copy of `snapshot` (its nft dump packed too, its namespaces one by one)."""
        if isinstance(snapshot, PackedSnapshot):
            return snapshot
        packed = cls.__new__(cls)
        state = pack_state(snapshot, _SNAPSHOT_FIELDS)
        if snapshot.nft is not None:
            state["nft"] = PackedNftDump.of(snapshot.nft)
        netns = state.pop("netns")
        state[_NETNS_KEY] = tuple((ns.inode, pickle.dumps(ns, protocol=5)) for ns in netns)
        state[_ADDRESSES_KEY] = addresses_by_netns(netns)
        state[_MACS_KEY] = macs_by_netns(netns)
        packed.__dict__.update(state)
        return packed

    def local_addresses(self) -> dict[int, frozenset[str]]:
        """Each namespace's addresses by inode, known without unpickling the namespaces."""
        found = self.__dict__.get(_ADDRESSES_KEY)
        return found if isinstance(found, dict) else addresses_by_netns(self.netns)

    def link_macs(self) -> dict[int, dict[int, str]]:
        """Each namespace's link MACs by ifindex, by inode, without unpickling the namespaces."""
        found = self.__dict__.get(_MACS_KEY)
        return found if isinstance(found, dict) else macs_by_netns(self.netns)

    def netns_by_inode(self) -> Mapping[int, NetNamespace]:
        """The network namespaces by inode, each unpickled when first asked for."""
        if "netns" in self.__dict__ and _NETNS_KEY not in self.__dict__:
            return {ns.inode: ns for ns in self.netns}  # set whole (not packed)
        return NetnsByInode(_netns_of(self))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Snapshot) and same_fields(self, other)

    __hash__ = Snapshot.__hash__

    def __reduce_ex__(self, protocol: SupportsIndex) -> tuple[Any, ...]:
        return _reduced(self)


def _reduced(obj: object) -> tuple[Any, ...]:
    """What object.__reduce_ex__(2+) gives (NEWOBJ of the class, then its dict), with the
    large packed values set aside (`beside_the_pickle`)."""
    return (copyreg.__newobj__, (type(obj),), beside_the_pickle(obj.__dict__))  # type: ignore[attr-defined]
