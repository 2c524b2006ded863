"""containerd's netns_mounts_under_state_dir, run for real: Debian's containerd 1.6.20
accepts it (`containerd config default` prints it, false by default) and then pins each
pod's netns under its CRI plugin's state dir instead of /run/netns."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from collections.abc import Callable

    from podpath.lab import Lab

pytestmark = pytest.mark.lab

UNDER_STATE = "/run/containerd/io.containerd.grpc.v1.cri/netns/cni-"


def _pods(lab: Lab, *env: str) -> dict[str, dict[str, Any]]:
    """`podpath ls pods --json` run live in node1 (with `env` set), by pod ref."""
    argv = ["env", *env, sys.executable, "-m", "podpath", "ls", "pods", "--json"]
    done = lab.exec("node1", argv, check=False, timeout=120)
    assert done.returncode == 0, done.stderr
    return {f"{p['namespace']}/{p['name']}": p for p in json.loads(done.stdout)["pods"]}


@pytest.fixture
def lab(make_lab: Callable[..., Lab]) -> Lab:
    """One node whose real containerd mounts the pods' netns under its state dir."""
    made = make_lab(nodes=1, pods=2, services=3, netns_under_state=True)
    if made.record.spec.runtime != "containerd":
        pytest.skip("containerd is not installed: the runc imitation has no such option")
    return made


@pytest.mark.parametrize("reader", ["cri", "files"])
def test_netns_under_the_state_dir_is_found(lab: Lab, reader: str) -> None:
    """From CRI and from the files alone: every pod's netns is the one containerd pinned
    under its state dir (the kernel's inode of that mount), and none is in /run/netns."""
    env = ("PODPATH_CRI_READER=files",) if reader == "files" else ()
    found = _pods(lab, *env)
    assert len(lab.pods) == 2
    for pod in lab.pods:
        row = found[pod.ref]
        path = row["netns"]["path"]
        assert path == pod.netns_path and path.startswith(UNDER_STATE), row
        inode = lab.exec("node1", ["stat", "-L", "-c", "%i", path]).stdout.strip()
        assert row["netns"]["inode"] == int(inode)
        assert row["ips"] == [pod.ip]
    pinned = lab.exec("node1", ["sh", "-c", "ls /run/netns 2>/dev/null || true"]).stdout
    assert not any(p.netns_path.rsplit("/", 1)[1] in pinned for p in lab.pods)


def test_a_trace_between_such_pods_is_delivered_and_traffic_agrees(
    lab: Lab, run_podpath: Any
) -> None:
    """podpath traces coredns -> web through those namespaces; real traffic arrives."""
    client = next(p for p in lab.pods if p.app != "web")
    server = next(p for p in lab.pods if p.app == "web")
    done = run_podpath(lab, "node1", "trace", "--from", client.ref, "--to", f"{server.ip}:80")
    assert done.returncode == 0, done.stderr
    assert "delivered" in done.stdout
    assert lab.probe(client.ref, server.ip, 80).ok
