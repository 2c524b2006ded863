"""TUI test fixtures: the fixed snapshot and the app factory the CLI uses too."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from podpath.analysis.index import SnapshotIndex
from podpath.analysis.parsed import ParsedSnapshot
from podpath.snapshot.codec import load_path
from podpath.snapshot.model import Snapshot
from podpath.tui.app import PodpathApp, create_app
from podpath.tui.source import static_source

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "snapshot.json"


@pytest.fixture(scope="session")
def fixed_snapshot() -> Snapshot:
    """The fixed snapshot (tests/tui/fixtures/make_snapshot.py)."""
    return load_path(str(FIXTURE))


@pytest.fixture
def index(fixed_snapshot: Snapshot) -> SnapshotIndex:
    """A fresh index over the fixed snapshot."""
    return SnapshotIndex(fixed_snapshot)


@pytest.fixture
def parsed(index: SnapshotIndex) -> ParsedSnapshot:
    """Parsed views over the fixed snapshot."""
    return ParsedSnapshot(index)


@pytest.fixture
def make_app(fixed_snapshot: Snapshot) -> Callable[..., PodpathApp]:
    """Build the app exactly as `podpath tui --snapshot` does (optionally another snapshot)."""

    def make(snap: Snapshot | None = None) -> PodpathApp:
        return create_app(static_source(snap or fixed_snapshot, "snapshot", "fixture.json"))

    return make
