"""A snapshot's parsed trace indexes, kept in a directory the user names (`trace --cache DIR`).

A CLI trace on a saved snapshot at 10k Services spends its time building what every
trace of that file builds again: the snapshot's objects (~0.45 s of JSON decoding),
the iptables chain index (~0.16 s) or the parsed nftables ruleset (~2 s), and the
KUBE-SERVICES dispatch map (~0.08 s). Here they are pickled once after a trace and
read back in ~0.1 s (docs/performance.md has the measurements).

The cache can never answer for another snapshot or another podpath: its key is the
SHA-256 of the snapshot file's bytes and of the source of every module whose objects
it holds. It is only read when it is a regular file owned by this user and writable
by no one else (pickle builds objects, so a file someone else could write is not
trusted), and only classes of those modules may be built from it. Anything else --
a missing, foreign, corrupt or stale file -- is a miss: the snapshot is parsed as
without a cache, and the CLI rewrites the cache whole (podpath.output_file).
"""

from __future__ import annotations

import gc
import hashlib
import importlib.util
import io
import os
import pickle
import stat
import sys
from dataclasses import dataclass
from typing import Any

from podpath import __version__
from podpath.analysis.index import SnapshotIndex
from podpath.trace.nft import NftIndex, adopt_nft_index, nft_index

# The modules whose objects a cached index holds; their source is part of the key, and
# only their classes may be built when the cache is read.
CACHED_MODULES = (
    "podpath.snapshot.model",
    "podpath.analysis.index",
    "podpath.netfilter.iptables_save",
    "podpath.netfilter.model",
    "podpath.netfilter.kube_proxy",
    "podpath.netfilter.nft",
    "podpath.netfilter.nft_syntax",
    "podpath.trace.nft",
    "podpath.conntrack",
)
# Plain containers pickle records by name (everything else is a CACHED_MODULES class).
_BUILTINS = {("builtins", "set"), ("builtins", "frozenset"), ("collections", "defaultdict")}
_FORMAT = b"podpath-index-cache 1\n"


class CacheError(Exception):
    """A cache directory that cannot be used, with a one-sentence reason."""


@dataclass(frozen=True)
class Cached:
    """A snapshot file's key and, on a hit, its index."""

    key: str
    index: SnapshotIndex | None


def code_fingerprint() -> bytes:
    """SHA-256 over podpath's version, Python's and the source of CACHED_MODULES."""
    digest = hashlib.sha256(f"{__version__} {sys.version}".encode())
    for name in CACHED_MODULES:
        spec = importlib.util.find_spec(name)
        loader = spec.loader if spec is not None else None
        get_data = getattr(loader, "get_data", None)
        if spec is None or spec.origin is None or get_data is None:
            raise CacheError(f"cannot read the source of {name} to key the cache")
        digest.update(name.encode() + b"\0" + get_data(spec.origin))
    return digest.digest()


def key_of(data: bytes) -> str:
    """The cache key of a snapshot file's bytes (with this podpath's code)."""
    return hashlib.sha256(code_fingerprint() + hashlib.sha256(data).digest()).hexdigest()


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
    key = key_of(data)
    return Cached(key, _read(cache_path(directory, key), key))


def _read(path: str, key: str) -> SnapshotIndex | None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as fp:
        st = os.fstat(fd)
        trusted = (
            stat.S_ISREG(st.st_mode)
            and st.st_uid == os.geteuid()
            and not st.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
        )
        if not trusted or fp.read(len(_FORMAT)) != _FORMAT:
            return None
        collecting = gc.isenabled()
        # The unpickler makes ~10^5 objects at once; the cyclic GC's passes over them
        # tripled the read (0.07 s against 0.23 s for the iptables index at 10k Services).
        gc.disable()
        try:
            found = _Unpickler(fp).load()
        except (
            pickle.UnpicklingError,
            EOFError,
            ValueError,
            TypeError,
            AttributeError,
            KeyError,
            IndexError,
            RecursionError,
        ):
            return None  # damaged or from elsewhere: parse the snapshot instead
        finally:
            if collecting:
                gc.enable()
    if not isinstance(found, tuple) or len(found) != 3 or found[0] != key:
        return None
    _key, index, nft = found
    if not isinstance(index, SnapshotIndex) or not isinstance(nft, NftIndex | None):
        return None
    if nft is not None:
        adopt_nft_index(index, nft)
    return index


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


def encode(key: str, index: SnapshotIndex) -> bytes:
    """The cache file of an index (with what traces parsed so far), for `cache_path`."""
    nft = nft_index(index) if index.snapshot.nft is not None else None
    buffer = io.BytesIO()
    buffer.write(_FORMAT)
    pickle.dump((key, index, nft), buffer, protocol=5)
    return buffer.getvalue()
