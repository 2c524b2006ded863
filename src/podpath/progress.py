"""How far long work is: which step of how many, and how many of its items are done.

Progress is told to a plain callable, `(what, done, total)`, as the cancel Event is a
plain Event: the collectors and the TUI's parse know nothing of who shows it (the CLI's
stderr line, the TUI's header and waiting screens). A step with a known number of
items (network namespaces, Service rows, conntrack entries) is told again as its items
are done, as `what` followed by `i/n`, at most every 0.1 s so that telling costs
nothing measurable (a clock read per item: ~3 ms for 50k items).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

# (what is being done, steps done before it, steps in all)
Progress = Callable[[str, int, int], object]


def _interval() -> float:
    """At most this often an item count is told (seconds): 0.1, or PODPATH_PROGRESS_INTERVAL
    (recordings and tests of a small node, whose steps end before 0.1 s)."""
    try:
        return max(0.0, float(os.environ.get("PODPATH_PROGRESS_INTERVAL", "0.1")))
    except ValueError:
        return 0.1


class Items:
    """Counts the items of one step and tells `progress` "what i/n" at most every interval."""

    def __init__(
        self, progress: Progress | None, what: str, done: int, total: int, size: int
    ) -> None:
        self.progress = progress
        self.what = what
        self.done = done
        self.total = total
        self.size = size
        self.count = 0
        self.interval = _interval()
        # The step's own start was just told: the first count waits one interval.
        self._due = time.monotonic() + self.interval

    def tick(self, count: int = 1) -> None:
        """`count` more items are done."""
        self.reached(self.count + count, self.size)

    def reached(self, count: int, size: int) -> None:
        """`count` items of `size` are done (the size may be known only once work started)."""
        self.count, self.size = count, size
        if self.progress is None:
            return
        now = time.monotonic()
        if now >= self._due:
            self._due = now + self.interval
            self.progress(items_text(self.what, self.count, self.size), self.done, self.total)


def items_text(what: str, count: int, size: int) -> str:
    """`network namespaces 120/251`: a step and how many of its items are done."""
    return f"{what} {min(count, size):,}/{size:,}"
