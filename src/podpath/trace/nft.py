"""Walking native nftables base chains (kube-proxy's nftables mode) for one packet.

Rules are read from their nft syntax (the text `nft list` prints; JSON rules carry the
same rendering), which covers what kube-proxy writes: address/protocol/port matches and
concatenations, named and anonymous sets, verdict maps (`vmap @service-ips`),
`numgen random mod N vmap {...}` (N branches of 1/N), `fib ... type local`, `ct state`,
marks, jump/goto/return, dnat/snat/masquerade, drop/reject/accept. Anything else makes
the branch uncertain, naming the rule. Tables that iptables-nft owns (filter, nat, ...)
are skipped when an iptables-nft dump is present: those rules are walked from the dump.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from functools import lru_cache

from podpath.analysis.index import SnapshotIndex
from podpath.netfilter.nft import NftChain, NftElement, NftRule, NftRuleset, NftSet
from podpath.trace.hooks import Stage
from podpath.trace.model import Hop, JsonValue, NatRecord, Packet
from podpath.trace.netfilter import NfEnv, NfOutcome, WalkState, split_addr_port, walk_states
from podpath.trace.routing import address, contains

_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|\{[^}]*\}|\S+')
_PRIORITIES = {
    "raw": -300,
    "mangle": -150,
    "dstnat": -100,
    "filter": 0,
    "security": 50,
    "srcnat": 100,
}
_IPTABLES_TABLES = frozenset({"filter", "nat", "mangle", "raw", "security"})
_FAMILIES = {"ip": (4,), "ip6": (6,), "inet": (4, 6)}
# Two-word selectors and what they read from the packet.
_SELECTORS = {
    ("ip", "saddr"),
    ("ip", "daddr"),
    ("ip6", "saddr"),
    ("ip6", "daddr"),
    ("meta", "l4proto"),
    ("ip", "protocol"),
    ("th", "dport"),
    ("th", "sport"),
    ("tcp", "dport"),
    ("tcp", "sport"),
    ("udp", "dport"),
    ("udp", "sport"),
    ("ct", "state"),
    ("ct", "status"),
    ("meta", "mark"),
    ("meta", "iifname"),
    ("meta", "oifname"),
    ("meta", "nfproto"),
}
_ONE_WORD = frozenset({"mark", "iifname", "oifname", "l4proto"})
_VERDICTS = frozenset({"accept", "drop", "return", "continue"})


@dataclass(frozen=True)
class Expr:
    """One parsed piece of a rule: a match, a verdict map, a statement, or something unknown."""

    kind: str  # match | vmap | markcmp | numgen | stmt | unknown
    selectors: tuple[str, ...] = ()
    op: str = "=="
    rhs: str = ""
    args: tuple[str, ...] = ()


def _selector(tokens: list[str], i: int) -> tuple[str | None, int]:
    if i + 1 < len(tokens) and (tokens[i], tokens[i + 1]) in _SELECTORS:
        return f"{tokens[i]} {tokens[i + 1]}", i + 2
    if tokens[i] == "fib" and i + 3 < len(tokens) and tokens[i + 2] == "type":
        return f"fib {tokens[i + 1]} type", i + 3
    if tokens[i] in _ONE_WORD:
        return tokens[i], i + 1
    return None, i


@lru_cache(maxsize=200_000)
def parse_rule(text: str) -> tuple[Expr, ...]:
    """A rule's text as expressions, left to right (cached: kube-proxy repeats shapes)."""
    tokens = _TOKEN.findall(text)
    out: list[Expr] = []
    i, n = 0, len(tokens)
    while i < n:
        t = tokens[i]
        if t == "comment":
            i += 2
            continue
        if t == "counter":
            i += 1
            while i + 1 < n and tokens[i] in ("packets", "bytes"):
                i += 2
            continue
        if t in _VERDICTS:
            out.append(Expr("stmt", rhs=t))
            i += 1
            continue
        if t in ("jump", "goto") and i + 1 < n:
            out.append(Expr("stmt", rhs=t, args=(tokens[i + 1],)))
            i += 2
            continue
        if t == "reject":
            j = i + 1
            while j < n and tokens[j] not in ("comment",):
                j += 1
            out.append(Expr("stmt", rhs="reject", args=tuple(tokens[i + 1 : j])))
            i = j
            continue
        if t in ("dnat", "snat"):
            j = i + 1
            if j < n and tokens[j] in ("ip", "ip6"):
                j += 1
            if j + 1 < n and tokens[j] == "to":
                out.append(Expr("stmt", rhs=t, args=(tokens[j + 1],)))
                i = j + 2
                continue
        if t == "masquerade":
            j = i + 1
            args: list[str] = []
            while j < n and tokens[j] in ("fully-random", "random", "persistent", "to"):
                if tokens[j] == "to" and j + 1 < n:
                    args.append(tokens[j + 1])
                    j += 1
                j += 1
            out.append(Expr("stmt", rhs="masquerade", args=tuple(args)))
            i = j
            continue
        if t in ("update", "add") and i + 2 < n and tokens[i + 1].startswith("@"):
            out.append(Expr("stmt", rhs="update", args=(tokens[i + 1],)))
            i += 3
            continue
        if t in ("notrack", "log"):
            j = i + 1
            while t == "log" and j + 1 < n and tokens[j] in ("prefix", "level", "flags", "group"):
                j += 2
            out.append(Expr("stmt", rhs=t))
            i = j
            continue
        if t == "numgen" and i + 4 < n and tokens[i + 1] == "random" and tokens[i + 2] == "mod":
            j = i + 4
            offset = "0"
            if j + 1 < n and tokens[j] == "offset":
                offset, j = tokens[j + 1], j + 2
            if j + 1 < n and tokens[j] == "vmap":
                out.append(Expr("numgen", rhs=tokens[j + 1], args=(tokens[i + 3], offset)))
                i = j + 2
                continue
        sel, j = _selector(tokens, i)
        if sel is not None:
            selectors = [sel]
            while j + 1 < n and tokens[j] == ".":
                nxt, k = _selector(tokens, j + 1)
                if nxt is None:
                    break
                selectors.append(nxt)
                j = k
            if j < n and tokens[j] == "set" and sel in ("mark", "meta mark"):
                rest = (
                    tokens[j + 1 : j + 4]
                    if j + 1 < n and tokens[j + 1] in ("mark", "meta")
                    else tokens[j + 1 : j + 2]
                )
                out.append(Expr("stmt", rhs="markset", args=tuple(rest)))
                i = j + 1 + len(rest)
                continue
            if j < n and tokens[j] == "and" and j + 3 < n and tokens[j + 2] in ("==", "!="):
                out.append(
                    Expr(
                        "markcmp", tuple(selectors), tokens[j + 2], tokens[j + 3], (tokens[j + 1],)
                    )
                )
                i = j + 4
                continue
            if j < n and tokens[j] in ("vmap", "map") and j + 1 < n:
                out.append(Expr("vmap", tuple(selectors), rhs=tokens[j + 1]))
                i = j + 2
                continue
            op = "=="
            if j < n and tokens[j] in ("==", "!=", "eq", "ne"):
                op = "!=" if tokens[j] in ("!=", "ne") else "=="
                j += 1
            if j < n:
                out.append(Expr("match", tuple(selectors), op, tokens[j]))
                i = j + 1
                continue
        out.append(Expr("unknown", rhs=" ".join(tokens[i:])))
        break
    return tuple(out)


def _priority(chain: NftChain) -> int:
    prio = chain.prio
    if isinstance(prio, int):
        return prio
    if isinstance(prio, str):
        m = re.fullmatch(r"\s*(\w+)\s*(?:([+-])\s*(\d+))?\s*", prio)
        if m and m.group(1) in _PRIORITIES:
            base = _PRIORITIES[m.group(1)]
            delta = int(m.group(3) or 0)
            return base - delta if m.group(2) == "-" else base + delta
        try:
            return int(prio)
        except ValueError:
            return 0
    return 0


@dataclass
class _SetIndex:
    exact: dict[tuple[str, ...], str | None] = field(default_factory=dict)
    other: list[NftElement] = field(default_factory=list)


@dataclass
class NftIndex:
    """A parsed nftables ruleset with chains and sets indexed for walking."""

    ruleset: NftRuleset
    rules: dict[tuple[str, str, str], list[NftRule]] = field(default_factory=dict)
    chains: dict[tuple[str, str, str], NftChain] = field(default_factory=dict)
    sets: dict[tuple[str, str, str], NftSet] = field(default_factory=dict)
    _set_index: dict[tuple[str, str, str], _SetIndex] = field(default_factory=dict)
    # Base chains by hook (lower case), in chain order: a trace asks for the stages of
    # every hook it crosses, and kube-proxy's table has ~40k regular chains at 10k Services.
    base_chains: dict[str, list[tuple[str, str, str]]] = field(default_factory=dict)

    @classmethod
    def build(cls, ruleset: NftRuleset) -> NftIndex:
        """Index a ruleset once."""
        idx = cls(ruleset)
        for rule in ruleset.rules:
            idx.rules.setdefault((rule.family, rule.table, rule.chain), []).append(rule)
        for chain in ruleset.chains:
            key = (chain.family, chain.table, chain.name)
            idx.chains[key] = chain
        for key, chain in idx.chains.items():
            if chain.hook is not None:
                idx.base_chains.setdefault(chain.hook.lower(), []).append(key)
        for s in ruleset.sets:
            idx.sets[(s.family, s.table, s.name)] = s
        return idx

    def set_index(self, key: tuple[str, str, str]) -> _SetIndex | None:
        """Exact keys in a dict, prefixes/ranges in a list (built on first use)."""
        found = self._set_index.get(key)
        if found is None:
            s = self.sets.get(key)
            if s is None:
                return None
            found = _SetIndex()
            for e in s.elements:
                if any("/" in k or "-" in k for k in e.key):
                    found.other.append(e)
                else:
                    found.exact.setdefault(tuple(_norm(k) for k in e.key), e.value)
            self._set_index[key] = found
        return found


def _norm(text: str) -> str:
    return text.strip().lower()


_CACHE: dict[int, tuple[object, NftIndex]] = {}


def nft_index(index: SnapshotIndex) -> NftIndex | None:
    """The snapshot's nftables ruleset, parsed and indexed once per snapshot."""
    dump = index.snapshot.nft
    if dump is None:
        return None
    cached = _CACHE.get(id(dump))
    if cached is not None and cached[0] is dump:
        return cached[1]
    ruleset = index.nft_ruleset
    if ruleset is None:
        return None
    built = NftIndex.build(ruleset)
    if len(_CACHE) > 16:
        _CACHE.clear()
    _CACHE[id(dump)] = (dump, built)
    return built


def nft_stages(index: SnapshotIndex, hook: str, family: int) -> list[Stage]:
    """The nftables base chains registered at a hook, as stages."""
    nft = nft_index(index)
    if nft is None:
        return []
    skip_iptables = any(d.backend == "nft" for d in index.snapshot.iptables)
    return stages_for(nft, hook, family, skip_iptables)


def stages_for(
    nft: NftIndex, hook: str, family: int, skip_iptables_tables: bool = True
) -> list[Stage]:
    """Stages for every base chain of a family at a hook."""
    out: list[Stage] = []
    for fam, table, name in nft.base_chains.get(hook.lower(), ()):
        chain = nft.chains[(fam, table, name)]
        if chain.hook != hook.lower() or family not in _FAMILIES.get(fam, ()):
            continue
        if skip_iptables_tables and table in _IPTABLES_TABLES:
            continue

        def run(
            packet: Packet, env: NfEnv, prob: float, key: tuple[str, str, str] = (fam, table, name)
        ) -> list[NfOutcome]:
            return NftWalker(nft, key, env).walk(packet, prob)

        out.append(
            Stage(
                _priority(chain), f"nft {fam} {table} {name}", "nftables", chain.type == "nat", run
            )
        )
    return out


# A walk state's stack holds (chain, index of the next rule) here.
_State = WalkState


class NftWalker:
    """Walk one base chain of one table for a packet; every branch ends in a verdict."""

    def __init__(self, nft: NftIndex, key: tuple[str, str, str], env: NfEnv) -> None:
        self.nft = nft
        self.family, self.table, self.base = key
        self.env = env

    def chain_rules(self, name: str) -> list[NftRule]:
        """The rules of a chain of this table."""
        return self.nft.rules.get((self.family, self.table, name), [])

    def hop(self, rule: NftRule, text: str, **extra: JsonValue) -> Hop:
        """A netfilter hop for a rule of this table."""
        data: dict[str, JsonValue] = {
            "table": f"{self.family} {self.table}",
            "chain": rule.chain,
            "rule": rule.text,
            "backend": "nftables",
            "hook": self.nft.chains[(self.family, self.table, self.base)].hook,
            "position": rule.position,
        }
        data.update(extra)
        return Hop("netfilter", self.env.hostname, text, (rule.text,), (), data)

    def walk(self, packet: Packet, probability: float) -> list[NfOutcome]:
        """Every way the base chain can end."""
        start = _State(packet, probability, (), (), (), ((self.base, 0),))
        return walk_states(start, self._step, self._end, "nftables walk")

    def _end(self, st: _State, verdict: str, reason: str) -> NfOutcome:
        unsure = st.uncertain + ((reason,) if verdict == "UNCERTAIN" else ())
        return NfOutcome(st.probability, verdict, st.packet, st.hops, st.nat, unsure, reason)

    def _step(self, st: _State, done: list[NfOutcome]) -> list[_State]:
        chain, index = st.stack[-1]
        rules = self.chain_rules(chain)
        if index >= len(rules):
            return self._return(st, done)
        rule = rules[index]
        here = replace(st, stack=st.stack[:-1] + ((chain, index + 1),))
        return self._rule(here, rule, parse_rule(rule.text), 0, done)

    def _return(self, st: _State, done: list[NfOutcome]) -> list[_State]:
        if len(st.stack) > 1:
            return [replace(st, stack=st.stack[:-1])]
        base = self.nft.chains[(self.family, self.table, self.base)]
        policy = (base.policy or "accept").upper()
        done.append(
            self._end(
                st,
                policy if policy in ("ACCEPT", "DROP") else "UNCERTAIN",
                f"policy {policy.lower()} of {self.family} {self.table} {self.base}",
            )
        )
        return []

    def _rule(
        self, st: _State, rule: NftRule, exprs: tuple[Expr, ...], start: int, done: list[NfOutcome]
    ) -> list[_State]:
        """Evaluate expressions from `start`; a failed match moves on to the next rule."""
        label = f"{self.table}/{rule.chain} #{rule.position}"
        for pos in range(start, len(exprs)):
            e = exprs[pos]
            if e.kind == "unknown":
                note = f"{label} ({rule.text}): cannot evaluate '{e.rhs}'; assumed not to match"
                return [
                    replace(
                        st,
                        uncertain=st.uncertain + (note,),
                        hops=st.hops
                        + (
                            self.hop(
                                rule,
                                f"{label}: undecidable, assumed no match",
                                taken=False,
                                uncertain=True,
                            ),
                        ),
                    )
                ]
            if e.kind in ("match", "markcmp"):
                ok = self._match(e, st.packet)
                if ok is None:
                    note = f"{label} ({rule.text}): cannot evaluate {' . '.join(e.selectors)} {e.rhs}; assumed not to match"
                    return [replace(st, uncertain=st.uncertain + (note,))]
                if not ok:
                    return [st]
                continue
            if e.kind == "vmap":
                value = self._lookup(e, st.packet)
                if value is _UNKNOWN:
                    note = f"{label} ({rule.text}): cannot look up {e.rhs}; assumed no element"
                    return [replace(st, uncertain=st.uncertain + (note,))]
                if value is None:
                    return [st]
                hop = self.hop(
                    rule, f"{label}: {' . '.join(e.selectors)} vmap {e.rhs} -> {value}", taken=True
                )
                return self._verdict(replace(st, hops=st.hops + (hop,)), str(value), rule, done)
            if e.kind == "numgen":
                return self._numgen(st, e, rule, done)
            if e.kind == "stmt":
                result = self._stmt(st, e, rule, done, label)
                if result is None:
                    return []
                if isinstance(result, list):
                    return result
                st = result
        return [st]

    def _stmt(
        self, st: _State, e: Expr, rule: NftRule, done: list[NfOutcome], label: str
    ) -> _State | list[_State] | None:
        """Apply a statement: the new state, a list of states (jumps), or None (ended)."""
        what = e.rhs
        if what in _VERDICTS or what in ("jump", "goto"):
            target = f"{what} {e.args[0]}" if e.args else what
            hop = self.hop(rule, f"{label}: {target}", taken=True)
            return self._verdict(replace(st, hops=st.hops + (hop,)), target, rule, done)
        if what == "reject":
            hop = self.hop(rule, f"{label}: reject", taken=True)
            done.append(
                self._end(
                    replace(st, hops=st.hops + (hop,)),
                    "REJECT",
                    f"rejected by {label}: {rule.text}",
                )
            )
            return None
        if what == "markset":
            new = _mark_value(e.args, st.packet.mark)
            if new is None:
                return replace(
                    st, uncertain=st.uncertain + (f"{label}: mark statement not understood",)
                )
            hop = self.hop(rule, f"{label}: mark {st.packet.mark:#x} -> {new:#x}", taken=True)
            return replace(st, packet=st.packet.with_(mark=new), hops=st.hops + (hop,))
        if what in ("dnat", "snat", "masquerade"):
            self._nat(st, e, rule, done, label)
            return None
        return st  # update/log/notrack: no effect on the path

    def _verdict(
        self, st: _State, value: str, rule: NftRule, done: list[NfOutcome]
    ) -> list[_State]:
        word, _, arg = value.partition(" ")
        if word == "accept":
            done.append(self._end(st, "ACCEPT", f"accepted by {self.table}/{rule.chain}"))
            return []
        if word == "drop":
            done.append(self._end(st, "DROP", f"dropped by {self.table}/{rule.chain}: {rule.text}"))
            return []
        if word == "return":
            return self._return(st, done)
        if word == "continue":
            return [st]
        if word in ("jump", "goto") and arg:
            if (self.family, self.table, arg) not in self.nft.chains and not self.chain_rules(arg):
                return [
                    replace(st, uncertain=st.uncertain + (f"chain {arg} is not in the ruleset",))
                ]
            if word == "jump":
                return [replace(st, stack=st.stack + ((arg, 0),))]
            base = st.stack[:-1] if len(st.stack) > 1 else ((self.base, 10**9),)
            return [replace(st, stack=base + ((arg, 0),))]
        done.append(self._end(st, "UNCERTAIN", f"verdict {value!r} is not modelled"))
        return []

    def _numgen(self, st: _State, e: Expr, rule: NftRule, done: list[NfOutcome]) -> list[_State]:
        try:
            mod, offset = int(e.args[0]), int(e.args[1])
        except ValueError:
            return [replace(st, uncertain=st.uncertain + (f"numgen {e.args} not understood",))]
        elements = {_norm(el.key[0]): el.value for el in _anon_elements(e.rhs)}
        out: list[_State] = []
        for n in range(offset, offset + mod):
            value = elements.get(str(n))
            p = 1.0 / mod
            if value is None:
                continue
            hop = self.hop(
                rule,
                f"{self.table}/{rule.chain} #{rule.position}: numgen {n} of {mod} -> {value}",
                taken=True,
                probability=p,
            )
            branch = replace(st, probability=st.probability * p, hops=st.hops + (hop,))
            out.extend(self._verdict(branch, value, rule, done))
        return out

    def _nat(self, st: _State, e: Expr, rule: NftRule, done: list[NfOutcome], label: str) -> None:
        p = st.packet
        if e.rhs == "dnat":
            addr, port, note = split_addr_port(e.args[0])
            kind, before, after = (
                "DNAT",
                (p.dst, p.dport),
                (addr, port if port is not None else p.dport),
            )
            new = p.with_(dst=after[0], dport=after[1])
        else:
            if e.rhs == "snat":
                addr, port, note = split_addr_port(e.args[0])
            else:
                note = ""
                if self.env.out_address is None:
                    done.append(
                        self._end(
                            st,
                            "UNCERTAIN",
                            f"{label}: masquerade, but the out interface has no address",
                        )
                    )
                    return None
                addr, port = self.env.out_address, None
            kind, before = "SNAT", (p.src or "", p.sport)
            after = (addr, port if port is not None else p.sport)
            new = p.with_(src=after[0], sport=after[1])
        record = NatRecord(self.env.node, kind, before, after)
        text = f"{e.rhs} {_ap(before)} -> {_ap(after)}"
        hop = Hop(
            "nat",
            self.env.hostname,
            text,
            (note,) if note else (),
            (),
            {
                "from": _ap(before),
                "to": _ap(after),
                "type": kind,
                "target": e.rhs,
                "table": f"{self.family} {self.table}",
            },
        )
        done.append(
            self._end(
                replace(
                    st,
                    packet=new,
                    hops=st.hops + (self.hop(rule, f"{label}: {e.rhs}", taken=True), hop),
                    nat=st.nat + (record,),
                ),
                "ACCEPT",
                f"{e.rhs} by {label}",
            )
        )
        return None

    # --- matching -------------------------------------------------------------------

    def _value(self, selector: str, p: Packet) -> str | None:
        env = self.env.matches
        if selector in ("ip saddr", "ip6 saddr"):
            return p.src
        if selector in ("ip daddr", "ip6 daddr"):
            return p.dst
        if selector in ("meta l4proto", "ip protocol", "l4proto"):
            return p.proto
        if selector in ("th dport", "tcp dport", "udp dport"):
            if selector != "th dport" and selector.split()[0] != p.proto:
                return "\0"  # another protocol's port never matches
            return None if p.dport is None else str(p.dport)
        if selector in ("th sport", "tcp sport", "udp sport"):
            return None if p.sport is None else str(p.sport)
        if selector == "ct state":
            return p.ct_state.lower()
        if selector in ("mark", "meta mark"):
            return str(p.mark)
        if selector in ("iifname", "meta iifname"):
            return env.in_iface or ""
        if selector in ("oifname", "meta oifname"):
            return env.out_iface or ""
        if selector.startswith("fib "):
            which = p.src if selector.split()[1] == "saddr" else p.dst
            if which is None:
                return None
            return "local" if which in env.local_addresses else "unicast"
        if selector == "ct status":
            return "dnat" if env.dnat else ("snat" if env.snat else "")
        return None

    def _match(self, e: Expr, p: Packet) -> bool | None:
        if e.kind == "markcmp":
            try:
                masked = p.mark & int(e.args[0], 0)
                result = masked == int(e.rhs, 0)
            except ValueError:
                return None
            return result if e.op == "==" else not result
        values = [self._value(s, p) for s in e.selectors]
        if any(v is None for v in values):
            return None
        found = self._contains(e.rhs, tuple(v or "" for v in values))
        if found is None:
            return None
        return found if e.op == "==" else not found

    def _contains(self, rhs: str, values: tuple[str, ...]) -> bool | None:
        if rhs.startswith("@"):
            key = (self.family, self.table, rhs[1:])
            s = self.nft.sets.get(key)
            if s is None:
                return None
            if "dynamic" in s.flags:
                return None  # filled by the packets themselves (affinity): kernel state
            return self._in_elements(key, values) is not None
        if rhs.startswith("{"):
            return any(_key_matches(el.key, values) for el in _anon_elements(rhs))
        parts = tuple(x.strip() for x in re.split(r",\s*", rhs))
        if len(values) == 1 and len(parts) > 1:
            return any(_part_matches(x, values[0]) for x in parts)
        return _key_matches((rhs,), values)

    def _in_elements(self, key: tuple[str, str, str], values: tuple[str, ...]) -> NftElement | None:
        idx = self.nft.set_index(key)
        if idx is None:
            return None
        normal = tuple(_norm(v) for v in values)
        if normal in idx.exact:
            return NftElement(normal, idx.exact[normal])
        return next((el for el in idx.other if _key_matches(el.key, values)), None)

    def _lookup(self, e: Expr, p: Packet) -> str | None | object:
        values = [self._value(s, p) for s in e.selectors]
        if any(v is None for v in values):
            return _UNKNOWN
        vals = tuple(v or "" for v in values)
        if e.rhs.startswith("@"):
            key = (self.family, self.table, e.rhs[1:])
            if key not in self.nft.sets:
                return _UNKNOWN
            found = self._in_elements(key, vals)
            return found.value if found else None
        for el in _anon_elements(e.rhs):
            if _key_matches(el.key, vals):
                return el.value
        return None


_UNKNOWN = object()


def _ap(pair: tuple[str, int | None]) -> str:
    addr, port = pair
    return addr if port is None else f"{addr}:{port}"


@lru_cache(maxsize=4096)
def _anon_elements(body: str) -> tuple[NftElement, ...]:
    from podpath.netfilter.nft import parse_elements

    return parse_elements(body.strip()[1:-1] if body.strip().startswith("{") else body)


def _part_matches(pattern: str, value: str) -> bool:
    pattern, value = _norm(pattern), _norm(value)
    if pattern == value:
        return True
    if "/" in pattern:
        return contains(pattern, value)
    if "-" in pattern and address(pattern.split("-")[0]) is not None:
        lo, hi, v = address(pattern.split("-")[0]), address(pattern.split("-")[1]), address(value)
        return (
            lo is not None
            and hi is not None
            and v is not None
            and lo.version == v.version == hi.version
            and int(lo) <= int(v) <= int(hi)
        )
    if "-" in pattern and value.isdigit():
        lo_s, _, hi_s = pattern.partition("-")
        return lo_s.isdigit() and hi_s.isdigit() and int(lo_s) <= int(value) <= int(hi_s)
    if pattern.startswith("0x") and value.isdigit():
        return int(pattern, 16) == int(value)
    return False


def _key_matches(key: tuple[str, ...], values: tuple[str, ...]) -> bool:
    return len(key) == len(values) and all(
        _part_matches(k, v) for k, v in zip(key, values, strict=True)
    )


def _mark_value(args: tuple[str, ...], mark: int) -> int | None:
    try:
        if len(args) == 3 and args[0] in ("mark", "meta"):
            op, value = args[1], int(args[2], 0)
            return {"or": mark | value, "and": mark & value, "xor": mark ^ value}.get(op)
        if len(args) == 1:
            return int(args[0], 0)
    except ValueError:
        return None
    return None
