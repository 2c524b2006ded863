"""bridge-port-detached: a pod whose host veth is no port of the bridge holding its network.

Built for real in a lab node by tests/lab/test_doctor_lab.py (`ip link set VETH
nomaster`, real traffic); here, the shapes a routed CNI gives (no bridge holds its pods'
networks) and a veth on another bridge.
"""

from __future__ import annotations

import dataclasses

from trace_factory import NodeSpec, PodSpec, build_node

from podpath.analysis.index import SnapshotIndex
from podpath.analysis.parsed import ParsedSnapshot
from podpath.analysis.problems import problems
from podpath.snapshot.model import Link, NetNamespace, Snapshot

PODS = [PodSpec("web-0", "10.244.0.2"), PodSpec("web-1", "10.244.0.3")]


def _with_links(snap: Snapshot, change: dict[str, dict[str, object]]) -> Snapshot:
    """The snapshot with some of the root namespace's links changed, by name."""

    def changed(ns: NetNamespace) -> NetNamespace:
        if ns.inode != snap.root_netns:
            return ns
        links = tuple(
            dataclasses.replace(link, **change.get(link.name, {}))  # type: ignore[arg-type]
            for link in ns.links
        )
        return dataclasses.replace(ns, links=links)

    return dataclasses.replace(snap, netns=tuple(changed(ns) for ns in snap.netns))


def _host_veth(snap: Snapshot, pod: int) -> Link:
    index = SnapshotIndex(snap)
    peer = index.peer(index.pod_interface(snap.pods[pod]))  # type: ignore[arg-type]
    assert peer is not None
    return peer


def test_every_veth_on_its_bridge_is_nothing() -> None:
    """The built node's host veths are all ports of cni0: no finding."""
    snap = build_node(NodeSpec(pods=PODS))
    assert SnapshotIndex(snap).detached_ports == {}
    assert problems(ParsedSnapshot(SnapshotIndex(snap))) == ()


def test_a_veth_on_no_bridge_is_one_critical_finding_naming_the_fix() -> None:
    snap = build_node(NodeSpec(pods=PODS))
    veth = _host_veth(snap, 1)
    broken = _with_links(snap, {veth.name: {"master": None}})
    (found,) = problems(ParsedSnapshot(SnapshotIndex(broken)))
    assert (found.check, found.grade, found.subject) == (
        "bridge-port-detached",
        "critical",
        "pod default/web-1",
    )
    assert f"host veth {veth.name} is a port of no bridge, while cni0 holds" in found.cause
    assert found.fix.startswith(f"ip link set {veth.name} master cni0")
    assert found.evidence == (f"{veth.name}: no master", "cni0: 10.244.0.1/24")


def test_a_routed_cnis_veths_on_no_bridge_are_nothing() -> None:
    """Calico, ptp, AWS: host veths on no bridge by design, and no bridge holds the pods'
    networks (here cni0 holds another network than the pods')."""
    snap = build_node(NodeSpec(pods=PODS))
    veths: dict[str, dict[str, object]] = {
        _host_veth(snap, i).name: {"master": None} for i in range(2)
    }
    bridge = next(link for ns in snap.netns for link in ns.links if link.name == "cni0")
    other = dataclasses.replace(bridge.addresses[0], address="10.88.0.1", prefixlen=16)
    routed = _with_links(snap, {**veths, "cni0": {"addresses": (other,)}})
    assert SnapshotIndex(routed).detached_ports == {}
