"""nft -j rule expressions printed the way `nft list` prints them (for display only).

nft prints a value by the type of what it is compared with: marks as 0x%08x, interface
names quoted, conntrack flags joined by commas; `==` only after a masked selector; the
default reject with no arguments. The tests compare this with the real `nft list`.
Nothing evaluates this text: the trace reads the expressions themselves.
"""

from __future__ import annotations

import json
from typing import Any

# Meta keys nft prints without the `meta` keyword (meta_key_is_unqualified in nft).
_UNQUALIFIED_META = frozenset({"iif", "oif", "iifname", "oifname", "iifgroup", "oifgroup"})
_MARK_KEYS = frozenset({("meta", "mark"), ("ct", "mark")})
_STRING_KEYS = frozenset(
    {("meta", "iifname"), ("meta", "oifname"), ("meta", "iif"), ("meta", "oif")}
)
_FLAG_KEYS = frozenset({("ct", "state"), ("ct", "status"), ("tcp", "flags")})
# The reject nft prints as plain `reject` in each family.
_DEFAULT_REJECT = {"ip": "icmp", "ip6": "icmpv6", "inet": "icmpx", "bridge": "icmpx"}


def _key(expr: Any) -> tuple[str, str] | None:
    """The selector a value is compared with: ("meta", "mark"), ("ip", "daddr")..."""
    while isinstance(expr, dict) and len(expr) == 1 and next(iter(expr)) in ("&", "|", "^"):
        operands = next(iter(expr.values()))
        expr = operands[0] if isinstance(operands, list) and operands else None
    if not isinstance(expr, dict) or len(expr) != 1:
        return None
    ((kind, body),) = expr.items()
    if not isinstance(body, dict):
        return None
    if kind == "payload":
        return (str(body.get("protocol")), str(body.get("field")))
    if kind in ("meta", "ct"):
        return (kind, str(body.get("key")))
    return None


def value(expr: Any, key: tuple[str, str] | None = None) -> str:
    """An expression or literal, printed for a selector of type `key`."""
    if isinstance(expr, bool):
        return str(expr).lower()
    if isinstance(expr, int):
        return f"0x{expr:08x}" if key in _MARK_KEYS else str(expr)
    if isinstance(expr, str):
        return f'"{expr}"' if key in _STRING_KEYS and not expr.startswith("@") else expr
    if isinstance(expr, list):
        sep = "," if key in _FLAG_KEYS else ", "
        return sep.join(value(e, key) for e in expr)
    if not isinstance(expr, dict) or len(expr) != 1:
        return json.dumps(expr, separators=(",", ":"), ensure_ascii=False)
    ((kind, body),) = expr.items()
    render = _EXPR.get(kind)
    if render is not None:
        try:
            return str(render(body, key))
        except (KeyError, TypeError, AttributeError, ValueError, IndexError):
            pass
    if body is None:
        return str(kind)
    return json.dumps(expr, separators=(",", ":"), ensure_ascii=False)


def _payload(v: dict[str, Any], _key: Any) -> str:
    if "protocol" in v:
        return f"{v['protocol']} {v['field']}"
    return f"@{v.get('base', 'nh')},{v.get('offset', 0)},{v.get('len', 0)}"


def _meta(v: dict[str, Any], _key: Any) -> str:
    key = str(v["key"])
    return key if key in _UNQUALIFIED_META else f"meta {key}"


def _ct(v: dict[str, Any], _key: Any) -> str:
    parts = ["ct"]
    if v.get("dir"):
        parts.append(str(v["dir"]))
    if v.get("family"):
        parts.append(str(v["family"]))
    parts.append(str(v["key"]))
    return " ".join(parts)


def _binop(op: str) -> Any:
    def render(v: list[Any], key: Any) -> str:
        inner = _key(v[0])
        return f" {op} ".join(value(x, inner) for x in v)

    return render


def _set(v: Any, key: Any) -> str:
    items = v if isinstance(v, list) else [v]
    return "{ " + ", ".join(_element(i, key) for i in items) + " }"


def _element(item: Any, key: Any) -> str:
    if isinstance(item, list) and len(item) == 2:
        return f"{value(item[0], key)} : {value(item[1])}"
    return value(item, key)


def _concat(v: list[Any], key: Any) -> str:
    return " . ".join(value(x) for x in v)


def _fib(v: dict[str, Any], _key: Any) -> str:
    flags = v.get("flags", [])
    flags = flags if isinstance(flags, list) else [flags]
    return "fib " + " . ".join(str(f) for f in flags) + f" {v['result']}"


def _numgen(v: dict[str, Any], _key: Any) -> str:
    out = f"numgen {v.get('mode', 'random')} mod {v['mod']}"
    return out + (f" offset {v['offset']}" if v.get("offset") else "")


def _map(kind: str) -> Any:
    def render(v: dict[str, Any], _key: Any) -> str:
        left = v["key"]
        return f"{value(left)} {kind} {value(v['data'], _key_of_map(left))}"

    return render


def _key_of_map(left: Any) -> tuple[str, str] | None:
    if isinstance(left, dict) and "concat" in left:
        return None
    return _key(left)


_EXPR: dict[str, Any] = {
    "payload": _payload,
    "meta": _meta,
    "ct": _ct,
    "set": _set,
    "concat": _concat,
    "prefix": lambda v, k: f"{value(v['addr'])}/{v['len']}",
    "range": lambda v, k: f"{value(v[0], k)}-{value(v[1], k)}",
    "elem": lambda v, k: (
        value(v["val"], k) + (f' comment "{v["comment"]}"' if v.get("comment") else "")
    ),
    "fib": _fib,
    "numgen": _numgen,
    "jump": lambda v, k: f"jump {v['target']}",
    "goto": lambda v, k: f"goto {v['target']}",
    "&": _binop("&"),
    "|": _binop("|"),
    "^": _binop("^"),
    "<<": _binop("<<"),
    ">>": _binop(">>"),
    "symhash": lambda v, k: f"symhash mod {v['mod']}",
    "jhash": lambda v, k: f"jhash {value(v['expr'])} mod {v['mod']}",
    "vmap": _map("vmap"),
    "map": _map("map"),
}


# --- statements ------------------------------------------------------------------------


def _match(v: dict[str, Any]) -> str:
    op = v.get("op", "==")
    left = v["left"]
    key = _key(left)
    right = value(v["right"], key)
    masked = isinstance(left, dict) and next(iter(left), None) in ("&", "|", "^")
    if op == "in" or (op == "==" and not masked):
        return f"{value(left)} {right}"
    return f"{value(left)} {op} {right}"


def _mangle(v: dict[str, Any]) -> str:
    key = v["key"]
    return f"{value(key)} set {value(v['value'], _key(key))}"


def _counter(v: Any) -> str:
    if isinstance(v, dict) and "packets" in v:
        return f"counter packets {v['packets']} bytes {v.get('bytes', 0)}"
    return "counter" if not v else f"counter name {value(v)}"


def _nat(kind: str) -> Any:
    def render(v: Any) -> str:
        if not v:
            return kind
        out = kind
        if v.get("family"):
            out += f" {v['family']}"
        if "addr" in v:
            out += " to " + value(v["addr"])
            if "port" in v:
                out += ":" + value(v["port"])
        elif "port" in v:
            out += " to :" + value(v["port"])
        flags = v.get("flags")
        if flags:
            out += " " + (",".join(flags) if isinstance(flags, list) else str(flags))
        return out

    return render


def _reject(v: Any, family: str) -> str:
    if v and v.get("type") == _DEFAULT_REJECT.get(family) and v.get("expr") == "port-unreachable":
        return "reject"
    return _reject_with(v)


def _reject_with(v: Any) -> str:
    """`reject [with TYPE [CODE]]` from a reject statement's body."""
    if not v:
        return "reject"
    out = "reject"
    if v.get("type"):
        out += f" with {v['type']}"
        if v.get("expr"):
            out += f" {value(v['expr'])}"
    return out


def _log(v: Any) -> str:
    """`log [prefix "..."] [level ...]` from a log statement's body."""
    if not v:
        return "log"
    return "log" + "".join(
        f' {k} "{val}"' if k == "prefix" else f" {k} {val}" for k, val in v.items()
    )


def _set_stmt(v: dict[str, Any]) -> str:
    """`update @set { ELEM }` (or add, delete) from a set statement's body."""
    return f"{v.get('op', 'update')} {v['set']} {{ {value(v['elem'])} }}"


def _limit(v: dict[str, Any]) -> str:
    over = "over " if v.get("inv") else ""
    out = f"limit rate {over}{v['rate']}/{v.get('per', 'second')}"
    # nft leaves out the default burst of 5 packets.
    return out + (f" burst {v['burst']} packets" if v.get("burst", 5) != 5 else "")


_STATEMENT: dict[str, Any] = {
    "match": _match,
    "mangle": _mangle,
    "counter": _counter,
    "dnat": _nat("dnat"),
    "snat": _nat("snat"),
    "masquerade": _nat("masquerade"),
    "redirect": _nat("redirect"),
    "log": _log,
    "set": _set_stmt,
    "limit": _limit,
    "unparsed": lambda v: str(v),
}


# Kinds `statement` prints; "set" is one only with an op (else an anonymous set).
_STATEMENT_KINDS = frozenset(_STATEMENT) | {"reject"}


def is_statement(node: dict[str, Any]) -> bool:
    """True when a one-key JSON node is a statement (match, NAT, counter...), not an expression."""
    ((kind, body),) = node.items()
    if kind == "set":
        return isinstance(body, dict) and "op" in body
    return kind in _STATEMENT_KINDS


def statement(expr: Any, family: str = "ip") -> str:
    """One statement of a rule as nft prints it (its JSON, verbatim, when unknown)."""
    if isinstance(expr, dict) and len(expr) == 1:
        ((kind, body),) = expr.items()
        if kind == "reject":
            return _reject(body, family) if body is None or isinstance(body, dict) else "reject"
        render = _STATEMENT.get(kind)
        if render is not None:
            try:
                return str(render(body))
            except (KeyError, TypeError, AttributeError, ValueError, IndexError):
                return json.dumps(expr, separators=(",", ":"), ensure_ascii=False)
    return value(expr)


def rule_text(expr: list[Any], comment: str | None = None, family: str = "ip") -> str:
    """A rule's text from its JSON statements, as `nft list` prints it in a table of `family`."""
    try:
        text = " ".join(statement(e, family) for e in expr)
    except RecursionError:  # hostile nesting: nft itself never nests this deep
        text = "<expression nested too deeply>"
    return text + (f' comment "{comment}"' if comment else "")
