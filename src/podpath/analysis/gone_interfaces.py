"""Pods whose eth0 is gone: their veth pair deleted, their sandbox still running.

Deleting a pod's host veth (`ip link del vethX`, a cleanup script that takes it for a
leftover) deletes its peer, the pod's eth0, with it: the pod's network namespace keeps
only lo. Its address stays in its Services' endpoints and in the CNI's IPAM, but
nothing holds it: what is sent to it gets no ARP answer, and the pod reaches nothing. A
sandbox's network is made once, when it starts (the CNI ADD), so only a new sandbox
gets one. One finding per pod; the doctor's path causes give way to it for packets to
or from its address (podpath.doctor.causes).
"""

from __future__ import annotations

from podpath.analysis.findings import Finding
from podpath.analysis.index import SnapshotIndex
from podpath.snapshot.model import Pod


def gone_interfaces(index: SnapshotIndex) -> dict[str, Pod]:
    """Each address of a pod (not hostNetwork) whose network namespace was read and has
    no eth0, the interface every CRI runtime asks the CNI plugin for."""
    found: dict[str, Pod] = {}
    for pod in index.snapshot.pods:
        ns = index.netns_by_inode.get(pod.netns_inode or 0) if not pod.host_network else None
        if ns is None or ns.inode == index.snapshot.root_netns:
            continue
        if index.pod_interface(pod) is None:
            found.update((ip, pod) for ip in pod.ips)
    return found


def gone_interface_findings(index: SnapshotIndex) -> list[Finding]:
    """One finding per pod whose eth0 is gone."""
    pods = {id(pod): pod for pod in index.pods_without_eth0.values()}
    return [gone_interface_finding(index, pod) for pod in pods.values()]


def gone_interface_finding(index: SnapshotIndex, pod: Pod) -> Finding:
    """The finding of one pod whose eth0 is gone."""
    node = index.snapshot.node.hostname
    name = f"{pod.namespace}/{pod.name}"
    ns = index.netns_by_inode.get(pod.netns_inode or 0)
    links = ", ".join(link.name for link in ns.links) if ns is not None else ""
    addresses = " and ".join(pod.ips) or "its address"
    return Finding(
        "pod-interface-gone",
        "critical",
        f"pod {name}",
        f"pod {name}'s network namespace has no eth0 (its veth pair was deleted): "
        f"{addresses} is still its address (in the CNI's IPAM, and in the endpoints of any "
        "Service it backs), but nothing holds it: what is sent to it gets no ARP answer, and "
        "the pod reaches nothing",
        f"recreate the pod (kubectl delete pod -n {pod.namespace} {pod.name}): a sandbox's "
        "network is made once, when it starts; then find what deleted its veth",
        node,
        f"pod {name}",
        (f"pod {name}'s network namespace: {links or 'no link'}",),
        key=f"{node}:{name}",
    )
