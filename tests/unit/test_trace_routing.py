"""Route lookups as the kernel does them: policy rules, longest prefix, route types, the binary AND."""

from __future__ import annotations

import gc

from hypothesis import given
from hypothesis import strategies as st

from podpath.analysis.ns_tables import _TABLES, network, ns_tables
from podpath.snapshot.model import NetNamespace, Route, Rule
from podpath.trace.routing import address as parse_address
from podpath.trace.routing import binary, explain_and, longest_prefix, lookup

NS = 7


def _ns(routes: list[Route], rules: tuple[Rule, ...] = ()) -> NetNamespace:
    return NetNamespace(NS, routes=tuple(routes), rules=rules)


BASE = [
    Route(NS, 4, 254, "unicast", "0.0.0.0/0", gateway="192.168.0.1", dev=2),
    Route(NS, 4, 254, "unicast", "192.168.0.0/24", dev=2, scope="link"),
    Route(NS, 4, 254, "unicast", "10.244.1.0/24", gateway="192.168.0.3", dev=2),
    Route(NS, 4, 255, "local", "192.168.0.2/32", dev=2, scope="host"),
]


def test_longest_prefix_wins_over_default() -> None:
    """A /24 beats the default route for an address inside it."""
    d = lookup(_ns(BASE), "10.244.1.7")
    assert (d.type, d.matched, d.gateway, d.dev, d.table) == (
        "unicast",
        "10.244.1.0/24",
        "192.168.0.3",
        2,
        254,
    )


def test_local_table_is_consulted_first() -> None:
    """The default rule 0 (lookup local) makes a node address local delivery."""
    d = lookup(_ns(BASE), "192.168.0.2")
    assert (d.type, d.table) == ("local", 255)


def test_equal_prefix_lowest_metric_wins() -> None:
    """Of two routes with the same prefix, the lower metric is used."""
    routes = BASE + [
        Route(NS, 4, 254, "unicast", "10.50.0.0/16", gateway="192.168.0.10", dev=2, metric=200),
        Route(NS, 4, 254, "unicast", "10.50.0.0/16", gateway="192.168.0.20", dev=2, metric=100),
    ]
    assert lookup(_ns(routes), "10.50.1.1").gateway == "192.168.0.20"


def test_fwmark_rule_selects_another_table() -> None:
    """A marked packet follows `fwmark 0x1 lookup 100`; an unmarked one uses main."""
    rules = (
        Rule(NS, 4, 0, "lookup", table=255),
        Rule(NS, 4, 100, "lookup", table=100, fwmark=0x1, fwmask=0x1),
        Rule(NS, 4, 32766, "lookup", table=254),
    )
    routes = BASE + [Route(NS, 4, 100, "unicast", "0.0.0.0/0", gateway="192.168.0.254", dev=2)]
    assert lookup(_ns(routes, rules), "8.8.8.8", mark=0x1).gateway == "192.168.0.254"
    assert lookup(_ns(routes, rules), "8.8.8.8", mark=0x0).gateway == "192.168.0.1"


def test_source_rule_and_table_fallthrough() -> None:
    """A `from` rule whose table has no match falls through to the next rule."""
    rules = (
        Rule(NS, 4, 10, "lookup", table=200, src="10.244.0.0/16"),
        Rule(NS, 4, 32766, "lookup", table=254),
    )
    routes = BASE + [Route(NS, 4, 200, "unicast", "172.16.0.0/12", dev=3)]
    assert lookup(_ns(routes, rules), "172.16.1.1", src="10.244.0.5").dev == 3
    assert lookup(_ns(routes, rules), "8.8.8.8", src="10.244.0.5").gateway == "192.168.0.1"


def test_blackhole_and_unreachable_routes() -> None:
    """Blackhole and unreachable routes are reported as such, with no device."""
    routes = BASE + [
        Route(NS, 4, 254, "blackhole", "10.99.0.0/16"),
        Route(NS, 4, 254, "unreachable", "10.98.0.0/16"),
    ]
    assert lookup(_ns(routes), "10.99.1.1").type == "blackhole"
    assert lookup(_ns(routes), "10.98.1.1").type == "unreachable"


def test_rule_action_prohibit() -> None:
    """A `prohibit` policy rule ends the lookup."""
    rules = (
        Rule(NS, 4, 5, "prohibit", dst="203.0.113.0/24"),
        Rule(NS, 4, 32766, "lookup", table=254),
    )
    assert lookup(_ns(BASE, rules), "203.0.113.9").type == "prohibit"


def test_no_route_at_all() -> None:
    """Without a matching route the decision says none."""
    d = lookup(_ns(BASE[1:]), "8.8.8.8")
    assert d.type == "none" and d.dev is None


def test_explain_shows_the_article_and() -> None:
    """The explanation ANDs the destination with each mask, in binary, like the article."""
    ns = _ns(BASE)
    d = lookup(ns, "172.16.1.1", explain=True)
    text = "\n".join(explain_and(ns, 254, "172.16.1.1", d.route)) if d.route else ""
    assert "10101100.00010000.00000001.00000001" in text  # 172.16.1.1 in binary
    assert "172.16.1.0 != 192.168.0.0: no match" in text
    assert d.explain and d.explain[-1].endswith("(0.0.0.0/0)")


def test_binary_of_an_address() -> None:
    """An IPv4 address in binary has four dotted octets."""
    ip = parse_address("192.168.1.1")
    assert ip is not None and binary(ip) == "11000000.10101000.00000001.00000001"


# --- the namespace's prefix tables give what a walk over every route gives -------------

_DSTS = st.sampled_from(
    ["0.0.0.0/0", "default", "10.0.0.0/8", "10.244.0.0/16", "10.244.1.0/24", "10.244.1.7/32",
     "10.244.1.9/24", "::/0", "fd00::/8", "fd00::7/128", "fd00::/64", "garbage"]
)  # fmt: skip
_ROUTES = st.lists(
    st.builds(
        lambda table, dst, metric: Route(
            NS, 6 if ":" in dst else 4, table, "unicast", dst, metric=metric
        ),
        st.sampled_from([254, 255, 100]),
        _DSTS,
        st.sampled_from([None, 0, 10, 100]),
    ),
    max_size=12,
)


def _walked(ns: NetNamespace, table: int, dst: str) -> list[Route]:
    """Every route of the table holding dst, longest prefix then lowest metric first."""
    ip = parse_address(dst)
    assert ip is not None
    matching = []
    for route in ns.routes:
        net = network(route.dst)
        if route.table == table and net is not None and net.version == ip.version and ip in net:
            matching.append((-net.prefixlen, route.metric or 0, route))
    matching.sort(key=lambda t: (t[0], t[1]))
    return [r for _, _, r in matching]


@given(_ROUTES, st.sampled_from([254, 255, 100]), st.sampled_from(
    ["10.244.1.7", "10.244.2.1", "10.9.9.9", "8.8.8.8", "fd00::7", "fd00::8", "2001:db8::1"]
))  # fmt: skip
def test_longest_prefix_tables_agree_with_walking_every_route(
    routes: list[Route], table: int, dst: str
) -> None:
    """Same routes, same order (equal prefix and metric: the namespace's route order)."""
    ns = _ns(routes)
    best, found = longest_prefix(ns, table, dst)
    assert found == _walked(ns, table, dst)
    assert best == (found[0] if found else None)


def test_tables_are_dropped_with_their_namespace() -> None:
    """A namespace's tables live as long as it does (a refreshed snapshot's replace them)."""
    ns = _ns(BASE)
    assert ns_tables(ns) is ns_tables(ns)
    key = id(ns)
    del ns
    gc.collect()
    assert key not in _TABLES
