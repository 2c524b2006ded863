"""The loaded snapshot with its index and parsed views, shared by every screen."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from podpath.tui.actions import Actions
from podpath.tui.adapters import Views
from podpath.tui.source import SnapshotSource

from podpath.snapshot.index import SnapshotIndex
from podpath.snapshot.model import Snapshot


@dataclass
class Loaded:
    """One snapshot and everything derived from it (built lazily, cached)."""

    snapshot: Snapshot
    index: SnapshotIndex = field(init=False)
    views: Views = field(init=False)

    def __post_init__(self) -> None:
        self.index = SnapshotIndex(self.snapshot)
        self.views = Views(self.index)


class AppState(Protocol):
    """What screens may ask of the app (so screens do not import the app module)."""

    loaded: Loaded | None
    source: SnapshotSource
    actions: Actions

    def open_screen(self, name: str, argument: str | None = None) -> None:
        """Open a screen by its jump name (pods, svc, ...), with an optional argument."""
        ...

    def start_trace(self, source: str, destination: str = "") -> None:
        """Open the Trace screen with a source (and destination) filled in."""
        ...
