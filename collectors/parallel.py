"""Run a /proc scan on every core: the first part here, the others in forked children.

Reading /proc is syscall-bound, yet every syscall still costs microseconds of Python
around it, and threads share one GIL. Reading stat, uid and the 8 ns links of 1,500
processes on this 2-core machine took 96 ms on one thread, 86 ms on two threads and
60 ms split between this process and one forked child (fd tables: 57, 47 and 33 ms).
So a part that can run in a child does (`podpath.forked`): the child computes it and
sends the result back marshalled over a pipe.

fork() is used only while this process has a single thread (the TUI collects on a
worker thread next to Textual's): then, and wherever fork is not available, the parts
run on threads as before. A child that fails for any reason has its part computed here
instead, so no result is ever lost.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Sequence
from typing import TypeVar, cast

from podpath.forked import Forked, can_fork

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


def run_parts(work: Callable[[P], R], parts: Sequence[P]) -> list[R]:
    """`[work(p) for p in parts]`, the parts after the first in forked children when safe.

    `work` must return what `marshal` can carry (None, bool, int, float, str, bytes,
    and tuples, lists, sets and dicts of them); children see this process's memory
    as it was at fork time, so `work` must not rely on changes made after it.
    """
    if len(parts) <= 1 or not can_fork():
        return _on_threads(work, parts)
    children: list[Forked[R] | None] = []
    try:
        for part in parts[1:]:
            children.append(Forked.start(functools.partial(work, part)))
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
