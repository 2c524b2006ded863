"""TCP and UDP sockets of a network namespace, read with sock_diag (what `ss` uses).

A NETLINK_SOCK_DIAG socket, like a NETLINK_ROUTE one, answers for the network namespace
it was created in: `netns_scan`'s opener thread opens one inside each namespace and
the dumps are read later on the calling thread. Each dump is one SOCK_DIAG_BY_FAMILY
request (inet_diag_req_v2) per (family, protocol), asking for every state; the
kernel answers one inet_diag_msg per socket, and for IPv6 sockets an
INET_DIAG_SKV6ONLY attribute that /proc/net/tcp6 does not show (whether a [::] bind
also takes IPv4).

Asking can load a module: the kernel request_module()s a missing diag handler
("net-pf-16-proto-4-type-2-6" is tcp_diag), as `ss` does on first use. podpath never
changes a node, so sock_diag is used only when `handlers_present` finds tcp_diag and
udp_diag already in the kernel (built in, loaded, or a kernel without modules);
otherwise the same sockets are read from /proc/net/{tcp,udp}{,6}
(`podpath.collectors.proc.net_sockets`), which never loads anything.
"""

from __future__ import annotations

import _socket
import errno
import struct

from podpath.collectors.hostroot import CollectorError, HostRoot
from podpath.collectors.netlink.nlsocket import TIMEOUT, NetlinkSocket
from podpath.collectors.netlink.wire import attributes, payloads
from podpath.snapshot.model import Socket

NETLINK_SOCK_DIAG = 4
SOCK_DIAG_BY_FAMILY = 20
AF_INET = 2
AF_INET6 = 10
IPPROTO_TCP = 6
IPPROTO_UDP = 17
INET_DIAG_SKV6ONLY = 11

# Every state of include/net/tcp_states.h (1 ESTABLISHED .. 12 NEW_SYN_RECV).
ALL_STATES = 0x1FFE
# The names `ss` prints; UDP uses TCP_CLOSE for an unconnected socket, ss's UNCONN.
STATE_NAMES = {
    1: "ESTAB",
    2: "SYN-SENT",
    3: "SYN-RECV",
    4: "FIN-WAIT-1",
    5: "FIN-WAIT-2",
    6: "TIME-WAIT",
    7: "UNCONN",
    8: "CLOSE-WAIT",
    9: "LAST-ACK",
    10: "LISTEN",
    11: "CLOSING",
    12: "SYN-RECV",  # TCP_NEW_SYN_RECV: a request socket, shown as ss shows it
}
PROTOCOLS = (("tcp", IPPROTO_TCP), ("udp", IPPROTO_UDP))
FAMILIES = ((4, AF_INET), (6, AF_INET6))

# inet_diag_req_v2: family, protocol, ext, pad, states, then inet_diag_sockid (48 bytes).
_REQUEST = struct.Struct("=BBBxI48x")
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

    def sockets(self, netns: int) -> list[Socket]:
        """Every TCP and UDP socket, IPv4 and IPv6, of this socket's namespace."""
        found: list[Socket] = []
        for name, proto in PROTOCOLS:
            for version, family in FAMILIES:
                request = _REQUEST.pack(family, proto, 0, ALL_STATES)
                # sock_diag dumps do not flag interruption: one attempt is all there is.
                dump = self.dump(SOCK_DIAG_BY_FAMILY, request, 1)
                found += decode_sockets(dump.buffers, netns, name, version)
        return found


def decode_sockets(
    buffers: tuple[bytes, ...], netns: int, protocol: str, version: int
) -> list[Socket]:
    """The sockets of one (family, protocol) dump; a malformed message raises (strict)."""
    out: list[Socket] = []
    unpack = _MESSAGE.unpack_from
    ntop = _socket.inet_ntop
    family = AF_INET if version == 4 else AF_INET6
    size = 4 if version == 4 else 16
    for buf, off, end in payloads(buffers, SOCK_DIAG_BY_FAMILY, _MESSAGE_LEN, "strict"):
        (fam, state, _timer, _retrans, sport, dport, src, dst, dev, _exp, rq, wq, uid, inode) = (
            unpack(buf, off)
        )
        if fam != family:
            continue
        v6only: bool | None = None
        if version == 6:
            raw = attributes(buf, off + _MESSAGE_LEN, end, "strict").get(INET_DIAG_SKV6ONLY)
            v6only = bool(raw[0]) if raw else None
        peer = ntop(family, dst[:size])
        peer_port = int.from_bytes(dport, "big")
        unconnected = peer_port == 0 and peer in ("0.0.0.0", "::")
        out.append(
            Socket(
                netns=netns,
                protocol=protocol,
                family=version,
                state=STATE_NAMES.get(state, f"state {state}"),
                local=ntop(family, src[:size]),
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
    """True when asking sock_diag for TCP and UDP loads no module (see the module doc).

    The handlers are there when the kernel has no module support (no /proc/modules),
    or when each of tcp_diag and udp_diag is loaded or listed in `modules.builtin`
    (they need inet_diag, so it is there too).
    """
    try:
        loaded = host.proc_read("modules").decode("ascii", "replace")
    except CollectorError as exc:
        # ENOENT: a kernel without CONFIG_MODULES loads nothing; any other error: unknown.
        return exc.errno == errno.ENOENT
    missing = set(_MODULES) - {line.split(" ", 1)[0] for line in loaded.splitlines()}
    if not missing:
        return True
    for base in ("/lib/modules", "/usr/lib/modules"):
        try:
            builtin = host.read_text(f"{base}/{release}/modules.builtin").split()
        except CollectorError:
            continue
        return {f"kernel/net/ipv4/{name}.ko" for name in missing} <= set(builtin)
    return False
