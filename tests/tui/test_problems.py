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
