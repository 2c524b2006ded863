"""Processes the lab starts and kills: identity by (pid, start time), never by name."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path


def start_time(pid: int) -> int | None:
    """Start time (clock ticks since boot) of a process, None when it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(errors="surrogateescape")
    except (FileNotFoundError, ProcessLookupError):
        return None
    # comm (field 2) may hold spaces and parentheses: split after its last ')'.
    fields = stat[stat.rindex(")") + 2 :].split()
    return int(fields[19])


def alive(pid: int, started: int) -> bool:
    """True when pid still names the process that started at `started`."""
    return pid > 0 and start_time(pid) == started


def children(pid: int) -> list[int]:
    """Direct children of a process (from /proc/PID/task/*/children)."""
    kids: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except FileNotFoundError:
        return kids
    for task in tasks:
        try:
            text = Path(f"/proc/{pid}/task/{task}/children").read_text()
        except FileNotFoundError:
            continue
        kids += [int(word) for word in text.split()]
    return kids


def nspid(host_pid: int) -> list[int]:
    """The NSpid line of a process: its PID in each nested PID namespace, outermost first."""
    for line in Path(f"/proc/{host_pid}/status").read_text().splitlines():
        if line.startswith("NSpid:"):
            return [int(word) for word in line.split()[1:]]
    return [host_pid]


# How long a SIGKILLed process may take to be gone: a ceiling, not a wait. A node's
# init exits only once its PID namespace is empty, which on a loaded machine (load 13
# on two cores) took longer than the 10 s this once was.
EXIT_TIMEOUT = 60.0


def kill_and_wait(pid: int, started: int, timeout: float = EXIT_TIMEOUT) -> bool:
    """SIGKILL our process (checked by start time) and wait until it is gone."""
    kill(pid, started)
    return wait_gone(pid, started, time.monotonic() + timeout)


def kill(pid: int, started: int) -> None:
    """SIGKILL our process (checked by start time); nothing when it is gone already."""
    if not alive(pid, started):
        return
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def wait_gone(pid: int, started: int, deadline: float) -> bool:
    """True once the process is gone (or a zombie) before `deadline` (time.monotonic)."""
    while True:
        _reap(pid)
        state = _state(pid)
        if state is None or state in ("Z", "X") or not alive(pid, started):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)


def _state(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(errors="surrogateescape")
    except (FileNotFoundError, ProcessLookupError):
        return None
    return stat[stat.rindex(")") + 2 :].split()[0]


def _reap(pid: int) -> None:
    # Reap it if it is our own child (a lab started by this process); harmless otherwise.
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def descendants(pid: int) -> list[int]:
    """Every process below `pid` in the process tree (breadth first)."""
    found: list[int] = []
    queue = [pid]
    while queue:
        kids = children(queue.pop(0))
        found += kids
        queue += kids
    return found


def host_pids(init_pid: int) -> dict[int, int]:
    """PID in the node -> PID here, for every process below a node's init."""
    out: dict[int, int] = {}
    for pid in descendants(init_pid):
        try:
            chain = nspid(pid)
        except (FileNotFoundError, ProcessLookupError):
            continue
        # NSpid lists the PID from our namespace inward: [here, node, container...].
        if len(chain) > 1:
            out[chain[1]] = pid
    return out
