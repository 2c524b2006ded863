"""The lab's wires: an underlay bridge joining the nodes' eth0, addressing, and the flannel overlay.

Every `ip` command runs through nsenter inside the lab's own namespaces; this
machine's network namespace is never touched. The underlay namespace plays the
network around the nodes (kind's docker bridge, a cloud VPC): it holds the bridge
`lab0` and the gateway address 172.18.0.1 every node's default route points at, so a
route covers 169.254.1.1 as on a real node. It never forwards unless a topology asks
(the AWS VPC fabric), and it has no way out of the lab.
"""

from __future__ import annotations

import ipaddress

from podpath.lab.node import run_in, run_in_net
from podpath.lab.records import NodeRecord

UNDERLAY_BRIDGE = "lab0"
UNDERLAY_PREFIX = 16
UNDERLAY6_PREFIX = 64
# The underlay bridge's own addresses, every node's default gateways (kind's docker bridge
# gateway is 172.18.0.1 too): a ClusterIP is routed, as on a real node, so kube-proxy's
# filter rules (REJECT of a Service without endpoints) see it. The underlay namespace
# forwards nothing, and nothing in it leads out of the lab.
UNDERLAY_GATEWAY = "172.18.0.1"
UNDERLAY_GATEWAY6 = "fd00:172:18::1"
VXLAN_DEV = "flannel.1"
VXLAN6_DEV = "flannel-v6.1"
VXLAN_VNI = 1
VXLAN_PORT = 8472  # flannel's vxlan backend port (the Linux default, not IANA's 4789)
VXLAN_MTU = 1450  # 1500 minus the 50 bytes of VXLAN encapsulation
VXLAN6_MTU = 1430  # 70 bytes over an IPv6 underlay


def node_address(index: int) -> str:
    """Underlay address of node `index` (1-based): 172.18.0.2, .3, ... like kind."""
    return f"172.18.0.{index + 1}"


def node_address6(index: int) -> str:
    """Underlay IPv6 address of node `index` (1-based): fd00:172:18::2, ..."""
    return f"fd00:172:18::{index + 1:x}"


def pod_cidr(index: int) -> str:
    """Pod CIDR of node `index` (1-based): 10.244.<index-1>.0/24."""
    return f"10.244.{index - 1}.0/24"


def pod_cidr6(index: int) -> str:
    """IPv6 pod CIDR of node `index` (1-based): fd00:10:244::/64, fd00:10:244:1::/64, ..."""
    return str(ipaddress.ip_network(f"fd00:10:244:{index - 1:x}::/64"))


def network_address(cidr: str) -> str:
    """The network address of a CIDR (flannel's and Calico's tunnel address)."""
    return cidr.split("/")[0]


def make_underlay(underlay_pid: int) -> None:
    """Create the underlay bridge, with the gateway addresses, in the lab's underlay namespace."""
    run_in_net(
        underlay_pid,
        ["ip", "-batch", "-"],
        input=(
            f"link add {UNDERLAY_BRIDGE} type bridge\n"
            f"addr add {UNDERLAY_GATEWAY}/{UNDERLAY_PREFIX} dev {UNDERLAY_BRIDGE}\n"
            f"addr add {UNDERLAY_GATEWAY6}/{UNDERLAY6_PREFIX} dev {UNDERLAY_BRIDGE} nodad\n"
            f"link set {UNDERLAY_BRIDGE} up\n"
        ),
    )


def attach_node(underlay_pid: int, node: NodeRecord, name: str = "eth0") -> None:
    """Give a node an interface wired to the underlay bridge, with its underlay address(es)."""
    port = f"veth-{node.name}" if name == "eth0" else f"veth-{node.name}-{name}"
    run_in_net(
        underlay_pid,
        ["ip", "-batch", "-"],
        input=(
            f"link add {port} type veth peer name {name} netns {node.init_pid}\n"
            f"link set {port} master {UNDERLAY_BRIDGE} up\n"
        ),
    )
    if name != "eth0":
        return
    script = f"addr add {node.address}/{UNDERLAY_PREFIX} dev eth0\nlink set eth0 up\n"
    if node.address6:
        script += f"addr add {node.address6}/{UNDERLAY6_PREFIX} dev eth0 nodad\n"
    script += f"route add default via {UNDERLAY_GATEWAY} dev eth0\n"
    if node.address6:
        script += f"route add ::/0 via {UNDERLAY_GATEWAY6} dev eth0\n"
    run_in(node.init_pid, ["ip", "-batch", "-"], input=script)


def set_sysctls(init_pid: int, values: dict[str, str]) -> None:
    """Write sysctls of the node's own network namespace (its /proc/sys/net)."""
    script = "".join(f"echo {v} > /proc/sys/{k.replace('.', '/')}\n" for k, v in values.items())
    run_in(init_pid, ["sh", "-ec", script])


def prepare_ipv6(init_pid: int) -> None:
    """Forward IPv6 and let br_netfilter hand bridged IPv6 to ip6tables, as kube-proxy needs."""
    set_sysctls(init_pid, {"net.ipv6.conf.all.forwarding": "1"})
    run_in(
        init_pid,
        [
            "sh",
            "-c",
            "f=/proc/sys/net/bridge/bridge-nf-call-ip6tables; [ ! -e $f ] || echo 1 > $f",
        ],
    )


# How long the node's IPv6 addresses may stay tentative, and how often that is asked:
# containernetworking/plugins pkg/ip/addr_linux.go SettleAddresses polls every 50 ms
# (there is no event to wait for) and gives up after its caller's timeout, 10 s in ipam.
SETTLE_POLLS = 200
SETTLE_INTERVAL = "0.05"


def settle_ipv6(init_pid: int) -> None:
    """Wait until no IPv6 address of the node's own namespace is tentative (in DAD).

    cni0's gateway address is tentative for about a second after the bridge plugin adds
    it: a pod's first packets then get no neighbour answer for their gateway, and the
    first connection after `lab up` waited one or two SYN retransmissions. The CNI
    plugins settle the pod's side (SettleAddresses); this settles the node's side."""
    script = (
        "n=0; while ip -6 addr show tentative | grep -q inet6; do "
        f'n=$((n+1)); if [ "$n" -ge {SETTLE_POLLS} ]; then '
        "echo 'IPv6 addresses still tentative (duplicate address detection):' >&2; "
        "ip -6 addr show tentative >&2; exit 1; fi; "
        f"sleep {SETTLE_INTERVAL}; done"
    )
    run_in(init_pid, ["sh", "-c", script], timeout=60)


def host_gw_routes(nodes: tuple[NodeRecord, ...], proto: str = "boot") -> None:
    """Route each node's pod CIDRs via the other nodes' underlay addresses (host-gw, kindnet, BGP)."""
    for node in nodes:
        script = ""
        for o in nodes:
            if o.name == node.name:
                continue
            script += f"route add {o.pod_cidr} via {o.address} dev eth0 proto {proto}\n"
            if o.pod_cidr6 and o.address6:
                script += f"route add {o.pod_cidr6} via {o.address6} dev eth0 proto {proto}\n"
        if script:
            run_in(node.init_pid, ["ip", "-batch", "-"], input=script)


def vxlan_mesh(
    nodes: tuple[NodeRecord, ...],
    device: str,
    vni: int,
    port: int,
    family: int,
    mtu: int,
    mac_of: dict[str, str],
) -> None:
    """A VXLAN device per node with onlink routes, permanent neighbours and FDB entries to the others.

    This is flannel's vxlan backend and Calico's VXLAN mode alike: each node's device
    holds its block's network address; a remote block is routed `via` the remote
    device's address `onlink`, whose MAC is a permanent neighbour, whose VTEP is an FDB
    entry (no learning, no multicast).
    """
    for node in nodes:
        local = node.address if family == 4 else node.address6
        cidr = node.pod_cidr if family == 4 else node.pod_cidr6
        if local is None or cidr is None:
            continue
        plen = 32 if family == 4 else 128
        script = (
            f"link add {device} address {mac_of[node.name]} type vxlan id {vni} "
            f"local {local} dev eth0 dstport {port} nolearning\n"
            f"link set {device} mtu {mtu}\n"
            f"addr add {network_address(cidr)}/{plen} dev {device}"
            + (" nodad" if family == 6 else "")
            + "\n"
            f"link set {device} up\n"
        )
        fdb = ""
        for o in nodes:
            remote = o.address if family == 4 else o.address6
            other = o.pod_cidr if family == 4 else o.pod_cidr6
            if o.name == node.name or remote is None or other is None:
                continue
            gw = network_address(other)
            script += (
                f"route add {other} via {gw} dev {device} onlink\n"
                f"neigh add {gw} lladdr {mac_of[o.name]} dev {device} nud permanent\n"
            )
            fdb += f"fdb append {mac_of[o.name]} dev {device} dst {remote}\n"
        run_in(node.init_pid, ["ip", "-batch", "-"], input=script)
        if fdb:
            run_in(node.init_pid, ["bridge", "-batch", "-"], input=fdb)


def wire_overlay(nodes: tuple[NodeRecord, ...], overlay: str) -> None:
    """Route each node's pod CIDRs to the others, by VXLAN (flannel-style) or host-gw."""
    if len(nodes) < 2:
        return
    if overlay == "host-gw":
        host_gw_routes(nodes)
        return
    vxlan_mesh(
        nodes,
        VXLAN_DEV,
        VXLAN_VNI,
        VXLAN_PORT,
        4,
        VXLAN_MTU,
        {n.name: n.vtep_mac for n in nodes},
    )
    if any(n.pod_cidr6 for n in nodes):
        # flannel's IPv6 backend: a second device over the IPv6 underlay.
        macs6 = {n.name: _v6_mac(n.vtep_mac) for n in nodes}
        vxlan_mesh(nodes, VXLAN6_DEV, VXLAN_VNI, VXLAN_PORT, 6, VXLAN6_MTU, macs6)


def _v6_mac(mac: str) -> str:
    """A second, distinct locally administered MAC for a node's IPv6 VTEP."""
    first, rest = mac.split(":", 1)
    return f"{int(first, 16) ^ 0x04:02x}:{rest}"
