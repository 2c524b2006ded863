"""podpath's gRPC transport against a lab node's real containerd (its CRI plugin, grpc-go).

The ids it lists are containerd's own (`ctr`, containerd's native API, another client
and another service); many calls at once come back as they do one by one; the
runtime's errors are statuses; a frozen runtime is a deadline and a dead one a refusal,
each one sentence, also in `podpath ls gaps`.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from typing import Any

import pytest

from podpath.cri.channel import Channel, RpcError
from podpath.cri.client import CriError
from podpath.lab import Lab, containerd, procs

pytestmark = pytest.mark.lab


def _ctr(lab: Lab, node: str, *args: str) -> str:
    return lab.exec(node, ["ctr", "-n", "k8s.io", *args]).stdout


def test_ids_and_version_equal_containerds_own(shared_lab: Lab) -> None:
    """Sandbox and container ids = `ctr containers ls`; the version = `ctr version`'s server."""
    for node in shared_lab.nodes:
        with shared_lab.cri(node.name) as cri:
            version = cri.version()
            sandboxes = {s["id"] for s in cri.call("ListPodSandbox")["items"]}
            containers = {c["id"] for c in cri.call("ListContainers")["containers"]}
        assert sandboxes and containers
        assert sandboxes | containers == set(
            _ctr(shared_lab, node.name, "containers", "ls", "-q").split()
        )
        server = _ctr(shared_lab, node.name, "version").split("Server:", 1)[1]
        assert f"Version:  {version['runtime_version']}" in server
        assert (version["runtime_name"], version["runtime_api_version"]) == ("containerd", "v1")


def test_many_calls_at_once_equal_one_by_one(shared_lab: Lab) -> None:
    """call_many (concurrent streams) gives exactly what one call at a time gives, in order."""
    node = shared_lab.nodes[0].name
    with shared_lab.cri(node) as cri:
        ids = [c["id"] for c in cri.call("ListContainers")["containers"]]
        requests = [{"container_id": i, "verbose": True} for i in ids]
        one_by_one = [cri.call("ContainerStatus", r) for r in requests]
        # 300 calls: more than the 100 streams kept in flight, so some wait for a free one.
        many = cri.call_many("ContainerStatus", requests * (300 // len(requests) + 1))
    assert many == one_by_one * (300 // len(requests) + 1)


def test_runtime_errors_are_statuses(shared_lab: Lab) -> None:
    """containerd's NOT_FOUND and UNIMPLEMENTED arrive as such; an oversized answer is refused."""
    node = shared_lab.nodes[0]
    with shared_lab.cri(node.name) as cri:
        with pytest.raises(CriError) as caught:
            cri.call("PodSandboxStatus", {"pod_sandbox_id": "podpath-no-such-sandbox"})
        assert caught.value.code == "NOT_FOUND"
        assert str(caught.value).startswith(
            f"CRI PodSandboxStatus on {cri.socket_path}: NOT_FOUND: "
        )
        real = cri.call("ListPodSandbox")["items"][0]["id"]
        got = cri.call_many(
            "PodSandboxStatus",
            [
                {"pod_sandbox_id": real},
                {"pod_sandbox_id": "podpath-gone"},
                {"pod_sandbox_id": real},
            ],
        )
    assert got[1] is None and got[0] == got[2] and got[0] is not None
    assert got[0]["status"]["id"] == real
    channel = Channel(containerd.host_socket(node.init_pid), max_message=64)
    try:
        with pytest.raises(RpcError) as unknown:
            channel.unary("/runtime.v1.RuntimeService/PodpathNoSuchMethod", b"", 10)
        assert unknown.value.code == "UNIMPLEMENTED"
        with pytest.raises(RpcError) as big:
            channel.unary("/runtime.v1.RuntimeService/ListContainers", b"", 10)
        assert big.value.code == "RESOURCE_EXHAUSTED"
        # The stream was cancelled, not the connection: a small answer still comes.
        assert channel.unary("/runtime.v1.RuntimeService/Version", b"\x0a\x02v1", 10)
    finally:
        channel.close()


def _wait_stopped(pid: int) -> None:
    """Until every thread of `pid` is stopped (a group stop reaches each thread in turn)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        states = set()
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/stat") as f:
                states.add(f.read().rsplit(")", 1)[1].split()[0])
        if states == {"T"}:
            return
        time.sleep(0.01)
    raise AssertionError(f"containerd {pid} did not stop")


def test_frozen_then_dead_runtime(make_lab: Callable[..., Lab], run_podpath: Any) -> None:
    """containerd stopped: DEADLINE_EXCEEDED in time; resumed: answers; killed: refused, a gap."""
    lab = make_lab(nodes=1, pods=1, services=2)
    node = lab.record.nodes[0]
    pid = node.containerd_pid
    sock = containerd.host_socket(node.init_pid)
    with lab.cri("node1") as cri:
        cri.timeout = 1
        assert cri.version()["runtime_name"] == "containerd"
        os.kill(pid, signal.SIGSTOP)
        try:
            _wait_stopped(pid)
            started = time.monotonic()
            with pytest.raises(CriError) as frozen:
                cri.call("ListPodSandbox")
            waited = time.monotonic() - started
        finally:
            os.kill(pid, signal.SIGCONT)
        assert frozen.value.code == "DEADLINE_EXCEEDED" and 1 <= waited < 10
        assert (
            str(frozen.value)
            == f"CRI ListPodSandbox on {sock}: DEADLINE_EXCEEDED: no answer within 1 s"
        )
        cri.timeout = 30
        assert len(cri.call("ListPodSandbox")["items"]) == 1
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while procs.alive(pid, node.containerd_start) and time.monotonic() < deadline:
        time.sleep(0.05)
    with lab.cri("node1") as cri, pytest.raises(CriError) as dead:
        cri.version()
    assert dead.value.code == "UNAVAILABLE"
    assert str(dead.value).endswith("UNAVAILABLE: connection refused (nothing is listening)")
    gaps = run_podpath(lab, "node1", "ls", "gaps")
    assert gaps.returncode == 0, gaps.stderr
    assert "CRI socket /run/containerd/containerd.sock" in gaps.stdout
    assert "UNAVAILABLE: connection refused (nothing is listening)" in gaps.stdout
