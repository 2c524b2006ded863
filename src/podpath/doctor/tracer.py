"""The doctor's way into the trace engine: one engine kept for every path, three kinds of source.

`podpath.trace.engine.trace` resolves a probe's words and builds a new engine each
call; the doctor traces hundreds of paths through the same snapshots, so it keeps one
engine (its netfilter stages, IPVS and ipset state are built once) and hands it flows
it builds itself: from a pod's namespace, from the node's own namespace, and from
outside the cluster, arriving on the node's uplink. There is no second path model:
every hop is the engine's.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, replace

from podpath.analysis.index import SnapshotIndex
from podpath.snapshot.model import Link, Pod
from podpath.trace import reply as ct
from podpath.trace.engine import Engine, client_ports
from podpath.trace.flow import Flow
from podpath.trace.model import Branch, JsonValue, Packet, Trace
from podpath.trace.probe import hostport, node_address

# A client outside the cluster (RFC 5737 TEST-NET-3): routed by the node's default
# route, and in no pod, Service or node network.
OUTSIDE = "203.0.113.10"
OUTSIDE6 = "2001:db8::10"


@dataclass(frozen=True)
class Origin:
    """Where a traced packet is born: a pod, the node itself, or a client outside."""

    kind: str  # pod | node | outside
    node: int  # index of the snapshot
    label: str  # NAMESPACE/POD, the hostname, or "outside"
    pod: Pod | None = None


class Tracer:
    """One trace engine over the loaded snapshots, for many paths."""

    def __init__(self, indexes: Sequence[SnapshotIndex]) -> None:
        self.indexes = list(indexes)
        self.engine = Engine(self.indexes)
        self.runs = 0

    def trace(
        self,
        origin: Origin,
        dst: str,
        port: int | None,
        proto: str,
        alike: Callable[[Flow], Hashable | None] | None = None,
    ) -> Trace:
        """Every branch of a packet from `origin` to dst:port, each with its reply; with
        `alike`, endpoints of equal keys are followed once (their branches merged)."""
        self.engine.alike = alike
        try:
            return self._trace(origin, dst, port, proto)
        finally:
            self.engine.alike = None

    def _trace(self, origin: Origin, dst: str, port: int | None, proto: str) -> Trace:
        self.runs += 1
        index = self.indexes[origin.node]
        root = index.snapshot.root_netns
        self.engine.client_ports = ()  # a client outside: its port range is its own
        if origin.kind == "outside":
            source = OUTSIDE6 if ":" in dst else OUTSIDE
            packet = Packet(source, dst, proto, None, port)
            uplink = self.uplink(origin.node, 6 if ":" in dst else 4)
            if uplink is None:
                branches = self.engine.unsure(
                    Flow(packet, origin.node, root), "the node has no default route: no uplink"
                )
            else:
                branches = self.engine.receive(Flow(packet, origin.node, root), uplink)
        elif origin.kind == "pod" and origin.pod is not None:
            pod = origin.pod
            assert pod.netns_inode is not None
            family = [ip for ip in pod.ips if (":" in ip) == (":" in dst)]
            packet = Packet(family[0] if family else None, dst, proto, None, port)
            self.engine.client_ports = client_ports(index, pod.netns_inode)
            branches = self.engine.output(Flow(packet, origin.node, pod.netns_inode))
        else:
            packet = Packet(None, dst, proto, None, port)
            self.engine.client_ports = client_ports(index, root)
            branches = self.engine.output(Flow(packet, origin.node, root))
        with_replies = [replace(b, reply=tuple(ct.trace_reply(self.engine, b))) for b in branches]
        probe: dict[str, JsonValue] = {
            "from": origin.label,
            "to": hostport(dst, port),
            "proto": proto,
            "sport": None,
            "src": packet.src,
            "src_label": origin.label,
            "dst": dst,
            "dport": port,
            "dst_label": dst,
            "node": index.snapshot.node.hostname,
            "netns": root if origin.pod is None else origin.pod.netns_inode,
        }
        return Trace(probe, tuple(sorted(with_replies, key=_likeliest)))

    def uplink(self, node: int, family: int) -> Link | None:
        """The device of the node's default route: where traffic from outside arrives."""
        index = self.indexes[node]
        root = index.root_netns
        if root is None:
            return None
        default = "::/0" if family == 6 else "0.0.0.0/0"
        for route in root.routes:
            if route.table == 254 and route.dst in (default, "default") and route.dev is not None:
                return index.link(root.inode, route.dev)
        return None

    def node_address(self, node: int, family: int = 4) -> str | None:
        """The node's main address of a family (the source of its default route)."""
        return node_address(self.indexes[node], family)


def _likeliest(branch: Branch) -> float:
    return -branch.probability
