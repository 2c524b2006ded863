"""Lab-private cgroup parents on the host, so a node's /kubepods tree never mixes with ours.

Each node's init process is moved into <our cgroup>/podpath-lab-<lab>/<node> in every
hierarchy and then unshares a cgroup namespace: inside the node that directory is the
root, and runc's cgroupfs paths (/kubepods/<qos>/pod<uid>/<id>) land below it.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Hierarchy:
    """One mounted cgroup hierarchy: v1 (controllers) or v2 (unified)."""

    mountpoint: str  # on this machine, e.g. /sys/fs/cgroup/memory
    subdir: str  # name to mount it under in a node's /sys/fs/cgroup
    options: str  # mount -o options for a v1 hierarchy ("" for cgroup2)
    version: int
    own_path: str  # this process's cgroup path in it


def _mountinfo() -> list[tuple[str, str, str, str]]:
    """(root, mountpoint, fstype, super options) of every mount."""
    mounts = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        left, _, right = line.partition(" - ")
        fields = left.split()
        rfields = right.split()
        mounts.append((fields[3], fields[4], rfields[0], rfields[2] if len(rfields) > 2 else ""))
    return mounts


def hierarchies() -> list[Hierarchy]:
    """The cgroup hierarchies this process is in, with where each is mounted."""
    mounts = _mountinfo()
    found: list[Hierarchy] = []
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        hid, controllers, path = line.split(":", 2)
        if hid == "0":
            for root, mnt, fstype, _ in mounts:
                if fstype == "cgroup2" and path.startswith(root):
                    found.append(Hierarchy(mnt, os.path.basename(mnt) or "unified", "", 2, path))
                    break
            continue
        wanted = set(controllers.split(","))
        for root, mnt, fstype, opts in mounts:
            if fstype == "cgroup" and wanted <= set(opts.split(",")):
                rel = path[len(root) :] if root != "/" and path.startswith(root) else path
                options = ",".join(sorted(wanted))
                if options.startswith("name="):
                    options = "none," + options
                found.append(Hierarchy(mnt, os.path.basename(mnt), options, 1, rel))
                break
    return found


def _copy_cpuset(parent: Path, child: Path) -> None:
    # A new cpuset cgroup starts with no CPUs and no memory nodes: no task can join it.
    for name in ("cpuset.cpus", "cpuset.mems"):
        src, dst = parent / name, child / name
        if src.exists() and not dst.read_text().strip():
            dst.write_text(src.read_text())


def make_node_cgroups(lab: str, node: str) -> list[str]:
    """Create <own>/podpath-lab-<lab>/<node> in each hierarchy; return the node dirs."""
    made: list[str] = []
    for h in hierarchies():
        parent = Path(h.mountpoint + h.own_path.rstrip("/"))
        lab_dir = parent / f"podpath-lab-{lab}"
        node_dir = lab_dir / node
        node_dir.mkdir(parents=True, exist_ok=True)
        if "cpuset" in h.options.split(","):
            _copy_cpuset(parent, lab_dir)
            _copy_cpuset(lab_dir, node_dir)
        made.append(str(node_dir))
    return made


def members(dirs: list[str]) -> list[int]:
    """PIDs of the processes in these cgroup directories and every cgroup below them."""
    pids: list[int] = []
    for d in dirs:
        root = Path(d)
        if not root.is_dir():
            continue
        for procs_file in [root / "cgroup.procs", *root.rglob("*/cgroup.procs")]:
            try:
                pids += [int(word) for word in procs_file.read_text().split()]
            except (FileNotFoundError, ValueError):
                continue  # removed meanwhile
    return list(dict.fromkeys(pids))


def remove_tree(path: str, timeout: float = 60.0) -> list[str]:
    """rmdir a cgroup directory bottom-up (cgroupfs allows only rmdir); return failures."""
    root = Path(path)
    deadline = time.monotonic() + timeout
    while True:
        failures: list[str] = []
        if not root.exists():
            return failures
        dirs = sorted((p for p in root.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts))
        for d in [*dirs, root]:
            try:
                d.rmdir()
            except FileNotFoundError:
                continue
            except OSError as exc:
                failures.append(f"{d}: {exc.strerror}")
        if not failures or time.monotonic() > deadline:
            return failures
        # Tasks of a killed node leave their cgroups asynchronously (slowly under load):
        # retry until they have, within the ceiling.
        time.sleep(0.05)


def remove_lab_parents(node_dirs: list[str]) -> list[str]:
    """Remove the podpath-lab-<lab> parents of the given node dirs once empty."""
    failures: list[str] = []
    for parent in sorted({str(Path(d).parent) for d in node_dirs}):
        failures += remove_tree(parent)
    return failures
