"""Pods as the CRI runtime reports them, and containerd's CRI status files as the fallback.

Best source: the runtime's CRI socket (collectors/runtime/cri_listing.py, read-only calls in
a child process), which knows what no file under /run holds — the sandbox image,
exited and created containers, attempts, exit codes and times. When no socket
answers, containerd's CRI plugin still keeps each container's status on disk
(<root>/io.containerd.grpc.v1.cri/containers/<id>/status: pid, created/started/
finished times, exit code, reason), which gives the state of the containers whose
bundles are still there.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from podpath.collectors.commands import CommandRunner
from podpath.collectors.hostroot import CollectorError, HostRoot
from podpath.collectors.runtime.cri_listing import status_key
from podpath.snapshot.model import Gap

# Where each runtime shape keeps its CRI socket (containerd, k3s's containerd, CRI-O,
# cri-dockerd), as /run paths: /var/run is a symlink to /run on every distribution.
CRI_SOCKETS: tuple[tuple[str, str], ...] = (
    ("containerd", "/run/containerd/containerd.sock"),
    ("containerd", "/run/k3s/containerd/containerd.sock"),
    # k0s (its containerd.toml's [grpc] address) and MicroK8s (its args/containerd).
    ("containerd", "/run/k0s/containerd.sock"),
    ("containerd", "/var/snap/microk8s/common/run/containerd.sock"),
    ("cri-o", "/run/crio/crio.sock"),
    ("docker", "/run/cri-dockerd.sock"),
)
# containerd's root dirs (its own, k3s's); the CRI plugin's files are in a folder of each.
CONTAINERD_ROOTS = ("/var/lib/containerd", "/var/lib/rancher/k3s/agent/containerd")
CONTAINERD_CRI_ROOTS = tuple(f"{root}/io.containerd.grpc.v1.cri" for root in CONTAINERD_ROOTS)
LISTING_MODULE = "podpath.collectors.runtime.cri_listing"
_MAX_STATUS = 256 * 1024
# CRI ContainerState / PodSandboxState names -> the short words podpath shows.
_STATES = {
    "CONTAINER_CREATED": "created",
    "CONTAINER_RUNNING": "running",
    "CONTAINER_EXITED": "exited",
    "CONTAINER_UNKNOWN": "unknown",
    "SANDBOX_READY": "ready",
    "SANDBOX_NOTREADY": "notready",
}


@dataclass(frozen=True)
class CriListing:
    """What one CRI socket answered (the cri_listing document) and which runtime it is."""

    runtime: str
    socket: str
    document: dict[str, Any]


def state_name(value: object) -> str | None:
    """created | running | exited | unknown | ready | notready from a CRI state value."""
    return _STATES.get(str(value)) if value is not None else None


def sockets(host: HostRoot) -> list[tuple[str, str]]:
    """(runtime, socket path as seen from here) of each CRI socket present on the node."""
    import stat

    found = []
    for runtime, path in CRI_SOCKETS:
        try:
            st = host.stat(path)
        except CollectorError:
            continue
        where = (runtime, host.path.rstrip("/") + host.canonical(path))
        # A socket linked to another (k0s's to containerd's, say) is asked once.
        if stat.S_ISSOCK(st.st_mode) and where not in found:
            # Connecting needs a path; HostRoot has checked it stays inside the root.
            found.append(where)
    return found


def socket_reader_enabled() -> bool:
    """Whether CRI sockets are asked (PODPATH_CRI_READER=files reads only the runtime's files)."""
    import os

    return os.environ.get("PODPATH_CRI_READER", "socket") != "files"


def read_listings(
    host: HostRoot,
    runner: CommandRunner | None = None,
    spec_read_elsewhere: Iterable[str] = (),
    previous: Iterable[CriListing] = (),
) -> tuple[tuple[CriListing, ...], tuple[Gap, ...]]:
    """Ask every CRI socket of the node for its pods and containers (read-only calls).

    `spec_read_elsewhere`: containers whose runtime spec comes from the runtime's files,
    asked for their plain status (cri_listing). `previous`: the listings of the snapshot
    being refreshed; a sandbox or container listed as it was there keeps its status
    from it instead of being asked again (cri_listing's `--known`).
    """
    if not socket_reader_enabled():
        return (), ()
    runner = runner or CommandRunner()
    before = {(p.runtime, p.socket): p.document for p in previous}
    listings: list[CriListing] = []
    gaps: list[Gap] = []
    for runtime, path in sockets(host):
        kept = _statuses(before.get((runtime, path), {}))
        known = [arg for key in kept for arg in ("--known", key)]
        result = runner.run_module(LISTING_MODULE, (path, *sorted(spec_read_elsewhere), *known))
        if result.gap is not None or result.returncode != 0:
            gaps.append(_unread_socket_gap(path, result.stderr, result.gap))
            continue
        try:
            doc = json.loads(result.stdout)
        except ValueError:
            gaps.append(Gap(f"CRI socket {path}", "listing is not JSON", "error"))
            continue
        if not isinstance(doc, dict):
            continue
        whole = _with_kept(doc, kept)
        if whole is None:
            gaps.append(Gap(f"CRI socket {path}", "listing refers to a status not kept", "error"))
            continue
        listings.append(CriListing(runtime, path, whole))
    return tuple(listings), tuple(gaps)


def kept_for_refresh(
    listings: Iterable[CriListing], shown_env: Callable[[Any], tuple[str, ...]]
) -> tuple[CriListing, ...]:
    """The listings as a refresh keeps them: each verbose status's env as the snapshot
    shows it (`shown_env`: values redacted unless told not to), so that no value is held
    past the collection that read it (collectors/runtime/environments.py). The env is a
    tuple, which `Environments.of` takes as shown: a refresh does not redact it again
    (26.7k variables, ~40 ms, on the benchmark node)."""
    return tuple(
        CriListing(listing.runtime, listing.socket, _env_shown(listing.document, shown_env))
        for listing in listings
    )


def _env_shown(
    document: dict[str, Any], shown_env: Callable[[Any], tuple[str, ...]]
) -> dict[str, Any]:
    def shown(entry: Any) -> Any:
        info = entry.get("info") if isinstance(entry, dict) else None
        if isinstance(info, dict) and isinstance(info.get("env"), list):
            return {**entry, "info": {**info, "env": shown_env(info["env"])}}
        return entry

    return _each_entry(document, shown)


def _each_entry(document: dict[str, Any], entry_of: Callable[[Any], Any]) -> dict[str, Any]:
    """The listing with each sandbox's and container's entry replaced by `entry_of(it)`."""
    out = dict(document)
    for kind in ("sandboxes", "containers"):
        entries = document.get(kind)
        if isinstance(entries, list):
            out[kind] = [entry_of(entry) for entry in entries]
    return out


def _statuses(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """A listing's entries by `cri_listing.status_key` (sandboxes are always asked verbose)."""
    out: dict[str, dict[str, Any]] = {}
    for kind in ("sandboxes", "containers"):
        for entry in document.get(kind) or []:
            if isinstance(entry, dict) and isinstance(entry.get("status"), dict):
                verbose = kind == "sandboxes" or entry.get("verbose") is not False
                out[status_key(entry["status"], verbose)] = entry
    return out


class _NotKept(Exception):
    """A listing's "same" entry names a status the caller does not hold."""


def _with_kept(document: dict[str, Any], kept: dict[str, dict[str, Any]]) -> dict[str, Any] | None:
    """The listing with each `{"same": ID}` entry replaced by the kept entry of that ID;
    None if one is not kept (the child answers "same" only for the keys it was given)."""
    by_id = {str(entry["status"].get("id")): entry for entry in kept.values()}

    def kept_entry(entry: Any) -> Any:
        same = entry.get("same") if isinstance(entry, dict) else None
        if same is None:
            return entry
        if not isinstance(same, str) or same not in by_id:
            raise _NotKept(same)
        return by_id[same]

    try:
        return _each_entry(document, kept_entry)
    except _NotKept:
        return None


def _unread_socket_gap(path: str, stderr: str | None, gap: Gap | None) -> Gap:
    """Why a CRI socket was not read: its listing's last word, or why it did not run."""
    lines = (stderr or "").strip().splitlines()
    why = (lines[-1] if lines else gap.reason if gap is not None else "no answer")[:300]
    subject = f"CRI socket {path}"
    if "permission denied" in why.lower():  # EACCES on connect: the socket's mode or owner
        return Gap(
            subject,
            "permission denied; pods come from the runtime's files",
            "permission",
            "CAP_DAC_OVERRIDE",
        )
    return Gap(subject, f"not read ({why}); pods come from the runtime's files", "unavailable")


def container_status_file(
    host: HostRoot, container_id: str, roots: tuple[str, ...] = CONTAINERD_CRI_ROOTS
) -> dict[str, Any] | None:
    """containerd's CRI status file of a container (under one of `roots`), or None."""
    for root in roots:
        try:
            text = host.read_text(f"{root}/containers/{container_id}/status", limit=_MAX_STATUS)
        except CollectorError:
            continue
        try:
            value = json.loads(text)
        except ValueError:
            return None
        return value if isinstance(value, dict) else None
    return None


def state_from_status_file(status: dict[str, Any]) -> str | None:
    """created / running / exited from the times in a CRI status file (as CRI derives it)."""
    try:
        started, finished = int(status.get("StartedAt", 0)), int(status.get("FinishedAt", 0))
    except (TypeError, ValueError):
        return None
    if finished:
        return "exited"
    return "running" if started else "created"
