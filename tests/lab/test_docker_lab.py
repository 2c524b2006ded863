"""A pod made by a real dockerd, dockershim-style, is named with its containers, images and netns."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from podpath.lab import Lab, dockerd

pytestmark = pytest.mark.lab


def test_docker_made_pod_equals_what_dockerd_reports(
    make_lab: Callable[..., Lab], run_podpath: Any
) -> None:
    """Names, uid, images, image ids, PIDs, states, netns and IP equal docker inspect's."""
    lab = make_lab(nodes=1, pods=1, services=2)
    made = lab.add_docker_pod("node1", "dockerpod-1")
    sock = dockerd.host_socket(lab.node("node1").init_pid)
    sandbox = dockerd.api(sock, "GET", f"/containers/{made.sandbox_id}/json")
    app = dockerd.api(sock, "GET", f"/containers/{made.container_id}/json")
    assert sandbox["Name"] == f"/k8s_POD_dockerpod-1_default_{made.uid}_0"
    assert app["HostConfig"]["NetworkMode"] == f"container:{made.sandbox_id}"

    out = run_podpath(lab, "node1", "ls", "pods", "--json")
    assert out.returncode == 0, out.stderr
    pods = {p["sandbox_id"]: p for p in json.loads(out.stdout)["pods"]}
    pod = pods[made.sandbox_id]
    assert (pod["namespace"], pod["name"], pod["uid"], pod["runtime"]) == (
        "default",
        "dockerpod-1",
        made.uid,
        "docker",
    )
    assert pod["pause_pid"] == sandbox["State"]["Pid"]
    assert pod["netns"]["path"] == sandbox["NetworkSettings"]["SandboxKey"].replace(
        "/var/run/", "/run/"
    )
    assert pod["ips"] == [made.ip]
    assert pod["sandbox_image"] == sandbox["Config"]["Image"] == "registry.k8s.io/pause:3.9"
    assert pod["state"] == "ready"
    assert pod["interfaces"][0]["peer"]["master"] == "cni0"
    by_id = {c["id"]: c for c in pod["containers"]}
    assert set(by_id) == {made.sandbox_id, made.container_id}
    for inspect in (sandbox, app):
        c = by_id[inspect["Id"]]
        assert c["image"] == inspect["Config"]["Image"]
        assert c["image_id"] == inspect["Image"]
        assert c["pids"] == [inspect["State"]["Pid"]]
    web = by_id[made.container_id]
    assert (web["name"], web["state"], web["attempt"], web["restart_count"]) == (
        "web",
        "running",
        0,
        0,
    )
    assert web["shared_namespaces"][:1] == ["net"]
    assert by_id[made.sandbox_id]["name"] == "POD"


def test_trace_from_a_docker_pod_by_its_printed_name(
    make_lab: Callable[..., Lab], run_podpath: Any
) -> None:
    """`podpath trace --from NAME` accepts the docker pod's name and delivers to the web pod."""
    lab = make_lab(nodes=1, pods=2, services=2)
    made = lab.add_docker_pod("node1", "dockerpod-2")
    web = next(p for p in lab.pods if p.app == "web")
    out = run_podpath(lab, "node1", "trace", "--from", made.name, "--to", f"{web.ip}:80")
    assert out.returncode == 0, out.stderr
    assert "DELIVERED" in out.stdout and f"default/{web.name}" in out.stdout
    # Real traffic from the docker pod's netns (dockerd's SandboxKey) to the web pod.
    probe = lab.exec(
        "node1",
        ["nsenter", f"--net={made.netns_path}", "--", "busybox", "nc", "-w", "3", web.ip, "80"],
        input=f"GET / HTTP/1.0\r\nHost: {web.ip}\r\n\r\n",
        timeout=20,
    )
    assert f"served by pod default/{web.name}" in probe.stdout
