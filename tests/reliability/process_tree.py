"""Processes seen through /proc: descendants of a PID, identified by PID and start time."""

from __future__ import annotations

import time
from pathlib import Path

Identity = tuple[int, int]  # (pid, start time in clock ticks): a PID alone is reused


def _stat(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # comm may hold spaces and parentheses: the fields start after the last ")".
    return text.rsplit(")", 1)[1].split()


def identity(pid: int) -> Identity | None:
    """(pid, start time) of a live process, None when it is gone."""
    fields = _stat(pid)
    return (pid, int(fields[19])) if fields else None


def alive(who: Identity) -> bool:
    """True while that very process runs (not a zombie, not a new process with its PID)."""
    fields = _stat(who[0])
    return fields is not None and int(fields[19]) == who[1] and fields[0] not in ("Z", "X")


def descendants(root: int) -> set[Identity]:
    """Every live process below `root` (children, grandchildren, ...)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _stat(int(entry.name))
            if fields is not None:
                parents[int(entry.name)] = int(fields[1])
    found: set[Identity] = set()
    frontier = {root}
    while frontier:
        frontier = {pid for pid, ppid in parents.items() if ppid in frontier}
        for pid in frontier:
            who = identity(pid)
            if who is not None:
                found.add(who)
    return found


def cmdline(pid: int) -> list[str]:
    """The argv of a process ([] when it is gone or a kernel thread)."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [a.decode("utf-8", "surrogateescape") for a in raw.split(b"\0") if a]


def wait_until_gone(procs: set[Identity], seconds: float) -> set[Identity]:
    """Those of `procs` still alive after up to `seconds` (a killed group takes a moment)."""
    deadline = time.monotonic() + seconds
    left = {p for p in procs if alive(p)}
    while left and time.monotonic() < deadline:
        time.sleep(0.05)
        left = {p for p in left if alive(p)}
    return left
