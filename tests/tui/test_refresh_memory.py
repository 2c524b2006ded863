"""A refresh frees the snapshot it replaces.

The app moves what it loads out of the cyclic GC's reach (`gc.freeze`), and a finished
Textual worker or a closed screen is cyclic garbage: one that held the old snapshot's
views (the parse, a trace, a screen's rows) or the collected snapshot kept them alive
for good, ~270 MiB a refresh at 10k Services (podpath.tui.weak_work,
BaseScreen.release).
"""

from __future__ import annotations

import gc
import sys
import threading
import weakref
from pathlib import Path

import pytest
from textual.pilot import Pilot

from podpath.snapshot.model import Snapshot
from podpath.tui import state
from podpath.tui.app import PodpathApp, create_app
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
            await _next_shown(pilot, views)
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


@pytest.mark.parametrize("view", ["svc", "pod", "trace", "map", "ct", "problems"])
async def test_a_screen_closed_after_a_refresh_frees_its_snapshot(
    monkeypatch: pytest.MonkeyPatch, view: str
) -> None:
    """A screen open across a refresh and closed after it (frozen with the heap, then
    cyclic garbage) holds none of the snapshots once another refresh replaced them."""
    monkeypatch.setattr(state, "INLINE_PREPARE_BYTES", 0)  # prepare in the worker

    def collect(cancel: threading.Event, previous: Snapshot | None, progress: Progress) -> Snapshot:
        return build(pods=10, service_count=300, conntrack=200)

    app = create_app(live_source(collect, "/"))
    views: list[weakref.ref[Loaded]] = []

    async with app.run_test(size=SIZE) as pilot:
        await _next_shown(pilot, views)
        if view == "trace":
            app.push_screen(TraceScreen(pod_ip(0), pod_ip(1)))
        else:
            loaded = app.loaded
            assert loaded is not None
            pod = loaded.snapshot.pods[0]
            app.open_screen(view, f"{pod.namespace}/{pod.name}" if view == "pod" else None)
            del loaded, pod
        await pilot.pause()
        await app.workers.wait_for_complete()
        opened = app.screen
        await pilot.press("r")
        await _next_shown(pilot, views)
        assert app.screen is opened
        await pilot.press("escape")
        await pilot.pause()
        assert app.screen is not opened
        del opened
        await pilot.press("r")
        await _next_shown(pilot, views)
        assert len(views) == 3
        gc.collect()
        alive = [i for i, ref in enumerate(views) if ref() is not None]
        assert alive == [2], f"views of snapshots {alive} alive; only the shown one (2) should be"


async def _next_shown(pilot: Pilot[None], views: list[weakref.ref[Loaded]]) -> None:
    """Wait until the app shows a snapshot not in `views`, its views parsed; add it."""
    app = pilot.app
    assert isinstance(app, PodpathApp)
    for _ in range(600):
        loaded = app.loaded
        if loaded is not None and loaded.ready.is_set() and all(v() is not loaded for v in views):
            views.append(weakref.ref(loaded))
            break
        await pilot.pause(0.05)
    await app.workers.wait_for_complete()
    await pilot.pause()
