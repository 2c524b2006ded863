"""Layer 2 decisions: neighbours (ARP/NDP), bridge FDB ports, flooding, VXLAN remotes.

The kernel resolves the next hop's IP to a MAC with the neighbour table of the
output device; a bridge forwards a frame to the port its FDB holds for the
destination MAC, or floods it to every port when the MAC is unknown; a VXLAN device
finds the remote VTEP for an inner MAC in its own FDB (`bridge fdb show dev
flannel.1`), falling back to the all-zero MAC entries (the default destinations).
"""

from __future__ import annotations

from dataclasses import dataclass

from podpath.analysis.index import SnapshotIndex
from podpath.snapshot.model import FdbEntry, Link, Neighbour, NetNamespace

ZERO_MAC = "00:00:00:00:00:00"
# Neighbour states the kernel will send to without a new resolution first.
USABLE_STATES = frozenset({"REACHABLE", "STALE", "DELAY", "PROBE", "PERMANENT", "NOARP"})


@dataclass(frozen=True)
class MacResolution:
    """How a next hop's MAC was found (or would be)."""

    mac: str | None
    how: str  # one sentence for the trace
    entry: Neighbour | None = None


def neighbour(ns: NetNamespace, ifindex: int, ip: str) -> Neighbour | None:
    """The neighbour entry for an IP on a device, if the table holds one."""
    for entry in ns.neighbours:
        if entry.ifindex == ifindex and entry.dst == ip:
            return entry
    return None


def owner_mac(index: SnapshotIndex, bridge: Link, ip: str) -> tuple[str | None, str]:
    """Who would answer ARP for ip on a bridge: the bridge itself or the port whose peer holds ip."""
    if any(a.address == ip for a in bridge.addresses):
        return bridge.mac, f"{bridge.name} itself"
    for port in index.bridge_ports(bridge):
        peer = index.peer(port)
        if peer is not None and any(a.address == ip for a in peer.addresses):
            pod = index.pods_by_netns.get(peer.netns)
            who = f"pod {pod.namespace}/{pod.name}" if pod else f"netns {peer.netns}"
            return peer.mac, f"{peer.name} of {who} (behind port {port.name})"
    return None, "nobody known"


def resolve_mac(index: SnapshotIndex, ns: NetNamespace, link: Link, nexthop: str) -> MacResolution:
    """The MAC the kernel puts on a frame for nexthop out of link."""
    entry = neighbour(ns, link.ifindex, nexthop)
    if entry is not None and entry.lladdr and set(entry.state) & USABLE_STATES:
        state = ",".join(entry.state) or "no state"
        return MacResolution(
            entry.lladdr, f"neighbour {nexthop} lladdr {entry.lladdr} {state}", entry
        )
    if entry is not None and "FAILED" in entry.state:
        return MacResolution(None, f"neighbour {nexthop} is FAILED: ARP got no answer", entry)
    # No usable entry: the kernel would resolve it now. Say who would answer, when we can tell.
    answer: str | None = None
    who = "an unknown host"
    if link.kind == "bridge":
        answer, who = owner_mac(index, link, nexthop)
    elif link.kind == "veth":
        peer = index.peer(link)
        if peer is not None:
            master = index.link(peer.netns, peer.master)
            if master is not None and master.kind == "bridge":
                answer, who = owner_mac(index, master, nexthop)
            elif any(a.address == nexthop for a in peer.addresses) or "NOARP" not in link.flags:
                # A routed veth (Calico, ptp): the host side answers for everything (proxy ARP).
                answer, who = peer.mac, f"the peer {peer.name} (proxy ARP or its own address)"
    return MacResolution(
        answer, f"no neighbour entry for {nexthop} on {link.name}: ARP would be answered by {who}"
    )


def fdb_port(ns: NetNamespace, bridge: Link, mac: str) -> FdbEntry | None:
    """The bridge FDB entry (a port) for a MAC, if the bridge has learned or been told it."""
    ports = {link.ifindex for link in ns.links if link.master == bridge.ifindex}
    for entry in ns.fdb:
        if entry.mac.lower() != mac.lower():
            continue
        if entry.master == bridge.ifindex or (entry.ifindex in ports and "self" not in entry.flags):
            return entry
    return None


def vxlan_remote(ns: NetNamespace, device: Link, mac: str) -> tuple[str | None, str]:
    """The remote VTEP a VXLAN device sends a MAC to, and how it was chosen."""
    for entry in ns.fdb:
        if entry.ifindex == device.ifindex and entry.dst and entry.mac.lower() == mac.lower():
            return entry.dst, f"fdb {mac} dst {entry.dst} on {device.name}"
    defaults = [
        e.dst for e in ns.fdb if e.ifindex == device.ifindex and e.mac == ZERO_MAC and e.dst
    ]
    if defaults:
        return defaults[
            0
        ], f"no fdb entry for {mac}: default destination {', '.join(defaults)} (flooded)"
    if device.vxlan is not None and device.vxlan.group:
        return (
            device.vxlan.group,
            f"no fdb entry for {mac}: the device's remote/group {device.vxlan.group}",
        )
    return None, f"no fdb entry for {mac} on {device.name} and no default destination"


def primary_address(link: Link, family: int = 4) -> str | None:
    """The first global address of a link (the one MASQUERADE and source selection use)."""
    for a in link.addresses:
        if a.family == family and a.scope == "global":
            return a.address
    for a in link.addresses:
        if a.family == family:
            return a.address
    return None
