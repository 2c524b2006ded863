"""The real `podpath tui` inside a lab node, on a real pty (tmux): keys in, what a user sees out."""

from __future__ import annotations

import subprocess
import time
import uuid

import pytest
from tmux_pane import tmux, wait_for

from podpath.cli.tui import tui_in_node_argv

pytestmark = pytest.mark.lab


def test_tui_in_a_lab_node_lists_its_pods_and_opens_one(shared_lab) -> None:  # type: ignore[no-untyped-def]
    """`podpath tui` in node1 shows the lab title, lists node1's pods, and opens one with its veth."""
    pod = next(p for p in shared_lab.pods if p.node == "node1")
    argv = shared_lab.enter_argv("node1", tui_in_node_argv("node1"))
    session = f"pptui-lab-{uuid.uuid4().hex[:8]}"
    tmux("new-session", "-d", "-s", session, "-x", "160", "-y", "40", *argv)
    try:
        home = wait_for(session, "VIEW")
        assert "lab node node1" in home
        tmux("send-keys", "-t", session, ":")
        wait_for(session, "jump to")
        tmux("send-keys", "-t", session, "pods", "Enter")
        pods = wait_for(session, pod.name)
        assert pod.ip in pods
        # One step at a time, as a person types: keys sent before the filter has the
        # focus would reach the table's own bindings (c, s, t...).
        tmux("send-keys", "-t", session, "/")
        wait_for(session, "filter (substring)")
        tmux("send-keys", "-t", session, "-l", pod.name)
        wait_for(session, "1 of ")
        tmux("send-keys", "-t", session, "Enter")
        time.sleep(0.5)
        tmux("send-keys", "-t", session, "Enter")
        wait_for(session, f"Pod {pod.namespace}/{pod.name}")
        wait_for(session, "NS TYPE")
        time.sleep(0.5)
        tmux("send-keys", "-t", session, "Right")
        interfaces = wait_for(session, "PEER (HOST)")
        assert f"↔ {pod.host_veth}@if" in interfaces
        tmux("send-keys", "-t", session, "q")
    finally:
        subprocess.run(
            ["tmux", "kill-session", "-t", session], capture_output=True, timeout=20, check=False
        )


def test_after_a_shell_in_a_pod_the_tui_takes_keys_again(shared_lab) -> None:  # type: ignore[no-untyped-def]
    """`s` in a lab node (a PID namespace of its own, as in podpath demo), `exit`: keys work again.

    The shell took the terminal and could not give it back to a process group whose
    leader is outside the node's PID namespace: the TUI was left in the background.
    """
    pod = next(p for p in shared_lab.pods if p.node == "node1")
    argv = shared_lab.enter_argv("node1", tui_in_node_argv("node1"))
    session = f"pptui-lab-{uuid.uuid4().hex[:8]}"
    tmux("new-session", "-d", "-s", session, "-x", "160", "-y", "40", *argv)
    try:
        wait_for(session, "VIEW")
        tmux("send-keys", "-t", session, ":")
        wait_for(session, "jump to")
        tmux("send-keys", "-t", session, "pods", "Enter")
        wait_for(session, pod.name)
        time.sleep(0.5)
        tmux("send-keys", "-t", session, "s")
        wait_for(session, "exit to return")
        tmux("send-keys", "-t", session, "-l", "echo in-the-pod-$((6*7))")
        tmux("send-keys", "-t", session, "Enter")
        wait_for(session, "in-the-pod-42")
        tmux("send-keys", "-t", session, "-l", "exit")
        tmux("send-keys", "-t", session, "Enter")
        # Back in the TUI once it has drawn itself over the shell's lines.
        deadline = time.monotonic() + 60
        while "in-the-pod-42" in tmux("capture-pane", "-p", "-t", session):
            assert time.monotonic() < deadline, "the TUI never came back after the shell"
            time.sleep(0.3)
        time.sleep(0.5)
        tmux("send-keys", "-t", session, "?")
        wait_for(session, "Keys — Pods")
        tmux("send-keys", "-t", session, "Escape")
        time.sleep(0.5)
        tmux("send-keys", "-t", session, "q")
    finally:
        subprocess.run(
            ["tmux", "kill-session", "-t", session], capture_output=True, timeout=20, check=False
        )
