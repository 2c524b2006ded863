"""Pods whose host veth is no port of the bridge that holds their network.

The bridge CNI plugin makes each pod's host veth a port of its bridge (cni0). When the
bridge is deleted and made again (a network manager, an `ip link del cni0` while
troubleshooting: the plugin makes a new one for the next pod) or a port is taken off it
(`ip link set vethX nomaster`), the pods from before stay on no bridge: what the node
sends them through the bridge (ARP, answers, Services' packets DNATed to them) reaches
nobody, and what they send reaches the node alone (with arp_ignore 0 it answers ARP for
its own addresses on any device), so none of their connections is answered. One
finding per pod; the doctor's path causes give way to it for packets to or from the
pod's address (podpath.doctor.causes).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from podpath.analysis.cni_config import active_config, plugins
from podpath.analysis.findings import Finding
from podpath.analysis.index import SnapshotIndex
from podpath.analysis.ns_tables import network
from podpath.snapshot.model import Link, Pod


@dataclass(frozen=True)
class DetachedPort:
    """A pod, its host veth on no bridge (or another), and the bridge holding its network,
    or None when the bridge the node's CNI config names is gone."""

    pod: Pod
    veth: Link
    bridge: Link | None
    network: str  # the bridge's address whose network holds the pod's, as ip addr says it
    bridge_name: str = ""  # the gone bridge's name, as the CNI config gives it


def detached_ports(index: SnapshotIndex) -> dict[str, DetachedPort]:
    """Each address of a pod whose host veth is no port of the node's bridge holding that
    address's network (routed CNIs' host veths are on no bridge, and no bridge holds
    their pods' networks: none is listed)."""
    root = index.root_netns
    if root is None:
        return {}
    networks = [
        (link, f"{a.address}/{a.prefixlen}", net)
        for link in root.links
        if link.kind == "bridge"
        for a in link.addresses
        if a.scope != "link" and (net := network(f"{a.address}/{a.prefixlen}")) is not None
    ]
    gone = _gone_bridge(index, {link.name for link in root.links})
    if not networks and not gone:
        return {}
    found: dict[str, DetachedPort] = {}
    for pod in index.snapshot.pods:
        eth0 = index.pod_interface(pod) if pod.netns_inode != root.inode else None
        host = index.peer(eth0) if eth0 is not None else None
        if host is None or host.netns != root.inode:
            continue
        if gone and host.master is None:
            for ip in pod.ips:
                found[ip] = DetachedPort(pod, host, None, "", gone)
            continue
        for ip in pod.ips:
            address = _address(ip)
            if address is None:
                continue
            holder = next(
                ((bridge, net) for bridge, net, network in networks if address in network), None
            )
            if holder is not None and host.master != holder[0].ifindex:
                found[ip] = DetachedPort(pod, host, holder[0], holder[1])
    return found


def _gone_bridge(index: SnapshotIndex, links: set[str]) -> str:
    """The bridge the active CNI config's bridge plugin (or flannel's, which delegates to
    it) names, cni0 when it names none as the plugin's default, when the node has no link
    of that name, else ''."""
    conf = active_config(index.snapshot.cni)
    if conf is None or not {"bridge", "flannel"} & set(conf.plugins):
        return ""
    for plugin in plugins(conf):
        if plugin.get("type") not in ("bridge", "flannel"):
            continue
        # flannel's plugin hands its pods to the bridge plugin (its `delegate`).
        delegate = plugin.get("delegate") if plugin.get("type") == "flannel" else plugin
        name = (delegate.get("bridge") if isinstance(delegate, dict) else None) or "cni0"
        return name if isinstance(name, str) and name not in links else ""
    return ""


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None  # a hostile snapshot's address is no pod's


def detached_findings(index: SnapshotIndex) -> list[Finding]:
    """One finding per pod whose host veth left its bridge (a dual-stack pod's two
    addresses make one)."""
    found: dict[str, Finding] = {}
    for port in index.detached_ports.values():
        finding = detached_finding(index, port)
        found.setdefault(finding.id, finding)
    return list(found.values())


def detached_finding(index: SnapshotIndex, port: DetachedPort) -> Finding:
    """The finding of one pod's detached host veth (one for every pod, where the bridge
    is gone)."""
    if port.bridge is None:
        return _bridge_gone(index, port.bridge_name)
    node = index.snapshot.node.hostname
    pod = f"{port.pod.namespace}/{port.pod.name}"
    veth, bridge = port.veth.name, port.bridge.name
    other = index.link(port.veth.netns, port.veth.master)
    on = f"a port of {other.name}, not of {bridge}" if other is not None else "a port of no bridge"
    return Finding(
        "bridge-port-detached",
        "critical",
        f"pod {pod}",
        f"pod {pod}'s host veth {veth} is {on}, while {bridge} holds its network "
        f"({port.network}): what the node sends it by {bridge} (ARP, answers, Services' "
        "packets) reaches nobody, and what it sends reaches the node alone, so none of "
        "its connections is answered",
        f"ip link set {veth} master {bridge}{_hairpin(index, port)}, or recreate the pod; "
        "a bridge deleted and made again leaves the ports of the pods from before it on none",
        node,
        f"link {veth}",
        (
            f"{veth}: " + (f"master {other.name}" if other is not None else "no master"),
            f"{bridge}: {port.network}",
        ),
        key=f"{node}:{veth}",
    )


def _hairpin(index: SnapshotIndex, port: DetachedPort) -> str:
    """The hairpin mode the bridge's other ports have (the bridge plugin's hairpinMode),
    which a port made again starts without: a pod whose Service picks the pod itself
    gets no answer then."""
    if port.bridge is not None and any(p.hairpin for p in index.bridge_ports(port.bridge)):
        return f"; bridge link set dev {port.veth.name} hairpin on (as its other ports have it)"
    return ""


def _bridge_gone(index: SnapshotIndex, name: str) -> Finding:
    """The bridge the CNI config names is gone: every pod's host veth is on no bridge."""
    node = index.snapshot.node.hostname
    ports = {p.veth.name: p for p in index.detached_ports.values() if p.bridge is None}
    pods = sorted(f"{p.pod.namespace}/{p.pod.name}" for p in ports.values())
    cni = index.snapshot.cni
    return Finding(
        "bridge-port-detached",
        "critical",
        f"bridge {name}",
        f"the bridge {name} that the CNI config {cni.active} names is gone from node {node}: "
        f"the host veths of its {len(pods)} pod{'s' if len(pods) != 1 else ''} are ports of "
        "no bridge, the node has no route to their network, and nothing the node sends "
        "them reaches them",
        f"recreate the pods: the bridge plugin makes {name} again, with its gateway address, "
        f"for the first; a pod kept needs `ip link set VETH master {name}` once {name} is "
        "back; find what deleted it (a network manager's reload, a cleanup script)",
        node,
        f"link {name}",
        (
            f"no link {name} on node {node}",
            *(f"{v}: no master ({ports[v].pod.name})" for v in sorted(ports)[:5]),
        ),
        key=f"{node}:{name}",
    )
