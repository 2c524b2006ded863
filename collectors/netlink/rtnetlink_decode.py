"""A flat, fast decoder of rtnetlink dump messages into snapshot model objects.

pyroute2 builds a tree of nla objects per message; at 250 namespaces that parse costs
~0.48 s against ~0.05 s for this flat walk (docs/performance.md). Every decoder takes the
raw buffers a dump returned (one or more netlink messages each) and the inode of the
namespace they came from. Messages of other types, families and attributes it does not
know are skipped (the kernel adds attributes over time); a message whose lengths do not
add up raises `MalformedMessage` (the netlink core's strict walk), which the scanner
records as a gap rather than showing part of a message as the whole.

Constants are the kernel's uapi values (linux/rtnetlink.h, if_link.h, neighbour.h,
fib_rules.h, if_addr.h); names printed for them follow iproute2, so a decoded object
compares directly with `ip -d -j` output.
"""

from __future__ import annotations

import dataclasses
import socket
import struct
from collections.abc import Iterable
from typing import Any, NamedTuple

from podpath.collectors.netlink.rtnetlink import AF_BRIDGE
from podpath.collectors.netlink.wire import MalformedMessage, attributes, cstr, nested, payloads
from podpath.snapshot.model import (
    Address,
    BpfProgram,
    FdbEntry,
    Link,
    LinkStats,
    Neighbour,
    Nexthop,
    Route,
    Rule,
    Vxlan,
    Xdp,
)

RTM_NEWLINK = 16
RTM_NEWADDR = 20
RTM_NEWROUTE = 24
RTM_NEWNEIGH = 28
RTM_NEWRULE = 32

_U16 = struct.Struct("=H")
_BE16 = struct.Struct("!H")
_U32 = struct.Struct("=I")
_I32 = struct.Struct("=i")
_IFINFOMSG = struct.Struct("=BxHiII")
_IFADDRMSG = struct.Struct("=BBBBI")
_RTMSG = struct.Struct("=BBBBBBBBI")
_NDMSG = struct.Struct("=BxxxiHBB")
_RTNEXTHOP = struct.Struct("=HBBi")
_PORT_RANGE = struct.Struct("=HH")
_UID_RANGE = struct.Struct("=II")
_IFA_CACHE = struct.Struct("=IIII")
# struct rtnl_link_stats64: the fields of LinkStats, in order; older kernels send fewer.
_STATS_FIELDS = tuple(f.name for f in dataclasses.fields(LinkStats))

AF_INET = socket.AF_INET
AF_INET6 = socket.AF_INET6

# --- names as iproute2 prints them ---------------------------------------------------------
ROUTE_TYPES = {
    0: "unspec",
    1: "unicast",
    2: "local",
    3: "broadcast",
    4: "anycast",
    5: "multicast",
    6: "blackhole",
    7: "unreachable",
    8: "prohibit",
    9: "throw",
    10: "nat",
    11: "xresolve",
}
# iproute2's rt_scopes: scope 0 (RT_SCOPE_UNIVERSE) is printed "global".
SCOPES = {0: "global", 200: "site", 253: "link", 254: "host", 255: "nowhere"}
PROTOCOLS = {
    0: "unspec",
    1: "redirect",
    2: "kernel",
    3: "boot",
    4: "static",
    8: "gated",
    9: "ra",
    10: "mrt",
    11: "zebra",
    12: "bird",
    13: "dnrouted",
    14: "xorp",
    15: "ntk",
    16: "dhcp",
    17: "mrouted",
    18: "keepalived",
    42: "babel",
    99: "openr",
    186: "bgp",
    187: "isis",
    188: "ospf",
    189: "rip",
    192: "eigrp",
}
OPERSTATES = {
    0: "UNKNOWN",
    1: "NOTPRESENT",
    2: "DOWN",
    3: "LOWERLAYERDOWN",
    4: "TESTING",
    5: "DORMANT",
    6: "UP",
}
RULE_ACTIONS = {
    0: "unspec",
    1: "lookup",
    2: "goto",
    3: "nop",
    6: "blackhole",
    7: "unreachable",
    8: "prohibit",
}
# Order in which `ip link` prints interface flags (iproute2 ip/ipaddress.c print_link_flags).
_IFF_ORDER = (
    (0x8, "LOOPBACK"),
    (0x2, "BROADCAST"),
    (0x10, "POINTOPOINT"),
    (0x1000, "MULTICAST"),
    (0x80, "NOARP"),
    (0x200, "ALLMULTI"),
    (0x100, "PROMISC"),
    (0x400, "MASTER"),
    (0x800, "SLAVE"),
    (0x4, "DEBUG"),
    (0x8000, "DYNAMIC"),
    (0x4000, "AUTOMEDIA"),
    (0x2000, "PORTSEL"),
    (0x20, "NOTRAILERS"),
    (0x1, "UP"),
    (0x10000, "LOWER_UP"),
    (0x20000, "DORMANT"),
    (0x40000, "ECHO"),
)
_IFF_UP = 0x1
_IFF_RUNNING = 0x40
_NUD_ORDER = (
    (0x01, "INCOMPLETE"),
    (0x02, "REACHABLE"),
    (0x04, "STALE"),
    (0x08, "DELAY"),
    (0x10, "PROBE"),
    (0x20, "FAILED"),
    (0x40, "NOARP"),
    (0x80, "PERMANENT"),
)
NUD_STALE = 0x04
NUD_NOARP = 0x40
NUD_PERMANENT = 0x80
_NEIGH_FLAGS = (
    (0x01, "use"),
    (0x02, "self"),
    (0x04, "master"),
    (0x08, "proxy"),
    (0x10, "extern_learn"),
    (0x20, "offload"),
    (0x40, "sticky"),
    (0x80, "router"),
)
# RTNH_F_* flags, used both in rtm_flags and in each rtnexthop.
_RTNH_FLAGS = (
    (0x1, "dead"),
    (0x2, "pervasive"),
    (0x4, "onlink"),
    (0x8, "offload"),
    (0x10, "linkdown"),
    (0x20, "unresolved"),
    (0x40, "trap"),
)
RTM_F_CLONED = 0x200
FIB_RULE_INVERT = 0x2

# --- attribute numbers ------------------------------------------------------------------------
IFLA_ADDRESS, IFLA_IFNAME, IFLA_MTU, IFLA_LINK = 1, 3, 4, 5
IFLA_MASTER, IFLA_OPERSTATE, IFLA_LINKINFO, IFLA_LINK_NETNSID = 10, 16, 18, 37
IFLA_STATS64, IFLA_XDP, IFLA_GROUP = 23, 43, 27
IFLA_XDP_ATTACHED, IFLA_XDP_PROG_ID = 2, 4
# XDP_ATTACHED_*: how a program is attached (iproute2 prints xdp, xdpgeneric, xdpoffload).
XDP_MODES = {1: "drv", 2: "generic", 3: "offload", 4: "multi"}
IFLA_INFO_KIND, IFLA_INFO_DATA = 1, 2
IFLA_INFO_SLAVE_KIND, IFLA_INFO_SLAVE_DATA = 4, 5
IFLA_BRPORT_STATE = 1  # u8: a bridge port's STP state (BR_STATE_*)
IFLA_BRPORT_MODE = 4  # u8: hairpin mode of a bridge port
# BR_STATE_* (linux/if_bridge.h), as `bridge link` names them.
_PORT_STATES = ("disabled", "listening", "learning", "forwarding", "blocking")
IFLA_BRPORT_LEARNING = 8  # u8: the bridge learns the source MACs of frames from the port
IFLA_BRPORT_ISOLATED = 33  # u8: an isolated port (linux/if_link.h)
# u8: a bridge's own br_netfilter switches (`ip link set BR type bridge nf_call_iptables 1`)
IFLA_BR_NF_CALL_IPTABLES, IFLA_BR_NF_CALL_IP6TABLES = 36, 37
IFLA_VXLAN_ID, IFLA_VXLAN_GROUP, IFLA_VXLAN_LINK, IFLA_VXLAN_LOCAL = 1, 2, 3, 4
IFLA_VXLAN_LEARNING, IFLA_VXLAN_PORT, IFLA_VXLAN_GROUP6, IFLA_VXLAN_LOCAL6 = 7, 15, 16, 17
# u8 switches, named as `ip -d link` names them.
_VXLAN_FLAGS = ((11, "proxy"), (13, "l2miss"), (14, "l3miss"))
IFA_ADDRESS, IFA_LOCAL, IFA_LABEL, IFA_FLAGS = 1, 2, 3, 8
# IFA_F_* flags that bear on an address's use, named as `ip addr` prints them
# (linux/if_addr.h); IFA_FLAGS (u32) supersedes the header's 8-bit ifa_flags.
_IFA_FLAGS = (
    (0x01, "secondary"),
    (0x02, "nodad"),
    (0x04, "optimistic"),
    (0x08, "dadfailed"),
    (0x20, "deprecated"),
    (0x40, "tentative"),
    (0x200, "noprefixroute"),
)
RTA_DST, RTA_OIF, RTA_GATEWAY, RTA_PRIORITY, RTA_PREFSRC = 1, 4, 5, 6, 7
RTA_MULTIPATH, RTA_TABLE, RTA_VIA = 9, 15, 18
FRA_DST, FRA_SRC, FRA_IIFNAME, FRA_GOTO, FRA_PRIORITY = 1, 2, 3, 4, 6
FRA_FWMARK, FRA_TABLE, FRA_FWMASK, FRA_OIFNAME = 10, 15, 16, 17
FRA_FLOW, FRA_TUN_ID, FRA_SUPPRESS_IFGROUP, FRA_SUPPRESS_PREFIXLEN, FRA_L3MDEV = 11, 12, 13, 14, 19
FRA_UID_RANGE, FRA_PROTOCOL, FRA_IP_PROTO, FRA_SPORT_RANGE, FRA_DPORT_RANGE = 20, 21, 22, 23, 24
NDA_DST, NDA_LLADDR, NDA_VLAN, NDA_MASTER = 1, 2, 5, 9

_FAMILY_LEN = {AF_INET: 4, AF_INET6: 16}


def ip_str(data: bytes) -> str | None:
    """An IPv4 or IPv6 address in the form `ip` prints; None for other lengths."""
    if len(data) == 4:
        return socket.inet_ntop(AF_INET, data)
    if len(data) == 16:
        return socket.inet_ntop(AF_INET6, data)
    return None


def mac_str(data: bytes | None) -> str | None:
    """A link-layer address as lowercase colon-separated hex; None when empty."""
    if not data:
        return None
    return data.hex(":")


def u32(data: bytes) -> int:
    """A native-endian u32 attribute."""
    return int(_U32.unpack_from(data)[0])


def _names(value: int, table: tuple[tuple[int, str], ...]) -> tuple[str, ...]:
    if not value:
        return ()  # the common case: skip building a generator
    return tuple(name for bit, name in table if value & bit)


def link_flags(flags: int) -> tuple[str, ...]:
    """Interface flags in `ip link` order, with NO-CARRIER for up-but-not-running."""
    names = _names(flags, _IFF_ORDER)
    if flags & _IFF_UP and not flags & _IFF_RUNNING:
        return ("NO-CARRIER", *names)
    return names


def _default_dst(family: int) -> str:
    return "0.0.0.0" if family == AF_INET else "::"


# --- links -----------------------------------------------------------------------------------


def decode_links(buffers: Iterable[bytes], netns: int) -> list[Link]:
    """RTM_NEWLINK messages -> Link objects (no addresses, peer unresolved)."""
    out: list[Link] = []
    unpack = _IFINFOMSG.unpack_from
    for buf, off, end in payloads(buffers, RTM_NEWLINK, 16, "strict"):
        _family, _type, index, flags, _change = unpack(buf, off)
        a = attributes(buf, off + 16, end, "strict")
        name = a.get(IFLA_IFNAME)
        mtu = a.get(IFLA_MTU)
        oper = a.get(IFLA_OPERSTATE)
        master = a.get(IFLA_MASTER)
        lnk = a.get(IFLA_LINK)
        nsid = a.get(IFLA_LINK_NETNSID)
        kind: str | None = None
        vxlan: Vxlan | None = None
        port = _BridgePort(None, None, None, None)
        nf_calls = _BridgeNfCalls(None, None)
        info = a.get(IFLA_LINKINFO)
        if info is not None:
            kind, vxlan, nf_calls = _linkinfo(info)
            port = _bridge_port(info)
        link_index = _I32.unpack_from(lnk)[0] if lnk is not None and len(lnk) >= 4 else None
        stats = a.get(IFLA_STATS64)
        xdp = a.get(IFLA_XDP)
        group = a.get(IFLA_GROUP)
        out.append(
            Link(
                netns=netns,
                ifindex=index,
                name=cstr(name) if name is not None else f"if{index}",
                kind=kind,
                mac=mac_str(a.get(IFLA_ADDRESS)),
                mtu=u32(mtu) if mtu is not None and len(mtu) >= 4 else 0,
                state=OPERSTATES.get(oper[0], str(oper[0])) if oper else "UNKNOWN",
                flags=link_flags(flags),
                master=u32(master) if master is not None and len(master) >= 4 else None,
                # `ip` hides IFLA_LINK when it equals the link itself (e.g. ipip fallback).
                link=link_index if link_index not in (None, 0, index) else None,
                link_netnsid=_I32.unpack_from(nsid)[0]
                if nsid is not None and len(nsid) >= 4
                else None,
                vxlan=vxlan,
                stats=_stats64(stats) if stats is not None else None,
                xdp=_xdp(xdp) if xdp is not None else None,
                hairpin=port.hairpin,
                group=u32(group) if group is not None and len(group) >= 4 else None,
                isolated=port.isolated,
                learning=port.learning,
                port_state=port.state,
                nf_call_iptables=nf_calls.iptables,
                nf_call_ip6tables=nf_calls.ip6tables,
            )
        )
    return out


class _BridgePort(NamedTuple):
    """A bridge port's switches and state (None: no bridge port, or the kernel did not say)."""

    hairpin: bool | None
    isolated: bool | None
    learning: bool | None
    state: str | None


def _bridge_port(info: bytes) -> _BridgePort:
    """A bridge port's hairpin mode, isolation, learning and STP state, from
    IFLA_INFO_SLAVE_DATA (`ip -d link`: hairpin on, isolated on, learning on, state
    forwarding); all None for no bridge port."""
    attrs = attributes(info, 0, len(info), "strict")
    slave = attrs.get(IFLA_INFO_SLAVE_KIND)
    data = attrs.get(IFLA_INFO_SLAVE_DATA)
    if slave is None or cstr(slave) != "bridge" or data is None:
        return _BridgePort(None, None, None, None)
    port = attributes(data, 0, len(data), "strict")
    hairpin, isolated, learning = (
        _flag(port.get(key))
        for key in (IFLA_BRPORT_MODE, IFLA_BRPORT_ISOLATED, IFLA_BRPORT_LEARNING)
    )
    state = port.get(IFLA_BRPORT_STATE)
    return _BridgePort(hairpin, isolated, learning, _port_state(state[0]) if state else None)


def _flag(value: bytes | None) -> bool | None:
    """A u8 switch attribute: None when absent."""
    return bool(value[0]) if value else None


def _port_state(value: int) -> str:
    return _PORT_STATES[value] if value < len(_PORT_STATES) else str(value)


def _stats64(data: bytes) -> LinkStats | None:
    """struct rtnl_link_stats64: as many u64 counters as the kernel sent (ip -s -s link)."""
    count = min(len(data) // 8, len(_STATS_FIELDS))
    if count == 0:
        return None
    values = struct.unpack_from(f"={count}Q", data)
    return LinkStats(**dict(zip(_STATS_FIELDS, values, strict=False)))


def _xdp(data: bytes) -> Xdp | None:
    """IFLA_XDP: the attach mode and program id, when a program is attached."""
    a = nested(data, "strict")
    attached = a.get(IFLA_XDP_ATTACHED)
    if not attached or attached[0] == 0:
        return None
    prog_id = a.get(IFLA_XDP_PROG_ID)
    return Xdp(
        mode=XDP_MODES.get(attached[0], str(attached[0])),
        program=BpfProgram(id=u32(prog_id), type="xdp")
        if prog_id is not None and len(prog_id) >= 4
        else None,
    )


class _BridgeNfCalls(NamedTuple):
    """A bridge's own br_netfilter switches (None: no bridge, or the kernel did not say)."""

    iptables: bool | None
    ip6tables: bool | None


def _linkinfo(info: bytes) -> tuple[str | None, Vxlan | None, _BridgeNfCalls]:
    """A link's kind, its VXLAN settings, and a bridge's own br_netfilter switches."""
    attrs = attributes(info, 0, len(info), "strict")
    kind_raw = attrs.get(IFLA_INFO_KIND)
    kind = cstr(kind_raw) if kind_raw is not None else None
    data = attrs.get(IFLA_INFO_DATA)
    if kind == "vxlan" and data is not None:
        return kind, _vxlan(data), _BridgeNfCalls(None, None)
    if kind == "bridge" and data is not None:
        return kind, None, _bridge_nf_calls(data)
    return kind, None, _BridgeNfCalls(None, None)


def _bridge_nf_calls(data: bytes) -> _BridgeNfCalls:
    """IFLA_BR_NF_CALL_IPTABLES and _IP6TABLES (`ip -d link`: nf_call_iptables 1)."""
    a = attributes(data, 0, len(data), "strict")
    return _BridgeNfCalls(
        _flag(a.get(IFLA_BR_NF_CALL_IPTABLES)), _flag(a.get(IFLA_BR_NF_CALL_IP6TABLES))
    )


def _vxlan(data: bytes) -> Vxlan:
    a = attributes(data, 0, len(data), "strict")
    vni = a.get(IFLA_VXLAN_ID)
    port = a.get(IFLA_VXLAN_PORT)  # network byte order
    local = a.get(IFLA_VXLAN_LOCAL) or a.get(IFLA_VXLAN_LOCAL6)
    group = a.get(IFLA_VXLAN_GROUP) or a.get(IFLA_VXLAN_GROUP6)
    dev = a.get(IFLA_VXLAN_LINK)
    learning = a.get(IFLA_VXLAN_LEARNING)
    return Vxlan(
        vni=u32(vni) if vni is not None and len(vni) >= 4 else 0,
        port=_BE16.unpack_from(port)[0] if port is not None and len(port) >= 2 else None,
        local=_nonzero_ip(local),
        group=_nonzero_ip(group),
        dev=u32(dev) if dev is not None and len(dev) >= 4 and u32(dev) else None,
        learning=bool(learning[0]) if learning else True,
        flags=tuple(name for attr, name in _VXLAN_FLAGS if (v := a.get(attr)) and v[0]),
    )


def _nonzero_ip(data: bytes | None) -> str | None:
    # The kernel reports an unset local/group as all zeros; `ip` omits it.
    if not data or not any(data):
        return None
    return ip_str(data)


# --- addresses -----------------------------------------------------------------------------


def decode_addresses(buffers: Iterable[bytes]) -> list[tuple[int, Address]]:
    """RTM_NEWADDR messages -> (ifindex, Address) pairs."""
    out: list[tuple[int, Address]] = []
    unpack = _IFADDRMSG.unpack_from
    for buf, off, end in payloads(buffers, RTM_NEWADDR, 8, "strict"):
        family, prefixlen, header_flags, scope, index = unpack(buf, off)
        if family not in _FAMILY_LEN:
            continue
        a = attributes(buf, off + 8, end, "strict")
        # IFA_LOCAL is the interface's own address; IFA_ADDRESS is the peer on
        # point-to-point links and equals IFA_LOCAL otherwise (iproute2 does the same).
        raw = a.get(IFA_LOCAL) or a.get(IFA_ADDRESS)
        addr = ip_str(raw) if raw is not None else None
        if addr is None:
            continue
        label = a.get(IFA_LABEL)
        flags = a.get(IFA_FLAGS)
        out.append(
            (
                index,
                Address(
                    family=4 if family == AF_INET else 6,
                    address=addr,
                    prefixlen=prefixlen,
                    scope=SCOPES.get(scope, str(scope)),
                    label=cstr(label) if label is not None else None,
                    flags=_names(
                        u32(flags) if flags is not None and len(flags) >= 4 else header_flags,
                        _IFA_FLAGS,
                    ),
                ),
            )
        )
    return out


# --- routes --------------------------------------------------------------------------------


def decode_routes(buffers: Iterable[bytes], netns: int) -> list[Route]:
    """RTM_NEWROUTE messages of every table -> Route objects (IPv4 and IPv6 only)."""
    out: list[Route] = []
    unpack = _RTMSG.unpack_from
    for buf, off, end in payloads(buffers, RTM_NEWROUTE, 12, "strict"):
        family, dst_len, _src_len, tos, table, proto, scope, rtype, rflags = unpack(buf, off)
        if family not in _FAMILY_LEN or rflags & RTM_F_CLONED:
            continue  # multicast routing families, MPLS, and route cache entries
        a = attributes(buf, off + 12, end, "strict")
        tbl = a.get(RTA_TABLE)
        dst = a.get(RTA_DST)
        oif = a.get(RTA_OIF)
        prio = a.get(RTA_PRIORITY)
        prefsrc = a.get(RTA_PREFSRC)
        mp = a.get(RTA_MULTIPATH)
        dst_ip = ip_str(dst) if dst is not None else None
        out.append(
            Route(
                netns=netns,
                family=4 if family == AF_INET else 6,
                table=u32(tbl) if tbl is not None and len(tbl) >= 4 else table,
                type=ROUTE_TYPES.get(rtype, str(rtype)),
                dst=f"{dst_ip or _default_dst(family)}/{dst_len}",
                gateway=_gateway(a),
                dev=u32(oif) if oif is not None and len(oif) >= 4 else None,
                prefsrc=ip_str(prefsrc) if prefsrc is not None else None,
                metric=u32(prio) if prio is not None and len(prio) >= 4 else None,
                scope=SCOPES.get(scope, str(scope)),
                protocol=PROTOCOLS.get(proto, str(proto)),
                flags=_names(rflags, _RTNH_FLAGS),
                tos=tos,
                multipath=_multipath(mp) if mp is not None else (),
            )
        )
    return out


def _gateway(a: dict[int, bytes]) -> str | None:
    gw = a.get(RTA_GATEWAY)
    if gw is not None:
        return ip_str(gw)
    via = a.get(RTA_VIA)  # struct rtvia: u16 family + address (IPv4 route via IPv6)
    if via is not None and len(via) > 2:
        return ip_str(via[2:])
    return None


def _multipath(data: bytes) -> tuple[Nexthop, ...]:
    hops: list[Nexthop] = []
    off = 0
    end = len(data)
    while off + 8 <= end:
        length, flags, hops_weight, ifindex = _RTNEXTHOP.unpack_from(data, off)
        if length < 8 or off + length > end:
            raise MalformedMessage(f"nexthop length {length} at {off} overruns {end}")
        a = attributes(data, off + 8, off + length, "strict")
        hops.append(
            Nexthop(
                gateway=_gateway(a),
                dev=ifindex or None,
                weight=hops_weight + 1,  # rtnh_hops holds weight - 1
                flags=_names(flags, _RTNH_FLAGS),
            )
        )
        off += (length + 3) & ~3
    return tuple(hops)


# --- policy rules --------------------------------------------------------------------------


def decode_rules(buffers: Iterable[bytes], netns: int) -> list[Rule]:
    """RTM_NEWRULE messages -> Rule objects (IPv4 and IPv6 only)."""
    out: list[Rule] = []
    unpack = _RTMSG.unpack_from  # struct fib_rule_hdr has the same layout as rtmsg
    for buf, off, end in payloads(buffers, RTM_NEWRULE, 12, "strict"):
        family, dst_len, src_len, tos, table, _r1, _r2, action, rflags = unpack(buf, off)
        if family not in _FAMILY_LEN:
            continue
        a = attributes(buf, off + 12, end, "strict")
        prio = a.get(FRA_PRIORITY)
        tbl = a.get(FRA_TABLE)
        mark = a.get(FRA_FWMARK)
        mask = a.get(FRA_FWMASK)
        iif = a.get(FRA_IIFNAME)
        oif = a.get(FRA_OIFNAME)
        goto = a.get(FRA_GOTO)
        table_id = u32(tbl) if tbl is not None and len(tbl) >= 4 else table
        out.append(
            Rule(
                netns=netns,
                family=4 if family == AF_INET else 6,
                priority=u32(prio) if prio is not None and len(prio) >= 4 else 0,
                action=RULE_ACTIONS.get(action, str(action)),
                table=table_id or None,
                src=_prefix(a.get(FRA_SRC), src_len, family),
                dst=_prefix(a.get(FRA_DST), dst_len, family),
                fwmark=u32(mark) if mark is not None and len(mark) >= 4 else None,
                fwmask=u32(mask) if mask is not None and len(mask) >= 4 else None,
                iif=cstr(iif) if iif is not None else None,
                oif=cstr(oif) if oif is not None else None,
                invert=bool(rflags & FIB_RULE_INVERT),
                goto=u32(goto) if goto is not None and len(goto) >= 4 else None,
                tos=tos,
                **_rule_options(a),
            )
        )
    return out


def _rule_options(a: dict[int, bytes]) -> dict[str, Any]:
    """The selectors and options a rule carries beyond addresses, marks and devices."""
    # fib_nl_fill_rule() sends each only when set; suppress_* are u32 with -1 meaning unset.
    out: dict[str, Any] = {}
    proto = a.get(FRA_IP_PROTO)
    if proto:
        out["ipproto"] = proto[0]
    for key, attr in (("sport", FRA_SPORT_RANGE), ("dport", FRA_DPORT_RANGE)):
        ports = a.get(attr)  # struct fib_rule_port_range: u16 start, u16 end
        if ports is not None and len(ports) >= 4:
            out[key] = tuple(_PORT_RANGE.unpack_from(ports))
    uids = a.get(FRA_UID_RANGE)  # struct fib_rule_uid_range: u32 start, u32 end
    if uids is not None and len(uids) >= 8:
        out["uidrange"] = tuple(_UID_RANGE.unpack_from(uids))
    tun = a.get(FRA_TUN_ID)  # __be64
    if tun is not None and len(tun) >= 8:
        out["tun_id"] = int.from_bytes(tun[:8], "big")
    l3mdev = a.get(FRA_L3MDEV)
    if l3mdev:
        out["l3mdev"] = bool(l3mdev[0])
    for key, attr in (
        ("suppress_prefixlength", FRA_SUPPRESS_PREFIXLEN),
        ("suppress_ifgroup", FRA_SUPPRESS_IFGROUP),
    ):
        value = a.get(attr)
        if value is not None and len(value) >= 4 and u32(value) != 0xFFFFFFFF:
            out[key] = u32(value)
    flow = a.get(FRA_FLOW)  # u32 tclassid, sent only when not 0 (fib4_rule_fill)
    if flow is not None and len(flow) >= 4 and u32(flow):
        out["realms"] = u32(flow)
    who = a.get(FRA_PROTOCOL)
    if who:
        out["protocol"] = PROTOCOLS.get(who[0], str(who[0]))
    return out


def _prefix(data: bytes | None, length: int, family: int) -> str | None:
    if data is not None:
        ip = ip_str(data)
        return f"{ip}/{length}" if ip is not None else None
    if length:
        return f"{_default_dst(family)}/{length}"
    return None


# --- neighbours and bridge FDB --------------------------------------------------------------


def decode_neighbours(buffers: Iterable[bytes], netns: int) -> list[Neighbour]:
    """RTM_NEWNEIGH messages of AF_INET/AF_INET6 -> Neighbour objects."""
    out: list[Neighbour] = []
    unpack = _NDMSG.unpack_from
    for buf, off, end in payloads(buffers, RTM_NEWNEIGH, 12, "strict"):
        family, index, state, nflags, _ntype = unpack(buf, off)
        if family not in _FAMILY_LEN:
            continue
        a = attributes(buf, off + 12, end, "strict")
        dst = a.get(NDA_DST)
        dst_ip = ip_str(dst) if dst is not None else None
        if dst_ip is None:
            continue
        out.append(
            Neighbour(
                netns=netns,
                family=4 if family == AF_INET else 6,
                ifindex=index,
                dst=dst_ip,
                lladdr=mac_str(a.get(NDA_LLADDR)),
                state=_names(state, _NUD_ORDER) or (("NONE",) if state == 0 else ()),
                flags=_names(nflags, _NEIGH_FLAGS),
            )
        )
    return out


def fdb_state(state: int) -> tuple[str, ...]:
    """FDB entry state as `bridge fdb` prints it (permanent, static, stale or dynamic)."""
    if state & NUD_PERMANENT:
        return ("permanent",)
    if state & NUD_NOARP:
        return ("static",)
    if state & NUD_STALE:
        return ("stale",)
    return ()


def decode_fdb(buffers: Iterable[bytes], netns: int) -> list[FdbEntry]:
    """RTM_NEWNEIGH messages of AF_BRIDGE (bridge and VXLAN FDB) -> FdbEntry objects."""
    out: list[FdbEntry] = []
    unpack = _NDMSG.unpack_from
    for buf, off, end in payloads(buffers, RTM_NEWNEIGH, 12, "strict"):
        family, index, state, nflags, _ntype = unpack(buf, off)
        if family != AF_BRIDGE:
            continue
        a = attributes(buf, off + 12, end, "strict")
        mac = mac_str(a.get(NDA_LLADDR))
        if mac is None:
            continue
        master = a.get(NDA_MASTER)
        vlan = a.get(NDA_VLAN)
        dst = a.get(NDA_DST)
        out.append(
            FdbEntry(
                netns=netns,
                ifindex=index,
                mac=mac,
                master=u32(master) if master is not None and len(master) >= 4 else None,
                vlan=_U16.unpack_from(vlan)[0] if vlan is not None and len(vlan) >= 2 else None,
                dst=ip_str(dst) if dst is not None else None,
                state=fdb_state(state),
                flags=_names(nflags, _NEIGH_FLAGS),
            )
        )
    return out
