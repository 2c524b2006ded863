"""A lab node: one init process in its own pid, mount, net, uts, ipc and cgroup namespaces.

The node shares this machine's filesystem except for private tmpfs mounts on the
directories a Kubernetes node keeps its state in, and overlays on /etc, /var/lib and
/var/log that keep what the node writes there, so the project's virtualenv (and
`python -m podpath`) works inside it while nothing it writes reaches the host.
"""

from __future__ import annotations

import os
import select
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
# Seen through an overlay whose upper layer is on the node's /run tmpfs: a mount point
# this machine lacks (/var/lib/cni-kindnet, /etc/cni/net.d) is made in the node, not on
# the machine, and so is anything a node's daemon writes there. A directory made on the
# machine could not be removed safely: rmdir of a directory that is a mount point in
# another mount namespace succeeds and detaches that mount (Linux >= 3.18), so the last
# lab down would break the labs still up.
OVERLAID_DIRS: tuple[str, ...] = ("/etc", "/var/lib", "/var/log")
OVERLAY_UPPER = "/run/podpath-node"

NODE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# Runs as PID 1 of the node (argv: node name, the overlaid and the private directories
# joined by ':', then pairs of cgroup subdir and mount options; options "cgroup2" mean
# a unified hierarchy). `unshare` already made the mount namespace's propagation
# private, so none of these mounts reach the host.
_NODE_INIT = r"""
set -eu
node=$1; overlaid=$2; private=$3; upper=$4; shift 4
${DETACH_NSFS}
mount -t tmpfs -o mode=0755,size=1g "podpath-$node" /run
IFS=:
for d in $overlaid; do
  o="$upper/overlay$(printf %s "$d" | tr / _)"
  mkdir -p "$o/upper" "$o/work"
  mount -t overlay -o "lowerdir=$d,upperdir=$o/upper,workdir=$o/work" "podpath-$node" "$d"
done
for d in $private; do
  mkdir -p "$d"
  mount -t tmpfs -o mode=0755,size=1g "podpath-$node" "$d"
done
unset IFS
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
${READY}
"""

# The last words of a node's and the underlay's init: tell the parent (one byte on the
# pipe it passed) that every namespace and mount is in place, close the pipe (only a
# node's `unshare --fork`, which waits for it, keeps a copy), and become catatonit. If
# the parent is gone (Ctrl-C during `lab up`), the write fails and the init exits.
# bash (Debian's essential shell) for `exec {fd}>&-`: dash takes single-digit fds only.
_READY = (
    "exec bash -c 'fd=$PODPATH_READY_FD; unset PODPATH_READY_FD; "
    'printf R >&"$fd" || exit 1; exec {fd}>&-; exec catatonit -P\''
)
# The node's mount namespace starts as a copy of this machine's, with every network
# namespace bound there (`ip netns add` binds one in /run/netns; so do docker and other
# tools). The copy would hold each of them alive for the node's life, whatever the
# machine does with its own (a mounted nsfs file keeps its namespace: namespaces(7)), and
# podpath inside the node would list namespaces no node has, hidden under its /run and so
# unreadable. Detached first, before /run is covered; mountinfo escapes a space as \040
# (proc(5)), which printf %b turns back. Private propagation: the machine keeps its own.
_DETACH_NSFS = (
    "sed -n 's/^[0-9]* [0-9]* [0-9:]* [^ ]* \\([^ ]*\\) .* - nsfs .*/\\1/p' /proc/self/mountinfo"
    ' | while read -r m; do umount -l "$(printf %b "$m")"'
    ' || echo "podpath-node-init: could not detach $m" >&2; done'
)
_NODE_INIT = _NODE_INIT.replace("${READY}", _READY).replace("${DETACH_NSFS}", _DETACH_NSFS)
# A ceiling, not a wait: readiness is signalled. Creating a net namespace waits for the
# kernel's cleanup of namespaces other labs tore down (net_mutex), which under a load
# of 13 on two cores took longer than the 15 s this once was.
READY_TIMEOUT = 300.0

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
    """The host path that reaches `path` inside the node's mount namespace.

    LabError when `init_pid` no longer names a node's init: after the node died (Ctrl-C
    while a pod was being built) its PID may be reused by a process of this machine,
    whose /proc/PID/root is the machine's own root, and a write meant for the node's
    /etc or /run would land there.
    """
    if not _is_node_init(init_pid):
        raise LabError(
            f"lab node init (PID {init_pid}) is gone; not touching {path} through a PID "
            "another process may hold now"
        )
    return Path(f"/proc/{init_pid}/root{path}")


def _is_node_init(pid: int) -> bool:
    """True when `pid` is the first process of a PID namespace of its own, in a mount
    namespace other than ours: what a node's init is, and what none of this machine's
    own processes are."""
    try:
        chain = procs.nspid(pid)
        theirs = os.readlink(f"/proc/{pid}/ns/mnt")
    except (FileNotFoundError, ProcessLookupError):
        return False
    return len(chain) > 1 and chain[-1] == 1 and theirs != os.readlink("/proc/self/ns/mnt")


def _private_tmpfs(private_dirs: Sequence[str]) -> list[str]:
    """The directories that get a tmpfs after /run; LabError for one the overlays miss."""
    out = []
    for d in private_dirs:
        if d == "/run":
            continue
        if not any(d.startswith(f"{top}/") for top in OVERLAID_DIRS) or ":" in d:
            # Its mount point would have to be made on this machine.
            raise LabError(f"lab node directory {d} is not below {', '.join(OVERLAID_DIRS)}")
        out.append(d)
    return out


def start_node(
    lab: str, node: str, log_path: Path, private_dirs: Sequence[str] = PRIVATE_DIRS
) -> tuple[int, int, list[str]]:
    """Start a node's init; return (host pid, start time, cgroup dirs) once it is ready."""
    tmpfs = _private_tmpfs(private_dirs)
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
        # Whoever kills unshare (an interrupted start) ends the node's init with it.
        "--kill-child",
        "--mount-proc",
        "--propagation",
        "private",
        "--",
        "sh",
        "-c",
        _NODE_INIT,
        "podpath-node-init",
        node,
        ":".join(OVERLAID_DIRS),
        ":".join(tmpfs),
        OVERLAY_UPPER,
        *mounts,
    ]
    unshare, ready = _spawn(argv, log_path)
    try:
        _await_ready(ready, unshare, log_path, f"node {node}")
        pid = _node_init(unshare, log_path)
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


def _spawn(argv: list[str], log_path: Path) -> tuple[subprocess.Popen[bytes], int]:
    """Start an init (output to its log) with the write end of a readiness pipe passed
    as $PODPATH_READY_FD; return it and the read end."""
    ready_r, ready_w = os.pipe()
    try:
        with open(log_path, "ab") as log:
            # A session of its own: the lab outlives the command that built it and does
            # not get the terminal's SIGINT/SIGHUP; `lab down` ends it.
            child = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
                env={**node_env(), "PODPATH_READY_FD": str(ready_w)},
                cwd="/",
                pass_fds=(ready_w,),
            )
    except BaseException:
        os.close(ready_r)
        raise
    finally:
        os.close(ready_w)
    return child, ready_r


def _await_ready(ready: int, child: subprocess.Popen[bytes], log_path: Path, what: str) -> None:
    """Block until `child` signals readiness on the pipe `ready` (then close it).

    Wakes on the signal itself, or when the child dies; LabError naming what was
    awaited after READY_TIMEOUT seconds.
    """
    deadline = time.monotonic() + READY_TIMEOUT
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise LabError(
                    f"{what} did not get its namespaces and mounts ready in "
                    f"{READY_TIMEOUT:g}s (awaited: `unshare` creating them, then "
                    f"`exec catatonit`; a new net namespace waits for the kernel's cleanup "
                    f"of old ones under load): {_tail(log_path)}"
                )
            readable, _, _ = select.select([ready], [], [], min(left, 1.0))
            if readable:
                if os.read(ready, 1) == b"R":
                    return
                child.wait()  # end of file: the child and every holder of the pipe exited
            if child.poll() is not None:
                raise LabError(
                    f"{what} failed before it was ready (exit {child.returncode}): "
                    f"{_tail(log_path)}"
                )
    finally:
        os.close(ready)


def _node_init(unshare: subprocess.Popen[bytes], log_path: Path) -> int:
    """The host PID of the node's init: the one child `unshare --fork` made."""
    kids = procs.children(unshare.pid)
    if len(kids) != 1:
        raise LabError(f"node init is not the one child of unshare ({kids}): {_tail(log_path)}")
    return kids[0]


def _tail(path: Path) -> str:
    try:
        return path.read_text(errors="replace").strip()[-500:] or "(no output)"
    except FileNotFoundError:
        return "(no log)"


def start_underlay(log_path: Path, cgroup_dirs: Sequence[str] = ()) -> tuple[int, int]:
    """Start the lab's underlay: a process holding a net namespace with the node bridge.

    It joins cgroup_dirs first, so the lab's cgroups hold every process it runs."""
    procs_files = [f"{d}/cgroup.procs" for d in cgroup_dirs]
    argv = [
        "sh",
        "-c",
        _JOIN_CGROUPS,
        "sh",
        *procs_files,
        "--",
        "unshare",
        "--net",
        "--uts",
        "--",
        "sh",
        "-c",
        f"hostname underlay && ip link set lo up && {_READY}",
    ]
    proc, ready = _spawn(argv, log_path)
    try:
        # `unshare --net` without --fork execs: the PID that signals is catatonit's.
        _await_ready(ready, proc, log_path, "the underlay")
        started = procs.start_time(proc.pid)
        if started is None:
            raise LabError(f"the underlay exited right after starting: {_tail(log_path)}")
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    return proc.pid, started
