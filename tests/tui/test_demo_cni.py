"""`podpath demo --cni calico`: a Calico-shaped lab, the TUI inside it naming the dataplane, torn down on quit."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid

import pytest
from tmux_pane import tmux, wait_for

pytestmark = pytest.mark.lab


def test_demo_with_calico_shows_the_routed_dataplane_and_cleans_up() -> None:
    """The home screen says Calico (routed); after q the demo lab is gone."""
    from podpath.lab import state

    name = f"t{os.getpid()}-demo-calico"
    session = f"ppdemo-{uuid.uuid4().hex[:8]}"
    argv = [sys.executable, "-m", "podpath", "demo", "--name", name, "--cni", "calico"]
    tmux("new-session", "-d", "-s", session, "-x", "160", "-y", "40", *argv)
    try:
        wait_for(session, "VIEW", timeout=180)
        # The dataplane fact shows "…" until the views are parsed (in a worker), then this.
        home = wait_for(session, "Calico (routed)", timeout=60)
        assert "dataplane" in home
        assert state.lab_dir(name).exists()
        tmux("send-keys", "-t", session, "q")
        deadline = time.monotonic() + 90
        while state.lab_dir(name).exists() and time.monotonic() < deadline:
            time.sleep(0.3)
        assert not state.lab_dir(name).exists()
    finally:
        subprocess.run(
            ["tmux", "kill-session", "-t", session], capture_output=True, timeout=20, check=False
        )
        if state.lab_dir(name).exists():
            from podpath.lab import down

            down(name)
