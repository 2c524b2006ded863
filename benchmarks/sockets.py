"""How to read every pod's sockets and their owners: the candidates, measured in a lab node.

    .venv/bin/python benchmarks/sockets.py [--pods 55] [--repeats 5]

Builds a one-node lab (`sockbench-<pid>`, every pod with a listening app: busybox httpd
or the DNS-like echo), then runs each candidate in a fresh process inside the node,
alternating their order, and prints a Markdown table of median time and peak RSS:

- sock_diag: podpath's own NETLINK_SOCK_DIAG reader on the netlink core, one socket
  opened inside each netns on a thread that setns()es there and back;
- sock_diag-v2: the same socket asking what pyroute2 can ask (four SOCK_DIAG_BY_FAMILY
  dumps: TCP and UDP, each family), to compare the libraries on equal requests;
- procfs: /proc/thread-self/net/{tcp,udp}{,6} opened the same way, parsed in Python;
- pyroute2: pyroute2's DiagSocket, created and dumped inside each netns on that
  thread (its import is counted: a process pays it once);
- psutil: psutil.Process(pid).net_connections("inet") for every process (sockets and
  owners in one call). psutil 7.2 reads /proc/net/*, the *caller's* namespace
  (giampaolo/psutil#1611), so it finds none of a pod's sockets: the count says so;
- fd-owners: what keeping socket fds costs the fd-table pass podpath already makes;
- snapshot: `take_snapshot` with and without the "sockets" part (no netfilter/conntrack).

The lab is always torn down. pyroute2 and psutil are measured when installed
(`.venv/bin/pip install pyroute2==0.9.7 psutil==7.2.2`): podpath depends on neither.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

CANDIDATES = (
    "baseline",
    "sock_diag",
    "sock_diag-v2",
    "procfs",
    "pyroute2",
    "psutil",
    "fd-owners",
    "snapshot",
)


# --- inside the node -------------------------------------------------------------------


def _targets() -> tuple[list[Any], int, list[Any]]:
    """The node's net namespaces (as podpath lists them), its root netns, its processes."""
    from podpath.collectors.hostroot import HostRoot
    from podpath.collectors.proc.namespaces import net_namespace_targets, scan_namespaces
    from podpath.collectors.proc.processes import scan_processes_and_fds

    host = HostRoot("/")
    procs, _gaps, fds = scan_processes_and_fds(host, full=False)
    scan = scan_namespaces(host, procs, fd_holders=fds)
    return net_namespace_targets(host, scan), scan.root_netns or 0, list(procs)


def _each_netns(targets: list[Any], read: Callable[[int], int]) -> int:
    """Run `read(inode)` inside each target namespace on a dedicated thread; sum its counts."""
    import threading

    from podpath.collectors.netlink.netns_scan import _open_verified, _setns

    total = [0]

    def work() -> None:
        own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        try:
            for t in targets:
                fd = _open_verified(t)
                try:
                    _setns(fd)
                    try:
                        total[0] += read(t.inode)
                    finally:
                        _setns(own)
                finally:
                    os.close(fd)
        finally:
            os.close(own)

    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    return total[0]


def _sock_diag(inode: int) -> int:
    from podpath.collectors.netlink.sock_diag import DiagSocket

    with DiagSocket() as ds:
        return len(ds.sockets(inode))


def _sock_diag_v2(inode: int) -> int:
    from podpath.collectors.netlink import sock_diag as sd

    count = 0
    with sd.DiagSocket() as ds:
        for family in (sd.AF_INET, sd.AF_INET6):
            for proto in (6, sd.IPPROTO_UDP):
                request = sd._REQUEST.pack(family, proto, 0, sd.ALL_STATES)
                dump = ds.dump(sd.SOCK_DIAG_BY_FAMILY, request, 1)
                count += len(sd.decode_sockets(dump.buffers, inode, "x", sd.SOCK_DIAG_BY_FAMILY))
    return count


def _procfs(inode: int) -> int:
    from podpath.collectors.proc.net_sockets import ProcNetFiles

    files = ProcNetFiles()
    try:
        return len(files.sockets(inode))
    finally:
        files.close()


def _pyroute2(inode: int) -> int:
    from socket import AF_INET, AF_INET6, IPPROTO_TCP, IPPROTO_UDP

    from pyroute2 import DiagSocket

    count = 0
    with DiagSocket() as ds:
        ds.bind()
        for family in (AF_INET, AF_INET6):
            for proto in (IPPROTO_TCP, IPPROTO_UDP):
                count += len(ds.get_sock_stats(family=family, protocol=proto, states=0x1FFE))
    return count


def _psutil(procs: list[Any]) -> int:
    import psutil

    seen: set[tuple[Any, ...]] = set()
    for p in procs:
        try:
            conns = psutil.Process(p.pid).net_connections("inet")
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
        net = p.namespaces.get("net")
        seen.update((net, c.fd, c.laddr, c.raddr, c.status) for c in conns)
    return len(seen)


def _paired(first: Callable[[], Any], second: Callable[[], Any], rounds: int = 5) -> float:
    """Median of (second - first) over alternated rounds in this process: an increment."""
    deltas = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        first()
        t1 = time.perf_counter()
        second()
        t2 = time.perf_counter()
        deltas.append((t2 - t1) - (t1 - t0))
    return statistics.median(deltas)


def inside(candidate: str) -> dict[str, Any]:
    """Measure one candidate in this (fresh) process; seconds, peak RSS and what it found."""
    targets, root, procs = _targets()
    t0 = time.perf_counter()
    found = 0
    if candidate == "sock_diag":
        found = _each_netns(targets, _sock_diag)
    elif candidate == "sock_diag-v2":
        found = _each_netns(targets, _sock_diag_v2)
    elif candidate == "procfs":
        found = _each_netns(targets, _procfs)
    elif candidate == "pyroute2":
        import pyroute2  # noqa: F401  (the import is part of its cost)

        found = _each_netns(targets, _pyroute2)
    elif candidate == "psutil":
        found = _psutil(procs)
    seconds = time.perf_counter() - t0
    if candidate == "fd-owners":
        from podpath.collectors.hostroot import HostRoot
        from podpath.collectors.proc.processes import scan_processes_and_fds

        host = HostRoot("/")
        seconds = _paired(
            lambda: scan_processes_and_fds(host, full=False),
            lambda: scan_processes_and_fds(host, full=False, sockets=True),
        )
        found = len(scan_processes_and_fds(host, full=False, sockets=True)[2].sockets)
    elif candidate == "snapshot":
        from podpath.collectors.snapshot import take_snapshot

        parts = frozenset({"processes", "netns", "pods", "cni"})
        seconds = _paired(
            lambda: take_snapshot("/", parts=parts),
            lambda: take_snapshot("/", parts=parts | {"sockets"}),
        )
        snap = take_snapshot("/", parts=parts | {"sockets"})
        found = sum(len(ns.sockets or ()) for ns in snap.netns)
    return {
        "candidate": candidate,
        "seconds": seconds,
        "rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        "found": found,
        "netns": len(targets),
        "processes": len(procs),
        "root": root,
    }


# --- outside: the lab and the table -------------------------------------------------------


def _table(results: dict[str, list[dict[str, Any]]]) -> str:
    base = statistics.median(r["rss_kib"] for r in results["baseline"])
    first = results["baseline"][0]
    lines = [
        f"{first['netns']} network namespaces, {first['processes']} processes; medians of "
        f"{len(results['baseline'])} fresh processes per candidate.",
        "",
        "| candidate | time | peak RSS | RSS over the baseline | sockets found |",
        "|---|---:|---:|---:|---:|",
    ]
    for name in CANDIDATES:
        runs = results.get(name)
        if not runs:
            continue
        secs = statistics.median(r["seconds"] for r in runs)
        rss = statistics.median(r["rss_kib"] for r in runs)
        found = {r["found"] for r in runs}
        lines.append(
            f"| {name} | {secs * 1000:.1f} ms | {rss / 1024:.1f} MiB | "
            f"{(rss - base) / 1024:+.1f} MiB | {'/'.join(str(f) for f in sorted(found))} |"
        )
    return "\n".join(lines)


def _importable(module: str) -> bool:
    """Whether a library this script compares with is installed (podpath needs neither)."""
    import importlib.util

    if importlib.util.find_spec(module) is None:
        print(f"[sockets] {module} is not installed: not measured", file=sys.stderr)
        return False
    return True


def outside(pods: int, repeats: int, candidates: Sequence[str]) -> int:
    """Build the lab, run every candidate `repeats` times in alternated order, print the table."""
    from podpath.lab import LabSpec, down, up

    candidates = [c for c in candidates if c not in ("pyroute2", "psutil") or _importable(c)]
    name = f"sockbench-{os.getpid()}"
    lab = up(LabSpec(name=name, nodes=1, pods=pods, services=2))
    try:
        results: dict[str, list[dict[str, Any]]] = {c: [] for c in candidates}
        for i in range(repeats):
            order = list(candidates) if i % 2 == 0 else list(reversed(candidates))
            for c in order:
                argv = [sys.executable, os.path.abspath(__file__), "--inside", c]
                done = lab.exec("node1", argv, timeout=600, check=False)
                if done.returncode != 0:
                    raise RuntimeError(f"{c}: {done.stderr[-2000:]}")
                results[c].append(json.loads(done.stdout.strip().splitlines()[-1]))
                print(f"[sockets] {c}: {results[c][-1]}", file=sys.stderr, flush=True)
        print(_table(results))
    finally:
        down(name)
    return 0


def main(argv: Sequence[str]) -> int:
    """Parse the command line and measure."""
    p = argparse.ArgumentParser(prog="benchmarks/sockets.py")
    p.add_argument("--pods", type=int, default=55)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--only", nargs="*", choices=CANDIDATES, help="measure only these")
    p.add_argument("--inside", choices=CANDIDATES, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.inside:
        print(json.dumps(inside(args.inside)))
        return 0
    wanted = ["baseline", *[c for c in (args.only or CANDIDATES) if c != "baseline"]]
    return outside(args.pods, args.repeats, wanted)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
