"""Every path worth checking on the loaded nodes, traced once per kind of path.

The paths: every Service port from each pod of a node, from the node itself and, for
NodePorts, load-balancer and external IPs, from a client outside the cluster; and every
pod to every other pod's address (each family's) across the loaded snapshots (to a port
it listens on, else ICMP). Tracing each of 10k Services from each of 250 pods would take
hours, so:

- pods in one network position (`podpath.doctor.classes`) behave alike: a class's paths
  are traced from one of its pods;
- Service ports are grouped by shape (protocol, policies, affinity, and per endpoint
  where it lives and whether it listens; what other rules name of its addresses and
  ports, `podpath.doctor.named`); one port of each shape is traced per source, and the
  rest share its verdict. A pod's path to a port it is itself an endpoint of (hairpin)
  is judged apart, with the other pods that end in a port of that shape alike. When the
  traced port fails for a reason of its own (nothing listens, no endpoints), each port
  of the shape is traced (or, for no endpoints, read from its rules) so the finding
  names it;
- a Service's endpoints that behave alike are followed once (`alike`);
- pod-to-pod paths are grouped by the source's and the destination's position.

Each judged path keeps the causes of its failing branches (`podpath.doctor.causes`)
and how many real paths it stands for.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import NamedTuple

from podpath.analysis.findings import PathRef
from podpath.analysis.index import SnapshotIndex
from podpath.analysis.parsed import ParsedSnapshot
from podpath.analysis.sockets import Packet as SocketLookup
from podpath.analysis.sockets import is_listening, receivers
from podpath.doctor.causes import Aim, Cause, branch_cause
from podpath.doctor.classes import PodClass, pod_classes, traceable
from podpath.doctor.mtu import path_mtu_cause
from podpath.doctor.named import NamedInRules, named_in_rules
from podpath.doctor.tracer import Origin, Tracer
from podpath.netfilter.kube_proxy import Service
from podpath.snapshot.model import Pod
from podpath.trace.flow import Flow
from podpath.trace.model import Trace
from podpath.trace.probe import hostport
from podpath.trace.routing import lookup

# Causes a Service port of the same shape shares: they come from the node, the
# client's position or the way to an endpoint's position, not from the port itself.
SERVICE_SPECIFIC = frozenset(
    {"no-listener", "service-no-endpoints", "etp-local-no-endpoint", "itp-local-no-endpoint"}
)
# Causes read from each port's own kube-proxy rules, with no trace of their own.
FROM_RULES = frozenset({"service-no-endpoints", "etp-local-no-endpoint", "itp-local-no-endpoint"})
# At most this many extra traces to name the ports of failing shapes (the rest share).
EXPANSION_LIMIT = 2000
# The place of an endpoint that is the traced pod itself (other places count from 0).
CLIENT_ITSELF = -1


@dataclass(frozen=True)
class Judged:
    """One judged path: the causes of its failing branches and how many paths it stands for."""

    path: PathRef
    causes: tuple[tuple[Cause, float], ...]  # (cause, share of its connections)
    weight: int = 1
    like: str = ""  # when it was not traced itself: the path whose trace it shares
    trace: Trace | None = None
    # The other pods it stands for, each reaching itself as its source does (hairpin).
    other_pods: tuple[str, ...] = ()


@dataclass
class Sweep:
    """The result of sweeping the loaded nodes."""

    judged: list[Judged] = field(default_factory=list)
    classes: list[PodClass] = field(default_factory=list)
    # (node, pod netns inode) -> the key of the pod's class
    class_of: dict[tuple[int, int], tuple[object, ...]] = field(default_factory=dict)
    service_ports: int = 0
    notes: list[str] = field(default_factory=list)
    # Paths that share a working trace's verdict without being listed in `judged`.
    working: int = 0

    @property
    def paths(self) -> int:
        """How many source -> destination paths were judged, listed or not."""
        return sum(j.weight for j in self.judged) + self.working


def sweep(
    tracer: Tracer,
    parsed: Sequence[ParsedSnapshot],
    judged: Callable[[int, int], object] | None = None,
) -> Sweep:
    """Judge every Service and pod-to-pod path of the loaded nodes; `judged` is told how
    many (source, Service port) paths are judged of how many, a shape at a time."""
    out = Sweep()
    indexes = tracer.indexes
    named = [named_in_rules(index) for index in indexes]
    # A pod's packets to another node's pods, and their replies, cross that node's rules.
    classes = {
        node: pod_classes(index, node, named[node], [*named[:node], *named[node + 1 :]])
        for node, index in enumerate(indexes)
    }
    for node in classes:
        out.classes.extend(classes[node])
        for cls in classes[node]:
            for pod in cls.members:
                out.class_of[(node, pod.netns_inode or 0)] = cls.key
    sweeps = []
    for node, index in enumerate(indexes):
        services = parsed[node].services()
        out.service_ports += len(services)
        sweeps.append(_ServiceSweep(tracer, node, index, classes[node], services, out, named[node]))
    told = _Told(judged, sum(s.size() for s in sweeps))
    for each in sweeps:
        each.run(told)
    _pod_paths(tracer, classes, out, named)
    return out


@dataclass
class _Told:
    """How many (source, Service port) paths are judged, told to a progress callable."""

    told: Callable[[int, int], object] | None
    total: int
    done: int = 0

    def add(self, count: int) -> None:
        """`count` more paths are judged."""
        self.done += count
        if self.told is not None:
            self.told(self.done, self.total)


def _share(trace: Trace, aim: Aim, indexes: list[SnapshotIndex]) -> tuple[tuple[Cause, float], ...]:
    """The causes of a trace's failing branches, each with the share of connections it takes."""
    found: dict[str, tuple[Cause, float]] = {}
    for branch in trace.branches:
        cause = branch_cause(branch, aim, indexes)
        if cause is None and branch.verdict in ("delivered", "leaves-node"):
            cause = path_mtu_cause(branch, aim, indexes)
        if cause is not None:
            first, had = found.get(cause.id, (cause, 0.0))
            found[cause.id] = (first.joined(cause) if had else cause, had + branch.probability)
    return tuple(found.values())


class _Ports:
    """Service ports with their shapes from a source none of them ends in (interned), those
    shapes' groups, and which ports end in which endpoint address (from that pod, a port's
    shape differs: the endpoint is "self")."""

    def __init__(self, aims: list[tuple[Service, Aim]], shapes: list[tuple[object, ...]]) -> None:
        self.aims = aims
        self.shapes = shapes
        by_shape: dict[int, list[int]] = {}
        self.by_ip: dict[str, list[int]] = {}
        for i, (pair, shape) in enumerate(zip(aims, shapes, strict=True)):
            # Interned: equal shapes are one object, so its id is the key (hashing the
            # nested tuple again is not needed).
            by_shape.setdefault(id(shape), []).append(i)
            for ep in pair[0].endpoints:
                self.by_ip.setdefault(ep.ip, []).append(i)
        # The positions of the ports of each shape, in the order of their first port.
        self.groups = tuple(by_shape.values())

    def ends_in(self, pod: Pod) -> set[int]:
        """The positions of the ports one of whose endpoints is this pod."""
        return {i for ip in pod.ips for i in self.by_ip.get(ip, ())}


class _Paths(NamedTuple):
    """Paths judged alike: from `origin`, to one Service port, standing for `weight` pods'
    paths (the class's pods that are none of the port's endpoints, or those that are, alike,
    each reaching itself). A tuple: 20k of them for the synthetic node's pod class."""

    origin: Origin
    weight: int
    svc: Service
    aim: Aim
    # How many (source, Service port) pairs it counts for the progress told: one per
    # port per source (a port judged from several pods of a class counts once).
    counted: int = 1
    # The other pods of `weight`, each reaching itself as `origin` does (hairpin paths).
    other_pods: tuple[str, ...] = ()


def _dual_stack_ips(
    services: tuple[Service, ...],
) -> dict[tuple[str, str, int | None, str], tuple[str, ...]]:
    """The Service ports (namespace, name, port, protocol) with a ClusterIP of each family,
    and those ClusterIPs, in the Services' order."""
    ips: dict[tuple[str, str, int | None, str], dict[bool, str]] = {}
    for svc in services:
        if svc.cluster_ip and svc.name:
            key = (svc.namespace, svc.name, svc.port, svc.protocol)
            ips.setdefault(key, {}).setdefault(":" in svc.cluster_ip, svc.cluster_ip)
    return {key: tuple(found.values()) for key, found in ips.items() if len(found) == 2}


class _ServiceSweep:
    """Every Service port of one node, from each source, grouped by shape."""

    def __init__(
        self,
        tracer: Tracer,
        node: int,
        index: SnapshotIndex,
        classes: list[PodClass],
        services: tuple[Service, ...],
        out: Sweep,
        named: NamedInRules,
    ) -> None:
        self.tracer = tracer
        self.node = node
        self.index = index
        self.classes = classes
        self.services = services
        self.out = out
        self.hostname = index.snapshot.node.hostname
        self.listens: dict[tuple[int, str, str, int | None], str] = {}
        # (ip, port, proto) -> where an endpoint lives, as the number of that place: the
        # same for every source but the endpoint itself, and asked for each endpoint of 10k
        # Services. A shape holds the number, not the place (whose pod class key is a
        # nested tuple of ~2 kB): hashing 10k shapes to intern them took 0.038 s with the
        # places in them, and their equality is the same.
        self.places: dict[tuple[str, int | None, str], int] = {}
        self.numbered: dict[tuple[object, ...], int] = {}
        self.interned: dict[tuple[object, ...], tuple[object, ...]] = {}
        self.routes: dict[str, tuple[object, ...]] = {}
        self.named = named
        self.expanded = 0
        self.dual_stack = _dual_stack_ips(services)
        self.cluster_aims = [
            (svc, aim) for svc in services if (aim := self.cluster_aim(svc)) is not None
        ]
        # kube-proxy programs a NodePort in its Service's family only (iptables or
        # ip6tables, the ip or ip6 table): reached on the node's address of that family.
        addresses = {family: tracer.node_address(node, family) for family in (4, 6)}
        self.outside_aims = [
            (svc, aim) for svc in services for aim in _outside_aims(svc, addresses[_family(svc)])
        ]
        # Shaped once: from every source but the pods that are some port's endpoint, a
        # port's shape is the same (grouping 10k ports took 0.13 s for the first source and
        # 0.015 s more for each other one; see class_groups()).
        self.cluster_ports = self.ports_of(self.cluster_aims)
        self.outside_ports = self.ports_of(self.outside_aims)

    def size(self) -> int:
        """How many (source, Service port) pairs run() judges, its pod classes and the node
        to each cluster port, the outside client to each outside one (the progress told)."""
        return (len(self.classes) + 1) * len(self.cluster_aims) + len(self.outside_aims)

    def run(self, told: _Told) -> None:
        """Trace each shape from each source; share or expand the verdicts."""
        for cls in self.classes:
            self.judge_groups(self.class_groups(cls), told)
        node = Origin("node", self.node, self.hostname)
        self.judge_groups(self.common(self.cluster_ports, node), told)
        outside = Origin("outside", self.node, "outside")
        self.judge_groups(self.common(self.outside_ports, outside), told)

    def common(self, ports: _Ports, origin: Origin, weight: int = 1) -> list[list[_Paths]]:
        """The ports grouped by shape from a source that is none of their endpoints (for
        `weight` pods)."""
        return [[_Paths(origin, weight, *ports.aims[i]) for i in group] for group in ports.groups]

    def class_groups(self, cls: PodClass) -> list[list[_Paths]]:
        """Every path from a pod class to every Service port, grouped by shape.

        From the class's pods that are none of a port's endpoints, the port has its common
        shape (one trace of each shape from one of them stands for all). A pod that is one
        of a port's endpoints reaches itself through it (hairpin): its path is judged on
        its own, alike only with those of other pods of the class that end in themselves
        the same way (the same common shape, and the same place, share and weight of the
        pod's own endpoint): the pods that end in one port alike are judged together, as
        many paths as they are."""
        ports = self.cluster_ports
        origins = [Origin("pod", self.node, _pod_label(p), p) for p in cls.members]
        # Port -> the class's pods (their positions) that are one of its endpoints.
        enders: dict[int, set[int]] = {}
        for k, pod in enumerate(cls.members):
            for i in ports.ends_in(pod):
                enders.setdefault(i, set()).add(k)
        if not enders:
            return self.common(ports, origins[0], len(origins))
        common, uncounted = self.away_groups(origins, enders)
        return common + self.hairpin_groups(cls, origins, sorted(enders), uncounted)

    def away_groups(
        self, origins: list[Origin], enders: dict[int, set[int]]
    ) -> tuple[list[list[_Paths]], set[int]]:
        """The common groups, each port judged for the class's pods that are none of its
        endpoints; and the ports every pod of the class is an endpoint of."""
        ports = self.cluster_ports
        common: list[list[_Paths]] = []
        everyone: set[int] = set()
        positions = range(len(origins))
        for group in ports.groups:
            paths = []
            for i in group:
                ending = enders.get(i, ())
                if len(ending) == len(origins):
                    everyone.add(i)
                    continue
                # The first pod of the class that is none of the endpoints (most often
                # the first one).
                away = 0 if 0 not in ending else next(k for k in positions if k not in ending)
                paths.append(_Paths(origins[away], len(origins) - len(ending), *ports.aims[i]))
            if paths:
                common.append(paths)
        return common, everyone

    def hairpin_groups(
        self, cls: PodClass, origins: list[Origin], ended: list[int], uncounted: set[int]
    ) -> list[list[_Paths]]:
        """The class's pods' paths to the ports they are endpoints of, grouped by the
        port's common shape and the pod's own entries in it."""
        ports = self.cluster_ports
        member_of = {ip: k for k, pod in enumerate(cls.members) for ip in pod.ips}
        groups: dict[tuple[int, tuple[object, ...]], list[_Paths]] = {}
        for i in ended:
            svc, aim = ports.aims[i]
            shape = ports.shapes[i]
            # Each endpoint's entry in the port's common shape (its last field): where it
            # lives, its share, locality and weight, as any other source sees it.
            ends = shape[-1]
            assert isinstance(ends, tuple)
            own: dict[int, list[object]] = {}
            for ep, entry in zip(svc.endpoints, ends, strict=True):
                k = member_of.get(ep.ip)
                if k is not None:
                    own.setdefault(k, []).append(entry)
            # The pods that end in this port alike: one path each, judged together.
            alike: dict[tuple[object, ...], list[int]] = {}
            for k in sorted(own):
                alike.setdefault(tuple(own[k]), []).append(k)
            counted = 1 if i in uncounted else 0
            for mine, pods in alike.items():
                others = tuple([origins[k].label for k in pods[1:]])
                paths = _Paths(origins[pods[0]], len(pods), svc, aim, counted, others)
                groups.setdefault((id(shape), mine), []).append(paths)
                counted = 0
        return list(groups.values())

    def ports_of(self, aims: list[tuple[Service, Aim]]) -> _Ports:
        """The ports with their shapes from a source that is none of their endpoints."""
        return _Ports(aims, [self.intern(self._shape(svc, aim, None)) for svc, aim in aims])

    def judge_groups(self, groups: list[list[_Paths]], told: _Told) -> None:
        """Trace the first paths of each shape; the others share its verdict or are traced."""
        indexes = self.tracer.indexes
        for members in groups:
            told.add(sum(m.counted for m in members))
            first = members[0]
            origin, svc, aim = first.origin, first.svc, first.aim
            trace = self.tracer.trace(
                origin, aim.address, aim.port, aim.proto, self.alike(origin, svc)
            )
            causes = _share(trace, aim, indexes)
            path = self.path(origin, svc, aim)
            self.out.judged.append(Judged(path, causes, first.weight, "", trace, first.other_pods))
            rest = members[1:]
            if not rest:
                continue
            own = [c for c, _ in causes if c.check in SERVICE_SPECIFIC]
            shared = tuple((c, p) for c, p in causes if c.check not in SERVICE_SPECIFIC)
            if not causes:
                # Every port of the shape works as its traced one does: counted, and not
                # named one by one (no finding will list them).
                self.out.working += sum(m.weight for m in rest)
                continue
            like = path.text
            for other in rest:
                self.out.judged.append(self.shared(other, first, causes, own, shared, like))

    def shared(
        self,
        other: _Paths,
        first: _Paths,
        causes: tuple[tuple[Cause, float], ...],
        own: list[Cause],
        shared: tuple[tuple[Cause, float], ...],
        like: str,
    ) -> Judged:
        """Paths of a failing shape: sharing the traced paths' causes, read from their own
        rules (no endpoints), or traced themselves (a cause of the port's own)."""
        path = self.path(other.origin, other.svc, other.aim)
        if not own:
            return Judged(path, shared, other.weight, like, None, other.other_pods)
        if all(c.check in FROM_RULES for c in own):
            mine = tuple(
                (_from_rules(c, other, first), p) for c, p in causes if c.check in FROM_RULES
            )
            return Judged(path, mine + shared, other.weight, like, None, other.other_pods)
        if self.expanded >= EXPANSION_LIMIT:
            return Judged(path, causes, other.weight, like, None, other.other_pods)
        self.expanded += 1
        aim = other.aim
        again = self.tracer.trace(
            other.origin, aim.address, aim.port, aim.proto, self.alike(other.origin, other.svc)
        )
        causes = _share(again, aim, self.tracer.indexes)
        return Judged(path, causes, other.weight, "", again, other.other_pods)

    def alike(self, origin: Origin, svc: Service) -> Callable[[Flow], Hashable | None]:
        """What makes two endpoints of a Service behave alike for the trace: the packet as
        DNAT left it but for its destination address, and where that address lives (the
        pod's position and whether it listens, the node, or the route to it)."""
        endpoints = {ep.ip for ep in svc.endpoints}

        def key(flow: Flow) -> Hashable | None:
            p = flow.packet
            if p.dst not in endpoints:
                return None
            where = self.endpoint_shape(p.dst, p.dport, p.proto, origin)
            return (flow.node, flow.netns, p.src, p.sport, p.proto, p.dport, p.mark, where)

        return key

    def cluster_aim(self, svc: Service) -> Aim | None:
        """The ClusterIP:port a pod or the node sends to, naming both ClusterIPs of a
        dual-stack port."""
        aim = _cluster_aim(svc)
        if aim is None or not self.dual_stack:
            return aim
        both = self.dual_stack.get((svc.namespace, svc.name, svc.port, svc.protocol), ())
        return replace(aim, cluster_ips=both) if both else aim

    def path(self, origin: Origin, svc: Service, aim: Aim) -> PathRef:
        """The path in `podpath trace` words: a Service port by its name, unless the name
        has a ClusterIP of each family (`trace --to NAME` takes one of them: the path
        aims at its own address then)."""
        named = aim.kind == "service" and svc.cluster_ip and svc.name
        if named and (svc.namespace, svc.name, svc.port, svc.protocol) not in self.dual_stack:
            dest = f"{svc.namespace}/{svc.name}:{svc.port}"
        else:
            dest = aim.target
        return PathRef(origin.label, dest, aim.proto, self.hostname)

    def intern(self, shape: tuple[object, ...]) -> tuple[object, ...]:
        """The one object equal to `shape` (so that equal shapes are identical)."""
        return self.interned.setdefault(shape, shape)

    def _shape(self, svc: Service, aim: Aim, origin: Origin | None) -> tuple[object, ...]:
        endpoints = svc.endpoints
        # List comprehensions, not generators, feed the tuples: _shape runs for each of
        # 10k ports (0.054 -> 0.046 s for the 10k).
        port_tags = self.named.port_tags
        ports = tuple(
            [
                port_tags(p)
                for p in (aim.port, svc.port, svc.node_port, *[ep.port for ep in endpoints])
            ]
        )
        return (
            aim.kind,
            # An LB IP may pass a source-range firewall its Service's external IPs do not
            # (KUBE-FW- / firewall-ips): the two never share a verdict.
            aim.address in svc.load_balancer_ips,
            aim.proto,
            svc.backend,
            svc.no_endpoints,
            svc.no_local_endpoints,
            svc.internal_policy,
            svc.external_policy,
            svc.affinity_timeout is not None,
            svc.masquerade,
            svc.scheduler,
            svc.persistent is not None,
            svc.source_ranges,
            svc.health_check_node_port is not None,
            # What the node's other rules name of the address aimed at (each endpoint's
            # is in its place, below).
            self.named.tags(aim.address),
            ports,
            tuple(
                [
                    (
                        self.endpoint_shape(ep.ip, ep.port, aim.proto, origin),
                        round(ep.probability, 6),
                        ep.local,
                        ep.weight,
                    )
                    for ep in endpoints
                ]
            ),
        )

    def endpoint_shape(self, ip: str, port: int | None, proto: str, origin: Origin | None) -> int:
        """Where an endpoint lives, whether it listens, whether it is the client itself: the
        number of that place (equal numbers, equal places), or CLIENT_ITSELF."""
        if origin is not None and origin.pod is not None and ip in origin.pod.ips:
            return CLIENT_ITSELF
        key = (ip, port, proto)
        found = self.places.get(key)
        if found is None:
            # A rule of this node's own that names the address (or a network holding it)
            # sets it apart, wherever it lives: a pod of another loaded node is classed by
            # that node's rules only.
            place = (*self._place(ip, port, proto), self.named.tags(ip))
            found = self.places[key] = self.numbered.setdefault(place, len(self.numbered))
        return found

    def _place(self, ip: str, port: int | None, proto: str) -> tuple[object, ...]:
        """Where an endpoint lives (a pod of a class, the node, or a route) and whether it listens."""
        for node, index in enumerate(self.tracer.indexes):
            pod = index.pods_by_ip.get(ip)
            if pod is not None and traceable(pod):
                key = self.out.class_of.get((node, pod.netns_inode or 0))
                return ("pod", node, key, self.listening(node, index, pod, ip, port, proto))
            if ip in index.local_addresses.get(index.snapshot.root_netns, ()):
                return ("node", node, ip, port)
        route = self.routes.get(ip)
        if route is None:
            root = self.index.root_netns
            if root is None:
                route = ("unread",)
            else:
                decision = lookup(root, ip)
                route = (decision.type, decision.matched, decision.gateway, decision.dev)
            self.routes[ip] = route
        return ("remote", route)

    def listening(
        self, node: int, index: SnapshotIndex, pod: Pod, ip: str, port: int | None, proto: str
    ) -> str:
        """yes, no or unknown: whether the pod takes a new connection to ip:port."""
        key = (node, ip, proto, port)
        found = self.listens.get(key)
        if found is None:
            ns = index.netns_by_inode.get(pod.netns_inode or 0)
            if ns is None or port is None or proto not in ("tcp", "udp"):
                found = "unknown"
            else:
                taken = receivers(ns, SocketLookup(proto, ip, port))
                found = "unknown" if taken is None else ("yes" if taken else "no")
            self.listens[key] = found
        return found


def _pod_label(pod: Pod) -> str:
    return f"{pod.namespace}/{pod.name}"


def _cluster_aim(svc: Service) -> Aim | None:
    """The ClusterIP:port a pod or the node sends to."""
    if not svc.cluster_ip or svc.port is None or svc.cluster_ip in ("None", ""):
        return None
    return Aim("service", _service_label(svc), svc.cluster_ip, svc.port, svc.protocol.lower(), svc)


def _service_label(svc: Service) -> str:
    if svc.name:
        return f"Service {svc.key}"
    return f"virtual service {svc.cluster_ip}:{svc.port}/{svc.protocol.lower()}"


def _family(svc: Service) -> int:
    """4 or 6: the family of the Service port (its ClusterIP's, else its endpoints')."""
    ip = svc.cluster_ip or next((ep.ip for ep in svc.endpoints), "")
    return 6 if ":" in ip else 4


def _outside_aims(svc: Service, node_address: str | None) -> Iterable[Aim]:
    """What a client outside the cluster sends to: the NodePort, LB and external IPs."""
    proto = svc.protocol.lower()
    label = _service_label(svc)
    if svc.node_port is not None and node_address is not None:
        yield Aim("nodeport", f"{label} (NodePort)", node_address, svc.node_port, proto, svc)
    if svc.port is not None:
        for ip in (*svc.load_balancer_ips, *svc.external_ips):
            yield Aim("external", f"{label} ({ip})", ip, svc.port, proto, svc)


def _from_rules(cause: Cause, other: _Paths, first: _Paths) -> Cause:
    """The same rules-decided cause for another port of the same shape, from its own rules."""
    svc, aim, like = other.svc, other.aim, first.svc
    name = svc.key if svc.name else aim.target
    verdict = (
        "has no endpoints" if cause.check == "service-no-endpoints" else "has no local endpoints"
    )
    evidence = tuple(e for e in svc.evidence if verdict in e) or cause.evidence
    return replace(
        cause,
        subject=f"Service {name}",
        cause=cause.cause.replace(like.key, name).replace(
            first.aim.service_targets, aim.service_targets
        ),
        evidence=evidence,
        hop=f"{cause.hop} (traced for Service {like.key}: the same kube-proxy rules)",
        key=cause.key.replace(like.key, name),
    )


def _pod_paths(
    tracer: Tracer,
    classes: dict[int, list[PodClass]],
    out: Sweep,
    named: Sequence[NamedInRules],
) -> None:
    """Every pod to every other pod's address (one of each family on a dual-stack pod),
    traced once per (source class, destination kind)."""
    indexes = tracer.indexes
    targets: dict[tuple[object, ...], list[tuple[int, Pod, str, int | None, str]]] = {}
    for node, found in classes.items():
        for cls in found:
            for pod in cls.members:
                for ip in _one_per_family(pod.ips):
                    proto, port = _served_port(indexes[node], pod, ip)
                    # A pod's class is its own node's; another node's rules may name it.
                    tags = tuple(each.tags(ip) for each in named)
                    key = (node, cls.key, ":" in ip, proto, port, tags)
                    targets.setdefault(key, []).append((node, pod, ip, port, proto))
    for node, found in classes.items():
        for cls in found:
            for members in targets.values():
                _judge_pod_target(tracer, node, cls, members, out)


def _judge_pod_target(
    tracer: Tracer,
    node: int,
    cls: PodClass,
    members: list[tuple[int, Pod, str, int | None, str]],
    out: Sweep,
) -> None:
    """A class's pods' paths to one kind of pod destination, traced from one of them to
    one of those (not itself), standing for every pair but a pod and itself."""
    src = cls.representative
    if not any((":" in ip) == (":" in members[0][2]) for ip in src.ips):
        return  # the class has no address of the destination's family
    # A pod of the class does not aim at itself (by identity: Pod equality compares
    # every field, 31k times at 250 pods).
    others = [m for m in members if m[1] is not src]
    if not others:
        # The class's first pod is the only destination: the class's other pods reach
        # it, traced from the next one.
        if len(cls.members) < 2:
            return
        src, others = cls.members[1], members
    origin = Origin("pod", node, _pod_label(src), src)
    mine = {id(p) for p in cls.members}
    _dnode, dpod, ip, port, proto = others[0]
    weight = len(cls.members) * len(members) - sum(1 for m in members if id(m[1]) in mine)
    aim = Aim("pod", f"pod {_pod_label(dpod)}", ip, port, proto)
    trace = tracer.trace(origin, ip, port, proto)
    indexes = tracer.indexes
    path = PathRef(origin.label, hostport(ip, port), proto, indexes[node].snapshot.node.hostname)
    out.judged.append(Judged(path, _share(trace, aim, indexes), max(weight, 1), "", trace))


def _one_per_family(ips: Iterable[str]) -> list[str]:
    """The first address of each family, in order (a dual-stack pod's IPv4 and IPv6)."""
    first: dict[bool, str] = {}
    for ip in ips:
        first.setdefault(":" in ip, ip)
    return list(first.values())


def _served_port(index: SnapshotIndex, pod: Pod, ip: str) -> tuple[str, int | None]:
    """A port the pod serves on `ip` (TCP first, lowest port), or ICMP when it serves none:
    a socket bound to it or to any address (`::` takes IPv4 as well, `0.0.0.0` no IPv6)."""
    ns = index.netns_by_inode.get(pod.netns_inode or 0)
    if ns is None or not ns.sockets:
        return "icmp", None
    own = {"::", ip} if ":" in ip else {"0.0.0.0", "::", ip}
    listening = sorted(
        (s.protocol != "tcp", s.local_port, s.protocol)
        for s in ns.sockets
        if is_listening(s) and s.local in own and s.protocol in ("tcp", "udp")
    )
    if not listening:
        return "icmp", None
    _, port, proto = listening[0]
    return proto, port
