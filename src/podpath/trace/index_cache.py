"""A snapshot's parsed trace indexes, kept in a directory the user names (`trace --cache DIR`).

A CLI trace on a saved snapshot at 10k Services spends its time building what every
trace of that file builds again: the snapshot's objects (~0.45 s of JSON decoding),
the iptables chain index (~0.16 s) or the parsed nftables ruleset (~0.8 s), and the
KUBE-SERVICES dispatch map (~0.08 s). Here they are pickled once after a trace and
read back in a fraction of that: what a trace reads of the rules stays packed until
it is asked for (per-chain rule text, `podpath.trace.index_pickle.PickledValues`), and
what only other views use (the parsed nft ruleset, the Service model) is left out.
Values of 64 KiB and more (the nft text and the conntrack listing a trace does not
read, each nft table's chains) are written after the pickle and left in the file
until asked for (podpath.snapshot.packed.FileValue): a hit reads what the trace
unpacks, not the whole file. docs/performance.md has the
measurements.

The cache can never answer for another snapshot or another podpath: its key is the
SHA-256 of the snapshot file's bytes and of the source of every module whose objects
it holds. It is only read when it is a regular file owned by this user and writable
by no one else (pickle builds objects, so a file someone else could write is not
trusted), and only classes of those modules may be built from it. Anything else --
a missing, foreign, corrupt or stale file -- is a miss: the snapshot is parsed as
without a cache, and the CLI rewrites the cache whole (podpath.output_file).

The directory keeps the `KEEP` most recently used index files (a hit counts as a
use); older `podpath-index-*.pickle` files of this user are removed after a write,
and so are the oldest of the snapshot files' remembered digests
(`podpath-digest-*`, podpath.trace.file_digests, which spare a hit hashing the
snapshot); nothing else in the directory is ever touched.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import pickle
import re
import stat
import struct
import sys
from dataclasses import dataclass
from typing import BinaryIO

from podpath import __version__
from podpath.analysis.index import SnapshotIndex
from podpath.netfilter.nft import NftRuleset
from podpath.snapshot.packed import LOAD_ERRORS, PackedSnapshot, values_read_from
from podpath.trace.file_digests import MEMO_NAME, open_own_file
from podpath.trace.index_pickle import (
    CACHED_MODULES,
    ChainsView,
    PackedBuckets,
    PackedChains,
    PackedNftSet,
    PickledValues,
    RulesView,
    dump_beside,
    load,
)
from podpath.trace.nft import NftIndex, _SetIndex, adopt_nft_index, nft_index

_FORMAT = b"podpath-index-cache 3\n"
# After the format: the pickle's size and the count of the values written after it,
# then each value's length, the pickle, and the values (`file_chunks`).
_SIZES = struct.Struct("<QQ")
_LENGTH = struct.Struct("<Q")
# How many index files a cache directory keeps (each holds a snapshot's rules: tens
# of MB at 10k Services).
KEEP = 8
# Memos of snapshot files' digests kept per index file: a few files may share an index
# (copies of one snapshot), and a memo is tiny.
MEMOS_PER_INDEX = 8
_NAME = re.compile(r"podpath-index-[0-9a-f]{40}\.pickle")
# What a SnapshotIndex holds that a trace does not read, or rebuilds faster than it
# unpickles: the parsed nft ruleset (the cached NftIndex has what the walk reads), the
# Service model (tens of thousands of objects), and lookups by IP, name or inode.
_LEFT_OUT = frozenset(
    {
        "nft_ruleset",
        "services",
        "service_names",
        "netns_by_inode",
        "local_addresses",
        "pods_by_ip",
        "pods_by_name",
        "pods_by_netns",
        "processes_by_pid",
        "containers_by_pid",
    }
)


class CacheError(Exception):
    """A cache directory that cannot be used, with a one-sentence reason."""


@dataclass(frozen=True)
class Cached:
    """A snapshot file's key and, on a hit, its index."""

    key: str
    index: SnapshotIndex | None


# The modules whose code made what a cache holds: those of its classes, and those that
# computed their values (the codec, the parsers, the set and Service indexes).
KEYED_MODULES = (
    *CACHED_MODULES,
    "podpath.snapshot.codec",
    "podpath.netfilter.listing",
    "podpath.netfilter.nft_text",
    "podpath.trace.nft_values",
    "podpath.trace.probe",
)


def code_fingerprint() -> bytes:
    """SHA-256 over podpath's version, Python's and the source of KEYED_MODULES."""
    digest = hashlib.sha256(f"{__version__} {sys.version}".encode())
    for name in KEYED_MODULES:
        spec = importlib.util.find_spec(name)
        loader = spec.loader if spec is not None else None
        get_data = getattr(loader, "get_data", None)
        if spec is None or spec.origin is None or get_data is None:
            raise CacheError(f"cannot read the source of {name} to key the cache")
        digest.update(name.encode() + b"\0" + get_data(spec.origin))
    return digest.digest()


def key_of(data: bytes) -> str:
    """The cache key of a snapshot file's bytes (with this podpath's code)."""
    return key_of_digest(hashlib.sha256(data).digest())


def key_of_digest(digest: bytes) -> str:
    """The cache key of a snapshot file whose bytes have this SHA-256."""
    return hashlib.sha256(code_fingerprint() + digest).hexdigest()


def cache_path(directory: str, key: str) -> str:
    """Where the index of the snapshot with this key is kept."""
    return os.path.join(directory, f"podpath-index-{key[:40]}.pickle")


def check_directory(directory: str) -> None:
    """Refuse a cache directory that does not exist or is not a directory, in one sentence."""
    try:
        st = os.stat(directory)
    except OSError as exc:
        raise CacheError(f"cache directory {directory}: {exc.strerror or exc}") from None
    if not stat.S_ISDIR(st.st_mode):
        raise CacheError(f"cache directory {directory} is not a directory")


def lookup(directory: str, data: bytes) -> Cached:
    """The cached index of a snapshot file's bytes, or a miss (index None) with its key."""
    return lookup_key(directory, key_of(data))


def lookup_key(directory: str, key: str) -> Cached:
    """The cached index of the snapshot with this key, or a miss (index None)."""
    return Cached(key, _read(cache_path(directory, key), key))


def _read(path: str, key: str) -> SnapshotIndex | None:
    fp = open_own_file(path)
    if fp is None:
        return None
    with fp:
        try:
            found = value_in(fp)
        except (*LOAD_ERRORS, OSError):
            return None  # damaged or from elsewhere: parse the snapshot instead
    if not isinstance(found, tuple) or len(found) != 3 or found[0] != key:
        return None
    _key, index, nft = found
    if not isinstance(index, SnapshotIndex) or not isinstance(nft, NftIndex | None):
        return None
    if nft is not None:
        adopt_nft_index(index, nft)
    try:
        os.utime(path)  # a use: `prune` keeps the most recently used
    except OSError:
        pass  # a read-only directory still serves hits; it is only pruned less well
    return index


def value_in(fp: BinaryIO) -> object:
    """What a cache file holds (written by `file_chunks`); raises LOAD_ERRORS or OSError."""
    head = fp.read(len(_FORMAT) + _SIZES.size)
    if not head.startswith(_FORMAT) or len(head) != len(_FORMAT) + _SIZES.size:
        raise pickle.UnpicklingError("not a podpath index cache of this format")
    size, count = _SIZES.unpack_from(head, len(_FORMAT))
    file_size = os.fstat(fp.fileno()).st_size
    table = fp.read(count * _LENGTH.size) if count <= file_size // _LENGTH.size else b""
    if len(table) != count * _LENGTH.size:
        raise pickle.UnpicklingError("the lengths of the values after the pickle are cut off")
    spans = []
    at = len(head) + len(table) + size  # the values follow the pickle
    for (length,) in _LENGTH.iter_unpack(table):
        spans.append((at, length))
        at += length
    if file_size != at:
        raise pickle.UnpicklingError("the values after the pickle are cut off")
    with values_read_from(fp.fileno(), spans):
        return load(fp)


def as_traced(index: SnapshotIndex) -> SnapshotIndex:
    """The index as it is now (its attributes, shallowly): what `encode` keeps of it
    later, after the CLI has printed the answer and parsed more for it (`--conntrack`
    parses the whole conntrack table, which no trace reads back)."""
    now = SnapshotIndex.__new__(SnapshotIndex)
    now.__dict__.update(vars(index))
    return now


def encode(key: str, index: SnapshotIndex) -> list[bytes]:
    """The cache file of an index (with what traces parsed so far), for `cache_path`, as
    the chunks to write (`file_chunks`)."""
    nft = nft_index(index) if index.snapshot.nft is not None else None
    kept = SnapshotIndex.__new__(SnapshotIndex)
    kept.__dict__.update((k, v) for k, v in vars(index).items() if k not in _LEFT_OUT)
    kept.snapshot = PackedSnapshot.of(index.snapshot)
    return file_chunks((key, kept, None if nft is None else _packed(nft)))


def file_chunks(value: object) -> list[bytes]:
    """A cache file holding `value`, as the chunks to write: the format, the pickle's size
    and how many values follow it, their lengths, the pickle, then the values (the large
    packed values it set aside, read only when asked for: podpath.snapshot.packed.FileValue)."""
    pickled, aside = dump_beside(value)
    head = _FORMAT + _SIZES.pack(len(pickled), len(aside))
    return [head, b"".join(_LENGTH.pack(len(v)) for v in aside), pickled, *aside]


def _packed(nft: NftIndex) -> NftIndex:
    """An NftIndex whose chains, sets and set indexes unpack a part at a time when a walk asks."""
    r = nft.ruleset
    chains = PackedChains.of(nft.chains, nft.rules)
    sets = {key: PackedNftSet.of(s) for key, s in nft.sets.items()}
    set_index = {
        key: _SetIndex(PackedBuckets.of(found.exact), found.other, found.parts)
        for key, found in nft._set_index.items()
    }
    names = nft.service_names
    return NftIndex(
        NftRuleset(r.format, r.tables, warnings=r.warnings, metainfo=r.metainfo),
        RulesView(chains),
        ChainsView(chains),
        PickledValues.of(sets),
        PickledValues.of(set_index),
        nft.base_chains,
        None if names is None else PackedBuckets.of(names),
    )


def prune(directory: str, keep: int = KEEP) -> list[str]:
    """Remove all but the `keep` most recently used index files of this user; their names.

    Only regular files named as `cache_path` names them and owned by this user are
    considered; anything else in the directory is left alone. The snapshot files'
    remembered digests (podpath.trace.file_digests, ~200 bytes each) are pruned the same
    way, keeping `MEMOS_PER_INDEX` times as many.
    """
    removed = _prune(directory, _NAME, keep)
    return removed + _prune(directory, MEMO_NAME, keep * MEMOS_PER_INDEX)


def _prune(directory: str, pattern: re.Pattern[str], keep: int) -> list[str]:
    """Remove all but the `keep` most recently used files of this user named by `pattern`."""
    found: list[tuple[int, str]] = []
    try:
        with os.scandir(directory) as entries:
            for entry in entries:
                if not pattern.fullmatch(entry.name):
                    continue
                try:
                    st = entry.stat(follow_symlinks=False)
                except OSError:
                    continue  # removed meanwhile
                if stat.S_ISREG(st.st_mode) and st.st_uid == os.geteuid():
                    found.append((st.st_mtime_ns, entry.name))
    except OSError:
        return []
    found.sort(reverse=True)
    removed = []
    for _mtime, name in found[keep:]:
        try:
            os.unlink(os.path.join(directory, name))
        except FileNotFoundError:
            continue  # another trace pruned it first
        except OSError:
            break  # not ours to remove (a read-only directory): leave the rest too
        removed.append(name)
    return removed
