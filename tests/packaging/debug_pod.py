"""A node debug pod on a lab node, made from its pod spec the way kubelet and runc make it.

Until the lab's pods come from real containerd through CRI, this builds the shape of
the pod `kubectl debug node/N --profile=sysadmin` creates (podpath.cli.kubectl.
node_debug_pod) by hand, from the spec:

- hostPID, hostNetwork (with the node's UTS namespace, as kubelet gives host-network
  pods) and hostIPC: the node's namespaces are entered (nsenter); the cgroup namespace
  is the node's too, as runc leaves it on cgroup v1 hosts like this one;
- a mount namespace of its own, copied from the node's as runc's is from the runtime's;
  the image's unpacked layers under an overlay, as containerd's overlayfs snapshotter
  mounts them, become / with pivot_root(".", ".") and a lazy unmount of the old root,
  as runc does (made by the image's python3: the image has no umount);
- hostPath volumes are recursive bind mounts made private (mountPropagation None), a
  fresh /proc of the node's PID namespace, sysfs, the node's /dev (privileged), and
  the node's /etc/hosts and /etc/resolv.conf (host-network pods get the node's);
- the image config's Env plus the container's env, TERM=xterm with a terminal (as
  containerd sets it), then the container's command.

Only privileged containers are modelled: they keep every capability, no seccomp or
AppArmor profile, which is what root running this gets anyway.

What remains once the lab makes pods through containerd's CRI API: make this pod there
instead, as kubelet translates the spec (k8s.io/cri-api runtime/v1): the image
imported with `ctr -n k8s.io images import`; RunPodSandbox with
linux.security_context.namespace_options network, pid and ipc = NODE and privileged;
CreateContainer with the command, envs, stdin/tty, linux.security_context.privileged
and mounts [{container_path: /host, host_path: /, propagation: PROPAGATION_PRIVATE}];
StartContainer, then attach or exec through the runtime. test_debug_pod.py's
assertions stay as they are; only `pod_argv` is replaced.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from pathlib import Path
from typing import Any

# Runs as node's sh in the copy of the node's mount namespace; $1..$4: lower, upper,
# work and merged directories; then "--" and what to exec in the new root.
_SETUP = r"""
set -eu
lower=$1 upper=$2 work=$3 root=$4; shift 4
mount -t overlay podpath-debug-pod -o "lowerdir=$lower,upperdir=$upper,workdir=$work" "$root"
{volumes}
mkdir -p "$root/proc" "$root/sys" "$root/dev" "$root/etc"
mount -t proc proc "$root/proc"
mount -t sysfs sysfs "$root/sys"
mount --rbind /dev "$root/dev"
mount --make-rprivate "$root/dev"
for f in /etc/hosts /etc/resolv.conf; do
  [ -e "$f" ] && touch "$root$f" && mount --bind "$f" "$root$f"
done
cd "$root"
pivot_root . .
# The old root now lies over the new one; from here on commands come from the image,
# which has no umount(8): its python3 makes runc's umount2(".", MNT_DETACH).
python3 -c 'import ctypes, os; ctypes.CDLL(None, use_errno=True).umount2(b".", 2) == 0 or os.abort()'
cd /
exec "$@"
"""

_VOLUME = """mkdir -p "$root{path}"
mount --rbind {source} "$root{path}"
mount --make-rprivate "$root{path}"
"""


def _volumes(spec: dict[str, Any]) -> str:
    paths = {v["name"]: v["hostPath"]["path"] for v in spec["spec"].get("volumes", [])}
    lines = []
    for mount in spec["spec"]["containers"][0].get("volumeMounts", []):
        if mount.get("mountPropagation") not in (None, "None"):
            raise NotImplementedError("only mountPropagation None is modelled")
        source = paths[mount["name"]]
        lines.append(
            _VOLUME.format(path=shlex.quote(mount["mountPath"]), source=shlex.quote(source))
        )
    return "".join(lines)


def pod_argv(
    init_pid: int,
    spec: dict[str, Any],
    rootfs: Path,
    scratch: Path,
    image_env: Sequence[str],
) -> list[str]:
    """argv that runs the pod's container on the node whose init is `init_pid`."""
    pod = spec["spec"]
    (container,) = pod["containers"]
    if not container.get("securityContext", {}).get("privileged"):
        raise NotImplementedError("only privileged debug containers are modelled")
    enter = ["nsenter", "-t", str(init_pid), "--mount", "--cgroup"]
    if pod.get("hostPID"):
        enter.append("--pid")
    if pod.get("hostNetwork"):
        enter += ["--net", "--uts"]
    if pod.get("hostIPC"):
        enter.append("--ipc")
    dirs = [scratch / d for d in ("upper", "work", "merged")]
    for d in dirs:
        d.mkdir(parents=True, exist_ok=True)
    env = [*image_env, *(f"{e['name']}={e['value']}" for e in container.get("env", []))]
    if container.get("tty"):
        env.append("TERM=xterm")
    command = [*container.get("command", []), *container.get("args", [])]
    script = _SETUP.format(volumes=_volumes(spec))
    return [
        *enter,
        "--",
        "unshare",
        "--mount",
        "--propagation",
        "private",
        "--",
        "sh",
        "-c",
        script,
        "debug-pod",
        str(rootfs),
        *map(str, dirs),
        "env",
        "-i",
        *env,
        *command,
    ]
