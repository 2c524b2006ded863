"""nft's datatypes: raw register bytes -> the JSON value `nft -j` prints, and set elements.

Each datatype here renders exactly as nft 1.0.6 prints it in JSON (checked against
`nft -j list table` in tests/collectors/test_nft_netlink.py); a value this module has
no exact rendering for raises Unsupported, and the caller falls back to nft for the
whole table. Names and numbers are nft's (src/datatype.c, ct.c, meta.c, fib.c,
proto.c); the enum of datatype ids is nft's `enum datatypes`, which is also what the
kernel stores in NFTA_SET_KEY_TYPE (concatenations: 6 bits per component).
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from podpath.netfilter.nft_flags import FLAG_BITS


class Unsupported(Exception):
    """Something this reader cannot render exactly as nft does: fall back to nft."""


# nft's datatype ids (enum datatypes).
TYPE_VERDICT = 1
TYPE_NFPROTO = 2
TYPE_INTEGER = 4
TYPE_IPADDR = 7
TYPE_IP6ADDR = 8
TYPE_ETHERADDR = 9
TYPE_INET_PROTOCOL = 12
TYPE_INET_SERVICE = 13
TYPE_ICMP_TYPE = 14
TYPE_TCP_FLAG = 15
TYPE_MARK = 19
TYPE_IFINDEX = 20
TYPE_CT_STATE = 26
TYPE_CT_DIR = 27
TYPE_CT_STATUS = 28
TYPE_ICMP6_TYPE = 29
TYPE_PKTTYPE = 31
TYPE_FIB_ADDR = 38
TYPE_BOOLEAN = 39
TYPE_IFNAME = 41
TYPE_BITS = 6  # concatenated set key types: 6 bits per component

BIG, HOST = "big", "little"  # byte order of a type's register representation


def _symbols(pairs: dict[str, int]) -> dict[int, str]:
    return {v: k for k, v in pairs.items()}


_NFPROTO = _symbols({"ipv4": 2, "ipv6": 10})
_CT_STATE = _symbols(FLAG_BITS[("ct", "state")])
_CT_STATUS = _symbols(FLAG_BITS[("ct", "status")])
_CT_DIR = _symbols({"original": 0, "reply": 1})
_PKTTYPE = _symbols({"host": 0, "broadcast": 1, "multicast": 2, "other": 3})
_FIB_ADDR = _symbols(
    {
        "unspec": 0,
        "unicast": 1,
        "local": 2,
        "broadcast": 3,
        "anycast": 4,
        "multicast": 5,
        "blackhole": 6,
        "unreachable": 7,
        "prohibit": 8,
    }
)
_TCP_FLAG = _symbols(FLAG_BITS[("tcp", "flags")])
_ICMP_TYPE = _symbols(
    {
        "echo-reply": 0,
        "destination-unreachable": 3,
        "source-quench": 4,
        "redirect": 5,
        "echo-request": 8,
        "router-advertisement": 9,
        "router-solicitation": 10,
        "time-exceeded": 11,
        "parameter-problem": 12,
        "timestamp-request": 13,
        "timestamp-reply": 14,
        "info-request": 15,
        "info-reply": 16,
        "address-mask-request": 17,
        "address-mask-reply": 18,
    }
)
_ICMP6_TYPE = _symbols(
    {
        "destination-unreachable": 1,
        "packet-too-big": 2,
        "time-exceeded": 3,
        "parameter-problem": 4,
        "echo-request": 128,
        "echo-reply": 129,
        "mld-listener-query": 130,
        "mld-listener-report": 131,
        "mld-listener-done": 132,
        "nd-router-solicit": 133,
        "nd-router-advert": 134,
        "nd-neighbor-solicit": 135,
        "nd-neighbor-advert": 136,
        "nd-redirect": 137,
        "router-renumbering": 138,
        "ind-neighbor-solicit": 141,
        "ind-neighbor-advert": 142,
        "mld2-listener-report": 143,
    }
)


@dataclass(frozen=True)
class Datatype:
    """One nft datatype: its name, register byte order, size and JSON rendering."""

    id: int
    name: str
    order: str
    bits: int  # 0: variable (integer, whose length comes from the expression)
    render: Callable[[bytes, str], Any]
    bitmask: bool = False  # flag types: `ct state new` compiles to `& mask != 0`


def _uint(raw: bytes, order: str) -> int:
    return int.from_bytes(raw, order)  # type: ignore[arg-type]


def _ipv4(raw: bytes, _order: str) -> str:
    if len(raw) != 4:
        raise Unsupported("ipv4_addr of odd length")
    return socket.inet_ntop(socket.AF_INET, raw)


def _ipv6(raw: bytes, _order: str) -> str:
    if len(raw) != 16:
        raise Unsupported("ipv6_addr of odd length")
    return socket.inet_ntop(socket.AF_INET6, raw)


def _ether(raw: bytes, _order: str) -> str:
    if len(raw) != 6:
        raise Unsupported("ether_addr of odd length")
    return ":".join(f"{b:02x}" for b in raw)


def _symbol(table: dict[int, str]) -> Callable[[bytes, str], Any]:
    def render(raw: bytes, order: str) -> Any:
        name = table.get(_uint(raw, order))
        if name is None:
            raise Unsupported(f"value {raw.hex()} has no symbol")
        return name

    return render


def _flags(table: dict[int, str]) -> Callable[[bytes, str], Any]:
    """A bitmask: one name, or a list of names in bit order (nft's symbolic JSON)."""

    def render(raw: bytes, order: str) -> Any:
        value = _uint(raw, order)
        names = [name for bit, name in sorted(table.items()) if bit and value & bit == bit]
        covered = 0
        for bit, _ in table.items():
            if value & bit == bit:
                covered |= bit
        if covered != value or not names:
            exact = table.get(value)
            if exact is None:
                raise Unsupported(f"flags {raw.hex()} have no names")
            return exact
        return names[0] if len(names) == 1 else names

    return render


@cache
def _protocols() -> dict[int, str]:
    """Protocol numbers -> official names, as glibc's getprotobynumber reads /etc/protocols.

    nft names protocols through getprotobynumber in its own mount namespace, which is
    the collector's: reading the same file gives the same names (first entry wins).
    """
    names: dict[int, str] = {}
    try:
        text = Path("/etc/protocols").read_text(errors="replace")
    except OSError:
        return names
    for line in text.splitlines():
        fields = line.split("#", 1)[0].split()
        if len(fields) >= 2 and fields[1].isdigit():
            names.setdefault(int(fields[1]), fields[0])
    return names


def _proto(raw: bytes, order: str) -> Any:
    value = _uint(raw, order)
    return _protocols().get(value, value)


def _service(raw: bytes, _order: str) -> int:
    return int.from_bytes(raw, "big")


def _ifname(raw: bytes, _order: str) -> str:
    text = raw.split(b"\0", 1)[0]
    try:
        name = text.decode("ascii")
    except UnicodeDecodeError as exc:
        raise Unsupported("non-ASCII interface name") from exc
    if not name.isprintable() or '"' in name or "\\" in name:
        raise Unsupported("interface name nft would escape")
    return name


def _ifindex(raw: bytes, order: str) -> str:
    index = _uint(raw, order)
    try:
        # nft resolves the index in its own network namespace: the collector's.
        return socket.if_indextoname(index)
    except OSError:
        return str(index)


def _boolean(raw: bytes, order: str) -> bool:
    value = _uint(raw, order)
    if value not in (0, 1):
        raise Unsupported("boolean out of range")
    return bool(value)


DATATYPES: dict[int, Datatype] = {
    t.id: t
    for t in (
        Datatype(TYPE_NFPROTO, "nf_proto", HOST, 8, _symbol(_NFPROTO)),
        Datatype(TYPE_INTEGER, "integer", HOST, 0, _uint),
        Datatype(TYPE_IPADDR, "ipv4_addr", BIG, 32, _ipv4),
        Datatype(TYPE_IP6ADDR, "ipv6_addr", BIG, 128, _ipv6),
        Datatype(TYPE_ETHERADDR, "ether_addr", BIG, 48, _ether),
        Datatype(TYPE_INET_PROTOCOL, "inet_proto", BIG, 8, _proto),
        Datatype(TYPE_INET_SERVICE, "inet_service", BIG, 16, _service),
        Datatype(TYPE_ICMP_TYPE, "icmp_type", BIG, 8, _symbol(_ICMP_TYPE)),
        Datatype(TYPE_TCP_FLAG, "tcp_flag", BIG, 8, _flags(_TCP_FLAG), bitmask=True),
        Datatype(TYPE_MARK, "mark", HOST, 32, _uint),
        Datatype(TYPE_IFINDEX, "iface_index", HOST, 32, _ifindex),
        Datatype(TYPE_CT_STATE, "ct_state", HOST, 32, _flags(_CT_STATE), bitmask=True),
        Datatype(TYPE_CT_DIR, "ct_dir", HOST, 8, _symbol(_CT_DIR)),
        Datatype(TYPE_CT_STATUS, "ct_status", HOST, 32, _flags(_CT_STATUS), bitmask=True),
        Datatype(TYPE_ICMP6_TYPE, "icmpv6_type", BIG, 8, _symbol(_ICMP6_TYPE)),
        Datatype(TYPE_PKTTYPE, "pkt_type", HOST, 8, _symbol(_PKTTYPE)),
        Datatype(TYPE_FIB_ADDR, "fib_addrtype", HOST, 32, _symbol(_FIB_ADDR)),
        Datatype(TYPE_BOOLEAN, "boolean", HOST, 1, _boolean),
        Datatype(TYPE_IFNAME, "ifname", HOST, 128, _ifname),
    )
}


def datatype(type_id: int) -> Datatype:
    """A datatype this module renders exactly; Unsupported for any other."""
    found = DATATYPES.get(type_id)
    if found is None:
        raise Unsupported(f"datatype {type_id}")
    return found


def render(dtype: Datatype, raw: bytes, order: str | None = None) -> Any:
    """The JSON value nft prints for `raw` (register bytes) of this type."""
    return dtype.render(raw, order or dtype.order)


def split_concat(type_id: int) -> list[Datatype]:
    """The component datatypes of a (possibly concatenated) set key type, in order."""
    parts: list[Datatype] = []
    value = type_id
    while value:
        parts.append(datatype(value & ((1 << TYPE_BITS) - 1)))
        value >>= TYPE_BITS
    if not parts:
        raise Unsupported("set without a key type")
    parts.reverse()
    return parts


def verdict_json(code: int, chain: str | None) -> dict[str, Any]:
    """A verdict as nft prints it: {"accept": null}, {"jump": {"target": "x"}}..."""
    name = _VERDICTS.get(code)
    if name is None:
        raise Unsupported(f"verdict {code}")
    if name in ("jump", "goto"):
        if chain is None:
            raise Unsupported("jump without a chain name")
        return {name: {"target": chain}}
    return {name: None}


# NF_DROP 0, NF_ACCEPT 1, NFT_CONTINUE -1, NFT_JUMP -3, NFT_GOTO -4, NFT_RETURN -5.
_VERDICTS = {0: "drop", 1: "accept", -1: "continue", -3: "jump", -4: "goto", -5: "return"}
