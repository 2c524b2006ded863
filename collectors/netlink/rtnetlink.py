"""rtnetlink requests on a NETLINK_ROUTE socket: table dumps and netnsid lookups.

The socket and every check on the kernel's answers are the netlink core's
(`nlsocket`); this module only knows rtnetlink's request shapes. Decoding the dumped
messages into the snapshot model is `rtnetlink_decode`'s business.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import TYPE_CHECKING

from podpath.collectors.netlink.nlsocket import (
    MAX_ATTEMPTS,
    TIMEOUT,
    Dump,
    NetlinkSocket,
    Reply,
)
from podpath.collectors.netlink.wire import NetlinkError, attribute, attributes

if TYPE_CHECKING:
    from podpath.collectors.netlink.nlsocket import Transport

NETLINK_ROUTE = 0
AF_UNSPEC = 0
AF_BRIDGE = 7

RTM_GETLINK = 18
RTM_GETADDR = 22
RTM_GETROUTE = 26
RTM_GETNEIGH = 30
RTM_GETRULE = 34
RTM_GETQDISC = 38
RTM_GETTFILTER = 46
RTM_GETNETCONF = 82
RTM_GETNEIGHTBL = 66
RTM_NEWNSID = 88
RTM_GETNSID = 90
NETNSA_NSID = 1
NETNSA_FD = 3

# Family header of each dump request: ifinfomsg 16 bytes, ifaddrmsg 8, rtmsg 12,
# fib_rule_hdr 12, ndmsg 12, tcmsg 20, netconfmsg 1 and ndtmsg 4 (padded to 4). Only the family
# byte is set: dump everything.
_HEADER_LEN = {
    RTM_GETLINK: 16,
    RTM_GETADDR: 8,
    RTM_GETROUTE: 12,
    RTM_GETRULE: 12,
    RTM_GETNEIGH: 12,
    RTM_GETQDISC: 20,
    RTM_GETNETCONF: 4,
    RTM_GETNEIGHTBL: 4,
}
_TCMSG = struct.Struct("=BxxxiIII")  # family, ifindex, handle, parent, info
_I32 = struct.Struct("=i")


class RouteSocket(NetlinkSocket):
    """A NETLINK_ROUTE socket of the calling thread's current network namespace."""

    def __init__(self, timeout: float = TIMEOUT, transport: Transport | None = None) -> None:
        super().__init__(NETLINK_ROUTE, timeout, transport)

    def dump_table(
        self, msg_type: int, family: int = AF_UNSPEC, attempts: int = MAX_ATTEMPTS
    ) -> Dump:
        """Dump one table (RTM_GETLINK, GETADDR, GETROUTE, GETRULE, GETNEIGH, GETQDISC,
        GETNETCONF, GETNEIGHTBL) of `family`."""
        header = bytes([family]) + bytes(_HEADER_LEN[msg_type] - 1)
        return self.dump(msg_type, header, attempts)

    def nsids(self, ns_fds: Sequence[int]) -> list[int | NetlinkError | None]:
        """The netnsid of each namespace fd as this socket's namespace sees it.

        None: no id is assigned; a NetlinkError: the kernel refused to say (e.g.
        EINVAL for an fd that is not a network namespace). RTM_GETNSID with NETNSA_FD
        only looks the id up (peernet2id); unlike `ip netns set` it never assigns one,
        so asking is read-only.
        """
        # struct rtgenmsg (1 byte, padded to 4) + NETNSA_FD u32.
        requests = [
            (RTM_GETNSID, b"\0\0\0\0" + attribute(NETNSA_FD, struct.pack("=I", fd)))
            for fd in ns_fds
        ]
        return [_nsid(answer) for answer in self.calls(requests)]


def tc_filter_header(ifindex: int, parent: int) -> bytes:
    """The tcmsg of a filter dump of one interface below one parent (tc_dump_tfilter needs both)."""
    return _TCMSG.pack(AF_UNSPEC, ifindex, 0, parent, 0)


def _nsid(answer: Reply | NetlinkError) -> int | NetlinkError | None:
    if isinstance(answer, NetlinkError):
        return answer
    if answer.msg_type != RTM_NEWNSID:
        return None
    raw = attributes(answer.buffer, answer.offset + 4, answer.end, "strict").get(NETNSA_NSID)
    if raw is None or len(raw) < 4:
        return None
    nsid = int(_I32.unpack_from(raw)[0])
    return nsid if nsid >= 0 else None  # -1: NETNSA_NSID_NOT_ASSIGNED
