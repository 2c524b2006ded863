"""Reading files of a node through its root directory, without escaping it.

In a `kubectl debug node` pod the node's filesystem is at /host, and its absolute
symlinks (e.g. /host/var/run -> /run) point into the debug pod's own filesystem when
followed naively. `HostRoot` resolves every path *inside* the root: with
openat2(RESOLVE_IN_ROOT) where the kernel has it (5.6+), else with a
component-by-component walk that re-roots absolute symlinks and clamps "..".

procfs is reached through one directory fd (`proc_fd`), opened through the root
once; paths below it are relative ("1234/stat"), so magic links such as
/proc/PID/ns/net keep working (RESOLVE_IN_ROOT refuses magic links).

All OSErrors are translated here, in one place, into the domain errors below,
which the collectors turn into `Gap`s.
"""

from __future__ import annotations

import errno
import functools
import json
import os
import re
import stat as stat_mod
import threading
from dataclasses import dataclass
from typing import Any

from podpath.snapshot.model import Gap

# Syscall number of openat2(2): the same on x86_64 and aarch64 (asm-generic).
_SYS_OPENAT2 = {"x86_64": 437, "aarch64": 437, "arm64": 437}.get(os.uname().machine)
_RESOLVE_NO_MAGICLINKS = 0x02
_RESOLVE_IN_ROOT = 0x10
_MAX_SYMLINKS = 40  # the kernel's own limit (MAXSYMLINKS)
DEFAULT_READ_LIMIT = 16 * 1024 * 1024

_PROC_PID = re.compile(r"^/proc/\d+/")


class CollectorError(Exception):
    """A read that failed, translated from an OSError into a domain error."""

    kind = "error"

    def __init__(
        self, subject: str, reason: str, errno_: int | None = None, capability: str | None = None
    ) -> None:
        super().__init__(f"{subject}: {reason}")
        self.subject = subject
        self.reason = reason
        self.errno = errno_
        self.capability = capability

    def to_gap(self) -> Gap:
        """The Gap that records this failure in a snapshot."""
        return Gap(self.subject, self.reason, self.kind, self.capability)


class Vanished(CollectorError):
    """The thing read no longer exists (ENOENT, ESRCH): a process exited, a netns was deleted."""

    kind = "vanished"


class PermissionDenied(CollectorError):
    """EACCES/EPERM; `capability` names the Linux capability that would allow the read."""

    kind = "permission"


class NotAvailable(CollectorError):
    """The kernel or node does not offer this (ENOSYS, EOPNOTSUPP, missing feature)."""

    kind = "unavailable"


def capability_for(subject: str) -> str:
    """The capability that would most likely allow reading `subject`."""
    # Another process's /proc/PID/{ns,fd,environ,root,...} is guarded by ptrace access
    # mode checks (proc_pid_ns_get_link -> ptrace_may_access), not by file modes.
    if "/proc/" in subject or subject.startswith("proc:"):
        return "CAP_SYS_PTRACE"
    return "CAP_DAC_READ_SEARCH"


def translate(err: OSError, subject: str, capability: str | None = None) -> CollectorError:
    """Turn an OSError into the matching domain error (the one place that does it)."""
    code = err.errno
    reason = os.strerror(code) if code else str(err)
    if code in (errno.ENOENT, errno.ESRCH, errno.ENOTDIR):
        return Vanished(subject, reason, code)
    if code in (errno.EACCES, errno.EPERM):
        return PermissionDenied(
            subject, "permission denied", code, capability or capability_for(subject)
        )
    if code in (errno.ENOSYS, errno.EOPNOTSUPP, errno.EAFNOSUPPORT, errno.EPROTONOSUPPORT):
        return NotAvailable(subject, f"not available on this kernel ({reason})", code)
    return CollectorError(subject, reason, code)


@functools.cache
def _openat2_abi() -> tuple[Any, Any] | None:
    """libc's syscall() and struct open_how, or None without them.

    ctypes is imported on first use: a node root of "/" never needs openat2, and the
    import is a measurable part of `podpath ls namespaces` (which must beat lsns).
    """
    import ctypes

    class OpenHow(ctypes.Structure):
        _fields_ = [
            ("flags", ctypes.c_uint64),
            ("mode", ctypes.c_uint64),
            ("resolve", ctypes.c_uint64),
        ]

    try:
        return ctypes.CDLL(None, use_errno=True), OpenHow
    except OSError:
        return None


_OPENAT2_ATTEMPTS = 16


def openat2_in_root(dirfd: int, path: str, flags: int) -> int:
    """openat2(dirfd, path, flags, RESOLVE_IN_ROOT|RESOLVE_NO_MAGICLINKS); raises OSError."""
    abi = _openat2_abi()
    if _SYS_OPENAT2 is None or abi is None:
        raise OSError(errno.ENOSYS, "openat2 not supported on this architecture")
    import ctypes

    libc, open_how = abi
    how = open_how(flags | os.O_CLOEXEC, 0, _RESOLVE_IN_ROOT | _RESOLVE_NO_MAGICLINKS)
    raw = os.fsencode(path)
    # With RESOLVE_IN_ROOT, a `..` fails with EAGAIN whenever a rename or mount happened
    # anywhere on the system during the lookup (openat2(2)); the caller is told to retry.
    for _ in range(_OPENAT2_ATTEMPTS):
        fd = libc.syscall(
            ctypes.c_long(_SYS_OPENAT2),
            ctypes.c_int(dirfd),
            ctypes.c_char_p(raw),
            ctypes.byref(how),
            ctypes.c_size_t(ctypes.sizeof(how)),
        )
        if fd >= 0:
            return int(fd)
        code = ctypes.get_errno()
        if code != errno.EAGAIN:
            break
    raise OSError(code, os.strerror(code), path)


def _components(path: str) -> list[str]:
    return [p for p in path.split("/") if p and p != "."]


@dataclass(frozen=True)
class DirEntryInfo:
    """A directory entry: its name and type, read without following symlinks."""

    name: str
    is_dir: bool
    is_symlink: bool


class HostRoot:
    """A node's root directory; every collector reads the node through one of these."""

    def __init__(self, path: str = "/", *, use_openat2: bool = True) -> None:
        self.path = os.path.abspath(path)
        self._root_fd = os.open(self.path, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        self._want_openat2 = use_openat2
        self._proc_fd: int | None = None
        self._lock = threading.Lock()

    # -- lifecycle -------------------------------------------------------------------

    def close(self) -> None:
        """Close the directory fds held by this root."""
        for fd in (self._proc_fd, self._root_fd):
            if fd is not None and fd >= 0:
                os.close(fd)
        self._proc_fd = None
        self._root_fd = -1

    def __enter__(self) -> HostRoot:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def is_slash(self) -> bool:
        """True when the root is this process's own "/"."""
        return self.path == "/"

    @property
    def resolver(self) -> str:
        """Which resolution strategy is in use: "openat2" or "walk"."""
        return "openat2" if self._use_openat2 else "walk"

    @functools.cached_property
    def _use_openat2(self) -> bool:
        """Whether openat2 resolves paths here, probed on first need (never for "/")."""
        return self._want_openat2 and self._probe_openat2()

    def _probe_openat2(self) -> bool:
        try:
            fd = openat2_in_root(self._root_fd, ".", os.O_PATH | os.O_DIRECTORY)
        except OSError:
            return False
        os.close(fd)
        return True

    # -- resolution ------------------------------------------------------------------

    def _walk(self, path: str, follow_last: bool = True) -> str:
        """Resolve `path` inside the root by hand; returns a path in the reader's view."""
        todo = _components(path)
        done: list[str] = []
        links = 0
        while todo:
            name = todo.pop(0)
            if name == "..":
                if done:  # ".." at the root stays at the root, as in chroot
                    done.pop()
                continue
            candidate = os.path.join(self.path, *done, name)
            try:
                st = os.lstat(candidate)
            except OSError:
                # Missing component: let the final open report ENOENT on a path
                # that is still inside the root.
                done.append(name)
                done.extend(todo)
                break
            if stat_mod.S_ISLNK(st.st_mode) and (todo or follow_last):
                links += 1
                if links > _MAX_SYMLINKS:
                    raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), path)
                target = os.readlink(candidate)
                if target.startswith("/"):
                    done = []  # absolute symlink: re-root at the host root, not ours
                todo = _components(target) + todo
                continue
            done.append(name)
        return os.path.join(self.path, *done)

    def _open_raw(self, path: str, flags: int) -> int:
        if self.is_slash:
            # Inside "/" nothing can escape: plain open is exact and cheapest.
            return os.open(path, flags | os.O_CLOEXEC)
        if self._use_openat2:
            return openat2_in_root(self._root_fd, path.lstrip("/") or ".", flags)
        if flags & os.O_NOFOLLOW:
            return os.open(self._walk(path, follow_last=False), flags | os.O_CLOEXEC)
        return os.open(self._walk(path), flags | os.O_CLOEXEC | os.O_NOFOLLOW)

    def open(self, path: str, flags: int = os.O_RDONLY) -> int:
        """Open `path` (host-absolute) inside the root; the caller closes the fd."""
        try:
            return self._open_raw(path, flags)
        except OSError as err:
            raise translate(err, path) from err

    def real_path(self, path: str) -> str:
        """The path in the reader's own view that `path` resolves to inside the root."""
        try:
            fd = self._open_raw(path, os.O_PATH)
        except OSError as err:
            raise translate(err, path) from err
        try:
            return os.readlink(f"/proc/self/fd/{fd}")
        finally:
            os.close(fd)

    def canonical(self, path: str) -> str:
        """`path` with its symlinks resolved inside the root, in the host's view.

        /var/run/netns/x and /run/netns/x name one file; callers compare paths, so
        they get one spelling. A path that does not resolve is returned unchanged.
        """
        try:
            real = self.real_path(path)
        except CollectorError:
            return path
        if self.is_slash:
            return real
        prefix = self.path.rstrip("/")
        if real == prefix:
            return "/"
        return real[len(prefix) :] if real.startswith(prefix + "/") else path

    # -- reads -----------------------------------------------------------------------

    def read_bytes(self, path: str, limit: int = DEFAULT_READ_LIMIT) -> bytes:
        """The content of a file, at most `limit` bytes (a FIFO is refused, not waited on)."""
        # O_NONBLOCK: opening a FIFO for reading otherwise waits for a writer, and a FIFO
        # where a runtime keeps a state file (config.json, state.json) hung the snapshot.
        fd = self.open(path, os.O_RDONLY | os.O_NONBLOCK)
        try:
            mode = os.fstat(fd).st_mode
            if stat_mod.S_ISFIFO(mode):
                raise CollectorError(path, "is a FIFO, not a file: not read")
            if not stat_mod.S_ISREG(mode):
                os.set_blocking(fd, True)  # a device reads as it would without the flag
            return _read_fd(fd, limit, path)
        finally:
            os.close(fd)

    def read_text(self, path: str, limit: int = DEFAULT_READ_LIMIT) -> str:
        """The content of a file as text; invalid UTF-8 kept with surrogateescape."""
        return self.read_bytes(path, limit).decode("utf-8", "surrogateescape")

    def scandir(self, path: str) -> list[DirEntryInfo]:
        """The entries of a directory with their types (symlinks not followed)."""
        fd = self.open(path, os.O_RDONLY | os.O_DIRECTORY)
        try:
            with os.scandir(fd) as it:
                return [
                    DirEntryInfo(e.name, e.is_dir(follow_symlinks=False), e.is_symlink())
                    for e in it
                ]
        except OSError as err:
            raise translate(err, path) from err
        finally:
            os.close(fd)

    def listdir(self, path: str) -> list[str]:
        """The names in a directory."""
        fd = self.open(path, os.O_RDONLY | os.O_DIRECTORY)
        try:
            return os.listdir(fd)
        except OSError as err:
            raise translate(err, path) from err
        finally:
            os.close(fd)

    def _parent_fd(self, path: str) -> tuple[int, str]:
        parent, _, name = path.rstrip("/").rpartition("/")
        return self.open(parent or "/", os.O_PATH | os.O_DIRECTORY), name

    def readlink(self, path: str) -> str:
        """The target of a symlink (not followed, and not resolved)."""
        fd, name = self._parent_fd(path)
        try:
            return os.readlink(name, dir_fd=fd)
        except OSError as err:
            raise translate(err, path) from err
        finally:
            os.close(fd)

    def stat(self, path: str, follow: bool = True) -> os.stat_result:
        """stat(2) of a path inside the root (symlinks followed inside the root)."""
        flags = os.O_PATH if follow else os.O_PATH | os.O_NOFOLLOW
        fd = self.open(path, flags)
        try:
            return os.fstat(fd)
        finally:
            os.close(fd)

    def exists(self, path: str) -> bool:
        """True when the path resolves inside the root."""
        try:
            os.close(self.open(path, os.O_PATH))
        except CollectorError:
            return False
        return True

    # -- procfs ----------------------------------------------------------------------

    def proc_fd(self) -> int:
        """A directory fd of <root>/proc (opened once; relative paths below it)."""
        with self._lock:
            if self._proc_fd is None:
                self._proc_fd = self.open("/proc", os.O_RDONLY | os.O_DIRECTORY)
            return self._proc_fd

    @property
    def proc(self) -> str:
        """The path of <root>/proc in the reader's view (e.g. for psutil.PROCFS_PATH)."""
        return os.readlink(f"/proc/self/fd/{self.proc_fd()}")

    def proc_read(self, rel: str, limit: int = DEFAULT_READ_LIMIT) -> bytes:
        """Read <proc>/<rel> (e.g. "1234/stat"); raises domain errors."""
        try:
            fd = os.open(rel, os.O_RDONLY | os.O_CLOEXEC, dir_fd=self.proc_fd())
            try:
                return _read_fd(fd, limit, rel)
            finally:
                os.close(fd)
        except OSError as err:
            raise translate(err, f"/proc/{rel}") from err

    def proc_readlink(self, rel: str) -> str:
        """readlink of <proc>/<rel> (e.g. "1234/ns/net")."""
        try:
            return os.readlink(rel, dir_fd=self.proc_fd())
        except OSError as err:
            raise translate(err, f"/proc/{rel}") from err

    def proc_open(self, rel: str, flags: int = os.O_RDONLY) -> int:
        """Open <proc>/<rel>, following magic links (ns files); the caller closes it."""
        try:
            return os.open(rel, flags | os.O_CLOEXEC, dir_fd=self.proc_fd())
        except OSError as err:
            raise translate(err, f"/proc/{rel}") from err


def read_json_object(
    host: HostRoot, path: str, gaps: list[Gap], limit: int = DEFAULT_READ_LIMIT
) -> dict[str, Any] | None:
    """A JSON object file of the node (a runtime's config or state); None, with a gap why, if not."""
    try:
        text = host.read_text(path, limit=limit)
    except Vanished:
        return None  # a container that went away meanwhile: nothing to report
    except CollectorError as err:
        gaps.append(err.to_gap())
        return None
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        value = None
    if not isinstance(value, dict):
        gaps.append(Gap(path, "not a JSON object", "error"))
        return None
    return value


def _read_fd(fd: int, limit: int, subject: str) -> bytes:
    chunks: list[bytes] = []
    size = 0
    try:
        while size < limit:
            # procfs files must be read in chunks; a short read is not the end for them.
            chunk = os.read(fd, min(65536, limit - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError as err:
        # Read-after-open fails too (ESRCH on a process that exited in between).
        raise translate(err, subject) from err
    return b"".join(chunks)
