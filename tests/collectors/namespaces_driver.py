"""Runs inside `unshare --pid --mount --net --fork --mount-proc`: a quiet PID namespace.

Builds namespaces of every holding kind, then runs `lsns -J` and podpath's collector
back to back and prints both as JSON. Used by test_namespaces.py; never run on the host.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import time

from podpath.collectors.hostroot import HostRoot
from podpath.collectors.proc.namespaces import net_namespace_targets, scan_namespaces
from podpath.collectors.proc.processes import scan_processes, scan_processes_and_fds


def _start(argv: list[str]) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(argv)
    deadline = time.monotonic() + 10
    # Wait until `unshare` has exec'd the sleep, so the process is stable for both tools.
    while time.monotonic() < deadline:
        try:
            if open(f"/proc/{proc.pid}/comm").read().strip() == "sleep":
                return proc
        except OSError:
            pass
        time.sleep(0.01)
    raise RuntimeError(f"{argv} did not start")


def _inode(path: str) -> int:
    return os.stat(path).st_ino


def _nsfs_mounts_by_findmnt() -> list[list[str]]:
    """[pid, fsroot, target] of every nsfs mount of every mount namespace, by findmnt."""
    first: dict[str, str] = {}
    for pid in sorted((p for p in os.listdir("/proc") if p.isdigit()), key=int):
        try:
            first.setdefault(os.readlink(f"/proc/{pid}/ns/mnt"), pid)
        except OSError:
            continue  # exited, or a kernel thread
    found = []
    for pid in first.values():
        done = subprocess.run(
            ["findmnt", "-J", "-t", "nsfs", "--task", pid, "-o", "TARGET,FSROOT"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        if done.returncode == 0 and done.stdout.strip():
            found += [
                [pid, m["fsroot"], m["target"]] for m in json.loads(done.stdout)["filesystems"]
            ]
    return found


def main(workdir: str) -> None:
    """Set up, measure with both tools, print JSON."""
    subprocess.run(["mount", "-t", "tmpfs", "ppns-tmp", workdir], check=True, timeout=10)
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True, timeout=10)
    keep = [
        _start(["sleep", "300"]),
        _start(["unshare", "--net", "--uts", "--", "sleep", "300"]),
        _start(["unshare", "--ipc", "--", "sleep", "300"]),
    ]
    peer = keep[1]
    subprocess.run(
        [
            "ip",
            "link",
            "add",
            "ppnsA",
            "type",
            "veth",
            "peer",
            "name",
            "ppnsB",
            "netns",
            str(peer.pid),
        ],
        check=True,
        timeout=10,
    )
    link = json.loads(
        subprocess.run(
            ["ip", "-j", "link", "show", "ppnsA"],
            check=True,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout
    )[0]

    # A netns held only by a bind mount: mount it, then kill its only process.
    mounted = _start(["unshare", "--net", "--", "sleep", "300"])
    nsfile = os.path.join(workdir, "ppns-bound")
    open(nsfile, "w").close()
    subprocess.run(
        ["mount", "--bind", f"/proc/{mounted.pid}/ns/net", nsfile], check=True, timeout=10
    )
    bound_inode = _inode(nsfile)
    mounted.kill()
    mounted.wait()

    # A netns held only by an open fd of this process.
    held = _start(["unshare", "--net", "--", "sleep", "300"])
    fd = os.open(f"/proc/{held.pid}/ns/net", os.O_RDONLY)
    fd_inode = os.fstat(fd).st_ino
    held.kill()
    held.wait()

    # Named netns held by `ip netns exec` processes: each runs in its own copy of this
    # mount namespace, which repeats every /run/netns mount (a tmpfs here: the
    # machine's own /run/netns is never touched).
    subprocess.run(["mount", "-t", "tmpfs", "ppns-run", "/run"], check=True, timeout=10)
    named = ["ppns-x", "ppns-y", "ppns-z"]
    for name in named:
        subprocess.run(["ip", "netns", "add", name], check=True, timeout=10)
    keep += [_start(["ip", "netns", "exec", name, "sleep", "300"]) for name in named]

    # A netns held only by a bind mount inside another process's private mount
    # namespace: only that namespace's mount table shows it.
    hidden_dir = os.path.join(workdir, "hidden")
    os.mkdir(hidden_dir)
    target = _start(["unshare", "--net", "--", "sleep", "300"])
    hidden_inode = _inode(f"/proc/{target.pid}/ns/net")
    hide = 'mount -t tmpfs pphidden "$1" && touch "$1/ns" && mount --bind "$2" "$1/ns" && exec sleep 300'
    hider = _start(
        ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", hide, "sh"]
        + [hidden_dir, f"/proc/{target.pid}/ns/net"]
    )
    keep.append(hider)
    target.kill()
    target.wait()

    lsns = subprocess.run(["lsns", "-J"], check=True, capture_output=True, text=True, timeout=30)
    host = HostRoot("/")
    procs, gaps = scan_processes(host)
    scan = scan_namespaces(host, procs)
    targets = net_namespace_targets(host, scan)
    # The same scan with the fd tables read in the process pass (as snapshots do).
    procs2, gaps2, fd_holders = scan_processes_and_fds(host)
    scan2 = scan_namespaces(host, procs2, fd_holders=fd_holders)
    out = {
        "lsns": json.loads(lsns.stdout),
        "ours": [dataclasses.asdict(n) for n in scan.namespaces],
        "gaps": [dataclasses.asdict(g) for g in gaps + scan.gaps],
        "targets": [[t.inode, t.dev, t.open_path, list(t.paths), t.holder_pid] for t in targets],
        "self_ns": {
            k: _inode(f"/proc/self/ns/{k}")
            for k in ("mnt", "net", "pid", "uts", "ipc", "user", "cgroup", "time")
        },
        "bound": [bound_inode, nsfile],
        "fd": fd_inode,
        "fd_holder": [os.getpid(), fd],
        "peer_net": _inode(f"/proc/{peer.pid}/ns/net"),
        "link_netnsid": link.get("link_netnsid"),
        "ours_fds_in_process_pass": [dataclasses.asdict(n) for n in scan2.namespaces],
        "fd_holders_seen": [list(f) for f in fd_holders.found],
        "holders": [[k[0], k[1], h.mounts, h.mount_open] for k, h in scan.holders.items()],
        "findmnt": _nsfs_mounts_by_findmnt(),
        "named": [[name, _inode(f"/run/netns/{name}")] for name in named],
        "hidden": [hidden_inode, os.path.join(hidden_dir, "ns"), hider.pid],
    }
    print(json.dumps(out))
    os.close(fd)
    for p in keep:
        p.kill()
        p.wait()
    subprocess.run(["umount", nsfile], check=False, timeout=10)


if __name__ == "__main__":
    main(sys.argv[1])
