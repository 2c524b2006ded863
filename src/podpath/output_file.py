"""Files podpath replaces at a path the user names: whole or not at all, never through a link.

Truncating a file and then writing it loses the old content to any signal in
between (2 of 14 SIGTERMs to `podpath snapshot -o FILE` left an empty file), and
opening a path as root follows whatever symlink someone planted there. So a file is
written to a new temporary file in the same directory (O_CREAT|O_EXCL|O_NOFOLLOW,
mode 0600), flushed to disk, and renamed over the target, which rename(2) does
atomically. A symlink at the target is refused rather than followed or replaced.
FIFOs and character devices (/dev/null, a named pipe) are written in place: they hold
no content to lose. (Files podpath creates in places of its own choosing, the TUI's
captures and saved snapshots, are `podpath.safe_files`' new files.)
"""

from __future__ import annotations

import errno
import os
import secrets
import stat
from collections.abc import Iterable


class OutputError(Exception):
    """A file that could not be written, with a one-sentence reason."""


def write_text(path: str, text: str) -> str:
    """Write `text` (ASCII) to `path` as a whole; return the absolute path written."""
    return write_bytes(path, text.encode("ascii"))


def write_bytes(path: str, data: bytes) -> str:
    """Write `data` to `path` as a whole; return the absolute path written."""
    return write_chunks(path, (data,))


def write_chunks(path: str, chunks: Iterable[bytes]) -> str:
    """`write_bytes` of the chunks joined, without ever holding them joined.

    A snapshot at 10k Services is tens of MB: joined and encoded it was two more copies
    at the peak of `podpath snapshot -o FILE`.
    """
    target = os.path.abspath(path)
    directory, name = os.path.split(target)
    if not name or path.endswith("/"):
        raise OutputError(f"{target} is a directory")
    try:
        dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        raise OutputError(f"cannot write {target}: {exc.strerror}") from None
    try:
        existing = _lstat(name, dir_fd)
        if existing is not None and _is_stream(existing):
            _write_in_place(target, name, dir_fd, chunks)
        else:
            _check_replaceable(target, existing)
            _write_and_rename(target, name, dir_fd, chunks, existing)
    finally:
        os.close(dir_fd)
    return target


def _lstat(name: str, dir_fd: int) -> os.stat_result | None:
    try:
        return os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None


def _is_stream(st: os.stat_result) -> bool:
    return stat.S_ISFIFO(st.st_mode) or stat.S_ISCHR(st.st_mode)


def _check_replaceable(target: str, existing: os.stat_result | None) -> None:
    if existing is None:
        return
    if stat.S_ISLNK(existing.st_mode):
        raise OutputError(
            f"{target} is a symbolic link; podpath does not write through links "
            "(give the file's own path, or - for standard output)"
        )
    if stat.S_ISDIR(existing.st_mode):
        raise OutputError(f"{target} is a directory")
    if not stat.S_ISREG(existing.st_mode):
        raise OutputError(f"{target} is not a regular file")


def _write_in_place(target: str, name: str, dir_fd: int, data: Iterable[bytes]) -> None:
    """Write to a FIFO or character device that is already there (never created)."""
    try:
        fd = os.open(name, os.O_WRONLY | os.O_NOCTTY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
    except OSError as exc:
        raise OutputError(f"cannot write {target}: {exc.strerror}") from None
    try:
        _write_all(fd, data)
    except OSError as exc:
        raise OutputError(f"cannot write {target}: {exc.strerror}") from None
    finally:
        os.close(fd)


def _write_and_rename(
    target: str,
    name: str,
    dir_fd: int,
    data: Iterable[bytes],
    existing: os.stat_result | None,
) -> None:
    temp = f".{name[:200]}.{secrets.token_hex(6)}.podpath-tmp"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(temp, flags, 0o600, dir_fd=dir_fd)
    except OSError as exc:
        raise OutputError(f"cannot write {target}: {exc.strerror}") from None
    renamed = False
    try:
        try:
            # A file that is replaced keeps its permission bits (not its owner).
            if existing is not None:
                os.fchmod(fd, stat.S_IMODE(existing.st_mode))
            _write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(temp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        renamed = True
        _sync_directory(dir_fd)
    except OSError as exc:
        raise OutputError(f"cannot write {target}: {exc.strerror}") from None
    finally:
        if not renamed:
            _unlink_quietly(temp, dir_fd)


def _write_all(fd: int, data: Iterable[bytes]) -> None:
    for chunk in data:
        view = memoryview(chunk)
        while view:
            view = view[os.write(fd, view) :]


def _sync_directory(dir_fd: int) -> None:
    """fsync the directory, so the new name survives a crash; not all filesystems can."""
    try:
        os.fsync(dir_fd)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.EROFS, errno.EBADF):
            raise


def _unlink_quietly(temp: str, dir_fd: int) -> None:
    try:
        os.unlink(temp, dir_fd=dir_fd)
    except FileNotFoundError:
        # Already gone (linked and cleaned up, or never created): nothing to remove.
        return
