"""`ls pods` READY and RESTARTS on real containerd pods: counted as kubectl counts CRI's containers."""

from __future__ import annotations

import json
from typing import Any

import pytest

from podpath.lab import Lab

pytestmark = pytest.mark.lab


def _kubectl_counts(containers: list[dict[str, Any]]) -> tuple[str, int]:
    """READY and RESTARTS from CRI ListContainers of one pod, as kubelet reports them."""
    newest: dict[str, dict[str, Any]] = {}
    for c in containers:
        name = c["metadata"]["name"]
        if name not in newest or c["metadata"]["attempt"] > newest[name]["metadata"]["attempt"]:
            newest[name] = c
    running = sum(1 for c in newest.values() if c["state"] == "CONTAINER_RUNNING")
    restarts = sum(
        int(c["annotations"]["io.kubernetes.container.restartCount"]) for c in newest.values()
    )
    return f"{running}/{len(newest)}", restarts


def test_ready_and_restarts_equal_what_cri_says(shared_lab: Lab, run_podpath: Any) -> None:
    """Every pod: READY x/y and RESTARTS from CRI's containers; the crashed pod is 1/1 with 1."""
    seen_restart = False
    for node in shared_lab.nodes:
        out = run_podpath(shared_lab, node.name, "ls", "pods", "--json")
        assert out.returncode == 0, out.stderr
        rows = {p["sandbox_id"]: p for p in json.loads(out.stdout)["pods"]}
        with shared_lab.cri(node.name) as cri:
            containers = cri.call("ListContainers")["containers"]
        for sandbox_id, row in rows.items():
            mine = [c for c in containers if c["pod_sandbox_id"] == sandbox_id]
            assert (row["ready"], row["restarts"]) == _kubectl_counts(mine), row["name"]
            seen_restart |= row["restarts"] == 1 and row["ready"] == "1/1" and len(mine) == 2
    assert seen_restart, "the lab's crashed pod: two attempts, one container, one restart"


def test_ls_pods_prints_ready_and_restarts(shared_lab: Lab, run_podpath: Any) -> None:
    """The text table has READY and RESTARTS where kubectl users look for them."""
    (pod,) = [p for p in shared_lab.pods if len(p.containers) == 2]
    out = run_podpath(shared_lab, pod.node, "ls", "pods")
    assert out.returncode == 0, out.stderr
    header, *lines = out.stdout.splitlines()
    assert header.split()[6:8] == ["READY", "RESTARTS"]
    (line,) = [line for line in lines if pod.sandbox_id[:13] in line]
    assert line.split()[6:8] == ["1/1", "1"]
