"""Native nftables rulesets: `nft -j list ruleset` JSON and `nft list` / `nft -f` text.

Both become one structure (tables -> chains -> rules, sets and maps with elements).
JSON rules keep their expression list and get a text rendering in nft's own syntax;
text rules keep their text and get the same expressions, converted on first use.
kube-proxy's Services are read from the structure in netfilter.kube_proxy_nft.
"""

from __future__ import annotations

import functools
import gc
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, TypeVar

from podpath.netfilter.nft_syntax import rule_expressions
from podpath.netfilter.nft_text import is_statement, rule_text, statement

_T = TypeVar("_T")
_R = TypeVar("_R")

MAX_JSON_BYTES = 256 * 1024 * 1024  # 10k Services in kube-proxy's own table: ~33 MB


@dataclass(frozen=True)
class NftTable:
    """One nftables table."""

    family: str
    name: str
    handle: int | None = None
    comment: str | None = None


@dataclass(frozen=True)
class NftChain:
    """One chain: base chains have a type, hook, priority and policy."""

    family: str
    table: str
    name: str
    handle: int | None = None
    type: str | None = None
    hook: str | None = None
    prio: int | str | None = None  # a number, or a name like "dstnat" / "srcnat + 10"
    policy: str | None = None
    comment: str | None = None
    # The devices an ingress or egress chain (netdev, inet) is bound to; () for others,
    # or where they were not said (a text listing).
    devices: tuple[str, ...] = ()


@dataclass(frozen=True)
class NftRule:
    """One rule: its JSON expressions (empty for text input) and its text."""

    family: str
    table: str
    chain: str
    position: int  # 1-based within its chain
    text: str
    expr: tuple[Any, ...] = ()
    handle: int | None = None
    comment: str | None = None


class _JsonRule(NftRule):
    """An NftRule read from JSON: its text is rendered on first use, not at parse time.

    Rendering every rule up front was half of parsing 10k Services' JSON, and a trace or
    a Service view reads only the chains it walks.
    """

    def __init__(
        self,
        family: str,
        table: str,
        chain: str,
        position: int,
        expr: tuple[Any, ...],
        handle: int | None,
        comment: str | None,
    ) -> None:
        # Not the dataclass __init__: `text` is left for the cached_property below.
        put = object.__setattr__
        put(self, "family", family)
        put(self, "table", table)
        put(self, "chain", chain)
        put(self, "position", position)
        put(self, "expr", expr)
        put(self, "handle", handle)
        put(self, "comment", comment)

    @cached_property
    def text(self) -> str:
        """The rule as `nft list` prints it."""
        return rule_text(list(self.expr), self.comment, self.family)


class _TextRule(NftRule):
    """An NftRule read from nft text: its expressions are converted on first use.

    The trace and the Service model read expressions only; converting the text of
    rules nobody walks would be wasted.
    """

    def __init__(
        self, family: str, table: str, chain: str, position: int, text: str, comment: str | None
    ) -> None:
        # Not the dataclass __init__: `expr` is left for the cached_property below.
        put = object.__setattr__
        put(self, "family", family)
        put(self, "table", table)
        put(self, "chain", chain)
        put(self, "position", position)
        put(self, "text", text)
        put(self, "handle", None)
        put(self, "comment", comment)

    @cached_property
    def expr(self) -> tuple[Any, ...]:
        """The rule's statements as `nft -j` prints them (see nft_syntax)."""
        return tuple(rule_expressions(self.text, self.family)[0])


@dataclass(frozen=True)
class NftElement:
    """One set/map element: the key parts (concatenations split), value, comment."""

    key: tuple[str, ...]
    value: str | None = None  # map data, e.g. "goto service-..." or "drop"
    comment: str | None = None
    expires: int | None = None  # seconds left, in sets with timeouts (affinity pins)


@dataclass(frozen=True)
class NftSet:
    """A named set or map."""

    family: str
    table: str
    name: str
    kind: str  # "set" or "map"
    type: tuple[str, ...] = ()
    map_type: str | None = None
    flags: tuple[str, ...] = ()
    elements: tuple[NftElement, ...] = ()
    handle: int | None = None
    comment: str | None = None
    timeout: int | None = None  # seconds an element lives (kube-proxy affinity: 10800)


@dataclass(frozen=True)
class NftRuleset:
    """A whole nftables ruleset and what could not be read."""

    format: str  # "json", "text" (nft list), "commands" (nft -f), "error", "empty"
    tables: tuple[NftTable, ...] = ()
    chains: tuple[NftChain, ...] = ()
    rules: tuple[NftRule, ...] = ()
    sets: tuple[NftSet, ...] = ()
    warnings: tuple[str, ...] = ()
    metainfo: dict[str, Any] = field(default_factory=dict)
    # Lookup indexes, built on first use (10k Services: a linear scan per chain is
    # quadratic). Mutable dicts inside a frozen object: caches, not state.
    _index: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def _lookup(self, kind: str) -> dict[tuple[str, str, str], Any]:
        found: dict[tuple[str, str, str], Any] | None = self._index.get(kind)
        if found is None:
            found = {}
            if kind == "rules":
                for rule in self.rules:
                    found.setdefault((rule.family, rule.table, rule.chain), []).append(rule)
                found = {k: tuple(v) for k, v in found.items()}
            else:
                for obj in self.sets if kind == "sets" else self.chains:
                    found.setdefault((obj.family, obj.table, obj.name), obj)
            self._index[kind] = found
        return found

    def chain_rules(self, family: str, table: str, chain: str) -> tuple[NftRule, ...]:
        """The rules of one chain, in order."""
        rules: tuple[NftRule, ...] = self._lookup("rules").get((family, table, chain), ())
        return rules

    def get_set(self, family: str, table: str, name: str) -> NftSet | None:
        """A set or map by name (without the @)."""
        found: NftSet | None = self._lookup("sets").get((family, table, name))
        return found

    def get_chain(self, family: str, table: str, name: str) -> NftChain | None:
        """A chain by name."""
        found: NftChain | None = self._lookup("chains").get((family, table, name))
        return found


# ---------------------------------------------------------------- JSON -> text


def render_expr(expr: Any, family: str = "") -> str:
    """nft's text for one JSON expression or statement in a table of `family` (JSON verbatim
    if unknown); statements are printed by nft_text, as in a rule's text."""
    # The two shapes of nearly every node first (exact types, as json.loads builds them);
    # anything else takes the general checks below, in their original order.
    kind = type(expr)
    if kind is str:
        return expr  # type: ignore[no-any-return]
    if kind is dict and len(expr) == 1:
        return _render_node(expr, family)
    if expr is None:
        return ""
    if isinstance(expr, bool):
        return str(expr).lower()
    if isinstance(expr, (int, float)):
        return str(expr)
    if isinstance(expr, str):
        return expr
    if isinstance(expr, list):
        return ", ".join(render_expr(e, family) for e in expr)
    if not isinstance(expr, dict) or len(expr) != 1:
        return json.dumps(expr, separators=(",", ":"), ensure_ascii=False)
    return _render_node(expr, family)


def _render_node(expr: dict[str, Any], family: str) -> str:
    """A one-key JSON node: a statement as nft_text prints it, else an expression."""
    if is_statement(expr):
        # With no family known, a reject keeps its type (`reject with icmp port-unreachable`):
        # which reject is the plain one depends on the table's family.
        return statement(expr, family)
    ((key, val),) = expr.items()
    render = _RENDER.get(key)
    if render is not None:
        try:
            return str(render(val))
        except (KeyError, TypeError, AttributeError, ValueError, IndexError):
            pass
    if val is None:  # verdicts and argument-less statements: accept, drop, notrack...
        return str(key)
    return json.dumps(expr, separators=(",", ":"), ensure_ascii=False)


def _r_set(v: Any) -> str:
    items = v if isinstance(v, list) else [v]
    return "{ " + ", ".join(_r_elem(i) for i in items) + " }"


def _r_elem(item: Any) -> str:
    if isinstance(item, list) and len(item) == 2:
        return f"{render_expr(item[0])} : {render_expr(item[1])}"
    return render_expr(item)


def _r_payload(v: dict[str, Any]) -> str:
    if "protocol" in v:
        return f"{v['protocol']} {v['field']}"
    return f"@{v.get('base', 'nh')},{v.get('offset', 0)},{v.get('len', 0)}"


# Meta keys nft prints without the `meta` keyword.
_BARE_META = frozenset({"iifname", "oifname", "iif", "oif", "mark", "skuid", "skgid", "nfproto"})


def _r_meta(v: dict[str, Any]) -> str:
    key = v["key"]
    return key if key in _BARE_META else f"meta {key}"


def _r_binop(op: str) -> Any:
    return lambda v: f" {op} ".join(render_expr(x) for x in v)


def _r_numgen(v: dict[str, Any]) -> str:
    out = f"numgen {v.get('mode', 'random')} mod {v['mod']}"
    return out + (f" offset {v['offset']}" if v.get("offset") else "")


def _r_fib(v: dict[str, Any]) -> str:
    flags = v.get("flags", [])
    return "fib " + " . ".join(flags if isinstance(flags, list) else [flags]) + f" {v['result']}"


def _r_map(kind: str) -> Any:
    return lambda v: f"{render_expr(v['key'])} {kind} {render_expr(v['data'])}"


_RENDER: dict[str, Any] = {
    "set": _r_set,
    "payload": _r_payload,
    "meta": _r_meta,
    "ct": lambda v: f"ct {v.get('dir', '') + ' ' if v.get('dir') else ''}{v['key']}",
    "concat": lambda v: " . ".join(render_expr(x) for x in v),
    "prefix": lambda v: f"{render_expr(v['addr'])}/{v['len']}",
    "range": lambda v: f"{render_expr(v[0])}-{render_expr(v[1])}",
    "elem": lambda v: (
        render_expr(v["val"]) + (f' comment "{v["comment"]}"' if v.get("comment") else "")
    ),
    "jump": lambda v: f"jump {v['target']}",
    "goto": lambda v: f"goto {v['target']}",
    "vmap": _r_map("vmap"),
    "map": _r_map("map"),
    "numgen": _r_numgen,
    "fib": _r_fib,
    "&": _r_binop("&"),
    "|": _r_binop("|"),
    "^": _r_binop("^"),
    "<<": _r_binop("<<"),
    ">>": _r_binop(">>"),
    "symhash": lambda v: f"symhash mod {v['mod']}",
    "jhash": lambda v: f"jhash {render_expr(v['expr'])} mod {v['mod']}",
}


def _opt_str(value: Any) -> str | None:
    """A JSON string field, or None when absent or of another type."""
    return value if isinstance(value, str) else None


def render_rule(expr: list[Any], comment: str | None = None, family: str = "ip") -> str:
    """A rule's text from its JSON statements, as `nft list` prints it."""
    return rule_text(expr, comment, family)


def _element(item: Any) -> NftElement:
    """An NftElement from a JSON set element or map [key, value] pair."""
    value: str | None = None
    if isinstance(item, list) and len(item) == 2:
        item, data = item
        value = render_expr(data)
    comment = None
    expires = None
    if isinstance(item, dict) and "elem" in item and isinstance(item["elem"], dict):
        comment = item["elem"].get("comment")
        expires = _int(item["elem"].get("expires"))
        item = item["elem"].get("val")
    if isinstance(item, dict) and "concat" in item and isinstance(item["concat"], list):
        key = tuple(render_expr(k) for k in item["concat"])
    else:
        key = (render_expr(item),)
    return NftElement(key, value, comment, expires)


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def gc_paused(build: Callable[[_T], _R]) -> Callable[[_T], _R]:
    """Run `build` with the cyclic GC paused: it only allocates acyclic JSON-sized data.

    The collector would rescan the growing heap over and over: 10k Services' JSON took
    1.2-1.6 s to load with it and 0.4 s without.
    """

    @functools.wraps(build)
    def paused(arg: _T) -> _R:
        was_enabled = gc.isenabled()
        gc.disable()
        try:
            return build(arg)
        finally:
            if was_enabled:
                gc.enable()

    return paused


@gc_paused
def parse_nft_json(text: str) -> NftRuleset:
    """Parse `nft -j list ...` output; never raises (problems become warnings)."""
    if len(text) > MAX_JSON_BYTES:
        return NftRuleset("error", warnings=(f"nft JSON larger than {MAX_JSON_BYTES} bytes",))
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as err:
        return NftRuleset("error", warnings=(f"not nft JSON: {err}"[:300],))
    items = data.get("nftables") if isinstance(data, dict) else None
    if not isinstance(items, list):
        return NftRuleset("error", warnings=("JSON without an 'nftables' array",))
    tables: list[NftTable] = []
    chains: list[NftChain] = []
    rules: list[NftRule] = []
    sets: list[NftSet] = []
    warnings: list[str] = []
    meta: dict[str, Any] = {}
    positions: dict[tuple[str, str, str], int] = {}
    # (family, table) of chains, rules and sets, in first-seen order (tables to derive).
    seen: tuple[dict[tuple[str, str], None], ...] = ({}, {}, {})
    for item in items:
        if not isinstance(item, dict) or len(item) != 1:
            warnings.append(f"unknown item: {json.dumps(item)[:200]}")
            continue
        ((kind, v),) = item.items()
        if not isinstance(v, dict):
            warnings.append(f"unknown {kind}: {json.dumps(v)[:200]}")
            continue
        fam, tab = str(v.get("family", "")), str(v.get("table", ""))
        if kind == "metainfo":
            meta = v
        elif kind == "table":
            tables.append(
                NftTable(
                    fam, str(v.get("name", "")), _int(v.get("handle")), _opt_str(v.get("comment"))
                )
            )
        elif kind == "chain":
            seen[0][(fam, tab)] = None
            chains.append(
                NftChain(
                    fam,
                    tab,
                    str(v.get("name", "")),
                    _int(v.get("handle")),
                    v.get("type"),
                    v.get("hook"),
                    v.get("prio"),
                    v.get("policy"),
                    v.get("comment"),
                    _devices(v.get("dev")),
                )
            )
        elif kind == "rule":
            seen[1][(fam, tab)] = None
            name = str(v.get("chain", ""))
            key = (fam, tab, name)
            positions[key] = positions.get(key, 0) + 1
            raw_expr = v.get("expr")
            expr: list[Any] = raw_expr if isinstance(raw_expr, list) else []
            comment = _opt_str(v.get("comment"))
            rules.append(
                _JsonRule(
                    fam, tab, name, positions[key], tuple(expr), _int(v.get("handle")), comment
                )
            )
        elif kind in ("set", "map"):
            seen[2][(fam, tab)] = None
            typ = v.get("type", ())
            raw_elems = v.get("elem")
            elems: list[Any] = raw_elems if isinstance(raw_elems, list) else []
            flags = v.get("flags", ())
            sets.append(
                NftSet(
                    fam,
                    tab,
                    str(v.get("name", "")),
                    kind,
                    tuple(typ) if isinstance(typ, list) else (str(typ),),
                    render_expr(v["map"]) if "map" in v else None,
                    tuple(flags) if isinstance(flags, list) else (str(flags),),
                    tuple(_element(e) for e in elems),
                    _int(v.get("handle")),
                    _opt_str(v.get("comment")),
                    _int(v.get("timeout")),
                )
            )
        else:
            warnings.append(
                f"{kind} objects are kept out of the model: {fam} {tab} {v.get('name', '')}".strip()
            )
    known = {(t.family, t.name) for t in tables}
    # `nft -j list set/map ...` names no table object: derive it from its members.
    for fam_tab in (*seen[0], *seen[1], *seen[2]):
        if fam_tab not in known:
            known.add(fam_tab)
            tables.append(NftTable(*fam_tab))
    return NftRuleset(
        "json",
        tuple(tables),
        tuple(chains),
        tuple(rules),
        tuple(sets),
        tuple(dict.fromkeys(warnings)),
        meta,
    )


# ---------------------------------------------------------------- text formats

_COMMENT_RE = re.compile(r'\s*comment\s+"((?:[^"\\]|\\.)*)"\s*;?\s*$')
_TYPE_RE = re.compile(
    r"type\s+(\w+)\s+hook\s+(\w+)(?:\s+device\s+\S+)?\s+priority\s+([^;]+?)\s*;"
    r"(?:\s*policy\s+(\w+)\s*;)?"
)


def _split_top(text: str, sep: str = ",") -> list[str]:
    """Split on `sep` outside quotes and braces."""
    if '"' not in text and "{" not in text:
        return [p.strip() for p in text.split(sep) if p.strip()]  # the common case, in C
    out: list[str] = []
    depth = 0
    quoted = False
    start = 0
    for i, ch in enumerate(text):
        if ch == '"':
            quoted = not quoted
        elif quoted:
            continue
        elif ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
        elif ch == sep and depth == 0:
            out.append(text[start:i])
            start = i + 1
    out.append(text[start:])
    return [p.strip() for p in out if p.strip()]


def parse_elements(body: str) -> tuple[NftElement, ...]:
    """Elements from the inside of `{ ... }`: `a . b . c comment "x" : verdict, ...`."""
    out = []
    for part in _split_top(body):
        comment = None
        found = _ELEM_COMMENT.search(part)
        if found:  # removed first: a comment may itself hold " : " or " . "
            comment = found.group(1)
            part = part[: found.start()] + part[found.end() :]
        # nft prints map data after " : " (spaces required: IPv6 keys hold colons).
        key_text, sep, value = part.partition(" : ")
        expires = None
        timed = _ELEM_TIMES.search(key_text)
        if timed:  # `10.0.0.5 timeout 3h expires 2h59m` in sets with timeouts
            expires = duration(timed.group(2)) if timed.group(2) else None
            key_text = key_text[: timed.start()]
        key = tuple(k.strip() for k in key_text.split(" . "))
        out.append(NftElement(key, value.strip() or None if sep else None, comment, expires))
    return tuple(out)


_ELEM_TIMES = re.compile(r"\s+(?:timeout\s+(\S+)\s*)?(?:expires\s+(\S+))?\s*$")
_DURATION = re.compile(r"(\d+)(d|h|ms|m|s)")


def duration(text: str) -> int | None:
    """Seconds of an nft duration (`3h`, `2h59m59s984ms`, `10800s`), or None."""
    parts = _DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        return None
    scale = {"d": 86400, "h": 3600, "m": 60, "s": 1, "ms": 0}
    return sum(int(n) * scale[u] for n, u in parts)


_ELEM_COMMENT = re.compile(r'\s*comment\s+"((?:[^"\\]|\\.)*)"')


@dataclass
class _TextState:
    """What the text parser has collected so far."""

    tables: list[NftTable] = field(default_factory=list)
    chains: dict[tuple[str, str, str], NftChain] = field(default_factory=dict)
    rules: list[NftRule] = field(default_factory=list)
    sets: dict[tuple[str, str, str], NftSet] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    positions: dict[tuple[str, str, str], int] = field(default_factory=dict)
    added: dict[tuple[str, str, str], list[NftElement]] = field(default_factory=dict)

    def table(self, family: str, name: str, comment: str | None = None) -> None:
        if not any(t.family == family and t.name == name for t in self.tables):
            self.tables.append(NftTable(family, name, None, comment))

    def chain(self, family: str, table: str, name: str, spec: str = "") -> None:
        self.table(family, table)
        found = _TYPE_RE.search(spec)
        comment = _COMMENT_RE.search(spec)
        key = (family, table, name)
        old = self.chains.get(key)
        if found or old is None:
            prio: int | str | None = None
            if found:
                raw = found.group(3).strip()
                prio = int(raw) if re.fullmatch(r"-?\d+", raw) else raw
            self.chains[key] = NftChain(
                family,
                table,
                name,
                None,
                found.group(1) if found else None,
                found.group(2) if found else None,
                prio,
                (found.group(4) if found else None) or ("accept" if found else None),
                comment.group(1) if comment else None,
            )

    def rule(self, family: str, table: str, chain: str, text: str) -> None:
        self.chain(family, table, chain)
        key = (family, table, chain)
        self.positions[key] = self.positions.get(key, 0) + 1
        comment = _COMMENT_RE.search(text)
        self.rules.append(
            _TextRule(
                family,
                table,
                chain,
                self.positions[key],
                text.strip(),
                comment.group(1) if comment else None,
            )
        )

    def set(self, family: str, table: str, name: str, kind: str, spec: str) -> None:
        self.table(family, table)
        key = (family, table, name)
        typ = re.search(r"type\s+([^;}\n]+?)\s*(?:;|$|\n|})", spec)
        flags = re.search(r"flags\s+([^;}\n]+?)\s*(?:;|$|\n|})", spec)
        timeout = re.search(r"(?:^|[;\n\s])timeout\s+(\w+)", spec.split("elements", 1)[0])
        elements = re.search(r"elements\s*=\s*\{(.*)\}", spec, re.S)
        # The set's own comment, not an element's: look before `elements = {` only.
        comment = re.search(r'comment\s+"((?:[^"\\]|\\.)*)"', spec.split("elements", 1)[0])
        type_text = typ.group(1) if typ else ""
        key_type, _, map_type = type_text.partition(" : ")
        self.sets[key] = NftSet(
            family,
            table,
            name,
            kind,
            tuple(k.strip() for k in key_type.split(" . ") if k),
            map_type.strip() or None,
            tuple(f.strip() for f in flags.group(1).split(",")) if flags else (),
            parse_elements(elements.group(1)) if elements else (),
            None,
            comment.group(1) if comment else None,
            duration(timeout.group(1)) if timeout else None,
        )

    def chain_has_rules(self, family: str, table: str, name: str) -> bool:
        """True once a rule was added to the chain (a later `comment` line is a rule)."""
        return self.positions.get((family, table, name), 0) > 0

    def elements(self, family: str, table: str, name: str, body: str) -> None:
        """`add element`: collected in a list (10k one-element commands for 10k Services)."""
        key = (family, table, name)
        if key not in self.sets:
            self.sets[key] = NftSet(family, table, name, "set")
        self.added.setdefault(key, []).extend(parse_elements(body))

    def final_sets(self) -> tuple[NftSet, ...]:
        """The sets with the elements added by `add element` commands appended."""
        out = []
        for key, old in self.sets.items():
            extra = self.added.get(key)
            out.append(
                old
                if not extra
                else NftSet(
                    old.family,
                    old.table,
                    old.name,
                    old.kind,
                    old.type,
                    old.map_type,
                    old.flags,
                    old.elements + tuple(extra),
                    old.handle,
                    old.comment,
                    old.timeout,
                )
            )
        return tuple(out)


_COMMAND = re.compile(
    r"^(add|create|insert|replace)\s+(table|chain|rule|set|map|element)\s+(\w+)\s+(\S+)"
    r"(?:\s+(\S+))?\s*(.*)$"
)


def _braces(text: str) -> str:
    """The content between the first `{` and its matching `}` (or the rest)."""
    start = text.find("{")
    if start < 0:
        return ""
    end = text.rfind("}")
    return text[start + 1 : end if end > start else len(text)]


def _parse_commands(lines: list[str], state: _TextState) -> None:
    """`nft -f` transaction syntax: add table/chain/rule/set/map/element ..."""
    for raw in lines:
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        found = _COMMAND.match(line)
        if not found:
            state.warnings.append(f"unparsed command: {line[:200]}")
            continue
        _verb, obj, family, table, name, rest = found.groups()
        if obj == "table":
            comment = re.search(r'comment\s+"((?:[^"\\]|\\.)*)"', line)
            state.table(family, table, comment.group(1) if comment else None)
        elif name is None:
            state.warnings.append(f"incomplete command: {line[:200]}")
        elif obj == "chain":
            state.chain(family, table, name, _braces(rest))
        elif obj == "rule":
            rest = re.sub(r"^(position|index|handle)\s+\d+\s+", "", rest)
            state.rule(family, table, name, rest)
        elif obj in ("set", "map"):
            state.set(family, table, name, obj, _braces(rest).replace(";", "\n"))
        elif obj == "element":
            state.elements(family, table, name, _braces(rest))


def _parse_listing(lines: list[str], state: _TextState) -> None:
    """`nft list ruleset/table` block syntax."""
    family = table = ""
    block: tuple[str, str] | None = None  # ("chain"|"set"|"map", name)
    buffer: list[str] = []
    for raw in lines:
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        head = re.match(r"^table\s+(\w+)\s+(\S+)\s*\{", line)
        if head:
            family, table = head.group(1), head.group(2)
            state.table(family, table)
            continue
        if block is None:
            opened = re.match(
                r"^(chain|set|map|flowtable|counter|quota|ct\s+\w+)\s+(\S+)\s*\{"
                r"\s*(\})?",
                line,
            )
            if opened:
                kind = opened.group(1)
                block = (kind, opened.group(2))
                buffer = []
                if opened.group(3):
                    _close_block(state, family, table, block, buffer)
                    block = None
            elif line.startswith("comment") and table:
                comment = re.search(r'"((?:[^"\\]|\\.)*)"', line)
                state.tables = [
                    NftTable(t.family, t.name, t.handle, comment.group(1) if comment else t.comment)
                    if (t.family, t.name) == (family, table)
                    else t
                    for t in state.tables
                ]
            elif line != "}":
                state.warnings.append(f"unparsed line: {line[:200]}")
            continue
        if line == "}":
            _close_block(state, family, table, block, buffer)
            block = None
            continue
        buffer.append(line)


def _close_block(
    state: _TextState, family: str, table: str, block: tuple[str, str], buffer: list[str]
) -> None:
    """Store a finished chain/set/map block."""
    kind, name = block
    if kind == "chain":
        spec = ""
        body = buffer
        if buffer and buffer[0].startswith("type "):
            spec, body = buffer[0], buffer[1:]
        state.chain(family, table, name, spec)
        for line in body:
            if line.startswith("comment ") and not state.chain_has_rules(family, table, name):
                continue
            state.rule(family, table, name, line)
    elif kind in ("set", "map"):
        state.set(family, table, name, kind, "\n".join(buffer))
    else:
        state.warnings.append(f"{kind} {name}: kept out of the model")


def parse_nft_text(text: str) -> NftRuleset:
    """Parse `nft list ruleset` or `nft -f` command text; never raises."""
    lines = text.split("\n")
    state = _TextState()
    commands = any(_COMMAND.match(line.strip()) for line in lines[:200])
    if commands:
        _parse_commands(lines, state)
    else:
        _parse_listing(lines, state)
    fmt = (
        "commands"
        if commands
        else ("text" if state.tables else ("empty" if not text.strip() else "error"))
    )
    return NftRuleset(
        fmt,
        tuple(state.tables),
        tuple(state.chains.values()),
        tuple(state.rules),
        state.final_sets(),
        tuple(dict.fromkeys(state.warnings))[:50],
    )


def parse_nft(text: str) -> NftRuleset:
    """Parse nft output in whichever format it is (JSON, listing, commands)."""
    return parse_nft_json(text) if text.lstrip().startswith("{") else parse_nft_text(text)


def _devices(value: object) -> tuple[str, ...]:
    """A chain's `dev`: one device name, or a list of them (nft -j)."""
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list):
        return tuple(str(v) for v in value)
    return ()
