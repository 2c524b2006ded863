"""Route lookup as the kernel does it: policy rules in priority order, then longest prefix.

fib_rules_lookup() walks the rules by priority; each `lookup TABLE` rule does a
longest-prefix match in that table (fib_table_lookup); a `throw` route or an empty
result falls through to the next rule. Without collected rules the kernel's three
defaults apply: 0 local, 32766 main, 32767 default. Among routes of equal prefix the
lowest metric wins. `explain_and` shows the decision the article's way: the
destination ANDed with each candidate's mask, in binary.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from functools import lru_cache

from podpath.snapshot.model import NetNamespace, Route, Rule

TABLE_NAMES = {255: "local", 254: "main", 253: "default"}
_DEFAULT_RULES = ((0, 255), (32766, 254), (32767, 253))
# Route types that end the lookup without a next hop.
DROP_TYPES = frozenset({"blackhole", "unreachable", "prohibit"})
MAX_EXPLAINED = 8


@dataclass(frozen=True)
class RouteDecision:
    """The result of one lookup: which rule, table and route, and what that means."""

    netns: int
    dst: str
    type: str  # unicast, local, broadcast, blackhole, unreachable, prohibit, none
    table: int | None
    route: Route | None
    rule: str  # the policy rule that chose the table, as `ip rule` prints it
    dev: int | None
    gateway: str | None
    prefsrc: str | None
    notes: tuple[str, ...] = ()
    explain: tuple[str, ...] = ()

    @property
    def matched(self) -> str | None:
        """The matched prefix, e.g. 10.244.1.0/24."""
        return self.route.dst if self.route else None


@lru_cache(maxsize=65536)
def network(cidr: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    """A parsed network (cached: the same prefixes are tested on every lookup)."""
    if cidr == "default":
        cidr = "0.0.0.0/0"
    try:
        return ipaddress.ip_network(cidr, strict=False)
    except ValueError:
        return None


@lru_cache(maxsize=65536)
def address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """A parsed address, or None."""
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def contains(cidr: str, addr: str) -> bool:
    """True when the address lies in the prefix (of the same family)."""
    net, ip = network(cidr), address(addr)
    return net is not None and ip is not None and net.version == ip.version and ip in net


def table_name(table: int | None) -> str:
    """A table's name as `ip route` prints it."""
    if table is None:
        return "-"
    return TABLE_NAMES.get(table, str(table))


def describe_rule(rule: Rule) -> str:
    """A policy rule as `ip rule` prints it."""
    parts = [f"{rule.priority}:"]
    if rule.invert:
        parts.append("not")
    parts.append(f"from {rule.src or 'all'}")
    if rule.dst:
        parts.append(f"to {rule.dst}")
    if rule.fwmark is not None:
        mask = f"/{rule.fwmask:#x}" if rule.fwmask not in (None, 0xFFFFFFFF) else ""
        parts.append(f"fwmark {rule.fwmark:#x}{mask}")
    if rule.iif:
        parts.append(f"iif {rule.iif}")
    if rule.oif:
        parts.append(f"oif {rule.oif}")
    if rule.action == "lookup":
        parts.append(f"lookup {table_name(rule.table)}")
    elif rule.action == "goto":
        parts.append(f"goto {rule.goto}")
    else:
        parts.append(rule.action)
    return " ".join(parts)


def _rule_matches(
    rule: Rule, src: str | None, dst: str, mark: int, iif: str, oif: str | None
) -> bool:
    # fib_rule_match(): every selector present must match; `not` inverts the result.
    ok = True
    if rule.src and (src is None or not contains(rule.src, src)):
        ok = False
    if ok and rule.dst and not contains(rule.dst, dst):
        ok = False
    if ok and rule.fwmark is not None:
        mask = 0xFFFFFFFF if rule.fwmask is None else rule.fwmask
        ok = (mark & mask) == (rule.fwmark & mask)
    if ok and rule.iif and rule.iif != iif:
        ok = False
    if ok and rule.oif and rule.oif != oif:
        ok = False
    return ok != rule.invert


def _rules(ns: NetNamespace, family: int) -> list[Rule]:
    rules = [r for r in ns.rules if r.family == family]
    if not rules:
        rules = [
            Rule(ns.inode, family, prio, "lookup", table=table) for prio, table in _DEFAULT_RULES
        ]
    return sorted(rules, key=lambda r: r.priority)


def longest_prefix(ns: NetNamespace, table: int, dst: str) -> tuple[Route | None, list[Route]]:
    """The route of a table that matches dst with the longest prefix (then lowest metric), and all that matched."""
    ip = address(dst)
    if ip is None:
        return None, []
    matching: list[tuple[int, int, Route]] = []
    for route in ns.routes:
        if route.table != table:
            continue
        net = network(route.dst)
        if net is None or net.version != ip.version or ip not in net:
            continue
        matching.append((-net.prefixlen, route.metric or 0, route))
    matching.sort(key=lambda t: (t[0], t[1]))
    routes = [r for _, _, r in matching]
    return (routes[0] if routes else None), routes


def lookup(
    ns: NetNamespace,
    dst: str,
    src: str | None = None,
    mark: int = 0,
    iif: str = "lo",
    oif: str | None = None,
    explain: bool = False,
) -> RouteDecision:
    """Decide the route for dst in a namespace (iif "lo" means a locally generated packet)."""
    ip = address(dst)
    family = 6 if ip is not None and ip.version == 6 else 4
    notes: list[str] = []
    by_priority = {r.priority: r for r in _rules(ns, family)}
    rules = _rules(ns, family)
    i = 0
    while i < len(rules):
        rule = rules[i]
        i += 1
        if not _rule_matches(rule, src, dst, mark, iif, oif):
            continue
        text = describe_rule(rule)
        if rule.action in DROP_TYPES:
            return RouteDecision(
                ns.inode, dst, rule.action, None, None, text, None, None, None, tuple(notes)
            )
        if rule.action == "goto" and rule.goto is not None:
            target = by_priority.get(rule.goto)
            i = rules.index(target) if target is not None else len(rules)
            continue
        if rule.action != "lookup" or rule.table is None:
            continue
        route, matched = longest_prefix(ns, rule.table, dst)
        if route is None:
            continue
        if route.type == "throw":
            notes.append(f"table {table_name(rule.table)}: throw route {route.dst}, next rule")
            continue
        lines = explain_and(ns, rule.table, dst, route) if explain else ()
        if len(matched) > 1:
            notes.append(
                f"{len(matched)} routes match; {route.dst} wins (longest prefix"
                + (", lowest metric)" if _ties(matched) else ")")
            )
        gateway, dev = route.gateway, route.dev
        if route.multipath:
            first = route.multipath[0]
            gateway, dev = first.gateway, first.dev
            notes.append(
                f"multipath route with {len(route.multipath)} next hops: the flow hash picks one; "
                f"showing the first ({first.gateway or 'direct'})"
            )
        if "onlink" in route.flags:
            notes.append(f"onlink: gateway {gateway} is used without checking it is on-link")
        return RouteDecision(
            ns.inode,
            dst,
            route.type,
            rule.table,
            route,
            text,
            dev,
            gateway,
            route.prefsrc,
            tuple(notes),
            lines,
        )
    return RouteDecision(
        ns.inode, dst, "none", None, None, "no rule found a route", None, None, None, tuple(notes)
    )


def _ties(routes: list[Route]) -> bool:
    first = network(routes[0].dst)
    second = network(routes[1].dst)
    return first is not None and second is not None and first.prefixlen == second.prefixlen


def binary(addr: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
    """An address in binary, octets (or IPv6 groups) separated by dots."""
    if addr.version == 4:
        return ".".join(f"{b:08b}" for b in addr.packed)
    packed = addr.packed
    return ":".join(f"{packed[i]:08b}{packed[i + 1]:08b}" for i in range(0, 16, 2))


def explain_and(ns: NetNamespace, table: int, dst: str, chosen: Route) -> tuple[str, ...]:
    """The article's explanation: dst AND each candidate mask, compared with the route's network."""
    ip = address(dst)
    if ip is None:
        return ()
    lines = [f"destination {dst:<15} = {binary(ip)}"]
    candidates = [r for r in ns.routes if r.table == table and r.type != "throw"]
    chosen_net = network(chosen.dst)
    # Show the winner and the most specific other candidates, longest prefix first.
    candidates.sort(key=lambda r: -(network(r.dst).prefixlen if network(r.dst) else 0))  # type: ignore[union-attr]
    shown = 0
    for route in candidates:
        net = network(route.dst)
        if net is None or net.version != ip.version:
            continue
        if shown >= MAX_EXPLAINED and route is not chosen:
            continue
        shown += 1
        anded = ipaddress.ip_address(int(ip) & int(net.netmask))
        same = anded == net.network_address
        verdict = "match" if same else "no match"
        mark = "  <- longest match" if route is chosen else ""
        lines.append(f"  {route.dst}: mask /{net.prefixlen} = {binary(net.netmask)}")
        lines.append(
            f"    {dst} AND mask = {binary(anded)} = {anded} "
            f"{'==' if same else '!='} {net.network_address}: {verdict}{mark}"
        )
    if chosen_net is not None:
        lines.append(
            f"the kernel takes the longest matching prefix: /{chosen_net.prefixlen} ({chosen.dst})"
        )
    return tuple(lines)
