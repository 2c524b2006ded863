"""The doctor's sweep of a big snapshot's paths, computed ahead in a forked child.

Home's problems count is the doctor's (`podpath.doctor.diagnose`): kube-proxy's
Services, then a sweep of every path, ~1.5 s of one core at 10k Services. In the app
it waited for the first frame and then for the worker thread's Services, both on the
core the event loop uses. A child forked when the app is made (before Textual starts
any thread: `podpath.forked` forks only then) sweeps the paths on the second core from
the start, while this process paints and parses the Services its screens show
(docs/performance.md, "The TUI's problems count, computed ahead").

The child judges the paths only (`podpath.doctor.paths_judged`): the node's facts are
checked by the app's worker for home's first count anyway, and checking them in the
child too took the sweep's core from it for ~0.3 s. The worker joins the two with
`podpath.doctor.findings_of`, which makes them the in-process doctor's findings. A child
that fails or is given up gives none, and the worker then runs the doctor itself, as it
does on a snapshot the app collected (threads run then).
"""

from __future__ import annotations

import pickle
import threading
from functools import partial

from podpath.analysis.index import SnapshotIndex
from podpath.doctor import paths_judged
from podpath.doctor.sweep import Judged
from podpath.forked import Forked
from podpath.snapshot.model import Snapshot


class DoctorAhead:
    """One forked child judging the doctor's paths; taken once, or cancelled."""

    def __init__(self, child: Forked[list[Judged]]) -> None:
        self._child = child
        self._lock = threading.Lock()
        # Set by the first of take() and cancel(): the other then leaves the child alone.
        self._claimed = False

    def take(self) -> list[Judged] | None:
        """The child's judged paths (waiting for them), or None: it failed, or was cancelled."""
        with self._lock:
            if self._claimed:
                return None
            self._claimed = True
        try:
            ok, found = self._child.result()
        finally:
            self._child.stop()
        return found if ok else None

    def cancel(self) -> None:
        """The app is leaving: kill the child, reaped here unless take() is reading it."""
        with self._lock:
            reading, self._claimed = self._claimed, True
        if reading:
            self._child.cancel()  # take() then reads the pipe's end and reaps it
        else:
            self._child.stop()


def start(snapshot: Snapshot, peers: tuple[Snapshot, ...] = ()) -> DoctorAhead | None:
    """Fork the child judging the paths of `snapshot` (traces crossing into `peers`), or
    None where this process may not fork."""
    child = Forked.start(partial(_judged, snapshot, peers), pickle.dumps, pickle.loads)
    return DoctorAhead(child) if child is not None else None


# What the child's sweep built, held until it leaves (podpath.doctor.paths_judged).
_KEPT: list[object] = []


def _judged(snapshot: Snapshot, peers: tuple[Snapshot, ...]) -> list[Judged]:
    """The paths `Loaded._diagnose` would judge on the same snapshots (in the child)."""
    indexes = [SnapshotIndex(s) for s in (snapshot, *peers)]
    _KEPT.append(indexes)
    return paths_judged(indexes, _KEPT)
