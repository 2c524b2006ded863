"""The Problems screen and `podpath ls problems` list the same problems, from one analysis."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from podpath.cli import main
from podpath.snapshot import codec
from podpath.snapshot.model import Gap, Snapshot
from podpath.tui.app import PodpathApp
from podpath.tui.screens.problems import ProblemsScreen
from podpath.tui.widgets.table import RowTable

SIZE = (120, 36)


def _with_gaps(snap: Snapshot) -> Snapshot:
    gaps = (
        Gap("conntrack table", "permission denied", "permission", "CAP_NET_ADMIN"),
        Gap("links of netns cni-1", "dump interrupted twice", "inconsistent"),
    )
    return dataclasses.replace(snap, gaps=gaps)


@pytest.mark.parametrize("gaps", [False, True])
async def test_problems_screen_lists_what_ls_problems_prints(
    gaps: bool,
    fixed_snapshot: Snapshot,
    make_app: Callable[..., PodpathApp],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Row for row, the screen shows `ls problems --json`'s grade, subject, why and fix."""
    snap = _with_gaps(fixed_snapshot) if gaps else fixed_snapshot
    path = tmp_path / "snap.json"
    path.write_text(codec.dumps(snap))
    assert main(["ls", "problems", "--snapshot", str(path), "--json"]) == 0
    listed = [
        (p["grade"], p["subject"], p["why"], p["fix"])
        for p in json.loads(capsys.readouterr().out)["problems"]
    ]
    app = make_app(snap)
    async with app.run_test(size=SIZE) as pilot:
        app.open_screen("problems")
        await pilot.pause()
        assert isinstance(app.screen, ProblemsScreen)
        table = app.screen.query_one("#table", RowTable)
        shown = [tuple(table.row_texts(i)) for i in range(table.row_count)]
    assert shown == listed and len(listed) == (5 if gaps else 3)


async def test_the_selected_finding_is_shown_whole_and_enter_traces_its_first_path(
    fixed_snapshot: Snapshot, make_app: Callable[..., PodpathApp]
) -> None:
    """The detail under the list follows the cursor; enter opens Trace on the finding's first
    path (source, destination and protocol filled in); a fact finding has none to open."""
    from podpath.tui.screens.trace import TraceScreen

    app = make_app(fixed_snapshot)
    async with app.run_test(size=SIZE) as pilot:
        app.open_screen("problems")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, ProblemsScreen)
        detail = str(screen.query_one("#finding").render())
        assert "ipam-leaked" in detail and "fix:" in detail and "enter: trace" not in detail
        await pilot.press("enter")  # a fact: nothing to trace, the list stays
        await pilot.pause()
        assert app.screen is screen
        await pilot.press("down")
        await pilot.pause()
        detail = str(screen.query_one("#finding").render())
        assert "service-no-endpoints" in detail and "enter: trace its first path" in detail
        finding = app.loaded.problems[1] if app.loaded and app.loaded.problems else None
        assert finding is not None and finding.check == "service-no-endpoints"
        await pilot.press("enter")
        await pilot.pause()
        trace = app.screen
        assert isinstance(trace, TraceScreen)
        first = finding.paths[0]
        assert (trace.source_spec, trace.destination_spec, trace.proto) == (
            first.source,
            first.destination,
            first.proto,
        )
