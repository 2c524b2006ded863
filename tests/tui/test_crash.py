"""Failures are visible, once, and never dump the snapshot: workers report in one place, an
unexpected error ends the app with one sentence, a report file and exit status 1."""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from textual.message import Message
from textual.notifications import Notification

from podpath.cli.tui import run_app
from podpath.snapshot.model import Snapshot
from podpath.tui import crash
from podpath.tui.app import PodpathApp
from podpath.tui.screens.trace import TraceScreen
from podpath.tui.widgets.table import RowTable

SIZE = (120, 36)
CLIENT = "default/client-6f9b8d7c4-qp2ld"
SECRET = "secret-payroll-db-7f9c"  # a pod name that must never reach the terminal


@pytest.fixture(autouse=True)
def private_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Crash reports go to a state directory of the test's own."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    return tmp_path / "state" / "podpath" / "crashes"


def _with_secret_pod(snap: Snapshot) -> Snapshot:
    pod = dataclasses.replace(snap.pods[0], name=SECRET)
    return dataclasses.replace(snap, pods=(pod, *snap.pods[1:]))


def _notices(app: PodpathApp) -> list[Notification]:
    return list(app._notifications)


def _break_pod_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    """A bug in a row builder, with the snapshot's pods in its frames' locals."""
    import podpath.tui.rows.pod as pod_rows

    def container_rows(index: object, pod: object) -> list[object]:
        everything = repr(pod)  # noqa: F841 - a local a traceback with locals would show
        raise TypeError("unsupported operand type(s) for +: 'int' and 'str'")

    monkeypatch.setattr(pod_rows, "container_rows", container_rows)


def test_an_unexpected_error_exits_1_with_one_sentence_and_a_report(
    fixed_snapshot: Snapshot,
    make_app: Callable[..., PodpathApp],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    private_state: Path,
) -> None:
    """Opening a pod hits a bug: exit status 1, one line on stderr naming a 0600 report, no locals."""
    _break_pod_rows(monkeypatch)
    app = make_app(_with_secret_pod(fixed_snapshot))

    async def open_the_pod(pilot: object) -> None:
        app.open_screen("pod", f"default/{SECRET}")

    monkeypatch.setattr(PodpathApp, "run", _headless_run(open_the_pod))
    assert run_app(app) == 1
    err = capsys.readouterr().err
    assert SECRET not in err and "everything" not in err and "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "TypeError" in lines[0], err
    report = Path(re.search(r"details in (\S+)", lines[0]).group(1))  # type: ignore[union-attr]
    assert report.parent == private_state and os.stat(report).st_mode & 0o777 == 0o600
    text = report.read_text()
    assert "Traceback" in text and "container_rows" in text and SECRET not in text


def _headless_run(auto: Callable[[object], object]) -> Callable[..., None]:
    original = PodpathApp.run

    def run(self: PodpathApp, *args: object, **kwargs: object) -> None:
        async def pilot(p: object) -> None:
            await auto(p)  # type: ignore[misc]

        original(self, headless=True, size=SIZE, auto_pilot=pilot)

    return run


async def test_a_bug_in_the_trace_is_reported_once_not_as_cannot_trace(
    make_app: Callable[..., PodpathApp], monkeypatch: pytest.MonkeyPatch, private_state: Path
) -> None:
    """An AttributeError in the engine is a bug: one notice with a report, the app runs on."""
    import podpath.tui.screens.trace as trace_screen

    def broken(*args: object, **kwargs: object) -> object:
        raise AttributeError("'NoneType' object has no attribute 'netns'")

    monkeypatch.setattr(trace_screen, "trace", broken)
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        app.start_trace(CLIENT, "10.96.0.20:80")
        await pilot.pause()
        await app.workers.wait_for_complete()
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, TraceScreen) and app.is_running
        status = str(screen.query_one("#trace-status").render())
        assert "cannot trace" not in status and "failed" in status
        notices = [n.message for n in _notices(app) if n.severity == "error"]
        assert len(notices) == 1 and "tracing failed unexpectedly (AttributeError" in notices[0]
    assert [p.name for p in private_state.iterdir()] and app.return_code in (None, 0)


async def test_a_probe_that_cannot_be_traced_is_said_on_screen(
    make_app: Callable[..., PodpathApp], private_state: Path
) -> None:
    """An unknown destination is the engine's ProbeError: shown as 'cannot trace', no report."""
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        app.start_trace(CLIENT, "default/nosuch:80")
        await pilot.pause()
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert "cannot trace" in str(app.screen.query_one("#trace-status").render())
        assert not [n for n in _notices(app) if n.severity == "error"]
    assert not private_state.exists()


async def test_the_trace_runs_off_the_event_loop(
    make_app: Callable[..., PodpathApp], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The engine runs in a thread worker: the screen says 'tracing…' while it works."""
    import threading

    import podpath.tui.screens.trace as trace_screen
    from podpath.trace.engine import trace as real

    release = threading.Event()
    threads: list[str] = []

    def slow(*args: object, **kwargs: object) -> object:
        threads.append(threading.current_thread().name)
        release.wait(10)
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(trace_screen, "trace", slow)
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        app.start_trace(CLIENT, "10.96.0.20:80")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, TraceScreen)
        assert "tracing" in str(screen.query_one("#trace-status").render())
        await pilot.press("a")  # the UI answers meanwhile
        release.set()
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert screen.trace is not None and screen.explain
        assert screen.query_one("#branches", RowTable).row_count == 3
    assert threads and threads[0] != threading.main_thread().name


async def test_a_failing_parse_worker_is_reported_once_and_views_stop_waiting(
    fixed_snapshot: Snapshot, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bug while preparing a big snapshot's views: one notice; screens say so, not '…' forever."""
    import podpath.tui.state as state
    from podpath.tui.app import create_app
    from podpath.tui.source import static_source

    def broken(parsed: object) -> tuple[()]:
        raise KeyError("KUBE-SVC-X")

    # A stage the worker always runs itself (the doctor's findings may come from a child:
    # podpath.tui.doctor_ahead).
    monkeypatch.setattr(state, "fact_checks", broken)
    monkeypatch.setattr(state, "INLINE_PREPARE_BYTES", 0)  # prepare in the worker
    app = create_app(static_source(fixed_snapshot, "test", "t"))
    seen: list[Message] = []
    async with app.run_test(size=SIZE, message_hook=seen.append) as pilot:
        for _ in range(200):
            if any(isinstance(m, PodpathApp.ViewsReady) for m in seen):
                break
            await pilot.pause(0.05)
        await pilot.pause()
        assert app.is_running
        banner = str(app.screen.query_one("#banner").render())
        assert "failed" in banner
        notices = [n.message for n in _notices(app) if n.severity == "error"]
        assert len(notices) == 1 and "parsing the rules and conntrack failed" in notices[0]


def test_the_crash_sentence_is_one_literal_line() -> None:
    """Control characters in an error message are made visible; the sentence is one line."""
    error = ValueError("bad \x1b]0;title\x07\nname")
    text = crash.sentence(error, "tracing", "/x/crash.txt")
    assert "\n" not in text and "\x1b" not in text and text.endswith("details in /x/crash.txt")
