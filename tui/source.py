"""Where the app's snapshot comes from: given to the app by the composition root.

The TUI never reads a node. The CLI builds a source: a snapshot already loaded (a
file, the bundled demo, a test fixture), or a live collector passed in as a plain
callable that takes a `threading.Event` to cancel and a progress callable (so the
collector never imports Textual, and the TUI never imports the collectors).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from podpath.snapshot.model import Snapshot

# Told each step of a long task as it starts: (what, steps done, steps in all).
Progress = Callable[[str, int, int], object]
# (cancel, previous snapshot, progress) -> a fresh snapshot.
Collect = Callable[[threading.Event, Snapshot | None, Progress], Snapshot]


class CollectError(Exception):
    """Collecting failed for a reason the collector knows and words (one sentence)."""


@dataclass(frozen=True)
class SnapshotSource:
    """A snapshot source: an initial snapshot, and/or a way to collect a fresh one."""

    kind: str  # "live" | "file" | "lab" | "demo" | "test"
    name: str  # host root, file path, lab node name
    initial: Snapshot | None = None
    collect: Collect | None = None
    # One line shown under the header, e.g. why the demo opened a bundled snapshot.
    note: str | None = None
    # Snapshots of the cluster's other nodes: traces follow packets into them.
    peers: tuple[Snapshot, ...] = ()

    @property
    def can_refresh(self) -> bool:
        """True when `r` can collect a new snapshot."""
        return self.collect is not None

    def title(self, snapshot: Snapshot | None) -> str:
        """The header's sub-title: what is shown, and from when."""
        if self.kind == "live":
            where = f"live host {self.name}"
        elif self.kind == "lab":
            where = f"lab node {self.name}"
        else:
            where = f"{self.kind} {self.name}"
        if snapshot is None:
            return f"{where} · collecting…"
        taken = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(snapshot.taken_at))
        others = ""
        if self.peers:
            names = ", ".join(p.node.hostname for p in self.peers)
            others = f" (+{len(self.peers)} on :map and in traces: {names})"
        # The node first and where it came from last: at 80 columns the header cuts the
        # end of this line, and a snapshot file's path is the longest, least read part.
        return f"{snapshot.node.hostname}{others} · {taken} · {where}"


def static_source(
    snapshot: Snapshot,
    kind: str,
    name: str,
    note: str | None = None,
    peers: tuple[Snapshot, ...] = (),
) -> SnapshotSource:
    """A source that only shows one snapshot (a file, the demo, a test), with its peers."""
    return SnapshotSource(kind=kind, name=name, initial=snapshot, note=note, peers=peers)


def live_source(collect: Collect, name: str, kind: str = "live") -> SnapshotSource:
    """A source that collects in a worker thread, at start and on every refresh."""
    return SnapshotSource(kind=kind, name=name, collect=collect)
