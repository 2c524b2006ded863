"""Layer 2 decisions: neighbours (ARP/NDP), bridge FDB ports, flooding, VXLAN remotes.

The kernel resolves the next hop's IP to a MAC with the neighbour table of the
output device; without a usable entry it asks, and who answers decides whether the
packet goes anywhere: on a bridge the owner of the address; across a routed veth
(Calico, kindnet, AWS VPC CNI) the peer namespace for its own addresses, or by proxy
ARP only when proxy_arp is on AND it has a route for the target leaving by another
device (arp_process, arp_fwd_proxy); for IPv6 only an address of the receiving
interface itself (ndisc_recv_ns). A bridge forwards a frame to the port its FDB holds
for the destination MAC, or floods it; a VXLAN device finds the remote VTEP for an
inner MAC in its own FDB (`bridge fdb show dev flannel.1`), falling back to the
all-zero MAC entries (the default destinations).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from podpath.analysis.index import SnapshotIndex
from podpath.analysis.ns_tables import ns_tables
from podpath.snapshot.model import FdbEntry, Link, Neighbour, NetNamespace
from podpath.trace import sysctls
from podpath.trace.routing import RouteDecision, lookup, validate_source

ZERO_MAC = "00:00:00:00:00:00"
# Neighbour states the kernel will send to without a new resolution first.
USABLE_STATES = frozenset({"REACHABLE", "STALE", "DELAY", "PROBE", "PERMANENT", "NOARP"})


@dataclass(frozen=True)
class MacResolution:
    """How a next hop's MAC was found (or would be), and whether anyone answers at all."""

    mac: str | None
    how: str  # one sentence for the trace
    entry: Neighbour | None = None
    # False when the kernel's resolution gets no answer: the packet is dropped.
    answered: bool = True
    details: tuple[str, ...] = ()
    uncertain: str | None = None  # what had to be assumed, when something was not collected
    down: Link | None = None  # the device set down where no answer comes back, if that is why


# Who would answer for an address on a device outside the snapshot: (who, MAC) or None.
RemoteOwner = Callable[[str], tuple[str, str | None] | None]


def set_down(link: Link) -> bool:
    """Whether a device is set down (`ip link set DEV down`): no IFF_UP, and operstate
    DOWN with it (a link read without its flags is not judged down)."""
    return "UP" not in link.flags and link.state == "DOWN"


def at_fault(index: SnapshotIndex, link: Link) -> Link:
    """The device set down that keeps a device that is down from passing frames: its
    veth peer when that is set down and it is not (a veth has no carrier while its peer
    is down: veth_open), else the device itself."""
    peer = index.peer(link) if link.kind == "veth" else None
    return peer if peer is not None and set_down(peer) and not set_down(link) else link


def neighbour(ns: NetNamespace, ifindex: int, ip: str) -> Neighbour | None:
    """The neighbour entry for an IP on a device, if the table holds one."""
    for entry in ns.neighbours:
        if entry.ifindex == ifindex and entry.dst == ip:
            return entry
    return None


def _bridge_answer(index: SnapshotIndex, bridge: Link, ip: str) -> MacResolution:
    """Who answers ARP/NDP for ip on a bridge: the bridge itself, or the port whose peer
    holds ip. Behind a port that is down nobody does (a disabled port gets no flood);
    with no owner known, the answer is not known either."""
    if set_down(bridge):
        return MacResolution(
            None,
            f"{bridge.name} is down: its ports are disabled, the request goes nowhere",
            answered=False,
            down=bridge,
        )
    if any(a.address == ip and a.usable for a in bridge.addresses):
        return MacResolution(bridge.mac, f"{bridge.name} itself")
    for port in index.bridge_ports(bridge):
        # Only a namespace holding ip can hold it on the peer: the others are not read
        # (a cached index unpickles a namespace when it is first read).
        if port.peer is None or ip not in index.local_addresses.get(port.peer.netns, ()):
            continue
        peer = index.peer(port)
        if peer is not None and any(a.address == ip and a.usable for a in peer.addresses):
            pod = index.pods_by_netns.get(peer.netns)
            who = f"pod {pod.namespace}/{pod.name}" if pod else f"netns {peer.netns}"
            if port.state == "DOWN" or set_down(peer):
                fault = at_fault(index, port)
                how = (
                    f"and is down: port {port.name} has no carrier"
                    if fault is not port
                    else f"behind port {port.name}, which is down"
                )
                return MacResolution(
                    None,
                    f"{peer.name} of {who} holds it, {how}: the request never reaches it",
                    answered=False,
                    down=fault,
                )
            others = _other_holders(index, bridge, port, ip)
            return MacResolution(
                peer.mac,
                f"{peer.name} of {who} (behind port {port.name})",
                uncertain=f"{ip} is an address of {who} and of {', '.join(others)} on "
                f"{bridge.name}: each answers, and the frame goes to whichever answered last"
                if others
                else None,
            )
    if _every_port_known(index, bridge, ip):
        # The request floods every port, and every port leads into a namespace the
        # snapshot holds: none holds ip, so nothing answers.
        return MacResolution(
            None,
            f"nobody: every port of {bridge.name} is a veth into a namespace of the "
            f"snapshot, and none holds {ip}",
            answered=False,
        )
    return MacResolution(None, "nobody known; the request floods the bridge")


def _other_holders(index: SnapshotIndex, bridge: Link, port: Link, ip: str) -> list[str]:
    """Who else behind the bridge's ports holds ip (an address given out twice)."""
    if ip not in index.shared_addresses:
        return []  # the usual case, known without a walk over the bridge's ports
    others = []
    for other in index.bridge_ports(bridge):
        if other is port or other.peer is None:
            continue
        if ip in index.local_addresses.get(other.peer.netns, ()):
            pod = index.pods_by_netns.get(other.peer.netns)
            others.append(f"pod {pod.namespace}/{pod.name}" if pod else f"netns {other.peer.netns}")
    return others


def _every_port_known(index: SnapshotIndex, bridge: Link, ip: str) -> bool:
    """Whether each port of a bridge is a veth whose peer's namespace the snapshot holds
    and holds ip on no device (a NIC, a tunnel or an unknown peer may lead to hosts no
    snapshot shows; a namespace answers ARP for any address of its own by default,
    arp_ignore=0, whichever device holds it)."""
    ports = index.bridge_ports(bridge)
    return bool(ports) and all(
        p.kind == "veth"
        and p.peer is not None
        and p.peer.netns in index.netns_by_inode
        and ip not in index.local_addresses.get(p.peer.netns, ())
        for p in ports
    )


def resolve_mac(
    index: SnapshotIndex,
    ns: NetNamespace,
    link: Link,
    nexthop: str,
    sender: str | None = None,
    remote: RemoteOwner | None = None,
) -> MacResolution:
    """The MAC the kernel puts on a frame for nexthop out of link, and who answers for it."""
    entry = neighbour(ns, link.ifindex, nexthop)
    if entry is not None and entry.lladdr and set(entry.state) & USABLE_STATES:
        state = ",".join(entry.state) or "no state"
        return MacResolution(
            entry.lladdr, f"neighbour {nexthop} lladdr {entry.lladdr} {state}", entry
        )
    if "NOARP" in link.flags:
        # arp_constructor(): a NOARP device never resolves; frames carry its own address.
        return MacResolution(link.mac, f"{link.name} is NOARP: no resolution, sent as is", entry)
    proto = "NDP" if ":" in nexthop else "ARP"
    seen = ""
    if entry is not None and "FAILED" in entry.state:
        seen = f" (the table holds {nexthop} FAILED: an earlier resolution got no answer)"
    answer = _who_answers(index, ns, link, nexthop, sender, remote)
    if answer.answered:
        what = f"no neighbour entry for {nexthop} on {link.name}: {proto} would be answered by"
        return MacResolution(
            answer.mac,
            f"{what} {answer.how}{seen}",
            entry,
            True,
            answer.details,
            answer.uncertain,
        )
    return MacResolution(
        None,
        f"{proto} for {nexthop} on {link.name} gets no answer: {answer.how}{seen}",
        entry,
        False,
        answer.details,
        answer.uncertain,
        answer.down,
    )


def _who_answers(
    index: SnapshotIndex,
    ns: NetNamespace,
    link: Link,
    nexthop: str,
    sender: str | None,
    remote: RemoteOwner | None,
) -> MacResolution:
    if link.kind == "bridge":
        return _bridge_answer(index, link, nexthop)
    if link.kind == "veth":
        peer = index.peer(link)
        if peer is None:
            # A kind (or lab) node's eth0 is a veth into a network no snapshot holds; the
            # next hop may still be another loaded node's address.
            return _remote_answer(remote, nexthop) or MacResolution(
                None, "an unknown host (the veth peer is not in the snapshot)"
            )
        master = index.link(peer.netns, peer.master)
        if master is not None and master.kind == "bridge":
            return _bridge_answer(index, master, nexthop)
        peer_ns = index.netns_by_inode.get(peer.netns)
        if peer_ns is None:
            return MacResolution(None, f"{peer.name}, whose namespace is not in the snapshot")
        if ":" in nexthop:
            return _ndp_answer(index, peer_ns, peer, nexthop)
        return _arp_answer(index, peer_ns, peer, nexthop, sender)
    if link.kind == "vxlan":
        lost = _vxlan_arp_lost(ns, link, nexthop)
        if lost is not None:
            return lost
    return _remote_answer(remote, nexthop) or MacResolution(
        None, "an unknown host (outside the loaded snapshots)"
    )


def _remote_answer(remote: RemoteOwner | None, nexthop: str) -> MacResolution | None:
    """The loaded snapshot (another node) that owns nexthop and answers for it, if any."""
    found = remote(nexthop) if remote is not None else None
    if found is None:
        return None
    who, mac = found
    return MacResolution(mac, who)


def _vxlan_arp_lost(ns: NetNamespace, link: Link, nexthop: str) -> MacResolution | None:
    """Why ARP/NDP out of a VXLAN device reaches nobody, or None when it goes somewhere."""
    flags = link.vxlan.flags if link.vxlan is not None else ()
    if "proxy" in flags:
        # arp_reduce(): the device answers from its own neighbour table, which lacks nexthop.
        agent = "l3miss" in flags
        how = f"{link.name} answers ARP itself (proxy) and has no entry for {nexthop}"
    else:
        # The request is a broadcast frame: it goes where the FDB sends ff:ff:ff:ff:ff:ff.
        dst, why = vxlan_remote(ns, link, "ff:ff:ff:ff:ff:ff")
        if dst is not None:
            return None
        agent = "l2miss" in flags
        how = f"the broadcast request has nowhere to go ({why})"
    if agent:
        return MacResolution(
            None,
            how,
            uncertain=f"{link.name} reports the miss to an agent (l2miss/l3miss), "
            "which may add the entry",
        )
    return MacResolution(None, how, answered=False)


def _owner(index: SnapshotIndex, peer_ns: NetNamespace, peer: Link) -> str:
    pod = index.pods_by_netns.get(peer_ns.inode)
    if pod is not None:
        return f"{peer.name} of pod {pod.namespace}/{pod.name}"
    if peer_ns.inode == index.snapshot.root_netns:
        return f"{peer.name} of node {index.snapshot.node.hostname}"
    return f"{peer.name} of netns {peer_ns.paths[0] if peer_ns.paths else peer_ns.inode}"


def _arp_answer(
    index: SnapshotIndex, peer_ns: NetNamespace, peer: Link, tip: str, sip: str | None
) -> MacResolution:
    """arp_process() on the receiving end of a routed veth: its own address, or proxy ARP."""
    who = _owner(index, peer_ns, peer)
    if tip in index.local_addresses.get(peer_ns.inode, frozenset()):
        # arp_ignore=0: a namespace answers for any of its addresses on any interface.
        return MacResolution(peer.mac, f"{who}: {tip} is its own address")
    facts = index.snapshot.node if peer_ns.inode == index.snapshot.root_netns else None
    fwd = sysctls.forwarding(peer_ns, 4, peer, facts)
    proxy = sysctls.proxy_arp(peer_ns, peer)
    if proxy is None:
        return MacResolution(
            peer.mac,
            f"{who} if it proxies ARP",
            uncertain=f"proxy_arp of {peer.name} was not collected; assumed on (a routed veth)",
        )
    if not proxy:
        return MacResolution(
            None, f"{tip} is not an address of {who}, and proxy_arp is 0 there", answered=False
        )
    if fwd is False:
        return MacResolution(
            None, f"{who} has proxy_arp=1 but forwarding=0: proxy ARP needs both", answered=False
        )
    # The answer needs a route for the target that leaves by another device (arp_fwd_proxy),
    # found by an input lookup from the sender, reverse path check included.
    back = lookup(peer_ns, tip, sip, 0, peer.name)
    if back.type != "unicast":
        why = "no route" if back.type == "none" else f"a {back.type} route"
        return MacResolution(
            None,
            f"{who} has proxy_arp=1, but its namespace has {why} to {tip}, so proxy ARP does "
            "not answer",
            answered=False,
            details=(_proxy_arp_sysctls(peer_ns, peer), _route_get(back, tip, sip, peer)),
        )
    if back.dev == peer.ifindex:
        return MacResolution(
            None,
            f"{who} has proxy_arp=1, but its route to {tip} leads back out of {peer.name}",
            answered=False,
        )
    if sip is not None:
        check = validate_source(peer_ns, sip, tip, peer, sysctls.rp_filter(peer_ns, peer, facts))
        if not check.ok:
            return MacResolution(
                None,
                f"{who} has proxy_arp=1, but the request's sender fails: {check.reason}",
                answered=False,
            )
    out = index.link(peer_ns.inode, back.dev)
    return MacResolution(
        peer.mac,
        f"{who} by proxy ARP (proxy_arp=1; it routes {tip} via "
        f"{out.name if out else back.dev}, not back out of {peer.name})",
        details=(f"proxy ARP route: {back.rule}, {back.matched} in table {back.table}",),
    )


def _proxy_arp_sysctls(ns: NetNamespace, link: Link) -> str:
    """The two sysctls proxy ARP is read from (conf/all OR conf/IFACE), as sysctl prints them."""
    every = sysctls.netconf(ns, 4, sysctls.ALL)
    dev = sysctls.netconf(ns, 4, link.ifindex)
    shown = (
        f"net.ipv4.conf.{name}.proxy_arp = {conf.proxy_neigh}"
        for name, conf in (("all", every), (link.name, dev))
        if conf is not None and conf.proxy_neigh is not None
    )
    return ", ".join(shown)


def _route_get(back: RouteDecision, tip: str, sip: str | None, link: Link) -> str:
    """The input route lookup proxy ARP makes, as `ip route get` would be asked and answer."""
    asked = f"ip route get {tip}" + (f" from {sip}" if sip else "") + f" iif {link.name}"
    if back.type == "none":
        return f"{asked}: no route (RTNETLINK answers: Network is unreachable)"
    return f"{asked}: {back.type} {back.matched} in table {back.table} ({back.rule})"


def _ndp_answer(
    index: SnapshotIndex, peer_ns: NetNamespace, peer: Link, target: str
) -> MacResolution:
    """ndisc_recv_ns() on the receiving end of a veth: an address of that very interface."""
    who = _owner(index, peer_ns, peer)
    if any(a.address == target for a in peer.addresses):
        return MacResolution(peer.mac, f"{who}: {target} is an address of that interface")
    if sysctls.proxy_ndp(peer_ns, peer):
        return MacResolution(
            peer.mac,
            f"{who} if it holds a proxy entry for {target} (proxy_ndp=1)",
            uncertain=f"proxy_ndp is on for {peer.name}; its proxy entries are not collected",
        )
    return MacResolution(
        None, f"{target} is not an address of {who}, which does not proxy NDP", answered=False
    )


def fdb_port(ns: NetNamespace, bridge: Link, mac: str) -> FdbEntry | None:
    """The bridge FDB entry (a port) for a MAC, if the bridge has learned or been told it."""
    tables = ns_tables(ns)
    ports = {link.ifindex for link in tables.ports.get(bridge.ifindex, ())}
    for entry in tables.fdb.get(mac.lower(), ()):
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
