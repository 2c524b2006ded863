"""Addresses given out twice: held by two of a node's namespaces, or failed by DAD.

IPAM that loses its state (host-local's files gone with a reboot's tmpfs, two CNI
configurations each with its own range) hands an address to a second pod. On IPv4 both
answer ARP for it, the node sends to whichever answered last, and what one sends reaches
the other as a martian (its own address as the source); on IPv6 with duplicate address
detection the second copy fails it (dadfailed) and is not used. Either breaks paths
whatever hop shows it, so one finding per address names the holders and the pod IPAM
gave it to, and the doctor's path causes give way to it (podpath.doctor.causes).
"""

from __future__ import annotations

import ipaddress

from podpath.analysis.findings import Finding
from podpath.analysis.index import SnapshotIndex


def address_conflicts(index: SnapshotIndex) -> list[Finding]:
    """A finding for each address two namespaces hold, and each that failed DAD."""
    return [
        *(shared_address(index, address) for address in index.shared_addresses),
        *(failed_address(index, address) for address in index.failed_addresses),
    ]


def failed_address(index: SnapshotIndex, address: str) -> Finding:
    """An IPv6 address that failed duplicate address detection: the kernel neither
    delivers to it nor answers neighbour solicitations for it. Critical where it leaves
    its namespace without another usable global IPv6 address (a pod without IPv6)."""
    node = index.snapshot.node.hostname
    holders = index.failed_addresses[address]
    names = [_holder(index, inode) for inode, _dev in holders]
    others = [
        _holder(index, inode) for inode, found in index.local_addresses.items() if address in found
    ]
    bare = [
        name
        for name, (inode, _dev) in zip(names, holders, strict=True)
        if not _has_ipv6(index, inode)
    ]
    taken = f" ({' and '.join(others)} holds it)" if others else ""
    lost = f": {' and '.join(bare)} has no other IPv6 address" if bare else ""
    return Finding(
        "address-dadfailed",
        "critical" if bare else "warning",
        f"address {address}",
        f"{address} on {' and '.join(f'{d} of {n}' for n, (_i, d) in zip(names, holders, strict=True))} "
        f"failed duplicate address detection: another host on the link answered for it{taken}. "
        f"The kernel does not use it: no local route, no answer to neighbour "
        f"solicitations{lost}",
        f"take it off whoever should not hold it ({_given_to(index, address)}); an address "
        "is checked only when it is added: delete it and add it again where it belongs "
        "once the other copy is gone",
        node,
        evidence=tuple(
            f"{n}: {d} {address} dadfailed" for n, (_i, d) in zip(names, holders, strict=True)
        ),
        key=f"{node}:{address}",
    )


def _has_ipv6(index: SnapshotIndex, inode: int) -> bool:
    """Whether a namespace has a usable IPv6 address beyond link-local and loopback."""
    for text in index.local_addresses.get(inode, ()):
        ip = ipaddress.ip_address(text)
        if ip.version == 6 and not (ip.is_link_local or ip.is_loopback):
            return True
    return False


def shared_address(index: SnapshotIndex, address: str) -> Finding:
    """An address two of the node's namespaces hold (SnapshotIndex.shared_addresses): each
    answers ARP (NDP) for it, the node's neighbour entry sends its traffic to whichever
    answered last, and a packet from it reaches the other as a martian (its own address
    as source). One finding per address; the doctor adds the paths it breaks."""
    node = index.snapshot.node.hostname
    named = sorted((_holder(index, inode), inode) for inode in index.shared_addresses[address])
    names = [name for name, _inode in named]
    holders = tuple(inode for _name, inode in named)
    now = _answering(index, address, holders)
    said = f" (the node's neighbour entry names {now}'s MAC now)" if now else ""
    return Finding(
        "address-conflict",
        "critical",
        f"address {address}",
        f"{address} is an address of {' and of '.join(names)}: each answers for it, and "
        f"what is sent to it goes to whichever answered last{said}; what it sends reaches "
        "the other as a martian, with the other's own address as its source",
        f"take the address off the one that should not hold it ({_given_to(index, address)}), "
        "and find how it was given twice (IPAM state lost on a reboot, two CNI "
        "configurations)",
        node,
        evidence=tuple(
            f"{name}: {link} {address}"
            for name, inode in zip(names, holders, strict=True)
            for link in _links_holding(index, inode, address)
        ),
        key=f"{node}:{address}",
    )


def _given_to(index: SnapshotIndex, address: str) -> str:
    """Whom host-local IPAM gave the address to, as its reservation file says."""
    files = [a for a in index.snapshot.cni.allocations if a.ip == address]
    pods = {p.sandbox_id: p for p in index.snapshot.pods if p.sandbox_id}
    for a in files:
        pod = pods.get(a.container_id)
        if pod is not None:
            return (
                f"host-local IPAM gave it to pod {pod.namespace}/{pod.name}: "
                f"/var/lib/cni/networks/{a.network}/{address} names its sandbox"
            )
    if files:
        return (
            f"/var/lib/cni/networks/{files[0].network}/{address} names container "
            f"{files[0].container_id[:13]}, which no pod of the node is"
        )
    return f"host-local IPAM names the container it gave {address} to in its reservation file"


def _holder(index: SnapshotIndex, inode: int) -> str:
    """`pod default/web-0`, `node node1`: who a namespace is."""
    pod = index.pods_by_netns.get(inode)
    if pod is not None:
        return f"pod {pod.namespace}/{pod.name}"
    if inode == index.snapshot.root_netns:
        return f"node {index.snapshot.node.hostname}"
    return f"network namespace {inode}"


def _links_holding(index: SnapshotIndex, inode: int, address: str) -> list[str]:
    return [
        link.name
        for link in index.links_in(inode).values()
        if any(a.address == address for a in link.addresses)
    ]


def _answering(index: SnapshotIndex, address: str, holders: tuple[int, ...]) -> str:
    """The holder whose MAC the root namespace's neighbour entry for the address names."""
    root = index.root_netns
    macs = {
        n.lladdr.lower()
        for n in (root.neighbours if root is not None else ())
        if n.dst == address and n.lladdr
    }
    for inode in holders:
        if any((link.mac or "").lower() in macs for link in index.links_in(inode).values()):
            return _holder(index, inode)
    return ""
