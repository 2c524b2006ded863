"""A lab leaves this machine as it found it: no directory, mount, cgroup or state of its own.

A node's mount points are made inside the node (overlays on /etc, /var/lib and /var/log
whose upper layer is on the node's /run tmpfs), never on the machine, so `lab down`
has no directory outside its state dir and cgroups to remove.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from podpath.lab import Lab, cgroups, down, node, procs, state

pytestmark = pytest.mark.lab

# Where a lab could leave something: the parents of every node directory, and /run.
WATCHED = ("/run", "/etc", "/etc/cni", "/var/lib", "/var/lib/cni", "/var/log")
# /run/netns and /run/podpath-lab also hold other labs' and tests' namespaces and state,
# which may come and go meanwhile: this lab's own are checked by name below.
SHARED = {"/run/netns", "/run/podpath-lab"}


def _listing() -> set[str]:
    """Every path directly below the watched directories, bar the shared ones."""
    found: set[str] = set()
    for top in WATCHED:
        try:
            names = os.listdir(top)
        except FileNotFoundError:
            continue
        found |= {f"{top}/{name}" for name in names} - SHARED
    return found


def _cgroup_parents() -> list[Path]:
    return [Path(h.mountpoint + h.own_path.rstrip("/")) for h in cgroups.hierarchies()]


def test_up_then_down_leaves_the_watched_directories_as_they_were(
    make_lab: Callable[..., Lab],
) -> None:
    """Listings of /run, /etc, /etc/cni, /var/lib, /var/lib/cni and /var/log after `lab down`
    of a bridge and a ptp lab (with a dockerd pod) equal those before `lab up`, and no
    cgroup, state dir or mount of either lab is left."""
    before = _listing()
    labs = [make_lab(nodes=1, pods=1, services=2, cni=cni) for cni in ("bridge", "ptp")]
    if shutil.which("dockerd") is not None:
        labs[0].add_docker_pod("node1", "hygiene")  # dockerd's /var/lib/docker too
    while_up = _listing()
    for lab in labs:
        down(lab.name)
    after = _listing()
    assert while_up - before == set()
    assert after - before == set() and before - after == set()
    for lab in labs:
        assert not state.lab_dir(lab.name).exists()
        left = [d for d in _cgroup_parents() if (d / f"podpath-lab-{lab.name}").exists()]
        assert left == []
        assert lab.name not in Path("/proc/self/mountinfo").read_text()


def test_node_mount_points_are_made_in_the_node_not_on_the_machine(tmp_path: Path) -> None:
    """A node directory this machine lacks, two levels deep under /etc and one under
    /var/lib, becomes a tmpfs mount point inside the node; on the machine neither it
    nor its parent ever exists, and a file the node writes to /etc stays in the node."""
    tag = f"podpath-test-{uuid.uuid4().hex[:8]}"
    extra = (f"/etc/{tag}/net.d", f"/var/lib/{tag}")
    lab = f"hyg{os.getpid()}"
    pid, started, dirs = node.start_node(
        lab, "node1", tmp_path / "node.log", node.PRIVATE_DIRS + extra
    )
    try:
        for d in extra:
            found = _in_node(pid, ["findmnt", "-n", "-o", "FSTYPE", d]).strip()
            assert found == "tmpfs", d
        _in_node(pid, ["sh", "-c", f"echo node > /etc/{tag}.conf"])
        assert _in_node(pid, ["cat", f"/etc/{tag}.conf"]) == "node\n"
        assert not Path(f"/etc/{tag}").exists() and not Path(f"/var/lib/{tag}").exists()
        assert not Path(f"/etc/{tag}.conf").exists()
    finally:
        assert procs.kill_and_wait(pid, started)
        for d in dirs:
            assert cgroups.remove_tree(d) == []
        assert cgroups.remove_lab_parents(dirs) == []
    assert not Path(f"/etc/{tag}").exists() and not Path(f"/var/lib/{tag}").exists()


def test_a_node_holds_no_network_namespace_of_this_machine(tmp_path: Path) -> None:
    """A network namespace bound to a file on this machine (as `ip netns add` binds one in
    /run/netns) is not in the node's copy of the mounts: the node neither lists it (podpath
    there found it unreadable under the node's /run) nor keeps it alive for its own life."""
    held = tmp_path / "machine-netns"
    held.touch()
    subprocess.run(["unshare", f"--net={held}", "true"], check=True, timeout=30)
    try:
        inode = held.stat().st_ino
        pid, started, dirs = node.start_node(f"hyn{os.getpid()}", "node1", tmp_path / "node.log")
        try:
            mounts = _in_node(pid, ["cat", "/proc/self/mountinfo"])
            assert f"net:[{inode}]" not in mounts
            assert " - nsfs " not in mounts  # nothing of the machine's; the node adds its own later
        finally:
            assert procs.kill_and_wait(pid, started)
            for d in dirs:
                assert cgroups.remove_tree(d) == []
            assert cgroups.remove_lab_parents(dirs) == []
    finally:
        subprocess.run(["umount", str(held)], check=True, timeout=30)


def _in_node(pid: int, argv: list[str]) -> str:
    done = subprocess.run(
        node.enter_argv(pid, argv),
        capture_output=True,
        text=True,
        timeout=30,
        env=node.node_env(),
        check=True,
    )
    return done.stdout


def test_a_node_directory_outside_the_overlays_is_refused(tmp_path: Path) -> None:
    """A node directory whose mount point would have to be made on the machine is refused
    before anything starts."""
    from podpath.lab import LabError

    with pytest.raises(LabError, match="not below /etc, /var/lib, /var/log"):
        node.start_node("hygx", "node1", tmp_path / "x.log", ("/run", "/opt/podpath-test"))
    assert not Path("/opt/podpath-test").exists()
