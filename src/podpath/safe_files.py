"""Files podpath creates on the machine it runs on: new, private, never through a planted path.

podpath runs as root, so a file it writes at a path someone else can influence is an
attack surface: a symlink planted in a world-writable directory turned "capture to
/tmp/x.pcap" (tcpdump -w, as root) into "truncate a root-only file and chown it to
tcpdump" (tests/collectors/test_actions.py replays it). Every file is
therefore created here, with O_CREAT|O_EXCL|O_NOFOLLOW relative to a directory fd that
was checked first (owned by this user or root; not writable by others unless sticky),
and its absolute path is reported. The default place is a private state directory; what is
only kept to be reused (`trace --snapshot`'s indexes) goes to a private cache directory.
"""

from __future__ import annotations

import contextlib
import os
import stat
from dataclasses import dataclass


class UnsafePath(Exception):
    """A path podpath will not create a file at, with the reason as one sentence."""


@dataclass(frozen=True)
class NewFile:
    """A file podpath just created: its open fd (write-only) and its absolute path."""

    fd: int
    path: str
    dir_fd: int  # the checked directory it was created in (to remove it on failure)
    name: str

    def close(self) -> None:
        """Close both fds (the file stays)."""
        for fd in (self.fd, self.dir_fd):
            # An fd already closed (handed to os.fdopen, say) has nothing left to close.
            with contextlib.suppress(OSError):
                os.close(fd)

    def discard(self) -> None:
        """Remove the file if it is still empty (nothing was written), then close."""
        # Best effort: if it cannot be removed it stays, and its path was reported.
        with contextlib.suppress(OSError):
            if os.fstat(self.fd).st_size == 0:
                os.unlink(self.name, dir_fd=self.dir_fd)
        self.close()


def state_dir(*parts: str) -> str:
    """podpath's private directory for `parts` (e.g. "captures"), created 0700 if missing.

    $XDG_STATE_HOME/podpath (default ~/.local/state/podpath); when that cannot be made
    private (no home, a read-only root, someone else's directory), a fresh private
    directory under the system's temporary directory.
    """
    found = _private_dir("XDG_STATE_HOME", (".local", "state"), parts)
    if found is not None:
        return found
    # Imported here: tempfile (with shutil and random) was ~6 ms of every trace of a
    # saved snapshot, which asks for its cache directory (`cache_dir`) each time.
    import tempfile

    return tempfile.mkdtemp(prefix="podpath-" + "-".join(parts) + "-")


def cache_dir(*parts: str) -> str | None:
    """podpath's private cache directory for `parts`, created 0700 if missing, or None.

    $XDG_CACHE_HOME/podpath (default ~/.cache/podpath). A cache that cannot be private
    (no home, a read-only root, someone else's directory) is not kept at all: a fresh
    temporary one would never be found again.
    """
    return _private_dir("XDG_CACHE_HOME", (".cache",), parts)


def _private_dir(variable: str, default: tuple[str, ...], parts: tuple[str, ...]) -> str | None:
    """$variable/podpath/parts (else ~/default/podpath/parts), made private, or None.

    A relative $variable is ignored, as the XDG base directory specification says."""
    base = os.environ.get(variable, "")
    if not os.path.isabs(base):
        base = os.path.join(os.path.expanduser("~"), *default)
    wanted = os.path.join(base, "podpath", *parts)
    if not os.path.isabs(wanted):
        return None  # no home directory ("~" left as it is)
    try:
        os.makedirs(wanted, mode=0o700, exist_ok=True)
        _check_private(wanted)
    except (OSError, UnsafePath):
        return None
    return os.path.abspath(wanted)


def _check_private(path: str) -> None:
    st = os.lstat(path)
    if stat.S_ISLNK(st.st_mode) or not stat.S_ISDIR(st.st_mode):
        raise UnsafePath(f"{path} is not a directory")
    if st.st_uid != os.geteuid() or st.st_mode & 0o077:
        raise UnsafePath(f"{path} is not private to this user")


def check_directory(dir_fd: int, shown: str) -> None:
    """Refuse a directory someone else could use against a file created in it."""
    st = os.fstat(dir_fd)
    if st.st_uid not in (0, os.geteuid()):
        raise UnsafePath(f"{shown} belongs to uid {st.st_uid}, not to you or root")
    writable_by_others = st.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
    if writable_by_others and not st.st_mode & stat.S_ISVTX:
        # Without the sticky bit others may rename or replace what we create there.
        raise UnsafePath(f"{shown} is writable by others and not sticky")


def create_new(path: str, default_dir: str, mode: int = 0o600) -> NewFile:
    """Create `path` (relative names go into `default_dir`) as a new file; never follow or overwrite.

    Raises UnsafePath with one sentence for an unsafe directory, an existing path (a
    file, or a symlink someone planted) or any other reason the file cannot be made.
    """
    full = os.path.abspath(os.path.join(default_dir, os.path.expanduser(path)))
    directory, name = os.path.split(full)
    if not name or name in (".", ".."):
        raise UnsafePath(f"{full} is not a file name")
    try:
        dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        raise UnsafePath(f"cannot use {directory}: {exc.strerror}") from None
    try:
        check_directory(dir_fd, directory)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(name, flags, mode, dir_fd=dir_fd)
    except FileExistsError:
        os.close(dir_fd)
        raise UnsafePath(f"{full} already exists: podpath never overwrites a file") from None
    except OSError as exc:
        os.close(dir_fd)
        raise UnsafePath(f"cannot create {full}: {exc.strerror}") from None
    except UnsafePath:
        os.close(dir_fd)
        raise
    return NewFile(fd, os.path.join(_resolved(dir_fd, directory), name), dir_fd, name)


def _resolved(dir_fd: int, typed: str) -> str:
    """The directory as the kernel resolved it (symlinks in the typed path followed)."""
    try:
        return os.readlink(f"/proc/self/fd/{dir_fd}")
    except OSError:
        return typed  # no procfs here: the typed absolute path is the best we know
