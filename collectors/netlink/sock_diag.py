"""TCP and UDP sockets of a network namespace, read with sock_diag (what `ss` uses).

A NETLINK_SOCK_DIAG socket, like a NETLINK_ROUTE one, answers for the network namespace
it was created in: `netns_scan`'s opener thread opens one inside each namespace and
the dumps are read later on the calling thread. The kernel answers one inet_diag_msg
per socket, and for IPv6 sockets an INET_DIAG_SKV6ONLY attribute that /proc/net/tcp6
does not show (whether a [::] bind also takes IPv4).

What a dump costs is the kernel's walk of its hash tables, which are shared by every
namespace: TCP's established hash is walked whole for each dump that asks for a
state other than LISTEN (1.1 ms on this 2-core machine, whatever the namespace holds).
So TCP is asked with the older TCPDIAG_GETSOCK request, which the kernel runs with
family AF_UNSPEC (one walk finds IPv4 and IPv6 sockets): first LISTEN alone (the small
listening hash, ~25 us), then every other state only when the namespace has other TCP
sockets. Whether it has is read from its /proc/net/sockstat{,6} (per-namespace counters:
`TCP: inuse` counts hashed sockets, listeners included, `tw` TIME-WAIT ones), opened
inside the namespace with the netlink socket. An idle pod (listeners only) then costs
no walk. UDP is one SOCK_DIAG_BY_FAMILY (inet_diag_req_v2) request per family (a walk
of ~20 us).

Asking can load a module: the kernel request_module()s a missing diag handler
("net-pf-16-proto-4-type-2-6" is tcp_diag), as `ss` does on first use. podpath never
changes a node, so sock_diag is used only when `handlers_present` finds tcp_diag and
udp_diag already in the kernel (built in, loaded, or a kernel without modules);
otherwise the same sockets are read from /proc/net/{tcp,udp}{,6}
(`podpath.collectors.proc.net_sockets`), which never loads anything.
"""

from __future__ import annotations

import _socket
import os
import struct

from podpath.collectors.hostroot import HostRoot
from podpath.collectors.kernel_modules import present
from podpath.collectors.netlink.nlsocket import TIMEOUT, NetlinkSocket
from podpath.collectors.netlink.wire import attributes, payloads
from podpath.collectors.proc.net_sockets import STATE_NAMES
from podpath.snapshot.model import Socket

NETLINK_SOCK_DIAG = 4
TCPDIAG_GETSOCK = 18
SOCK_DIAG_BY_FAMILY = 20
AF_INET = 2
AF_INET6 = 10
IPPROTO_UDP = 17
INET_DIAG_SKV6ONLY = 11

# Every state of include/net/tcp_states.h (1 ESTABLISHED .. 12 NEW_SYN_RECV).
ALL_STATES = 0x1FFE
LISTEN = 1 << 10
_VERSION = {AF_INET: 4, AF_INET6: 6}

# inet_diag_req_v2: family, protocol, ext, pad, states, then inet_diag_sockid (48 bytes).
_REQUEST = struct.Struct("=BBBxI48x")
# inet_diag_req (TCPDIAG_GETSOCK): family, src_len, dst_len, ext, sockid, states, dbs.
_COMPAT_REQUEST = struct.Struct("=BBBB48xII")
# inet_diag_msg: family, state, timer, retrans; sockid: sport, dport (__be16),
# src[16], dst[16], if, cookie[2]; then expires, rqueue, wqueue, uid, inode.
_MESSAGE = struct.Struct("=BBBB2s2s16s16sI8xIIIII")
_MESSAGE_LEN = _MESSAGE.size  # 72
# The modules of the TCP and UDP diag handlers (both need inet_diag).
_MODULES = ("tcp_diag", "udp_diag")


class DiagSocket(NetlinkSocket):
    """A NETLINK_SOCK_DIAG socket of the calling thread's current network namespace."""

    source = "sock_diag"

    def __init__(self, timeout: float = TIMEOUT) -> None:
        super().__init__(NETLINK_SOCK_DIAG, timeout)
        self.sockstat: list[int] = []  # fds of this namespace's sockstat files
        try:
            for name in ("sockstat", "sockstat6"):
                try:
                    fd = os.open(f"/proc/thread-self/net/{name}", os.O_RDONLY | os.O_CLOEXEC)
                except FileNotFoundError:
                    continue  # sockstat6: IPv6 disabled
                self.sockstat.append(fd)
        except OSError:
            self.close()
            raise

    def close(self) -> None:
        """Close the socket and the sockstat files."""
        while self.sockstat:
            os.close(self.sockstat.pop())
        super().close()

    def sockets(self, netns: int) -> list[Socket]:
        """Every TCP and UDP socket, IPv4 and IPv6, of this socket's namespace."""
        # sock_diag dumps do not flag interruption: one attempt is all there is.
        tcp = self.dump(TCPDIAG_GETSOCK, _COMPAT_REQUEST.pack(0, 0, 0, 0, LISTEN, 0), 1)
        found = decode_sockets(tcp.buffers, netns, "tcp", TCPDIAG_GETSOCK)
        if self._more_tcp(len(found)):
            request = _COMPAT_REQUEST.pack(0, 0, 0, 0, ALL_STATES & ~LISTEN, 0)
            tcp = self.dump(TCPDIAG_GETSOCK, request, 1)
            found += decode_sockets(tcp.buffers, netns, "tcp", TCPDIAG_GETSOCK)
        for family in (AF_INET, AF_INET6):
            request = _REQUEST.pack(family, IPPROTO_UDP, 0, ALL_STATES)
            udp = self.dump(SOCK_DIAG_BY_FAMILY, request, 1)
            found += decode_sockets(udp.buffers, netns, "udp", SOCK_DIAG_BY_FAMILY)
        return found

    def _more_tcp(self, listeners: int) -> bool:
        """Whether the namespace holds TCP sockets besides its `listeners`; True if unsure."""
        if not self.sockstat:
            return True
        inuse = tw = 0
        for fd in self.sockstat:
            counts = parse_sockstat(os.pread(fd, 4096, 0))
            if counts is None:
                return True
            inuse += counts[0]
            tw += counts[1]
        return inuse > listeners or tw > 0


def parse_sockstat(raw: bytes) -> tuple[int, int] | None:
    """(TCP inuse, TCP tw) of /proc/net/sockstat, or (TCP6 inuse, 0) of sockstat6; None
    when the line is not there as expected."""
    for line in raw.decode("ascii", "replace").splitlines():
        name, _, rest = line.partition(":")
        if name not in ("TCP", "TCP6"):
            continue
        words = rest.split()
        fields = dict(zip(words[::2], words[1::2], strict=False))
        try:
            return int(fields["inuse"]), int(fields.get("tw", "0"))
        except (KeyError, ValueError):
            return None
    return None


def decode_sockets(
    buffers: tuple[bytes, ...], netns: int, protocol: str, msg_type: int
) -> list[Socket]:
    """The sockets of one dump (answers of type `msg_type`); a malformed message raises."""
    out: list[Socket] = []
    unpack = _MESSAGE.unpack_from
    ntop = _socket.inet_ntop
    for buf, off, end in payloads(buffers, msg_type, _MESSAGE_LEN, "strict"):
        (fam, state, _timer, _retrans, sport, dport, src, dst, dev, _exp, rq, wq, uid, inode) = (
            unpack(buf, off)
        )
        version = _VERSION.get(fam)
        if version is None:
            continue
        size = 4 if version == 4 else 16
        v6only: bool | None = None
        if version == 6:
            raw = attributes(buf, off + _MESSAGE_LEN, end, "strict").get(INET_DIAG_SKV6ONLY)
            v6only = bool(raw[0]) if raw else None
        peer = ntop(fam, dst[:size])
        peer_port = int.from_bytes(dport, "big")
        unconnected = peer_port == 0 and peer in ("0.0.0.0", "::")
        out.append(
            Socket(
                netns=netns,
                protocol=protocol,
                family=version,
                state=STATE_NAMES.get(state, f"state {state}"),
                local=ntop(fam, src[:size]),
                local_port=int.from_bytes(sport, "big"),
                peer=None if unconnected else peer,
                peer_port=None if unconnected else peer_port,
                inode=inode,
                uid=uid,
                recv_q=rq,
                send_q=wq,
                v6only=v6only,
                bound_dev=dev or None,
            )
        )
    return out


def handlers_present(host: HostRoot, release: str) -> bool:
    """True when asking sock_diag for TCP and UDP loads no module (see the module doc):
    tcp_diag and udp_diag are in the kernel (they need inet_diag, so it is there too)."""
    return present(host, release, {name: f"kernel/net/ipv4/{name}.ko" for name in _MODULES})
