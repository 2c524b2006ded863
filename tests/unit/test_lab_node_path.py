"""node_path refuses a PID that is no longer a lab node's init (a reused PID)."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator

import pytest

from podpath.lab import procs
from podpath.lab.node import node_path
from podpath.lab.records import LabError


def test_a_process_of_this_machine_is_not_a_node() -> None:
    """Our own PID (this machine's mount namespace, no PID namespace of its own)."""
    with pytest.raises(LabError, match=f"PID {os.getpid()}"):
        node_path(os.getpid(), "/etc/cni/net.d/10-lab.conflist")


def test_a_gone_pid_is_not_a_node() -> None:
    """A PID that names no process at all."""
    gone = _unused_pid()
    with pytest.raises(LabError, match="is gone"):
        node_path(gone, "/run/x")


@pytest.fixture
def pid_namespace_init() -> Iterator[int]:
    """PID 1 of a new PID namespace that shares this machine's mount namespace: its
    /proc/PID/root is our own root, exactly what a reused PID must never be taken for."""
    child = subprocess.Popen(["unshare", "--pid", "--fork", "--kill-child", "sleep", "60"])
    try:
        deadline = time.monotonic() + 10
        while not (kids := procs.children(child.pid)) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert kids, "unshare --fork started no child"
        assert procs.nspid(kids[0])[-1] == 1
        yield kids[0]
    finally:
        # --kill-child: the sleep dies with unshare, nothing of ours is left.
        child.kill()
        child.wait()


@pytest.mark.skipif(os.geteuid() != 0, reason="unshare --pid needs root")
def test_a_pid_namespace_init_in_our_mount_namespace_is_not_a_node(
    pid_namespace_init: int,
) -> None:
    """PID 1 of its namespace, but its root is this machine's: refused."""
    with pytest.raises(LabError, match="gone"):
        node_path(pid_namespace_init, "/etc/hosts")


def _unused_pid() -> int:
    pid = 4_000_000
    while os.path.exists(f"/proc/{pid}"):
        pid -= 1
    return pid
