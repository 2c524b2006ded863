"""Policy-rule selectors beyond addresses and marks: ipproto, ports, tos, uidrange, suppress_*."""

from __future__ import annotations

from dataclasses import replace

from realworld_ip import REALWORLD, lines, rules
from trace_factory import pod_inode, two_nodes

from podpath.snapshot.model import Address, Link, NetNamespace, Route, Rule
from podpath.trace.engine import trace
from podpath.trace.probe import Probe
from podpath.trace.routing import describe_rule, lookup

NS = 7
MAIN = [
    Route(NS, 4, 254, "unicast", "0.0.0.0/0", gateway="172.18.0.1", dev=2),
    Route(NS, 4, 254, "unicast", "172.18.0.0/16", dev=2, scope="link"),
    Route(NS, 4, 100, "blackhole", "0.0.0.0/0"),
]
LINKS = (Link(NS, 2, "eth0", None, None, 1500, "UP"),)


def _ns(*rules: Rule, routes: list[Route] = MAIN) -> NetNamespace:
    base = (Rule(NS, 4, 0, "lookup", table=255), Rule(NS, 4, 32766, "lookup", table=254))
    return NetNamespace(NS, links=LINKS, routes=tuple(routes), rules=base + rules)


DNS_RULE = Rule(NS, 4, 90, "lookup", table=100, ipproto=17, dport=(53, 53))


def test_ipproto_dport_rule_leaves_tcp_alone() -> None:
    """`ipproto udp dport 53 lookup 100`: TCP to port 80 still routes by main."""
    d = lookup(_ns(DNS_RULE), "8.8.8.8", proto="tcp", sport=40000, dport=80)
    assert (d.type, d.gateway, d.table) == ("unicast", "172.18.0.1", 254)
    assert not d.assumed


def test_ipproto_dport_rule_takes_udp_53() -> None:
    """The same rule sends UDP to port 53 into table 100's blackhole."""
    d = lookup(_ns(DNS_RULE), "8.8.8.8", proto="udp", sport=40000, dport=53)
    assert (d.type, d.table) == ("blackhole", 100)
    assert d.rule == "90: from all ipproto udp dport 53 lookup 100"


def test_port_rule_without_protocol_sees_port_zero() -> None:
    """A lookup with no protocol (like `ip route get` without ipproto) matches no port range."""
    d = lookup(_ns(Rule(NS, 4, 90, "lookup", table=100, dport=(0, 100))), "8.8.8.8")
    assert d.table == 100


def test_unknown_source_port_is_an_assumption_naming_the_rule() -> None:
    """A sport range against a flow whose source port is unknown is assumed, never matched silently."""
    rule = Rule(NS, 4, 91, "lookup", table=100, ipproto=6, sport=(1000, 2000))
    d = lookup(_ns(rule), "8.8.8.8", proto="tcp", sport=None, dport=80)
    assert d.table == 254
    assert d.assumed == (
        "rule 91 (sport 1000-2000) taken not to match: the flow's sport is not known",
    )


def test_tos_rule_does_not_match_a_tos_zero_packet() -> None:
    """The traced packet has TOS 0: `tos 0x10 lookup 100` does not take it."""
    d = lookup(_ns(Rule(NS, 4, 90, "lookup", table=100, tos=0x10)), "8.8.8.8", proto="tcp")
    assert d.table == 254


def test_suppress_prefixlength_zero_skips_the_default_route() -> None:
    """wg-quick's `lookup main suppress_prefixlength 0`: main's default is rejected, the next rule decides."""
    rules = (
        Rule(NS, 4, 80, "lookup", table=254, suppress_prefixlength=0),
        Rule(NS, 4, 85, "lookup", table=100),
    )
    d = lookup(_ns(*rules), "8.8.8.8", proto="tcp", dport=80)
    assert (d.type, d.table, d.rule) == ("blackhole", 100, "85: from all lookup 100")
    assert any("0.0.0.0/0 suppressed" in n for n in d.notes)


def test_suppress_prefixlength_keeps_longer_prefixes() -> None:
    """A /16 route in main survives suppress_prefixlength 0 and is used by rule 80."""
    rules = (
        Rule(NS, 4, 80, "lookup", table=254, suppress_prefixlength=0),
        Rule(NS, 4, 85, "lookup", table=100),
    )
    d = lookup(_ns(*rules), "172.18.0.9")
    assert (d.type, d.table, d.rule) == (
        "unicast",
        254,
        "80: from all lookup main suppress_prefixlength 0",
    )


def test_blackhole_route_is_not_suppressed() -> None:
    """A blackhole route is an error result: suppress_prefixlength does not skip it (fib_rules_lookup)."""
    rules = (Rule(NS, 4, 80, "lookup", table=100, suppress_prefixlength=0),)
    assert lookup(_ns(*rules), "8.8.8.8").type == "blackhole"


def test_uidrange_on_local_traffic_is_an_assumption() -> None:
    """A locally sent packet's uid is unknown: the uidrange rule is assumed not to match, and said so."""
    rule = Rule(NS, 4, 70, "lookup", table=100, uidrange=(1000, 2000))
    d = lookup(_ns(rule), "8.8.8.8", proto="tcp", dport=80)
    assert d.table == 254
    assert d.assumed and "uidrange 1000-2000" in d.assumed[0]


def test_uidrange_on_forwarded_traffic_uses_uid_zero() -> None:
    """A forwarded packet has uid 0: `uidrange 0-0` takes it, `uidrange 1000-2000` does not."""
    zero = Rule(NS, 4, 70, "lookup", table=100, uidrange=(0, 0))
    d = lookup(_ns(zero), "8.8.8.8", src="10.0.0.2", iif="eth1", proto="tcp", dport=80)
    assert (d.table, d.assumed) == (100, ())
    other = Rule(NS, 4, 70, "lookup", table=100, uidrange=(1000, 2000))
    d = lookup(_ns(other), "8.8.8.8", src="10.0.0.2", iif="eth1", proto="tcp", dport=80)
    assert (d.table, d.assumed) == (254, ())


def test_inverted_ipproto_rule() -> None:
    """`not ipproto udp lookup 100` takes TCP and leaves UDP."""
    rule = Rule(NS, 4, 90, "lookup", table=100, ipproto=17, invert=True)
    assert lookup(_ns(rule), "8.8.8.8", proto="tcp", dport=80).table == 100
    assert lookup(_ns(rule), "8.8.8.8", proto="udp", dport=80).table == 254


def test_l3mdev_rule_without_vrf_matches_nothing() -> None:
    """`lookup [l3mdev-table]` matches only devices in a VRF; with none it is passed over."""
    d = lookup(_ns(Rule(NS, 4, 1000, "lookup", l3mdev=True)), "8.8.8.8")
    assert (d.table, d.assumed) == (254, ())


def test_describe_rule_prints_every_selector_in_ip_rule_order() -> None:
    """describe_rule gives the words and order of `ip rule show` (iproute2 6.1)."""
    rule = Rule(
        NS,
        4,
        70,
        "lookup",
        table=200,
        src="10.0.0.0/8",
        tos=0x10,
        fwmark=4,
        fwmask=0xFF,
        iif="lo",
        oif="lo",
        uidrange=(1000, 2000),
        ipproto=6,
        sport=(1000, 2000),
        dport=(80, 80),
        tun_id=7,
        suppress_ifgroup=5,
        protocol="openr",
    )
    assert describe_rule(rule) == (
        "70: from 10.0.0.0/8 tos 0x10 fwmark 0x4/0xff iif lo oif lo uidrange 1000-2000 "
        "ipproto tcp sport 1000-2000 dport 80 tun_id 7 lookup 200 suppress_ifgroup 5 proto openr"
    )
    assert describe_rule(Rule(NS, 4, 72, "lookup", l3mdev=True, protocol="unspec")) == (
        "72: from all lookup [l3mdev-table]"
    )


def test_describe_rule_reads_like_real_ip_rule_list() -> None:
    """Rules parsed from AWS's and Cilium's published `ip rule list` read back line for line."""
    for name in (
        "aws/cni-proposal-host-ip-rule-list.txt",
        "cilium/cilium-docs-eni-ip-rule-to-endpoint.txt",
    ):
        path = REALWORLD / name
        want = [" ".join(line.split("<-")[0].replace("eni-1", "2").split()) for line in lines(path)]
        got = [describe_rule(r) for r in rules(path, NS, {"eni-1": 2})]
        assert got == want and len(got) >= 1


def test_assumption_under_not_says_the_rule_matches() -> None:
    """`not uidrange 1000-2000` on local traffic: taken to match, and the assumption says so."""
    rule = Rule(NS, 4, 70, "lookup", table=100, uidrange=(1000, 2000), invert=True)
    d = lookup(_ns(rule), "8.8.8.8", proto="tcp", dport=80)
    assert d.table == 100
    assert d.assumed == (
        "rule 70 (uidrange 1000-2000) taken to match (under `not`): the sending process's uid is not known",
    )


def test_a_trace_through_an_unknowable_rule_is_uncertain_and_names_it() -> None:
    """A pod netns with a uidrange rule: the trace's branch is uncertain, naming rule 100."""
    a, _ = two_nodes()
    pod_ns = pod_inode(0, 0)
    rules = (
        Rule(pod_ns, 4, 0, "lookup", table=255),
        Rule(pod_ns, 4, 100, "lookup", table=100, uidrange=(1000, 1000)),
        Rule(pod_ns, 4, 32766, "lookup", table=254),
    )
    netns = tuple(replace(ns, rules=rules) if ns.inode == pod_ns else ns for ns in a.netns)
    (branch,) = trace([replace(a, netns=netns)], Probe("default/a", "default/b:80")).branches
    assert (branch.verdict, branch.outcome) == ("uncertain", "delivered")
    assert any(
        u.startswith("rule 100 (uidrange 1000-1000) taken not to match") for u in branch.uncertain
    )


def _grouped(group: int | None) -> NetNamespace:
    """_ns with eth0 in a device group and `lookup main suppress_ifgroup 7` before table 100."""
    eth0 = replace(LINKS[0], group=group)
    rules = (
        Rule(NS, 4, 80, "lookup", table=254, suppress_ifgroup=7),
        Rule(NS, 4, 85, "lookup", table=100),
    )
    return replace(_ns(*rules), links=(eth0,))


def test_suppress_ifgroup_rejects_a_route_through_a_device_of_that_group() -> None:
    """eth0 in group 7: main's route via eth0 is suppressed, table 100's blackhole decides."""
    d = lookup(_grouped(7), "8.8.8.8")
    assert (d.type, d.table, d.assumed) == ("blackhole", 100, ())
    assert any("dev eth0 is in group 7" in n for n in d.notes), d.notes


def test_suppress_ifgroup_keeps_a_route_through_another_group() -> None:
    """eth0 in group 0 (default): rule 80 uses main's route, nothing assumed."""
    d = lookup(_grouped(0), "8.8.8.8")
    assert (d.type, d.table, d.gateway, d.assumed) == ("unicast", 254, "172.18.0.1", ())


def test_suppress_ifgroup_with_an_uncollected_group_is_an_assumption() -> None:
    """An older snapshot without groups: group 0 is assumed, and said."""
    d = lookup(_grouped(None), "8.8.8.8")
    assert d.table == 254
    assert d.assumed == (
        "rule 80 (suppress_ifgroup 7): the group of dev eth0 is not known, taken as 0 (default)",
    )


def test_rule_with_realms_routes_as_without_and_says_the_tag() -> None:
    """FRA_FLOW only tags the result (res->tclassid): the route is main's, with a note."""
    rule = Rule(NS, 4, 70, "lookup", table=254, realms=(3 << 16) | 7)
    d = lookup(_ns(rule), "8.8.8.8")
    assert (d.type, d.table, d.gateway) == ("unicast", 254, "172.18.0.1")
    assert d.rule == "70: from all lookup main realms 3/7"
    assert any("realms 3/7" in n for n in d.notes), d.notes


def test_describe_rule_words_realms_and_groups_as_ip_rule() -> None:
    """`realms 5`, `realms 3/7 goto 90` and `suppress_ifgroup default` as `ip rule` prints them."""
    assert describe_rule(Rule(NS, 4, 74, "lookup", table=100, realms=5)) == (
        "74: from all lookup 100 realms 5"
    )
    assert describe_rule(Rule(NS, 4, 75, "goto", goto=90, fwmark=9, realms=(3 << 16) | 7)) == (
        "75: from all fwmark 0x9 realms 3/7 goto 90"
    )
    assert describe_rule(Rule(NS, 4, 76, "lookup", table=254, suppress_ifgroup=0)) == (
        "76: from all lookup main suppress_ifgroup default"
    )


def test_rp_filter_reverse_lookup_uses_the_reversed_ports() -> None:
    """A reply from port 53 back to the sender: the reverse lookup asks for dport 53 (swapped)."""
    from podpath.trace.routing import validate_source

    back_rule = Rule(NS, 4, 90, "lookup", table=100, ipproto=17, dport=(53, 53))
    routes = [*MAIN[:2], Route(NS, 4, 100, "unicast", "0.0.0.0/0", gateway="172.18.0.9", dev=3)]
    eth1 = Link(NS, 3, "eth1", None, None, 1500, "UP")
    eth0 = replace(LINKS[0], addresses=(Address(4, "172.18.0.5", 16),))
    ns = replace(_ns(back_rule, routes=routes), links=(eth0, eth1))
    # UDP from 9.9.9.9:40000 to :53 received on eth0: reversed, dport 40000: main, eth0 -> ok.
    ok = validate_source(ns, "9.9.9.9", "172.18.0.5", eth0, 1, 0, "udp", 40000, 53)
    assert ok.ok, ok.reason
    # The same packet from source port 53: the way back is table 100 via eth1 -> strict drop.
    bad = validate_source(ns, "9.9.9.9", "172.18.0.5", eth0, 1, 0, "udp", 53, 40000)
    assert not bad.ok and "leaves via eth1" in bad.reason, bad.reason
    # TCP is not selected by the rule: main, eth0.
    assert validate_source(ns, "9.9.9.9", "172.18.0.5", eth0, 1, 0, "tcp", 53, 40000).ok


def test_accept_local_lets_an_own_source_in_when_rp_filter_is_off() -> None:
    """rp_filter 0: an own address as source is a martian, unless accept_local (all OR dev)."""
    from podpath.snapshot.model import NetConf
    from podpath.trace import sysctls
    from podpath.trace.routing import validate_source

    eth0 = replace(LINKS[0], addresses=(Address(4, "172.18.0.5", 16),))
    ns = replace(_ns(), links=(eth0,))
    assert not validate_source(ns, "172.18.0.5", "172.18.0.6", eth0, 0).ok
    ns = replace(ns, netconf=(NetConf(4, -1, accept_local=0), NetConf(4, 2, accept_local=1)))
    assert sysctls.accept_local(ns, eth0) is True
    assert validate_source(ns, "172.18.0.5", "172.18.0.6", eth0, 0, accept_local=True).ok


def test_src_valid_mark_is_all_or_interface_and_unknown_when_not_read() -> None:
    """src_valid_mark: conf/all OR conf/DEV; None for a snapshot that did not read it."""
    from podpath.snapshot.model import NetConf
    from podpath.trace import sysctls

    eth0 = LINKS[0]
    assert (
        sysctls.src_valid_mark(replace(_ns(), netconf=(NetConf(4, -1), NetConf(4, 2))), eth0)
        is None
    )
    confs = (NetConf(4, -1, src_valid_mark=1), NetConf(4, 2, src_valid_mark=0))
    assert sysctls.src_valid_mark(replace(_ns(), netconf=confs), eth0) is True
    confs = (NetConf(4, -1, src_valid_mark=0), NetConf(4, 2, src_valid_mark=0))
    assert sysctls.src_valid_mark(replace(_ns(), netconf=confs), eth0) is False


def test_accept_local_with_rp_filter_on_passes_only_the_receiving_interfaces_own_address() -> None:
    """__fib_validate_source(): a local route back passes with accept_local; strict mode
    still wants its device to be iif (the address is iif's), loose mode takes any."""
    from podpath.trace.routing import validate_source

    veth = Link(NS, 3, "cali1", "veth", None, 1500, "UP", addresses=(Address(4, "10.244.0.1", 32),))
    eth0 = replace(LINKS[0], addresses=(Address(4, "172.18.0.5", 16),))
    local = [
        Route(NS, 4, 255, "local", "172.18.0.5/32", dev=2, scope="host"),
        Route(NS, 4, 255, "local", "10.244.0.1/32", dev=3, scope="host"),
    ]
    ns = replace(_ns(routes=[*MAIN[:2], *local]), links=(eth0, veth))
    # Without accept_local an own source is a martian, strict or not.
    bad = validate_source(ns, "10.244.0.1", "10.244.0.9", veth, 1)
    assert not bad.ok and "is local, not unicast" in bad.reason, bad.reason
    # accept_local: the veth's own address comes in on the veth -> the local route's device.
    ok = validate_source(ns, "10.244.0.1", "10.244.0.9", veth, 1, accept_local=True)
    assert ok.ok and "is an address of cali1 and accept_local=1" in ok.reason, ok.reason
    # eth0's address on the veth: strict drops it, loose takes it.
    strict = validate_source(ns, "172.18.0.5", "10.244.0.9", veth, 1, accept_local=True)
    assert not strict.ok and "is an address of eth0, not of cali1" in strict.reason
    assert validate_source(ns, "172.18.0.5", "10.244.0.9", veth, 2, accept_local=True).ok


def test_ipv6_forwards_with_all_or_the_input_interfaces_force_forwarding() -> None:
    """ip6_forward(): conf/all/forwarding, else force_forwarding of the input interface
    (Linux 6.17+); unknown when all is 0 and the keys were not read, off when all is 0 on
    a kernel without the key."""
    from podpath.snapshot.model import NetConf
    from podpath.trace import sysctls

    eth0 = LINKS[0]
    off = NetConf(6, -1, forwarding=0)
    ns = replace(_ns(), netconf=(off, NetConf(6, 2, forwarding=0, force_forwarding=1)))
    assert sysctls.forwarding(ns, 6, eth0) is True
    ns = replace(_ns(), netconf=(off, NetConf(6, 2, forwarding=0, force_forwarding=0)))
    assert sysctls.forwarding(ns, 6, eth0) is False
    assert sysctls.forwarding(replace(_ns(), netconf=(off, NetConf(6, 2))), 6, eth0) is None
    # The namespace's /proc/sys keys read (IPv4's accept_local), force_forwarding absent
    # from conf/all: a kernel before 6.17, which forwards by conf/all alone.
    read = NetConf(4, -1, forwarding=0, accept_local=0)
    ns = replace(_ns(), netconf=(read, off, NetConf(6, 2, forwarding=0)))
    assert sysctls.forwarding(ns, 6, eth0) is False
    on = NetConf(6, -1, forwarding=1)
    ns = replace(_ns(), netconf=(on, NetConf(6, 2, force_forwarding=0)))
    assert sysctls.forwarding(ns, 6, eth0) is True
