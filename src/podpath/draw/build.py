"""From snapshots to a node map: pods, their veths, bridges, the IP stack, overlay and uplinks.

What is drawn, per node: each pod with its IPs, containers and interfaces; the pod's
`eth0@ifN` joined to its host-side veth; the veth to its bridge (or, for a routed
CNI such as Calico, straight to the node's IP stack with the routes that point at
it); the bridge to the stack; the overlay device with its underlay device and its
remote VTEPs (from its FDB, as `bridge fdb show dev flannel.1` lists them); the
uplinks with their networks. Networks are shared between nodes, so several
snapshots join into one picture; a remote VTEP owned by a loaded node joins the two
overlay devices.
"""

from __future__ import annotations

import fnmatch
import ipaddress
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

from podpath.draw.model import (
    Connection,
    Element,
    Group,
    NodeMap,
    Port,
    address_id,
    link_id,
    namespace_group_id,
    netns_id,
    node_id,
    pod_id,
    stack_id,
)
from podpath.snapshot.model import Link, NetNamespace, Pod, Route, Snapshot

# Devices that carry addresses without being a way out of the node (kube-proxy's
# kube-ipvs0 dummy holds every Service VIP) or that are tunnels, not wires.
NOT_UPLINKS = frozenset(
    {"dummy", "ipip", "gre", "gretap", "ip6gre", "sit", "ip6tnl", "tun", "wireguard", "geneve"}
    | {"vrf", "ifb", "nlmon", "vti", "ip_vti", "ip6_vti", "erspan"}
)
MAX_LABELS = 4  # route labels on one connection before "+N more"
MAX_ADDRESSES = 4  # addresses listed on one element before "N addresses"
# Above this many pods on a node, host veths are folded into their pods' boxes and the
# pods laid out in columns: 250 pods side by side made a picture 55,000 pt wide, and
# 250 veth boxes in one column one eleven times taller than wide.
FOLD_VETHS_ABOVE = 12
LOCAL_TABLE = 255


@dataclass(frozen=True)
class MapFilter:
    """Which pods to draw: by Kubernetes namespace, by name pattern, or by netns."""

    namespaces: tuple[str, ...] = ()
    pods: tuple[str, ...] = ()  # shell patterns over NAMESPACE/NAME or NAME
    netns: frozenset[tuple[int, int]] | None = None  # (node, netns inode) to keep

    def wants(self, node: int, pod: Pod) -> bool:
        """True when the pod is to be drawn."""
        if self.namespaces and pod.namespace not in self.namespaces:
            return False
        full = f"{pod.namespace}/{pod.name}"
        if self.pods and not any(
            fnmatch.fnmatchcase(full, p) or fnmatch.fnmatchcase(pod.name, p) for p in self.pods
        ):
            return False
        return self.netns is None or (node, pod.netns_inode or 0) in self.netns

    @property
    def active(self) -> bool:
        """True when the filter leaves anything out."""
        return bool(self.namespaces or self.pods) or self.netns is not None


def _is_link_local(cidr: str) -> bool:
    try:
        net = ipaddress.ip_network(cidr, strict=False)
    except ValueError:
        return False
    return net.is_link_local or net.is_multicast


def describe_route(route: Route) -> str:
    """A route the way `ip route` starts its line: `10.244.1.0/24 via 10.244.1.0 onlink`."""
    dst = "default" if route.dst in ("0.0.0.0/0", "::/0") else route.dst
    parts = [dst if route.type == "unicast" else f"{route.type} {dst}"]
    if route.gateway:
        parts.append(f"via {route.gateway}")
    parts.extend(route.flags)
    if route.table not in (254, LOCAL_TABLE):
        parts.append(f"table {route.table}")
    return " ".join(parts)


def _routes_by_dev(ns: NetNamespace) -> dict[int, list[str]]:
    """Each device's routes (local table and link-local ones left out), as `ip route` words."""
    out: dict[int, list[str]] = defaultdict(list)
    for route in ns.routes:
        if route.table == LOCAL_TABLE or _is_link_local(route.dst):
            continue
        devs = [route.dev] if route.dev is not None else []
        devs.extend(nh.dev for nh in route.multipath if nh.dev is not None)
        for dev in dict.fromkeys(devs):
            assert dev is not None
            out[dev].append(describe_route(route))
    return out


def _inside(address: str, net: ipaddress.IPv4Network | ipaddress.IPv6Network) -> bool:
    try:
        return ipaddress.ip_address(address) in net
    except ValueError:
        return False


def _capped(items: Sequence[str], limit: int = MAX_LABELS) -> tuple[str, ...]:
    if len(items) <= limit:
        return tuple(items)
    return (*items[:limit], f"+{len(items) - limit} more")


def _global_addresses(link: Link) -> list[str]:
    return [
        f"{a.address}/{a.prefixlen}"
        for a in link.addresses
        if a.scope == "global" and not _is_link_local(f"{a.address}/{a.prefixlen}")
    ]


def _address_lines(link: Link) -> tuple[str, ...]:
    found = _global_addresses(link)
    if len(found) > MAX_ADDRESSES:
        return (f"{len(found)} addresses",)
    return tuple(found)


def _owners(snapshots: Sequence[Snapshot]) -> dict[str, tuple[int, Link]]:
    """Which node's root netns link holds each address (first snapshot wins a duplicate)."""
    out: dict[str, tuple[int, Link]] = {}
    for i, snap in enumerate(snapshots):
        for ns in snap.netns:
            if ns.inode != snap.root_netns:
                continue
            for link in ns.links:
                for a in link.addresses:
                    out.setdefault(a.address, (i, link))
    return out


class _Builder:
    """Collects elements, connections and groups; one instance per map."""

    def __init__(self, snapshots: Sequence[Snapshot], wanted: MapFilter, fold: bool | None) -> None:
        self.snapshots = snapshots
        self.filter = wanted
        self.fold = fold
        self.owners = _owners(snapshots)
        self.elements: dict[str, Element] = {}
        self.connections: dict[str, Connection] = {}
        self.groups: dict[str, Group] = {}
        self.notes: list[str] = []
        self.network_lines: dict[str, list[str]] = defaultdict(list)

    def add(self, element: Element) -> None:
        self.elements.setdefault(element.id, element)

    def connect(
        self,
        kind: str,
        source: str,
        target: str,
        labels: Iterable[str] = (),
        source_port: str | None = None,
    ) -> None:
        cid = f"{kind}:{source}:{target}" + (f":{source_port}" if source_port else "")
        self.connections.setdefault(
            cid, Connection(cid, kind, source, target, tuple(labels), source_port)
        )

    def link_element(
        self, i: int, root: NetNamespace, link: Link, kind: str, title: str, lines: Iterable[str]
    ) -> str:
        """Add the element of a root netns interface; return its id."""
        lid = link_id(i, root.inode, link.ifindex)
        self.add(
            Element(
                lid,
                kind,
                title,
                tuple(lines),
                f"{node_id(i)}.root",
                i,
                root.inode,
                link.ifindex,
                link.name,
                addresses=tuple(a.address for a in link.addresses),
            )
        )
        return lid

    # --- one node ------------------------------------------------------------------

    def node(self, i: int, snap: Snapshot) -> None:
        root = next((ns for ns in snap.netns if ns.inode == snap.root_netns), None)
        by_inode = {ns.inode: ns for ns in snap.netns}
        pods = [p for p in snap.pods if self.filter.wants(i, p)]
        hidden = len(snap.pods) - len(pods)
        group = node_id(i)
        node_lines = [f"kernel {snap.node.kernel}", f"{len(snap.pods)} pods"]
        if hidden:
            node_lines[-1] = f"{len(pods)} of {len(snap.pods)} pods drawn"
            self.notes.append(f"{snap.node.hostname}: {hidden} pods left out by the filter")
        self.groups[group] = Group(group, "node", snap.node.hostname, tuple(node_lines), None, i)
        root_group = f"{group}.root"
        self.groups[root_group] = Group(
            root_group, "root", "root netns", (f"netns {snap.root_netns}",), group, i
        )
        stack_lines = []
        if snap.node.ip_forward is not None:
            stack_lines.append(f"ip_forward={snap.node.ip_forward}")
        backends = sorted({f"iptables {d.backend}/{d.family}" for d in snap.iptables})
        if snap.nft is not None:
            backends.append("nftables")
        stack_lines.extend(backends)
        stack = stack_id(i)
        self.add(
            Element(
                stack,
                "stack",
                "IP stack",
                tuple(stack_lines),
                root_group,
                i,
                snap.root_netns,
                addresses=tuple(
                    a.address for link in (root.links if root else ()) for a in link.addresses
                ),
            )
        )
        if root is None:
            self.notes.append(f"{snap.node.hostname}: the root network namespace was not read")
        else:
            self.root_links(i, root)
        kept = {p.netns_inode for p in pods if p.netns_inode is not None and not p.host_network}
        dropped = {
            p.netns_inode for p in snap.pods if p.netns_inode is not None and not p.host_network
        } - kept
        for pod in pods:
            self.pod(i, pod, by_inode, group)
        if root is not None:
            fold = self.fold if self.fold is not None else len(pods) > FOLD_VETHS_ABOVE
            self.root_veths(i, root, by_inode, dropped, snap, fold)

    def root_links(self, i: int, root: NetNamespace) -> None:
        """Bridges, overlay devices, uplinks and other routed devices of the root netns."""
        routes = _routes_by_dev(root)
        default_devs = {
            r.dev for r in root.routes if r.dst in ("0.0.0.0/0", "::/0") and r.dev is not None
        }
        underlay_devs = {link.vxlan.dev for link in root.links if link.vxlan is not None}
        bridges = {link.ifindex for link in root.links if link.kind == "bridge"}
        others: list[str] = []
        stack = stack_id(i)
        for link in root.links:
            if "LOOPBACK" in link.flags or link.name == "lo":
                continue
            if link.kind == "veth" and link.peer is not None:
                continue  # a pod's (or another netns's) veth: drawn with its peer
            if link.kind == "bridge":
                lid = self.link_element(i, root, link, "bridge", link.name, _address_lines(link))
                self.connect("bridge-stack", lid, stack, _capped(routes.get(link.ifindex, [])))
                continue
            if link.kind == "vxlan":
                lid = self.vxlan(i, root, link)
            elif (
                link.kind not in NOT_UPLINKS
                and link.master not in bridges
                and (
                    _global_addresses(link)
                    or link.ifindex in default_devs
                    or link.ifindex in underlay_devs
                )
            ):
                lid = self.uplink(i, root, link)
            elif routes.get(link.ifindex) or link.master in bridges:
                lines = (link.kind or "device", *_address_lines(link))
                lid = self.link_element(i, root, link, "device", link.name, lines)
            else:
                others.append(link.name + (f" ({link.kind})" if link.kind else ""))
                continue
            if link.master in bridges:
                self.connect("bridge-port", lid, link_id(i, root.inode, link.master or 0))
            else:
                self.connect("route", stack, lid, _capped(routes.get(link.ifindex, [])))
        if others:
            old = self.elements[stack]
            more = ", ".join(_capped(others, 6))
            self.elements[stack] = replace(old, lines=(*old.lines, f"also: {more}"))

    def vxlan(self, i: int, root: NetNamespace, link: Link) -> str:
        """An overlay device, its underlay device and its remote VTEPs."""
        vx = link.vxlan
        lines = []
        if vx is not None:
            lines.append(f"VNI {vx.vni}" + (f" · UDP {vx.port}" if vx.port else ""))
            if vx.local:
                lines.append(f"local {vx.local}")
            under = next((u for u in root.links if u.ifindex == vx.dev), None)
            if under is not None:
                lines.append(f"dev {under.name}")
        lines.extend(_address_lines(link))
        lid = self.link_element(i, root, link, "vxlan", link.name, lines)
        if vx is not None and vx.dev is not None:
            self.connect("underlay", lid, link_id(i, root.inode, vx.dev))
        remotes = [e.dst for e in root.fdb if e.ifindex == link.ifindex and e.dst]
        if vx is not None and vx.group:
            remotes.append(vx.group)
        for remote in dict.fromkeys(remotes):
            owner = self.owners.get(remote)
            if owner is None:
                vtep = address_id("vtep", remote)
                self.add(Element(vtep, "vtep", f"VTEP {remote}", ("no snapshot of this node",)))
                self.connect("tunnel", lid, vtep)
                continue
            j, owned = owner
            if j == i:
                continue  # its own address
            target = self.remote_vxlan(j, vx.vni if vx else None) or link_id(
                j, self.snapshots[j].root_netns, owned.ifindex
            )
            if f"tunnel:{target}:{lid}" not in self.connections:
                self.connect("tunnel", lid, target, (f"VNI {vx.vni}",) if vx else ())
        return lid

    def remote_vxlan(self, node: int, vni: int | None) -> str | None:
        """The overlay device with this VNI on another node, if that snapshot has one."""
        snap = self.snapshots[node]
        for ns in snap.netns:
            if ns.inode != snap.root_netns:
                continue
            for link in ns.links:
                if link.vxlan is not None and link.vxlan.vni == vni:
                    return link_id(node, ns.inode, link.ifindex)
        return None

    def uplink(self, i: int, root: NetNamespace, link: Link) -> str:
        """The node's own interface and the networks it is on."""
        lines = [*_address_lines(link), *([link.mac] if link.mac else [])]
        # A container node's eth0 is a veth whose peer is outside: `ip` calls it eth0@ifN.
        title = f"{link.name}@if{link.link}" if link.kind == "veth" and link.link else link.name
        lid = self.link_element(i, root, link, "uplink", title, lines)
        for cidr in _global_addresses(link):
            net = ipaddress.ip_interface(cidr).network
            nid = address_id("net", str(net))
            self.add(Element(nid, "network", f"network {net}"))
            self.connect("wire", lid, nid)
            for route in root.routes:
                if route.dev != link.ifindex or not route.gateway:
                    continue
                if route.dst in ("0.0.0.0/0", "::/0") and _inside(route.gateway, net):
                    self.network_lines[nid].append(f"gateway {route.gateway}")
        return lid

    def pod(self, i: int, pod: Pod, by_inode: dict[int, NetNamespace], group: str) -> None:
        """A pod's box, in its Kubernetes namespace's group."""
        ns_group = namespace_group_id(i, pod.namespace)
        self.groups.setdefault(
            ns_group, Group(ns_group, "namespace", f"namespace {pod.namespace}", (), group, i)
        )
        pid = pod_id(i, pod.namespace, pod.name, pod.uid)
        lines = [", ".join(pod.ips) if pod.ips else "no IP"]
        # One name per container: a restarted one lists each attempt (crictl ps -a).
        names = list(dict.fromkeys(c.name for c in pod.containers if c.kind != "sandbox"))
        if names:
            lines.append("containers: " + ", ".join(names))
        ports: list[Port] = []
        netns = by_inode.get(pod.netns_inode) if pod.netns_inode is not None else None
        if pod.host_network:
            lines.append("hostNetwork: the node's own stack")
        elif netns is None:
            lines.append("network namespace not read")
        else:
            for link in netns.links:
                if "LOOPBACK" in link.flags or link.name == "lo":
                    continue
                text = f"{link.name}@if{link.link}" if link.link else link.name
                ports.append(
                    Port(
                        f"if{link.ifindex}", link.name, text, link_id(i, netns.inode, link.ifindex)
                    )
                )
        self.add(
            Element(
                pid,
                "pod",
                f"{pod.namespace}/{pod.name}",
                tuple(lines),
                ns_group,
                i,
                pod.netns_inode,
                pod=f"{pod.namespace}/{pod.name}",
                addresses=pod.ips,
                ports=tuple(ports),
            )
        )
        if pod.host_network:
            self.connect("host-network", pid, stack_id(i))

    def root_veths(
        self,
        i: int,
        root: NetNamespace,
        by_inode: dict[int, NetNamespace],
        dropped: set[int],
        snap: Snapshot,
        fold: bool,
    ) -> None:
        """Host-side veths: to their pod (or namespace) on one side, bridge or stack on the other."""
        routes = _routes_by_dev(root)
        pods = {
            p.netns_inode: p
            for p in snap.pods
            if p.netns_inode is not None and not p.host_network and p.netns_inode not in dropped
        }
        links = {link.ifindex: link for link in root.links}
        for link in root.links:
            if link.kind != "veth" or link.peer is None or link.peer.netns in dropped:
                continue
            text = f"{link.name}@if{link.peer.ifindex}"
            pod = pods.get(link.peer.netns)
            master = links.get(link.master) if link.master is not None else None
            bridge = master is not None and master.kind == "bridge"
            port = f"if{link.peer.ifindex}"
            if pod is not None and fold:
                source = pod_id(i, pod.namespace, pod.name, pod.uid)
                self.fold_into(source, port, link.name, text)
                outer, outer_port = source, port
            else:
                lid = self.link_element(i, root, link, "veth", text, ())
                if pod is not None:
                    source = pod_id(i, pod.namespace, pod.name, pod.uid)
                else:
                    source = netns_id(i, link.peer.netns)
                    other = by_inode.get(link.peer.netns)
                    title = other.paths[0] if other and other.paths else f"netns {link.peer.netns}"
                    self.add(Element(source, "netns", title, (), node_id(i), i, link.peer.netns))
                self.connect("veth-pair", source, lid, (), port)
                outer, outer_port = lid, None
            if bridge and master is not None:
                target = link_id(i, root.inode, master.ifindex)
                self.connect("bridge-port", outer, target, (), outer_port)
            else:
                routed = _capped(routes.get(link.ifindex, []))
                self.connect("route", outer, stack_id(i), routed, outer_port)

    def fold_into(self, pod: str, port: str, veth: str, text: str) -> None:
        """Draw a host veth inside its pod's box, on the row of the pod's interface."""
        element = self.elements.get(pod)
        if element is None:
            return
        ports = tuple(
            replace(p, text=f"{p.text} ⇄ {text}", peer=veth) if p.id == port else p
            for p in element.ports
        )
        self.elements[pod] = replace(element, ports=ports)

    def finish(self) -> NodeMap:
        """The map, with connections to elements that were never drawn left out."""
        for nid, lines in self.network_lines.items():
            self.elements[nid] = replace(self.elements[nid], lines=tuple(dict.fromkeys(lines)))
        known = set(self.elements)
        connections = [
            c for c in self.connections.values() if c.source in known and c.target in known
        ]
        return NodeMap(
            tuple(s.node.hostname for s in self.snapshots),
            tuple(self.elements.values()),
            tuple(connections),
            tuple(self.groups.values()),
            tuple(self.notes),
        )


def build_map(
    snapshots: Sequence[Snapshot],
    wanted: MapFilter | None = None,
    fold_veths: bool | None = None,
) -> NodeMap:
    """The map of one or more nodes (one snapshot each), with the pods the filter keeps.

    `fold_veths` draws each host veth inside its pod's box instead of a box of its
    own; None folds them on nodes with more than FOLD_VETHS_ABOVE pods drawn.
    """
    builder = _Builder(snapshots, wanted or MapFilter(), fold_veths)
    for i, snap in enumerate(snapshots):
        builder.node(i, snap)
    return builder.finish()
