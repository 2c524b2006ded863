"""On a big snapshot the app's problems come from a child forked when the app is made
(podpath.tui.doctor_ahead): it judges the paths, the worker checks the facts, and the
two make the doctor's own findings, the worker not running the doctor itself; a failing
child leaves it to the worker; a quit kills and reaps it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
FIXTURE = HERE / "fixtures" / "snapshot.json"
DATA = HERE.parents[1] / "src" / "podpath" / "data"

# Run in a fresh interpreter: the child is forked only by a single-threaded process,
# and this test process may hold other tests' threads.
_PRELUDE = """
import asyncio, os, sys, time
import podpath.tui.doctor_ahead as ahead
from podpath.analysis.index import SnapshotIndex
from podpath.doctor import diagnose
from podpath.snapshot.codec import load_path
from podpath.tui import state
from podpath.tui.app import create_app
from podpath.tui.source import static_source

state.INLINE_PREPARE_BYTES = 0  # every snapshot is big: prepared by the worker
snaps = [load_path(p) for p in sys.argv[1:]]
parent = os.getpid()
in_parent = []
real_diagnose = state.diagnose

def counted(*args, **kwargs):
    in_parent.append(os.getpid())
    return real_diagnose(*args, **kwargs)

state.diagnose = counted

def no_child_left():
    try:
        os.waitpid(-1, os.WNOHANG)
    except ChildProcessError:
        return True
    return False

async def until(app, ready, limit=60.0):
    end = time.monotonic() + limit
    while not ready():
        assert time.monotonic() < end, "never ready"
        await asyncio.sleep(0.02)

async def problems_of(app):
    async with app.run_test(size=(120, 40)):
        await until(app, lambda: app.loaded is not None and app.loaded.ready.is_set())
        return app.loaded.problems
"""

_FROM_THE_CHILD = """
import podpath.doctor as doctor

real_facts = doctor.fact_findings

def facts_here_only(views):
    # The child judges the paths only: the app's worker checks the facts.
    assert os.getpid() == parent, "the child checked the node's facts"
    return real_facts(views)

doctor.fact_findings = facts_here_only
app = create_app(static_source(snaps[0], "snapshot", "a.json", peers=tuple(snaps[1:])))
assert app._ahead is not None
shown = asyncio.run(problems_of(app))
expected = diagnose([SnapshotIndex(s) for s in snaps]).findings
assert in_parent == [], "the worker ran the doctor itself"
assert shown == expected and expected, (len(shown), len(expected))
assert no_child_left()
print("ok")
"""

_READY_FOR_TRACES = """
sys.path.insert(0, os.environ["SCALE_DIR"])
from scale_snapshot import build
from podpath.trace.netfilter import DISPATCH_MIN_RULES

snap = build(pods=10, service_count=100, conntrack=50)
app = create_app(static_source(snap, "snapshot", "scale.json"))
assert app._ahead is not None and "podpath.trace.nft" not in sys.modules
asyncio.run(problems_of(app))
assert in_parent == []
long = {
    (t, c)
    for _dump, rs in app.loaded.index.rulesets
    for t in rs.tables
    for c in rs.chain_names(t)
    if rs.rule_count_of(t, c) > DISPATCH_MIN_RULES
}
indexed = {k for _dump, rs in app.loaded.index.rulesets for k in rs._dispatch}
assert long and long <= indexed, long - indexed
assert "podpath.trace.nft" in sys.modules  # a Service name's resolution imports it
print("ok")
"""

_FAILING_CHILD = """
def fails(snapshot, peers):
    if os.getpid() != parent:
        raise RuntimeError("a child that cannot diagnose")
    raise AssertionError("the parent never computes the child's part")

ahead._judged = fails
app = create_app(static_source(snaps[0], "snapshot", "a.json"))
assert app._ahead is not None
shown = asyncio.run(problems_of(app))
assert in_parent == [parent], in_parent
assert shown == diagnose([SnapshotIndex(snaps[0])]).findings
assert no_child_left()
print("ok")
"""

_QUIT_EARLY = """
def slow(snapshot, peers):
    time.sleep(60)
    return ()

ahead._judged = slow
app = create_app(static_source(snaps[0], "snapshot", "a.json"))
child = app._ahead._child.pid

async def quit_at_once():
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        await pilot.press("q")

started = time.monotonic()
asyncio.run(quit_at_once())
assert time.monotonic() - started < 20
assert no_child_left() and not os.path.exists(f"/proc/{child}")
print("ok")
"""


def _run(script: str, *snapshots: Path) -> tuple[int, str, str]:
    done = subprocess.run(
        [sys.executable, "-c", _PRELUDE + script, *map(str, snapshots)],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
        env={**os.environ, "SCALE_DIR": str(HERE)},
    )
    return done.returncode, done.stdout, done.stderr


@pytest.mark.parametrize(
    "snapshots",
    [(FIXTURE,), (DATA / "demo-snapshot.json", DATA / "demo-snapshot-node2.json")],
    ids=["one-node", "with-a-peer"],
)
def test_the_problems_are_the_childs_findings_equal_to_the_doctors(
    snapshots: tuple[Path, ...],
) -> None:
    assert _run(_FROM_THE_CHILD, *snapshots) == (0, "ok\n", "")


def test_while_the_child_finishes_the_worker_readies_the_first_trace() -> None:
    """What the doctor run in the app's process left behind for the first trace: the
    long chains' dispatch indexes and the modules a Service's name resolution imports."""
    assert _run(_READY_FOR_TRACES) == (0, "ok\n", "")


def test_a_failing_child_leaves_the_doctor_to_the_worker() -> None:
    assert _run(_FAILING_CHILD, FIXTURE) == (0, "ok\n", "")


def test_quitting_before_the_findings_kills_and_reaps_the_child() -> None:
    assert _run(_QUIT_EARLY, FIXTURE) == (0, "ok\n", "")
