"""What a TUI worker may hold: the snapshot's views only by a weak reference.

A Textual worker that has finished is cyclic garbage: its task runs in a context that
holds the worker (textual/worker.py sets `active_worker` inside the task), so only the
cyclic GC frees it. The app moves what it loads out of that GC's reach (`gc.freeze`:
`settle_heap` in tui/app.py, the end of `Loaded.prepare`), and a worker alive then is
frozen with it and never freed, nor anything it holds: the parse worker's `Loaded`
kept every replaced snapshot's views alive, ~270 MiB a refresh at 10k Services
(docs/performance.md, "A refresh frees what it replaces"). So a worker is given its
`Loaded` through `weakly` (the app's `@work` parse worker, whose arguments Textual
keeps, a `weakref.ref` to it), and the collecting worker hands its snapshot on in a
message, not as its result.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


def weakly(work: Callable[[T], R], target: T) -> Callable[[], R | None]:
    """`work(target)` holding `target` weakly: None, without running, once it is gone
    (a newer snapshot replaced it before the worker ran)."""
    ref = weakref.ref(target)

    def run() -> R | None:
        found = ref()
        return None if found is None else work(found)

    return run
