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

from podpath.analysis.ns_tables import network, ns_tables
from podpath.snapshot.model import Address, Link, NetNamespace, Route, Rule

TABLE_NAMES = {255: "local", 254: "main", 253: "default"}
# rt_scope_t: a route or address may be used for a scope at most as wide as its own.
SCOPE_VALUES = {"global": 0, "universe": 0, "site": 200, "link": 253, "host": 254, "nowhere": 255}
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
    # Every next hop device of the route (more than one for multipath): rp_filter's match.
    devs: tuple[int, ...] = ()
    # What the decision rests on that podpath cannot know (a rule's uidrange, ...): the
    # trace branch is uncertain when this is not empty.
    assumed: tuple[str, ...] = ()

    @property
    def matched(self) -> str | None:
        """The matched prefix, e.g. 10.244.1.0/24."""
        return self.route.dst if self.route else None


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


# IP protocol numbers as iproute2 names them (inet_proto_n2a: /etc/protocols).
IP_PROTOCOLS = {1: "icmp", 6: "tcp", 17: "udp", 47: "gre", 58: "ipv6-icmp", 132: "sctp"}
_PROTOCOL_NUMBERS = {"icmp": 1, "tcp": 6, "udp": 17, "sctp": 132}
# Protocols whose headers carry ports, which the flow dissector reads (fib_rule_port_range).
_PORTED = frozenset({6, 17, 132})


def _range(values: tuple[int, ...]) -> str:
    first, last = values[0], values[-1]
    return str(first) if first == last else f"{first}-{last}"


def _prefix_text(cidr: str) -> str:
    """A rule's prefix as iproute2 prints it: a host prefix (/32, /128) as the bare address."""
    addr, _, length = cidr.partition("/")
    host = "128" if ":" in addr else "32"
    return addr if length == host else cidr


def group_name(group: int) -> str:
    """A device group as iproute2 names it (/etc/iproute2/group: 0 is "default")."""
    return "default" if group == 0 else str(group)


def _realm(value: int) -> str:
    # /etc/iproute2/rt_realms names only realm 0, "cosmos".
    return "cosmos" if value == 0 else str(value)


def realms_text(realms: int) -> str:
    """FRA_FLOW as `ip rule` prints it: TO alone, or FROM/TO when FROM is set."""
    first, last = realms >> 16, realms & 0xFFFF
    return f"{_realm(first)}/{_realm(last)}" if first else _realm(last)


def describe_rule(rule: Rule) -> str:
    """A policy rule as `ip rule` prints it (iproute2's print_rule order)."""
    parts = [f"{rule.priority}:"]
    if rule.invert:
        parts.append("not")
    parts.append(f"from {_prefix_text(rule.src) if rule.src else 'all'}")
    if rule.dst:
        parts.append(f"to {_prefix_text(rule.dst)}")
    if rule.tos:
        parts.append(f"tos {rule.tos:#x}")
    if rule.fwmark is not None:
        mask = f"/{rule.fwmask:#x}" if rule.fwmask not in (None, 0xFFFFFFFF) else ""
        parts.append(f"fwmark {rule.fwmark:#x}{mask}")
    if rule.iif:
        parts.append(f"iif {rule.iif}")
    if rule.oif:
        parts.append(f"oif {rule.oif}")
    if rule.l3mdev:
        parts.append("lookup [l3mdev-table]")
    if rule.uidrange:
        parts.append(f"uidrange {rule.uidrange[0]}-{rule.uidrange[-1]}")
    if rule.ipproto is not None:
        parts.append(f"ipproto {IP_PROTOCOLS.get(rule.ipproto, str(rule.ipproto))}")
    if rule.sport:
        parts.append(f"sport {_range(rule.sport)}")
    if rule.dport:
        parts.append(f"dport {_range(rule.dport)}")
    if rule.tun_id is not None:
        parts.append(f"tun_id {rule.tun_id}")
    if rule.action == "lookup":
        if rule.table is not None:
            parts.append(f"lookup {table_name(rule.table)}")
            if rule.suppress_prefixlength is not None:
                parts.append(f"suppress_prefixlength {rule.suppress_prefixlength}")
            if rule.suppress_ifgroup is not None:
                parts.append(f"suppress_ifgroup {group_name(rule.suppress_ifgroup)}")
    if rule.realms:
        parts.append(f"realms {realms_text(rule.realms)}")
    if rule.action == "goto":
        parts.append(f"goto {rule.goto}")
    elif rule.action != "lookup":
        parts.append(rule.action)
    # print_rule(): `proto kernel` and `proto unspec` only with -d.
    if rule.protocol not in (None, "kernel", "unspec"):
        parts.append(f"proto {rule.protocol}")
    return " ".join(parts)


@dataclass(frozen=True)
class FlowKey:
    """What fib_rule_match() compares: the packet's addresses, mark, devices, protocol, ports."""

    src: str | None
    dst: str
    mark: int = 0
    iif: str = "lo"  # "lo": generated by a local process (flowi_iif is LOOPBACK_IFINDEX)
    oif: str | None = None
    proto: str | None = None  # tcp | udp | icmp; None: a lookup without one (`ip route get`)
    sport: int | None = None
    dport: int | None = None

    def proto_number(self, family: int) -> int:
        """The IP protocol number the kernel's flow holds (0 when the lookup has none)."""
        if self.proto is None:
            return 0
        if self.proto == "icmp" and family == 6:
            return 58
        return _PROTOCOL_NUMBERS.get(self.proto, 0)


def _ports_match(rule: Rule, key: FlowKey, proto: int) -> tuple[bool, str]:
    """Whether the rule's port ranges hold the flow's ports, or what is assumed."""
    for name, wanted, have in (("sport", rule.sport, key.sport), ("dport", rule.dport, key.dport)):
        if not wanted:
            continue
        if proto not in _PORTED:
            # A flow without ports (ICMP, or a lookup without protocol) has ports 0.
            have = 0
        elif have is None:
            return False, (
                f"rule {rule.priority} ({name} {_range(wanted)}) taken not to match: "
                f"the flow's {name} is not known"
            )
        if not wanted[0] <= have <= wanted[-1]:
            return False, ""
    return True, ""


def _rule_matches(rule: Rule, key: FlowKey, family: int, vrf: bool) -> tuple[bool, str]:
    """fib_rule_match(): every selector present must match; `not` inverts the result.

    The second value is an assumption the answer rests on ("" when there is none).
    """
    ok = True
    assumed = ""
    if rule.src and (key.src is None or not contains(rule.src, key.src)):
        ok = False
    if ok and rule.dst and not contains(rule.dst, key.dst):
        ok = False
    if ok and rule.fwmark is not None:
        mask = 0xFFFFFFFF if rule.fwmask is None else rule.fwmask
        ok = (key.mark & mask) == (rule.fwmark & mask)
    if ok and rule.iif and rule.iif != key.iif:
        ok = False
    if ok and rule.oif and rule.oif != key.oif:
        ok = False
    # The traced packet carries TOS 0 and no tunnel metadata (tun_id 0).
    if ok and (rule.tos or rule.tun_id):
        ok = False
    if ok and rule.l3mdev:
        # l3mdev_fib_rule_match(): only a device enslaved to a VRF matches.
        ok = False
        if vrf:
            assumed = f"rule {rule.priority} (l3mdev) taken not to match: VRFs are not modelled"
    if ok and rule.uidrange:
        if key.iif != "lo":
            # ip_route_input_slow(): a forwarded packet has no socket; its uid is 0
            # (sock_net_uid(net, NULL)).
            ok = rule.uidrange[0] <= 0 <= rule.uidrange[-1]
        elif not (rule.uidrange[0] == 0 and rule.uidrange[-1] >= 0xFFFFFFFE):
            ok = False
            assumed = (
                f"rule {rule.priority} (uidrange {rule.uidrange[0]}-{rule.uidrange[-1]}) "
                "taken not to match: the sending process's uid is not known"
            )
    proto = key.proto_number(family)
    if ok and rule.ipproto is not None and rule.ipproto != proto:
        ok = False
    if ok and (rule.sport or rule.dport):
        ok, assumed = _ports_match(rule, key, proto)
    if assumed and rule.invert:
        # `not`: the selector taken as false makes the rule match.
        assumed = assumed.replace("taken not to match", "taken to match (under `not`)")
    return ok != rule.invert, assumed


def _suppressed(ns: NetNamespace, rule: Rule, route: Route) -> tuple[bool, str, str]:
    """fib4_rule_suppress(): is a found route rejected? Also a note, and an assumption made."""
    net = network(route.dst)
    plen = net.prefixlen if net is not None else 0
    if rule.suppress_prefixlength is not None and plen <= rule.suppress_prefixlength:
        note = (
            f"rule {rule.priority}: route {route.dst} suppressed "
            f"(prefix length {plen} <= suppress_prefixlength {rule.suppress_prefixlength}), "
            "next rule"
        )
        return True, note, ""
    # The device of the route's first next hop (fib_info_nhc(fi, 0)->nhc_dev).
    dev = route.dev if route.dev is not None or not route.multipath else route.multipath[0].dev
    if rule.suppress_ifgroup is not None and dev is not None:
        link = next((lk for lk in ns.links if lk.ifindex == dev), None)
        wanted = group_name(rule.suppress_ifgroup)
        if link is None or link.group is None:
            # A snapshot taken before groups were collected: taken as group 0 (default).
            assumed = (
                f"rule {rule.priority} (suppress_ifgroup {wanted}): "
                f"the group of dev {_dev_name(ns, dev)} is not known, taken as 0 (default)"
            )
            return rule.suppress_ifgroup == 0, "", assumed
        if link.group != rule.suppress_ifgroup:
            return False, "", ""
        note = (
            f"rule {rule.priority}: route {route.dst} suppressed "
            f"(dev {link.name} is in group {wanted}, suppress_ifgroup {wanted}), next rule"
        )
        return True, note, ""
    return False, "", ""


def _dev_name(ns: NetNamespace, ifindex: int) -> str:
    for link in ns.links:
        if link.ifindex == ifindex:
            return link.name
    return str(ifindex)


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
    value = int(ip)
    routes: list[Route] = []
    for _length, mask, networks in ns_tables(ns).routes.get((table, ip.version), ()):
        same = networks.get(value & mask)
        if same:
            # Among equal prefixes the lowest metric first, else in route order.
            routes.extend(sorted(same, key=lambda r: r.metric or 0))
    return (routes[0] if routes else None), routes


def lookup(
    ns: NetNamespace,
    dst: str,
    src: str | None = None,
    mark: int = 0,
    iif: str = "lo",
    oif: str | None = None,
    explain: bool = False,
    proto: str | None = None,
    sport: int | None = None,
    dport: int | None = None,
) -> RouteDecision:
    """Decide the route for dst in a namespace (iif "lo" means a locally generated packet)."""
    ip = address(dst)
    family = 6 if ip is not None and ip.version == 6 else 4
    key = FlowKey(src, dst, mark, iif, oif, proto, sport, dport)
    notes: list[str] = []
    assumed: list[str] = []
    rules = _rules(ns, family)
    by_priority = {r.priority: r for r in rules}
    vrf = ns_tables(ns).vrf
    i = 0
    while i < len(rules):
        rule = rules[i]
        i += 1
        matches, assumption = _rule_matches(rule, key, family, vrf)
        if assumption:
            assumed.append(assumption)
        if not matches:
            continue
        text = describe_rule(rule)
        if rule.action in DROP_TYPES:
            return RouteDecision(
                ns.inode,
                dst,
                rule.action,
                None,
                None,
                text,
                None,
                None,
                None,
                tuple(notes),
                assumed=tuple(assumed),
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
        if route.type not in DROP_TYPES:
            # A route that is an error (blackhole, ...) ends the lookup before suppression.
            suppressed, note, assumption = _suppressed(ns, rule, route)
            notes.extend([note] if note else [])
            assumed.extend([assumption] if assumption else [])
            if suppressed:
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
        if rule.realms and family == 4:
            # __fib_lookup(): the rule's realms become the result's tclassid, for tc's route
            # classifier and iptables' realm match; the route's own realms take precedence.
            notes.append(
                f"rule {rule.priority} tags the route with realms {realms_text(rule.realms)} "
                "(a class for tc and the realm match; the route chosen is the same)"
            )
        if "onlink" in route.flags:
            notes.append(f"onlink: gateway {gateway} is used without checking it is on-link")
        devs = tuple(h.dev for h in route.multipath if h.dev is not None) or (
            (dev,) if dev is not None else ()
        )
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
            devs,
            tuple(assumed),
        )
    return RouteDecision(
        ns.inode,
        dst,
        "none",
        None,
        None,
        "no rule found a route",
        None,
        None,
        None,
        tuple(notes),
        assumed=tuple(assumed),
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


def has_source_rules(ns: NetNamespace, family: int) -> bool:
    """True when a policy rule selects on the source address (the chosen source matters)."""
    return any(r.family == family and r.src for r in ns.rules)


@dataclass(frozen=True)
class SourceChoice:
    """The source address the kernel gives a locally generated packet, and why."""

    address: str | None
    how: str


def _scope(name: str) -> int:
    return SCOPE_VALUES.get(name, int(name) if name.isdigit() else 0)


def _in_subnet(target: str | None, a: Address) -> bool:
    return target is not None and contains(f"{a.address}/{a.prefixlen}", target)


def select_source(ns: NetNamespace, decision: RouteDecision, dst: str) -> SourceChoice:
    """The source of a locally generated packet after this lookup (no bind, no IP_PKTINFO)."""
    if decision.type == "local":
        return SourceChoice(dst, f"{dst} is local: the packet is sent to itself")
    if decision.prefsrc:
        return SourceChoice(
            decision.prefsrc, f"the route's preferred source (src {decision.prefsrc})"
        )
    ip = address(dst)
    if ip is not None and ip.version == 6:
        return _select_source6(ns, decision, dst)
    return _select_source4(ns, decision)


def _select_source4(ns: NetNamespace, decision: RouteDecision) -> SourceChoice:
    """inet_select_addr() for the route's device, gateway and scope."""
    scope = _scope(decision.route.scope) if decision.route is not None else 0
    return inet_select_addr(ns, decision.dev, decision.gateway, scope)


def inet_select_addr(
    ns: NetNamespace, dev_index: int | None, target: str | None, scope: int
) -> SourceChoice:
    """The kernel's IPv4 source choice: the device first, preferring the target's subnet."""
    links = {link.ifindex: link for link in ns.links}
    dev = links.get(dev_index) if dev_index is not None else None
    if dev is not None:
        first: Address | None = None
        for a in dev.addresses:
            if a.family != 4 or _scope(a.scope) > scope:
                continue
            if target is None or _in_subnet(target, a):
                why = f"in the subnet of {target}" if target else "its first address"
                return SourceChoice(
                    a.address, f"{a.address} of {dev.name}: {why} (inet_select_addr)"
                )
            first = first or a
        if first is not None:
            return SourceChoice(
                first.address,
                f"{first.address}: the first address of {dev.name} (inet_select_addr)",
            )
    # No usable address on the device (a Calico cali veth has none): the first one of
    # the namespace's devices, in index order, that is neither link nor too narrow in scope.
    for link in sorted(ns.links, key=lambda lk: lk.ifindex):
        for a in link.addresses:
            if a.family == 4 and a.scope != "link" and _scope(a.scope) <= scope:
                where = dev.name if dev is not None else "the output device"
                return SourceChoice(
                    a.address,
                    f"{a.address} of {link.name}: {where} has no usable address, so the first "
                    "suitable one of the namespace (inet_select_addr)",
                )
    return SourceChoice(None, "no address can be the source: the kernel refuses to send")


def masquerade_source(ns: NetNamespace, out: Link, dst: str) -> str | None:
    """The address MASQUERADE rewrites the source to: the output device's, chosen as the kernel
    chooses it (nf_nat_masquerade_ipv4: inet_select_addr at universe scope; IPv6: RFC 6724)."""
    ip = address(dst)
    if ip is not None and ip.version == 6:
        fake = RouteDecision(ns.inode, dst, "unicast", None, None, "", out.ifindex, None, None)
        return _select_source6(ns, fake, dst).address
    return inet_select_addr(ns, out.ifindex, dst, 0).address


def _common_prefix(a: str, b: str) -> int:
    x, y = address(a), address(b)
    if x is None or y is None:
        return 0
    return 128 - (int(x) ^ int(y)).bit_length()


def _select_source6(ns: NetNamespace, decision: RouteDecision, dst: str) -> SourceChoice:
    """ipv6_dev_get_saddr() (RFC 6724), in short: scope, the output device, longest prefix."""
    ip = address(dst)
    link_local_dst = ip is not None and ip.is_link_local
    candidates: list[tuple[tuple[int, int, int, int], Address, Link]] = []
    for link in ns.links:
        for a in link.addresses:
            if a.family != 6 or a.address == "::1" or not a.usable:
                continue  # tentative and dadfailed addresses are never a source
            ll = a.scope == "link"
            on_dev = int(link.ifindex == decision.dev)
            if ll and not on_dev:
                continue  # a link-local source only on the link it belongs to
            if link_local_dst and not ll:
                continue  # rule 2: a link-local destination takes a link-local source
            # Rule 2 again: a smaller scope than the destination's is the last resort (a
            # pod whose only global address failed DAD sends from its link-local one).
            fits = int(ll == link_local_dst)
            key = (fits, on_dev, _common_prefix(a.address, dst), -link.ifindex)
            candidates.append((key, a, link))
    if not candidates:
        return SourceChoice(None, "no IPv6 address of a fitting scope: the kernel refuses to send")
    key, best, link = max(candidates, key=lambda c: c[0])
    if not key[0]:
        return SourceChoice(
            best.address,
            f"{best.address} of {link.name}: no usable address of the destination's scope, "
            "so a link-local one (RFC 6724 rule 2)",
        )
    return SourceChoice(
        best.address,
        f"{best.address} of {link.name}: RFC 6724 source selection (scope, output device, "
        "longest matching prefix)",
    )


def needs_flow_dissect(ns: NetNamespace, family: int = 4) -> bool:
    """fib_rule_requires_fldissect(): a rule not bound to `iif lo` selects on ipproto or ports."""
    return any(
        r.family == family and r.iif != "lo" and (r.ipproto is not None or r.sport or r.dport)
        for r in ns.rules
    )


def reverse_selectors(
    ns: NetNamespace, proto: str | None, sport: int | None, dport: int | None
) -> tuple[str | None, int | None, int | None]:
    """The protocol and ports of __fib_validate_source()'s reverse lookup.

    With a rule that needs them (fib4_rules_early_flow_dissect), the packet's protocol
    with its ports swapped; otherwise none: protocol 0, ports 0.
    """
    if not needs_flow_dissect(ns):
        return None, None, None
    return proto, dport, sport


@dataclass(frozen=True)
class SourceCheck:
    """fib_validate_source(): whether a received packet's source passes, and why."""

    ok: bool
    reason: str
    mode: int | None  # the effective rp_filter, when known


def validate_source(
    ns: NetNamespace,
    src: str,
    dst: str,
    iif: Link,
    mode: int | None,
    mark: int = 0,
    proto: str | None = None,
    sport: int | None = None,
    dport: int | None = None,
    accept_local: bool = False,
) -> SourceCheck:
    """The reverse path check of an IPv4 packet received on `iif` (net/ipv4/fib_frontend.c).

    proto, sport and dport are the received packet's: the reverse lookup uses the flow's
    reversed selectors when a rule needs them (see `reverse_selectors`). `mark` is the one
    the lookup uses: the packet's with src_valid_mark, else 0 (the caller decides).
    """
    local = src in ns_tables(ns).addresses
    if not mode and accept_local:
        # fib_validate_source(): accept_local skips the own-address test.
        return SourceCheck(True, "rp_filter is off; accept_local=1 takes own addresses", mode)
    if not mode:
        # rp_filter off: only a source that is one of this namespace's own addresses is
        # a martian (accept_local=0), as inet_lookup_ifaddr_rcu() decides.
        if local:
            return SourceCheck(
                False, f"martian source: {src} is an address of this namespace", mode
            )
        why = "rp_filter is off" if mode == 0 else "rp_filter was not collected; no check assumed"
        return SourceCheck(True, why, mode)
    rproto, rsport, rdport = reverse_selectors(ns, proto, sport, dport)
    back = lookup(ns, src, dst, mark, "lo", proto=rproto, sport=rsport, dport=rdport)
    name = RP_FILTER_NAMES.get(mode, str(mode))
    if back.type in DROP_TYPES or back.type == "none":
        return SourceCheck(
            False, f"rp_filter={mode} ({name}) on {iif.name}: no route back to {src}", mode
        )
    own = back.type == "local" and accept_local
    if back.type != "unicast" and not own:
        return SourceCheck(
            False, f"martian source: the route back to {src} is {back.type}, not unicast", mode
        )
    # __fib_validate_source(): with accept_local a local route back passes, and matches
    # when its device is iif (the address is iif's own) or iif is the loopback.
    if iif.ifindex in back.devs or (own and "LOOPBACK" in iif.flags):
        how = f"{src} is an address of {iif.name} and accept_local=1" if own else ""
        return SourceCheck(
            True,
            f"rp_filter={mode} ({name}): " + (how or f"the route back to {src} uses {iif.name}"),
            mode,
        )
    if not any(a.family == 4 for a in iif.addresses):
        return SourceCheck(
            False,
            f"rp_filter={mode} ({name}) on {iif.name}, which has no IPv4 address: "
            f"the route back to {src} does not use it",
            mode,
        )
    if mode == 1:
        out = next((lk.name for lk in ns.links if lk.ifindex == back.dev), str(back.dev))
        where = (
            f"{src} is an address of {out}, not of {iif.name} (accept_local=1 passes only those)"
            if own
            else f"the route back to {src} leaves via {out}"
        )
        return SourceCheck(False, f"rp_filter=1 (strict) on {iif.name}: {where}", mode)
    return SourceCheck(True, f"rp_filter={mode} ({name}): {src} is routable back", mode)


RP_FILTER_NAMES = {0: "off", 1: "strict", 2: "loose"}
