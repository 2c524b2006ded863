"""A trace branch placed on a node map: the numbered steps and the segments between them.

Each hop the engine recorded is put on the element where the kernel made that
decision: a route lookup on the pod (its own netns) or on the node's IP stack; DNAT,
SNAT and conntrack's reverse translation on the IP stack; a veth crossing on the
connection between the pod and its host veth; the bridge's FDB choice on the bridge;
encapsulation and decapsulation on the overlay devices; leaving the node on the
uplink, across the shared network to the node that owns the next hop. Neighbour
lookups and single netfilter rule jumps are left to the text trace: they would
bury the picture in numbers.
"""

from __future__ import annotations

from dataclasses import dataclass

from podpath.draw.model import NodeMap, stack_id
from podpath.trace.model import Branch, Hop, JsonValue

SKIPPED_KINDS = frozenset({"neighbour", "netfilter"})
# Decisions netfilter takes where the packet already is: a bridged frame is handed to
# iptables by br_netfilter without leaving the bridge, so these steps do not move it.
IN_PLACE_KINDS = frozenset({"nat", "conntrack"})


@dataclass(frozen=True)
class PathStep:
    """One numbered decision, on the element where it happened."""

    number: int
    direction: str  # original | reply
    kind: str  # the hop kind (route, nat, link, bridge, vxlan, leave, deliver, drop, conntrack)
    element: str
    text: str


@dataclass(frozen=True)
class PathSegment:
    """The packet moving from one element to the next, as step `number` says."""

    number: int
    direction: str
    source: str
    target: str
    connection: str | None  # the map's connection it follows; None when the map has none


@dataclass(frozen=True)
class TracePath:
    """A branch (and its reply) on the map."""

    branch: int  # 1-based, as `podpath trace` numbers branches
    verdict: str
    reason: str
    steps: tuple[PathStep, ...]
    segments: tuple[PathSegment, ...]
    unplaced: tuple[str, ...] = ()  # hops whose element the map does not draw


def _s(value: JsonValue) -> str:
    return "" if value is None else str(value)


def _int(value: JsonValue) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


class _Placer:
    """Finds the element of each hop; remembers the node the packet is on."""

    def __init__(self, node_map: NodeMap) -> None:
        self.map = node_map
        self.node = 0
        self.links: dict[tuple[int, int | None, str], str] = {}
        self.by_netns: dict[tuple[int, int], str] = {}
        self.owners: dict[tuple[int, str], str] = {}
        for e in node_map.elements:
            if e.node is None:
                continue
            if e.name is not None:
                self.links[(e.node, e.netns, e.name)] = e.id
            if e.kind in ("pod", "netns", "stack") and e.netns is not None:
                self.by_netns.setdefault((e.node, e.netns), e.id)
            if e.kind in ("uplink", "vxlan", "bridge", "device"):
                for address in e.addresses:
                    self.owners.setdefault((e.node, address), e.id)
        for e in node_map.elements:
            # Ports inside a pod's box answer for the pod's interfaces and folded host veths.
            for port in e.ports:
                node = e.node or 0
                self.links.setdefault((node, e.netns, port.name), e.id)
                if port.peer is not None:
                    self.links.setdefault((node, self.root(node), port.peer), e.id)

    def node_of(self, hop: Hop) -> int:
        """The snapshot index of the hop's node (hostnames may repeat: netns decides then)."""
        found = [i for i, h in enumerate(self.map.hostnames) if h == hop.node]
        if len(found) > 1:
            netns = _int(hop.data.get("netns")) or _int(hop.data.get("to_netns"))
            found = [i for i in found if netns is None or (i, netns) in self.by_netns] or found
            if self.node in found:
                return self.node
        if found:
            self.node = found[0]
        return self.node

    def root(self, node: int) -> int | None:
        stack = self.map.element(stack_id(node))
        return stack.netns if stack else None

    def in_netns(self, node: int, netns: int | None) -> str | None:
        if netns is None:
            return None
        return self.by_netns.get((node, netns))

    def link(self, node: int, netns: int | None, name: str) -> str | None:
        if netns is None:
            netns = self.root(node)
        return self.links.get((node, netns, name))

    def root_link(self, node: int, name: str) -> str | None:
        return self.links.get((node, self.root(node), name))

    def receiver(self, node: int, address: str) -> str | None:
        """The element of another node that owns an address (where a packet arrives)."""
        return self.owners.get((node, address))

    def network_between(self, a: str, b: str | None) -> str | None:
        """The network element joining two uplinks (or the first one's, when b is unknown)."""
        nets_a = {c.target for c in self.map.connections if c.kind == "wire" and c.source == a}
        if b is not None:
            nets_b = {c.target for c in self.map.connections if c.kind == "wire" and c.source == b}
            shared = sorted(nets_a & nets_b)
            return shared[0] if shared else None
        return sorted(nets_a)[0] if len(nets_a) == 1 else None


def _text(hop: Hop) -> str:
    """A short caption for a hop, from its contract data (the full text stays in `trace`)."""
    d = hop.data
    if hop.kind == "route":
        if d.get("type") not in ("unicast", "local", "broadcast", "multicast"):
            return f"route {_s(d.get('dst'))}: {_s(d.get('type'))}"
        via = f" via {_s(d.get('gateway'))}" if d.get("gateway") else ""
        return f"route {_s(d.get('dst'))}: {_s(d.get('matched'))}{via} dev {_s(d.get('dev'))}"
    if hop.kind == "nat":
        return f"{_s(d.get('type'))} {_s(d.get('from'))} → {_s(d.get('to'))}"
    if hop.kind == "conntrack":
        return f"conntrack {_s(d.get('type'))} {_s(d.get('from'))} → {_s(d.get('to'))}"
    if hop.kind == "link":
        return f"veth {_s(d.get('from'))} → {_s(d.get('to'))}"
    if hop.kind == "bridge":
        if d.get("local"):
            return f"bridge {_s(d.get('bridge'))}: own MAC, up to the IP stack"
        how = "flooded" if d.get("flooded") else "fdb"
        return f"bridge {_s(d.get('bridge'))}: {how} → port {_s(d.get('port'))}"
    if hop.kind == "vxlan":
        if d.get("decap"):
            return f"VXLAN decapsulate VNI {_s(d.get('vni'))}"
        return f"VXLAN encapsulate VNI {_s(d.get('vni'))} → VTEP {_s(d.get('remote'))}"
    if hop.kind == "ipip":
        if d.get("decap"):
            return f"IP-in-IP decapsulate on {_s(d.get('dev'))}"
        return f"IP-in-IP encapsulate → {_s(d.get('remote'))}"
    if hop.kind == "leave":
        toward = f" (node {_s(d.get('toward'))})" if d.get("toward") else ""
        return f"leaves via {_s(d.get('dev'))} toward {_s(d.get('via'))}{toward}"
    if hop.kind == "ebpf":
        name = d.get("program_name") or d.get("section") or "eBPF program"
        return f"{_s(d.get('hook'))} of {_s(d.get('dev'))}: {_s(name)} decides"
    return hop.text


def _points(placer: _Placer, hop: Hop) -> list[str | None]:
    """The elements a hop touches, in the order the packet touches them."""
    node = placer.node_of(hop)
    d = hop.data
    if hop.kind in ("route", "deliver", "drop"):
        return [placer.in_netns(node, _int(d.get("netns")))]
    if hop.kind in ("nat", "conntrack"):
        return [stack_id(node)]
    if hop.kind == "link":
        return [
            placer.link(node, _int(d.get("from_netns")), _s(d.get("from"))),
            placer.link(node, _int(d.get("to_netns")), _s(d.get("to"))),
        ]
    if hop.kind == "bridge":
        return [placer.root_link(node, _s(d.get("bridge")))]
    if hop.kind in ("vxlan", "ipip"):
        return [placer.root_link(node, _s(d.get("dev")))]
    if hop.kind == "ebpf":
        # Where the program is attached: the device the packet meets it on.
        return [placer.link(node, _int(d.get("netns")), _s(d.get("dev")))]
    if hop.kind == "leave":
        out = placer.link(node, _int(d.get("netns")), _s(d.get("dev")))
        toward = d.get("toward")
        target = None
        if toward is not None and toward in placer.map.hostnames:
            there = placer.map.hostnames.index(str(toward))
            target = placer.receiver(there, _s(d.get("via")))
        network = placer.network_between(out, target) if out is not None else None
        return [out, network, target]
    return []


def trace_path(node_map: NodeMap, branch: Branch, number: int = 1) -> TracePath:
    """Place a branch's hops (then its first reply's) on the map, numbered in order."""
    placer = _Placer(node_map)
    steps: list[PathStep] = []
    points: list[tuple[str, int, str]] = []  # (element, step number, direction)
    unplaced: list[str] = []
    hops = [(h, "original") for h in branch.hops]
    if branch.reply:
        hops.extend((h, "reply") for h in branch.reply[0].hops)
    for hop, direction in hops:
        if hop.kind in SKIPPED_KINDS:
            continue
        touched = _points(placer, hop)
        placed = [p for p in touched if p is not None]
        if not placed:
            unplaced.append(hop.text)
            continue
        n = len(steps) + 1
        # A packet leaves by its own node's uplink; every other hop ends where it lands.
        where = placed[0] if hop.kind == "leave" else placed[-1]
        steps.append(PathStep(n, direction, hop.kind, where, _text(hop)))
        if hop.kind not in IN_PLACE_KINDS:
            points.extend((p, n, direction) for p in placed)
    segments: list[PathSegment] = []
    for (a, _n, _d), (b, n, direction) in zip(points, points[1:], strict=False):
        if a == b:
            continue
        link = node_map.between(a, b)
        segments.append(PathSegment(n, direction, a, b, link.id if link else None))
    return TracePath(
        number, branch.verdict, branch.reason, tuple(steps), tuple(segments), tuple(unplaced)
    )


def path_elements(path: TracePath) -> dict[str, list[PathStep]]:
    """Steps by element, in order: what each box on the path is annotated with."""
    out: dict[str, list[PathStep]] = {}
    for step in path.steps:
        out.setdefault(step.element, []).append(step)
    return out


def path_netns(node_map: NodeMap, branch: Branch) -> frozenset[tuple[int, int]]:
    """(node, netns inode) of every namespace the branch and its first reply pass through."""
    placer = _Placer(node_map)
    hops = list(branch.hops) + (list(branch.reply[0].hops) if branch.reply else [])
    found: set[tuple[int, int]] = set()
    for hop in hops:
        node = placer.node_of(hop)
        for key in ("netns", "from_netns", "to_netns"):
            inode = _int(hop.data.get(key))
            if inode is not None:
                found.add((node, inode))
    return frozenset(found)


def trace_title(probe: dict[str, JsonValue]) -> str:
    """The picture's heading: what was traced, the way `podpath trace` says it."""
    port = f":{probe['dport']}" if probe.get("dport") is not None else ""
    return (
        f"trace {_s(probe.get('proto'))} from {_s(probe.get('src_label'))} "
        f"to {_s(probe.get('dst_label'))} ({_s(probe.get('dst'))}{port})"
    )
