"""The real `podpath tui` inside a lab node, on a real pty (tmux): keys in, what a user sees out."""

from __future__ import annotations

import subprocess
import time
import uuid

import pytest

from podpath.cli.tui import tui_in_node_argv

pytestmark = pytest.mark.lab


def _tmux(*args: str) -> str:
    return subprocess.run(["tmux", *args], capture_output=True, text=True, timeout=20, check=True).stdout


def _wait_for(session: str, text: str, timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    screen = ""
    while time.monotonic() < deadline:
        screen = _tmux("capture-pane", "-p", "-t", session)
        if text in screen:
            return screen
        time.sleep(0.5)
    raise AssertionError(f"{text!r} never appeared:\n{screen}")


def test_tui_in_a_lab_node_lists_its_pods_and_opens_one(shared_lab) -> None:  # type: ignore[no-untyped-def]
    """`podpath tui` in node1 shows the lab title, lists node1's pods, and opens one with its veth."""
    pod = next(p for p in shared_lab.pods if p.node == "node1")
    argv = shared_lab.enter_argv("node1", tui_in_node_argv("node1"))
    session = f"pptui-lab-{uuid.uuid4().hex[:8]}"
    _tmux("new-session", "-d", "-s", session, "-x", "160", "-y", "40", *argv)
    try:
        home = _wait_for(session, "VIEW")
        assert "lab node node1" in home
        _tmux("send-keys", "-t", session, ":")
        _wait_for(session, "jump to")
        _tmux("send-keys", "-t", session, "pods", "Enter")
        pods = _wait_for(session, pod.name)
        assert pod.ip in pods
        # One step at a time, as a person types: keys sent before the filter has the
        # focus would reach the table's own bindings (c, s, t...).
        _tmux("send-keys", "-t", session, "/")
        _wait_for(session, "filter (substring)")
        _tmux("send-keys", "-t", session, "-l", pod.name)
        _wait_for(session, "1 of ")
        _tmux("send-keys", "-t", session, "Enter")
        time.sleep(0.5)
        _tmux("send-keys", "-t", session, "Enter")
        _wait_for(session, f"Pod {pod.namespace}/{pod.name}")
        _wait_for(session, "NS TYPE")
        time.sleep(0.5)
        _tmux("send-keys", "-t", session, "Right")
        interfaces = _wait_for(session, "PEER (HOST)")
        assert f"↔ {pod.host_veth}@if" in interfaces
        _tmux("send-keys", "-t", session, "q")
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True, timeout=20, check=False)
