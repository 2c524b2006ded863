"""xt_recent lists under a host root built here: the kernel's clock is read only when a
list has an entry, and /proc/timer_list only up to its first `jiffies:` line.

The lab test (test_kernel_state_lab.py) holds the lists and their ages against a real
node's /proc; these build the files the kernel would show, to reach what a lab node
does not: a node whose lists are all empty, and a clock line across a read's chunks.
"""

from __future__ import annotations

import importlib
import threading
from pathlib import Path
from typing import Any

import pytest

from podpath.collectors.hostroot import HostRoot

xt_recent = importlib.import_module("podpath.collectors.proc.xt_recent")

HZ = 250
UPTIME = 1000.0
# What the kernel's jiffies read after UPTIME seconds (INITIAL_JIFFIES = 2^32 - 300 HZ).
NOW = 2**32 + int((UPTIME - 300) * HZ)
SEEN = NOW - 40 * HZ  # an entry last seen 40 s before


def _node(tmp_path: Path, lists: dict[str, str], timer_list: bytes | None) -> Path:
    recent = tmp_path / "proc" / "1" / "net" / "xt_recent"
    recent.mkdir(parents=True)
    for name, text in lists.items():
        (recent / name).write_text(text)
    (tmp_path / "proc" / "uptime").write_text(f"{UPTIME:.2f} 1800.00\n")
    if timer_list is not None:
        (tmp_path / "proc" / "timer_list").write_bytes(timer_list)
    return tmp_path


def _timer_list(line_at: int, after: int) -> bytes:
    """A timer_list whose CPU 0 jiffies line begins at byte `line_at`, with another CPU's
    part (`after` bytes, then a later, different jiffies line) behind it."""
    filler = b"  #0: <0000000000000000>, tick_sched_timer, S:01\n"
    head = b"Timer List Version: v0.9\n" + filler * ((line_at - 100) // len(filler))
    head += b"  .offset: " + b"0" * (line_at - len(head) - 12) + b"\n"
    assert len(head) == line_at
    tail = b"cpu: 1\n" + filler * (after // len(filler)) + f"jiffies: {NOW + 7}\n".encode()
    return head + f"jiffies: {NOW}\n".encode() + tail


def _collect(root: Path) -> tuple[Any, list[Any]]:
    with HostRoot(str(root)) as host:
        found: tuple[Any, list[Any]] = xt_recent.collect_xt_recent(host, threading.Event())
        return found


def test_empty_lists_need_no_clock(tmp_path: Path) -> None:
    """Lists with no entry are returned as they are, with no gap for a clock never read
    (here there is none to read)."""
    lists, gaps = _collect(_node(tmp_path, {"KUBE-SEP-A": "", "KUBE-SEP-B": ""}, None))
    assert [(r.name, r.entries) for r in lists] == [("KUBE-SEP-A", ()), ("KUBE-SEP-B", ())]
    assert gaps == []


def test_an_entry_without_a_clock_is_kept_with_a_gap(tmp_path: Path) -> None:
    entry = f"src=10.244.0.5 ttl: 64 last_seen: {SEEN} oldest_pkt: 1 {SEEN}\n"
    lists, gaps = _collect(_node(tmp_path, {"KUBE-SEP-A": entry}, None))
    assert [(e.address, e.last_seen, e.age) for e in lists[0].entries] == [
        ("10.244.0.5", SEEN, None)
    ]
    assert {g.subject for g in gaps} == {"xt_recent ages"}


CHUNK = 64 * 1024
LINE = len(f"jiffies: {NOW}\n")


@pytest.mark.parametrize(
    "line_at",
    [200, CHUNK - LINE, CHUNK - LINE + 1, CHUNK - 4, CHUNK - 12, CHUNK + 10, 300 * 1024],
    ids=[
        "first-chunk",
        "line-ends-at-the-cut",
        "newline-cut",
        "word-cut",
        "number-cut",
        "second-chunk",
        "fifth-chunk",
    ],
)
def test_the_clock_is_the_first_jiffies_line_read_no_further(
    tmp_path: Path, line_at: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The age comes from CPU 0's jiffies line wherever the reads cut it, and the file is
    read no further than the chunk that ends that line."""
    entry = f"src=10.244.0.5 ttl: 64 last_seen: {SEEN} oldest_pkt: 1 {SEEN}\n"
    text = _timer_list(line_at, after=256 * 1024)
    root = _node(tmp_path, {"KUBE-SEP-A": entry}, text)
    read: list[int] = []
    timer_fds: list[int] = []
    real_read, real_close, real_open = xt_recent.os.read, xt_recent.os.close, HostRoot.proc_open

    def opened(host: HostRoot, rel: str, flags: int = 0) -> int:
        fd: int = real_open(host, rel, flags)
        if rel == "timer_list":
            timer_fds.append(fd)
        return fd

    def counted(fd: int, size: int) -> bytes:
        chunk: bytes = real_read(fd, size)
        if fd in timer_fds:
            read.append(len(chunk))
        return chunk

    def closed(fd: int) -> None:
        if fd in timer_fds:
            timer_fds.remove(fd)  # the number may be given to the next file opened
        real_close(fd)

    monkeypatch.setattr(HostRoot, "proc_open", opened)
    monkeypatch.setattr(xt_recent.os, "read", counted)
    monkeypatch.setattr(xt_recent.os, "close", closed)
    lists, gaps = _collect(root)
    assert gaps == []
    (entry_found,) = lists[0].entries
    assert entry_found.age == pytest.approx(40.0)
    assert line_at + LINE <= sum(read) < line_at + LINE + CHUNK
