"""Home's Services, conntrack and problems counts: each shown as soon as its own stage of
the parse worker is done, the problems first from the node's facts, and all of them in the
end equal to the CLI's (`podpath ls services`, `ls conntrack`, `doctor --json`)."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from podpath.snapshot.model import Snapshot
from podpath.tui import registry, state
from podpath.tui.app import create_app
from podpath.tui.screens.base import TableScreen
from podpath.tui.source import static_source
from podpath.tui.state import CONNTRACK, FACTS, PROBLEMS, SERVICE_ROWS, SERVICES, Loaded

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "snapshot.json"
SIZE = (120, 36)
COUNTED = ("svc", "ct", "problems")


def _cli(*argv: str) -> dict[str, list[object]]:
    """A `podpath ... --json --snapshot FIXTURE` command's JSON."""
    done = subprocess.run(
        [sys.executable, "-m", "podpath", *argv, "--json", "--snapshot", str(FIXTURE)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode in (0, 1), done.stderr  # doctor exits 1 when it finds problems
    found: dict[str, list[object]] = json.loads(done.stdout)
    return found


def _counts(loaded: Loaded) -> list[str]:
    views = {v.name: v for v in registry.jump_views()}
    return [registry.count_text(views[name], loaded) for name in COUNTED]


def test_each_count_shows_once_its_own_stage_is_done(fixed_snapshot: Snapshot) -> None:
    """Services before conntrack, conntrack before the problems, the facts' problems as a
    lower bound ("2+ checking paths…") before the doctor's sweep completes them."""
    loaded = Loaded(fixed_snapshot)
    at_start: dict[str, list[str]] = {}
    loaded.prepare(lambda what, _done, _total: at_start.setdefault(what, _counts(loaded)))
    facts, found = loaded.fact_problems, loaded.problems
    assert facts is not None and found is not None
    assert 0 < len(facts) < len(found), "the fixture has problems in its facts and its paths"
    services = str(len(loaded.parsed.services()))
    conntrack = str(len(loaded.parsed.conntrack()))
    pending, checking = registry.PENDING, f"{len(facts)}+ {registry.CHECKING}"
    assert at_start[SERVICES] == [pending, pending, pending]
    assert at_start[CONNTRACK] == [services, pending, pending]
    assert at_start[FACTS] == [services, conntrack, pending]
    assert at_start[PROBLEMS] == [services, conntrack, checking]
    assert at_start[SERVICE_ROWS] == [services, conntrack, str(len(found))]
    assert {f.id for f in facts} <= {f.id for f in found}


async def test_home_shows_the_facts_problems_while_paths_are_checked_then_the_clis_counts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With the doctor's sweep held, home says "N+ checking paths…" and names a problem found
    so far; released, its counts are those of `ls services`, `ls conntrack` and `doctor`."""
    from podpath.snapshot.codec import load_path

    monkeypatch.setattr(state, "INLINE_PREPARE_BYTES", 0)  # prepare in the worker
    sweeping, release = threading.Event(), threading.Event()
    real = Loaded._diagnose

    def held(self: Loaded) -> None:
        sweeping.set()
        release.wait(30)
        real(self)

    monkeypatch.setattr(Loaded, "_diagnose", held)
    app = create_app(static_source(load_path(str(FIXTURE)), "snapshot", "fixture.json"))
    async with app.run_test(size=SIZE) as pilot:
        try:
            for _ in range(600):
                if sweeping.is_set():
                    break
                await pilot.pause(0.05)
            assert sweeping.is_set()
            await pilot.pause(0.2)
            loaded, home = app.loaded, app.screen
            assert loaded is not None and isinstance(home, TableScreen)
            facts = loaded.fact_problems
            assert facts and loaded.problems is None
            cells = home.table._cells
            assert cells["go:problems"][1].text == f"{len(facts)}+ {registry.CHECKING}"
            banner = str(home.query_one("#banner").render())
            assert f"{len(facts)} problems so far" in banner and "checking paths" in banner
        finally:
            release.set()
        await app.workers.wait_for_complete()
        await pilot.pause(0.2)
        cells = home.table._cells
        shown = [cells[f"go:{name}"][1].text for name in COUNTED]
    expected = [
        len(_cli("ls", "services")["services"]),
        len(_cli("ls", "conntrack")["conntrack"]),
        len(_cli("doctor")["findings"]),
    ]
    assert shown == [str(n) for n in expected]
