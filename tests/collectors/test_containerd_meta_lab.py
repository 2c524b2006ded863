"""containerd 1.6's metadata store read by podpath's bbolt reader, on the lab's real daemon:
the sandbox (pause) image of pods read from files equals what CRI reports, and a store
cut or scribbled on is a gap or nothing, never a crash."""

from __future__ import annotations

import json
import os
import random
import sys
from pathlib import Path
from typing import Any

import pytest

from podpath.collectors.hostroot import HostRoot
from podpath.collectors.runtime.bolt import BoltError, BoltReader
from podpath.collectors.runtime.containerd_meta import META_DB, container_images
from podpath.lab import Lab, containerd
from podpath.lab.node import node_path
from podpath.snapshot.model import Gap


def _files_only(lab: Lab, node: str) -> dict[str, dict[str, Any]]:
    """`ls pods --json` with CRI's socket left unasked: pods from containerd's files only."""
    argv = ["env", "PODPATH_CRI_READER=files", sys.executable, "-m", "podpath", "ls", "pods"]
    out = lab.exec(node, [*argv, "--json"], check=False)
    assert out.returncode == 0, out.stderr
    return {p["sandbox_id"]: p for p in json.loads(out.stdout)["pods"]}


@pytest.mark.lab
def test_sandbox_image_from_files_equals_cri(shared_lab: Lab) -> None:
    """Without CRI, each sandbox's and running container's image is the one CRI reports."""
    node = shared_lab.nodes[0].name
    pods = _files_only(shared_lab, node)
    with shared_lab.cri(node) as cri:
        for sandbox in cri.call("ListPodSandbox")["items"]:
            status = cri.call(
                "PodSandboxStatus", {"pod_sandbox_id": sandbox["id"], "verbose": True}
            )
            pod = pods[sandbox["id"]]
            assert pod["source"] == "runtime-state"
            assert pod["sandbox_image"] == json.loads(status["info"]["info"])["image"]
        running = {"state": {"state": "CONTAINER_RUNNING"}}
        for c in cri.call("ListContainers", {"filter": running})["containers"]:
            # An exited attempt has no bundle left: only running ones are in the files.
            (mine,) = [m for m in pods[c["pod_sandbox_id"]]["containers"] if m["id"] == c["id"]]
            assert mine["image"] == c["image"]["image"]


def _meta_db(lab: Lab, node: str) -> bytes:
    """The node's meta.db as containerd has it now."""
    return node_path(lab.node(node).init_pid, f"{containerd.ROOT}/{META_DB}").read_bytes()


@pytest.mark.lab
def test_a_damaged_store_is_a_gap_or_nothing(shared_lab: Lab, tmp_path: Path) -> None:
    """Cut short, zeroed meta pages, random bytes: no exception, images found or not at all."""
    node = shared_lab.nodes[0].name
    data = _meta_db(shared_lab, node)
    ids = [p.sandbox_id for p in shared_lab.pods_on(node)]
    rng = random.Random(13)
    intact = _images(tmp_path, data, ids, [])
    assert set(intact.values()) == {"registry.k8s.io/pause:3.9"} and set(intact) == set(ids)
    # Cut short, or both meta pages zeroed: nothing found, and at most one gap saying so.
    for case in [*(data[:n] for n in (0, 10, 4096, 8199)), bytes(8192) + data[8192:]]:
        gaps: list[Gap] = []
        assert _images(tmp_path, case, ids, gaps) == {}
        assert len(gaps) <= 1 and all(g.subject.endswith("meta.db") for g in gaps)
    # Scribbled on: what is found is read as it stands; never an exception.
    for _ in range(40):
        scribbled = bytearray(data)
        for _ in range(rng.randint(1, 64)):
            scribbled[rng.randrange(len(scribbled))] = rng.randrange(256)
        got = _images(tmp_path, bytes(scribbled), ids, [])
        assert set(got) <= set(ids) and all(isinstance(v, str) for v in got.values())


def _images(tmp_path: Path, data: bytes, ids: list[str], gaps: list[Gap]) -> dict[str, str]:
    target = tmp_path / "var/lib/containerd" / META_DB
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)
    with HostRoot(str(tmp_path)) as host:
        return container_images(host, ["/var/lib/containerd"], ids, gaps)


def test_not_a_bolt_file_is_refused(tmp_path: Path) -> None:
    """A file that is not bbolt's: BoltError, which the store reader turns into a gap."""
    path = tmp_path / "meta.db"
    path.write_bytes(b"SQLite format 3\x00" + bytes(9000))
    fd = os.open(path, os.O_RDONLY)
    try:
        with pytest.raises(BoltError):
            BoltReader(fd)
    finally:
        os.close(fd)
