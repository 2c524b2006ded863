"""Which pod network a lab node gets, per `--cni`: its conflist, node setup and cross-node wiring.

- bridge: Debian's bridge + host-local + portmap on cni0, nodes joined by flannel-style
  VXLAN (flannel.1, flannel-v6.1) or host-gw routes.
- calico: podpath's calico plugin (routed cali veths, proxy ARP), vxlan.calico or
  BGP-style routes, blackholes for the node's own blocks (`calico.py`).
- ptp: kindnet's conflist with Debian's ptp plugin, host-gw routes (`kindnet.py`).
- aws-vpc: podpath's aws-cni plugin, two ENIs, policy rules, SNAT, the VPC fabric in
  the underlay (`awsvpc.py`); IPv6: one ENI's /80 prefix, proxy NDP in the VPC, and
  podpath's egress-cni plugin for the pods' SNATed IPv4 egress.

Plugins that Debian ships are the real ones; podpath's own (`cni_plugin.py`) are
written onto the node's CNI_PATH as small wrappers and called by libcni's rules.
"""

from __future__ import annotations

import sys
from typing import Any

from podpath.lab import awsvpc, calico, cni, kindnet, network
from podpath.lab.kubeproxy import DEFAULT_CONFIG, EKS_CONFIG, ProxyConfig
from podpath.lab.node import node_path
from podpath.lab.records import LabSpec, NodeRecord, PodRecord

# Plugins each topology needs from Debian's containernetworking-plugins.
DEBIAN_PLUGINS = {
    "bridge": ("bridge", "host-local", "portmap", "loopback"),
    "calico": ("host-local", "portmap", "loopback"),
    "ptp": ("ptp", "host-local", "portmap", "loopback"),
    "aws-vpc": ("host-local", "portmap", "loopback"),
}
OWN_PLUGINS = {"calico": ("calico",), "aws-vpc": ("aws-cni", "egress-cni")}


def cidrs(spec: LabSpec, node: NodeRecord) -> list[str]:
    """The node's pod CIDRs in the lab's families, the primary family first."""
    found = []
    for family in spec.families:
        cidr = node.pod_cidr if family == 4 else node.pod_cidr6
        if cidr:
            found.append(cidr)
    return found


def proxy_config(spec: LabSpec) -> ProxyConfig:
    """kube-proxy's configuration on the lab's nodes: EKS's (no cluster CIDR) with the VPC CNI,
    kubeadm's (the 10.244/16 and fd00:10:244::/56 pod networks) with the others."""
    return EKS_CONFIG if spec.cni == "aws-vpc" else DEFAULT_CONFIG


def conflist(spec: LabSpec, node: NodeRecord, index: int) -> tuple[str, dict[str, Any]]:
    """(file name, conflist) the node's runtime reads."""
    if spec.cni == "calico":
        return calico.CONFLIST_NAME, calico.conflist(spec, cidrs(spec, node))
    if spec.cni == "ptp":
        return kindnet.CONFLIST_NAME, kindnet.conflist(cidrs(spec, node))
    if spec.cni == "aws-vpc":
        return awsvpc.CONFLIST_NAME, awsvpc.conflist(index, spec.families, node.address)
    mtu = network.VXLAN_MTU if spec.overlay == "vxlan" and spec.nodes > 1 else 1500
    if 6 in spec.families and spec.overlay == "vxlan" and spec.nodes > 1:
        mtu = network.VXLAN6_MTU
    found = cidrs(spec, node)
    # kube-proxy's nftables mode has no KUBE-MARK-MASQ: portmap then marks in chains of its own.
    mark_chain = None if spec.proxy_mode == "nftables" else "KUBE-MARK-MASQ"
    pod_cidr6 = found[1] if len(found) > 1 else None
    return cni.CONFLIST_NAME, cni.conflist(found[0], mtu, pod_cidr6, mark_chain)


def install_plugins(spec: LabSpec, node: NodeRecord) -> None:
    """Fill the node's own CNI bin directory (its private /var/lib/cni/bin).

    podpath's own plugins are written there; Debian's are linked there too, because
    containerd 1.6 searches one `bin_dir` only (a list of them came in containerd 2.1).
    """
    bin_dir = node_path(node.init_pid, cni.SHIM_BIN_DIR)
    bin_dir.mkdir(parents=True, exist_ok=True)
    for plugin in DEBIAN_PLUGINS[spec.cni]:
        link = bin_dir / plugin
        if not link.is_symlink():
            link.symlink_to(f"{cni.CNI_BIN_DIR}/{plugin}")
    for plugin in OWN_PLUGINS.get(spec.cni, ()):
        path = bin_dir / plugin
        path.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m podpath.lab.cni_plugin {plugin}\n')
        path.chmod(0o755)


def prepare_node(spec: LabSpec, node: NodeRecord, index: int, underlay_pid: int) -> None:
    """Everything a node needs before its first pod: IPv6 forwarding, extra ENIs, rules, plugins."""
    if 6 in spec.families:
        network.prepare_ipv6(node.init_pid)
    if spec.cni == "aws-vpc":
        if spec.families == (4,):  # IPv6 mode has the primary ENI only
            network.attach_node(underlay_pid, node, awsvpc.SECONDARY_ENI)
        awsvpc.attach_to_vpc(underlay_pid, node)
        awsvpc.prepare_node(node, index, spec.families)
    install_plugins(spec, node)
    name, conf = conflist(spec, node, index)
    cni.install_conflist(node.init_pid, conf, name)


def wire(spec: LabSpec, nodes: tuple[NodeRecord, ...]) -> None:
    """Cross-node routes and tunnels for the topology."""
    if spec.cni == "calico":
        calico.wire(spec, nodes)
    elif spec.cni == "ptp":
        kindnet.wire(spec, nodes)
    elif spec.cni == "bridge":
        network.wire_overlay(nodes, spec.overlay)


def after_pods(
    spec: LabSpec, underlay_pid: int, nodes: tuple[NodeRecord, ...], pods: tuple[PodRecord, ...]
) -> None:
    """What the network around the nodes learns once pods exist (the VPC fabric)."""
    if spec.cni == "aws-vpc":
        awsvpc.wire_fabric(underlay_pid, nodes, pods)
