"""Pods that sit in the same network position behave alike: trace from one of each.

Two pods of a node are in one class when everything the kernel consults for their
packets is the same up to their own address: the bridge (or routed veth) their host
side is on, the routes and policy rules of their namespace, the MTUs and hairpin mode
of both ends of their veth, the per-interface sysctls, tc and XDP programs of the host
side, and how the node's own routes and rules treat their address. A pod whose address
or host interface any rule names that is not kube-proxy's own per-endpoint rule (a
NetworkPolicy ipset, a host firewall line, an xt_recent affinity pin) is a class of its
own: the doctor cannot tell that it behaves like the others, so it traces it itself.
Pods that such a rule's network or address range holds are apart from those it does not
(`podpath.doctor.named`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields

from podpath.analysis.index import SnapshotIndex
from podpath.doctor.named import NamedInRules, named_in_rules
from podpath.snapshot.model import Link, NetNamespace, Pod, Route, Rule
from podpath.trace.links import USABLE_STATES

SELF = "<self>"
# A rule's fields but its namespace's (the shape compares rules of different namespaces).
_RULE_FIELDS = tuple(f.name for f in fields(Rule) if f.name != "netns")
# The pod's own host-side veth, where a route or rule names it (each pod's has its name).
OWN_VETH = "<veth>"
LINK_LOCAL = "<link-local>"


@dataclass(frozen=True)
class PodClass:
    """Pods of one node in one network position; `members[0]` is the one traced."""

    node: int  # index of the node's snapshot
    key: tuple[object, ...]
    members: tuple[Pod, ...]

    @property
    def representative(self) -> Pod:
        """The pod traced for the whole class."""
        return self.members[0]

    @property
    def label(self) -> str:
        """`default/web-0` or `default/web-0 (and 11 pods like it)`."""
        pod = self.representative
        more = len(self.members) - 1
        like = f" (and {more} pod{'s' if more != 1 else ''} like it)" if more else ""
        return f"{pod.namespace}/{pod.name}{like}"


def traceable(pod: Pod) -> bool:
    """A pod the doctor traces from and to: its own netns, with an address."""
    return not pod.host_network and pod.netns_inode is not None and bool(pod.ips)


def pod_classes(
    index: SnapshotIndex,
    node: int,
    named: NamedInRules | None = None,
    elsewhere: Sequence[NamedInRules] = (),
) -> list[PodClass]:
    """The node's traceable pods grouped by network position, in pod order (`named`: what
    the node's other rules name, read from the index when not given; `elsewhere`: what
    the other loaded nodes' rules name, which a pod's packets and replies to it cross)."""
    named = named_in_rules(index) if named is None else named
    every = (named, *elsewhere)
    singled = singled_out(index, named)
    roots: dict[int, _Root] = {}
    groups: dict[tuple[object, ...], list[Pod]] = {}
    for pod in index.snapshot.pods:
        if traceable(pod):
            key = position(index, pod, singled, roots, named.interface_prefixes)
            # Networks and ranges a rule names set apart the pods they hold (one that
            # holds every pod, the pod CIDR, sets none apart).
            tags = tuple(each.tags(ip) for each in every for ip in pod.ips)
            groups.setdefault((*key, tags) if any(tags) else key, []).append(pod)
    return [PodClass(node, key, tuple(members)) for key, members in groups.items()]


@dataclass(frozen=True)
class _Root:
    """A root namespace's link names and routes indexed once, for every pod's veth on it
    (each pod looked through all of them: quadratic in the pods)."""

    names: dict[int, str]
    by_dev: dict[int, list[Route]]
    by_address: dict[str, list[Route]]
    # Per interface: its netconf, qdiscs and tc filters, each without the ifindex.
    extras: dict[int | None, tuple[list[tuple[object, ...]], ...]]
    # The MAC the node's neighbour table gives each (interface, address), where the
    # kernel would send to it without resolving first; the bridge ports the FDB gives
    # each MAC.
    resolved: dict[tuple[int, str], str]
    ports_of: dict[str, list[int]]


# The root namespace's per-interface lists a pod's host side is compared by.
_EXTRAS = ("netconf", "qdiscs", "tc_filters")


def _no_extras() -> tuple[list[tuple[object, ...]], ...]:
    return tuple([] for _ in _EXTRAS)


def _root(ns: NetNamespace) -> _Root:
    by_dev: dict[int, list[Route]] = {}
    by_address: dict[str, list[Route]] = {}
    for route in ns.routes:
        if route.dev is not None:
            by_dev.setdefault(route.dev, []).append(route)
        by_address.setdefault(route.dst.partition("/")[0], []).append(route)
    extras: dict[int | None, tuple[list[tuple[object, ...]], ...]] = {}
    for i, name in enumerate(_EXTRAS):
        for item in getattr(ns, name, ()):
            lists = extras.setdefault(getattr(item, "ifindex", None), _no_extras())
            lists[i].append(
                tuple(getattr(item, f.name) for f in fields(item) if f.name != "ifindex")
            )
    names = {link.ifindex: link.name for link in ns.links}
    resolved = {
        (n.ifindex, n.dst): n.lladdr.lower()
        for n in ns.neighbours
        if n.lladdr and set(n.state) & USABLE_STATES
    }
    ports_of: dict[str, list[int]] = {}
    for entry in ns.fdb:
        ports_of.setdefault(entry.mac.lower(), []).append(entry.ifindex)
    return _Root(names, by_dev, by_address, extras, resolved, ports_of)


def _root_index(roots: dict[int, _Root], root: NetNamespace) -> _Root:
    """The root namespace's index, built for its first pod."""
    seen = roots.get(root.inode)
    if seen is None:
        seen = roots[root.inode] = _root(root)
    return seen


def position(
    index: SnapshotIndex,
    pod: Pod,
    singled: frozenset[str],
    roots: dict[int, _Root] | None = None,
    interface_prefixes: tuple[str, ...] = (),
) -> tuple[object, ...]:
    """What the kernel consults for this pod's packets, with its own address left out
    (`roots` keeps each root namespace's index for the next pod; `interface_prefixes`:
    the wildcards rules name interfaces by, `cali+`)."""
    if any(ip in singled for ip in pod.ips):
        return ("single", pod.namespace, pod.name, pod.netns_inode)
    assert pod.netns_inode is not None
    own = frozenset(pod.ips)
    ns = index.netns_by_inode.get(pod.netns_inode)
    inside = _namespace_shape(ns, own) if ns is not None else ("unread", pod.netns_inode)
    host_side: tuple[object, ...] = ()
    eth0 = index.pod_interface(pod)
    peer = index.peer(eth0) if eth0 is not None else None
    if peer is not None:
        if peer.name in singled:
            return ("single", pod.namespace, pod.name, pod.netns_inode)
        root = index.netns_by_inode.get(peer.netns)
        master = index.link(peer.netns, peer.master)
        roots = {} if roots is None else roots
        seen = _root_index(roots, root) if root is not None else None
        host_side = (
            peer.netns,
            master.name if master is not None else None,
            _link_shape(peer, own, with_name=False),
            _host_side_extras(seen, peer) if seen is not None else (),
            _root_shape(index, peer, own, roots),
            tuple(p for p in interface_prefixes if peer.name.startswith(p)),
            _misdirected(seen, pod, eth0.mac if eth0 is not None else None, peer)
            if seen is not None
            else (),
        )
    return ("pod", inside, host_side)


def _misdirected(root: _Root, pod: Pod, mac: str | None, peer: Link) -> tuple[object, ...]:
    """What the node would send the pod's frames to instead of its own eth0: a neighbour
    entry with another MAC for its address on the interface the node reaches it by (the
    bridge, or a routed CNI's veth itself), an FDB entry sending its MAC out of another
    port (() when neither: the usual case, however the entries' states and ages differ)."""
    if not mac:
        return ()  # the pod's eth0 unread: nothing to compare with
    own_mac = mac.lower()
    devices = (peer.ifindex,) if peer.master is None else (peer.master, peer.ifindex)
    wrong = tuple(
        (ip, found)
        for ip in pod.ips
        for dev in devices
        if (found := root.resolved.get((dev, ip), own_mac)) != own_mac
    )
    elsewhere = tuple(p for p in root.ports_of.get(own_mac, ()) if p != peer.ifindex)
    return (wrong, elsewhere) if wrong or elsewhere else ()


# A bridge port's learning decides whether an FDB entry for its pod's MAC elsewhere moves
# back (Engine._entry_roams), as hairpin mode, isolation and its STP state decide what is
# bridged.
_LATER_FIELDS = frozenset({"hairpin", "xdp", "isolated", "learning", "port_state"})


def _link_shape(link: Link, own: frozenset[str], *, with_name: bool = True) -> tuple[object, ...]:
    """A link's fields, its addresses with the pod's own replaced (name optional)."""
    return (
        link.name if with_name else None,
        link.kind,
        link.mtu,
        link.state,
        link.flags,
        tuple((a.family, _plain(a.address, own), a.prefixlen) for a in link.addresses),
        # Fields later snapshots add (a port's switches, counters excluded): compared when
        # present.
        *(getattr(link, f.name) for f in fields(link) if f.name in _LATER_FIELDS),
    )


def _host_side_extras(root: _Root, peer: Link) -> tuple[object, ...]:
    """Per-interface sysctls and tc programs of the host side, where the snapshot has them
    (indexed by interface once: each pod looked through every interface's)."""
    return tuple(tuple(found) for found in root.extras.get(peer.ifindex, _no_extras()))


def _namespace_shape(ns: NetNamespace, own: frozenset[str]) -> tuple[object, ...]:
    """The pod namespace's links, routes and rules, its own addresses left out, and its
    own netfilter tables (a sidecar's rules make its paths another matter)."""
    names = {link.ifindex: link.name for link in ns.links}
    return (
        tuple(sorted((_link_shape(link, own) for link in ns.links), key=repr)),
        tuple(sorted((_route_shape(r, own, names) for r in ns.routes), key=repr)),
        tuple(sorted((_rule_shape(r, own) for r in ns.rules), key=repr)),
        None
        if ns.netfilter is None
        else tuple(
            (t.backend, t.family, t.name, tuple((c.name, c.hook, c.rules) for c in t.chains))
            for t in ns.netfilter
        ),
    )


def _plain(address: str, own: frozenset[str]) -> str:
    """An address with the pod's own, and every IPv6 link-local one (each veth end makes
    its own from its random MAC), replaced by a placeholder."""
    if address in own:
        return SELF
    if address.lower().startswith("fe80:"):
        return LINK_LOCAL
    return address


def _strip(cidr: str | None, own: frozenset[str]) -> str | None:
    if cidr is None:
        return None
    address, slash, length = cidr.partition("/")
    return f"{_plain(address, own)}{slash}{length}"


def _route_shape(route: Route, own: frozenset[str], names: dict[int, str]) -> tuple[object, ...]:
    return (
        route.table,
        route.type,
        _strip(route.dst, own),
        route.gateway,
        names.get(route.dev, route.dev) if route.dev is not None else None,
        _strip(route.prefsrc, own),
        route.metric,
        route.scope,
        route.flags,
        tuple(
            (n.gateway, names.get(n.dev, n.dev) if n.dev else None, n.weight)
            for n in route.multipath
        ),
    )


def _rule_shape(rule: Rule, own: frozenset[str], veth: str | None = None) -> tuple[object, ...]:
    """Every selector and action of the rule (ports, protocol, uid range... included), its
    prefixes with the pod's own address left out, and the pod's own host-side `veth` as
    an interface it names."""
    return tuple(
        _strip(getattr(rule, name), own)
        if name in ("src", "dst")
        else OWN_VETH
        if name in ("iif", "oif") and veth is not None and getattr(rule, name) == veth
        else getattr(rule, name)
        for name in _RULE_FIELDS
    )


def _root_shape(
    index: SnapshotIndex, peer: Link, own: frozenset[str], roots: dict[int, _Root]
) -> tuple[object, ...]:
    """How the node's routes and rules treat the pod: its /32 route via its own veth
    (routed CNIs), `from POD lookup TABLE` rules (AWS VPC CNI), each with the pod left out."""
    root = index.netns_by_inode.get(peer.netns)
    if root is None:
        return ()
    seen = _root_index(roots, root)
    names = dict(seen.names)
    if peer.ifindex in names:
        names[peer.ifindex] = OWN_VETH
    mine = [
        *seen.by_dev.get(peer.ifindex, ()),
        *(r for a in own for r in seen.by_address.get(a, ())),
    ]
    # A route both via the veth and to the pod's address is one route.
    unique = list({id(r): r for r in mine}.values())
    routes = [_route_shape(r, own, names) for r in unique]
    rules = [
        _rule_shape(r, own, peer.name)
        for r in root.rules
        if (r.src or "").partition("/")[0] in own
        or (r.dst or "").partition("/")[0] in own
        or r.iif == peer.name
        or r.oif == peer.name
    ]
    return (tuple(sorted(routes, key=repr)), tuple(sorted(rules, key=repr)))


def singled_out(index: SnapshotIndex, named: NamedInRules) -> frozenset[str]:
    """Pod addresses and host interface names that a rule other than kube-proxy's names
    (an address named by an ipset or an xt_recent pin included)."""
    pods = [p for p in index.snapshot.pods if traceable(p)]
    found: set[str] = {ip for p in pods for ip in p.ips if ip in named.addresses}
    veths: set[str] = set()
    for pod in pods:
        eth0 = index.pod_interface(pod)
        peer = index.peer(eth0) if eth0 is not None else None
        if peer is not None:
            veths.add(peer.name)
    return frozenset(found | (veths & named.words))
