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

from podpath.netfilter.iptables_save import count_rules
from podpath.snapshot.model import Snapshot
from podpath.tui import registry, state
from podpath.tui.app import create_app
from podpath.tui.screens.base import TableScreen
from podpath.tui.source import static_source
from podpath.tui.state import (
    CONNTRACK,
    FACTS,
    PROBLEMS,
    SERVICE_ROWS,
    SERVICES,
    Loaded,
    count_in_slices,
)

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "snapshot.json"
REALWORLD_IPTABLES = Path(__file__).resolve().parents[1] / "fixtures" / "realworld" / "iptables"
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
    """The conntrack count from the start (the listing's entry lines, equal to the parse's),
    the Services once parsed, the facts' problems as a lower bound ("2+ checking paths…")
    before the doctor's sweep completes them, all before the conntrack parse."""
    loaded = Loaded(fixed_snapshot)
    at_start: dict[str, list[str]] = {}
    loaded.prepare(lambda what, _done, _total: at_start.setdefault(what, _counts(loaded)))
    facts, found = loaded.fact_problems, loaded.problems
    assert facts is not None and found is not None
    assert 0 < len(facts) < len(found), "the fixture has problems in its facts and its paths"
    services = str(len(loaded.parsed.services()))
    conntrack = str(len(loaded.parsed.conntrack()))
    pending, checking = registry.PENDING, f"{len(facts)}+ {registry.CHECKING}"
    assert at_start[SERVICES] == [pending, conntrack, pending]
    assert at_start[FACTS] == [services, conntrack, pending]
    assert at_start[PROBLEMS] == [services, conntrack, checking]
    assert at_start[CONNTRACK] == [services, conntrack, str(len(found))]
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


@pytest.mark.parametrize("size", [1, 7, 100, 4096, 1 << 20])
def test_rules_counted_in_slices_are_counted_as_in_one_call(size: int) -> None:
    """Slices of whole lines, whatever their size, count what one count_rules call counts,
    on kube-proxy's real dumps (with and without counters, and a last line without \\n)."""
    dumps = sorted(REALWORLD_IPTABLES.glob("*.txt"))
    assert dumps
    for path in dumps:
        text = path.read_text()
        for variant in (text, text.rstrip("\n"), "\n" + text, text.replace("-A ", "[3:180] -A ")):
            assert count_in_slices(variant, size) == count_rules(variant), (path.name, size)
    assert count_in_slices("", size) == 0


def test_a_big_nodes_rules_are_counted_by_the_worker_not_on_the_event_loop(
    fixed_snapshot: Snapshot, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Above INLINE_PREPARE_BYTES home's "Netfilter rules" count and "iptables" fact wait
    (nothing counted when asked); the worker counts them first, as one count_rules does."""
    monkeypatch.setattr(state, "INLINE_PREPARE_BYTES", 0)
    counted: list[int] = []
    real = state.count_in_slices

    def counting(text: str) -> int:
        counted.append(len(text))
        return real(text)

    monkeypatch.setattr(state, "count_in_slices", counting)
    loaded = Loaded(fixed_snapshot)
    ipt = next(v for v in registry.jump_views() if v.name == "ipt")
    assert registry.count_text(ipt, loaded) == registry.PENDING
    assert loaded.iptables_backends() is None and counted == []
    seen: list[str] = []
    loaded.prepare(lambda what, _done, _total: seen.append(registry.count_text(ipt, loaded)))
    expected = sum(count_rules(d.text) for d in fixed_snapshot.iptables)
    assert expected > 0 and seen[0] == str(expected) == registry.count_text(ipt, loaded)
    assert len(counted) == len(fixed_snapshot.iptables)
    assert loaded.iptables_backends() == sorted(
        {f"{d.backend}/{d.family}" for d in fixed_snapshot.iptables if count_rules(d.text)}
    )
