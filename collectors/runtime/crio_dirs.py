"""Where CRI-O keeps its containers' state on this node: the default and every conmon's.

CRI-O writes each container's config.json under containers/storage's run root,
`<runroot>/overlay-containers/<id>/userdata` (/run/containers/storage by default), and
starts one conmon per container with that directory as its bundle: `conmon -b
<runroot>/overlay-containers/<id>/userdata -c <id> ... -p .../userdata/pidfile`
(cri-o internal/oci/runtime_oci.go). A node configured with another run root (IBM
Cloud's IKS uses /var/data/crioruntimestorage) is found from its running conmons, as
containerd's own --state is found from its process.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable

from podpath.snapshot.model import Process

CRIO_CONTAINERS = "/run/containers/storage/overlay-containers"
_BUNDLE_FLAGS = ("-b", "--bundle")
_ID = re.compile(r"^[0-9a-f]{64}$")


def is_conmon(p: Process) -> bool:
    """True for CRI-O's (or podman's) per-container monitor."""
    return p.comm == "conmon" or bool(p.cmdline and os.path.basename(p.cmdline[0]) == "conmon")


def bundle_of(cmdline: tuple[str, ...]) -> str | None:
    """The bundle directory a conmon was started with (`-b DIR`, `--bundle DIR` or `=DIR`)."""
    for i, arg in enumerate(cmdline):
        if arg in _BUNDLE_FLAGS and i + 1 < len(cmdline):
            return cmdline[i + 1]
        if arg.startswith("--bundle="):
            return arg.removeprefix("--bundle=")
    return None


def containers_dir(bundle: str) -> str | None:
    """`<runroot>/overlay-containers` of a CRI-O bundle `.../overlay-containers/<id>/userdata`."""
    userdata = os.path.normpath(bundle)
    # /var/run is a symlink to /run on every systemd distribution: one directory, one name.
    if userdata.startswith("/var/run/"):
        userdata = userdata.removeprefix("/var")
    cid_dir, leaf = os.path.split(userdata)
    parent, cid = os.path.split(cid_dir)
    if leaf != "userdata" or not _ID.match(cid) or os.path.basename(parent) != "overlay-containers":
        return None
    return parent


def crio_dirs(processes: Iterable[Process], mnt: int | None = None) -> tuple[str, ...]:
    """The default overlay-containers directory, then every other one a conmon names.

    A conmon in another mount namespace (podman in a container, a lab node) names paths
    of a file tree this reader does not see, so only the node's own are followed.
    """
    found = [CRIO_CONTAINERS]
    for p in processes:
        if not is_conmon(p) or (mnt is not None and p.namespaces.get("mnt") != mnt):
            continue
        bundle = bundle_of(p.cmdline)
        where = containers_dir(bundle) if bundle else None
        if where is not None and where not in found:
            found.append(where)
    return tuple(found)
