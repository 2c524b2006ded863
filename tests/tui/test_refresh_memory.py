"""A refresh frees the snapshot it replaces.

The app moves what it loads out of the cyclic GC's reach (`gc.freeze`), and a finished
Textual worker is cyclic garbage: a worker that held the old snapshot's views (the
parse, a trace) or returned the collected snapshot kept them alive for good, ~270 MiB
a refresh at 10k Services (podpath.tui.weak_work).
"""

from __future__ import annotations

import gc
import sys
import threading
import weakref
from pathlib import Path

import pytest

from podpath.snapshot.model import Snapshot
from podpath.tui import state
from podpath.tui.app import create_app
from podpath.tui.screens.trace import TraceScreen
from podpath.tui.source import Progress, live_source
from podpath.tui.state import Loaded

sys.path.insert(0, str(Path(__file__).resolve().parent))
from scale_snapshot import build, pod_ip  # noqa: E402

SIZE = (120, 36)


async def test_a_refresh_frees_the_snapshot_it_replaces(monkeypatch: pytest.MonkeyPatch) -> None:
    """After a parse in the worker, a trace and two refreshes, only the shown snapshot and
    its views are alive: every earlier one is freed, frozen heap or not."""
    monkeypatch.setattr(state, "INLINE_PREPARE_BYTES", 0)  # prepare in the worker
    snapshots: list[weakref.ref[Snapshot]] = []

    def collect(cancel: threading.Event, previous: Snapshot | None, progress: Progress) -> Snapshot:
        snap = build(pods=10, service_count=300, conntrack=200)
        snapshots.append(weakref.ref(snap))
        return snap

    app = create_app(live_source(collect, "/"))
    views: list[weakref.ref[Loaded]] = []
    async with app.run_test(size=SIZE) as pilot:
        for refresh in range(3):
            if refresh:
                await pilot.press("r")
            for _ in range(600):
                loaded = app.loaded
                if loaded is not None and loaded.ready.is_set() and len(views) == refresh:
                    views.append(weakref.ref(loaded))
                    del loaded
                    break
                await pilot.pause(0.05)
            await app.workers.wait_for_complete()
            if refresh == 0:
                app.push_screen(TraceScreen(pod_ip(0), pod_ip(1)))
                await pilot.pause()
                await app.workers.wait_for_complete()
                await pilot.pause()
                screen = app.screen
                assert isinstance(screen, TraceScreen) and screen.trace is not None
                await pilot.press("escape")
            await pilot.pause()
        assert len(views) == 3 and len(snapshots) == 3
        gc.collect()
        alive = [i for i, ref in enumerate(views) if ref() is not None]
        assert alive == [2], f"views of snapshots {alive} alive; only the shown one (2) should be"
        alive = [i for i, ref in enumerate(snapshots) if ref() is not None]
        assert alive == [2], f"snapshots {alive} alive; only the shown one (2) should be"
