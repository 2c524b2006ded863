"""The lab's wires: an underlay bridge joining the nodes' eth0, and the pod overlay.

Every `ip` command runs through nsenter inside the lab's own namespaces; this
machine's network namespace is never touched.
"""

from __future__ import annotations

from podpath.lab.node import run_in, run_in_net
from podpath.lab.records import NodeRecord

UNDERLAY_BRIDGE = "lab0"
UNDERLAY_PREFIX = 16
# The underlay bridge's own address, every node's default gateway (kind's docker bridge
# gateway is 172.18.0.1 too): a ClusterIP is routed, as on a real node, so kube-proxy's
# filter rules (REJECT of a Service without endpoints) see it. The underlay namespace
# forwards nothing, and nothing in it leads out of the lab.
UNDERLAY_GATEWAY = "172.18.0.1"
VXLAN_DEV = "flannel.1"
VXLAN_VNI = 1
VXLAN_PORT = 8472  # flannel's vxlan backend port (the Linux default, not IANA's 4789)
VXLAN_MTU = 1450  # 1500 minus the 50 bytes of VXLAN encapsulation


def node_address(index: int) -> str:
    """Underlay address of node `index` (1-based): 172.18.0.2, .3, ... like kind."""
    return f"172.18.0.{index + 1}"


def pod_cidr(index: int) -> str:
    """Pod CIDR of node `index` (1-based): 10.244.<index-1>.0/24."""
    return f"10.244.{index - 1}.0/24"


def make_underlay(underlay_pid: int) -> None:
    """Create the underlay bridge in the lab's underlay namespace."""
    run_in_net(
        underlay_pid,
        ["ip", "-batch", "-"],
        input=(
            f"link add {UNDERLAY_BRIDGE} type bridge\n"
            f"addr add {UNDERLAY_GATEWAY}/{UNDERLAY_PREFIX} dev {UNDERLAY_BRIDGE}\n"
            f"link set {UNDERLAY_BRIDGE} up\n"
        ),
    )


def attach_node(underlay_pid: int, node: NodeRecord) -> None:
    """Give a node an eth0 wired to the underlay bridge, with its underlay address."""
    port = f"veth-{node.name}"
    run_in_net(
        underlay_pid,
        ["ip", "-batch", "-"],
        input=(
            f"link add {port} type veth peer name eth0 netns {node.init_pid}\n"
            f"link set {port} master {UNDERLAY_BRIDGE} up\n"
        ),
    )
    run_in(
        node.init_pid,
        ["ip", "-batch", "-"],
        input=(
            f"addr add {node.address}/{UNDERLAY_PREFIX} dev eth0\nlink set eth0 up\n"
            f"route add default via {UNDERLAY_GATEWAY} dev eth0\n"
        ),
    )


def _gateway(cidr: str) -> str:
    """The overlay address flannel gives a node: the network address of its pod CIDR."""
    return cidr.split("/")[0]


def wire_overlay(nodes: tuple[NodeRecord, ...], overlay: str) -> None:
    """Route each node's pod CIDR to the others, by VXLAN (flannel-style) or host-gw."""
    if len(nodes) < 2:
        return
    for node in nodes:
        others = [n for n in nodes if n.name != node.name]
        if overlay == "host-gw":
            script = "".join(f"route add {o.pod_cidr} via {o.address} dev eth0\n" for o in others)
            run_in(node.init_pid, ["ip", "-batch", "-"], input=script)
            continue
        script = (
            f"link add {VXLAN_DEV} address {node.vtep_mac} type vxlan id {VXLAN_VNI} "
            f"local {node.address} dev eth0 dstport {VXLAN_PORT} nolearning\n"
            f"link set {VXLAN_DEV} mtu {VXLAN_MTU}\n"
            f"addr add {_gateway(node.pod_cidr)}/32 dev {VXLAN_DEV}\n"
            f"link set {VXLAN_DEV} up\n"
        )
        for o in others:
            gw = _gateway(o.pod_cidr)
            # flannel's vxlan backend: an onlink route via the remote VTEP's overlay
            # address, a permanent neighbour for it, and an FDB entry to its node.
            script += (
                f"route add {o.pod_cidr} via {gw} dev {VXLAN_DEV} onlink\n"
                f"neigh add {gw} lladdr {o.vtep_mac} dev {VXLAN_DEV} nud permanent\n"
            )
        run_in(node.init_pid, ["ip", "-batch", "-"], input=script)
        fdb = "".join(f"fdb append {o.vtep_mac} dev {VXLAN_DEV} dst {o.address}\n" for o in others)
        run_in(node.init_pid, ["bridge", "-batch", "-"], input=fdb)
