"""Time the TUI on a scale snapshot, headless: a developer's tool, not a test (no timing asserts).

    .venv/bin/python tests/tui/measure_scale.py [SNAPSHOT.json] [--needle svc-12] [--repeats 3]

Prints, per run: first frame; opening Services (screen shown, and rows shown: the
Service view may still be parsing in the background); each filter keystroke through
Pilot (which adds its own ~90 ms of waiting), and the app's own repaint — from the
filter change to the refreshed table — without Pilot's overhead.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

from podpath.tui.app import PodpathApp, create_app
from podpath.tui.base_screen import TableScreen
from podpath.tui.rows import MORE_KEY
from podpath.tui.source import static_source
from podpath.tui.table import RowTable

from podpath.snapshot.codec import load_path
from podpath.snapshot.model import Snapshot


async def _after_refresh(app: PodpathApp) -> None:
    """Wait until the screen has refreshed once after now."""
    done = asyncio.Event()
    app.screen.call_after_refresh(done.set)
    await done.wait()


async def _until(app: PodpathApp, ready: object, timeout: float = 60.0) -> None:
    """Poll (every 5 ms) until `ready()` is true."""
    end = time.perf_counter() + timeout
    while not ready():  # type: ignore[operator]
        if time.perf_counter() > end:
            raise TimeoutError("the screen never became ready")
        await asyncio.sleep(0.005)


def _services_shown(app: PodpathApp) -> bool:
    screen = app.screen
    if not isinstance(screen, TableScreen):
        return False
    tables = screen.query("#table").results(RowTable)
    table = next(iter(tables), None)
    return table is not None and table.row_count > 0 and table.selected_key not in (None, MORE_KEY)


async def run_once(snap: Snapshot, needle: str) -> dict[str, float]:
    """One run: first frame, Services, filter keys (Pilot and app-only)."""
    t0 = time.perf_counter()
    app = create_app(static_source(snap, "file", "scale.json"))
    out: dict[str, float] = {}
    async with app.run_test(size=(160, 48)) as pilot:
        # run_test yields once the app is ready (home composed and shown); Pilot's pause
        # also waits up to 1 s for the process to go CPU-idle, so it counts the prepare
        # worker's parsing too.
        out["app_ready"] = time.perf_counter() - t0
        await pilot.pause()
        out["first_frame"] = time.perf_counter() - t0
        t = time.perf_counter()
        app.open_screen("svc")
        await asyncio.sleep(0)
        await _after_refresh(app)
        out["services_paint"] = time.perf_counter() - t
        await pilot.pause()
        await pilot.pause()
        out["services_screen"] = time.perf_counter() - t
        await _until(app, lambda: _services_shown(app))
        out["services_rows"] = time.perf_counter() - t
        await pilot.press("slash")
        await pilot.pause()
        keys: list[float] = []
        for ch in needle:
            t = time.perf_counter()
            await pilot.press(ch)
            await pilot.pause()
            keys.append(time.perf_counter() - t)
        for _ in needle:
            t = time.perf_counter()
            await pilot.press("backspace")
            await pilot.pause()
            keys.append(time.perf_counter() - t)
        out["pilot_key_median"] = statistics.median(keys)
        out["pilot_key_max"] = max(keys)
        screen = app.screen
        assert isinstance(screen, TableScreen)
        own: list[float] = []
        for text in [needle[: i + 1] for i in range(len(needle))] + [needle[:i] for i in range(len(needle) - 1, -1, -1)]:
            t = time.perf_counter()
            screen.needle = text
            screen.repaint_rows()
            await _after_refresh(app)
            own.append(time.perf_counter() - t)
        out["app_repaint_median"] = statistics.median(own)
        out["app_repaint_max"] = max(own)
        # Services again, now that the views are parsed: what a user sees after home's counts.
        app.pop_screen()
        await pilot.pause()
        t = time.perf_counter()
        app.open_screen("svc")
        await _until(app, lambda: _services_shown(app))
        await _after_refresh(app)
        out["services_when_parsed"] = time.perf_counter() - t
    return out


def main(argv: list[str]) -> int:
    """Build or load the snapshot, run the app `repeats` times, print each figure."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("snapshot", nargs="?")
    parser.add_argument("--needle", default="svc-12")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    if args.snapshot:
        snap = load_path(args.snapshot)
    else:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from scale_snapshot import build

        snap = build()
    runs = [asyncio.run(run_once(snap, args.needle)) for _ in range(args.repeats)]
    for key in runs[0]:
        values = [r[key] for r in runs]
        sys.stdout.write(f"{key:20} median {statistics.median(values) * 1000:8.1f} ms   "
                         f"all {' '.join(f'{v * 1000:.0f}' for v in values)}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
