"""Open the Trace screen on a probe and wait for its trace: how every Trace test starts."""

from __future__ import annotations

from textual.pilot import Pilot

from podpath.trace.model import Trace
from podpath.tui.screens.trace import TraceScreen


async def traced(pilot: Pilot[None], source: str, destination: str) -> tuple[TraceScreen, Trace]:
    """The Trace screen, pushed with both ends given, and its trace once it has run."""
    app = pilot.app
    await pilot.pause()
    app.push_screen(TraceScreen(source, destination))
    await pilot.pause()
    await app.workers.wait_for_complete()
    await pilot.pause()
    screen = app.screen
    assert isinstance(screen, TraceScreen) and screen.trace is not None
    return screen, screen.trace
