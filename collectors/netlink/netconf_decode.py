"""Decode netconf dumps (RTM_NEWNETCONF): per-interface forwarding, rp_filter and proxy_arp.

`ip netconf show` reads the same messages. One AF_UNSPEC dump of a namespace returns
its IPv4 and IPv6 configuration for every interface plus `all` (ifindex -1) and
`default` (-2): the sysctls under /proc/sys/net/ipv{4,6}/conf of that namespace,
read over the netlink socket already open there instead of entering it for procfs.
Constants are the kernel's uapi values (linux/netconf.h).
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Iterable

from podpath.collectors.netlink.wire import attributes, payloads
from podpath.snapshot.model import NetConf

RTM_NEWNETCONF = 80
NETCONFA_IFINDEX, NETCONFA_FORWARDING, NETCONFA_RP_FILTER = 1, 2, 3
NETCONFA_MC_FORWARDING, NETCONFA_PROXY_NEIGH, NETCONFA_IGNORE_ROUTES_WITH_LINKDOWN = 4, 5, 6
IFINDEX_ALL = -1
IFINDEX_DEFAULT = -2

_I32 = struct.Struct("=i")
_NETCONFMSG_LEN = 4  # struct netconfmsg is one byte, aligned to NLMSG_ALIGNTO


def _int(data: bytes | None) -> int | None:
    return int(_I32.unpack_from(data)[0]) if data is not None and len(data) >= 4 else None


def decode_netconf(buffers: Iterable[bytes]) -> list[NetConf]:
    """RTM_NEWNETCONF messages of AF_INET and AF_INET6 -> NetConf objects."""
    out: list[NetConf] = []
    for buf, off, end in payloads(buffers, RTM_NEWNETCONF, _NETCONFMSG_LEN, "strict"):
        family = buf[off]
        if family not in (socket.AF_INET, socket.AF_INET6):
            continue  # MPLS and others
        a = attributes(buf, off + _NETCONFMSG_LEN, end, "strict")
        ifindex = _int(a.get(NETCONFA_IFINDEX))
        if ifindex is None:
            continue
        out.append(
            NetConf(
                family=4 if family == socket.AF_INET else 6,
                ifindex=ifindex,
                forwarding=_int(a.get(NETCONFA_FORWARDING)),
                rp_filter=_int(a.get(NETCONFA_RP_FILTER)),
                proxy_neigh=_int(a.get(NETCONFA_PROXY_NEIGH)),
                mc_forwarding=_int(a.get(NETCONFA_MC_FORWARDING)),
                ignore_routes_with_linkdown=_int(a.get(NETCONFA_IGNORE_ROUTES_WITH_LINKDOWN)),
            )
        )
    return out
