"""Namespaces equal `lsns -J` in a quiet PID namespace, plus the nsfs/fd-held ones it misses."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from podpath.collectors.hostroot import HostRoot
from podpath.collectors.proc.namespaces import (
    parse_nsfs_mounts,
    scan_namespaces,
)
from podpath.collectors.proc.processes import scan_processes

DRIVER = Path(__file__).with_name("namespaces_driver.py")

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("lsns") is None or shutil.which("unshare") is None,
    reason="needs root, lsns and unshare",
)


def _flatten(nodes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for n in nodes:
        out.append(n)
        out += _flatten(n.get("children", []))
    return out


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The driver's output: lsns -J and podpath's namespaces from the same quiet pid ns."""
    work = tmp_path_factory.mktemp("ppns")
    done = subprocess.run(
        [
            "unshare",
            "--pid",
            "--mount",
            "--net",
            "--fork",
            "--mount-proc",
            "--",
            sys.executable,
            str(DRIVER),
            str(work),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def _ours(run: dict[str, Any]) -> dict[tuple[str, int], dict[str, Any]]:
    return {(n["type"], n["inode"]): n for n in run["ours"]}


def test_same_namespace_set_as_lsns(run: dict[str, Any]) -> None:
    """Every namespace lsns lists is ours; every process-held one of ours is in lsns."""
    theirs = {(n["type"], n["ns"]) for n in _flatten(run["lsns"]["namespaces"])}
    ours = {k for k, n in _ours(run).items() if "process" in n["held_by"]}
    assert theirs == ours


def test_nprocs_and_lowest_pid_equal_lsns(run: dict[str, Any]) -> None:
    """nprocs and lowest PID match lsns (lsns itself counted in the driver's namespaces)."""
    ours = _ours(run)
    self_ns = set(run["self_ns"].values())
    for n in _flatten(run["lsns"]["namespaces"]):
        mine = ours[(n["type"], n["ns"])]
        lsns_self = 1 if n["ns"] in self_ns else 0  # the lsns process was alive during its run
        assert mine["nprocs"] == n["nprocs"] - lsns_self, n
        assert mine["pid"] == n["pid"], n
        assert mine["user"] == n["user"], n


def test_command_of_lowest_pid(run: dict[str, Any]) -> None:
    """The command is the lowest PID's command line, as lsns prints it."""
    ours = _ours(run)
    for n in _flatten(run["lsns"]["namespaces"]):
        assert ours[(n["type"], n["ns"])]["command"] == n["command"], n


def test_bind_mount_only_netns_listed(run: dict[str, Any]) -> None:
    """Row 5: a netns with no process but a bind mount is listed with its nsfs path."""
    inode, path = run["bound"]
    ns = _ours(run)[("net", inode)]
    assert ns["nprocs"] == 0 and ns["pid"] is None
    assert ns["held_by"] == ["bind-mount"]
    assert ns["nsfs"] == path
    assert any(t[0] == inode and path in t[3] and t[4] is None for t in run["targets"])


def test_fd_only_netns_listed(run: dict[str, Any]) -> None:
    """Row 5: a netns held only by an open fd is listed as held by "fd"."""
    ns = _ours(run)[("net", run["fd"])]
    assert ns["held_by"] == ["fd"] and ns["nprocs"] == 0
    pid, fd = run["fd_holder"]
    assert {"pid": pid, "fd": fd} in ns["holder_fds"]  # which process and fd hold it
    target = next(t for t in run["targets"] if t[0] == run["fd"])
    assert "/fd/" in target[2]


def test_fd_tables_read_in_the_process_pass_give_the_same_namespaces(run: dict[str, Any]) -> None:
    """scan_processes_and_fds (one pass for stat, ns links and fds) changes nothing."""
    assert run["ours_fds_in_process_pass"] == run["ours"]
    assert any(f[0] == "net" and f[1] == run["fd"] for f in run["fd_holders_seen"])


def test_netnsid_equals_ip_link_netnsid(run: dict[str, Any]) -> None:
    """The netnsid of a veth peer's netns equals what `ip -j link` reports as link_netnsid."""
    assert run["link_netnsid"] is not None
    assert _ours(run)[("net", run["peer_net"])]["netnsid"] == run["link_netnsid"]


def test_every_nsfs_mount_of_every_mount_namespace_is_a_holder(run: dict[str, Any]) -> None:
    """Every nsfs mount findmnt shows in any mount namespace is a bind-mount holder of ours."""
    mounts = {(k, i): paths for k, i, paths, _ in run["holders"]}
    assert run["findmnt"]
    for pid, fsroot, target in run["findmnt"]:
        kind, _, inode = fsroot.partition(":[")
        assert target in mounts[(kind, int(inode.rstrip("]")))], (pid, fsroot, target)


def test_named_netns_held_by_ip_netns_exec(run: dict[str, Any]) -> None:
    """A named netns whose process runs in `ip netns exec`'s own mount namespace."""
    ours = _ours(run)
    for name, inode in run["named"]:
        ns = ours[("net", inode)]
        assert ns["held_by"] == ["process", "bind-mount"], ns
        assert ns["nsfs"] == f"/run/netns/{name}" and ns["nprocs"] == 1, ns


def test_netns_bind_mounted_only_in_another_mount_namespace(run: dict[str, Any]) -> None:
    """A netns held only by a mount in another process's mount namespace (lsns misses it)."""
    inode, path, pid = run["hidden"]
    ns = _ours(run)[("net", inode)]
    assert ns["held_by"] == ["bind-mount"] and ns["nprocs"] == 0, ns
    assert ns["nsfs"] == path
    opened = {i: open_paths for k, i, _, open_paths in run["holders"] if k == "net"}
    assert opened[inode] == [f"/proc/{pid}/root{path}"]
    theirs = {n["ns"] for n in _flatten(run["lsns"]["namespaces"])}
    assert inode not in theirs


def test_no_gaps_as_root(run: dict[str, Any]) -> None:
    """Root with all capabilities reads everything in the quiet namespace."""
    assert run["gaps"] == []


def test_parse_nsfs_mounts_escapes() -> None:
    """nsfs lines of mountinfo give type, inode and the unescaped mount point."""
    text = (
        "1 2 0:4 net:[4026532999] /run/netns/a\\040b rw - nsfs nsfs rw\n"
        "3 2 0:22 / /proc rw - proc proc rw\n"
    )
    assert parse_nsfs_mounts(text) == [("net", 4026532999, "/run/netns/a b")]


def test_netns_churn_while_scanning() -> None:
    """Row 1: named netns added/deleted in a loop (private mount+net ns) while scanning 50x."""
    loop = (
        "mount -t tmpfs ppchurn /run && "
        "while :; do ip netns add ppchurn; ip netns del ppchurn; done"
    )
    churn = subprocess.Popen(
        ["unshare", "--mount", "--net", "--", "sh", "-c", loop],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        with HostRoot("/") as host:
            for _ in range(50):
                procs, gaps = scan_processes(host)
                scan = scan_namespaces(host, procs)
                assert all(g.kind != "error" for g in gaps + scan.gaps), gaps + scan.gaps
        assert churn.poll() is None, "the churn loop died: the test measured nothing"
    finally:
        churn.kill()
        churn.wait(timeout=10)
