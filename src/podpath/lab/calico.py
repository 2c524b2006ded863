"""Calico's node shape: routed cali veths (podpath's calico plugin), VXLAN or BGP-style routes.

Calico's IPIP mode needs the ipip module, absent from this kernel; VXLAN mode and
BGP-routed mode are built. In VXLAN mode each node has `vxlan.calico` (VNI 4096, UDP
4789) holding its block's first address, remote blocks routed `via` the remote tunnel
address `onlink`, a permanent neighbour and an FDB entry per remote (Felix programs
these; no learning). In routed mode the blocks are routed via the node addresses with
protocol bird, as BIRD installs BGP routes. Either way the node holds a blackhole
route for its own block (BIRD's), so an unallocated pod address is dropped, not
forwarded back out.
"""

from __future__ import annotations

from typing import Any

from podpath.lab.network import host_gw_routes, vxlan_mesh
from podpath.lab.node import run_in
from podpath.lab.records import LabSpec, NodeRecord

CONFLIST_NAME = "10-calico.conflist"
NETWORK_NAME = "k8s-pod-network"
VXLAN_DEV = "vxlan.calico"
VXLAN6_DEV = "vxlan-v6.calico"
VXLAN_VNI = 4096
VXLAN6_VNI = 4098
VXLAN_PORT = 4789
VXLAN_MTU = 1450
VXLAN6_MTU = 1430


def mtu(spec: LabSpec) -> int:
    """The pod MTU: the VXLAN MTU when pods cross a VXLAN tunnel."""
    if spec.overlay == "vxlan" and spec.nodes > 1:
        return VXLAN6_MTU if 6 in spec.families else VXLAN_MTU
    return 1500


def conflist(spec: LabSpec, cidrs: list[str]) -> dict[str, Any]:
    """Calico's conflist as install-cni writes it, with host-local IPAM over the node's CIDRs."""
    from podpath.lab.cni import ipam_ranges

    return {
        "name": NETWORK_NAME,
        "cniVersion": "0.3.1",
        "plugins": [
            {
                "type": "calico",
                "log_level": "info",
                "datastore_type": "kubernetes",
                "mtu": mtu(spec),
                "ipam": {"type": "host-local", "ranges": ipam_ranges(cidrs)},
                "policy": {"type": "k8s"},
            },
            {"type": "portmap", "snat": True, "capabilities": {"portMappings": True}},
        ],
    }


def wire(spec: LabSpec, nodes: tuple[NodeRecord, ...]) -> None:
    """Blackholes for each node's own blocks, then VXLAN or BGP-style routes between nodes."""
    for node in nodes:
        script = ""
        if 4 in spec.families:
            script += f"route add blackhole {node.pod_cidr} proto bird\n"
        if 6 in spec.families and node.pod_cidr6:
            script += f"route add blackhole {node.pod_cidr6} proto bird\n"
        run_in(node.init_pid, ["ip", "-batch", "-"], input=script)
    if len(nodes) < 2:
        return
    if spec.overlay == "host-gw":
        host_gw_routes(nodes, "bird")
        return
    if 4 in spec.families:
        macs = {n.name: n.vtep_mac for n in nodes}
        vxlan_mesh(nodes, VXLAN_DEV, VXLAN_VNI, VXLAN_PORT, 4, VXLAN_MTU, macs)
    if 6 in spec.families:
        macs6 = {n.name: _flip(n.vtep_mac) for n in nodes}
        vxlan_mesh(nodes, VXLAN6_DEV, VXLAN6_VNI, VXLAN_PORT, 6, VXLAN6_MTU, macs6)


def _flip(mac: str) -> str:
    first, rest = mac.split(":", 1)
    return f"{int(first, 16) ^ 0x08:02x}:{rest}"
