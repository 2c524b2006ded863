"""The real `podpath` binary on a real pty (tmux): hostile names arrive literally, nothing escapes."""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest
from tmux_pane import tmux, wait_for

from podpath.snapshot import codec
from podpath.snapshot.codec import load_path

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "snapshot.json"
PODPATH = (
    Path(os.environ.get("VIRTUAL_ENV", Path(__file__).resolve().parents[2] / ".venv"))
    / "bin"
    / "podpath"
)

pytestmark = pytest.mark.skipif(
    shutil.which("tmux") is None and os.environ.get("CI") != "true", reason="needs tmux"
)


def test_hostile_pod_name_is_shown_literally_on_a_real_terminal(tmp_path: Path) -> None:
    """An OSC title, CSI and @click markup in a pod name are shown as text; the pane title is untouched."""
    snap = load_path(str(FIXTURE))
    evil = dataclasses.replace(snap.pods[0], name="[@click=app.quit]evil\x1b]2;PWNED\x07\x1b[2J")
    path = tmp_path / "hostile.json"
    path.write_text(codec.dumps(dataclasses.replace(snap, pods=(evil, *snap.pods[1:]))))
    session = f"pptui-{uuid.uuid4().hex[:8]}"
    tmux(
        "new-session",
        "-d",
        "-s",
        session,
        "-x",
        "120",
        "-y",
        "36",
        str(PODPATH),
        "tui",
        "--snapshot",
        str(path),
    )  # argv form: tmux runs it without a shell
    try:
        wait_for(session, "VIEW")
        tmux("send-keys", "-t", session, ":")
        wait_for(session, "jump to")
        tmux("send-keys", "-t", session, "pods", "Enter")
        screen = wait_for(session, "evil")
        assert "[@click=app.quit]evil\\x1b]2;PWNED\\x07\\x1b[2J" in screen
        assert "PWNED" not in tmux("display-message", "-p", "-t", session, "#{pane_title}")
    finally:
        subprocess.run(
            ["tmux", "kill-session", "-t", session], capture_output=True, timeout=20, check=False
        )
