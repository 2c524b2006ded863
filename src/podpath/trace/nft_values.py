"""What an nft expression reads from one packet, and how nft compares it with a value.

Expressions are the structured statements `nft -j` prints (payload, meta, ct, fib,
concat, `&`/`|`/`^`, literals, prefixes, ranges, anonymous and named sets). A selector
reads one typed value from the packet: an address, a number (ports, marks), a name
(protocols, interface names) or a set of flags (ct state/status, tcp flags). What a
snapshot cannot tell (a conntrack mark, a socket owner, a hash) raises `Unknown`, and
what cannot apply to this packet at all (a TCP port of a UDP packet, the input
interface of a locally generated packet) raises `NoMatch`, as the kernel's expression
"breaks" the rule there.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from podpath.trace.matches import MatchEnv
from podpath.trace.model import Packet

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Value = int | str | Address | frozenset[str] | tuple[Any, ...]

# IP protocol numbers nft may print instead of names (and the reverse).
PROTOCOLS = {"icmp": 1, "tcp": 6, "udp": 17, "sctp": 132, "ipv6-icmp": 58, "icmpv6": 58}
_PORT_PROTOS = frozenset({"tcp", "udp", "sctp"})
_ADDRESS_FIELDS = frozenset({"saddr", "daddr"})
# Conntrack status bits a snapshot cannot know for one probe packet.
_UNKNOWABLE_STATUS = frozenset({"assured", "expected", "dying", "untracked"})


class Unknown(Exception):
    """A snapshot cannot decide this expression; the message says why."""


class NoMatch(Exception):
    """The expression cannot apply to this packet: the rule does not match."""


@dataclass(frozen=True)
class Unread:
    """A part of a concatenation a snapshot cannot read (why not); the parts read may still
    decide the comparison: `ip daddr . meta l4proto . th dport` of an ICMP packet (th dport
    is then its checksum) equals no key whose protocol is tcp or udp."""

    why: str


@dataclass(frozen=True)
class Where:
    """What an expression can see besides the packet: interfaces, addresses, conntrack."""

    matches: MatchEnv
    hook: str  # lower case: prerouting, input, forward, output, postrouting


def address(text: str) -> Address | None:
    """An IPv4/IPv6 address, or None."""
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _family(p: Packet) -> int:
    return 6 if ":" in p.dst else 4


def read(expr: Any, p: Packet, where: Where) -> Value:
    """The value a selector expression reads from the packet."""
    if isinstance(expr, dict) and len(expr) == 1:
        ((kind, body),) = expr.items()
        reader = _READERS.get(kind)
        if reader is not None and (isinstance(body, (dict, list))):
            return reader(body, p, where)  # type: ignore[no-any-return]
        raise Unknown(f"{kind} expressions are not modelled")
    if isinstance(expr, bool):
        raise Unknown("a boolean is not a selector")
    if isinstance(expr, int):
        return expr
    if isinstance(expr, str):
        return expr
    raise Unknown("an expression of unknown shape")


def _payload(body: dict[str, Any], p: Packet, where: Where) -> Value:
    proto, field = body.get("protocol"), body.get("field")
    if proto is None:
        raise Unknown("raw payload offsets are not modelled")
    fam = _family(p)
    if proto in ("ip", "ip6"):
        if (proto == "ip") != (fam == 4):
            raise NoMatch()  # the other IP version's header
        if field in _ADDRESS_FIELDS:
            text = p.src if field == "saddr" else p.dst
            if text is None:
                raise Unknown("the source address is not chosen yet")
            found = address(text)
            if found is None:
                raise Unknown(f"{text!r} is not an address")
            return found
        if field in ("protocol", "nexthdr"):
            return p.proto
        raise Unknown(f"{proto} {field} is not modelled")
    if proto in ("th", "tcp", "udp", "sctp"):
        if proto == "th" and p.proto not in _PORT_PROTOS:
            raise Unknown(f"th {field} of an {p.proto} packet reads bytes of its own header")
        if proto != "th" and p.proto != proto:
            raise NoMatch()
        if field == "dport" or field == "sport":
            port = p.dport if field == "dport" else p.sport
            if port is None:
                raise Unknown(f"the packet's {field} is not known")
            return port
        if proto == "tcp" and field == "flags":
            return frozenset({"syn"} if p.direction == "original" else {"syn", "ack"})
        raise Unknown(f"{proto} {field} is not modelled")
    if proto in ("icmp", "icmpv6"):
        if p.proto not in ("icmp", "icmpv6", "ipv6-icmp"):
            raise NoMatch()
        if field == "type":
            return "echo-request" if p.direction == "original" else "echo-reply"
        raise Unknown(f"{proto} {field} is not modelled")
    raise Unknown(f"{proto} {field} is not modelled")


def _meta(body: dict[str, Any], p: Packet, where: Where) -> Value:
    key = body.get("key")
    env = where.matches
    if key == "mark":
        return p.mark
    if key == "l4proto":
        return p.proto
    if key == "nfproto":
        return "ipv4" if _family(p) == 4 else "ipv6"
    if key == "protocol":
        return "ip" if _family(p) == 4 else "ip6"
    if key in ("iifname", "iif"):
        if env.in_iface is None:
            raise NoMatch()  # no input device at this hook: the expression breaks
        return env.in_iface
    if key in ("oifname", "oif"):
        if env.out_iface is None:
            raise NoMatch()
        return env.out_iface
    if key == "pkttype":
        if where.hook in ("output", "postrouting") and p.direction == "original":
            raise Unknown("the packet type of a locally sent packet is not modelled")
        return "host"
    raise Unknown(f"meta {key} is not modelled")


def _ct(body: dict[str, Any], p: Packet, where: Where) -> Value:
    key = body.get("key")
    env = where.matches
    direction = body.get("dir")
    if key == "state":
        return frozenset({p.ct_state.lower()})
    if key == "status":
        flags = set()
        if env.dnat:
            flags.add("dnat")
        if env.snat:
            flags.add("snat")
        if p.direction == "reply":
            flags.update({"confirmed", "seen-reply"})
        return frozenset(flags)
    if key == "direction":
        return p.direction
    if key == "l3proto":
        return "ipv4" if _family(p) == 4 else "ipv6"
    if key == "protocol":
        return p.proto
    if key in ("ip daddr", "ip6 daddr", "daddr") and direction == "original":
        text = env.orig_dst or p.dst if p.direction == "original" else None
        found = address(text) if text else None
        if found is None:
            raise Unknown("the original destination is not known")
        return found
    if key == "proto-dst" and direction == "original" and p.direction == "original":
        port = env.orig_dport if env.dnat else p.dport
        if port is None:
            raise Unknown("the original destination port is not known")
        return port
    raise Unknown(
        f"ct {direction + ' ' if direction else ''}{key} is kernel state a snapshot lacks"
    )


def _fib(body: dict[str, Any], p: Packet, where: Where) -> Value:
    flags = body.get("flags", [])
    flags = flags if isinstance(flags, list) else [flags]
    if body.get("result") != "type" or len(flags) != 1 or flags[0] not in _ADDRESS_FIELDS:
        raise Unknown(f"fib {' . '.join(map(str, flags))} {body.get('result')} is not modelled")
    text = p.src if flags[0] == "saddr" else p.dst
    if text is None:
        raise Unknown("the source address is not chosen yet")
    found = address(text)
    if found is None:
        raise Unknown(f"{text!r} is not an address")
    if text in where.matches.local_addresses or found.is_loopback:
        return "local"
    if found.is_multicast:
        return "multicast"
    if text == "255.255.255.255":
        return "broadcast"
    return "unicast"


def _concat(body: list[Any], p: Packet, where: Where) -> Value:
    return tuple(_read_part(part, p, where) for part in body)


def _read_part(part: Any, p: Packet, where: Where) -> Value | Unread:
    try:
        return read(part, p, where)
    except Unknown as why:
        return Unread(str(why))


def _binop(op: str) -> Any:
    def reader(body: list[Any], p: Packet, where: Where) -> Value:
        if len(body) != 2:
            raise Unknown(f"{op} with {len(body)} operands")
        left, right = read(body[0], p, where), read(body[1], p, where)
        if not isinstance(left, int) or not isinstance(right, int):
            raise Unknown(f"{op} of non-numbers")
        if op == "&":
            return left & right
        if op == "|":
            return left | right
        if op == "^":
            return left ^ right
        if op == "<<":
            return (left << right) & 0xFFFFFFFF
        return left >> right

    return reader


def _numgen(body: dict[str, Any], p: Packet, where: Where) -> Value:
    raise Unknown("numgen outside a verdict map is not modelled")


def _hash(body: dict[str, Any], p: Packet, where: Where) -> Value:
    raise Unknown("a hash of the packet picks this; the choice cannot be known from a snapshot")


_READERS: Mapping[str, Any] = {
    "payload": _payload,
    "meta": _meta,
    "ct": _ct,
    "fib": _fib,
    "concat": _concat,
    "&": _binop("&"),
    "|": _binop("|"),
    "^": _binop("^"),
    "<<": _binop("<<"),
    ">>": _binop(">>"),
    "numgen": _numgen,
    "jhash": _hash,
    "symhash": _hash,
}


# --- comparing ---------------------------------------------------------------------


def equals(value: Value, literal: Any) -> bool:
    """True when a packet value equals (or lies inside) a literal: JSON or an element key."""
    if isinstance(literal, dict) and len(literal) == 1:
        ((kind, body),) = literal.items()
        if kind == "prefix" and isinstance(body, dict):
            return _in_prefix(value, f"{body.get('addr')}/{body.get('len')}")
        if kind == "range" and isinstance(body, list) and len(body) == 2:
            return _in_range(value, body[0], body[1])
        if kind == "concat" and isinstance(body, list):
            return key_matches(value, tuple(body))
        if kind == "elem" and isinstance(body, dict):
            return equals(value, body.get("val"))
        raise Unknown(f"a {kind} value is not modelled")
    if isinstance(value, frozenset):
        return isinstance(literal, str) and literal.lower() in value
    if isinstance(value, tuple):
        return False
    if isinstance(value, int) and not isinstance(value, bool):
        return _int_equals(value, literal)
    if isinstance(value, (ipaddress.IPv4Address, ipaddress.IPv6Address)):
        return _address_equals(value, literal)
    return _name_equals(value, literal)


def key_matches(value: Value, key: tuple[Any, ...]) -> bool:
    """A concatenated packet value against one element key (parts compared one by one).

    A part read differs: no match. Every part read equal but one unread: Unknown."""
    if not isinstance(value, tuple) or len(value) != len(key):
        return False
    pairs = list(zip(value, key, strict=True))
    if not all(equals(v, k) for v, k in pairs if not isinstance(v, Unread)):
        return False
    unread = next((v for v in value if isinstance(v, Unread)), None)
    if unread is not None:
        raise Unknown(unread.why)
    return True


def has_unread(values: tuple[Any, ...]) -> bool:
    """True when a concatenated value holds a part a snapshot cannot read."""
    return any(isinstance(v, Unread) for v in values)


def _int_equals(value: int, literal: Any) -> bool:
    if isinstance(literal, bool):
        return False
    if isinstance(literal, int):
        return value == literal
    if isinstance(literal, str):
        text = literal.strip().lower()
        if text.startswith("0x"):
            return value == int(text, 16)
        if text.isdigit():
            return value == int(text)
        lo, sep, hi = text.partition("-")
        if sep and lo.isdigit() and hi.isdigit():
            return int(lo) <= value <= int(hi)
        raise Unknown(f"{literal!r} is not a number podpath can compare")
    return False


def _address_equals(value: Address, literal: Any) -> bool:
    if not isinstance(literal, str):
        return False
    text = literal.strip()
    if "/" in text:
        return _in_prefix(value, text)
    lo, sep, hi = text.partition("-")
    if sep and address(lo) is not None:
        return _in_range(value, lo, hi)
    other = address(text)
    return other is not None and other == value


def _name_equals(value: Value, literal: Any) -> bool:
    text = str(value).lower()
    if isinstance(literal, int) and not isinstance(literal, bool):
        return PROTOCOLS.get(text) == literal
    if not isinstance(literal, str):
        return False
    want = literal.lower()
    # nft's interface-name wildcard: a trailing `*` (a literal star is written `\*`).
    if want.endswith("*") and not want.endswith("\\*"):
        return text.startswith(want[:-1])
    if want == text:
        return True
    return want in PROTOCOLS and PROTOCOLS.get(text) == PROTOCOLS[want]


def _in_prefix(value: Value, cidr: str) -> bool:
    if not isinstance(value, (ipaddress.IPv4Address, ipaddress.IPv6Address)):
        return False
    try:
        return value in ipaddress.ip_network(cidr, strict=False)
    except ValueError:
        return False


def _in_range(value: Value, lo: Any, hi: Any) -> bool:
    if isinstance(value, int) and not isinstance(value, bool):
        try:
            return int(str(lo), 0) <= value <= int(str(hi), 0)
        except ValueError:
            return False
    if isinstance(value, (ipaddress.IPv4Address, ipaddress.IPv6Address)):
        low, high = address(str(lo)), address(str(hi))
        return (
            low is not None
            and high is not None
            and low.version == high.version == value.version
            and int(low) <= int(value) <= int(high)
        )
    return False


def flags_of(value: Value) -> frozenset[str]:
    """The flags of a ct state/status or tcp flags value; Unknown for another kind."""
    if isinstance(value, frozenset):
        return value
    raise Unknown("a flag comparison of a value that is not flags")


def check_knowable(value: Value, literal: Any) -> None:
    """Raise Unknown when a ct status comparison asks for a bit a snapshot cannot know."""
    items = literal if isinstance(literal, list) else [literal]
    for item in items:
        if isinstance(item, str) and item in _UNKNOWABLE_STATUS:
            raise Unknown(f"ct status {item} is kernel state a snapshot lacks")


def normal(value: Value) -> str:
    """A packet value as an element key prints (for exact lookups in big sets)."""
    if isinstance(value, (ipaddress.IPv4Address, ipaddress.IPv6Address)):
        return str(value)
    if isinstance(value, int):
        return str(value)
    return str(value).lower()


def normal_key(text: str) -> str:
    """An element key part, normalised like `normal` does packet values."""
    text = text.strip().lower()
    if text.startswith("0x"):
        try:
            return str(int(text, 16))
        except ValueError:
            return text
    return text
