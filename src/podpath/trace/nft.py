"""Walking native nftables base chains (kube-proxy's nftables mode, Calico, host firewalls).

Each rule is evaluated from its structured statements, as `nft -j` prints them (rules
given as text are converted to the same structure by netfilter.nft_syntax): matches
of payload/meta/ct/fib selectors against values, named and anonymous sets, verdict
maps (`vmap @service-ips`), `numgen random mod N vmap {...}` (N branches of 1/N),
mark arithmetic (`meta mark set meta mark | 0x4000`, `meta mark & 0x4000 == 0`),
jump/goto/return, dnat/snat/masquerade/redirect, drop/reject/accept. The rule's text
is shown on the hop, never evaluated. What a snapshot cannot decide makes the branch
uncertain and names the rule; it is never guessed. Tables that iptables-nft owns
(filter, nat, ...) are skipped when an iptables-nft dump is present: those rules are
walked from the dump.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass, field, replace
from typing import Any

from podpath.analysis.index import SnapshotIndex
from podpath.netfilter.kube_proxy_nft import element_service
from podpath.netfilter.nft import (
    NftChain,
    NftElement,
    NftRule,
    NftRuleset,
    NftSet,
    gc_paused,
)
from podpath.netfilter.nft_text import value as text_of
from podpath.netfilter.owners import Owner, nft_owner
from podpath.trace.hooks import Stage
from podpath.trace.matches import range_in
from podpath.trace.model import Hop, JsonValue, NatRecord, Packet
from podpath.trace.netfilter import (
    NfEnv,
    NfOutcome,
    WalkState,
    split_addr_port,
    untracked,
    walk_states,
)
from podpath.trace.nft_values import (
    NoMatch,
    Unknown,
    Unread,
    Value,
    Where,
    check_knowable,
    equals,
    flags_of,
    has_unread,
    key_matches,
    normal,
    normal_key,
    read,
)

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
_VERDICTS = frozenset({"accept", "drop", "return", "continue", "jump", "goto"})
# Statements that change nothing the path depends on.
_PASSIVE = frozenset({"counter", "log", "quota", "synproxy"})
# Keys a `... set` statement may change without changing the packet's path.
_HARMLESS_MANGLE = frozenset(
    {("ct", "mark"), ("ct", "label"), ("meta", "priority"), ("meta", "nftrace"), ("ip", "dscp")}
)


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
    # Elements by their key's normal form; in a cached index, read a bucket at a time.
    exact: Mapping[tuple[str, ...], NftElement] = field(default_factory=dict)
    other: list[NftElement] = field(default_factory=list)  # prefixes, ranges, wildcards
    # The normal forms found at each position of the exact keys: a lookup with a part it
    # cannot read (ICMP at `daddr . l4proto . th dport`) scans `exact` only when every
    # part it read is found at its position (kube-proxy's protocols are tcp, udp, sctp),
    # instead of unpacking a cached 10k-element map for each ping.
    parts: tuple[frozenset[str], ...] = ()


@dataclass
class NftIndex:
    """A parsed nftables ruleset with chains and sets indexed for walking.

    Read from a cache (podpath.trace.index_cache), `ruleset` holds the tables only and
    the maps unpack their values when asked: the walk reads the maps, never `ruleset`.
    """

    ruleset: NftRuleset
    rules: Mapping[tuple[str, str, str], list[NftRule]] = field(default_factory=dict)
    chains: Mapping[tuple[str, str, str], NftChain] = field(default_factory=dict)
    sets: Mapping[tuple[str, str, str], NftSet] = field(default_factory=dict)
    _set_index: MutableMapping[tuple[str, str, str], _SetIndex] = field(default_factory=dict)
    # Base chains by hook (lower case), in chain order: a trace asks for the stages of
    # every hook it crosses, and kube-proxy's table has ~40k regular chains at 10k Services.
    base_chains: dict[str, list[tuple[str, str, str]]] = field(default_factory=dict)
    # kube-proxy's Services by name, from its service-ips maps (podpath.trace.probe),
    # kept with the index: scanning the 10k-element maps took 7-30 ms of every trace.
    service_names: Mapping[str, list[tuple[str, int, str, str]]] | None = None

    @classmethod
    def build(cls, ruleset: NftRuleset) -> NftIndex:
        """Index a ruleset once (with the cyclic GC paused, see `_build`)."""
        return gc_paused(cls._build)(ruleset)

    @classmethod
    def _build(cls, ruleset: NftRuleset) -> NftIndex:
        # Right after a parse the heap holds ~650k objects: each collection the 40k new
        # lists set off walked all of them (1.0 s of 10k Services' index, 0.06 s paused).
        rules: dict[tuple[str, str, str], list[NftRule]] = {}
        for rule in ruleset.rules:
            rules.setdefault((rule.family, rule.table, rule.chain), []).append(rule)
        chains = {(chain.family, chain.table, chain.name): chain for chain in ruleset.chains}
        base_chains: dict[str, list[tuple[str, str, str]]] = {}
        for key, chain in chains.items():
            if chain.hook is not None:
                base_chains.setdefault(chain.hook.lower(), []).append(key)
        sets = {(s.family, s.table, s.name): s for s in ruleset.sets}
        return cls(ruleset, rules, chains, sets, {}, base_chains)

    def set_index(self, key: tuple[str, str, str]) -> _SetIndex | None:
        """Exact keys in a dict, prefixes/ranges in a list (built on first use)."""
        found = self._set_index.get(key)
        if found is None:
            s = self.sets.get(key)
            if s is None:
                return None
            found = self._set_index[key] = gc_paused(_index_set)(s)
        return found


def _index_set(s: NftSet) -> _SetIndex:
    """A set's elements: exact keys by their normal form, prefixes and ranges apart."""
    exact: dict[tuple[str, ...], NftElement] = {}
    other: list[NftElement] = []
    for e in s.elements:
        if any("/" in k or "-" in k or k.endswith("*") for k in e.key):
            other.append(e)
        else:
            exact.setdefault(tuple(normal_key(k) for k in e.key), e)
    width = max((len(k) for k in exact), default=0)
    parts = tuple(frozenset(k[i] for k in exact if len(k) > i) for i in range(width))
    return _SetIndex(exact, other, parts)


def _may_agree(parts: tuple[frozenset[str], ...], values: tuple[Value | Unread, ...]) -> bool:
    """Whether some exact key could equal every part of `values` that was read."""
    return all(
        i < len(parts) and normal(v) in parts[i]
        for i, v in enumerate(values)
        if not isinstance(v, Unread)
    )


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


def adopt_nft_index(index: SnapshotIndex, built: NftIndex) -> None:
    """Use an index built earlier (podpath.trace.index_cache) for this snapshot's nft dump."""
    dump = index.snapshot.nft
    if dump is not None:
        if len(_CACHE) > 16:
            _CACHE.clear()
        _CACHE[id(dump)] = (dump, built)


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
# What one statement did: go on with this state, branch into these, or end (None).
_Step = _State | list[_State] | None


class _RuleMiss(Exception):
    """The rule does not match: go on with the next rule."""


def _counter(rule: NftRule) -> dict[str, JsonValue] | None:
    """The rule's packet/byte counter, when it has one."""
    for stmt in rule.expr:
        if isinstance(stmt, dict) and isinstance(stmt.get("counter"), dict):
            c = stmt["counter"]
            if "packets" in c:
                return {"packets": int(c["packets"]), "bytes": int(c.get("bytes", 0))}
    return None


class NftWalker:
    """Walk one base chain of one table for a packet; every branch ends in a verdict."""

    def __init__(self, nft: NftIndex, key: tuple[str, str, str], env: NfEnv) -> None:
        self.nft = nft
        self.family, self.table, self.base = key
        self.env = env
        hook = nft.chains[key].hook or ""
        self.where = Where(env.matches, hook.lower())

    def chain_rules(self, name: str) -> list[NftRule]:
        """The rules of a chain of this table."""
        return self.nft.rules.get((self.family, self.table, name), [])

    def label(self, rule: NftRule) -> str:
        """`table/chain #position` of a rule."""
        return f"{self.table}/{rule.chain} #{rule.position}"

    def hop(
        self,
        st: _State,
        rule: NftRule,
        text: str,
        details: tuple[str, ...] = (),
        behalf: tuple[str, str] | None = None,
        **extra: JsonValue,
    ) -> Hop:
        """A netfilter hop for a rule of this table, run in state `st` (or for `behalf`:
        the Service a map element names, and how that is known)."""
        made = nft_owner(self.family, self.table, rule.chain, rule.comment)
        if behalf is None and made.kind == "kube-proxy" and st.on_behalf is not None:
            # A shared chain (reject-chain) entered from a Service's map element: its rule
            # acts for that Service. A chain named for a Service says so itself.
            behalf = st.on_behalf[:2] if len(st.stack) >= st.on_behalf[2] else None
        if behalf is not None:
            made = Owner("service", "kube-proxy", *behalf)
        owner: dict[str, JsonValue] = {**made.as_json()}
        data: dict[str, JsonValue] = {
            "table": f"{self.family} {self.table}",
            "chain": rule.chain,
            "rule": rule.text,
            "backend": "nftables",
            "hook": self.nft.chains[(self.family, self.table, self.base)].hook,
            "position": rule.position,
            "counter": _counter(rule),
            "owner": owner,
        }
        data.update(extra)
        return Hop("netfilter", self.env.hostname, text, details, (), data)

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
        return self._rule(here, rule, done)

    def _return(self, st: _State, done: list[NfOutcome]) -> list[_State]:
        if len(st.stack) > 1:
            behalf = st.on_behalf
            if behalf is not None and len(st.stack) - 1 < behalf[2]:
                behalf = None  # back in the chain that looked the Service up: no longer its
            return [replace(st, stack=st.stack[:-1], on_behalf=behalf)]
        base = self.nft.chains[(self.family, self.table, self.base)]
        policy = (base.policy or "accept").upper()
        if policy != "ACCEPT":
            # A hop of its own, as iptables' policy has: without it the drop was told as
            # the last rule's (a host firewall's `policy drop` blamed on kube-proxy's
            # ACCEPT in another table).
            st = replace(st, hops=st.hops + (self._policy_hop(st, base.hook, policy),))
        done.append(
            self._end(
                st,
                policy if policy in ("ACCEPT", "DROP") else "UNCERTAIN",
                f"policy {policy.lower()} of {self.family} {self.table} {self.base}",
            )
        )
        return []

    def _policy_hop(self, st: _State, hook: str | None, policy: str) -> Hop:
        """The base chain's policy deciding: a hop named for the chain, owned by its table."""
        owner = nft_owner(self.family, self.table, self.base, None)
        data: dict[str, JsonValue] = {
            "table": f"{self.family} {self.table}",
            "chain": self.base,
            "rule": f"policy {policy.lower()}",
            "backend": "nftables",
            "hook": hook,
            "position": None,
            "owner": {**owner.as_json()},
        }
        text = f"{self.family} {self.table} {self.base}: no rule decided; policy {policy.lower()}"
        return Hop("netfilter", self.env.hostname, text, (), (), data)

    def _rule(self, st: _State, rule: NftRule, done: list[NfOutcome]) -> list[_State]:
        """Evaluate a rule's statements in order; a failed match moves on to the next rule."""
        notes: list[str] = []
        for stmt in rule.expr:
            try:
                result = self._statement(st, rule, stmt, done, notes)
            except _RuleMiss:
                if not notes:
                    return [st]
                # A lookup in kernel-filled state (an affinity pin) is worth showing even
                # when it misses: the branch took the path it took because of it.
                miss = self.hop(
                    st, rule, f"{self.label(rule)}: no match", tuple(notes), taken=False
                )
                return [replace(st, hops=st.hops + (miss,))]
            except Unknown as why:
                return [self._undecidable(st, rule, stmt, str(why))]
            if result is None:
                return []
            if isinstance(result, list):
                return result
            st = result
        if notes:  # a rule that only recorded something (an affinity pin): say what
            hop = self.hop(st, rule, f"{self.label(rule)}: {rule.text}", tuple(notes), taken=True)
            st = replace(st, hops=st.hops + (hop,))
        return [st]

    def _undecidable(self, st: _State, rule: NftRule, stmt: Any, why: str) -> _State:
        """The rule cannot be evaluated here: assumed not to match, and the branch says so."""
        label = self.label(rule)
        what = text_of(stmt) if not isinstance(stmt, dict) or "match" not in stmt else ""
        shown = what or _match_text(stmt)
        note = f"{label} ({rule.text}): cannot evaluate '{shown}': {why}; assumed not to match"
        hop = self.hop(
            st,
            rule,
            f"{label}: undecidable, assumed no match",
            (note,),
            taken=False,
            uncertain=True,
        )
        return replace(st, uncertain=st.uncertain + (note,), hops=st.hops + (hop,))

    def _statement(
        self, st: _State, rule: NftRule, stmt: Any, done: list[NfOutcome], notes: list[str]
    ) -> _Step:
        """Apply one statement; raise _RuleMiss when a match fails, Unknown when undecidable."""
        if not isinstance(stmt, dict) or len(stmt) != 1:
            raise Unknown("a statement of unknown shape")
        ((kind, body),) = stmt.items()
        if kind == "match":
            if not self._match(body, st.packet, notes):
                raise _RuleMiss()
            return st
        if kind in _VERDICTS:
            target = f"{kind} {body['target']}" if isinstance(body, dict) else kind
            hop = self.hop(st, rule, f"{self.label(rule)}: {target}", tuple(notes), taken=True)
            return self._verdict(replace(st, hops=st.hops + (hop,)), target, rule, done)
        if kind in _PASSIVE:
            return st
        if kind == "notrack":
            label = f"{self.label(rule)}: notrack: untracked"
            hop = self.hop(st, rule, label, tuple(notes), taken=True, untracked=True)
            return untracked(st, hop)
        if kind == "limit":
            # One probe packet is within any rate; `limit rate over` matches only above it.
            if isinstance(body, dict) and body.get("inv"):
                raise _RuleMiss()
            return st
        if kind == "vmap":
            return self._vmap(st, rule, body, done, notes)
        if kind == "reject":
            hop = self.hop(st, rule, f"{self.label(rule)}: reject", tuple(notes), taken=True)
            done.append(
                self._end(
                    replace(st, hops=st.hops + (hop,)),
                    "REJECT",
                    f"rejected by {self.label(rule)}: {rule.text}",
                )
            )
            return None
        if kind == "mangle":
            return self._mangle(st, rule, body)
        if kind in ("dnat", "snat", "masquerade", "redirect"):
            self._nat(st, rule, kind, body, done, notes)
            return None
        if kind == "set":
            notes.append(self._set_update(st.packet, body))
            return st
        if kind == "queue":
            raise Unknown(
                "the packet is queued to a program in userspace (NFQUEUE), which gives the "
                "verdict; no ruleset says what it decides"
            )
        raise Unknown(f"the {kind} statement is not modelled")

    # --- matches --------------------------------------------------------------------

    def _match(self, body: dict[str, Any], p: Packet, notes: list[str]) -> bool:
        op = body.get("op", "==")
        try:
            left = read(body.get("left"), p, self.where)
        except NoMatch:
            return False
        except Unknown:
            decided = _client_port_match(body, p, self.where.matches.client_ports)
            if decided is None:
                raise
            return decided
        right = body.get("right")
        if isinstance(left, frozenset) and _is_status(body.get("left")):
            check_knowable(left, right)
        if op in ("==", "in", "!="):
            found = self._contains(left, right, op, notes)
            return found if op != "!=" else not found
        if op in ("<", ">", "<=", ">="):
            if not isinstance(left, int) or not isinstance(right, int):
                raise Unknown(f"'{op}' of values that are not numbers")
            return {
                "<": left < right,
                ">": left > right,
                "<=": left <= right,
                ">=": left >= right,
            }[op]
        raise Unknown(f"the operator {op!r} is not modelled")

    def _contains(self, left: Value, right: Any, op: str, notes: list[str]) -> bool:
        """Equality, set membership, or (flags) any-of, for == / in / !=."""
        if isinstance(right, str) and right.startswith("@"):
            found = self._lookup(right[1:], left, notes)
            return found is not None
        if isinstance(right, dict) and "set" in right:
            items = right["set"]
            return any(_element_matches(left, item) for item in _as_list(items))
        if isinstance(right, list):
            return bool(flags_of(left) & {str(x).lower() for x in right})
        return equals(left, right)

    def _lookup(self, name: str, left: Value, notes: list[str]) -> NftElement | None:
        """The element of a named set or map that holds the value (None when none does)."""
        key = (self.family, self.table, name)
        s = self.nft.sets.get(key)
        if s is None:
            raise Unknown(f"set {name} is not in the ruleset")
        values = left if isinstance(left, tuple) else (left,)
        found = self._find(key, values)
        if _is_timed(s):
            notes.append(_pin_note(s, values, found))
        return found

    def _find(self, key: tuple[str, str, str], values: tuple[Value, ...]) -> NftElement | None:
        idx = self.nft.set_index(key)
        if idx is None:
            return None
        if has_unread(values):
            # No exact key to look up: each element is compared on the parts read, and
            # one agreeing on all of them leaves the lookup undecided (Unknown).
            exact = list(idx.exact.values()) if _may_agree(idx.parts, values) else []
            for el in exact + idx.other:
                if key_matches(values, el.key):
                    return el
            return None
        found = idx.exact.get(tuple(normal(v) for v in values))
        if found is not None:
            return found
        for el in idx.other:
            if key_matches(values, el.key) if len(values) > 1 else equals(values[0], el.key[0]):
                return el
        return None

    # --- verdict maps and numgen ----------------------------------------------------

    def _vmap(
        self,
        st: _State,
        rule: NftRule,
        body: dict[str, Any],
        done: list[NfOutcome],
        notes: list[str],
    ) -> _Step:
        key_expr, data = body.get("key"), body.get("data")
        if isinstance(key_expr, dict) and "numgen" in key_expr:
            return self._numgen(st, rule, key_expr["numgen"], data, done)
        try:
            left = read(key_expr, st.packet, self.where)
        except NoMatch:
            raise _RuleMiss() from None
        verdict: str | None
        behalf: tuple[str, str] | None = None
        if isinstance(data, str) and data.startswith("@"):
            found = self._lookup(data[1:], left, notes)
            verdict = found.value if found is not None else None
            behalf = self._element_service(data[1:], found)
        elif isinstance(data, dict) and "set" in data:
            verdict = None
            for item in _as_list(data["set"]):
                if isinstance(item, list) and len(item) == 2 and _element_matches(left, item[0]):
                    verdict = _verdict_text(item[1])
                    break
        else:
            raise Unknown("a verdict map of unknown shape")
        if verdict is None:
            raise _RuleMiss()  # no element: the rule does not match
        shown = text_of(key_expr)
        where = data if isinstance(data, str) else "{...}"
        hop = self.hop(
            st,
            rule,
            f"{self.label(rule)}: {shown} vmap {where} -> {verdict}",
            tuple(notes),
            behalf,
            taken=True,
        )
        out = self._verdict(replace(st, hops=st.hops + (hop,)), verdict, rule, done)
        if behalf is None:
            return out
        # The chain the element sends the packet to runs for the Service, until it returns.
        target = verdict.partition(" ")[2].strip()
        return [
            replace(s, on_behalf=(*behalf, len(s.stack))) if s.stack[-1][0] == target else s
            for s in out
        ]

    def _element_service(self, name: str, found: NftElement | None) -> tuple[str, str] | None:
        """The Service a kube-proxy map element's comment names, and how that is known."""
        if self.table != "kube-proxy" or found is None:
            return None
        service = element_service(found.comment)
        if service is None:
            return None
        return service, f"comment of its element in map {name}"

    def _numgen(
        self, st: _State, rule: NftRule, gen: dict[str, Any], data: Any, done: list[NfOutcome]
    ) -> list[_State]:
        mode, mod, offset = gen.get("mode"), gen.get("mod"), gen.get("offset", 0) or 0
        if not isinstance(mod, int) or mod <= 0 or not isinstance(offset, int):
            raise Unknown("numgen without a modulus")
        if mode != "random":
            raise Unknown(f"numgen {mode} depends on packets seen before; the choice is unknown")
        if isinstance(data, dict) and "set" in data:
            pairs = [
                (item[0], _verdict_text(item[1]))
                for item in _as_list(data["set"])
                if isinstance(item, list) and len(item) == 2
            ]
        elif isinstance(data, str) and data.startswith("@"):
            s = self.nft.sets.get((self.family, self.table, data[1:]))
            if s is None:
                raise Unknown(f"map {data} is not in the ruleset")
            pairs = [(e.key[0], e.value) for e in s.elements if len(e.key) == 1]
        else:
            raise Unknown("a numgen map of unknown shape")
        out: list[_State] = []
        p = 1.0 / mod
        for n in range(offset, offset + mod):
            value = next((v for k, v in pairs if v is not None and equals(n, k)), None)
            if value is None:
                continue  # no element: this share of packets does not match the rule
            hop = self.hop(
                st,
                rule,
                f"{self.label(rule)}: numgen {n} of {mod} -> {value}",
                (f"numgen random: this branch takes it with probability {p:.4f}",),
                taken=True,
                probability=p,
            )
            branch = replace(st, probability=st.probability * p, hops=st.hops + (hop,))
            out.extend(self._verdict(branch, value, rule, done))
        return out

    def _verdict(
        self, st: _State, value: str, rule: NftRule, done: list[NfOutcome]
    ) -> list[_State]:
        word, _, arg = value.partition(" ")
        arg = arg.strip()
        if word == "accept":
            done.append(self._end(st, "ACCEPT", f"accepted by {self.label(rule)}"))
            return []
        if word == "drop":
            done.append(self._end(st, "DROP", f"dropped by {self.label(rule)}: {rule.text}"))
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

    # --- statements that change the packet --------------------------------------------

    def _mangle(self, st: _State, rule: NftRule, body: dict[str, Any]) -> _Step:
        key = body.get("key")
        which = _selector(key)
        if which == ("meta", "mark"):
            new = read(body.get("value"), st.packet, self.where)
            if not isinstance(new, int):
                raise Unknown("a mark that is not a number")
            new &= 0xFFFFFFFF
            hop = self.hop(
                st, rule, f"{self.label(rule)}: mark {st.packet.mark:#x} -> {new:#x}", taken=True
            )
            return replace(st, packet=st.packet.with_(mark=new), hops=st.hops + (hop,))
        if which in _HARMLESS_MANGLE:
            return st
        raise Unknown(f"setting {text_of(key)} is not modelled")

    def _set_update(self, p: Packet, body: Any) -> str:
        """What an `update @set { ip saddr }` records (kube-proxy's session affinity)."""
        name = str(body.get("set", "")).lstrip("@") if isinstance(body, dict) else ""
        try:
            value = read(body.get("elem"), p, self.where) if isinstance(body, dict) else None
        except (Unknown, NoMatch):
            value = None
        s = self.nft.sets.get((self.family, self.table, name))
        timeout = f" for {s.timeout}s" if s is not None and s.timeout else ""
        shown = normal(value) if value is not None else "the packet"
        return f"records {shown} in set {name}{timeout}: later connections follow this choice"

    def _nat(
        self,
        st: _State,
        rule: NftRule,
        kind: str,
        body: Any,
        done: list[NfOutcome],
        notes: list[str],
    ) -> None:
        p = st.packet
        label = self.label(rule)
        args = body if isinstance(body, dict) else {}
        note = ""
        if kind in ("dnat", "redirect"):
            if kind == "redirect":
                addr = self.env.in_address or "127.0.0.1"
                port = _port(args.get("port"), p.dport)
            else:
                addr, port, note = _nat_target(args, p.dport)
            before = (p.dst, p.dport)
            after = (addr, port)
            record_kind = "DNAT"
            new = p.with_(dst=addr, dport=port)
        else:
            if kind == "snat":
                addr, port, note = _nat_target(args, p.sport)
            else:
                if self.env.out_address is None:
                    done.append(
                        self._end(
                            st,
                            "UNCERTAIN",
                            f"{label}: masquerade, but the out interface has no address",
                        )
                    )
                    return
                addr, port = self.env.out_address, _port(args.get("port"), p.sport)
            before = (p.src or "", p.sport)
            after = (addr, port)
            record_kind = "SNAT"
            new = p.with_(src=addr, sport=port)
        record = NatRecord(self.env.node, record_kind, before, after)
        nat_hop = Hop(
            "nat",
            self.env.hostname,
            f"{kind} {_ap(before)} -> {_ap(after)}",
            (note,) if note else (),
            (),
            {
                "from": _ap(before),
                "to": _ap(after),
                "type": record_kind,
                "target": kind,
                "table": f"{self.family} {self.table}",
            },
        )
        rule_hop = self.hop(st, rule, f"{label}: {kind}", tuple(notes), taken=True)
        done.append(
            self._end(
                replace(st, packet=new, hops=st.hops + (rule_hop, nat_hop), nat=st.nat + (record,)),
                "ACCEPT",
                f"{kind} by {label}",
            )
        )


def _ap(pair: tuple[str, int | None]) -> str:
    addr, port = pair
    if port is None:
        return addr
    return f"[{addr}]:{port}" if ":" in addr else f"{addr}:{port}"


def _port(value: Any, default: int | None) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, dict) and isinstance(value.get("range"), list) and value["range"]:
        first = value["range"][0]
        return first if isinstance(first, int) else default
    if value is None:
        return default
    raise Unknown("a NAT port given by an expression")


def _nat_target(args: dict[str, Any], default_port: int | None) -> tuple[str, int | None, str]:
    """The address and port a dnat/snat statement writes (the first of a range, with a note)."""
    addr = args.get("addr")
    note = ""
    if isinstance(addr, dict) and isinstance(addr.get("range"), list) and addr["range"]:
        note = "an address range: the kernel picks one; showing the first"
        addr = addr["range"][0]
    if not isinstance(addr, str):
        raise Unknown("a NAT address given by an expression (a map lookup)")
    host, port_in_text, text_note = split_addr_port(addr)
    port = _port(args.get("port"), port_in_text if port_in_text is not None else default_port)
    if isinstance(args.get("port"), dict):
        note = note or "a port range: the kernel picks one; showing the first"
    return host, port, note or text_note


def _selector(expr: Any) -> tuple[str, str] | None:
    if isinstance(expr, dict) and len(expr) == 1:
        ((kind, body),) = expr.items()
        if isinstance(body, dict):
            if kind == "payload":
                return (str(body.get("protocol")), str(body.get("field")))
            if kind in ("meta", "ct"):
                return (kind, str(body.get("key")))
    return None


def _client_port_match(body: dict[str, Any], p: Packet, ports: tuple[int, ...]) -> bool | None:
    """A comparison of the client's unknown port (the first packet's source, the answer's
    destination) with a port, a range or an anonymous set of them, decided when the
    client's whole ip_local_port_range is in them or out of them (as iptables' are,
    podpath.trace.matches.range_in); None otherwise."""
    left, op = body.get("left"), body.get("op", "==")
    payload = left.get("payload") if isinstance(left, dict) else None
    if not isinstance(payload, dict) or len(ports) != 2 or op not in ("==", "in", "!="):
        return None
    field = payload.get("field")
    client = "sport" if p.direction == "original" else "dport"
    known = p.sport if field == "sport" else p.dport
    if field != client or known is not None or payload.get("protocol") not in _PORT_HEADERS:
        return None
    if p.proto not in ("tcp", "udp", "sctp"):
        return None  # no ports: th reads other header bytes
    spec = _port_spec(body.get("right"))
    found = range_in(spec, ports[0], ports[1]) if spec is not None else None
    return None if found is None else (found if op != "!=" else not found)


# The headers whose sport and dport fields are a transport port.
_PORT_HEADERS = frozenset({"th", "tcp", "udp", "sctp"})


def _port_spec(right: Any) -> str | None:
    """`80`, `1000:2000`, `22,80:90`: iptables' spelling of a port, a range or an
    anonymous set of them; None for anything else (a named set, a map)."""
    items = right["set"] if isinstance(right, dict) and "set" in right else [right]
    parts = []
    for item in items if isinstance(items, list) else [items]:
        if isinstance(item, int) and not isinstance(item, bool):
            parts.append(str(item))
        elif isinstance(item, dict) and isinstance(item.get("range"), list):
            low, high = item["range"]
            if not (isinstance(low, int) and isinstance(high, int)):
                return None
            parts.append(f"{low}:{high}")
        else:
            return None
    return ",".join(parts) if parts else None


def _is_status(expr: Any) -> bool:
    return _selector(expr) == ("ct", "status")


def _as_list(items: Any) -> list[Any]:
    return items if isinstance(items, list) else [items]


def _element_matches(left: Value, item: Any) -> bool:
    if isinstance(item, dict) and "concat" in item:
        return key_matches(left, tuple(item["concat"]))
    return equals(left, item)


def _verdict_text(data: Any) -> str | None:
    """`goto X` / `jump X` / `drop` from a map element's JSON data."""
    if isinstance(data, str):
        return data
    if isinstance(data, dict) and len(data) == 1:
        ((kind, body),) = data.items()
        if kind in ("jump", "goto") and isinstance(body, dict):
            return f"{kind} {body.get('target')}"
        if body is None:
            return str(kind)
    return None


def _is_timed(s: NftSet) -> bool:
    """A set the packets fill themselves (kube-proxy's affinity sets): kernel state."""
    return "timeout" in s.flags or "dynamic" in s.flags


def _pin_note(s: NftSet, values: tuple[Value, ...], found: NftElement | None) -> str:
    shown = " . ".join(normal(v) for v in values)
    if found is None:
        return f"{shown} is not in set {s.name} when the snapshot was taken"
    expires = f", expires in {found.expires}s" if found.expires is not None else ""
    return f"{shown} is in set {s.name} when the snapshot was taken{expires}: pinned"


def _match_text(stmt: Any) -> str:
    body = stmt.get("match", {}) if isinstance(stmt, dict) else {}
    if not isinstance(body, dict):
        return text_of(stmt)
    op = body.get("op", "==")
    left = text_of(body.get("left"))
    right = text_of(body.get("right"))
    return f"{left} {right}" if op in ("==", "in") else f"{left} {op} {right}"
