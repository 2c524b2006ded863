"""Rule expressions (kernel bytecode) -> the libnftables JSON statements `nft -j` prints.

nft stores a rule as register operations (`payload load 4b @ network header + 16 =>
reg 1`, `cmp eq reg 1 0x0100600a`); listing it, nft "delinearizes" them back into
statements (`ip daddr 10.96.0.1`). This module does the same for the expression
kinds and statement shapes nft 1.0.6 prints in a way it reproduces exactly, and
raises Unsupported for everything else, so the caller falls back to `nft -j` for the
whole table rather than show a wrong rule.

What nft does and this module mirrors (each shape is checked against nft's own output
in tests/collectors/test_nft_netlink.py):
- register tracking: loads into registers, consumed by cmp/range/lookup/set/nat;
  32-bit register slots, so concatenations are consecutive slots;
- payload resolution by protocol context: the network header is the table's family
  (or `meta nfproto` in inet), the transport header is what `meta l4proto` / `ip
  protocol` / `ip6 nexthdr` matched, else the generic `th`;
- implicit dependency removal: the `meta l4proto tcp` nft inserts before `tcp dport`
  (and `meta nfproto ipv4` before `ip saddr` in inet) is dropped when the payload that
  needed it is printed, as nft's payload_dependency_kill does;
- merged payloads split back into fields (`udp sport 68 udp dport 67` is one 4-byte
  load), short loads of addresses as prefixes, `& mask` on addresses as prefixes;
- bitmask types (`ct state new`: `& 0x8 != 0`) as nft's `in` operator;
- bitwise mask/xor pairs as `&`, `|`, `^` (`meta mark set meta mark | 0x4000`);
- two cmps (gte, lte) on one register as a range; lookups into named sets as "@name"
  and into nft's anonymous sets inline; verdict maps, numgen, nat, masquerade.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from podpath.collectors.netlink.wire import attribute_list, nested
from podpath.collectors.nftables.datatypes import (
    BIG,
    DATATYPES,
    HOST,
    TYPE_BOOLEAN,
    TYPE_CT_DIR,
    TYPE_CT_STATE,
    TYPE_CT_STATUS,
    TYPE_FIB_ADDR,
    TYPE_ICMP6_TYPE,
    TYPE_ICMP_TYPE,
    TYPE_IFINDEX,
    TYPE_IFNAME,
    TYPE_INET_PROTOCOL,
    TYPE_INET_SERVICE,
    TYPE_INTEGER,
    TYPE_IP6ADDR,
    TYPE_IPADDR,
    TYPE_MARK,
    TYPE_NFPROTO,
    TYPE_PKTTYPE,
    TYPE_TCP_FLAG,
    Datatype,
    Unsupported,
    render,
    verdict_json,
)
from podpath.collectors.nftables.netlink import (
    be32,
    be64,
    data_value,
    data_verdict,
    string,
    udata,
)
from podpath.collectors.nftables.sets import SetInfo

# ---------------------------------------------------------------- vocabulary

_DT = DATATYPES
_INT = _DT[TYPE_INTEGER]

# NFT_META_* keys this module prints: (nft's name, datatype, register bytes).
_META: dict[int, tuple[str, Datatype, int]] = {
    3: ("mark", _DT[TYPE_MARK], 4),
    4: ("iif", _DT[TYPE_IFINDEX], 4),
    5: ("oif", _DT[TYPE_IFINDEX], 4),
    6: ("iifname", _DT[TYPE_IFNAME], 16),
    7: ("oifname", _DT[TYPE_IFNAME], 16),
    15: ("nfproto", _DT[TYPE_NFPROTO], 1),
    16: ("l4proto", _DT[TYPE_INET_PROTOCOL], 1),
    19: ("pkttype", _DT[TYPE_PKTTYPE], 1),
}
_META_NFPROTO, _META_L4PROTO = 15, 16
# NFT_CT_* keys (original/reply direction-less only).
_CT: dict[int, tuple[str, Datatype, int]] = {
    0: ("state", _DT[TYPE_CT_STATE], 4),
    1: ("direction", _DT[TYPE_CT_DIR], 1),
    2: ("status", _DT[TYPE_CT_STATUS], 4),
    3: ("mark", _DT[TYPE_MARK], 4),
}
# Settable keys: `meta mark set ...`, `ct mark set ...`.
_META_SET = {3: "mark"}
_CT_SET = {3: "mark"}

_CMP_OPS = {0: "==", 1: "!=", 2: "<", 3: "<=", 4: ">", 5: ">="}
_CMP_EQ, _CMP_NEQ, _CMP_LTE, _CMP_GTE = 0, 1, 3, 5
_RANGE_OPS = {0: "==", 1: "!="}

_BASE_LL, _BASE_NETWORK, _BASE_TRANSPORT = 0, 1, 2

# Family numbers (NFPROTO_*) and what the network header is in each.
_NFPROTO_INET, _NFPROTO_IPV4, _NFPROTO_IPV6 = 1, 2, 10
_NETWORK_OF_FAMILY = {_NFPROTO_IPV4: "ip", _NFPROTO_IPV6: "ip6"}
_NETWORK_OF_NFPROTO = {2: "ip", 10: "ip6"}

IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP, IPPROTO_ICMPV6 = 1, 6, 17, 58


@dataclass(frozen=True)
class _Field:
    """A header field: nft's protocol and field name, bit offset and length, datatype."""

    proto: str
    name: str
    offset: int  # bits
    bits: int
    dtype: Datatype
    order: str = BIG


def _fields(proto: str, *spec: tuple[str, int, int, Datatype]) -> tuple[_Field, ...]:
    return tuple(_Field(proto, name, off, bits, dt) for name, off, bits, dt in spec)


_IP4, _IP6 = _DT[TYPE_IPADDR], _DT[TYPE_IP6ADDR]
_SVC, _PROTO = _DT[TYPE_INET_SERVICE], _DT[TYPE_INET_PROTOCOL]
# Byte-aligned fields only: sub-byte ones (ip dscp, ip6 flowlabel...) are Unsupported.
_TEMPLATES: dict[str, tuple[_Field, ...]] = {
    "ip": _fields(
        "ip",
        ("length", 16, 16, _INT),
        ("id", 32, 16, _INT),
        ("frag-off", 48, 16, _INT),
        ("ttl", 64, 8, _INT),
        ("protocol", 72, 8, _PROTO),
        ("checksum", 80, 16, _INT),
        ("saddr", 96, 32, _IP4),
        ("daddr", 128, 32, _IP4),
    ),
    "ip6": _fields(
        "ip6",
        ("length", 32, 16, _INT),
        ("nexthdr", 48, 8, _PROTO),
        ("hoplimit", 56, 8, _INT),
        ("saddr", 64, 128, _IP6),
        ("daddr", 192, 128, _IP6),
    ),
    "tcp": _fields(
        "tcp",
        ("sport", 0, 16, _SVC),
        ("dport", 16, 16, _SVC),
        ("sequence", 32, 32, _INT),
        ("ackseq", 64, 32, _INT),
        ("flags", 104, 8, _DT[TYPE_TCP_FLAG]),
        ("window", 112, 16, _INT),
        ("checksum", 128, 16, _INT),
        ("urgptr", 144, 16, _INT),
    ),
    "udp": _fields(
        "udp",
        ("sport", 0, 16, _SVC),
        ("dport", 16, 16, _SVC),
        ("length", 32, 16, _INT),
        ("checksum", 48, 16, _INT),
    ),
    "icmp": _fields("icmp", ("type", 0, 8, _DT[TYPE_ICMP_TYPE])),
    "icmpv6": _fields("icmpv6", ("type", 0, 8, _DT[TYPE_ICMP6_TYPE])),
    "th": _fields("th", ("sport", 0, 16, _SVC), ("dport", 16, 16, _SVC)),
}
_TRANSPORT_OF_PROTO = {
    IPPROTO_TCP: "tcp",
    IPPROTO_UDP: "udp",
    IPPROTO_ICMP: "icmp",
    IPPROTO_ICMPV6: "icmpv6",
}
_ADDRESS_FIELDS = frozenset({("ip", "saddr"), ("ip", "daddr"), ("ip6", "saddr"), ("ip6", "daddr")})
# The protocol keys whose `==` match nft keeps as a dependency of the next layer.
_PROTOCOL_KEYS = frozenset({("ip", "protocol"), ("ip6", "nexthdr")})

_FIB_RESULTS = {1: "oif", 2: "oifname", 3: "type"}
_FIB_FLAGS = ((1, "saddr"), (2, "daddr"), (4, "mark"), (8, "iif"), (16, "oif"))
_FIB_PRESENT = 32
_NUMGEN_MODES = {0: "inc", 1: "random"}
_DYNSET_OPS = {0: "add", 1: "update", 2: "delete"}
_LIMIT_UNITS = {1: "second", 60: "minute", 3600: "hour", 86400: "day", 604800: "week"}
_LOG_LEVELS = {
    0: "emerg",
    1: "alert",
    2: "crit",
    3: "err",
    5: "notice",
    6: "info",
    7: "debug",
    8: "audit",
}  # 4 (warn) is the default nft does not print
_REJECT_ICMP = {
    0: "net-unreachable",
    1: "host-unreachable",
    2: "prot-unreachable",
    3: "port-unreachable",
    9: "net-prohibited",
    10: "host-prohibited",
    13: "admin-prohibited",
}
_REJECT_ICMPV6 = {
    0: "no-route",
    1: "admin-prohibited",
    3: "addr-unreachable",
    4: "port-unreachable",
    5: "policy-fail",
    6: "reject-route",
}
_REJECT_ICMPX = {0: "no-route", 1: "port-unreachable", 2: "host-unreachable", 3: "admin-prohibited"}
# NF_NAT_RANGE_*: MAP_IPS (1) and PROTO_SPECIFIED (2) follow from the registers.
_NAT_FLAGS = ((4, "random"), (16, "fully-random"), (8, "persistent"))
_NAT_IMPLIED = 1 | 2


# ---------------------------------------------------------------- register values

# What a register holds, as a tuple tagged by its first item, its size (bytes) second:
#   ("p", size, base, offset)                       a payload load
#   ("k", size, json, dtype, order, kind, key)      a meta/ct/numgen/fib key
#   ("i", size, data)                               immediate data
#   ("b", size, src, mask, xor)                     (src & mask) ^ xor
# Tuples, not classes: a rule decodes in a few microseconds, and 72k rules add up.
Value = tuple[Any, ...]


def _slot(reg: int) -> int:
    """A register number as a 32-bit slot: NFT_REG_1..4 are 16 bytes, NFT_REG32_* 4."""
    if 1 <= reg <= 4:
        return (reg - 1) * 4
    if 8 <= reg <= 23:
        return reg - 8
    raise Unsupported(f"register {reg}")


# ---------------------------------------------------------------- raw expressions

# NFTA_EXPR_NAME / NFTA_EXPR_DATA of each NFTA_LIST_ELEM.
_EXPR_NAME, _EXPR_DATA = 1, 2


def _u8(raw: bytes) -> int:
    return raw[0]


def _be16(raw: bytes) -> int:
    return int(struct.unpack(">H", raw)[0])


def _raw_payload(a: dict[int, bytes]) -> tuple[Any, ...]:
    if 5 in a or 1 not in a:  # NFTA_PAYLOAD_SREG: a payload write
        raise Unsupported("payload mangling")
    return ("payload", _slot(be32(a[1])), be32(a[2]), be32(a[3]), be32(a[4]))


def _raw_cmp(a: dict[int, bytes]) -> tuple[Any, ...]:
    return ("cmp", _slot(be32(a[1])), be32(a[2]), data_value(a[3]))


def _raw_range(a: dict[int, bytes]) -> tuple[Any, ...]:
    return ("range", _slot(be32(a[1])), be32(a[2]), data_value(a[3]), data_value(a[4]))


def _raw_meta(a: dict[int, bytes]) -> tuple[Any, ...]:
    if 1 in a:
        return ("meta", _slot(be32(a[1])), be32(a[2]))
    return ("meta_set", _slot(be32(a[3])), be32(a[2]))


def _raw_ct(a: dict[int, bytes]) -> tuple[Any, ...]:
    if 3 in a:
        raise Unsupported("ct with a direction")
    if 1 in a:
        return ("ct", _slot(be32(a[1])), be32(a[2]))
    return ("ct_set", _slot(be32(a[4])), be32(a[2]))


def _raw_bitwise(a: dict[int, bytes]) -> tuple[Any, ...]:
    if 6 in a and be32(a[6]) != 0:  # NFT_BITWISE_LSHIFT / RSHIFT
        raise Unsupported("bitwise shift")
    return (
        "bitwise",
        _slot(be32(a[1])),
        _slot(be32(a[2])),
        be32(a[3]),
        data_value(a[4]),
        data_value(a[5]),
    )


def _raw_lookup(a: dict[int, bytes]) -> tuple[Any, ...]:
    dreg = be32(a[3]) if 3 in a else None
    flags = be32(a[5]) if 5 in a else 0
    if flags & ~1:
        raise Unsupported(f"lookup flags {flags:#x}")
    return (
        "lookup",
        _slot(be32(a[2])),
        string(a[1]),
        None if dreg is None else (-1 if dreg == 0 else _slot(dreg)),
        bool(flags & 1),
    )


def _raw_immediate(a: dict[int, bytes]) -> tuple[Any, ...]:
    dreg = be32(a[1])
    if dreg == 0:
        verdict = data_verdict(a[2])
        if verdict is None:
            raise Unsupported("immediate into the verdict register without a verdict")
        return ("verdict", verdict_json(*verdict))
    return ("imm", _slot(dreg), data_value(a[2]))


def _raw_numgen(a: dict[int, bytes]) -> tuple[Any, ...]:
    mode = _NUMGEN_MODES.get(be32(a[3]))
    if mode is None or set(a) - {1, 2, 3, 4}:
        raise Unsupported("numgen form")
    return ("numgen", _slot(be32(a[1])), be32(a[2]), mode, be32(a[4]) if 4 in a else 0)


def _raw_fib(a: dict[int, bytes]) -> tuple[Any, ...]:
    return ("fib", _slot(be32(a[1])), be32(a[2]), be32(a[3]))


def _raw_counter(a: dict[int, bytes]) -> tuple[Any, ...]:
    return (
        "json",
        {"counter": {"packets": be64(a[2]) if 2 in a else 0, "bytes": be64(a[1]) if 1 in a else 0}},
    )


def _raw_nat(a: dict[int, bytes]) -> tuple[Any, ...]:
    def reg(kind: int) -> int | None:
        return _slot(be32(a[kind])) if kind in a else None

    return (
        "nat",
        be32(a[1]),
        be32(a[2]) if 2 in a else 0,
        reg(3),
        reg(4),
        reg(5),
        reg(6),
        be32(a[7]) if 7 in a else 0,
    )


def _raw_masq(a: dict[int, bytes]) -> tuple[Any, ...]:
    return (
        "masq",
        be32(a[1]) if 1 in a else 0,
        _slot(be32(a[2])) if 2 in a else None,
        _slot(be32(a[3])) if 3 in a else None,
    )


def _raw_redir(a: dict[int, bytes]) -> tuple[Any, ...]:
    return (
        "redir",
        be32(a[3]) if 3 in a else 0,
        _slot(be32(a[1])) if 1 in a else None,
        _slot(be32(a[2])) if 2 in a else None,
    )


def _raw_reject(a: dict[int, bytes]) -> tuple[Any, ...]:
    return ("reject", be32(a[1]), _u8(a[2]) if 2 in a else 0)


def _raw_limit(a: dict[int, bytes]) -> tuple[Any, ...]:
    kind = be32(a[4]) if 4 in a else 0
    unit = _LIMIT_UNITS.get(be64(a[2]))
    if kind != 0 or unit is None:
        raise Unsupported("byte limits or odd limit units")
    body: dict[str, Any] = {"rate": be64(a[1]), "burst": be32(a[3]) if 3 in a else 0, "per": unit}
    flags = be32(a[5]) if 5 in a else 0
    if flags & ~1:
        raise Unsupported(f"limit flags {flags:#x}")
    if flags & 1:
        body["inv"] = True
    return ("json", {"limit": body})


def _raw_log(a: dict[int, bytes]) -> tuple[Any, ...]:
    if be32(a[6]) if 6 in a else 0:
        raise Unsupported("log flags")
    body: dict[str, Any] = {}
    if 2 in a:
        body["prefix"] = _strict(a[2])
    if 1 in a:
        body["group"] = _be16(a[1])
    if 3 in a:
        body["snaplen"] = be32(a[3])
    if 4 in a:
        body["queue-threshold"] = _be16(a[4])
    if 5 in a and be32(a[5]) != 4:
        level = _LOG_LEVELS.get(be32(a[5]))
        if level is None:
            raise Unsupported("log level")
        body["level"] = level
    return ("json", {"log": body or None})


def _raw_dynset(a: dict[int, bytes]) -> tuple[Any, ...]:
    # NFTA_DYNSET_SET_NAME 1, SET_ID 2, OP 3, SREG_KEY 4, TIMEOUT 6, PAD 8, FLAGS 9;
    # SREG_DATA (5) and expressions (7, 10) are map updates and meters: not decoded.
    if set(a) - {1, 2, 3, 4, 6, 8, 9}:
        raise Unsupported("dynset with data or statements")
    if 9 in a and be32(a[9]) != 0:
        raise Unsupported("dynset flags")
    op = _DYNSET_OPS.get(be32(a[3]))
    if op is None:
        raise Unsupported("dynset op")
    return ("dynset", op, _slot(be32(a[4])), string(a[1]), be64(a[6]) if 6 in a else 0)


def _raw_notrack(a: dict[int, bytes]) -> tuple[Any, ...]:
    return ("json", {"notrack": None})


_RAW: dict[str, Callable[[dict[int, bytes]], tuple[Any, ...]]] = {
    "payload": _raw_payload,
    "cmp": _raw_cmp,
    "range": _raw_range,
    "meta": _raw_meta,
    "ct": _raw_ct,
    "bitwise": _raw_bitwise,
    "lookup": _raw_lookup,
    "immediate": _raw_immediate,
    "numgen": _raw_numgen,
    "fib": _raw_fib,
    "counter": _raw_counter,
    "nat": _raw_nat,
    "masq": _raw_masq,
    "redir": _raw_redir,
    "reject": _raw_reject,
    "limit": _raw_limit,
    "log": _raw_log,
    "dynset": _raw_dynset,
    "notrack": _raw_notrack,
}


def _strict(raw: bytes) -> str:
    try:
        return raw.split(b"\0", 1)[0].decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Unsupported("a string that is not UTF-8") from exc


def decode_expr(raw: bytes) -> tuple[Any, ...]:
    """One NFTA_LIST_ELEM (expression name + data) as a flat tuple; Unsupported if unknown."""
    a = nested(raw, "strict")
    name = string(a[_EXPR_NAME])
    decode = _RAW.get(name)
    if decode is None:
        raise Unsupported(f"expression {name}")
    try:
        return decode(nested(a.get(_EXPR_DATA, b""), "strict"))
    except (KeyError, IndexError, struct.error) as exc:
        raise Unsupported(f"expression {name} with missing attributes") from exc


# ---------------------------------------------------------------- statements


SetLookup = Callable[[str], SetInfo]
AnonElements = Callable[[SetInfo], list[Any]]

# Register values of the keys, built once: ("k", size, json, dtype, order, kind, key).
_META_VALUES = {
    key: ("k", size, {"meta": {"key": name}}, dtype, dtype.order, "meta", key)
    for key, (name, dtype, size) in _META.items()
}
_CT_VALUES = {
    key: ("k", size, {"ct": {"key": name}}, dtype, dtype.order, "ct", key)
    for key, (name, dtype, size) in _CT.items()
}
_MARK = _DT[TYPE_MARK]


def _match(op: str, left: Any, right: Any) -> dict[str, Any]:
    return {"match": {"op": op, "left": left, "right": right}}


def _field_json(f: _Field) -> dict[str, Any]:
    return {"payload": {"protocol": f.proto, "field": f.name}}


# Payload resolutions by (protocol, byte offset, byte size): ("fields", f1, f2...) for
# loads covering whole fields, ("short", f) for a shorter load at an address's start.
_RESOLVED: dict[tuple[str, int, int], tuple[Any, ...] | None] = {}


def _resolve(proto: str, offset: int, size: int) -> tuple[Any, ...] | None:
    key = (proto, offset, size)
    if key in _RESOLVED:
        return _RESOLVED[key]
    start, end = 8 * offset, 8 * (offset + size)
    found: tuple[Any, ...] | None = None
    fields: list[_Field] = []
    pos = start
    for f in _TEMPLATES[proto]:
        if (f.proto, f.name) in _ADDRESS_FIELDS and f.offset == start and end < start + f.bits:
            found = ("short", f)
            break
        if f.offset == pos and f.offset + f.bits <= end:
            fields.append(f)
            pos += f.bits
    if found is None and fields and pos == end:
        found = ("fields", *fields)
    _RESOLVED[key] = found
    return found


class Delinearizer:
    """Turns one table's rules into JSON statements; holds what rules refer to.

    `sets` finds a set by name (anonymous ones too), `anon_elements` renders an
    anonymous set's elements for inlining. Decoded expressions are cached by their
    exact bytes: identical bytes always decode to the same thing. The statements
    returned share immutable parts between rules: encode them, do not modify them.
    """

    def __init__(self, family: int, sets: SetLookup, anon_elements: AnonElements) -> None:
        if family not in (_NFPROTO_INET, _NFPROTO_IPV4, _NFPROTO_IPV6):
            raise Unsupported(f"family {family}")
        self.family = family
        self.sets = sets
        self.anon_elements = anon_elements
        self._cache: dict[bytes, tuple[Any, ...]] = {}
        self._rule = _RuleDecoder(self)

    def statements(self, exprs: bytes) -> list[Any]:
        """The JSON statements of one rule's NFTA_RULE_EXPRESSIONS."""
        cache = self._cache
        ops = []
        for raw in attribute_list(exprs, "strict"):
            op = cache.get(raw)
            if op is None:
                op = decode_expr(raw)
                cache[raw] = op
            ops.append(op)
        return self._rule.run(ops)


def rule_comment(userdata: bytes | None) -> str | None:
    """The rule's comment (NFTNL_UDATA_RULE_COMMENT); Unsupported for other user data."""
    if not userdata:
        return None
    ud = udata(userdata)
    if set(ud) - {0}:
        raise Unsupported("rule user data other than a comment")
    return _strict(ud[0]) if 0 in ud else None


class _RuleDecoder:
    """One pass over a rule's expressions: registers in, statements out.

    Statements are resolved as they appear, with the protocol context the statements
    before them set, which is the order nft's rule_parse_postprocess works in.
    """

    def __init__(self, owner: Delinearizer) -> None:
        self.owner = owner
        self.family = owner.family
        self.regs: dict[int, Value] = {}
        self.out: list[Any] = []
        self.network: str | None = None
        self.transport: int | None = None
        # Index in self.out of the statement that set each context, while removable.
        self.net_dep: int | None = None
        self.tp_dep: int | None = None

    def run(self, ops: list[tuple[Any, ...]]) -> list[Any]:
        self.regs = {}
        self.out = []
        self.network = _NETWORK_OF_FAMILY.get(self.family)
        self.transport = self.net_dep = self.tp_dep = None
        i, n = 0, len(ops)
        while i < n:
            op = ops[i]
            kind = op[0]
            if kind == "payload":
                self._put(op[1], ("p", op[4], op[2], op[3]))
            elif kind == "cmp":
                nxt = ops[i + 1] if i + 1 < n else None
                if (
                    op[2] == _CMP_GTE
                    and nxt is not None
                    and nxt[0] == "cmp"
                    and nxt[2] == _CMP_LTE
                    and nxt[1] == op[1]
                ):
                    self._range("==", op[1], op[3], nxt[3])
                    i += 1
                else:
                    self._cmp(op[1], op[2], op[3])
            elif kind == "verdict" or kind == "json":
                self.out.append(op[1])
            elif kind == "meta":
                value = _META_VALUES.get(op[2])
                if value is None:
                    raise Unsupported(f"meta key {op[2]}")
                self._put(op[1], value)
            elif kind == "imm":
                self._put(op[1], ("i", len(op[2]), op[2]))
            else:
                handler = _HANDLERS.get(kind)
                if handler is None:
                    raise Unsupported(f"expression {kind} here")
                handler(self, op)
            i += 1
        out = self.out
        if self.net_dep is not None or self.tp_dep is not None or None in out:
            out = [s for s in out if s is not None]
        return out

    # -- registers -----------------------------------------------------------------

    def _get(self, slot: int) -> Value:
        value = self.regs.get(slot)
        if value is None:
            raise Unsupported("read of an unset register")
        return value

    def _put(self, slot: int, value: Value) -> None:
        regs = self.regs
        end = slot + (value[1] + 3) // 4
        for s in [s for s, v in regs.items() if s < end and s + (v[1] + 3) // 4 > slot]:
            del regs[s]
        regs[slot] = value

    def _ct(self, op: tuple[Any, ...]) -> None:
        value = _CT_VALUES.get(op[2])
        if value is None:
            raise Unsupported(f"ct key {op[2]}")
        self._put(op[1], value)

    def _numgen(self, op: tuple[Any, ...]) -> None:
        _, slot, mod, mode, offset = op
        self._put(
            slot,
            (
                "k",
                4,
                {"numgen": {"mode": mode, "mod": mod, "offset": offset}},
                _INT,
                HOST,
                "numgen",
                0,
            ),
        )

    def _fib(self, op: tuple[Any, ...]) -> None:
        _, slot, result, flags = op
        name = _FIB_RESULTS.get(result)
        if name is None or flags & ~(_FIB_PRESENT | 31):
            raise Unsupported("fib form")
        names = [n for bit, n in _FIB_FLAGS if flags & bit]
        if flags & _FIB_PRESENT:
            dtype, size = _DT[TYPE_BOOLEAN], 4
        elif name == "oifname":
            dtype, size = _DT[TYPE_IFNAME], 16
        elif name == "oif":
            dtype, size = _DT[TYPE_IFINDEX], 4
        else:
            dtype, size = _DT[TYPE_FIB_ADDR], 4
        self._put(
            slot,
            (
                "k",
                size,
                {"fib": {"result": name, "flags": names}},
                dtype,
                dtype.order,
                "fib",
                result,
            ),
        )

    def _bitwise(self, op: tuple[Any, ...]) -> None:
        _, sreg, dreg, size, mask, xor = op
        src = self._get(sreg)
        if src[1] != size or len(mask) != size or len(xor) != size:
            raise Unsupported("bitwise over a part of a register value")
        if src[0] not in ("p", "k"):
            raise Unsupported("bitwise of a computed value")
        self._put(dreg, ("b", size, src, mask, xor))

    # -- payloads and protocol context ---------------------------------------------

    def _proto_of(self, base: int) -> str:
        if base == _BASE_NETWORK:
            if self.network is None:
                raise Unsupported("network header without a protocol context")
            return self.network
        if base == _BASE_TRANSPORT:
            if self.transport is None:
                return "th"
            name = _TRANSPORT_OF_PROTO.get(self.transport)
            if name is None:
                raise Unsupported(f"transport protocol {self.transport}")
            return name
        raise Unsupported(f"payload base {base}")

    def _resolved(self, p: Value) -> tuple[Any, ...]:
        found = _resolve(self._proto_of(p[2]), p[3], p[1])
        if found is None:
            raise Unsupported(f"payload @{p[2]},{8 * p[3]},{8 * p[1]} is no known field")
        return found

    def _field(self, p: Value) -> _Field:
        """The one field a payload load covers (as a key, not in a match)."""
        found = self._resolved(p)
        if found[0] != "fields" or len(found) != 2:
            raise Unsupported("a payload key that is not one field")
        self._used(p[2])
        field: _Field = found[1]
        return field

    def _used(self, base: int) -> None:
        """A payload of `base` was printed: drop the dependency that was only there for it."""
        if base == _BASE_NETWORK and self.net_dep is not None:
            self.out[self.net_dep] = None
            self.net_dep = None
        elif base == _BASE_TRANSPORT and self.tp_dep is not None:
            self.out[self.tp_dep] = None
            self.tp_dep = None
            if self.net_dep is not None:
                self.out[self.net_dep] = None  # icmp/icmpv6 only: see _transport_dep
                self.net_dep = None

    def _network_dep(self, nfproto: int) -> None:
        network = _NETWORK_OF_NFPROTO.get(nfproto)
        if self.net_dep is not None or self.tp_dep is not None or network is None:
            raise Unsupported("a network dependency nft may treat otherwise")
        self.network = network
        self.net_dep = len(self.out) - 1

    def _transport_dep(self, proto: int) -> None:
        if self.tp_dep is not None:
            raise Unsupported("two transport dependencies")
        if self.net_dep is not None:
            # nft drops `meta nfproto ipv4` together with `meta l4proto icmp` (and ipv6
            # with icmpv6); any other pair it may print otherwise: not decoded.
            if (self.network, proto) not in (("ip", IPPROTO_ICMP), ("ip6", IPPROTO_ICMPV6)):
                raise Unsupported("a transport dependency after a network one")
        self.transport = proto
        self.tp_dep = len(self.out) - 1

    def _key_json(self, value: Value) -> tuple[Any, Datatype, str]:
        """JSON of a register value used as a key, its type and byte order."""
        if value[0] == "k":
            return value[2], value[3], value[4]
        if value[0] == "p":
            f = self._field(value)
            return _field_json(f), f.dtype, f.order
        raise Unsupported("key from a computed value")

    # -- relational statements ------------------------------------------------------

    def _cmp(self, slot: int, cmp_op: int, data: bytes) -> None:
        left = self._get(slot)
        op = _CMP_OPS.get(cmp_op)
        if op is None:
            raise Unsupported(f"cmp op {cmp_op}")
        tag = left[0]
        if tag == "b":
            self._masked(op, left, data)
            return
        if tag == "i":
            raise Unsupported("compare of an immediate")
        if len(data) != left[1]:
            if (
                tag == "k"
                and left[3].id == TYPE_IFNAME
                and len(data) < 16
                and op in ("==", "!=")
                and b"\0" not in data
            ):
                right = render(left[3], data) + "*"
                self.out.append(_match(op, left[2], right))
                return
            raise Unsupported("compare of a different length than its value")
        if tag == "p":
            self._payload_cmp(op, left, data)
            return
        self.out.append(_match(op, left[2], left[3].render(data, left[4])))
        if op == "==" and left[5] == "meta":
            if left[6] == _META_NFPROTO and self.family == _NFPROTO_INET:
                self._network_dep(data[0])
            elif left[6] == _META_L4PROTO:
                self._transport_dep(data[0])

    def _payload_cmp(self, op: str, p: Value, data: bytes) -> None:
        found = self._resolved(p)
        base = p[2]
        if found[0] == "short":
            if op not in ("==", "!="):
                raise Unsupported("an order comparison of a partial address")
            self._prefix(op, found[1], base, data, 8 * len(data))
            return
        if len(found) == 2:
            f = found[1]
            self._used(base)
            self.out.append(_match(op, _field_json(f), f.dtype.render(data, f.order)))
            if op == "==" and (f.proto, f.name) in _PROTOCOL_KEYS:
                self._transport_dep(data[0])
            return
        if op != "==":
            raise Unsupported("a merged payload compared with " + op)
        # One load and compare over several fields (nft merges adjacent matches).
        off = 0
        for f in found[1:]:
            size = f.bits // 8
            part = data[off : off + size]
            off += size
            self._used(base)
            self.out.append(_match("==", _field_json(f), f.dtype.render(part, f.order)))
            if (f.proto, f.name) in _PROTOCOL_KEYS:
                self._transport_dep(part[0])

    def _prefix(self, op: str, field: _Field, base: int, data: bytes, plen: int) -> None:
        self._used(base)
        addr = field.dtype.render(data + bytes(field.bits // 8 - len(data)), BIG)
        self.out.append(_match(op, _field_json(field), {"prefix": {"addr": addr, "len": plen}}))

    def _masked(self, op: str, left: Value, data: bytes) -> None:
        """`x & mask OP value`: an address prefix, a flag test (`in`), or `&`."""
        _, size, src, mask, xor = left
        if any(xor) or len(data) != size:
            raise Unsupported("compare of a bitwise result with xor")
        if src[0] == "p":
            found = self._resolved(src)
            field = found[1] if found[0] == "short" or len(found) == 2 else None
            if field is not None and (field.proto, field.name) in _ADDRESS_FIELDS:
                plen = _prefix_len(mask)
                if plen is None or op not in ("==", "!="):
                    raise Unsupported("a non-prefix mask on an address")
                self._prefix(op, field, src[2], data, plen)
                return
        left_json, dtype, order = self._key_json(src)
        if dtype.bitmask and op == "!=" and not any(data):
            self.out.append(_match("in", left_json, dtype.render(mask, order)))
            return
        self.out.append(
            _match(op, {"&": [left_json, dtype.render(mask, order)]}, dtype.render(data, order))
        )

    def _range(self, op: str, slot: int, low: bytes, high: bytes) -> None:
        left = self._get(slot)
        if left[0] not in ("p", "k") or len(low) != left[1] or len(high) != left[1]:
            raise Unsupported("range over a computed value")
        left_json, dtype, order = self._key_json(left)
        self.out.append(
            _match(op, left_json, {"range": [dtype.render(low, order), dtype.render(high, order)]})
        )

    def _range_op(self, op: tuple[Any, ...]) -> None:
        _, slot, range_op, low, high = op
        name = _RANGE_OPS.get(range_op)
        if name is None:
            raise Unsupported("range op")
        self._range(name, slot, low, high)

    # -- sets ----------------------------------------------------------------------

    def _set_key(self, slot: int, info: SetInfo) -> Any:
        """The JSON of the register values a key of set `info` reads from `slot`."""
        parts = []
        for field in info.key:
            value = self._get(slot)
            if value[0] not in ("p", "k") or value[1] != field.size:
                raise Unsupported(f"lookup key does not match set {info.name}")
            parts.append(self._key_json(value)[0])
            slot += (value[1] + 3) // 4
        return parts[0] if len(parts) == 1 else {"concat": parts}

    def _set_ref(self, info: SetInfo) -> Any:
        if info.anonymous:
            return {"set": self.owner.anon_elements(info)}
        return "@" + info.name

    def _lookup(self, op: tuple[Any, ...]) -> None:
        _, slot, set_name, dreg, inverted = op
        info = self.owner.sets(set_name)
        key = self._set_key(slot, info)
        if dreg is None:
            if info.is_map:
                raise Unsupported("set lookup into a map")
            self.out.append(_match("!=" if inverted else "==", key, self._set_ref(info)))
        elif dreg == -1 and info.verdict and not inverted:
            self.out.append({"vmap": {"key": key, "data": self._set_ref(info)}})
        else:
            raise Unsupported("map lookups into data registers")

    def _dynset(self, op: tuple[Any, ...]) -> None:
        _, dyn_op, slot, set_name, timeout = op
        info = self.owner.sets(set_name)
        if info.anonymous or info.is_map or len(info.key) != 1:
            raise Unsupported("meters, map updates and concatenated dynset keys")
        elem = self._set_key(slot, info)
        if timeout:
            elem = {"elem": {"val": elem, "timeout": timeout // 1000}}
        self.out.append({"set": {"op": dyn_op, "elem": elem, "set": "@" + set_name}})

    # -- nat -------------------------------------------------------------------------

    def _immediate(self, slot: int, dtype: Datatype) -> Any:
        value = self._get(slot)
        if value[0] != "i":
            raise Unsupported("nat from a computed value")
        return dtype.render(value[2][: (dtype.bits + 7) // 8], dtype.order)

    def _nat_range(self, low: int, high: int | None, dtype: Datatype) -> Any:
        a = self._immediate(low, dtype)
        b = self._immediate(high, dtype) if high is not None else a
        return a if a == b else {"range": [a, b]}

    @staticmethod
    def _nat_flags(flags: int) -> Any:
        names = [name for bit, name in _NAT_FLAGS if flags & bit]
        if flags & ~(_NAT_IMPLIED | 4 | 8 | 16):
            raise Unsupported(f"nat flags {flags:#x}")
        return names[0] if len(names) == 1 else names

    def _nat(self, op: tuple[Any, ...]) -> None:
        _, ntype, nat_family, amin, amax, pmin, pmax, flags = op
        kind = {0: "snat", 1: "dnat"}.get(ntype)
        network = _NETWORK_OF_NFPROTO.get(nat_family)
        if kind is None or network is None:
            raise Unsupported("nat type or family")
        body: dict[str, Any] = {}
        if self.family == _NFPROTO_INET:
            body["family"] = network
        elif _NETWORK_OF_FAMILY[self.family] != network:
            raise Unsupported("nat of another family")
        if amin is not None:
            body["addr"] = self._nat_range(amin, amax, _IP4 if network == "ip" else _IP6)
        if pmin is not None:
            if amin is None:
                raise Unsupported("nat to a port only")
            body["port"] = self._nat_range(pmin, pmax, _SVC)
        if flags & ~_NAT_IMPLIED:
            body["flags"] = self._nat_flags(flags)
        self.out.append({kind: body})

    def _port_body(self, flags: int, pmin: int | None, pmax: int | None) -> Any:
        body: dict[str, Any] = {}
        if pmin is not None:
            body["port"] = self._nat_range(pmin, pmax, _SVC)
        if flags & ~_NAT_IMPLIED:
            body["flags"] = self._nat_flags(flags)
        return body or None

    def _masq(self, op: tuple[Any, ...]) -> None:
        self.out.append({"masquerade": self._port_body(op[1], op[2], op[3])})

    def _redir(self, op: tuple[Any, ...]) -> None:
        self.out.append({"redirect": self._port_body(op[1], op[2], op[3])})

    def _reject(self, op: tuple[Any, ...]) -> None:
        _, rtype, code = op
        if rtype == 1:  # NFT_REJECT_TCP_RST
            self.out.append({"reject": {"type": "tcp reset"}})
            return
        if rtype == 2:  # NFT_REJECT_ICMPX_UNREACH
            table, name = _REJECT_ICMPX, "icmpx"
        elif rtype == 0 and self.family == _NFPROTO_IPV4:
            table, name = _REJECT_ICMP, "icmp"
        elif rtype == 0 and self.family == _NFPROTO_IPV6:
            table, name = _REJECT_ICMPV6, "icmpv6"
        else:
            raise Unsupported("reject form")
        expr = table.get(code)
        if expr is None:
            raise Unsupported("reject code")
        self.out.append({"reject": {"type": name, "expr": expr}})

    # -- meta/ct mark set ------------------------------------------------------------

    def _meta_set(self, op: tuple[Any, ...]) -> None:
        self._mark_set("meta", _META_SET, op)

    def _ct_set(self, op: tuple[Any, ...]) -> None:
        self._mark_set("ct", _CT_SET, op)

    def _mark_set(self, kind: str, keys: dict[int, str], op: tuple[Any, ...]) -> None:
        name = keys.get(op[2])
        if name is None:
            raise Unsupported(f"{kind} set key {op[2]}")
        self.out.append(
            {"mangle": {"key": {kind: {"key": name}}, "value": self._mark_value(op[1])}}
        )

    def _mark_value(self, slot: int) -> Any:
        """The value of a `meta/ct mark set`: an immediate, a mark, or mask/xor of a mark."""
        value = self._get(slot)
        if value[0] == "i":
            if value[1] != 4:
                raise Unsupported("mark of odd size")
            return _MARK.render(value[2], _MARK.order)
        if value[0] == "k" and value[5] in ("meta", "ct") and value[3].id == TYPE_MARK:
            return value[2]
        if value[0] == "b":
            src = value[2]
            if src[0] == "k" and src[5] in ("meta", "ct") and src[3].id == TYPE_MARK:
                return _mask_xor_json(src[2], value[3], value[4], _MARK)
        raise Unsupported("mark set from this expression")


def _mask_xor_json(src: Any, mask: bytes, xor: bytes, dtype: Datatype) -> Any:
    """(x & mask) ^ xor as nft prints it: ((x & (mask|xor)) | (xor & ~mask)) ^ (xor & mask)."""
    size = len(mask)
    m = int.from_bytes(mask, "little")
    x = int.from_bytes(xor, "little")
    full = (1 << (8 * size)) - 1
    and_mask = m | x
    or_bits = x & ~m & full
    xor_bits = x & m
    out = src
    if and_mask != full:
        out = {"&": [out, render(dtype, and_mask.to_bytes(size, "little"))]}
    if or_bits:
        out = {"|": [out, render(dtype, or_bits.to_bytes(size, "little"))]}
    if xor_bits:
        out = {"^": [out, render(dtype, xor_bits.to_bytes(size, "little"))]}
    if out is src:
        raise Unsupported("a bitwise that changes nothing")
    return out


def _prefix_len(mask: bytes) -> int | None:
    """The prefix length of a network mask (ones then zeros), or None."""
    value = int.from_bytes(mask, "big")
    bits = 8 * len(mask)
    ones = bin(value).count("1")
    return ones if value == ((1 << bits) - 1) ^ ((1 << (bits - ones)) - 1) else None


_HANDLERS: dict[str, Callable[[_RuleDecoder, tuple[Any, ...]], None]] = {
    "ct": _RuleDecoder._ct,
    "numgen": _RuleDecoder._numgen,
    "fib": _RuleDecoder._fib,
    "bitwise": _RuleDecoder._bitwise,
    "range": _RuleDecoder._range_op,
    "lookup": _RuleDecoder._lookup,
    "dynset": _RuleDecoder._dynset,
    "nat": _RuleDecoder._nat,
    "masq": _RuleDecoder._masq,
    "redir": _RuleDecoder._redir,
    "reject": _RuleDecoder._reject,
    "meta_set": _RuleDecoder._meta_set,
    "ct_set": _RuleDecoder._ct_set,
}
