"""The Pods list as a kubectl/k9s user reads it: READY and RESTARTS beside the name."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

from podpath.cli import main
from podpath.snapshot import codec
from podpath.snapshot.model import Snapshot
from podpath.tui.app import PodpathApp
from podpath.tui.rows.pod import POD_COLUMNS
from podpath.tui.widgets.table import RowTable

SIZE = (120, 36)  # the default terminal of the SVG snapshots
WEB = "default/web-7d4b9c6f5d-x7k2p"


def _restarted(snap: Snapshot) -> Snapshot:
    """The web pod as CRI keeps a crash-looping one: web's exited attempt 0 next to its
    running attempt 3, and a sidecar whose attempt 1 exited too: READY 1/2, RESTARTS 4."""
    pod = next(p for p in snap.pods if f"{p.namespace}/{p.name}" == WEB)
    pause, web = sorted(pod.containers, key=lambda c: c.kind != "sandbox")
    now = int(snap.taken_at * 1e9)
    crashed = replace(web, id="0ld" * 20, state="exited", attempt=0, exit_code=1, pids=())
    running = replace(web, state="running", attempt=3, restart_count=3, created_at=now)
    sidecar = replace(
        web, name="sidecar", id="51dec4" * 10, state="exited", attempt=1, restart_count=1, pids=()
    )
    pod2 = replace(pod, containers=(pause, crashed, running, sidecar))
    return replace(snap, pods=tuple(pod2 if p is pod else p for p in snap.pods))


async def test_ready_and_restarts_are_on_screen_and_as_ls_pods_counts(
    fixed_snapshot: Snapshot,
    make_app: Callable[..., PodpathApp],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """At 120x36 the restarted pod's READY and RESTARTS cells are inside the table's
    visible region, without scrolling, and read what `ls pods --json` computes."""
    snap = _restarted(fixed_snapshot)
    path = tmp_path / "snap.json"
    path.write_text(codec.dumps(snap))
    assert main(["ls", "pods", "--snapshot", str(path), "--json"]) == 0
    pods = json.loads(capsys.readouterr().out)["pods"]
    listed = {f"{p['namespace']}/{p['name']}": p for p in pods}
    assert (listed[WEB]["ready"], listed[WEB]["restarts"]) == ("1/2", 4)
    app = make_app(snap)
    async with app.run_test(size=SIZE) as pilot:
        app.open_screen("pods")
        await pilot.pause()
        await pilot.pause()
        table = app.screen.query_one(RowTable)
        assert table.move_to_key(WEB)
        await pilot.pause()
        index = table.cursor_row
        texts = dict(zip(POD_COLUMNS, table.row_texts(index), strict=True))
        assert texts["READY"] == listed[WEB]["ready"]
        assert texts["RESTARTS"] == str(listed[WEB]["restarts"])
        assert table.scroll_x == 0
        for column in ("POD", "READY", "RESTARTS"):
            where = table.cell_region(index, column)
            assert where is not None and table.region.contains_region(where), (column, where)
        # Every pod's counts, not just this one's, are ls pods'.
        for key, pod in listed.items():
            assert table.move_to_key(key)
            shown = dict(zip(POD_COLUMNS, table.row_texts(table.cursor_row), strict=True))
            restarts = "-" if pod["restarts"] is None else str(pod["restarts"])
            assert (shown["READY"], shown["RESTARTS"]) == (pod["ready"], restarts), key
