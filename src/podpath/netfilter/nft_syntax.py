"""nft rule text (`nft list`, `nft -f`) turned into the expressions `nft -j` prints for it.

A snapshot keeps what `nft -j` printed, and the trace and the Service model read only
those structured expressions. Rulesets given as text (hand-made snapshots, dumps copied
from an issue) are converted here, once, into the same structure: the JSON nft itself
prints after loading that text, a property the tests check against the real nft. What
this grammar does not know becomes an `{"unparsed": TEXT}` expression, which the trace
reports as undecidable instead of guessing.
"""

from __future__ import annotations

import re
from typing import Any

from podpath.netfilter.nft_flags import FLAG_BITS

# Payload fields: `ip saddr`, `tcp dport`, ... (protocol, fields nft knows for it).
_PAYLOAD: dict[str, frozenset[str]] = {
    "ip": frozenset({"saddr", "daddr", "protocol", "ttl", "length", "dscp", "version"}),
    "ip6": frozenset({"saddr", "daddr", "nexthdr", "hoplimit", "length"}),
    "th": frozenset({"sport", "dport"}),
    "tcp": frozenset({"sport", "dport", "flags"}),
    "udp": frozenset({"sport", "dport", "length"}),
    "sctp": frozenset({"sport", "dport"}),
    "icmp": frozenset({"type", "code"}),
    "icmpv6": frozenset({"type", "code"}),
    "ether": frozenset({"saddr", "daddr", "type"}),
}
_META_KEYS = frozenset(
    {
        "mark",
        "iif",
        "oif",
        "iifname",
        "oifname",
        "iiftype",
        "oiftype",
        "l4proto",
        "nfproto",
        "protocol",
        "pkttype",
        "skuid",
        "skgid",
        "length",
        "priority",
        "cpu",
        "cgroup",
        "iifgroup",
        "oifgroup",
        "random",
        "secmark",
    }
)
# Keys nft accepts without the `meta` keyword.
_BARE_META = frozenset(
    {"mark", "iif", "oif", "iifname", "oifname", "iifgroup", "oifgroup", "skuid", "skgid"}
)
_CT_KEYS = frozenset(
    {
        "state",
        "status",
        "mark",
        "direction",
        "expiration",
        "helper",
        "l3proto",
        "protocol",
        "saddr",
        "daddr",
        "proto-src",
        "proto-dst",
        "zone",
        "label",
        "id",
    }
)
_CT_DIRS = frozenset({"original", "reply"})
_VERDICTS = frozenset({"accept", "drop", "return", "continue"})
_OPS = {
    "==": "==",
    "eq": "==",
    "!=": "!=",
    "ne": "!=",
    "<": "<",
    "lt": "<",
    ">": ">",
    "gt": ">",
    "<=": "<=",
    "le": "<=",
    ">=": ">=",
    "ge": ">=",
}
_BINOPS = {"&": "&", "and": "&", "|": "|", "or": "|", "^": "^", "xor": "^"}
# Names nft prints differently from how they may be written.
_ALIASES = {("meta", "pkttype"): {"unicast": "host"}}
_NAT_FLAGS = frozenset({"random", "fully-random", "persistent"})
_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|[{},]|[^\s{},"]+')
_INT = re.compile(r"^(?:0x[0-9a-fA-F]+|\d+)$")


class _Unparsed(Exception):
    """The grammar does not know what follows."""


class _Tokens:
    """A cursor over a rule's tokens."""

    def __init__(self, text: str) -> None:
        self.items = _TOKEN.findall(text)
        self.pos = 0

    def peek(self, ahead: int = 0) -> str | None:
        i = self.pos + ahead
        return self.items[i] if i < len(self.items) else None

    def take(self) -> str:
        tok = self.peek()
        if tok is None:
            raise _Unparsed("unexpected end of rule")
        self.pos += 1
        return tok

    def expect(self, word: str) -> None:
        if self.take() != word:
            raise _Unparsed(f"expected {word!r}")

    def rest(self, start: int) -> str:
        return " ".join(self.items[start:])


def rule_expressions(text: str, family: str = "ip") -> tuple[list[Any], str | None]:
    """A rule's nft -j statements and its comment, from its nft text.

    Statements the grammar does not know end the list as `{"unparsed": TEXT}`.
    """
    toks = _Tokens(text)
    out: list[Any] = []
    comment: str | None = None
    while toks.peek() is not None:
        start = toks.pos
        if toks.peek() == "comment":
            toks.take()
            comment = _unquote(toks.take())
            continue
        try:
            out.append(_statement(toks, family))
        except _Unparsed:
            out.append({"unparsed": toks.rest(start)})
            break
    if family == "inet":
        _narrow_reject(out)
    return _drop_dependencies(out), comment


def _narrow_reject(exprs: list[Any]) -> None:
    """In an inet table, a reject after an IPv4 (IPv6) match is an ICMP (ICMPv6) one."""
    seen: str | None = None
    for expr in exprs:
        match = expr.get("match") if isinstance(expr, dict) else None
        if match is not None:
            key = _key(match["left"])
            if key == ("meta", "nfproto") and isinstance(match["right"], str):
                seen = _NFPROTO.get(match["right"], seen)
            elif _payload_protocol(match["left"]) in ("ip", "ip6"):
                seen = _payload_protocol(match["left"])
        reject = expr.get("reject") if isinstance(expr, dict) else None
        if reject and reject.get("type") == "icmpx" and seen is not None:
            reject["type"] = "icmp" if seen == "ip" else "icmpv6"


# Matches nft leaves out of a listing because the next payload implies them
# (`ip protocol tcp tcp dport 80` is printed and dumped as `tcp dport 80`).
_DEPENDENCY_KEYS = frozenset({("ip", "protocol"), ("meta", "l4proto"), ("ip6", "nexthdr")})
_NFPROTO = {"ipv4": "ip", "ipv6": "ip6"}


def _drop_dependencies(exprs: list[Any]) -> list[Any]:
    out: list[Any] = []
    for i, expr in enumerate(exprs):
        match = expr.get("match") if isinstance(expr, dict) else None
        nxt = exprs[i + 1] if i + 1 < len(exprs) else None
        if match is not None and match["op"] == "==" and isinstance(match["right"], str):
            key = _key(match["left"])
            implied = match["right"] if key in _DEPENDENCY_KEYS else None
            if key == ("meta", "nfproto"):
                implied = _NFPROTO.get(match["right"])
            if (
                implied is not None
                and isinstance(nxt, dict)
                and "match" in nxt
                and _payload_protocol(nxt["match"]["left"]) == implied
            ):
                continue
        out.append(expr)
    return out


def _payload_protocol(expr: Any) -> str | None:
    expr = _binop_base(expr)
    if isinstance(expr, dict) and "concat" in expr:
        expr = expr["concat"][0]
    if isinstance(expr, dict) and "payload" in expr:
        return str(expr["payload"]["protocol"])
    return None


def _unquote(tok: str) -> str:
    if len(tok) >= 2 and tok[0] == tok[-1] == '"':
        return re.sub(r"\\(.)", r"\1", tok[1:-1])
    return tok


def _statement(toks: _Tokens, family: str) -> Any:
    t = toks.peek()
    assert t is not None
    if t in _VERDICTS:
        toks.take()
        return {t: None}
    if t in ("jump", "goto"):
        toks.take()
        return {t: {"target": toks.take()}}
    if t == "counter":
        return _counter(toks)
    if t == "reject":
        return _reject(toks, family)
    if t in ("dnat", "snat", "masquerade", "redirect"):
        return _nat(toks)
    if t in ("update", "add") and (toks.peek(1) or "").startswith("@"):
        return _set_update(toks, family)
    if t == "log":
        return _log(toks)
    if t == "notrack":
        toks.take()
        return {"notrack": None}
    if t == "limit":
        return _limit(toks)
    return _match_or_mangle(toks, family)


def _counter(toks: _Tokens) -> Any:
    toks.take()
    packets = bytes_ = 0
    while toks.peek() in ("packets", "bytes"):
        which = toks.take()
        value = toks.take()
        if not value.isdigit():
            raise _Unparsed("counter value")
        if which == "packets":
            packets = int(value)
        else:
            bytes_ = int(value)
    return {"counter": {"packets": packets, "bytes": bytes_}}


def _reject(toks: _Tokens, family: str) -> Any:
    toks.take()
    if toks.peek() != "with":
        kind = {"ip": "icmp", "ip6": "icmpv6"}.get(family, "icmpx")
        return {"reject": {"type": kind, "expr": "port-unreachable"}}
    toks.take()
    kind = toks.take()
    if kind == "tcp":
        toks.expect("reset")
        return {"reject": {"type": "tcp reset"}}
    if kind not in ("icmp", "icmpv6", "icmpx"):
        raise _Unparsed("reject type")
    if toks.peek() == "type":
        toks.take()
    return {"reject": {"type": kind, "expr": toks.take()}}


def _nat(toks: _Tokens) -> Any:
    kind = toks.take()
    body: dict[str, Any] = {}
    if toks.peek() in ("ip", "ip6") and toks.peek(1) == "to":
        body["family"] = toks.take()
    if toks.peek() == "to":
        toks.take()
        addr, port = _nat_target(toks.take(), kind)
        if addr is not None:
            body["addr"] = addr
        if port is not None:
            body["port"] = port
    flags: list[str] = []
    while toks.peek() in _NAT_FLAGS:
        flags.append(toks.take())
        if toks.peek() == "," and toks.peek(1) in _NAT_FLAGS:
            toks.take()
    if flags:
        body["flags"] = flags[0] if len(flags) == 1 else flags
    return {kind: body or None}


def _nat_target(spec: str, kind: str) -> tuple[Any, Any]:
    """`10.0.0.1:80`, `[fd00::1]:80`, `:8080`, `10.0.0.1`, `1.1.1.1-1.1.1.5` -> addr, port."""
    if kind in ("redirect", "masquerade"):
        if not spec.startswith(":"):
            raise _Unparsed("redirect target")
        return None, _number_or_range(spec[1:])
    if spec.startswith("["):
        host, _, rest = spec[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else None
        return host, _number_or_range(port) if port else None
    if spec.count(":") == 1:
        host, _, port = spec.partition(":")
        return (_address_or_range(host) if host else None), _number_or_range(port)
    return _address_or_range(spec), None


def _number_or_range(text: str) -> Any:
    lo, sep, hi = text.partition("-")
    if not lo.isdigit() or (sep and not hi.isdigit()):
        raise _Unparsed("port")
    return {"range": [int(lo), int(hi)]} if sep else int(lo)


def _address_or_range(text: str) -> Any:
    lo, sep, hi = text.partition("-")
    return {"range": [lo, hi]} if sep else text


def _set_update(toks: _Tokens, family: str) -> Any:
    op = toks.take()
    name = toks.take()
    toks.expect("{")
    elem = _primary_concat(toks, family)
    toks.expect("}")
    return {"set": {"op": op, "elem": elem, "set": name}}


def _log(toks: _Tokens) -> Any:
    toks.take()
    body: dict[str, Any] = {}
    while toks.peek() in ("prefix", "level", "group", "snaplen", "queue-threshold"):
        key = toks.take()
        value = toks.take()
        body[key] = _unquote(value) if key in ("prefix", "level") else int(value)
    return {"log": body or None}


def _limit(toks: _Tokens) -> Any:
    toks.take()
    toks.expect("rate")
    over = False
    if toks.peek() == "over":
        toks.take()
        over = True
    rate, _, per = toks.take().partition("/")
    if not rate.isdigit() or not per:
        raise _Unparsed("limit rate")
    # nft gives a packet limit a burst of 5 unless told otherwise.
    body: dict[str, Any] = {"rate": int(rate), "burst": 5, "per": per}
    if over:
        body["inv"] = True
    if toks.peek() == "burst":
        toks.take()
        body["burst"] = int(toks.take())
        toks.expect("packets")
    return {"limit": body}


# --- matches, maps and mangling -----------------------------------------------------


def _key(expr: Any) -> tuple[str, str] | None:
    """("meta", "mark"), ("ip", "daddr"), ("ct", "state")... of a selector expression."""
    if not isinstance(expr, dict) or len(expr) != 1:
        return None
    ((kind, body),) = expr.items()
    if kind == "payload":
        return (body["protocol"], body["field"])
    if kind in ("meta", "ct"):
        return (kind, body["key"])
    if kind == "fib":
        return ("fib", body["result"])
    return None


def _match_or_mangle(toks: _Tokens, family: str) -> Any:
    left = _lhs(toks, family)
    t = toks.peek()
    if t == "set":
        toks.take()
        return {"mangle": {"key": left, "value": _value_expr(toks, family, _key(left))}}
    if t in ("vmap", "map"):
        toks.take()
        return {t: {"key": left, "data": _map_data(toks, family, left)}}
    op = "=="
    if t in _OPS:
        op = _OPS[toks.take()]
    key = _key(_binop_base(left))
    right = _rhs(toks, family, key)
    if key in FLAG_BITS:
        right = _sorted_flags(right, FLAG_BITS[key])
        if op == "==" and not _is_set(right):
            op = "in"
    return {"match": {"op": op, "left": left, "right": right}}


def _binop_base(expr: Any) -> Any:
    while isinstance(expr, dict) and len(expr) == 1 and next(iter(expr)) in ("&", "|", "^"):
        expr = next(iter(expr.values()))[0]
    return expr


def _sorted_flags(right: Any, bits: dict[str, int]) -> Any:
    def order(items: list[Any]) -> list[Any]:
        return sorted(items, key=lambda v: bits.get(v, 1 << 30) if isinstance(v, str) else 0)

    if isinstance(right, list):
        return order(right)
    if _is_set(right):
        return {"set": order(right["set"])}
    return right


def _is_set(right: Any) -> bool:
    return isinstance(right, dict) and "set" in right


def _lhs(toks: _Tokens, family: str) -> Any:
    """A selector, a concatenation of selectors, or a selector & mask."""
    expr = _primary_concat(toks, family)
    while toks.peek() in _BINOPS:
        op = _BINOPS[toks.take()]
        operand = _literal(toks.take(), _key(_binop_base(expr)))
        expr = {op: [expr, operand]}
    return expr


def _primary_concat(toks: _Tokens, family: str) -> Any:
    parts = [_primary(toks, family)]
    while toks.peek() == ".":
        toks.take()
        parts.append(_primary(toks, family))
    return parts[0] if len(parts) == 1 else {"concat": parts}


def _primary(toks: _Tokens, family: str) -> Any:
    t = toks.take()
    nxt = toks.peek()
    if t in _PAYLOAD and nxt in _PAYLOAD[t]:
        toks.take()
        return {"payload": {"protocol": t, "field": nxt}}
    if t == "meta" and nxt in _META_KEYS:
        toks.take()
        return {"meta": {"key": nxt}}
    if t in _BARE_META or t in ("pkttype", "l4proto", "nfproto"):
        return {"meta": {"key": t}}
    if t == "ct":
        body: dict[str, Any] = {}
        key = toks.take()
        if key in _CT_DIRS:
            body["dir"] = key
            key = toks.take()
            if key in ("ip", "ip6") and toks.peek() in ("saddr", "daddr"):
                key = f"{key} {toks.take()}"
                return {"ct": {"key": key, **body}}
        if key not in _CT_KEYS:
            raise _Unparsed(f"ct {key}")
        return {"ct": {"key": key, **body}}
    if t == "fib":
        return _fib(toks)
    if t == "numgen":
        mode = toks.take()
        toks.expect("mod")
        mod = int(toks.take())
        offset = 0
        if toks.peek() == "offset":
            toks.take()
            offset = int(toks.take())
        return {"numgen": {"mode": mode, "mod": mod, "offset": offset}}
    raise _Unparsed(f"selector {t}")


def _fib(toks: _Tokens) -> Any:
    flags = [toks.take()]
    while toks.peek() == ".":
        toks.take()
        flags.append(toks.take())
    result = toks.take()
    if result not in ("type", "oif", "oifname"):
        raise _Unparsed("fib result")
    if any(f not in ("saddr", "daddr", "mark", "iif", "oif") for f in flags):
        raise _Unparsed("fib flags")
    return {"fib": {"result": result, "flags": flags}}


def _value_expr(toks: _Tokens, family: str, key: tuple[str, str] | None) -> Any:
    """The value of a `... set VALUE` statement: a literal or `meta mark | 0x10`."""
    t = toks.peek()
    if t is not None and (t in ("meta", "ct") or t in _BARE_META):
        return _lhs(toks, family)
    return _literal(toks.take(), key)


def _map_data(toks: _Tokens, family: str, left: Any) -> Any:
    if (toks.peek() or "").startswith("@"):
        return toks.take()
    toks.expect("{")
    keys = _keys_of(left)
    items: list[Any] = []
    while True:
        key = _element_key(toks, keys)
        toks.expect(":")
        items.append([key, _verdict_value(toks)])
        sep = toks.take()
        if sep == "}":
            break
        if sep != ",":
            raise _Unparsed("map element")
    return {"set": items}


def _verdict_value(toks: _Tokens) -> Any:
    t = toks.take()
    if t in _VERDICTS:
        return {t: None}
    if t in ("jump", "goto"):
        return {t: {"target": toks.take()}}
    raise _Unparsed("map data")


def _keys_of(left: Any) -> list[tuple[str, str] | None]:
    if isinstance(left, dict) and "concat" in left:
        return [_key(p) for p in left["concat"]]
    if isinstance(left, dict) and "numgen" in left:
        return [("numgen", "")]
    return [_key(_binop_base(left))]


def _element_key(toks: _Tokens, keys: list[tuple[str, str] | None]) -> Any:
    parts = [_literal(toks.take(), keys[0] if keys else None)]
    while toks.peek() == ".":
        toks.take()
        parts.append(_literal(toks.take(), keys[len(parts)] if len(parts) < len(keys) else None))
    if toks.peek() == "comment":
        raise _Unparsed("element comment in a rule")
    return parts[0] if len(parts) == 1 else {"concat": parts}


def _rhs(toks: _Tokens, family: str, key: tuple[str, str] | None) -> Any:
    t = toks.take()
    if t.startswith("@"):
        return t
    if t == "{":
        items: list[Any] = []
        while True:
            items.append(_literal(toks.take(), key))
            sep = toks.take()
            if sep == "}":
                break
            if sep != ",":
                raise _Unparsed("set element")
        # nft stores a one-element anonymous set as the plain value.
        return items[0] if len(items) == 1 else {"set": items}
    values = [_literal(t, key)]
    while toks.peek() == ",":
        toks.take()
        values.append(_literal(toks.take(), key))
    return values[0] if len(values) == 1 else values


_NUMERIC = frozenset(
    {
        ("meta", "mark"),
        ("ct", "mark"),
        ("th", "sport"),
        ("th", "dport"),
        ("tcp", "sport"),
        ("tcp", "dport"),
        ("udp", "sport"),
        ("udp", "dport"),
        ("sctp", "sport"),
        ("sctp", "dport"),
        ("meta", "skuid"),
        ("meta", "skgid"),
        ("meta", "length"),
        ("numgen", ""),
    }
)


def _literal(tok: str, key: tuple[str, str] | None) -> Any:
    """One value, typed as nft -j prints it for the selector it is compared with."""
    if tok.startswith('"'):
        return _unquote(tok)
    if key in _ALIASES:
        tok = _ALIASES[key].get(tok, tok)
    if tok in ("{", "}", ",", ":", "."):
        raise _Unparsed(f"value {tok}")
    if key in _NUMERIC or key is None:
        lo, sep, hi = tok.partition("-")
        if _INT.match(lo) and (not sep or _INT.match(hi)):
            return {"range": [int(lo, 0), int(hi, 0)]} if sep else int(lo, 0)
        if key in _NUMERIC:
            raise _Unparsed(f"number {tok}")
    addr, slash, length = tok.partition("/")
    if slash and length.isdigit():
        return {"prefix": {"addr": addr, "len": int(length)}}
    if "-" in tok and key is not None and key[1] in ("saddr", "daddr"):
        lo, _, hi = tok.partition("-")
        return {"range": [lo, hi]}
    return tok
