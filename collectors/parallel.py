"""Run a /proc scan on every core: the first part here, the others in forked children.

Reading /proc is syscall-bound, yet every syscall still costs microseconds of Python
around it, and threads share one GIL. Reading stat, uid and the 8 ns links of 1,500
processes on this 2-core machine took 96 ms on one thread, 86 ms on two threads and
60 ms split between this process and one forked child (fd tables: 57, 47 and 33 ms).
So a part that can run in a child does: the child computes it, sends the result back
marshalled over a pipe and leaves with `os._exit`.

fork() is used only while this process has a single thread: a child of a
multi-threaded process inherits locks that other threads may hold (the TUI collects
on a worker thread next to Textual's). Then, and wherever fork is not available, the
parts run on threads as before. A child that fails for any reason (fork refused,
killed, bad output) has its part computed here instead, so no result is ever lost.
"""

from __future__ import annotations

import marshal
import os
import threading
from collections.abc import Callable, Sequence
from typing import Any, TypeVar, cast

P = TypeVar("P")
R = TypeVar("R")

# More children than this only adds fork and copy cost for a scan of a few ms each.
_MAX_PARTS = 4


def cores() -> int:
    """CPUs this process may run on (its affinity mask, as cgroup cpusets narrow it)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def part_count(items: int, min_per_part: int) -> int:
    """How many parts to split `items` units of work into: one per core, each worth a fork."""
    return max(1, min(cores(), _MAX_PARTS, items // max(1, min_per_part)))


def split(
    items: Sequence[P], parts: int, weight: Callable[[P], float] | None = None
) -> list[list[P]]:
    """`items` cut into `parts` contiguous runs of about equal total weight, order kept."""
    if parts <= 1 or len(items) <= 1:
        return [list(items)]
    weights = [1.0] * len(items) if weight is None else [weight(i) for i in items]
    total = sum(weights)
    out: list[list[P]] = [[]]
    done = 0.0
    for item, w in zip(items, weights, strict=True):
        # Start the next run once this one holds its share (never past the last run).
        if out[-1] and len(out) < parts and done >= total * len(out) / parts:
            out.append([])
        out[-1].append(item)
        done += w
    return out


def can_fork() -> bool:
    """Whether a child may be forked safely: fork exists and this process has one thread."""
    return hasattr(os, "fork") and threading.active_count() == 1


def run_parts(work: Callable[[P], R], parts: Sequence[P]) -> list[R]:
    """`[work(p) for p in parts]`, the parts after the first in forked children when safe.

    `work` must return what `marshal` can carry (None, bool, int, float, str, bytes,
    and tuples, lists, sets and dicts of them); children see this process's memory
    as it was at fork time, so `work` must not rely on changes made after it.
    """
    if len(parts) <= 1 or not can_fork():
        return _on_threads(work, parts)
    children: list[_Child | None] = []
    try:
        for part in parts[1:]:
            children.append(_Child.start(work, part))
        results = [work(parts[0])]
        for part, child in zip(parts[1:], children, strict=True):
            ok, value = child.result() if child is not None else (False, None)
            # The child ran the same `work`: its marshalled value is an R.
            results.append(cast(R, value) if ok else work(part))
        return results
    finally:
        for child in children:
            if child is not None:
                child.stop()


def _on_threads(work: Callable[[P], R], parts: Sequence[P]) -> list[R]:
    if len(parts) <= 1:
        return [work(p) for p in parts]
    # Imported here: the forked path, the one `podpath ls namespaces` takes, never needs it.
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=len(parts), thread_name_prefix="podpath-scan") as pool:
        return list(pool.map(work, parts))


class _Child:
    """One forked child computing one part; `result` collects it, `stop` always reaps it."""

    def __init__(self, pid: int, read_fd: int) -> None:
        self.pid = pid
        self.read_fd = read_fd
        self.reaped = False

    @classmethod
    def start(cls, work: Callable[[P], R], part: P) -> _Child | None:
        """Fork a child that writes `marshal.dumps(work(part))` to a pipe; None if fork failed."""
        try:
            read_fd, write_fd = os.pipe()
        except OSError:
            return None
        try:
            pid = os.fork()
        except OSError:
            os.close(read_fd)
            os.close(write_fd)
            return None
        if pid == 0:  # pragma: no cover - runs in the child, which never returns
            code = 1
            try:
                os.close(read_fd)
                # The caller promised a marshal-able result (see run_parts).
                view = memoryview(marshal.dumps(cast(Any, work(part))))
                while view:
                    view = view[os.write(write_fd, view) :]
                code = 0
            finally:
                # Never run the parent's code (finally blocks, atexit, buffered stdout)
                # in the child: leave at once. A failure is reported by the exit code and
                # the parent computes the part itself.
                os._exit(code)
        os.close(write_fd)
        return cls(pid, read_fd)

    def result(self) -> tuple[bool, object]:
        """(True, value) once the child has exited cleanly with its result, else (False, None)."""
        chunks = []
        try:
            while chunk := os.read(self.read_fd, 1 << 20):
                chunks.append(chunk)
        except OSError:
            return False, None
        _, status = os.waitpid(self.pid, 0)
        self.reaped = True
        if not os.WIFEXITED(status) or os.WEXITSTATUS(status) != 0:
            return False, None
        try:
            return True, marshal.loads(b"".join(chunks))
        except (EOFError, ValueError, TypeError):
            return False, None

    def stop(self) -> None:
        """Kill the child if it still runs (an exception or Ctrl-C here), reap it, close its pipe."""
        if not self.reaped:
            import signal  # only on this rare path: signal's enums cost an import

            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass  # it exited already; waitpid below reaps it
            os.waitpid(self.pid, 0)
            self.reaped = True
        os.close(self.read_fd)
