"""The app on a node at the benchmark's scale: 250 pods, 10k Services, 50k conntrack entries.

Correctness only (timings come from the benchmark, benchmarks/run, figure 5):
home comes up before the rules are parsed, and Services are shown, filtered and capped.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

from podpath.snapshot.model import Snapshot
from podpath.tui.app import PodpathApp, create_app
from podpath.tui.rows.model import MAX_ROWS, MORE_KEY
from podpath.tui.screens.base import TableScreen
from podpath.tui.screens.services import ServicesScreen
from podpath.tui.source import static_source

sys.path.insert(0, str(Path(__file__).resolve().parent))
from scale_snapshot import build  # noqa: E402

SIZE = (160, 48)


@pytest.fixture(scope="module")
def scale() -> Snapshot:
    """The scale snapshot (built once for this module: a few seconds)."""
    return build()


async def _until_ready(app: PodpathApp) -> None:
    """Wait for the prepare worker (it parses 110k rules and 50k entries)."""
    for _ in range(1200):
        if app.loaded is not None and app.loaded.ready.is_set():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the views were never prepared")


async def test_scale_snapshot_opens_filters_and_shows_services(scale: Snapshot) -> None:
    """10k Services: home first shows "…", then the counts; Services filter to the right rows, capped."""
    app = create_app(static_source(scale, "file", "scale.json"))
    async with app.run_test(size=SIZE) as pilot:
        assert isinstance(app.screen, TableScreen)
        home = app.screen.table
        assert home._cells["go:svc"][1].text == "…"  # not parsed before the first frame
        await _until_ready(app)
        await pilot.pause()
        assert isinstance(app.screen, TableScreen)
        assert app.screen.table._cells["go:svc"][1].text == "10000"
        app.open_screen("svc")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, ServicesScreen)
        table = screen.table
        assert table.row_count == MAX_ROWS + 1 and table._keys[-1] == MORE_KEY
        assert f"{10_000 - MAX_ROWS:,} more" in table._cells[MORE_KEY][0].text
        await pilot.press("slash", *"svc-1234", "enter")
        await pilot.pause()
        # svc-1234 and svc-12340.. do not exist (10k): exactly one Service matches.
        assert [c[0].text for c in table._cells.values()] == ["team-9/svc-1234:http"]
        await pilot.press("escape")  # clears the filter
        await pilot.press("slash", *"svc-12", "enter")
        await pilot.pause()
        # svc-12, svc-120..129, svc-1200..1299: 111 matches, all shown.
        assert table.row_count == 111 and MORE_KEY not in table._cells
        assert "111 of 10,000 match" in str(screen.query_one("#count").render())
