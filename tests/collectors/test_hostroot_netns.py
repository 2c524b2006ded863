"""A netns held only by a bind mount is read through a host root whose own /run hides it."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from podpath.lab import Lab

pytestmark = pytest.mark.lab

# Runs in a private copy of the node's mount namespace: the node's root at $1, and a
# /run of the reader's own over the node's /run, whose copied /run/netns/X mounts stay
# listed in this namespace's mount table while no path reaches them.
_COVERED_RUN = """
set -eu
root=$1; shift
mount --rbind / "$root"
mount --make-rprivate "$root"
mount -t tmpfs podpath-test-run /run
exec "$@"
"""


def _under_host_root(lab: Lab, root: Path, *podpath: str) -> dict[str, Any]:
    done = lab.exec(
        "node1",
        [
            "unshare",
            "--mount",
            "--propagation",
            "private",
            "--",
            "sh",
            "-c",
            _COVERED_RUN,
            "sh",
            str(root),
            sys.executable,
            "-m",
            "podpath",
            *podpath,
            "--host-root",
            str(root),
            "--json",
        ],
        timeout=120,
    )
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def test_bind_mounted_netns_read_under_a_host_root(
    make_lab: Callable[..., Lab], tmp_path: Path
) -> None:
    """`ip netns add X` (no process in it) is listed with its links, and no gap, via /host."""
    lab = make_lab(nodes=1, pods=1, services=2)
    lab.exec("node1", ["ip", "netns", "add", "pp-only"])
    lab.exec("node1", ["ip", "-n", "pp-only", "link", "set", "lo", "up"])
    inode = int(lab.exec("node1", ["stat", "-L", "-c", "%i", "/run/netns/pp-only"]).stdout)
    root = tmp_path / "host"
    root.mkdir()

    gaps = _under_host_root(lab, root, "ls", "gaps")["gaps"]
    assert gaps == []
    links = _under_host_root(lab, root, "ls", "links")["links"]
    assert [(link["name"], link["state"]) for link in links if link["netns"] == inode] == [
        ("lo", "UNKNOWN")
    ]
    spaces = _under_host_root(lab, root, "ls", "namespaces")["namespaces"]
    (found,) = [n for n in spaces if n["type"] == "net" and n["inode"] == inode]
    assert found["nsfs"] == "/run/netns/pp-only"
    assert found["held_by"] == ["bind-mount"]
