"""Walking iptables chains rule by rule for one packet at one hook.

ipt_do_table() semantics: rules in order; a match with a target jumps (pushes a
return point), goes to (replaces the current chain), or gives a verdict; RETURN or
the end of a user chain returns to the caller; the end of a built-in chain applies
its policy. ACCEPT ends only the current table; the next table at the hook runs.
`-m statistic` splits the walk into branches with the probability the kernel uses.
Chains like KUBE-SERVICES (10k rules) are not scanned: the ruleset's dispatch index
gives the few rules that can match the packet's (destination, protocol, port).
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable
from dataclasses import dataclass, replace

from podpath.netfilter.iptables_save import Ruleset
from podpath.netfilter.model import Rule
from podpath.netfilter.owners import iptables_owner
from podpath.trace.matches import MatchEnv, evaluate_rule
from podpath.trace.model import Hop, JsonValue, NatRecord, Packet
from podpath.trace.policy import allow_note

# The kernel's hook priorities per table (include/uapi/linux/netfilter_ipv4.h:
# RAW -300, MANGLE -150, NAT_DST -100, FILTER 0, SECURITY 50, NAT_SRC 100).
TABLE_PRIORITY: dict[str, dict[str, int]] = {
    "PREROUTING": {"raw": -300, "mangle": -150, "nat": -100},
    "INPUT": {"mangle": -150, "filter": 0, "security": 50, "nat": 100},
    "FORWARD": {"mangle": -150, "filter": 0, "security": 50},
    "OUTPUT": {"raw": -300, "mangle": -150, "nat": -100, "filter": 0, "security": 50},
    "POSTROUTING": {"mangle": -150, "nat": 100},
}
# Targets that only annotate, log or mark the packet and let the walk continue.
CONTINUING = frozenset(
    {
        "LOG",
        "NFLOG",
        "ULOG",
        "TRACE",
        "AUDIT",
        "CONNMARK",
        "CT",
        "NOTRACK",
        "TCPMSS",
        "CHECKSUM",
        "DSCP",
        "TOS",
        "TTL",
        "HL",
        "CLASSIFY",
        "SECMARK",
        "CONNSECMARK",
        "IDLETIMER",
        "LED",
        "SET",
        "ECN",
        "RATEEST",
        "TCPOPTSTRIP",
    }
)
# Chains longer than this are walked through the dispatch index.
DISPATCH_MIN_RULES = 32
MAX_STEPS = 20_000


@dataclass(frozen=True)
class NfEnv:
    """Where the walk happens: node, backend, interfaces and what conntrack knows."""

    node: int
    hostname: str
    backend: str
    matches: MatchEnv
    out_address: str | None = None  # MASQUERADE's source: the out interface's address
    in_address: str | None = None  # REDIRECT's destination

    def on(self, backend: str) -> NfEnv:
        """This env for a table of one backend (each table walk of a hook)."""
        return NfEnv(
            self.node, self.hostname, backend, self.matches, self.out_address, self.in_address
        )


@dataclass(frozen=True)
class NfOutcome:
    """One way a table (or a whole hook) ended for the packet."""

    probability: float
    verdict: str  # ACCEPT | DROP | REJECT | UNCERTAIN
    packet: Packet
    hops: tuple[Hop, ...] = ()
    nat: tuple[NatRecord, ...] = ()
    uncertain: tuple[str, ...] = ()
    reason: str = ""

    def extended(
        self, hops: tuple[Hop, ...], nat: tuple[NatRecord, ...], uncertain: tuple[str, ...]
    ) -> NfOutcome:
        """This outcome with what earlier tables of the hook did (each endpoint of a
        Service): built directly, as dataclasses.replace costs twice as much."""
        return NfOutcome(
            self.probability, self.verdict, self.packet, hops, nat, uncertain, self.reason
        )


@dataclass(frozen=True)
class WalkState:
    """One way through a ruleset so far: the packet as rewritten, and where in which chain."""

    packet: Packet
    probability: float
    hops: tuple[Hop, ...]
    nat: tuple[NatRecord, ...]
    uncertain: tuple[str, ...]
    stack: tuple[tuple[str, int], ...]  # (chain, rule position), innermost last
    # (Service, how it is known, stack depth): the Service a kube-proxy map element sent
    # the walk into a shared chain for (its reject-chain); rules at that depth or deeper
    # are run for it. nftables walks only.
    on_behalf: tuple[str, str, int] | None = None

    def at(self, position: int) -> WalkState:
        """This state moved to another rule of its innermost chain (a step of every walk)."""
        chain = self.stack[-1][0]
        return self.moved(self.hops, (*self.stack[:-1], (chain, position)))

    def plus_hop(self, hop: Hop) -> WalkState:
        """This state with one more hop (each rule a walk takes)."""
        return self.moved((*self.hops, hop), self.stack)

    def in_stack(self, stack: tuple[tuple[str, int], ...]) -> WalkState:
        """This state in another chain stack (each jump and return)."""
        return self.moved(self.hops, stack)

    def weighted(self, probability: float, hops: tuple[Hop, ...]) -> WalkState:
        """This state on one side of a statistic split (each endpoint of a Service)."""
        return WalkState(
            self.packet, probability, hops, self.nat, self.uncertain, self.stack, self.on_behalf
        )

    def rewritten(
        self, packet: Packet, hops: tuple[Hop, ...], nat: tuple[NatRecord, ...]
    ) -> WalkState:
        """This state after a NAT target rewrote the packet (each endpoint's DNAT)."""
        return WalkState(
            packet, self.probability, hops, nat, self.uncertain, self.stack, self.on_behalf
        )

    def moved(self, hops: tuple[Hop, ...], stack: tuple[tuple[str, int], ...]) -> WalkState:
        """This state with other hops and stack, built directly: the walk's hot path
        (~5x cheaper than dataclasses.replace)."""
        return WalkState(
            self.packet, self.probability, hops, self.nat, self.uncertain, stack, self.on_behalf
        )


def walk_states(
    start: WalkState,
    step: Callable[[WalkState, list[NfOutcome]], list[WalkState]],
    end: Callable[[WalkState, str, str], NfOutcome],
    what: str,
) -> list[NfOutcome]:
    """Depth-first over every branch a walk splits into (statistic, numgen), in rule order.

    `step` advances one state by one rule, appending finished branches to `done`; a walk
    that runs too long or nests too deep (a jump loop) ends as uncertain, never hangs.
    """
    work = [start]
    done: list[NfOutcome] = []
    steps = 0
    while work:
        steps += 1
        state = work.pop()
        if steps > MAX_STEPS or len(state.stack) > 64:
            done.append(end(state, "UNCERTAIN", f"the {what} did not end (a loop?)"))
            continue
        work.extend(reversed(step(state, done)))
    return done


def split_addr_port(spec: str) -> tuple[str, int | None, str]:
    """`10.0.0.1:80`, `10.0.0.1-10.0.0.5:80-90`, `[fd00::1]:80` -> first address, first port, note."""
    note = ""
    host, port = spec, ""
    if spec.startswith("["):
        host, _, rest = spec[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    elif spec.count(":") == 1:
        host, _, port = spec.partition(":")
    if "-" in host:
        host = host.split("-")[0]
        note = f"range {spec}: the kernel picks one address; showing the first"
    if "-" in port:
        port = port.split("-")[0]
        note = note or f"port range {spec}: showing the first port"
    return host, (int(port) if port.isdigit() else None), note


def _new_mark(options: dict[str, str], mark: int) -> int | None:
    def num(text: str) -> int:
        return int(text, 0)

    try:
        if "set-xmark" in options:
            value, _, mask = options["set-xmark"].partition("/")
            m = num(mask) if mask else 0xFFFFFFFF
            return (mark & ~m & 0xFFFFFFFF) ^ num(value)
        if "set-mark" in options:
            value, _, mask = options["set-mark"].partition("/")
            m = num(mask) if mask else 0xFFFFFFFF
            return (mark & ~m & 0xFFFFFFFF) | num(value)
        if "or-mark" in options:
            return mark | num(options["or-mark"])
        if "and-mark" in options:
            return mark & num(options["and-mark"])
        if "xor-mark" in options:
            return mark ^ num(options["xor-mark"])
    except ValueError:
        return None
    return None


def _positions(ruleset: Ruleset, table: str, chain: str, packet: Packet) -> tuple[int, ...]:
    dispatch = ruleset.dispatch(table, chain)
    if dispatch.size <= DISPATCH_MIN_RULES:
        return tuple(range(1, dispatch.size + 1))
    if packet.dport is None and packet.proto in ("tcp", "udp", "sctp"):
        # The index keys on the port; with an unknown port take every rule for the address.
        found = set(dispatch.fallback)
        for key, positions in dispatch.by_key.items():
            if key[0] == packet.dst:
                found.update(positions)
        return tuple(sorted(found))
    return dispatch.candidates(packet.dst, packet.proto, packet.dport)


class _Walker:
    """One table's walk from one built-in chain; yields outcomes for every branch."""

    def __init__(
        self, ruleset: Ruleset, table: str, hook: str, env: NfEnv, start: str | None = None
    ) -> None:
        self.ruleset = ruleset
        self.table = table
        self.hook = hook
        self.start = start or hook
        self.env = env
        self._positions: dict[tuple[str, str, str, int | None], tuple[int, ...]] = {}

    def positions(self, chain: str, packet: Packet) -> tuple[int, ...]:
        key = (chain, packet.dst, packet.proto, packet.dport)
        found = self._positions.get(key)
        if found is None:
            found = self._positions[key] = _positions(self.ruleset, self.table, chain, packet)
        return found

    def hop(self, rule: Rule, text: str, details: tuple[str, ...] = (), **extra: JsonValue) -> Hop:
        made = iptables_owner(
            self.table, rule.chain, rule.comments, rule.target.name if rule.target else None
        )
        if extra.get("taken") is True and (note := allow_note(made, rule.text)):
            details = (*details, note)
        owner: dict[str, JsonValue] = {**made.as_json()}
        counter: JsonValue = None
        if rule.counters is not None:
            counter = {"packets": rule.counters[0], "bytes": rule.counters[1]}
        data: dict[str, JsonValue] = {
            "table": self.table,
            "chain": rule.chain,
            "rule": rule.text,
            "backend": self.env.backend,
            "hook": self.hook,
            "position": rule.position,
            "counter": counter,
            "owner": owner,
        }
        data.update(extra)
        return Hop("netfilter", self.env.hostname, text, details, (), data)

    def walk(self, packet: Packet, probability: float) -> list[NfOutcome]:
        if not self.ruleset.has_chain(self.table, self.start):
            return [NfOutcome(probability, "ACCEPT", packet)]
        start = WalkState(packet, probability, (), (), (), ((self.start, 0),))
        return walk_states(start, self._step, self._end, "chain walk")

    def _end(
        self, state: WalkState, verdict: str, reason: str, extra: tuple[Hop, ...] = ()
    ) -> NfOutcome:
        uncertain = state.uncertain + ((reason,) if verdict == "UNCERTAIN" else ())
        return NfOutcome(
            state.probability,
            verdict,
            state.packet,
            state.hops + extra,
            state.nat,
            uncertain,
            reason,
        )

    def _next_rule(self, chain: str, after: int, packet: Packet) -> Rule | None:
        positions = self.positions(chain, packet)  # ascending
        i = bisect_right(positions, after)
        return self.ruleset.rule(self.table, chain, positions[i]) if i < len(positions) else None

    def _step(self, state: WalkState, done: list[NfOutcome]) -> list[WalkState]:
        chain, after = state.stack[-1]
        rule = self._next_rule(chain, after, state.packet)
        if rule is None:
            return self._chain_end(state, done)
        here = state.at(rule.position)
        result = evaluate_rule(rule, state.packet, self.env.matches)
        if result.unknown:
            note = (
                f"{self.table} {chain} rule {rule.position} ({rule.text}): cannot evaluate "
                + "; ".join(result.unknown)
                + " from a snapshot; assumed not to match"
            )
            hop = self.hop(
                rule,
                f"{self.table}/{chain} #{rule.position}: undecidable, assumed no match",
                (rule.text, note),
                taken=False,
                uncertain=True,
            )
            return [replace(here, uncertain=here.uncertain + (note,), hops=here.hops + (hop,))]
        if not result.matched:
            if not result.notes:
                return [here]
            # A miss decided by kernel state (no affinity pin): worth a line on the branch.
            miss = self.hop(
                rule,
                f"{self.table}/{chain} #{rule.position}: no match",
                (rule.text, *result.notes),
                taken=False,
            )
            return [here.plus_hop(miss)]
        if result.probability >= 1.0:
            return self._apply(here, rule, done, None, result.notes)
        p = result.probability
        skipped_hop = self.hop(
            rule,
            f"{self.table}/{chain} #{rule.position}: statistic not taken (p={1 - p:.4f})",
            (rule.text,),
            taken=False,
            probability=1 - p,
        )
        taken = here.weighted(here.probability * p, here.hops)
        not_taken = here.weighted(here.probability * (1 - p), here.hops + (skipped_hop,))
        out = self._apply(taken, rule, done, p, result.notes) if p > 0 else []
        if p < 1:
            out.append(not_taken)
        return out

    def _chain_end(self, state: WalkState, done: list[NfOutcome]) -> list[WalkState]:
        if len(state.stack) > 1:
            return [state.in_stack(state.stack[:-1])]
        header = self.ruleset.chain(self.table, self.start)
        # A walk started in a user chain ends like a RETURN to the hook: ACCEPT unless told otherwise.
        policy = (header.policy if header else None) or "ACCEPT"
        hops: tuple[Hop, ...] = ()
        # Say so when the policy decided something that matters: a drop, or filtering.
        if policy != "ACCEPT" or self.table == "filter":
            data: dict[str, JsonValue] = {
                "table": self.table,
                "chain": self.start,
                "rule": f"-P {self.start} {policy}",
                "backend": self.env.backend,
                "hook": self.hook,
                "position": None,
            }
            if policy != "ACCEPT":
                # The policy decides, not the last rule seen (kube-proxy's, most often):
                # the drop is said to be the chain's (the host firewall's for a built-in).
                data["owner"] = {**iptables_owner(self.table, self.start, ()).as_json()}
            text = f"{self.table}/{self.start}: no rule decided; policy {policy}"
            hops = (Hop("netfilter", self.env.hostname, text, (), (), data),)
        verdict = policy if policy in ("ACCEPT", "DROP") else "UNCERTAIN"
        done.append(
            self._end(state, verdict, f"policy {policy} of {self.table}/{self.start}", hops)
        )
        return []

    def _apply(
        self,
        state: WalkState,
        rule: Rule,
        done: list[NfOutcome],
        prob: float | None,
        notes: tuple[str, ...] = (),
    ) -> list[WalkState]:
        target = rule.target
        extra: dict[str, JsonValue] = {"taken": True}
        if prob is not None:
            extra["probability"] = prob
        label = f"{self.table}/{rule.chain} #{rule.position}"
        details: tuple[str, ...] = (rule.text, *notes)
        if prob is not None:
            details += (f"statistic: this branch takes it with probability {prob:.4f}",)
        if target is None:
            return [state]  # a counting rule
        name = target.name
        step_hop = self.hop(rule, f"{label}: -> {name}", details, **extra)
        with_hop = state.plus_hop(step_hop)
        if target.kind == "jump" or target.kind == "goto":
            if not self.ruleset.has_chain(self.table, name):
                note = f"{label} jumps to {name}, which is not in the dump"
                return [replace(with_hop, uncertain=with_hop.uncertain + (note,))]
            if target.kind == "jump":
                return [with_hop.in_stack((*with_hop.stack, (name, 0)))]
            # A goto replaces the current chain: its RETURN goes back to our caller.
            base = with_hop.stack[:-1] if len(with_hop.stack) > 1 else ()
            if not base:
                # goto from the built-in chain: remember the built-in for its policy.
                return [with_hop.in_stack(((self.start, 10**9), (name, 0)))]
            return [with_hop.in_stack((*base, (name, 0)))]
        if name == "ACCEPT":
            done.append(self._end(with_hop, "ACCEPT", f"accepted by {label}"))
            return []
        if name == "DROP":
            done.append(self._end(with_hop, "DROP", f"dropped by {label}: {rule.text}"))
            return []
        if name == "REJECT":
            how = target.options.get("reject-with", "icmp-port-unreachable")
            done.append(self._end(with_hop, "REJECT", f"rejected ({how}) by {label}: {rule.text}"))
            return []
        if name == "RETURN":
            return self._chain_end(with_hop, done)
        if name == "MARK":
            new = _new_mark(target.options, state.packet.mark)
            if new is None:
                note = f"{label}: MARK with options {target.options} not understood"
                return [replace(with_hop, uncertain=with_hop.uncertain + (note,))]
            hop = replace(step_hop, text=f"{label}: MARK {state.packet.mark:#x} -> {new:#x}")
            return [replace(state, hops=state.hops + (hop,), packet=state.packet.with_(mark=new))]
        if name in ("DNAT", "SNAT", "MASQUERADE", "REDIRECT"):
            return self._nat(with_hop, rule, done, label)
        if name == "NOTRACK" or (name == "CT" and "notrack" in target.options):
            hop = self.hop(rule, f"{label}: -> {name}: untracked", details, **extra, untracked=True)
            return [untracked(state, hop)]
        if name in CONTINUING:
            return [with_hop]
        note = f"{label}: target {name} is not modelled; the packet's fate after it is unknown"
        done.append(self._end(with_hop, "UNCERTAIN", note))
        return []

    def _nat(
        self, state: WalkState, rule: Rule, done: list[NfOutcome], label: str
    ) -> list[WalkState]:
        assert rule.target is not None
        name, options = rule.target.name, rule.target.options
        packet = state.packet
        note = ""
        if name == "DNAT":
            addr, port, note = split_addr_port(options.get("to-destination", ""))
            kind, before = "DNAT", (packet.dst, packet.dport)
            after = (addr or packet.dst, port if port is not None else packet.dport)
            new = packet.to(after[0], after[1])
        elif name == "REDIRECT":
            local = self.env.in_address or "127.0.0.1"
            ports = options.get("to-ports", "")
            port = int(ports.split("-")[0]) if ports.split("-")[0].isdigit() else packet.dport
            kind, before, after = "DNAT", (packet.dst, packet.dport), (local, port)
            new = packet.to(local, port)
        else:
            if name == "SNAT":
                addr, port, note = split_addr_port(options.get("to-source", ""))
            else:
                if self.env.out_address is None:
                    msg = (
                        f"{label}: MASQUERADE but the out interface has no address in the snapshot"
                    )
                    done.append(self._end(state, "UNCERTAIN", msg))
                    return []
                addr = self.env.out_address
                ports = options.get("to-ports", "")
                port = int(ports.split("-")[0]) if ports.split("-")[0].isdigit() else None
            kind, before = "SNAT", (packet.src or "", packet.sport)
            after = (addr or packet.src or "", port if port is not None else packet.sport)
            new = packet.with_(src=after[0], sport=after[1])
        record = NatRecord(self.env.node, kind, before, after)
        text = f"{name} {_ap(before)} -> {_ap(after)}"
        nat_hop = Hop(
            "nat",
            self.env.hostname,
            text,
            (note,) if note else (),
            (),
            {
                "from": _ap(before),
                "to": _ap(after),
                "type": kind,
                "target": name,
                "table": self.table,
            },
        )
        st = state.rewritten(new, state.hops + (nat_hop,), state.nat + (record,))
        # NAT targets are terminal in the nat table (they return NF_ACCEPT).
        done.append(self._end(st, "ACCEPT", f"{name} by {label}"))
        return []


def _ap(pair: tuple[str, int | None]) -> str:
    addr, port = pair
    if port is None:
        return addr
    return f"[{addr}]:{port}" if ":" in addr else f"{addr}:{port}"


def index_long_chains(ruleset: Ruleset) -> None:
    """Build now the dispatch index of every chain a walk reads through one (longer than
    DISPATCH_MIN_RULES): built on a trace's first visit otherwise, ~50 ms at 10k
    Services (KUBE-SERVICES' 10k rules) in the first trace of a process."""
    for table in ruleset.tables:
        for chain in ruleset.chain_names(table):
            if ruleset.rule_count_of(table, chain) > DISPATCH_MIN_RULES:
                ruleset.dispatch(table, chain)


def untracked(state: WalkState, hop: Hop) -> WalkState:
    """The walk after a NOTRACK (raw table, before conntrack): the packet has no entry in
    this namespace, so nat is not consulted for it (run_hook), `--ctstate` sees UNTRACKED,
    and its reply meets conntrack here as a packet of no connection (reply.crossed)."""
    packet = state.packet.with_(ct_state="UNTRACKED")
    return replace(state, hops=state.hops + (hop,), packet=packet)


def walk_table(
    ruleset: Ruleset,
    table: str,
    hook: str,
    packet: Packet,
    env: NfEnv,
    probability: float = 1.0,
    chain: str | None = None,
) -> list[NfOutcome]:
    """Every way one table's built-in chain (or a given start chain) can end for this packet."""
    return _Walker(ruleset, table, hook, env, chain).walk(packet, probability)
