"""Runs INSIDE a private `unshare --net --mount --pid --fork --mount-proc` child (test_sockets.py).

Builds namespaces that exist only in that child, with real servers in them: a dual-stack
[::] listener, a v6only one, a v4-mapped bind, a SO_REUSEPORT group of two processes, a
UDP socket bound to a device, an established TCP connection, busybox httpd, processes
with hostile names, and a namespace left with nothing but a TIME-WAIT socket. Then it takes podpath's snapshot twice (sock_diag, and
procfs via PODPATH_SOCKETS_READER=procfs) and asks `ss -H -tuanpe` in every namespace,
and prints all of it as one JSON document.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from podpath.collectors.snapshot import take_snapshot
from podpath.snapshot.codec import to_jsonable

PREFIX = "ppsk"
HOSTILE = "e\x1b[31m[b]x"  # 13 bytes: fits comm's 15
PARTS = frozenset({"processes", "netns", "sockets", "pods"})
T = 60

# One server process: binds what argv[1] names, renames itself, says "ready", waits.
SERVER = r"""
import os, socket, sys, time
kind, name = sys.argv[1], sys.argv[2]
keep = []
def tcp(family, addr, port, v6only=None, reuse=False):
    s = socket.socket(family, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    if v6only is not None:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, v6only)
    s.bind((addr, port)); s.listen(16); keep.append(s); return s
if kind == "main":
    web = tcp(socket.AF_INET6, "::", 80, v6only=0)
    tcp(socket.AF_INET6, "::", 81, v6only=1)
    tcp(socket.AF_INET6, "::ffff:127.0.0.1", 82)
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(("0.0.0.0", 53)); keep.append(u)
    d = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    d.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, b"ppsk0")
    d.bind(("0.0.0.0", 54)); keep.append(d)
    c = socket.create_connection(("127.0.0.1", 80)); keep.append(c)
    keep.append(web.accept()[0])
elif kind == "reuse":
    tcp(socket.AF_INET, "0.0.0.0", 8080, reuse=True)
elif kind == "root":
    tcp(socket.AF_INET, "127.0.0.1", 9000)
elif kind == "timewait":
    # The side that closes first keeps TIME-WAIT (60 s); then nothing else is left.
    srv = tcp(socket.AF_INET, "127.0.0.1", 7000)
    c = socket.create_connection(("127.0.0.1", 7000)); a = srv.accept()[0]
    c.close(); time.sleep(0.2); a.close(); srv.close(); keep.clear()
with open("/proc/self/comm", "w") as f:
    f.write(name)
print("ready", flush=True)
time.sleep(600)
"""


def run(*argv: str, check: bool = True) -> str:
    """Run a command (argv only), return stdout (any byte kept)."""
    res = subprocess.run(
        argv, capture_output=True, text=True, errors="surrogateescape", timeout=T, check=False
    )
    if check and res.returncode != 0:
        raise RuntimeError(f"{argv}: {res.stderr.strip()}")
    return res.stdout


def start(ns: str | None, *argv: str) -> subprocess.Popen[str]:
    """Start a server in a namespace and wait until it says ready."""
    pre = ["ip", "netns", "exec", ns] if ns else []
    proc = subprocess.Popen([*pre, *argv], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    if proc.stdout.readline().strip() != "ready":
        raise RuntimeError(f"{argv} did not start")
    return proc


def build() -> list[subprocess.Popen[str]]:
    """The namespaces and their servers (see the module doc)."""
    run("mount", "-t", "tmpfs", f"{PREFIX}-run", "/run")
    Path("/run/netns").mkdir()
    run("ip", "link", "set", "lo", "up")
    for ns in ("a", "b", "empty", "tw"):
        run("ip", "netns", "add", f"{PREFIX}-{ns}")
        run("ip", "-n", f"{PREFIX}-{ns}", "link", "set", "lo", "up")
    run("ip", "link", "add", "ppsk0", "netns", f"{PREFIX}-a", "type", "veth", "peer", "ppsk1")
    run("ip", "-n", f"{PREFIX}-a", "addr", "add", "10.99.0.2/24", "dev", "ppsk0")
    run("ip", "-n", f"{PREFIX}-a", "link", "set", "ppsk0", "up")
    py = sys.executable
    procs = [
        start(f"{PREFIX}-a", py, "-c", SERVER, "main", HOSTILE),
        start(f"{PREFIX}-b", py, "-c", SERVER, "reuse", "worker-1"),
        start(f"{PREFIX}-b", py, "-c", SERVER, "reuse", "worker-2"),
        start(None, py, "-c", SERVER, "root", "rootd"),
        start(f"{PREFIX}-tw", py, "-c", SERVER, "timewait", "closer"),
    ]
    busybox = shutil.which("busybox")
    if busybox is not None:
        run("ip", "netns", "exec", f"{PREFIX}-b", busybox, "httpd", "-p", "8000", "-h", "/tmp")
        for _ in range(100):  # httpd daemonises; wait for its socket
            if ":8000" in run("ip", "netns", "exec", f"{PREFIX}-b", "ss", "-H", "-tln"):
                break
            time.sleep(0.05)
    return procs


def ss(ns: str | None) -> list[str]:
    """`ss -H -tuanpe` lines in a namespace (None: this child's own)."""
    pre = ("ip", "netns", "exec", ns) if ns else ()
    return [line for line in run(*pre, "ss", "-H", "-tuanpe").splitlines() if line.strip()]


def snapshot() -> dict[str, Any]:
    """The netns part of podpath's snapshot: sockets and names of each namespace."""
    snap = take_snapshot("/", parts=PARTS)
    return {
        "root": snap.root_netns,
        "netns": [to_jsonable(ns) for ns in snap.netns],
        "gaps": [to_jsonable(g) for g in snap.gaps if g.kind != "skipped"],
    }


def main() -> None:
    """Build, read with both readers and with ss, print JSON."""
    procs = build()
    try:
        out: dict[str, Any] = {"hostile": HOSTILE, "busybox": shutil.which("busybox") is not None}
        out["diag"] = snapshot()
        os.environ["PODPATH_SOCKETS_READER"] = "procfs"
        out["procfs"] = snapshot()
        del os.environ["PODPATH_SOCKETS_READER"]
        out["ss"] = {"root": ss(None)}
        for ns in ("a", "b", "empty", "tw"):
            out["ss"][f"/run/netns/{PREFIX}-{ns}"] = ss(f"{PREFIX}-{ns}")
        sys.stdout.write(json.dumps(out, ensure_ascii=True))
    finally:
        for p in procs:
            p.kill()
            p.wait()


if __name__ == "__main__":
    main()
