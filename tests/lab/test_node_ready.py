"""A node's or the underlay's init says when it is ready; the lab waits for that word.

Real child processes (sh, bash) on a real pipe, as start_node and start_underlay run
them: readiness ends the wait at once, a child that dies first is reported with its
exit status and log, and one that never gets ready is reported with what was awaited.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from podpath.lab import node as lab_node
from podpath.lab.records import LabError


def _start(script: str, log: Path) -> tuple[int, subprocess.Popen[bytes]]:
    """`sh -c script` with the readiness pipe, started as start_node starts an init."""
    child, ready = lab_node._spawn(["sh", "-c", script], log)
    return ready, child


def _end(child: subprocess.Popen[bytes]) -> None:
    if child.poll() is None:
        child.kill()
    child.wait()


def test_the_ready_word_ends_the_wait_and_the_pipe_is_closed(tmp_path: Path) -> None:
    """The init's last words (bash: a multi-digit fd) end the wait; catatonit holds no
    copy of the pipe and no PODPATH_READY_FD in its environment."""
    script = lab_node._READY.replace("catatonit -P", "sleep 30")
    ready, child = _start(script, tmp_path / "log")
    try:
        began = time.monotonic()
        lab_node._await_ready(ready, child, tmp_path / "log", "test init")
        assert time.monotonic() - began < 10
        assert child.poll() is None
        # The word comes just before bash closes the pipe and execs: wait for the exec.
        deadline = time.monotonic() + 30
        while Path(f"/proc/{child.pid}/comm").read_text().strip() != "sleep":
            assert time.monotonic() < deadline, "the init never exec'd"
            time.sleep(0.01)
        fds = _open_files(child.pid)
        assert not any(target.startswith("pipe:") for target in fds), fds
        environ = Path(f"/proc/{child.pid}/environ").read_bytes()
        assert b"PODPATH_READY_FD" not in environ
    finally:
        _end(child)


def _open_files(pid: int) -> set[str]:
    """What a process's fds point to. exec sets the new comm before it closes the
    close-on-exec fds (begin_new_exec), so one listed may be gone when read: it is
    closed, and not counted."""
    found = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            found.add(os.readlink(f"/proc/{pid}/fd/{fd}"))
        except FileNotFoundError:
            continue
    return found


def test_an_init_that_dies_first_is_reported_with_its_log(tmp_path: Path) -> None:
    """A child that exits before its word: one sentence with its status and log tail."""
    ready, child = _start("echo 'mount: permission denied' >&2; exit 3", tmp_path / "log")
    try:
        with pytest.raises(LabError, match=r"test init failed before it was ready \(exit 3\)") as e:
            lab_node._await_ready(ready, child, tmp_path / "log", "test init")
        assert "mount: permission denied" in str(e.value)
    finally:
        _end(child)


def test_an_init_that_never_gets_ready_says_what_was_awaited(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No word within the ceiling: the error names what was awaited, never '(no output)'
    alone."""
    monkeypatch.setattr(lab_node, "READY_TIMEOUT", 0.5)
    ready, child = _start("sleep 30", tmp_path / "log")
    try:
        with pytest.raises(LabError) as e:
            lab_node._await_ready(ready, child, tmp_path / "log", "test init")
        message = str(e.value)
        assert message.startswith("test init did not get its namespaces and mounts ready in 0.5s")
        assert "awaited: `unshare` creating them, then `exec catatonit`" in message
    finally:
        _end(child)
