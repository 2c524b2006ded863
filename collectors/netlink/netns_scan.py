"""Scan network namespaces: links, addresses, routes, rules, neighbours and bridge FDB.

How a namespace is reached (docs/architecture.md, "Entering namespaces"; docs/performance.md):
- One dedicated thread, created here and used for nothing else, opens each target's
  nsfs file, checks that it is the namespace the caller listed (nsfs dev and inode:
  a name can be deleted and re-created between listing and reading, reliability row 4),
  `setns()`es into it, opens a NETLINK_ROUTE socket there and `setns()`es back in
  `finally`. A netlink socket stays bound to the namespace it was created in, so the
  dumps are then read on the calling thread while the opener moves on.
- Dumps are raw and decoded flat (`rtnetlink_decode`); the netlink core (`nlsocket`)
  checks every reply's sender, port id, sequence number and NLM_F_DUMP_INTR.
- Besides links, addresses, routes, rules, neighbours and FDB, each namespace's netconf
  (forwarding, rp_filter, proxy_arp per interface) and tc qdiscs are dumped, and the
  filters of every clsact/ingress qdisc (where eBPF dataplanes attach their programs).
- With a socket reader (sock_diag, or /proc/net/{tcp,udp}{,6} when sock_diag would load
  a module), the opener opens that too while inside, and the namespace's TCP and UDP
  sockets are read with the other tables.
- A veth's peer is reported by the kernel as (IFLA_LINK_NETNSID, IFLA_LINK). netnsids
  are per-namespace, so each one is resolved by asking the kernel (RTM_GETNSID with the
  candidate namespace's fd) from the namespace that holds the veth: the root first,
  which covers every pod, then namespaces whose veth points back at this one, then, if
  still unresolved, every other scanned namespace.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import queue
import threading
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from typing import TYPE_CHECKING, TypeVar

from podpath.collectors.netlink.netconf_decode import decode_netconf
from podpath.collectors.netlink.netconf_sysctls import ConfValues, read_conf, read_port_range
from podpath.collectors.netlink.netconf_sysctls import merge as merge_conf
from podpath.collectors.netlink.netns_netfilter import read_here as read_netfilter
from podpath.collectors.netlink.nlsocket import MAX_ATTEMPTS
from podpath.collectors.netlink.rtnetlink import (
    AF_BRIDGE,
    AF_UNSPEC,
    RTM_GETADDR,
    RTM_GETLINK,
    RTM_GETNEIGH,
    RTM_GETNETCONF,
    RTM_GETQDISC,
    RTM_GETROUTE,
    RTM_GETRULE,
    RTM_GETTFILTER,
    RouteSocket,
    tc_filter_header,
)
from podpath.collectors.netlink.rtnetlink_decode import (
    decode_addresses,
    decode_fdb,
    decode_links,
    decode_neighbours,
    decode_routes,
    decode_rules,
)
from podpath.collectors.netlink.tc_decode import (
    EGRESS_PARENT,
    INGRESS_PARENT,
    decode_filters,
    decode_qdiscs,
)
from podpath.collectors.netlink.wire import NetlinkError
from podpath.snapshot.model import (
    Address,
    FdbEntry,
    Gap,
    Link,
    LinkRef,
    Neighbour,
    NetConf,
    NetfilterTable,
    NetNamespace,
    Route,
    Rule,
    Socket,
    TcFilter,
    TcQdisc,
)

if TYPE_CHECKING:
    from typing import Protocol

    class SocketReader(Protocol):
        """What reads one namespace's sockets: opened inside it, read from any thread."""

        source: str

        def sockets(self, netns: int) -> list[Socket]: ...
        def close(self) -> None: ...


T = TypeVar("T")

CLONE_NEWNET = 0x40000000
NS_GET_NSTYPE = 0xB703  # _IO(0xb7, 0x3), linux/nsfs.h
_libc = ctypes.CDLL(None, use_errno=True)


def _setns(fd: int) -> None:
    """setns(fd, CLONE_NEWNET) for the calling thread (os.setns needs Python 3.12)."""
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


# Namespaces opened per hand-over to the opener thread; bounds the sockets open at once.
_BATCH = 64


@dataclass(frozen=True)
class NetnsTarget:
    """A network namespace to scan, as the namespace lister found it."""

    inode: int
    dev: int
    # Path to open, already resolved inside the host root: /proc/PID/ns/net, /run/netns/X.
    open_path: str
    paths: tuple[str, ...] = ()  # nsfs bind mounts to report
    holder_pid: int | None = None


@dataclass
class _Opened:
    """A target whose nsfs fd is verified and whose socket lives in that namespace."""

    target: NetnsTarget
    ns_fd: int
    rs: RouteSocket | None
    # The namespace's socket reader, or why it could not be opened (None: not asked for).
    sockets: SocketReader | OSError | None = None
    # The conf/DEV values netconf lacks (netconf_sysctls), read while in the namespace.
    conf: ConfValues = field(default_factory=dict)
    # Its ip_local_port_range (low, high), read there too; () when not read.
    ports: tuple[int, ...] = ()
    # Its own netfilter tables (netns_netfilter), read there too; None when not read (the
    # opener's own namespace, the node's), or why they could not be.
    netfilter: tuple[NetfilterTable, ...] | OSError | None = None


@dataclass
class _Scanned:
    """Decoded data of one namespace, before peers and netnsids are resolved."""

    opened: _Opened
    links: list[Link] = field(default_factory=list)
    addresses: list[tuple[int, Address]] = field(default_factory=list)
    routes: list[Route] = field(default_factory=list)
    rules: list[Rule] = field(default_factory=list)
    neighbours: list[Neighbour] = field(default_factory=list)
    fdb: list[FdbEntry] = field(default_factory=list)
    netconf: list[NetConf] = field(default_factory=list)
    qdiscs: list[TcQdisc] = field(default_factory=list)
    filters: list[TcFilter] = field(default_factory=list)
    sockets: list[Socket] | None = None  # None: not read
    sockets_source: str | None = None
    # netnsid (as seen from this namespace) -> inode of the namespace it names
    nsids: dict[int, int] = field(default_factory=dict)

    def wanted_nsids(self) -> set[int]:
        """netnsids used by this namespace's veths and not yet resolved."""
        return {
            link.link_netnsid
            for link in self.links
            if link.kind == "veth" and link.link_netnsid is not None
        } - self.nsids.keys()


def subject(target: NetnsTarget) -> str:
    """How a namespace is named in a Gap."""
    where = target.paths[0] if target.paths else target.open_path
    return f"netns {target.inode} ({where})"


def _open_error_gap(target: NetnsTarget, exc: OSError, step: str) -> Gap:
    if exc.errno in (errno.ENOENT, errno.ESRCH):
        return Gap(subject(target), f"vanished before it could be read ({step})", "vanished")
    if exc.errno in (errno.EPERM, errno.EACCES):
        # Opening another process's ns file needs ptrace access; entering it CAP_SYS_ADMIN.
        cap = (
            "CAP_SYS_ADMIN"
            if step == "setns"
            else ("CAP_SYS_PTRACE" if target.open_path.startswith("/proc/") else "CAP_DAC_OVERRIDE")
        )
        return Gap(subject(target), f"permission denied ({step})", "permission", cap)
    return Gap(subject(target), f"{step} failed: {os.strerror(exc.errno or 0)}", "error")


def _open_verified(target: NetnsTarget) -> int:
    """Open the target's nsfs file; raise _Replaced unless it is the listed namespace."""
    fd = os.open(target.open_path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        st = os.fstat(fd)
    except OSError:
        os.close(fd)
        raise
    if (st.st_dev, st.st_ino) != (target.dev, target.inode):
        os.close(fd)
        raise _Replaced(st.st_dev, st.st_ino)
    try:
        # NS_GET_NSTYPE: setns() would otherwise fail with a bare EINVAL on a file
        # that is not a network namespace (e.g. an empty bind-mount placeholder).
        nstype = fcntl.ioctl(fd, NS_GET_NSTYPE)
    except OSError:
        nstype = -1
    if nstype != CLONE_NEWNET:
        os.close(fd)
        raise _NotNetns()
    return fd


class _NotNetns(Exception):
    """The file is not a network namespace (nsfs of another type, or not nsfs at all)."""


class _Replaced(Exception):
    """The path now leads to another namespace (deleted and re-created, PID reused)."""

    def __init__(self, dev: int, ino: int) -> None:
        super().__init__(f"now {dev}:{ino}")
        self.dev = dev
        self.ino = ino


class _Opener:
    """The dedicated thread that enters namespaces; nothing else ever runs on it.

    It opens one batch at a time while the caller waits, then the caller dumps that batch
    while it waits: the two never compete for the GIL (a pipelined version spent more
    time handing the GIL back and forth than dumping), and at most one batch of sockets
    is open at once.
    """

    def __init__(
        self, sockets: Callable[[], SocketReader] | None = None, netfilter: bool = False
    ) -> None:
        self.open_sockets = sockets
        self.read_netfilter = netfilter
        self.requests: queue.Queue[list[NetnsTarget] | None] = queue.Queue()
        self.results: queue.Queue[list[_Opened | Gap]] = queue.Queue()
        self.broken = False  # could not return to its own namespace: must not be reused
        self.thread = threading.Thread(target=self._run, name="podpath-netns-opener", daemon=True)
        self.thread.start()

    def open_batch(self, targets: list[NetnsTarget]) -> list[_Opened | Gap]:
        """Open (and verify) each target; blocks until the batch is done."""
        if self.broken or not self.thread.is_alive():
            return [
                Gap(subject(t), "not read: namespace switching failed", "error") for t in targets
            ]
        self.requests.put(targets)
        return self.results.get()

    def close(self) -> None:
        """Stop the thread and wait for it."""
        self.requests.put(None)
        self.thread.join()

    def _run(self) -> None:
        try:
            orig = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        except OSError as exc:
            orig = -1
            reason = f"cannot open own netns: {exc.strerror}"
        while (batch := self.requests.get()) is not None:
            out: list[_Opened | Gap] = []
            for target in batch:
                if orig < 0 or self.broken:
                    out.append(
                        Gap(
                            subject(target),
                            reason if orig < 0 else "not read: namespace switching failed",
                            "error",
                        )
                    )
                    continue
                out.append(self._open_one(target, orig))
            self.results.put(out)
        if orig >= 0:
            os.close(orig)

    def _open_one(self, target: NetnsTarget, orig: int) -> _Opened | Gap:
        try:
            fd = _open_verified(target)
        except _Replaced as rep:
            return Gap(
                subject(target),
                f"vanished: the path now leads to another namespace ({rep.dev}:{rep.ino})",
                "vanished",
            )
        except _NotNetns:
            return Gap(subject(target), "is not a network namespace", "error")
        except OSError as exc:
            return _open_error_gap(target, exc, "open")
        if (target.dev, target.inode) == _identity(orig):
            # Already here: no setns, which needs CAP_SYS_ADMIN even into one's own
            # namespace, so an unprivileged run still reads its own links and routes.
            return self._socket_here(target, fd)
        try:
            _setns(fd)
        except OSError as exc:
            os.close(fd)
            return _open_error_gap(target, exc, "setns")
        rs: RouteSocket | None = None
        sockets: SocketReader | OSError | None = None
        error: OSError | None = None
        conf: ConfValues = {}
        ports: tuple[int, ...] = ()
        netfilter: tuple[NetfilterTable, ...] | OSError | None = None
        try:
            rs = RouteSocket()
            if self.open_sockets is not None:
                try:
                    sockets = self.open_sockets()
                except OSError as exc:
                    sockets = exc  # the sockets alone are a gap; the tables are still read
            conf = read_conf()
            ports = read_port_range()
            if self.read_netfilter:
                try:
                    netfilter = read_netfilter()
                except OSError as exc:
                    netfilter = exc  # the tables alone are a gap
        except OSError as exc:
            error = exc
        finally:
            try:
                _setns(orig)
            except OSError:
                # This thread is now stuck in the target namespace; it is ours alone, so
                # stop using it rather than open the next socket in the wrong place.
                self.broken = True
        if self.broken or error is not None:
            if rs is not None:
                rs.close()
            if sockets is not None and not isinstance(sockets, OSError):
                sockets.close()
            os.close(fd)
            if self.broken:
                return Gap(subject(target), "not read: could not leave the namespace", "error")
            assert error is not None
            return _open_error_gap(target, error, "socket")
        return _Opened(target, fd, rs, sockets, conf, ports, netfilter)

    def _socket_here(self, target: NetnsTarget, fd: int) -> _Opened | Gap:
        """Sockets in the opener's own namespace, which is the target's."""
        try:
            rs = RouteSocket()
        except OSError as exc:
            os.close(fd)
            return _open_error_gap(target, exc, "socket")
        sockets: SocketReader | OSError | None = None
        if self.open_sockets is not None:
            try:
                sockets = self.open_sockets()
            except OSError as exc:
                sockets = exc  # the sockets alone are a gap; the tables are still read
        return _Opened(target, fd, rs, sockets, read_conf(), read_port_range())


def _identity(fd: int) -> tuple[int, int] | None:
    """(dev, inode) of an open nsfs file."""
    try:
        st = os.fstat(fd)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _close(opened: _Opened) -> None:
    if opened.sockets is not None and not isinstance(opened.sockets, OSError):
        opened.sockets.close()
    opened.sockets = None
    if opened.rs is not None:
        opened.rs.close()
        opened.rs = None
    if opened.ns_fd >= 0:
        os.close(opened.ns_fd)
        opened.ns_fd = -1


def _dump_gap(target: NetnsTarget, what: str, exc: OSError) -> Gap:
    if isinstance(exc, TimeoutError):
        return Gap(subject(target), f"{what} dump timed out", "timeout")
    if exc.errno in (errno.EOPNOTSUPP, errno.EAFNOSUPPORT, errno.EPROTONOSUPPORT):
        return Gap(subject(target), f"{what} not available on this kernel", "unavailable")
    # str() of a NetlinkError carries the kernel's extended-ack text, when it sent one.
    why = str(exc) if isinstance(exc, NetlinkError) else (exc.strerror or str(exc))
    return Gap(subject(target), f"{what} dump failed: {why}", "error")


def _read(
    opened: _Opened,
    what: str,
    msg_type: int,
    family: int,
    decode: Callable[[tuple[bytes, ...]], list[T]],
    gaps: list[Gap],
    header: bytes | None = None,
) -> list[T]:
    """Dump one table and decode it; what could not be read or trusted becomes a gap.

    `header` replaces the family-only request header (a tcmsg naming one interface).
    """
    assert opened.rs is not None
    try:
        if header is None:
            result = opened.rs.dump_table(msg_type, family, MAX_ATTEMPTS)
        else:
            result = opened.rs.dump(msg_type, header, MAX_ATTEMPTS)
        decoded = decode(result.buffers)  # MalformedMessage: a gap, never half a message
    except OSError as exc:
        gaps.append(_dump_gap(opened.target, what, exc))
        return []
    if result.inconsistent:
        gaps.append(
            Gap(
                subject(opened.target),
                f"{what} changed during every one of {result.attempts} dumps (NLM_F_DUMP_INTR)",
                "inconsistent",
            )
        )
    return decoded


def _scan_one(opened: _Opened, gaps: list[Gap]) -> _Scanned:
    inode = opened.target.inode
    s = _Scanned(opened)
    s.links = _read(
        opened, "links", RTM_GETLINK, AF_UNSPEC, partial(decode_links, netns=inode), gaps
    )
    s.addresses = _read(opened, "addresses", RTM_GETADDR, AF_UNSPEC, decode_addresses, gaps)
    s.routes = _read(
        opened, "routes", RTM_GETROUTE, AF_UNSPEC, partial(decode_routes, netns=inode), gaps
    )
    s.rules = _read(
        opened, "rules", RTM_GETRULE, AF_UNSPEC, partial(decode_rules, netns=inode), gaps
    )
    # AF_UNSPEC reaches neigh_dump_info (ARP and NDP tables); the bridge FDB is the
    # separate PF_BRIDGE handler (rtnl_fdb_dump), so it needs its own request.
    s.neighbours = _read(
        opened, "neighbours", RTM_GETNEIGH, AF_UNSPEC, partial(decode_neighbours, netns=inode), gaps
    )
    s.fdb = _read(opened, "fdb", RTM_GETNEIGH, AF_BRIDGE, partial(decode_fdb, netns=inode), gaps)
    s.netconf = merge_conf(
        _read(opened, "netconf", RTM_GETNETCONF, AF_UNSPEC, decode_netconf, gaps),
        s.links,
        opened.conf,
    )
    s.qdiscs = _read(opened, "qdiscs", RTM_GETQDISC, AF_UNSPEC, decode_qdiscs, gaps)
    s.filters = _scan_filters(opened, s.qdiscs, gaps)
    if isinstance(opened.netfilter, OSError):
        gaps.append(_dump_gap(opened.target, "netfilter tables", opened.netfilter))
    if opened.sockets is not None:
        s.sockets_source, s.sockets = _read_sockets(opened, opened.sockets, gaps)
    return s


def _scan_filters(opened: _Opened, qdiscs: list[TcQdisc], gaps: list[Gap]) -> list[TcFilter]:
    """Filters of each clsact/ingress qdisc: a filter dump names one interface and parent."""
    out: list[TcFilter] = []
    for q in qdiscs:
        if q.kind not in ("clsact", "ingress"):
            continue
        parents = (INGRESS_PARENT, EGRESS_PARENT) if q.kind == "clsact" else (INGRESS_PARENT,)
        for parent in parents:
            header = tc_filter_header(q.ifindex, parent)
            out += _read(opened, "tc filters", RTM_GETTFILTER, 0, decode_filters, gaps, header)
    return out


def _read_sockets(
    opened: _Opened, reader: SocketReader | OSError, gaps: list[Gap]
) -> tuple[str | None, list[Socket] | None]:
    """How the namespace's sockets were read, and they, then the reader is closed;
    (None, None) and a gap when they could not be."""
    opened.sockets = None
    if isinstance(reader, OSError):
        gaps.append(_dump_gap(opened.target, "sockets", reader))
        return None, None
    try:
        return reader.source, reader.sockets(opened.target.inode)
    except OSError as exc:
        gaps.append(_dump_gap(opened.target, "sockets", exc))
        return None, None
    finally:
        reader.close()


def _ask_nsids(s: _Scanned, candidates: Sequence[_Scanned], gaps: list[Gap]) -> None:
    """Learn which of `candidates` each netnsid of `s` names, as `s`'s namespace sees it."""
    rs = s.opened.rs
    usable = [c for c in candidates if c.opened.ns_fd >= 0 and c is not s]
    if rs is None or not usable:
        return
    try:
        ids = rs.nsids([c.opened.ns_fd for c in usable])
    except OSError as exc:
        gaps.append(_dump_gap(s.opened.target, "netnsid", exc))
        return
    refused = [nsid for nsid in ids if isinstance(nsid, NetlinkError)]
    if refused:
        why = f"{len(refused)} netnsid lookups refused: {refused[0]}"
        gaps.append(Gap(subject(s.opened.target), why, "error"))
    for cand, nsid in zip(usable, ids, strict=True):
        if isinstance(nsid, int):
            s.nsids.setdefault(nsid, cand.opened.target.inode)


def _resolve_peers(scanned: list[_Scanned], root: _Scanned | None, gaps: list[Gap]) -> None:
    # Veths whose IFLA_LINK points back: (their ifindex, their IFLA_LINK) -> namespaces.
    back: dict[tuple[int, int], list[_Scanned]] = defaultdict(list)
    for s in scanned:
        for link in s.links:
            if link.kind == "veth" and link.link is not None and link.link_netnsid is not None:
                back[(link.ifindex, link.link)].append(s)
    for s in scanned:
        if not s.wanted_nsids():
            continue
        if root is not None:
            _ask_nsids(s, [root], gaps)
        if s.wanted_nsids():
            cands: dict[int, _Scanned] = {}
            for link in s.links:
                if link.kind == "veth" and link.link is not None:
                    for c in back.get((link.link, link.ifindex), ()):
                        cands[id(c)] = c
            _ask_nsids(s, list(cands.values()), gaps)
        if s.wanted_nsids():
            _ask_nsids(s, scanned, gaps)


def _early_nsids(s: _Scanned, root: _Scanned, gaps: list[Gap]) -> None:
    """Resolve a pod's netnsids against the root now, and free its socket if that sufficed.

    Most pods' veths point at the root namespace; closing their sockets early keeps the
    open descriptors near one per namespace instead of two.
    """
    if s.wanted_nsids():
        _ask_nsids(s, [root], gaps)
    if not s.wanted_nsids() and s.opened.rs is not None:
        s.opened.rs.close()
        s.opened.rs = None


def _peer(link: Link, s: _Scanned) -> LinkRef | None:
    if link.kind != "veth" or link.link is None:
        return None
    if link.link_netnsid is None:
        return LinkRef(s.opened.target.inode, link.link)
    peer_ns = s.nsids.get(link.link_netnsid)
    return LinkRef(peer_ns, link.link) if peer_ns is not None else None


def _build(s: _Scanned, netnsid: int | None) -> NetNamespace:
    by_index: dict[int, list[Address]] = defaultdict(list)
    for index, addr in s.addresses:
        by_index[index].append(addr)
    links = tuple(
        replace(link, peer=_peer(link, s), addresses=tuple(by_index.get(link.ifindex, ())))
        for link in s.links
    )
    t = s.opened.target
    return NetNamespace(
        inode=t.inode,
        dev=t.dev,
        paths=t.paths,
        netnsid=netnsid,
        holder_pid=t.holder_pid,
        links=links,
        routes=tuple(s.routes),
        rules=tuple(s.rules),
        neighbours=tuple(s.neighbours),
        fdb=tuple(s.fdb),
        netconf=tuple(s.netconf),
        qdiscs=tuple(s.qdiscs),
        tc_filters=tuple(s.filters),
        netfilter=s.opened.netfilter if isinstance(s.opened.netfilter, tuple) else None,
        sockets=None if s.sockets is None else tuple(s.sockets),
        sockets_source=None if s.sockets is None else s.sockets_source,
        local_ports=s.opened.ports,
    )


def _own_netns_inode() -> int | None:
    try:
        return os.stat("/proc/thread-self/ns/net").st_ino
    except OSError:
        return None


def _unique(targets: Sequence[NetnsTarget], root_inode: int) -> list[NetnsTarget]:
    seen: set[tuple[int, int]] = set()
    out: list[NetnsTarget] = []
    # The root first: its socket and fd resolve most pods' netnsids early.
    for t in sorted(targets, key=lambda t: t.inode != root_inode):
        if (t.dev, t.inode) not in seen:
            seen.add((t.dev, t.inode))
            out.append(t)
    return out


def scan_network_namespaces(
    targets: Sequence[NetnsTarget],
    root_inode: int,
    cancel: threading.Event | None = None,
    sockets: Callable[[], SocketReader] | None = None,
    read: Callable[[int, int], object] | None = None,
    netfilter: bool = False,
) -> tuple[tuple[NetNamespace, ...], tuple[Gap, ...]]:
    """Read every target namespace; what could not be read is returned as Gaps.

    `sockets` opens a socket reader in the opener's current namespace (e.g. DiagSocket):
    given one, each namespace's TCP and UDP sockets are read too. `read` is told how
    many namespaces were read (or found gone) of how many, a batch at a time. With
    `netfilter` (the caller found nf_tables in the kernel), each namespace entered has
    its own netfilter tables read (netns_netfilter); the opener's own, the node's, not.
    """
    cancel = cancel or threading.Event()
    ordered = _unique(targets, root_inode)
    gaps: list[Gap] = []
    scanned: list[_Scanned] = []
    own_root: _Scanned | None = None
    root: _Scanned | None = None
    opener: _Opener | None = None
    held: list[_Opened] = []  # everything opened, closed in `finally` whatever happens
    try:
        if not any(t.inode == root_inode for t in ordered) and _own_netns_inode() == root_inode:
            own_root = _own_root(root_inode)
            root = own_root
        opener = _Opener(sockets, netfilter)
        for start in range(0, len(ordered), _BATCH):
            if cancel.is_set():
                break
            batch = opener.open_batch(ordered[start : start + _BATCH])
            held.extend(item for item in batch if isinstance(item, _Opened))
            for item in batch:
                if isinstance(item, Gap):
                    gaps.append(item)
                    continue
                s = _scan_one(item, gaps)
                scanned.append(s)
                if root is None and item.target.inode == root_inode:
                    root = s
                elif root is not None:
                    _early_nsids(s, root, gaps)
            if read is not None:
                read(start + len(batch), len(ordered))
        if cancel.is_set():
            gaps.append(Gap("netns scan", "cancelled before every namespace was read", "error"))
        _resolve_peers(scanned, root, gaps)
        root_ids: list[int | NetlinkError | None] = [None] * len(scanned)
        if root is not None and root.opened.rs is not None:
            try:
                root_ids = root.opened.rs.nsids([s.opened.ns_fd for s in scanned])
            except OSError as exc:
                gaps.append(_dump_gap(root.opened.target, "netnsid", exc))
        result = tuple(
            _build(s, nsid if isinstance(nsid, int) else None)
            for s, nsid in zip(scanned, root_ids, strict=True)
        )
        return result, tuple(gaps)
    finally:
        if opener is not None:
            opener.close()
        for opened in held:
            _close(opened)
        if own_root is not None:
            _close(own_root.opened)


def _own_root(root_inode: int) -> _Scanned | None:
    """The calling thread's own namespace, when it is the root, for netnsid queries."""
    try:
        fd = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        rs = RouteSocket()
    except OSError:
        os.close(fd)
        return None
    st = os.fstat(fd)
    return _Scanned(_Opened(NetnsTarget(root_inode, st.st_dev, "/proc/thread-self/ns/net"), fd, rs))
