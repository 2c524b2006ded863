"""Run inside a lab node: the TUI collecting the node live, under Pilot; prints, as JSON,
what the header said while it collected (tests/tui/test_progress.py)."""

from __future__ import annotations

import asyncio
import json
import sys

from podpath.cli.tui import live_source
from podpath.tui.app import PodpathApp, create_app


async def collect_once() -> dict[str, object]:
    """Start the app on the node, wait for the first snapshot; the headers and steps seen."""
    app = create_app(live_source("/"))
    told: list[str] = []
    headers: list[str] = []

    def seen(message: object) -> None:
        if isinstance(message, PodpathApp.Progress) and message.kind == "collect":
            told.append(message.what)
        if "reading" in app.sub_title and (not headers or headers[-1] != app.sub_title):
            headers.append(app.sub_title)

    async with app.run_test(size=(160, 40), message_hook=seen) as pilot:
        for _ in range(1200):
            if app.loaded is not None:
                break
            await pilot.pause(0.05)
        await pilot.pause()
        return {"told": told, "headers": headers, "title": app.sub_title}


if __name__ == "__main__":
    print(json.dumps(asyncio.run(collect_once())))
    sys.exit(0)
