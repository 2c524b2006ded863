"""bridge-port-detached and pod-interface-gone: pods cut off from the node's network.

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
from podpath.snapshot.model import CniConfig, CniState, Link, NetNamespace, Snapshot

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


def _without_bridge(snap: Snapshot, config: str, plugins: tuple[str, ...]) -> Snapshot:
    """The node with cni0 gone (its ports on none) and `config` the active CNI config."""
    veths: dict[str, dict[str, object]] = {
        _host_veth(snap, i).name: {"master": None} for i in range(2)
    }
    gone = _with_links(snap, veths)
    netns = tuple(
        dataclasses.replace(ns, links=tuple(link for link in ns.links if link.name != "cni0"))
        for ns in gone.netns
    )
    path = "/etc/cni/net.d/10-net.conflist"
    cni = CniState(configs=(CniConfig(path, config, "net", "1.0.0", plugins),), active=path)
    return dataclasses.replace(gone, netns=netns, cni=cni)


def test_a_bridge_the_cni_config_names_gone_is_one_finding_for_every_pod() -> None:
    """The bridge plugin's bridge (or flannel's delegate's, cni0 by default) gone: one
    finding naming it, its pods' veths in the evidence."""
    snap = build_node(NodeSpec(pods=PODS))
    bridge = '{"plugins": [{"type": "bridge", "bridge": "cni0"}, {"type": "portmap"}]}'
    (found,) = problems(
        ParsedSnapshot(SnapshotIndex(_without_bridge(snap, bridge, ("bridge", "portmap"))))
    )
    assert (found.check, found.subject) == ("bridge-port-detached", "bridge cni0")
    assert "its 2 pods are ports of no bridge" in found.cause
    assert found.evidence[0] == "no link cni0 on node node-a"
    flannel = '{"plugins": [{"type": "flannel", "delegate": {"hairpinMode": true}}]}'
    gone = _without_bridge(snap, flannel, ("flannel",))
    assert {p.bridge_name for p in SnapshotIndex(gone).detached_ports.values()} == {"cni0"}


def test_a_routed_cni_config_without_a_bridge_is_nothing() -> None:
    """Calico's config names no bridge: veths on none are its design."""
    snap = build_node(NodeSpec(pods=PODS))
    calico = '{"plugins": [{"type": "calico"}, {"type": "bandwidth"}]}'
    assert (
        SnapshotIndex(_without_bridge(snap, calico, ("calico", "bandwidth"))).detached_ports == {}
    )


def test_a_pod_whose_eth0_is_gone_is_one_finding_and_routed_pods_are_not() -> None:
    """A pod's namespace read with lo alone: pod-interface-gone; every other pod has eth0."""
    snap = build_node(NodeSpec(pods=PODS))
    gone = snap.pods[1].netns_inode

    def without_eth0(ns: NetNamespace) -> NetNamespace:
        if ns.inode != gone:
            return ns
        return dataclasses.replace(
            ns, links=tuple(link for link in ns.links if link.name != "eth0")
        )

    broken = dataclasses.replace(snap, netns=tuple(without_eth0(ns) for ns in snap.netns))
    assert SnapshotIndex(snap).pods_without_eth0 == {}
    (found,) = problems(ParsedSnapshot(SnapshotIndex(broken)))
    assert (found.check, found.subject) == ("pod-interface-gone", "pod default/web-1")
    assert found.evidence == ("pod default/web-1's network namespace: lo",)
