"""Drive a real terminal: tmux sessions whose pane the tests read like a user would."""

from __future__ import annotations

import subprocess
import time


def tmux(*args: str) -> str:
    """Run one tmux command; its stdout."""
    return subprocess.run(
        ["tmux", *args], capture_output=True, text=True, timeout=20, check=True
    ).stdout


def wait_for(session: str, text: str, timeout: float = 60) -> str:
    """The pane's text once `text` appears on it; AssertionError with the screen otherwise."""
    deadline = time.monotonic() + timeout
    screen = ""
    while time.monotonic() < deadline:
        screen = tmux("capture-pane", "-p", "-t", session)
        if text in screen:
            return screen
        time.sleep(0.3)
    raise AssertionError(f"{text!r} never appeared:\n{screen}")
