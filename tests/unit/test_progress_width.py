"""The CLI's progress line on a real pty of a given width, replayed through a terminal
emulator (pyte): whatever it said, the screen ends clean, at 80 columns and after a
resize."""

from __future__ import annotations

import fcntl
import os
import pty
import struct
import subprocess
import sys
import termios
from pathlib import Path
from typing import TextIO

import pyte

import podpath
from podpath.cli.progress import ProgressLine, fit

# The line the acceptance review saw left behind on an 80-column terminal.
NETFILTER = "netfilter rules and conntrack (iptables-save, nft, conntrack)"


def _set_size(fd: int, columns: int, rows: int = 24) -> None:
    """Give the pty a window size, as a terminal emulator does (TIOCSWINSZ)."""
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))


def _read_all(controller: int) -> bytes:
    """Everything written to the pty so far (the writer's end is closed)."""
    chunks = []
    while True:
        try:
            chunk = os.read(controller, 4096)
        except OSError:  # EIO: the other end is closed
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


def _screen(output: bytes, columns: int, rows: int = 24) -> pyte.Screen:
    """The screen a terminal of that size shows after `output` (autowrap on, as xterm)."""
    screen = pyte.Screen(columns, rows)
    pyte.ByteStream(screen).feed(output)
    return screen


def _blank(screen: pyte.Screen) -> bool:
    return all(not line.strip() for line in screen.display)


def test_a_long_line_is_cut_to_80_columns_and_erased_whole() -> None:
    """At 80 columns every update stays on one row and the erase leaves nothing behind."""
    controller, terminal = pty.openpty()
    try:
        _set_size(terminal, 80)
        stream = os.fdopen(terminal, "w", encoding="utf-8", closefd=True)
        with ProgressLine(stream) as progress:
            progress("node facts", 0, 8)
            progress(NETFILTER, 4, 8)
            progress("pods " + "x" * 200, 5, 8)
        written = _read_all_after_close(controller, stream)
    finally:
        os.close(controller)
    screen = _screen(written, 80)
    assert _blank(screen), screen.display
    assert (screen.cursor.x, screen.cursor.y) == (0, 0)
    # Each update was one row: it never reached the last column (no wrap pending).
    lines = written.decode().split("\r\x1b[K")
    assert max(len(line) for line in lines) == 79
    assert lines[2] == fit(f"podpath: reading {NETFILTER} (5/8)…", 80)
    assert lines[2].startswith("podpath: reading netfilter rules and conntrack (")


def _read_all_after_close(controller: int, stream: TextIO) -> bytes:
    """Close the writer (the context's erase is flushed already), then read the pty."""
    stream.close()
    return _read_all(controller)


def test_the_width_is_read_again_after_a_resize() -> None:
    """Narrowed from 120 to 40 columns between updates, the next line fits 40."""
    controller, terminal = pty.openpty()
    try:
        _set_size(terminal, 120)
        stream = os.fdopen(terminal, "w", encoding="utf-8", closefd=True)
        with ProgressLine(stream) as progress:
            progress(NETFILTER, 4, 8)
            _set_size(terminal, 40)
            progress(NETFILTER, 5, 8)
        written = _read_all_after_close(controller, stream)
    finally:
        os.close(controller)
    wide, narrow = written.decode().split("\r\x1b[K")[1:3]
    assert wide == f"podpath: reading {NETFILTER} (5/8)…"
    assert narrow == fit(wide.replace("5/8", "6/8"), 40) and len(narrow) == 39
    assert _blank(_screen(written.split(b"\r\x1b[K", 2)[2], 40))


def test_fit_counts_wide_characters_as_two_columns() -> None:
    """A line of CJK names is cut by the columns it takes, not by its characters."""
    assert fit("漢字漢字", 6) == "漢字…"
    assert fit("short", 80) == "short"
    assert fit("abc", 1) == "…"


def test_doctor_on_a_40_column_pty_ends_on_a_clean_screen() -> None:
    """`podpath doctor` (its line is longer than 40 columns) leaves no residue behind."""
    demo = Path(podpath.__file__).resolve().parent / "data" / "demo-snapshot.json"
    argv = [sys.executable, "-m", "podpath", "doctor", "--json", "--snapshot", str(demo)]
    env = {**os.environ, "PODPATH_PROGRESS_INTERVAL": "0"}
    controller, terminal = pty.openpty()
    try:
        _set_size(terminal, 40)
        proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=terminal, env=env
        )
        os.close(terminal)
        written = _read_all(controller)
        assert proc.wait(timeout=120) in (0, 1)
    finally:
        os.close(controller)
    assert b"judging Service paths" in written
    assert len(max(written.split(b"\r\x1b[K"), key=len).decode()) <= 39
    assert _blank(_screen(written, 40))
