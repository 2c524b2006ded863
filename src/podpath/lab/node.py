"""A lab node: one init process in its own pid, mount, net, uts, ipc and cgroup namespaces.

The node shares this machine's filesystem except for private tmpfs mounts on the
directories a Kubernetes node keeps its state in, so the project's virtualenv (and
`python -m podpath`) works inside it while nothing it writes reaches the host.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from podpath.lab import cgroups, procs
from podpath.lab.records import LabError

# Private per node: the runtime's, CNI's and kubelet's state (containerd's root too;
# kindnet's pod database, which tests write as cni-kindnet would),
# and the bits of /etc and /var/log that a node writes. /run also holds /run/netns (named pod netns) and the
# runc root, and hides the host's /run/xtables.lock from the node's iptables.
PRIVATE_DIRS: tuple[str, ...] = (
    "/run",
    "/var/lib/cni",
    "/etc/cni/net.d",
    "/var/log/pods",
    "/var/lib/kubelet",
    "/var/lib/containerd",
    "/var/lib/docker",
    "/var/lib/cni-kindnet",
)

NODE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# Runs as PID 1 of the node (argv: node name, then pairs of cgroup subdir and mount
# options; options "cgroup2" mean a unified hierarchy). `unshare` already made the
# mount namespace's propagation private, so none of these mounts reach the host.
_NODE_INIT = r"""
set -eu
node=$1; shift
for d in /run /var/lib/cni /etc/cni/net.d /var/log/pods /var/lib/kubelet /var/lib/containerd /var/lib/docker \
    /var/lib/cni-kindnet; do
  # A mount point must exist: on a machine that never had them this creates the
  # standard (empty) node directories once; they are left for the next lab.
  [ -d "$d" ] || mkdir -p "$d"
  mount -t tmpfs -o mode=0755,size=1g "podpath-$node" "$d"
done
mkdir -p /run/netns /run/lock
# A sysfs of our own shows the node's net namespace in /sys/class/net.
mount -t sysfs sysfs /sys
mount -t tmpfs -o mode=0755 cgroup /sys/fs/cgroup
while [ $# -ge 2 ]; do
  mkdir -p "/sys/fs/cgroup/$1"
  if [ "$2" = cgroup2 ]; then mount -t cgroup2 cgroup2 "/sys/fs/cgroup/$1"
  else mount -t cgroup -o "$2" cgroup "/sys/fs/cgroup/$1"; fi
  shift 2
done
hostname "$node"
ip link set lo up
echo 1 > /proc/sys/net/ipv4/ip_forward
# kube-proxy needs bridged pod traffic to traverse iptables (br_netfilter, per netns).
if [ -e /proc/sys/net/bridge/bridge-nf-call-iptables ]; then
  echo 1 > /proc/sys/net/bridge/bridge-nf-call-iptables
fi
exec catatonit -P
"""

# Moves itself into the node's cgroups, then becomes `unshare`: the cgroup namespace
# unshare creates is rooted at the cgroups the process is in at that moment.
_JOIN_CGROUPS = 'for f; do [ "$f" = -- ] && break; echo $$ > "$f"; shift; done; shift; exec "$@"'


def node_env() -> dict[str, str]:
    """The environment of commands run inside a node: a sane PATH with our venv first."""
    venv_bin = os.path.dirname(sys.executable)
    env = {
        "PATH": f"{venv_bin}:{NODE_PATH}",
        "LANG": "C.UTF-8",
        "HOME": "/root",
        "TERM": os.environ.get("TERM", "xterm-256color"),
    }
    # The node shares this filesystem: a development PYTHONPATH means the same inside.
    # So are the directories podpath writes to (a test session's are temporary).
    for name in ("PYTHONPATH", "XDG_STATE_HOME", "XDG_CACHE_HOME"):
        if name in os.environ:
            env[name] = os.environ[name]
    return env


def enter_argv(init_pid: int, argv: Sequence[str]) -> list[str]:
    """argv that runs `argv` in all of the node's namespaces (nsenter, then exec)."""
    return ["nsenter", "-t", str(init_pid), "-a", "--wd=/", "--", *argv]


def run_in(
    init_pid: int,
    argv: Sequence[str],
    *,
    input: str | None = None,
    timeout: float = 60,
    check: bool = True,
    env: Mapping[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run argv inside the node and capture its output; LabError on failure when check."""
    full_env = {**node_env(), **(env or {})}
    try:
        done = subprocess.run(
            enter_argv(init_pid, argv),
            input=input,
            capture_output=True,
            text=True,
            errors="surrogateescape",
            timeout=timeout,
            env=full_env,
            cwd="/",
            check=False,
            stdin=None if input is not None else subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired as exc:
        raise LabError(f"timed out after {timeout:g}s in node: {' '.join(argv)}") from exc
    if check and done.returncode != 0:
        raise LabError(
            f"command failed in node (exit {done.returncode}): {' '.join(argv)}: "
            f"{done.stderr.strip()[-2000:]}"
        )
    return done


def run_in_net(
    holder_pid: int, argv: Sequence[str], *, input: str | None = None, timeout: float = 30
) -> subprocess.CompletedProcess[str]:
    """Run argv in only the net namespace of holder_pid (the underlay); LabError on failure."""
    full = ["nsenter", "-t", str(holder_pid), "-n", "--", *argv]
    try:
        done = subprocess.run(
            full,
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=node_env(),
            cwd="/",
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise LabError(f"timed out after {timeout:g}s: {' '.join(argv)}") from exc
    if done.returncode != 0:
        raise LabError(
            f"command failed (exit {done.returncode}): {' '.join(argv)}: {done.stderr.strip()}"
        )
    return done


def node_path(init_pid: int, path: str) -> Path:
    """The host path that reaches `path` inside the node's mount namespace."""
    return Path(f"/proc/{init_pid}/root{path}")


def start_node(lab: str, node: str, log_path: Path) -> tuple[int, int, list[str]]:
    """Start a node's init; return (host pid, start time, cgroup dirs) once it is ready."""
    cg_dirs = cgroups.make_node_cgroups(lab, node)
    mounts: list[str] = []
    for h in cgroups.hierarchies():
        if h.version == 1:
            mounts += [h.subdir, h.options]
        elif any(x.version == 1 for x in cgroups.hierarchies()):
            mounts += ["unified", "cgroup2"]
        else:
            mounts += [".", "cgroup2"]  # pure cgroup v2: mounted over the tmpfs itself
    procs_files = [f"{d}/cgroup.procs" for d in cg_dirs]
    argv = [
        "sh",
        "-c",
        _JOIN_CGROUPS,
        "sh",
        *procs_files,
        "--",
        "unshare",
        "--pid",
        "--mount",
        "--net",
        "--uts",
        "--ipc",
        "--cgroup",
        "--fork",
        "--mount-proc",
        "--propagation",
        "private",
        "--",
        "sh",
        "-c",
        _NODE_INIT,
        "podpath-node-init",
        node,
        *mounts,
    ]
    with open(log_path, "ab") as log:
        # A session of its own: the lab outlives the command that built it and does
        # not get the terminal's SIGINT/SIGHUP; `lab down` ends it.
        unshare = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
            env={**node_env()},
            cwd="/",
        )
    try:
        pid = _wait_ready(unshare, log_path)
    except BaseException:
        unshare.kill()
        unshare.wait()
        for d in cg_dirs:
            cgroups.remove_tree(d)
        raise
    started = procs.start_time(pid)
    if started is None:
        raise LabError(f"node {node} exited right after starting; see {log_path}")
    return pid, started, cg_dirs


def _wait_ready(unshare: subprocess.Popen[bytes], log_path: Path, timeout: float = 15) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if unshare.poll() is not None:
            raise LabError(f"node init failed (exit {unshare.returncode}): {_tail(log_path)}")
        for child in procs.children(unshare.pid):
            try:
                comm = Path(f"/proc/{child}/comm").read_text().strip()
            except FileNotFoundError:
                continue
            # The init script execs catatonit only after every mount is in place.
            if comm == "catatonit":
                return child
        time.sleep(0.01)
    raise LabError(f"node init did not become ready in {timeout:g}s: {_tail(log_path)}")


def _tail(path: Path) -> str:
    try:
        return path.read_text(errors="replace").strip()[-500:] or "(no output)"
    except FileNotFoundError:
        return "(no log)"


def start_underlay(log_path: Path) -> tuple[int, int]:
    """Start the lab's underlay: a process holding a net namespace with the node bridge."""
    argv = [
        "unshare",
        "--net",
        "--uts",
        "--",
        "sh",
        "-c",
        "hostname underlay && ip link set lo up && exec catatonit -P",
    ]
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
            env=node_env(),
            cwd="/",
        )
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise LabError(f"underlay failed (exit {proc.returncode}): {_tail(log_path)}")
        try:
            if Path(f"/proc/{proc.pid}/comm").read_text().strip() == "catatonit":
                started = procs.start_time(proc.pid)
                if started is not None:
                    return proc.pid, started
        except FileNotFoundError:
            pass
        time.sleep(0.01)
    proc.kill()
    proc.wait()
    raise LabError(f"underlay did not start: {_tail(log_path)}")
