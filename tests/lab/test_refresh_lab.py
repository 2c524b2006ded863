"""A refresh (the TUI's `r`) reuses what it provably may, and gives what a fresh snapshot gives.

podpath reuses a container's record parsed from its bundle while the container keeps its
id, its init keeps its PID and start time and the bundle is the same file
(collectors/runtime/pods.py BundleMemo), and the CRI status of each sandbox and container
listed with the id, state and creation time it had (collectors/runtime/cri_listing.py).
Each test compares a refresh with a fresh snapshot taken right after it, inside the node
(tests/collectors/refresh_driver.py).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from podpath.lab.node import node_env

if TYPE_CHECKING:
    from podpath.lab import Lab

pytestmark = pytest.mark.lab

DRIVER = Path(__file__).resolve().parents[1] / "collectors" / "refresh_driver.py"


def _refresh(lab: Lab, node: str, between: Callable[[], object] = lambda: None) -> dict[str, Any]:
    """Snapshot in the node, run `between` here, then refresh and snapshot again there."""
    argv = lab.enter_argv(node, [sys.executable, str(DRIVER)])
    with subprocess.Popen(
        argv,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=node_env(),
        cwd="/",
    ) as driver:
        assert driver.stdin is not None and driver.stdout is not None
        assert driver.stdout.readline().strip() == "ready"
        try:
            between()
        finally:
            driver.stdin.write("go\n")
            driver.stdin.flush()
        out = driver.stdout.read()
    assert driver.returncode == 0
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


def _running(result: dict[str, Any]) -> set[str]:
    return {c["id"] for p in result["fresh_pods"] for c in p["containers"] if c["pids"]}


def test_a_refresh_of_an_unchanged_node_equals_a_fresh_snapshot(shared_lab: Lab) -> None:
    """Every running container's record is reused (no bundle read), and every sandbox's
    and container's CRI status (none asked again); pods and links equal."""
    for node in shared_lab.nodes:
        result = _refresh(shared_lab, node.name)
        assert result["pods_equal"], node.name
        assert result["links_equal"] and result["links"], node.name
        assert not set(result["bundles_read"]) & _running(result), node.name
        listed = {c["id"] for p in result["fresh_pods"] for c in p["containers"]}
        assert result["cri_asked"] == [] and set(result["cri_kept"]) == listed, node.name
        # What the runtime lists, asked from here through its CRI API, is all kept.
        with shared_lab.cri(node.name) as cri:
            runtime_ids = {s["id"] for s in cri.call("ListPodSandbox")["items"]} | {
                c["id"] for c in cri.call("ListContainers")["containers"]
            }
        assert set(result["cri_kept"]) == runtime_ids, node.name


def test_a_replaced_container_is_read_again(make_lab: Callable[..., Lab]) -> None:
    """A container removed and made again under the same name in the same pod: the
    refresh reads the new one's bundle and shows what a fresh snapshot shows."""
    lab = make_lab(nodes=1, pods=2, services=2)
    pod = lab.pods_on("node1")[0]
    name, old = next((n, c) for n, c in pod.containers if n != "POD")
    made: list[str] = []

    def replace_container() -> None:
        with lab.cri("node1") as cri:
            cri.call("StopContainer", {"container_id": old, "timeout": 0})
            cri.call("RemoveContainer", {"container_id": old})
        made.append(lab.add_container(pod.ref, name))

    result = _refresh(lab, "node1", replace_container)
    (new,) = made
    assert result["pods_equal"] and result["links_equal"]
    ids = {c["id"] for p in result["pods"] for c in p["containers"]}
    assert new in ids and old not in ids
    assert new in result["bundles_read"]
    # The other containers were still reused, and the runtime asked the new one's status only.
    assert set(result["bundles_read"]) & _running(result) == {new}
    assert result["cri_asked"] == [new] and old not in result["cri_kept"]
