"""Namespaces of all 8 types, lsns-style, plus the ones lsns misses.

`lsns` lists a namespace only while a process is in it. A named netns
(/run/netns/cni-...) or any nsfs bind mount keeps a namespace alive with no process,
and so does an open fd; kubelet/CNI leaks show up exactly there. This module merges
three sources, each namespace identified by (nsfs dev, inode):

- processes (from `processes.scan_processes`): nprocs, lowest PID, its uid and command;
- nsfs mounts: /run/netns entries and every nsfs line in the mountinfo of /proc/self,
  /proc/1 and one process of each mount namespace;
- open fds: /proc/PID/fd links that read "net:[...]" (and other types).

For net namespaces the netnsid (RTM_GETNSID with NETNSA_FD) is asked on a
NETLINK_ROUTE socket of the collector's own netns: the root netns when podpath runs
on the host network, as `kubectl debug node` does.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING

from podpath.collectors.hostroot import CollectorError, HostRoot, PermissionDenied, Vanished
from podpath.collectors.netlink.nlsocket import BATCH as NSID_BATCH
from podpath.collectors.netlink.rtnetlink import RouteSocket
from podpath.collectors.netlink.wire import NetlinkError
from podpath.collectors.parallel import part_count, run_parts, split
from podpath.collectors.proc.processes import FdHolders, nsfs_dev, parse_ns_link, read_fd_holders
from podpath.snapshot.model import NAMESPACE_TYPES, Gap, HolderFd, Namespace, Process
from podpath.wording import count

if TYPE_CHECKING:
    from podpath.collectors.netlink.netns_scan import NetnsTarget


@dataclass
class Holders:
    """Everything known about how one namespace is held."""

    pids: list[int] = field(default_factory=list)
    mounts: list[str] = field(default_factory=list)  # host-view mount points
    mount_open: list[str] = field(default_factory=list)  # reader-view paths to open
    fds: list[tuple[int, int]] = field(default_factory=list)  # (pid, fd)


@dataclass
class NamespaceScan:
    """The result of `scan_namespaces`: namespaces, gaps and how each one is held."""

    namespaces: tuple[Namespace, ...]
    gaps: tuple[Gap, ...]
    dev: int
    holders: dict[tuple[str, int], Holders]
    root_netns: int | None


# -- mountinfo ---------------------------------------------------------------------------


def _unescape_mountinfo(field_: str) -> str:
    r"""mountinfo escapes space, tab, newline and backslash as \ooo octal."""
    if "\\" not in field_:
        return field_
    out = bytearray()
    raw = field_.encode("utf-8", "surrogateescape")
    i = 0
    while i < len(raw):
        if raw[i] == 0x5C and raw[i + 1 : i + 4].isdigit():
            out.append(int(raw[i + 1 : i + 4], 8))
            i += 4
        else:
            out.append(raw[i])
            i += 1
    return out.decode("utf-8", "surrogateescape")


def nsfs_fields(raw: bytes) -> list[tuple[bytes, bytes]]:
    r"""(root, mount point) of each nsfs line of a mountinfo text, both still escaped.

    Mount points escape spaces as \040, so " - nsfs " occurs in a line only where
    the separator precedes the filesystem type nsfs; the root of an nsfs mount is the
    namespace ("net:[4026532999]").
    """
    found = []
    for line in raw.split(b"\n"):
        if b" - nsfs " in line:
            fields = line.split(b" ", 5)
            if len(fields) == 6:
                found.append((fields[3], fields[4]))
    return found


def nsfs_mount(root: bytes, point: bytes) -> tuple[str, int, str] | None:
    """(type, inode, unescaped mount point) of one nsfs mount; None for a foreign root."""
    parsed = parse_ns_link(root.decode("utf-8", "surrogateescape"))
    if parsed is None:
        return None
    return parsed[0], parsed[1], _unescape_mountinfo(point.decode("utf-8", "surrogateescape"))


def parse_nsfs_mounts(text: str) -> list[tuple[str, int, str]]:
    """The nsfs mounts of a mountinfo text: (type, inode, mount point)."""
    found = []
    for root, point in nsfs_fields(text.encode("utf-8", "surrogateescape")):
        mount = nsfs_mount(root, point)
        if mount is not None:
            found.append(mount)
    return found


def _host_view(host: HostRoot, path: str) -> str:
    """A reader-view path turned into the host's view when it lies under the host root."""
    if host.is_slash:
        return path
    prefix = host.path.rstrip("/")
    if path == prefix:
        return "/"
    if path.startswith(prefix + "/"):
        return path[len(prefix) :]
    return path


def _mount_sources(host: HostRoot, processes: tuple[Process, ...], all_mnt: bool) -> list[str]:
    """Which /proc entries' mountinfo to read: self, 1, and one per mount namespace.

    PID 1 is left out when it sees the mounts exactly as this process does (same mount
    namespace and root, on "/"): its table would repeat ours line for line.
    """
    sources = ["self"] if _sees_as_self(host, "1") else ["self", "1"]
    if all_mnt:
        seen: set[int] = set()
        for p in processes:
            mnt = p.namespaces.get("mnt")
            if mnt is not None and mnt not in seen:
                seen.add(mnt)
                if p.pid != 1:
                    sources.append(str(p.pid))
    return sources


def _sees_as_self(host: HostRoot, pid: str) -> bool:
    """Whether `pid` shares this process's mount namespace and root, on a "/" host root."""
    if not host.is_slash:
        return False
    try:
        proc_fd = host.proc_fd()
        if os.readlink(f"{pid}/ns/mnt", dir_fd=proc_fd) != os.readlink(
            "self/ns/mnt", dir_fd=proc_fd
        ):
            return False
        theirs = os.stat(f"{pid}/root", dir_fd=proc_fd)
        ours = os.stat("self/root", dir_fd=proc_fd)
    except (OSError, CollectorError):
        return False  # unreadable: read its table and let that report why
    return (theirs.st_dev, theirs.st_ino) == (ours.st_dev, ours.st_ino)


def _add_mounts(
    host: HostRoot, found: list[tuple[str, str, int, str]], holders: dict[tuple[str, int], Holders]
) -> None:
    """Record nsfs mounts (source, type, inode, mount point) in the order they were read."""
    proc = host.proc  # a readlink each time it is asked for
    for src, kind, inode, mountpoint in found:
        h = _holders_of(holders, kind, inode)
        if src == "self":
            host_path, open_path = _host_view(host, mountpoint), mountpoint
        else:
            # The mount point is in that process's root: reach it through
            # /proc/PID/root (mount points are canonical, no symlinks to resolve).
            host_path, open_path = mountpoint, f"{proc}/{src}/root{mountpoint}"
        if host_path not in h.mounts:
            h.mounts.append(host_path)
            h.mount_open.append(open_path)


def _scan_run_netns(
    host: HostRoot, dev: int, holders: dict[tuple[str, int], Holders], gaps: list[Gap]
) -> None:
    """Named netns under /run/netns (ip netns add, CNI's cni-<uuid>)."""
    try:
        names = host.listdir("/run/netns")
    except Vanished:
        return
    except CollectorError as err:
        gaps.append(err.to_gap())
        return
    for name in sorted(names):
        path = f"/run/netns/{name}"
        try:
            st = host.stat(path)
        except CollectorError:
            continue
        if dev and st.st_dev != dev:
            continue  # a leftover empty file, not a mounted nsfs inode
        h = _holders_of(holders, "net", st.st_ino)
        if path not in h.mounts:
            h.mounts.append(path)
            try:
                h.mount_open.append(host.real_path(path))
            except CollectorError:
                h.mount_open.append(os.path.join(host.path, path.lstrip("/")))


# What one part of the mount-table scan sends back (plain values: it may run in a
# child): nsfs mounts (source, type, inode, mount point), and mount tables denied.
_MountPart = tuple[list[tuple[str, str, int, str]], int]

# Below this many mount tables (~90 us each at 250 pods) a part is not worth a fork.
_MIN_TABLES_PER_PART = 64


def _mount_part(host: HostRoot, cancel: threading.Event | None, sources: list[str]) -> _MountPart:
    """Read the nsfs mounts of these mount tables ("self" or a PID), in order.

    Only the first (source, root, mount point) of each is sent back: `ip netns exec`
    gives each of its processes a copy of the node's mount namespace, so on a node with
    N named netns held that way N tables repeat the same N nsfs mounts. Later repeats
    would be dropped by `_add_mounts` anyway (same host path); dropping them here saves
    the parse and the pipe. "self" is kept apart unless the host root is "/": its mount
    points are in the reader's view, the others' in the host's.
    """
    mounts: list[tuple[str, str, int, str]] = []
    denied = 0
    seen: set[tuple[bytes, bytes]] = set()
    direct = False
    for i, src in enumerate(sources):
        if i % 32 == 0 and cancel is not None and cancel.is_set():
            break
        try:
            # Most mount namespaces (one per container) hold no nsfs mount. The kernel
            # writes /proc/PID/mounts ~3x faster than mountinfo (no root field: for
            # cgroup v1 mounts that is a cgroup path walk each), and the same mounts
            # with their type ("nsfs /run/netns/x nsfs rw 0 0"): read mountinfo, for
            # the inode in its root field, only where mounts shows an nsfs mount --
            # or at once after a table that had some, as copies come in runs of PIDs.
            if not direct and b" nsfs " not in host.proc_read(f"{src}/mounts"):
                continue
            raw = host.proc_read(f"{src}/mountinfo")
        except PermissionDenied:
            denied += 1
            continue
        except CollectorError:
            continue  # the process exited: another process of the same mnt ns may remain
        fields = nsfs_fields(raw)
        direct = bool(fields)
        fresh = set(fields) - seen
        if not fresh:
            continue
        if src != "self" or host.is_slash:
            seen |= fresh
        for root, point in fields:
            if (root, point) in fresh:
                fresh.discard((root, point))
                mount = nsfs_mount(root, point)
                if mount is not None:
                    mounts.append((src, *mount))
    return mounts, denied


def _holders_of(holders: dict[tuple[str, int], Holders], kind: str, inode: int) -> Holders:
    """The Holders of a namespace, created on first use (not on every lookup)."""
    h = holders.get((kind, inode))
    if h is None:
        h = holders[(kind, inode)] = Holders()
    return h


def _scan_holders(
    host: HostRoot,
    processes: tuple[Process, ...],
    dev: int,
    holders: dict[tuple[str, int], Holders],
    gaps: list[Gap],
    *,
    scan_fds: bool,
    all_mnt: bool,
    cancel: threading.Event | None,
    fd_holders: FdHolders | None,
) -> None:
    """nsfs mounts (every mount namespace's mountinfo, /run/netns) and fd holders.

    The mount tables are split across the cores by `parallel.run_parts` and merged in
    source order; the fd holders come from the process scan, or are read here.
    """
    sources = _mount_sources(host, processes, all_mnt)
    runs = split(sources, part_count(len(sources), _MIN_TABLES_PER_PART))
    parts = run_parts(partial(_mount_part, host, cancel), runs)
    for mounts, _ in parts:
        _add_mounts(host, mounts, holders)
    mount_denied = sum(denied for _, denied in parts)
    if mount_denied:
        gaps.append(
            Gap(
                "/proc/*/mountinfo",
                f"{count(mount_denied, 'mount table')}: permission denied",
                "permission",
                "CAP_SYS_PTRACE",
            )
        )
    _scan_run_netns(host, dev, holders, gaps)
    if not scan_fds:
        return
    if fd_holders is None:
        fd_holders = read_fd_holders(host, [p.pid for p in processes], cancel)
    for kind, inode, pid, fd in fd_holders.found:
        _holders_of(holders, kind, inode).fds.append((pid, fd))
    if cancel is not None and cancel.is_set():
        gaps.append(Gap("/proc/*/fd", "cancelled", "inconsistent"))
    fd_denied = fd_holders.denied
    if fd_denied:
        gaps.append(
            Gap(
                "/proc/*/fd",
                f"{count(fd_denied, 'process', 'processes')}: permission denied",
                "permission",
                "CAP_SYS_PTRACE",
            )
        )


# -- users -------------------------------------------------------------------------------


def read_user_names(host: HostRoot) -> dict[int, str]:
    """uid -> name from the host's /etc/passwd (inside the host root)."""
    try:
        text = host.read_text("/etc/passwd", limit=8 * 1024 * 1024)
    except CollectorError:
        return {}
    names: dict[int, str] = {}
    for line in text.splitlines():
        parts = line.split(":")
        if len(parts) >= 3 and parts[2].isdigit():
            names.setdefault(int(parts[2]), parts[0])
    return names


def _user_name(uid: int | None, names: dict[int, str], host: HostRoot) -> str | None:
    if uid is None:
        return None
    if uid in names:
        return names[uid]
    if host.is_slash:
        # NSS (LDAP, sssd) users are not in /etc/passwd; lsns asks getpwuid too.
        import pwd

        try:
            return pwd.getpwuid(uid).pw_name
        except KeyError:
            return None
    return None


# -- assembly ----------------------------------------------------------------------------


def _command(p: Process) -> str:
    """lsns's COMMAND: the command line joined by spaces, else comm (kernel threads)."""
    return " ".join(p.cmdline) if p.cmdline else p.comm


def _open_path(proc: str, kind: str, inode: int, dev: int, h: Holders) -> str | None:
    """A path that opens this namespace now, in the reader's view (`proc`: <root>/proc).

    A process's ns link needs no check. A bind mount or an fd is tried in turn until one
    leads to the namespace's (dev, inode): a mount table lists mounts that are covered
    by a later mount on the same point (a debug pod's private /run over the node's
    /run/netns/X in a copy of the node's mount namespace), and opening such a path
    reaches the covering file, not the nsfs one. Only when none leads there is the
    first returned, so the open that follows reports why.
    """
    if h.pids:
        return f"{proc}/{min(h.pids)}/ns/{kind}"
    candidates = [*h.mount_open, *(f"{proc}/{pid}/fd/{fd}" for pid, fd in h.fds)]
    for path in candidates:
        try:
            st = os.stat(path)
        except OSError:
            continue
        if st.st_ino == inode and (not dev or st.st_dev == dev):
            return path
    return candidates[0] if candidates else None


def _netnsids(
    host: HostRoot, holders: dict[tuple[str, int], Holders], dev: int, gaps: list[Gap]
) -> dict[int, int]:
    """netnsid of each net namespace as the collector's own netns sees it (RTM_GETNSID)."""
    out: dict[int, int] = {}
    try:
        sock = RouteSocket(timeout=2.0)
    except OSError as err:
        gaps.append(Gap("netnsid", f"netlink socket: {os.strerror(err.errno or 0)}", "unavailable"))
        return out
    try:
        proc = host.proc
        wanted = [
            (inode, path)
            for (kind, inode), h in holders.items()
            if kind == "net" and (path := _open_path(proc, kind, inode, dev, h)) is not None
        ]
        # One batch of open fds at a time: the kernel answers a batch in one go.
        for start in range(0, len(wanted), NSID_BATCH):
            _ask_batch(sock, wanted[start : start + NSID_BATCH], dev, out, gaps)
    finally:
        sock.close()
    return out


def _ask_batch(
    sock: RouteSocket,
    batch: list[tuple[int, str]],
    dev: int,
    out: dict[int, int],
    gaps: list[Gap],
) -> None:
    opened: list[tuple[int, int]] = []  # (inode, fd)
    try:
        for inode, path in batch:
            try:
                fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            except OSError:
                continue  # gone since it was listed
            try:
                st = os.fstat(fd)
            except OSError:
                os.close(fd)
                continue
            if st.st_ino != inode or (dev and st.st_dev != dev):
                os.close(fd)  # replaced between discovery and now: never ask about another
                continue
            opened.append((inode, fd))
        try:
            answers = sock.nsids([fd for _, fd in opened])
        except OSError as err:
            gaps.append(Gap("netnsid", f"netlink: {err}", "error"))
            return
        for (inode, _fd), nsid in zip(opened, answers, strict=True):
            if isinstance(nsid, NetlinkError):
                gaps.append(Gap(f"netnsid of net:[{inode}]", str(nsid), "error"))
            elif nsid is not None:
                out[inode] = nsid
    finally:
        for _inode, fd in opened:
            os.close(fd)


def _build(
    kind: str,
    inode: int,
    dev: int,
    h: Holders,
    procs: dict[int, Process],
    names: dict[int, str],
    host: HostRoot,
    nsids: dict[int, int],
) -> Namespace:
    held = tuple(
        label
        for label, present in (("process", h.pids), ("bind-mount", h.mounts), ("fd", h.fds))
        if present
    )
    lowest = procs[min(h.pids)] if h.pids else None
    return Namespace(
        type=kind,
        inode=inode,
        dev=dev,
        nprocs=len(h.pids),
        pid=lowest.pid if lowest else None,
        uid=lowest.uid if lowest else None,
        user=_user_name(lowest.uid, names, host) if lowest else None,
        command=_command(lowest) if lowest else None,
        netnsid=nsids.get(inode) if kind == "net" else None,
        nsfs=h.mounts[0] if h.mounts else None,
        held_by=held,
        holder_fds=tuple(HolderFd(pid, fd) for pid, fd in sorted(set(h.fds))),
    )


def scan_namespaces(
    host: HostRoot,
    processes: tuple[Process, ...],
    cancel: threading.Event | None = None,
    *,
    scan_fds: bool = True,
    all_mount_namespaces: bool = True,
    netnsid: bool = True,
    fd_holders: FdHolders | None = None,
) -> NamespaceScan:
    """Every namespace held by a process, an nsfs mount or an fd, with its holders.

    `fd_holders` are the fd holders read by `processes.scan_processes_and_fds`; without
    them the fd tables are read here.
    """
    gaps: list[Gap] = []
    dev = nsfs_dev(host)
    holders: dict[tuple[str, int], Holders] = {}
    for p in processes:
        for kind, inode in p.namespaces.items():
            _holders_of(holders, kind, inode).pids.append(p.pid)
    _scan_holders(
        host,
        processes,
        dev,
        holders,
        gaps,
        scan_fds=scan_fds,
        all_mnt=all_mount_namespaces,
        cancel=cancel,
        fd_holders=fd_holders,
    )
    nsids = _netnsids(host, holders, dev, gaps) if netnsid else {}
    names = read_user_names(host)
    procs = {p.pid: p for p in processes}
    order = {t: i for i, t in enumerate(NAMESPACE_TYPES)}
    spaces = tuple(
        _build(kind, inode, dev, h, procs, names, host, nsids)
        for (kind, inode), h in sorted(
            holders.items(), key=lambda kv: (order.get(kv[0][0], 99), kv[0][1])
        )
    )
    root = procs[1].namespaces.get("net") if 1 in procs else None
    return NamespaceScan(spaces, tuple(gaps), dev, holders, root)


def net_namespace_targets(host: HostRoot, scan: NamespaceScan) -> list[NetnsTarget]:
    """The net namespaces to dump, each with a path to open and its bind-mount paths."""
    # Imported here: listing namespaces alone never loads the netlink scanner.
    from podpath.collectors.netlink.netns_scan import NetnsTarget

    targets = []
    proc = host.proc
    for (kind, inode), h in scan.holders.items():
        if kind != "net":
            continue
        path = _open_path(proc, kind, inode, scan.dev, h)
        if path is None:
            continue
        holder = min(h.pids) if h.pids else (h.fds[0][0] if h.fds else None)
        targets.append(NetnsTarget(inode, scan.dev, path, tuple(h.mounts), holder))
    targets.sort(key=lambda t: t.inode)
    return targets
