"""A real containerd per lab node, started inside the node's namespaces with the CRI plugin.

The daemon's root (/var/lib/containerd) and state (/run/containerd) are the node's
private tmpfs mounts; its socket, shims, pause and app processes live in the node's
PID, mount and network namespaces, so they die with the node's init. Its CRI
streaming server listens on the node's loopback only; nothing reaches this
machine's network.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from podpath.cri.client import CriClient, CriError
from podpath.lab import images, procs
from podpath.lab.cni import CONF_DIR, SHIM_BIN_DIR
from podpath.lab.node import node_path, run_in
from podpath.lab.records import LabError

STATE = "/run/containerd"
ROOT = "/var/lib/containerd"
SOCKET = f"{STATE}/containerd.sock"
CONFIG = f"{STATE}/config.toml"
LOG = f"{STATE}/containerd.log"
IMAGE_DIR = f"{STATE}/podpath-images"
NAMESPACE = "k8s.io"
READY_TIMEOUT = 30.0

# Plugins a node never uses: skipping them makes the daemon start faster and quieter.
_DISABLED = (
    "io.containerd.snapshotter.v1.btrfs",
    "io.containerd.snapshotter.v1.zfs",
    "io.containerd.snapshotter.v1.aufs",
    "io.containerd.snapshotter.v1.devmapper",
    "io.containerd.tracing.processor.v1.otlp",
    "io.containerd.internal.v1.tracing",
)


def config_toml(netns_under_state: bool = False) -> str:
    """containerd's config (version 2, as 1.6 reads it) for a lab node."""
    disabled = ", ".join(f'"{p}"' for p in _DISABLED)
    cri = 'plugins."io.containerd.grpc.v1.cri"'
    # 1.6 reads it (pkg/cri/config: NetNSMountsUnderStateDir, `containerd config default`
    # prints it): the CRI plugin then pins each pod's netns under <its state>/netns.
    netns = "true" if netns_under_state else "false"
    return f"""version = 2
root = "{ROOT}"
state = "{STATE}"
disabled_plugins = [{disabled}]

[grpc]
  address = "{SOCKET}"

[{cri}]
  sandbox_image = "{images.PAUSE_IMAGE}"
  # Root here lacks CAP_SYS_RESOURCE: an oom_score_adj below containerd's own fails
  # inside runc, so RunPodSandbox fails without this.
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  netns_mounts_under_state_dir = {netns}

[{cri}.cni]
  # The node's own plugin directory: podpath's calico and aws-cni plugins, and links
  # to Debian's (containerd 1.6 searches one directory).
  bin_dir = "{SHIM_BIN_DIR}"
  conf_dir = "{CONF_DIR}"

[{cri}.containerd]
  snapshotter = "overlayfs"
  default_runtime_name = "runc"

[{cri}.containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"
"""


@dataclass(frozen=True)
class Daemon:
    """A node's containerd: its host PID and start time, and the socket path from here."""

    host_pid: int
    start: int
    socket: str  # reachable from this machine: /proc/<init>/root/run/containerd/...


def installed() -> bool:
    """Whether containerd, its runc shim and ctr are installed."""
    return all(
        shutil.which(t, path="/usr/bin:/usr/sbin:/bin:/sbin")
        for t in ("containerd", "containerd-shim-runc-v2", "ctr")
    )


def host_socket(init_pid: int) -> str:
    """The node's CRI socket, as a path this machine can connect to."""
    return str(node_path(init_pid, SOCKET))


def start(init_pid: int, netns_under_state: bool = False) -> int:
    """Start containerd inside the node; return its PID in the node (not yet ready)."""
    node_path(init_pid, STATE).mkdir(parents=True, exist_ok=True)
    node_path(init_pid, CONFIG).write_text(config_toml(netns_under_state))
    # setsid + background: the shell exits at once and the node's init adopts the
    # daemon, so it lives exactly as long as the node.
    script = 'setsid containerd --config "$1" >>"$2" 2>&1 </dev/null & echo $!'
    done = run_in(init_pid, ["sh", "-c", script, "sh", CONFIG, LOG], timeout=30)
    return int(done.stdout.strip())


def wait_ready(init_pid: int, node_pid: int, timeout: float = READY_TIMEOUT) -> Daemon:
    """Wait until the node's containerd answers CRI Version; its Daemon record."""
    deadline = time.monotonic() + timeout
    sock = host_socket(init_pid)
    host_pid = None
    last = "no socket yet"
    while time.monotonic() < deadline:
        if host_pid is None:
            host_pid = procs.host_pids(init_pid).get(node_pid)
        if host_pid is not None and procs.start_time(host_pid) is None:
            raise LabError(f"containerd exited while starting: {log_tail(init_pid)}")
        if Path(sock).exists():
            try:
                with CriClient(sock, timeout=2) as cri:
                    cri.version()
            except CriError as exc:
                last = str(exc)
            else:
                if host_pid is not None:
                    started = procs.start_time(host_pid)
                    if started is not None:
                        return Daemon(host_pid, started, sock)
        time.sleep(0.05)
    raise LabError(f"containerd did not answer in {timeout:g}s ({last}): {log_tail(init_pid)}")


def log_tail(init_pid: int) -> str:
    """The end of a node's containerd log."""
    try:
        return node_path(init_pid, LOG).read_text(errors="replace").strip()[-800:]
    except OSError:
        return "(no log)"


def import_images(init_pid: int, built: tuple[images.BuiltImage, ...]) -> None:
    """Import the lab's image archives into the k8s.io namespace (unpacked for overlayfs)."""
    target = node_path(init_pid, IMAGE_DIR)
    target.mkdir(parents=True, exist_ok=True)
    for image in built:
        shutil.copyfile(image.path, target / image.path.name)
        run_in(
            init_pid,
            [
                "ctr",
                "--address",
                SOCKET,
                "-n",
                NAMESPACE,
                "images",
                "import",
                "--",
                f"{IMAGE_DIR}/{image.path.name}",
            ],
            timeout=120,
        )
        (target / image.path.name).unlink()
