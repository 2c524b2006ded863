"""Raw rtnetlink dumps on a NETLINK_ROUTE socket, checked for interruption.

A socket stays in the network namespace it was created in, so whoever opened it (see
`netns_scan`) can hand it to any thread and the dumps below read that namespace.

The kernel sets NLM_F_DUMP_INTR on a dump part when the table changed while it was being
dumped (docs/reliability.md row 6: 96 of 300 dumps under address churn). pyroute2 0.9.7 does
not check it, so this module does, on every message: a flagged dump is retried and,
when it stays flagged, returned with `inconsistent=True` so the caller records a Gap.
"""

from __future__ import annotations

import errno
import itertools
import os
import socket
import struct
import threading
from collections.abc import Sequence
from dataclasses import dataclass

from podpath.collectors.netlink_decode import (
    AF_BRIDGE,
    NLM_F_DUMP_INTR,
    NLMSG_DONE,
    NLMSG_ERROR,
    RTM_NEWNSID,
    decode_nsid,
    error_code,
    iter_messages,
)

NETLINK_ROUTE = 0
NLM_F_REQUEST = 0x1
NLM_F_DUMP = 0x300  # NLM_F_ROOT | NLM_F_MATCH

RTM_GETLINK = 18
RTM_GETADDR = 22
RTM_GETROUTE = 26
RTM_GETNEIGH = 30
RTM_GETRULE = 34
RTM_GETQDISC = 38
RTM_GETTFILTER = 46
RTM_GETNETCONF = 82
RTM_GETNSID = 90
NETNSA_FD = 3

MAX_ATTEMPTS = 3
RECV_BUFFER = 256 * 1024  # a dump part is <= 32 KiB; one link message can be larger
# Replies to a batch of RTM_GETNSID requests queue in the socket's receive buffer
# (~200 KiB by default); batches stay far below it so no reply is dropped (ENOBUFS).
NSID_BATCH = 64
TIMEOUT = 5.0

_NLMSGHDR = struct.Struct("=IHHII")
_NSID_REQ = struct.Struct("=IHHIIBxxxHHI")  # nlmsghdr + rtgenmsg(padded) + NETNSA_FD u32

# Family header of each dump request: ifinfomsg 16 bytes, ifaddrmsg 8, rtmsg 12,
# fib_rule_hdr 12, ndmsg 12, tcmsg 20, netconfmsg 1 (padded to 4). Only the family byte
# is set: dump everything.
_HEADER_LEN = {
    RTM_GETLINK: 16,
    RTM_GETADDR: 8,
    RTM_GETROUTE: 12,
    RTM_GETRULE: 12,
    RTM_GETNEIGH: 12,
    RTM_GETQDISC: 20,
    RTM_GETTFILTER: 20,
    RTM_GETNETCONF: 4,
}
_TCMSG = struct.Struct("=BxxxiIII")


class NetlinkError(OSError):
    """The kernel answered a request with an error code."""


@dataclass(frozen=True)
class DumpResult:
    """The raw buffers of one dump, and whether the kernel flagged it interrupted."""

    buffers: tuple[bytes, ...]
    inconsistent: bool = False
    attempts: int = 1


class RouteSocket:
    """A NETLINK_ROUTE socket in the namespace where it was created, with a receive buffer."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._seq = itertools.count(1)

    @classmethod
    def open(cls) -> RouteSocket:
        """Open a socket in the calling thread's current network namespace."""
        sock = socket.socket(
            socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, NETLINK_ROUTE
        )
        sock.settimeout(TIMEOUT)
        sock.bind((0, 0))
        return cls(sock)

    def close(self) -> None:
        """Close the socket."""
        self.sock.close()

    def next_seq(self) -> int:
        """A fresh sequence number for a request."""
        return next(self._seq) & 0xFFFFFFFF

    def recv(self) -> bytes:
        """One datagram (one or more netlink messages) from the kernel."""
        view = _recv_view()
        n, _anc, flags, _addr = self.sock.recvmsg_into([view])
        if flags & socket.MSG_TRUNC:
            raise NetlinkError(errno.EMSGSIZE, "netlink message larger than the receive buffer")
        return bytes(view[:n])


_local = threading.local()


def _recv_view() -> memoryview:
    # One receive buffer per thread, not per socket: allocating (zeroing) a large buffer
    # for each of 250 sockets cost 0.3 s, more than all the dumps together.
    view: memoryview | None = getattr(_local, "view", None)
    if view is None:
        view = memoryview(bytearray(RECV_BUFFER))
        _local.view = view
    return view


def _request(msg_type: int, family: int, seq: int, header: bytes | None = None) -> bytes:
    payload = header if header is not None else bytes([family]) + bytes(_HEADER_LEN[msg_type] - 1)
    return _NLMSGHDR.pack(16 + len(payload), msg_type, NLM_F_REQUEST | NLM_F_DUMP, seq, 0) + payload


def _dump_once(
    rs: RouteSocket, msg_type: int, family: int, header: bytes | None = None
) -> tuple[list[bytes], bool]:
    seq = rs.next_seq()
    rs.sock.send(_request(msg_type, family, seq, header))
    parts: list[bytes] = []
    interrupted = False
    while True:
        buf = rs.recv()
        done = False
        keep = False
        for _b, mtype, flags, off, end in iter_messages((buf,)):
            if _NLMSGHDR.unpack_from(buf, off - 16)[3] != seq:
                continue  # a late reply to an earlier, abandoned request
            if flags & NLM_F_DUMP_INTR:
                interrupted = True
            if mtype == NLMSG_DONE:
                code = error_code(buf, off, end)
                if code < 0:
                    raise NetlinkError(-code, os.strerror(-code))
                done = True
            elif mtype == NLMSG_ERROR:
                code = error_code(buf, off, end)
                if code < 0:
                    raise NetlinkError(-code, os.strerror(-code))
                done = True
            else:
                keep = True
        if keep:
            parts.append(buf)
        if done:
            return parts, interrupted


def dump(
    rs: RouteSocket,
    msg_type: int,
    family: int = socket.AF_UNSPEC,
    attempts: int = MAX_ATTEMPTS,
    header: bytes | None = None,
) -> DumpResult:
    """Dump one table (RTM_GET* with NLM_F_DUMP); retry while the kernel flags it interrupted.

    `header` replaces the family-only request header, e.g. a tcmsg naming one interface.
    """
    parts: list[bytes] = []
    for attempt in range(1, max(1, attempts) + 1):
        parts, interrupted = _dump_once(rs, msg_type, family, header)
        if not interrupted:
            return DumpResult(tuple(parts), False, attempt)
    return DumpResult(tuple(parts), True, max(1, attempts))


@dataclass(frozen=True)
class NamespaceDumps:
    """Every dump podpath takes of one network namespace."""

    links: DumpResult
    addresses: DumpResult
    routes: DumpResult
    rules: DumpResult
    neighbours: DumpResult
    fdb: DumpResult

    def inconsistent(self) -> tuple[str, ...]:
        """Names of the dumps that stayed interrupted after every retry."""
        return tuple(
            name
            for name, result in (
                ("links", self.links),
                ("addresses", self.addresses),
                ("routes", self.routes),
                ("rules", self.rules),
                ("neighbours", self.neighbours),
                ("fdb", self.fdb),
            )
            if result.inconsistent
        )


def dump_namespace(rs: RouteSocket, attempts: int = MAX_ATTEMPTS) -> NamespaceDumps:
    """Links, addresses, routes (all tables), rules, neighbours and bridge FDB of rs's netns."""
    return NamespaceDumps(
        links=dump(rs, RTM_GETLINK, attempts=attempts),
        addresses=dump(rs, RTM_GETADDR, attempts=attempts),
        routes=dump(rs, RTM_GETROUTE, attempts=attempts),
        rules=dump(rs, RTM_GETRULE, attempts=attempts),
        # AF_UNSPEC reaches neigh_dump_info (ARP and NDP tables); the bridge FDB is the
        # separate PF_BRIDGE handler (rtnl_fdb_dump), so it needs its own request.
        neighbours=dump(rs, RTM_GETNEIGH, attempts=attempts),
        fdb=dump(rs, RTM_GETNEIGH, AF_BRIDGE, attempts=attempts),
    )


def tc_filter_header(ifindex: int, parent: int) -> bytes:
    """The tcmsg of a filter dump of one interface below one parent (tc_dump_tfilter needs both)."""
    return _TCMSG.pack(socket.AF_UNSPEC, ifindex, 0, parent, 0)


def get_nsids(rs: RouteSocket, ns_fds: Sequence[int]) -> list[int | None]:
    """The netnsid of each namespace fd as seen from rs's namespace (None: not assigned).

    RTM_GETNSID with NETNSA_FD only looks the id up (peernet2id); unlike `ip netns set`
    it never assigns one, so asking is read-only.
    """
    result: list[int | None] = [None] * len(ns_fds)
    for start in range(0, len(ns_fds), NSID_BATCH):
        chunk = ns_fds[start : start + NSID_BATCH]
        pending: dict[int, int] = {}
        out = bytearray()
        for i, fd in enumerate(chunk, start):
            seq = rs.next_seq()
            pending[seq] = i
            out += _NSID_REQ.pack(
                _NSID_REQ.size,
                RTM_GETNSID,
                NLM_F_REQUEST,
                seq,
                0,
                socket.AF_UNSPEC,
                8,
                NETNSA_FD,
                fd,
            )
        rs.sock.send(bytes(out))
        while pending:
            buf = rs.recv()
            for _b, mtype, _flags, off, end in iter_messages((buf,)):
                seq = _NLMSGHDR.unpack_from(buf, off - 16)[3]
                index = pending.pop(seq, None)
                if index is None:
                    continue
                if mtype == RTM_NEWNSID:
                    result[index] = decode_nsid(buf, off, end)
                # NLMSG_ERROR (e.g. EINVAL for a closed fd) leaves None: unknown.
    return result
