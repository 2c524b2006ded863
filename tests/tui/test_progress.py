"""Progress: which part is being read or parsed and how far — in the TUI, and on the CLI's
stderr when (and only when) it is a terminal."""

from __future__ import annotations

import json
import os
import pty
import re
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from textual.message import Message

import podpath
from podpath.conntrack import count_entries
from podpath.lab.node import node_env
from podpath.snapshot.model import Snapshot
from podpath.tui import registry, state
from podpath.tui.app import PodpathApp, create_app
from podpath.tui.rows.model import MORE_KEY, RowSet, page, rowset
from podpath.tui.rows.services import service_rows
from podpath.tui.screens.base import TableScreen
from podpath.tui.screens.services import ServicesScreen
from podpath.tui.source import Progress, live_source, static_source
from podpath.tui.state import (
    CONNTRACK,
    CONNTRACK_ROWS,
    FACTS,
    MENTIONS,
    PROBLEMS,
    SERVICE_ROWS,
    SERVICES,
    STAGES,
    TRACE_WORDS,
    Loaded,
)

sys.path.insert(0, str(Path(__file__).resolve().parent))
from scale_snapshot import build  # noqa: E402

SIZE = (120, 36)


async def test_refresh_says_which_part_is_being_read(fixed_snapshot: Snapshot) -> None:
    """While the collector reads its 4th of 8 parts, the header says so; then the snapshot shows."""
    reading, release = threading.Event(), threading.Event()

    def collect(cancel: threading.Event, previous: Snapshot | None, progress: Progress) -> Snapshot:
        progress("network namespaces", 3, 8)
        reading.set()
        release.wait(10)
        return fixed_snapshot

    app = create_app(live_source(collect, "/"))
    async with app.run_test(size=SIZE) as pilot:
        for _ in range(100):
            await pilot.pause(0.05)
            if "reading network namespaces (4/8)" in app.sub_title:
                break
        assert reading.is_set() and "⟳ reading network namespaces (4/8)…" in app.sub_title
        release.set()
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert "reading" not in app.sub_title and fixed_snapshot.node.hostname in app.sub_title


@pytest.fixture
def stage_starts_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Item counts ("problems 13/13") are told only once a step has run 0.1 s, which a
    loaded CI machine reaches on the small snapshot (a CI run of 2026-12-07 failed so):
    an hour's interval leaves the stage starts, which the tests below are about."""
    monkeypatch.setenv("PODPATH_PROGRESS_INTERVAL", "3600")


@pytest.mark.usefixtures("stage_starts_only")
def test_preparing_the_views_names_each_stage_in_order(fixed_snapshot: Snapshot) -> None:
    """Loaded.prepare tells each stage (what, done, total) as it starts, counts' stages first."""
    seen: list[tuple[str, int, int]] = []
    loaded = Loaded(fixed_snapshot)
    loaded.prepare(lambda what, done, total: seen.append((what, done, total)))
    assert seen == [(stage, i, len(STAGES)) for i, stage in enumerate(STAGES)]
    assert STAGES[:4] == (SERVICES, FACTS, PROBLEMS, CONNTRACK)
    assert loaded.ready.is_set() and loaded.step == f"{STAGES[-1]} (8/8)"


def test_home_counts_are_ready_before_any_rows_are_built(fixed_snapshot: Snapshot) -> None:
    """When the first rows start to be built, home's Services, conntrack and problems counts
    are already there, and no screen's rows exist yet; the conntrack count, from the
    listing's lines, is there from the start and equals the parse's."""
    loaded = Loaded(fixed_snapshot)
    counted = [v for v in registry.jump_views() if v.name in ("svc", "ct", "problems")]
    at_rows: list[tuple[list[str], frozenset[str]]] = []

    def told(what: str, done: int, total: int) -> None:
        if what == SERVICE_ROWS:
            at_rows.append(
                ([registry.count_text(v, loaded) for v in counted], loaded.done_stages())
            )

    # The conntrack count needs no parse: the listing's entry lines, counted at once.
    lines = str(count_entries(fixed_snapshot.conntrack.text)) if fixed_snapshot.conntrack else "0"
    pending = registry.PENDING
    assert [registry.count_text(v, loaded) for v in counted] == [pending, lines, pending]
    loaded.prepare(told)
    ((counts, done),) = at_rows
    assert registry.PENDING not in counts and counts == [
        str(len(loaded.parsed.services())),
        str(len(loaded.parsed.conntrack())),
        str(len(loaded.problems or ())),
    ]
    assert done == {SERVICES, CONNTRACK, FACTS, PROBLEMS}


@pytest.mark.usefixtures("stage_starts_only")
def test_a_screen_opened_early_gets_its_stage_next(fixed_snapshot: Snapshot) -> None:
    """A stage wanted by a screen (the Conntrack rows) is prepared right after the current one."""
    loaded = Loaded(fixed_snapshot)
    order: list[str] = []

    def told(what: str, done: int, total: int) -> None:
        order.append(what)
        if what == SERVICES:
            loaded.want(CONNTRACK_ROWS)

    loaded.prepare(told)
    assert order == [
        SERVICES,
        CONNTRACK_ROWS,
        FACTS,
        PROBLEMS,
        CONNTRACK,
        SERVICE_ROWS,
        MENTIONS,
        TRACE_WORDS,
    ]
    assert loaded.ready.is_set() and all(loaded.has(s) for s in STAGES)


async def test_a_big_snapshot_says_how_far_the_background_parse_is() -> None:
    """10k Services are parsed in a worker: the app is told each of its stages, in order."""
    scale = build(pods=10, service_count=10_000, conntrack=1000)
    app = create_app(static_source(scale, "file", "scale.json"))
    seen: list[Message] = []
    async with app.run_test(size=SIZE, message_hook=seen.append) as pilot:
        for _ in range(1200):  # the worker starts after the first frame
            if app.loaded is not None and app.loaded.ready.is_set():
                break
            await pilot.pause(0.05)
        await app.workers.wait_for_complete()
        await pilot.pause()
        steps = [
            (m.what, m.done, m.total)
            for m in seen
            if isinstance(m, PodpathApp.Progress) and m.kind == "prepare"
        ]
        assert steps[0] == (SERVICES, 0, len(STAGES)) and steps[-1][1] == len(STAGES) - 1
        assert app.loaded is not None and app.loaded.ready.is_set()


async def test_building_rows_tells_how_many_are_built(monkeypatch: pytest.MonkeyPatch) -> None:
    """The Service and conntrack rows are counted as they are built: the app is told
    "Service rows i/n" with i growing, and a screen waiting for them says the same."""
    monkeypatch.setenv("PODPATH_PROGRESS_INTERVAL", "0")
    scale = build(pods=10, service_count=3_000, conntrack=2_000)
    monkeypatch.setattr(state, "INLINE_PREPARE_BYTES", 0)  # prepare in the worker
    app = create_app(static_source(scale, "file", "scale.json"))
    seen: list[Message] = []
    async with app.run_test(size=SIZE, message_hook=seen.append) as pilot:
        for _ in range(1200):
            if app.loaded is not None and app.loaded.ready.is_set():
                break
            await pilot.pause(0.05)
        await app.workers.wait_for_complete()
        told = [m.what for m in seen if isinstance(m, PodpathApp.Progress) and m.kind == "prepare"]
    counted = {
        what: [
            int(m.group(1).replace(",", ""))
            for t in told
            if (m := re.match(rf"{what} ([\d,]+)/", t))
        ]
        for what in (SERVICE_ROWS, CONNTRACK_ROWS)
    }
    for what, size in ((SERVICE_ROWS, "3,000"), (CONNTRACK_ROWS, "2,000")):
        assert counted[what] and counted[what] == sorted(counted[what]), told
        assert all(t.endswith(f"/{size}") for t in told if t.startswith(f"{what} ")), told
    loaded = Loaded(scale)
    loaded.current, loaded.number = CONNTRACK_ROWS, 6
    loaded.conntrack_rows()  # counted outside the worker too: how_far() says how many
    assert loaded.how_far() == "6/8, 2,000/2,000"


async def test_counts_show_while_rows_are_still_built(monkeypatch: pytest.MonkeyPatch) -> None:
    """With the worker held while it builds the Service rows, home already shows all three
    counts, and Services says what it waits for; released, it shows every row as before."""
    scale = build(pods=10, service_count=2_000, conntrack=500)
    monkeypatch.setattr(state, "INLINE_PREPARE_BYTES", 0)  # prepare in the worker
    building, release = threading.Event(), threading.Event()
    real = Loaded.service_rows

    def held(self: Loaded) -> RowSet:
        building.set()
        release.wait(30)
        return real(self)

    monkeypatch.setattr(Loaded, "service_rows", held)
    app = create_app(static_source(scale, "file", "scale.json"))
    async with app.run_test(size=SIZE) as pilot:
        for _ in range(600):
            if building.is_set():
                break
            await pilot.pause(0.05)
        assert building.is_set()
        await pilot.pause()
        loaded = app.loaded
        assert loaded is not None and not loaded.has(SERVICE_ROWS)
        home = app.screen
        assert isinstance(home, TableScreen)
        cells = home.table._cells
        assert cells["go:svc"][1].text == "2000" and cells["go:ct"][1].text == "500"
        assert cells["go:problems"][1].text == str(len(loaded.problems or ()))
        app.open_screen("svc")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, ServicesScreen)
        waiting = str(screen.query_one("#count").render())
        assert waiting == "building the Service rows (5/8)…", waiting
        release.set()
        await app.workers.wait_for_complete()
        await pilot.pause()
        shown = [k for k in screen.table._keys if k != MORE_KEY]
        expected = rowset(service_rows(loaded.index, loaded.parsed.services()))
        assert shown and shown == [r.key for r in page(expected).rows]


def _ls_in_node(lab, stderr_tty: bool) -> tuple[int, str, str]:  # type: ignore[no-untyped-def]
    """`podpath ls links` in node1, stderr on a pty or a pipe: (status, stdout, stderr)."""
    argv = lab.enter_argv("node1", [sys.executable, "-m", "podpath", "ls", "links"])
    # Items are told at most every 0.1 s; a small lab node reads its netns faster.
    env = {**node_env(), "PODPATH_PROGRESS_INTERVAL": "0"}
    if not stderr_tty:
        done = subprocess.run(
            argv, capture_output=True, text=True, timeout=120, env=env, check=False
        )
        return done.returncode, done.stdout, done.stderr
    controller, terminal = pty.openpty()
    try:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=terminal,
            env=env,
        )
        os.close(terminal)
        chunks = []
        while True:
            try:
                chunk = os.read(controller, 4096)
            except OSError:  # EIO: the child closed its end
                break
            if not chunk:
                break
            chunks.append(chunk)
        out = proc.stdout.read().decode() if proc.stdout else ""
        return proc.wait(timeout=120), out, b"".join(chunks).decode(errors="replace")
    finally:
        os.close(controller)


@pytest.mark.lab
def test_cli_progress_line_only_on_a_terminal(shared_lab) -> None:  # type: ignore[no-untyped-def]
    """On a pty, stderr says which part is read (n/total) and how many of its namespaces,
    and erases the line; piped, nothing."""
    code, out, err = _ls_in_node(shared_lab, stderr_tty=True)
    assert code == 0 and "cni0" in out
    assert "podpath: reading network namespaces (" in err
    assert "podpath: reading node facts (1/" in err
    # How far the namespace scan is: namespaces read of all, growing to all of them.
    counts = re.findall(r"reading network namespaces (\d+)/(\d+) \(", err)
    assert counts and counts[-1][0] == counts[-1][1], err
    assert [int(a) for a, _ in counts] == sorted(int(a) for a, _ in counts)
    assert err.rindex("\r\x1b[K") > err.rindex("reading")  # erased once collected
    code, out, err = _ls_in_node(shared_lab, stderr_tty=False)
    assert code == 0 and "cni0" in out
    assert "reading" not in err and "\r" not in err


@pytest.mark.lab
def test_tui_header_counts_the_namespaces_it_reads(shared_lab) -> None:  # type: ignore[no-untyped-def]
    """The TUI collecting a lab node live (Pilot, inside the node) says in its header which
    part it reads and how many of its network namespaces are read, then shows the node."""
    driver = str(Path(__file__).resolve().parent / "progress_driver.py")
    argv = shared_lab.enter_argv("node1", [sys.executable, driver])
    env = {**node_env(), "PODPATH_PROGRESS_INTERVAL": "0"}
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300, env=env, check=False)
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    counted = [t for t in seen["told"] if re.fullmatch(r"network namespaces \d+/\d+", t)]
    assert counted, seen["told"]
    read, of = counted[-1].split()[-1].split("/")
    assert read == of and int(of) >= len(shared_lab.pods_on("node1")) + 1
    assert any(
        re.search(r"⟳ reading network namespaces \d+/\d+ \(4/8\)…", h) for h in seen["headers"]
    )
    assert "reading" not in seen["title"]


def _doctor_stderr(tty: bool) -> tuple[int, str]:
    """`podpath doctor --snapshot` of the demo node, stderr on a pty or a pipe."""
    demo = Path(podpath.__file__).resolve().parent / "data" / "demo-snapshot.json"
    argv = [sys.executable, "-m", "podpath", "doctor", "--json", "--snapshot", str(demo)]
    env = {**os.environ, "PODPATH_PROGRESS_INTERVAL": "0"}
    if not tty:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=120, env=env)
        return done.returncode, done.stderr
    controller, terminal = pty.openpty()
    try:
        proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=terminal, env=env
        )
        os.close(terminal)
        chunks = []
        while True:
            try:
                chunk = os.read(controller, 4096)
            except OSError:  # EIO: the child closed its end
                break
            if not chunk:
                break
            chunks.append(chunk)
        return proc.wait(timeout=120), b"".join(chunks).decode(errors="replace")
    finally:
        os.close(controller)


def test_doctor_says_how_many_paths_it_has_judged_on_a_terminal_only() -> None:
    """On a pty the doctor's line counts the (source, Service port) paths judged up to all
    of them, and is erased; piped, stderr carries nothing of it."""
    code, err = _doctor_stderr(tty=True)
    assert code in (0, 1)
    counts = re.findall(r"podpath: judging Service paths (\d+)/(\d+)…", err)
    assert counts and counts[-1][0] == counts[-1][1], err
    assert err.endswith("\r\x1b[K")
    code, err = _doctor_stderr(tty=False)
    assert code in (0, 1) and "judging" not in err and "\r" not in err
