"""podpath's pods equal what the node's real containerd reports through CRI, field by field."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable
from typing import Any

import pytest

from podpath.lab import Lab, procs

pytestmark = pytest.mark.lab

_STATE = {
    "CONTAINER_CREATED": "created",
    "CONTAINER_RUNNING": "running",
    "CONTAINER_EXITED": "exited",
    "CONTAINER_UNKNOWN": "unknown",
    "SANDBOX_READY": "ready",
    "SANDBOX_NOTREADY": "notready",
}


def _podpath_pods(lab: Lab, node: str, run_podpath: Any) -> dict[str, dict[str, Any]]:
    out = run_podpath(lab, node, "ls", "pods", "--json")
    assert out.returncode == 0, out.stderr
    rows = json.loads(out.stdout)["pods"]
    return {p["sandbox_id"]: p for p in rows}


def _cri_view(lab: Lab, node: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(PodSandboxStatus verbose responses, ContainerStatus responses) of every pod, as crictl."""
    with lab.cri(node) as cri:
        sandboxes = [
            cri.call("PodSandboxStatus", {"pod_sandbox_id": s["id"], "verbose": True})
            for s in cri.call("ListPodSandbox")["items"]
        ]
        containers = [
            cri.call("ContainerStatus", {"container_id": c["id"], "verbose": True})
            for c in cri.call("ListContainers")["containers"]
        ]
    return sandboxes, containers


def _ns_or_none(value: int) -> int | None:
    return value or None


def _assert_pods_equal_cri(lab: Lab, node: str, run_podpath: Any) -> dict[str, dict[str, Any]]:
    got = _podpath_pods(lab, node, run_podpath)
    sandboxes, containers = _cri_view(lab, node)
    assert set(got) == {s["status"]["id"] for s in sandboxes}
    for resp in sandboxes:
        st, info = resp["status"], json.loads(resp["info"]["info"])
        pod = got[st["id"]]
        assert pod["source"] == "cri" and pod["runtime"] == "containerd"
        assert (pod["namespace"], pod["name"], pod["uid"]) == (
            st["metadata"]["namespace"],
            st["metadata"]["name"],
            st["metadata"]["uid"],
        )
        assert pod["attempt"] == st["metadata"]["attempt"]
        assert pod["state"] == _STATE[st["state"]]
        assert pod["created_at"] == st["created_at"]
        assert pod["ips"] == [st["network"]["ip"]]
        assert pod["sandbox_image"] == info["image"] == "registry.k8s.io/pause:3.9"
        assert pod["pause_pid"] == info["pid"]
        netns = next(
            n["path"] for n in info["runtimeSpec"]["linux"]["namespaces"] if n["type"] == "network"
        )
        assert pod["netns"]["path"] == netns.replace("/var/run/", "/run/")
    by_id = {c["id"]: (p, c) for p in got.values() for c in p["containers"]}
    for resp in containers:
        st = resp["status"]
        pod, c = by_id[st["id"]]
        assert pod["sandbox_id"] == json.loads(resp["info"]["info"])["sandboxID"]
        assert (c["name"], c["attempt"]) == (st["metadata"]["name"], st["metadata"]["attempt"])
        assert c["state"] == _STATE[st["state"]]
        assert c["image"] == st["image"]["image"]
        assert c["image_id"] == (st["image_id"] or st["image_ref"])
        assert c["log_path"] == st["log_path"]
        assert c["restart_count"] == int(st["annotations"]["io.kubernetes.container.restartCount"])
        assert (c["created_at"], c["started_at"], c["finished_at"]) == (
            _ns_or_none(st["created_at"]),
            _ns_or_none(st["started_at"]),
            _ns_or_none(st["finished_at"]),
        )
        if c["state"] == "exited":
            assert (c["exit_code"], c["reason"]) == (st["exit_code"], st["reason"])
            assert c["pids"] == []
        elif c["state"] == "running":
            assert c["pids"] == [json.loads(resp["info"]["info"])["pid"]]
    # Sandboxes are not containers in CRI; every other container podpath lists is one.
    assert {i for i, (_, c) in by_id.items() if c["kind"] != "sandbox"} == {
        r["status"]["id"] for r in containers
    }
    return got


def test_every_pod_field_equals_what_cri_reports(shared_lab: Lab, run_podpath: Any) -> None:
    """On each node: names, uid, attempt, state, image, sandbox image, pause, netns, IPs = CRI."""
    for node in shared_lab.nodes:
        _assert_pods_equal_cri(shared_lab, node.name, run_podpath)


def test_restarted_container_shows_both_attempts(shared_lab: Lab, run_podpath: Any) -> None:
    """The crashed pod: attempt 0 exited (137, Error), attempt 1 running with restart count 1."""
    (pod,) = [p for p in shared_lab.pods if len(p.containers) == 2]
    got = _podpath_pods(shared_lab, pod.node, run_podpath)[pod.sandbox_id]
    apps = sorted(
        (c["attempt"], c["state"], c["exit_code"], c["restart_count"])
        for c in got["containers"]
        if c["kind"] == "container"
    )
    assert apps == [(0, "exited", 137, 0), (1, "running", None, 1)]
    shared = {tuple(c["shared_namespaces"]) for c in got["containers"] if c["kind"] == "container"}
    # Shared with the sandbox, not with the whole node: user/cgroup/time are the node's.
    assert shared == {("net", "ipc", "uts")}


def test_created_container_is_listed_as_created(
    make_lab: Callable[..., Lab], run_podpath: Any
) -> None:
    """A container created but never started is listed, state created, with no PIDs."""
    lab = make_lab(nodes=1, pods=2, services=2)
    pod = lab.pods_on("node1")[1]
    cid = lab.add_container(pod.ref, "sidecar", start=False)
    got = _assert_pods_equal_cri(lab, "node1", run_podpath)
    (side,) = [c for c in got[pod.sandbox_id]["containers"] if c["id"] == cid]
    assert (side["name"], side["state"], side["pids"], side["started_at"]) == (
        "sidecar",
        "created",
        [],
        None,
    )


def test_without_the_socket_pods_come_from_containerds_files(
    make_lab: Callable[..., Lab], run_podpath: Any
) -> None:
    """containerd stopped: pods from bundles, runc state and CRI status files, names kept."""
    lab = make_lab(nodes=1, pods=3, services=2)
    before = _assert_pods_equal_cri(lab, "node1", run_podpath)
    node = lab.record.nodes[0]
    os.kill(node.containerd_pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while procs.alive(node.containerd_pid, node.containerd_start) and time.monotonic() < deadline:
        time.sleep(0.05)
    lab.exec("node1", ["rm", "-f", "/run/containerd/containerd.sock"])
    after = _podpath_pods(lab, "node1", run_podpath)
    assert set(after) == set(before)
    for sid, pod in after.items():
        old = before[sid]
        assert pod["source"] == "runtime-state"
        assert (pod["namespace"], pod["name"], pod["uid"]) == (
            old["namespace"],
            old["name"],
            old["uid"],
        )
        assert (pod["pause_pid"], pod["netns"], pod["ips"]) == (
            old["pause_pid"],
            old["netns"],
            old["ips"],
        )
        running = {c["id"]: c for c in pod["containers"] if c["kind"] == "container"}
        for c in old["containers"]:
            if c["state"] == "running":
                assert running[c["id"]]["state"] == "running"
                assert running[c["id"]]["started_at"] == c["started_at"]


_LISTING = """
import json
from podpath.collectors.hostroot import HostRoot
from podpath.collectors.runtime.cri_listing import listing
from podpath.collectors.runtime.pods import containerd_bundles

with HostRoot("/") as host:
    bundled = containerd_bundles(host)
sock = "/run/containerd/containerd.sock"
print(json.dumps({"bundled": sorted(bundled), "plain": listing(sock, 60, bundled),
                  "verbose": listing(sock, 60)}))
"""


def test_containers_with_a_readable_bundle_are_asked_the_plain_status(shared_lab: Lab) -> None:
    """The runtime spec is read once: from the bundle where there is one, else from CRI.

    A verbose ContainerStatus repeats the bundle's spec (environment and all): the listing
    asks the plain status of a container whose config.json podpath reads, and what the
    verbose status would have added is exactly what that bundle holds.
    """
    import sys

    out = shared_lab.exec("node1", [sys.executable, "-c", _LISTING])
    doc = json.loads(out.stdout)
    bundled = set(doc["bundled"])
    plain = {c["status"]["id"]: c["info"] for c in doc["plain"]["containers"]}
    verbose = {c["status"]["id"]: c["info"] for c in doc["verbose"]["containers"]}
    running = {c["status"]["id"] for c in doc["verbose"]["containers"] if c["info"]["pid"]}
    assert running and running <= bundled and set(plain) == set(verbose)
    for cid, info in plain.items():
        if cid in bundled:
            assert info["pid"] is None and info["env"] is None and info["namespaces"] is None
        else:
            assert info == verbose[cid]
    # Sandboxes are always asked verbose (their netns path, log directory, pause PID).
    assert all(s["info"]["pid"] for s in doc["plain"]["sandboxes"])
    for cid in sorted(running)[:3]:
        spec = json.loads(
            shared_lab.exec(
                "node1",
                ["cat", f"/run/containerd/io.containerd.runtime.v2.task/k8s.io/{cid}/config.json"],
            ).stdout
        )
        assert spec["process"]["env"] == verbose[cid]["env"]
        assert spec["linux"]["namespaces"] == verbose[cid]["namespaces"]
