"""Snapshot files' SHA-256, remembered in the cache directory by each file's identity.

A cached `trace --snapshot F --cache DIR` is keyed by the SHA-256 of F's bytes
(podpath.trace.index_cache). Hashing a 29 MB snapshot is 20-25 ms of CPU at every
trace; here the digest is kept beside the index, in `DIR/podpath-digest-<id>`, with
what identifies the file's contents without reading them: device, inode, size, mtime
and ctime (nanoseconds), and the SHA-256 of its first and last 64 KiB. When all of
them are unchanged the remembered digest is used, as git's index and make trust a
file's stat data.

Why that is sound: every write to a file, and every change of its times, sets its
ctime to the clock's current time, and no call sets a ctime to another value. A
digest is remembered only for a file whose mtime and ctime were already at least
`QUIET_NS` old when hashing began, so a change made after (even within the clock's
tick) gives a later ctime and the file is hashed again ("racy git", solved the same
way). A file replaced by another (cp, mv, a new snapshot) has another inode or a
new ctime. The head and tail hashes catch what a stat cannot: a clock set back and a
file rewritten to the same size and times. What is left -- a same-size edit in the
middle of a file with its ctime forged by setting the clock back -- needs root and
intent, and root can write the cache directory itself.

A memo file is read only when it is a regular file of this user that no one else can
write (like the index files); anything else, or a memo that does not parse, means the
file is hashed.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
import time
from io import BufferedReader

# A file's times must be this old when hashing starts for its digest to be remembered:
# well above the coarsest timestamp granularity of Linux filesystems (1 s on ext3).
QUIET_NS = 2_000_000_000
# How much of the file's head and tail is hashed at every use of a memo.
EDGE = 65536
MEMO_NAME = re.compile(r"podpath-digest-[0-9a-f]{40}")


def memo_path(directory: str, st: os.stat_result) -> str:
    """Where the digest of the file with this device and inode is remembered."""
    ident = hashlib.sha256(f"{st.st_dev}:{st.st_ino}".encode()).hexdigest()[:40]
    return os.path.join(directory, f"podpath-digest-{ident}")


def identity(fd: int, st: os.stat_result) -> str:
    """One line naming the open file's contents by its stat data and its head and tail."""
    edges = hashlib.sha256(os.pread(fd, EDGE, 0))
    edges.update(os.pread(fd, EDGE, max(0, st.st_size - EDGE)))
    fields = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    return " ".join(map(str, fields)) + " " + edges.hexdigest()


def remembered(directory: str, path: str) -> bytes | None:
    """The digest remembered for the file at `path` if it is unchanged since; else None."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError:
        return None  # hashing it says why, in the codec's words
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return None
        memo = _read_memo(memo_path(directory, st))
        if memo is None:
            return None
        ident, _, digest = memo.rpartition(" ")
        if ident != identity(fd, st) or not re.fullmatch(r"[0-9a-f]{64}", digest):
            return None
        _renew(memo_path(directory, st))
        return bytes.fromhex(digest)
    except OSError:
        return None
    finally:
        os.close(fd)


def memo_of(path: str, digest: bytes, started_ns: int) -> tuple[str, bytes] | None:
    """(memo file name, contents) remembering `digest` of the file at `path`, hashed from
    `started_ns` (time.time_ns()) on; None when the file changed too recently to trust."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or max(st.st_mtime_ns, st.st_ctime_ns) > (
            started_ns - QUIET_NS
        ):
            return None
        line = f"{identity(fd, st)} {digest.hex()}\n"
    except OSError:
        return None
    finally:
        os.close(fd)
    return os.path.basename(memo_path("", st)), line.encode()


def now_ns() -> int:
    """The clock that file times are set from."""
    return time.time_ns()


def _renew(path: str) -> None:
    """Mark a memo used: index_cache.prune keeps the most recently used."""
    try:
        os.utime(path)
    except OSError:
        pass  # a read-only directory still serves the memo; it is only pruned less well


def open_own_file(path: str) -> BufferedReader | None:
    """`path` opened for reading if it is a regular file of this user that no one else can
    write, not reached through a symlink; else None (a cache entry someone could plant)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    # Checked before the fd becomes a file object: fdopen refuses a directory with an
    # exception of its own.
    st = os.fstat(fd)
    if (
        stat.S_ISREG(st.st_mode)
        and st.st_uid == os.geteuid()
        and not st.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
    ):
        return os.fdopen(fd, "rb")
    os.close(fd)
    return None


def _read_memo(path: str) -> str | None:
    fp = open_own_file(path)
    if fp is None:
        return None
    with fp:
        data = fp.read(1024)
    try:
        return data.decode("ascii").rstrip("\n")
    except UnicodeDecodeError:
        return None
