"""Evaluating iptables matches against one packet, the way the kernel's xt modules do.

Each rule's matches are ANDed. A match this module does not know how to decide from
a snapshot (ipset contents, `recent` lists, socket lookups, ...) is reported as
unknown, never guessed: the walker marks the branch uncertain and names the rule.
A definite "no" from another match of the same rule wins over an unknown one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from podpath.netfilter.ipset import IpSet, member_matches
from podpath.netfilter.model import Match, Rule
from podpath.snapshot.model import RecentList
from podpath.trace.model import Packet
from podpath.trace.routing import address, contains

# Modules whose matches never change the verdict for one probe packet.
_ALWAYS = frozenset({"comment", "nfacct"})
# TCP flags of the probe: the first packet is a SYN, the first reply a SYN-ACK.
_FLAGS = {"original": frozenset({"SYN"}), "reply": frozenset({"SYN", "ACK"})}
_ALL_FLAGS = frozenset({"SYN", "ACK", "FIN", "RST", "URG", "PSH", "ECE", "CWR"})
_ICMP_TYPES = {"echo-request": 8, "echo-reply": 0, "any": -1}


@dataclass(frozen=True)
class MatchEnv:
    """What the matches can see besides the packet: interfaces, local addresses, conntrack."""

    local_addresses: frozenset[str]
    in_iface: str | None = None
    out_iface: str | None = None
    bridged: bool = False
    physdev_in: str | None = None
    physdev_out: str | None = None
    # Conntrack's view of this connection on this node.
    dnat: bool = False
    snat: bool = False
    orig_dst: str | None = None
    orig_dport: int | None = None
    # The node's xt_recent lists when the snapshot has them (None: unknown kernel state).
    recent: tuple[RecentList, ...] | None = None
    # The node's ipsets when the snapshot has them (None: unknown).
    ipsets: tuple[IpSet, ...] | None = None
    # The ip_local_port_range (low, high) of the traced connection's client, where its
    # source port comes from when the probe names none; () when unknown.
    client_ports: tuple[int, ...] = ()


@dataclass(frozen=True)
class RuleMatch:
    """The result of a rule's matches: yes/no, a statistic probability, unknown matches."""

    matched: bool
    probability: float = 1.0  # < 1 when a statistic match splits the trace
    unknown: tuple[
        str, ...
    ] = ()  # matches that could not be decided (rule treated as not matching)
    # What kernel state decided the match (an affinity pin), worth showing on the hop.
    notes: tuple[str, ...] = ()


def iface_matches(pattern: str, name: str | None) -> bool:
    """iptables interface matching: a trailing '+' is a prefix wildcard."""
    if name is None:
        return pattern in ("+", "")
    if pattern.endswith("+"):
        return name.startswith(pattern[:-1])
    return name == pattern


def port_in(spec: str, port: int) -> bool:
    """True when port is in `80`, `1000:2000` or a comma list of those."""
    for part in spec.replace(" ", ",").split(","):
        if not part:
            continue
        low, sep, high = part.partition(":")
        try:
            lo = int(low) if low else 0
            hi = int(high) if sep and high else (65535 if sep else lo)
        except ValueError:
            continue
        if lo <= port <= hi:
            return True
    return False


def _mark_matches(spec: str, mark: int) -> bool | None:
    value, _, mask = spec.partition("/")
    try:
        v = int(value, 0)
        m = int(mask, 0) if mask else 0xFFFFFFFF
    except ValueError:
        return None
    return (mark & m) == v


def _addrtype(types: str, ip: str | None, env: MatchEnv) -> bool | None:
    if ip is None:
        return None
    parsed = address(ip)
    if parsed is None:
        return None
    is_local = ip in env.local_addresses or parsed.is_loopback
    found = set()
    if is_local:
        found.add("LOCAL")
    if parsed.is_multicast:
        found.add("MULTICAST")
    elif ip in ("255.255.255.255",):
        found.add("BROADCAST")
    elif parsed.is_unspecified:
        found.add("UNSPEC")
    elif not is_local:
        found.add("UNICAST")
    return any(t.strip().upper() in found for t in types.split(","))


def _ctstate(states: str, packet: Packet, env: MatchEnv) -> bool:
    have = {packet.ct_state}
    if env.dnat:
        have.add("DNAT")
    if env.snat:
        have.add("SNAT")
    return any(s.strip().upper() in have for s in states.split(","))


def _tcp_flags(value: str, packet: Packet) -> bool | None:
    parts = value.split()
    if len(parts) != 2:
        return None
    mask = _ALL_FLAGS if parts[0] == "ALL" else frozenset(parts[0].split(","))
    want = frozenset() if parts[1] == "NONE" else frozenset(parts[1].split(","))
    have = _FLAGS[packet.direction]
    return (have & mask) == (want & mask)


def _icmp_type(value: str, packet: Packet) -> bool:
    want = value.split("/")[0]
    code = _ICMP_TYPES.get(want)
    if code is None:
        code = int(want) if want.isdigit() else -2
    have = 8 if packet.direction == "original" else 0
    return code == -1 or code == have


def _range(spec: str, ip: str | None) -> bool | None:
    low, _, high = spec.partition("-")
    a, lo, hi = address(ip or ""), address(low), address(high or low)
    if a is None or lo is None or hi is None or a.version != lo.version or lo.version != hi.version:
        return None
    return int(lo) <= int(a) <= int(hi)


def _port(spec: str, port: int | None) -> bool | None:
    return None if port is None else port_in(spec, port)


def _side_port(spec: str, p: Packet, e: MatchEnv, side: str) -> bool | None:
    """A port match on the packet's source (`side` "src") or destination port. An unknown
    port that is the client's (the first packet's source, the reply's destination) comes
    from its ip_local_port_range: decided when that whole range is in `spec` or out of
    it (kube-router's `--dports 30000:32767` never meets 32768-60999)."""
    port = p.sport if side == "src" else p.dport
    if port is not None:
        return port_in(spec, port)
    client_side = "src" if p.direction == "original" else "dst"
    if side != client_side or len(e.client_ports) != 2:
        return None
    return range_in(spec, e.client_ports[0], e.client_ports[1])


def range_in(spec: str, low: int, high: int) -> bool | None:
    """Whether every port of low..high is in `spec` (True), none is (False), or some are
    (None); None too for a spec naming a service by name."""
    parts: list[tuple[int, int]] = []
    for part in spec.replace(" ", ",").split(","):
        if not part:
            continue
        first, sep, last = part.partition(":")
        try:
            lo = int(first) if first else 0
            hi = int(last) if sep and last else (65535 if sep else lo)
        except ValueError:
            return None
        if lo <= high and hi >= low:
            parts.append((max(lo, low), min(hi, high)))
    if not parts:
        return False
    reached = low - 1  # the parts, in order, cover low..reached without a gap
    for lo, hi in sorted(parts):
        if lo > reached + 1:
            return None
        reached = max(reached, hi)
    return True if reached >= high else None


# Options that only refine another option of the same match (never decide on their own).
_MODIFIERS = frozenset(
    {
        ("limit", "limit-burst"),
        ("policy", "strict"),
        ("policy", "proto"),
        ("policy", "mode"),
        ("conntrack", "ctdir"),
    }
)


def _match_set(m: Match, p: Packet, e: MatchEnv) -> bool | None:
    """`-m set --match-set NAME src,dst`: each flag picks the packet field for one dimension."""
    name, _, flags = m.value.partition(" ")
    if e.ipsets is None:
        return None
    found = next((s for s in e.ipsets if s.name == name), None)
    if found is None:
        return False  # iptables refuses a rule naming a missing set: it was destroyed since
    values: list[str | int | None] = []
    for flag, dim in zip(flags.strip().split(","), found.dimensions, strict=False):
        if dim == "port":
            port = p.sport if flag == "src" else p.dport
            values.append(None if port is None else f"{p.proto}:{port}")
        else:
            values.append(p.src if flag == "src" else p.dst)
    return member_matches(found, tuple(values))


Evaluator = Callable[[Match, Packet, MatchEnv], bool | None]

_BUILTIN: dict[str, Evaluator] = {
    "source": lambda m, p, e: None if p.src is None else contains(m.value, p.src),
    "destination": lambda m, p, e: contains(m.value, p.dst),
    "protocol": lambda m, p, e: m.value in ("all", "0") or m.value == p.proto,
    "in-interface": lambda m, p, e: iface_matches(m.value, e.in_iface),
    "out-interface": lambda m, p, e: iface_matches(m.value, e.out_iface),
    "fragment": lambda m, p, e: False,  # the probe is never a non-first fragment
}

_BY_OPTION: dict[tuple[str, str], Evaluator] = {
    ("multiport", "dports"): lambda m, p, e: _side_port(m.value, p, e, "dst"),
    ("multiport", "sports"): lambda m, p, e: _side_port(m.value, p, e, "src"),
    ("multiport", "ports"): lambda m, p, e: (
        None
        if p.dport is None or p.sport is None
        else port_in(m.value, p.dport) or port_in(m.value, p.sport)
    ),
    ("addrtype", "dst-type"): lambda m, p, e: _addrtype(m.value, p.dst, e),
    ("addrtype", "src-type"): lambda m, p, e: _addrtype(m.value, p.src, e),
    ("mark", "mark"): lambda m, p, e: _mark_matches(m.value, p.mark),
    ("conntrack", "ctstate"): lambda m, p, e: _ctstate(m.value, p, e),
    ("state", "state"): lambda m, p, e: _ctstate(m.value, p, e),
    ("conntrack", "ctdir"): lambda m, p, e: m.value.upper() == p.direction.upper(),
    ("conntrack", "ctproto"): lambda m, p, e: m.value == p.proto,
    ("conntrack", "ctorigdst"): lambda m, p, e: contains(m.value, e.orig_dst or p.dst),
    ("conntrack", "ctorigdstport"): lambda m, p, e: _port(
        m.value, e.orig_dport if e.dnat else p.dport
    ),
    ("physdev", "physdev-is-bridged"): lambda m, p, e: e.bridged,
    ("physdev", "physdev-is-in"): lambda m, p, e: e.bridged,
    ("physdev", "physdev-is-out"): lambda m, p, e: e.bridged,
    ("physdev", "physdev-in"): lambda m, p, e: e.bridged and iface_matches(m.value, e.physdev_in),
    ("physdev", "physdev-out"): lambda m, p, e: e.bridged and iface_matches(m.value, e.physdev_out),
    ("set", "match-set"): _match_set,
    ("iprange", "src-range"): lambda m, p, e: _range(m.value, p.src),
    ("iprange", "dst-range"): lambda m, p, e: _range(m.value, p.dst),
    ("pkttype", "pkt-type"): lambda m, p, e: m.value == "unicast",
    # IPsec policy: the probe is never IPsec-protected.
    ("policy", "pol"): lambda m, p, e: m.value == "none",
    ("policy", "dir"): lambda m, p, e: True,
    # One probe packet is always within a rate limit's burst.
    ("limit", "limit"): lambda m, p, e: True,
    ("limit", "limit-burst"): lambda m, p, e: True,
}


def _l4(m: Match, p: Packet, e: MatchEnv) -> bool | None:
    if m.module != p.proto and m.module in ("tcp", "udp", "sctp", "icmp"):
        return False  # the implicit module of another protocol never matches
    if m.option == "dport":
        return _side_port(m.value, p, e, "dst")
    if m.option == "sport":
        return _side_port(m.value, p, e, "src")
    if m.option == "tcp-flags":
        return _tcp_flags(m.value, p)
    if m.option == "syn":
        return _tcp_flags("SYN,RST,ACK,FIN SYN", p)
    if m.option == "icmp-type":
        return _icmp_type(m.value, p)
    return None


def _recent_options(rule: Rule) -> dict[str, str]:
    return {x.option: x.value for x in rule.matches if x.module == "recent"}


def _recent_decision(rule: Rule, packet: Packet, env: MatchEnv) -> tuple[bool | None, str]:
    """(matches?, why) for the rule's whole `-m recent` match: `--set` records and matches,
    `--rcheck` asks the list the snapshot read, and a `!` on any of its options inverts
    the match (xt_recent's XT_RECENT_INVERT), not that option alone."""
    decided, why = _recent_check(rule, packet, env)
    if decided is not None and any(m.negated for m in rule.matches if m.module == "recent"):
        decided = not decided
    return decided, why


def _recent_check(rule: Rule, packet: Packet, env: MatchEnv) -> tuple[bool | None, str]:
    """(matches?, why) for a rule's -m recent options (kube-proxy's ClientIP affinity)."""
    options = _recent_options(rule)
    if "set" in options and not options.keys() & {"rcheck", "update", "remove"}:
        name = options.get("name", "DEFAULT")
        return True, f"records {packet.src} in xt_recent list {name}: later connections follow it"
    if "remove" in options or "update" in options:
        return None, "-m recent --remove/--update changes kernel state: not modelled"
    name = options.get("name", "DEFAULT")
    if env.recent is None:
        return None, f"the snapshot has no xt_recent lists to check {name}"
    address = packet.dst if "rdest" in options else packet.src
    lst = next((r for r in env.recent if r.name == name), None)
    entry = next((e for e in lst.entries if e.address == address), None) if lst else None
    if entry is None:
        return False, f"{address} is not in xt_recent list {name} when the snapshot was taken"
    seconds = options.get("seconds")
    if seconds is None:
        return True, f"{address} is in xt_recent list {name} when the snapshot was taken: pinned"
    if entry.age is None:
        return None, f"{address} is in xt_recent list {name}, but its age is unknown"
    fresh = entry.age <= float(seconds)
    state = "pinned" if fresh else "expired"
    return fresh, (
        f"{address} is in xt_recent list {name}, last seen {entry.age:.0f}s before the "
        f"snapshot (window {seconds}s): {state}"
    )


def evaluate_match(m: Match, rule: Rule, packet: Packet, env: MatchEnv) -> bool | None:
    """One match: True, False, or None when a snapshot cannot decide it."""
    if m.module in _ALWAYS:
        return True
    if m.module == "":
        fn = _BUILTIN.get(m.option)
        result = fn(m, packet, env) if fn else None
    elif m.module in ("tcp", "udp", "sctp", "icmp"):
        result = _l4(m, packet, env)
    elif m.module == "recent":
        # Every option of `-m recent` is the one decision, its `!` applied already.
        return _recent_decision(rule, packet, env)[0]
    else:
        fn = _BY_OPTION.get((m.module, m.option))
        if fn is None and (m.module, m.option) in _MODIFIERS:
            return True  # refines another option of the same match, which decides
        result = fn(m, packet, env) if fn else None
    if result is None:
        return None
    return result != m.negated


def _statistic(rule: Rule) -> float | None:
    mode = next(
        (m.value for m in rule.matches if m.module == "statistic" and m.option == "mode"), None
    )
    if mode == "random":
        prob = next((m.value for m in rule.matches if m.option == "probability"), "1")
        try:
            return float(prob)
        except ValueError:
            return None
    if mode == "nth":
        every = next((m.value for m in rule.matches if m.option == "every"), "1")
        return 1.0 / int(every) if every.isdigit() and int(every) > 0 else None
    return None


def evaluate_rule(rule: Rule, packet: Packet, env: MatchEnv) -> RuleMatch:
    """All of a rule's matches, ANDed; a statistic match yields a probability instead of yes."""
    unknown: list[str] = []
    notes: tuple[str, ...] = ()
    recent: bool | None = None
    if "recent" in rule.modules or any(m.module == "recent" for m in rule.matches):
        recent, why = _recent_decision(rule, packet, env)
        notes = (why,) if recent is not None else ()
    for m in rule.matches:
        if m.module == "statistic":
            continue
        if m.module == "recent":
            # Each option of `-m recent` (--name, --rcheck, --seconds, --reap, --rsource)
            # is a Match, and all of them are the one decision made above: asked again
            # per option, it was ~6 list lookups for each of a sticky Service's 249
            # `--rcheck` rules a walk passes (evaluate_match gives the same answer).
            result = recent
        else:
            result = evaluate_match(m, rule, packet, env)
        if result is False:
            return RuleMatch(False, notes=notes if m.module == "recent" else ())
        if result is None:
            neg = "! " if m.negated else ""
            where = f"-m {m.module} " if m.module else ""
            unknown.append(f"{where}{neg}--{m.option} {m.value}".strip())
    if rule.unknown:
        unknown.append("unparsed: " + " ".join(rule.unknown))
    if unknown:
        return RuleMatch(False, unknown=tuple(unknown))
    if any(m.module == "statistic" for m in rule.matches):
        prob = _statistic(rule)
        if prob is None:
            return RuleMatch(False, unknown=("-m statistic with an unknown mode",))
        return RuleMatch(True, probability=min(max(prob, 0.0), 1.0), notes=notes)
    return RuleMatch(True, notes=notes)
