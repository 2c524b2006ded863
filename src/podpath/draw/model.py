"""The node map as plain data: boxes (elements), the links between them, and groups.

A map is what `podpath draw` and `trace --svg` lay out with Graphviz, what the text
outline walks, and what a terminal view can list: nothing in it knows how it will be
drawn. Every id is built from numbers and fixed words only (never from a name a pod
or a rule author chose), so ids are safe in DOT, SVG and CSS alike and stay the same
between two runs over the same snapshots. Titles and lines keep the node's raw text;
each renderer makes it safe for its own output.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from dataclasses import dataclass, field

# Element kinds, from the inside of a pod out to the network.
ELEMENT_KINDS = (
    "pod",  # a pod (its netns); ports are its interfaces
    "netns",  # a network namespace no pod claims
    "veth",  # the host side of a pod's veth pair
    "bridge",  # a Linux bridge (cni0, docker0)
    "stack",  # the node's own IP stack: routing, netfilter, conntrack (root netns)
    "vxlan",  # an overlay device (flannel.1)
    "device",  # any other routed device (tunl0, wg0, cilium_host)
    "uplink",  # the node's own interface toward the other nodes (eth0)
    "network",  # the subnet the uplinks share (the underlay)
    "vtep",  # a remote VTEP no loaded snapshot owns
)

# Connection kinds.
CONNECTION_KINDS = (
    "veth-pair",  # pod interface <-> host veth (or routed veth)
    "bridge-port",  # host veth -> bridge
    "bridge-stack",  # bridge <-> the node's IP stack (the bridge's own address)
    "route",  # the IP stack -> a device, labelled with the routes through it
    "host-network",  # a hostNetwork pod uses the node's own stack
    "underlay",  # a VXLAN device -> the device its UDP packets leave by
    "wire",  # an uplink -> its network
    "tunnel",  # a VXLAN device -> a remote VTEP (another node's device, or an unknown one)
)

_SAFE_ID = re.compile(r"^[A-Za-z0-9_.:/-]+$")


def digest(*parts: str) -> str:
    """A short, stable, id-safe digest of strings (names chosen by whoever runs pods)."""
    h = hashlib.blake2s("\0".join(parts).encode("utf-8", "surrogateescape"), digest_size=5)
    return h.hexdigest()


def safe_id(value: str) -> bool:
    """True when an id holds only characters that need no escaping anywhere."""
    return bool(_SAFE_ID.match(value))


def node_id(node: int) -> str:
    """The group of node (snapshot) number `node`."""
    return f"n{node}"


def stack_id(node: int) -> str:
    """The IP stack element of a node."""
    return f"n{node}.stack"


def link_id(node: int, netns: int, ifindex: int) -> str:
    """The element of an interface, by node, netns inode and ifindex."""
    return f"n{node}.link.{netns}.{ifindex}"


def pod_id(node: int, namespace: str, name: str, uid: str) -> str:
    """The element of a pod (a digest: pod names are chosen by users)."""
    return f"n{node}.pod.{digest(namespace, name, uid)}"


def netns_id(node: int, inode: int) -> str:
    """The element of a network namespace that no pod claims."""
    return f"n{node}.netns.{inode}"


def namespace_group_id(node: int, namespace: str) -> str:
    """The group of one Kubernetes namespace's pods on a node."""
    return f"n{node}.ns.{digest(namespace)}"


def address_id(prefix: str, address: str) -> str:
    """An element keyed by an address or network (normalised, so id-safe), e.g. net.10.0.0.0/24."""
    try:
        text = str(
            ipaddress.ip_network(address, strict=False)
            if "/" in address
            else ipaddress.ip_address(address)
        )
    except ValueError:
        text = digest(address)
    return f"{prefix}.{text}"


@dataclass(frozen=True)
class Port:
    """One interface drawn inside a pod's box (eth0@if7)."""

    id: str  # unique inside its element: "if2"
    name: str  # the interface's name in the pod
    text: str
    # The host-side veth folded into this port (big maps draw no box per veth).
    peer: str | None = None


@dataclass(frozen=True)
class Element:
    """A box on the map."""

    id: str
    kind: str  # one of ELEMENT_KINDS
    title: str
    lines: tuple[str, ...] = ()
    group: str | None = None  # id of the innermost Group holding it
    node: int | None = None  # snapshot index; None for what the nodes share
    netns: int | None = None
    ifindex: int | None = None
    name: str | None = None  # interface name, for trace lookups
    pod: str | None = None  # "namespace/name" of a pod
    addresses: tuple[str, ...] = ()  # addresses it owns (no prefix)
    ports: tuple[Port, ...] = ()


@dataclass(frozen=True)
class Connection:
    """A line between two elements. Direction runs from a pod outward to the network."""

    id: str
    kind: str  # one of CONNECTION_KINDS
    source: str
    target: str
    labels: tuple[str, ...] = ()
    source_port: str | None = None  # a Port id of the source element


@dataclass(frozen=True)
class Group:
    """A box around elements: a node, its root netns, or a Kubernetes namespace."""

    id: str
    kind: str  # node | root | namespace
    title: str
    lines: tuple[str, ...] = ()
    parent: str | None = None
    node: int | None = None


@dataclass(frozen=True)
class NodeMap:
    """Everything one picture shows: one or more nodes and what joins them."""

    hostnames: tuple[str, ...]
    elements: tuple[Element, ...]
    connections: tuple[Connection, ...]
    groups: tuple[Group, ...] = ()
    notes: tuple[str, ...] = ()  # what the picture leaves out, and why
    _by_id: dict[str, Element] = field(default_factory=dict, compare=False, repr=False)

    def element(self, element_id: str) -> Element | None:
        """The element with this id, if drawn."""
        if not self._by_id:
            self._by_id.update((e.id, e) for e in self.elements)
        return self._by_id.get(element_id)

    def between(self, a: str, b: str) -> Connection | None:
        """The connection joining two elements, whichever way it was drawn."""
        for c in self.connections:
            if {c.source, c.target} == {a, b}:
                return c
        return None
