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

from podpath.analysis.findings import Finding
from podpath.analysis.index import SnapshotIndex
from podpath.analysis.ns_tables import network
from podpath.snapshot.model import Link, Pod


@dataclass(frozen=True)
class DetachedPort:
    """A pod, its host veth on no bridge (or another), and the bridge holding its network."""

    pod: Pod
    veth: Link
    bridge: Link
    network: str  # the bridge's address whose network holds the pod's, as ip addr says it


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
    if not networks:
        return {}
    found: dict[str, DetachedPort] = {}
    for pod in index.snapshot.pods:
        eth0 = index.pod_interface(pod) if pod.netns_inode != root.inode else None
        host = index.peer(eth0) if eth0 is not None else None
        if host is None or host.netns != root.inode:
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
    """The finding of one pod's detached host veth."""
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
    if any(p.hairpin for p in index.bridge_ports(port.bridge)):
        return f"; bridge link set dev {port.veth.name} hairpin on (as its other ports have it)"
    return ""
