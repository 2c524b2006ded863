"""containerd's on-disk shape inside a node: images, bundles, and runc with its k8s.io root."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

from podpath.lab.node import enter_argv, node_env, node_path, run_in
from podpath.lab.records import LabError

RUNC_ROOT = "/run/containerd/runc/k8s.io"
BUNDLE_ROOT = "/run/containerd/io.containerd.runtime.v2.task/k8s.io"
# Image root filesystems, unpacked once per node (containerd keeps snapshots under
# /var/lib/containerd; /run keeps ours on the node's private tmpfs).
SNAPSHOTS = "/run/containerd/io.containerd.snapshotter.v1.overlayfs/snapshots"
PAUSE_FS = f"{SNAPSHOTS}/1/fs"
BUSYBOX_FS = f"{SNAPSHOTS}/2/fs"
PAUSE_IMAGE = "registry.k8s.io/pause:3.9"
BUSYBOX_IMAGE = "docker.io/library/busybox:1.35"

# Mount points every container needs in its (read-only) root filesystem.
_ROOT_DIRS = ("proc", "dev", "sys", "etc", "tmp", "www", "root", "var/run", "usr")
_ROOT_FILES = ("etc/hostname", "etc/hosts", "etc/resolv.conf")


def install_images(init_pid: int) -> None:
    """Unpack the pause image (static catatonit as /pause) and a busybox image."""
    for fs in (PAUSE_FS, BUSYBOX_FS):
        root = node_path(init_pid, fs)
        for d in _ROOT_DIRS:
            (root / d).mkdir(parents=True, exist_ok=True)
        for f in _ROOT_FILES:
            (root / f).touch()
    pause = node_path(init_pid, f"{PAUSE_FS}/pause")
    shutil.copy2(_which("catatonit"), pause)
    bin_dir = node_path(init_pid, f"{BUSYBOX_FS}/bin")
    bin_dir.mkdir(exist_ok=True)
    shutil.copy2(_which("busybox"), bin_dir / "busybox")
    # `busybox --install -s` would link to the absolute path it ran from, which does not
    # exist inside the container: link each applet to the relative "busybox" instead.
    applets = subprocess.run(
        [_which("busybox"), "--list"], capture_output=True, text=True, timeout=10, check=True
    ).stdout.split()
    for applet in applets:
        if applet != "busybox":
            (bin_dir / applet).symlink_to("busybox")
    # The host's /usr is bound into the DNS-like container; its /lib* follow merged-/usr.
    for lib in ("lib", "lib64"):
        host = Path("/") / lib
        if host.is_symlink():
            node_path(init_pid, f"{BUSYBOX_FS}/{lib}").symlink_to(os.readlink(host))
    node_path(init_pid, f"{BUSYBOX_FS}/etc/passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")


def _which(tool: str) -> str:
    found = shutil.which(tool, path="/usr/bin:/usr/sbin:/bin:/sbin")
    if found is None:
        raise LabError(
            f"{tool} is not installed (apt-get install {tool.replace('busybox', 'busybox-static')})"
        )
    return found


def bundle_dir(container_id: str) -> str:
    """Bundle directory of a container inside the node."""
    return f"{BUNDLE_ROOT}/{container_id}"


def create_and_start(
    init_pid: int, container_id: str, spec: dict[str, Any], image_fs: str, log_path: str | None
) -> int:
    """Write the bundle, mount its rootfs and `runc run -d`; return the PID in the node."""
    bundle = bundle_dir(container_id)
    host_bundle = node_path(init_pid, bundle)
    (host_bundle / "rootfs").mkdir(parents=True)
    (host_bundle / "config.json").write_text(json.dumps(spec, indent=1))
    out_path = node_path(init_pid, log_path) if log_path else Path("/dev/null")
    script = (
        'mount --bind -o ro "$1" "$2/rootfs" && '
        'exec runc --root "$3" run --detach --bundle "$2" --pid-file "$2/init.pid" "$4"'
    )
    argv = enter_argv(
        init_pid, ["sh", "-c", script, "sh", image_fs, bundle, RUNC_ROOT, container_id]
    )
    with open(out_path, "ab") as out:
        # Detached runc hands its stdio to the container: a pipe here would be held
        # open by the server forever, so both go to the container's log file.
        done = subprocess.run(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=out,
            env=node_env(),
            cwd="/",
            timeout=60,
            check=False,
        )
    if done.returncode != 0:
        tail = out_path.read_text(errors="replace")[-800:] if log_path else ""
        raise LabError(f"runc run {container_id[:12]} failed (exit {done.returncode}): {tail}")
    return int((host_bundle / "init.pid").read_text().strip())


def remove(init_pid: int, container_id: str) -> None:
    """Kill and delete a container, unmount its rootfs and remove its bundle."""
    bundle = bundle_dir(container_id)
    script = (
        'runc --root "$1" delete --force "$2" >/dev/null 2>&1; '
        'umount "$3/rootfs" 2>/dev/null; rm -rf -- "$3"'
    )
    run_in(init_pid, ["sh", "-c", script, "sh", RUNC_ROOT, container_id, bundle], timeout=30)
