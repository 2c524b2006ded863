"""Where each containerd of the node keeps its state: its command line, then its config.toml.

containerd's `--root`, `--state`, `--address` (`-a`) and `--config` (`-c`) flags
(cmd/containerd/command/main.go) win over the config file's top-level `root`, `state`
and `[grpc] address` (config versions 2 and 3 alike: cmd/containerd/server/config/
config.go), which default to /var/lib/containerd, /run/containerd and
/run/containerd/containerd.sock with the file at /etc/containerd/config.toml
(defaults/defaults_unix.go, _linux.go). Distributions move them with the flags: k3s and
RKE2 (`--state /run/k3s/containerd`), k0s (`/run/k0s/containerd` in its config),
MicroK8s (`--state /var/snap/microk8s/common/run/containerd`). Bundles live under
<state>/io.containerd.runtime.v2.task/<namespace>/<id> and the CRI plugin's status files
under <root>/io.containerd.grpc.v1.cri (the same names in 1.x and 2.x). The paths are
the daemon's own view: read through the host root, as every other runtime file is.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from podpath.collectors.hostroot import CollectorError, HostRoot
from podpath.snapshot.model import Gap, Process

DEFAULT_CONFIG = "/etc/containerd/config.toml"
DEFAULT_ROOT = "/var/lib/containerd"
DEFAULT_STATE = "/run/containerd"
DEFAULT_ADDRESS = "/run/containerd/containerd.sock"
_MAX_CONFIG = 1024 * 1024
# Flag (without dashes) -> what it sets; urfave/cli takes -x and --x, "x v" and "x=v".
_FLAGS = {
    "config": "config",
    "c": "config",
    "root": "root",
    "state": "state",
    "address": "address",
    "a": "address",
}


@dataclass(frozen=True)
class ContainerdDirs:
    """One containerd's root, state dir and socket, as it sees them."""

    root: str = DEFAULT_ROOT
    state: str = DEFAULT_STATE
    address: str = DEFAULT_ADDRESS

    def tasks(self, namespace: str = "k8s.io") -> str:
        """Where the runtime v2 shims keep the bundles of a containerd namespace."""
        return f"{self.state.rstrip('/')}/io.containerd.runtime.v2.task/{namespace}"

    def cri_root(self) -> str:
        """Where the CRI plugin keeps each container's status file (1.x and 2.x)."""
        return f"{self.root.rstrip('/')}/io.containerd.grpc.v1.cri"


def is_containerd(p: Process) -> bool:
    """The containerd daemon itself (not a shim, not ctr)."""
    name = os.path.basename(p.cmdline[0]) if p.cmdline else p.comm
    return name == "containerd" or (not p.cmdline and p.comm == "containerd")


def parse_flags(argv: Iterable[str]) -> dict[str, str]:
    """config/root/state/address from a containerd command line (later flags win)."""
    out: dict[str, str] = {}
    words = list(argv)[1:]
    i = 0
    while i < len(words):
        word = words[i]
        i += 1
        if not word.startswith("-") or word in ("-", "--"):
            continue
        name, eq, value = word.lstrip("-").partition("=")
        key = _FLAGS.get(name)
        if key is None:
            continue
        if not eq:
            if i >= len(words):
                break
            value, i = words[i], i + 1
        if value:
            out[key] = value
    return out


def _config(host: HostRoot, path: str, gaps: list[Gap], explicit: bool) -> dict[str, Any]:
    """The parsed config file; {} when there is none (a gap when one was named but unread)."""
    try:
        text = host.read_text(path, limit=_MAX_CONFIG)
    except CollectorError as err:
        if explicit:
            gaps.append(err.to_gap())
        return {}
    try:
        return tomllib.loads(text)
    except (tomllib.TOMLDecodeError, RecursionError):
        gaps.append(
            Gap(path, "containerd config is not TOML; its default paths are assumed", "error")
        )
        return {}


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value.startswith("/") else None


def dirs_of(host: HostRoot, argv: Iterable[str], gaps: list[Gap]) -> ContainerdDirs:
    """The directories of the containerd started with `argv`."""
    flags = parse_flags(argv)
    config = _config(host, flags.get("config", DEFAULT_CONFIG), gaps, "config" in flags)
    grpc = config.get("grpc") if isinstance(config.get("grpc"), dict) else {}
    assert isinstance(grpc, dict)
    return ContainerdDirs(
        root=_str(flags.get("root")) or _str(config.get("root")) or DEFAULT_ROOT,
        state=_str(flags.get("state")) or _str(config.get("state")) or DEFAULT_STATE,
        address=_str(flags.get("address")) or _str(grpc.get("address")) or DEFAULT_ADDRESS,
    )


def running_daemons(
    host: HostRoot, processes: Iterable[Process], gaps: list[Gap], mnt: int | None = None
) -> list[ContainerdDirs]:
    """The directories of every containerd of the node (mount namespace `mnt`), each once.

    A containerd in another mount namespace (a kind node, a lab node) names paths of a
    file tree this reader does not see: its files are not read through the node's.
    """
    found: list[ContainerdDirs] = []
    for p in processes:
        if is_containerd(p) and (mnt is None or p.namespaces.get("mnt") == mnt):
            dirs = dirs_of(host, p.cmdline, gaps)
            if dirs not in found:
                found.append(dirs)
    return found
