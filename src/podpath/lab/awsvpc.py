"""The AWS VPC CNI's node shape: pods with VPC addresses on two ENIs, policy routing, SNAT.

Built from the plugin's own description (the cni-proposal page in aws/amazon-vpc-cni-k8s's docs):
the node has a primary ENI (eth0) and a secondary one (eth1) in the VPC subnet;
eth1's subnet route leaves main for its own table (2): `default via <VPC router> dev
eth1`. Rule 1025 `not to <VPC> lookup main` sends traffic leaving the VPC through the
primary ENI, where iptables SNATs it to the node's primary address (AWS-SNAT-CHAIN).
Per pod, podpath's aws-cni plugin adds rule 512 `to POD lookup main`, a /32 route, and
for an address of the secondary ENI rule 1536 `from POD lookup 2`. The VPC itself is
the lab's underlay namespace, a router (172.18.0.1) with every ENI as a port of its
own: it routes each node and pod address to the ENI that owns it and answers ARP for
them by proxy ARP, as the VPC fabric answers every ARP request on the subnet.
"""

from __future__ import annotations

import json
from typing import Any

from podpath.lab.cni_plugin import ENI_TABLE, secondary_eni
from podpath.lab.network import UNDERLAY_GATEWAY, UNDERLAY_PREFIX, set_sysctls
from podpath.lab.node import run_in, run_in_net
from podpath.lab.records import NodeRecord, PodRecord

CONFLIST_NAME = "10-aws.conflist"
NETWORK_NAME = "aws-cni"
VPC_CIDR = "172.18.0.0/16"
SECONDARY_ENI = "eth1"
RULE_LEAVE_VPC = 1025


def eni_address(index: int) -> str:
    """The secondary ENI's primary address of node `index` (1-based)."""
    return f"172.18.1.{index + 1}"


def pod_range(index: int) -> tuple[str, str]:
    """The slice of the VPC subnet whose addresses node `index` gives its pods."""
    return f"172.18.{15 + index}.2", f"172.18.{15 + index}.254"


def conflist(node_index: int) -> dict[str, Any]:
    """The aws-cni conflist (misc/10-aws.conflist) with IPAM from the node's slice of the VPC."""
    start, end = pod_range(node_index)
    return {
        "cniVersion": "0.4.0",
        "name": NETWORK_NAME,
        "disableCheck": True,
        "plugins": [
            {
                "name": NETWORK_NAME,
                "type": "aws-cni",
                "vethPrefix": "eni",
                "mtu": 1500,
                "pluginLogLevel": "DEBUG",
                "ipam": {
                    "type": "host-local",
                    "ranges": [
                        [
                            {
                                "subnet": VPC_CIDR,
                                "rangeStart": start,
                                "rangeEnd": end,
                                "gateway": UNDERLAY_GATEWAY,
                            }
                        ]
                    ],
                },
            },
            {"type": "portmap", "capabilities": {"portMappings": True}, "snat": True},
        ],
    }


def snat_rules(node: NodeRecord) -> str:
    """iptables-restore input (--noflush): SNAT what leaves the VPC to the primary address."""
    return "\n".join(
        [
            "*nat",
            ":AWS-SNAT-CHAIN-0 - [0:0]",
            ":AWS-SNAT-CHAIN-1 - [0:0]",
            '-A POSTROUTING -m comment --comment "AWS SNAT CHAIN" -j AWS-SNAT-CHAIN-0',
            f'-A AWS-SNAT-CHAIN-0 ! -d {VPC_CIDR} -m comment --comment "AWS SNAT CHAIN" '
            "-j AWS-SNAT-CHAIN-1",
            '-A AWS-SNAT-CHAIN-1 ! -o vlan+ -m comment --comment "AWS, SNAT" -m addrtype '
            f"! --dst-type LOCAL -j SNAT --to-source {node.address} --random-fully",
            "COMMIT",
            "",
        ]
    )


def prepare_node(node: NodeRecord, index: int) -> None:
    """The secondary ENI's address and table, rule 1025, loose rp_filter, SNAT rules."""
    eni = eni_address(index)
    script = (
        f"addr add {eni}/{UNDERLAY_PREFIX} dev {SECONDARY_ENI}\n"
        f"link set {SECONDARY_ENI} up\n"
        # The kernel's subnet route for eth1 moves to the ENI's own table.
        f"route del {VPC_CIDR} dev {SECONDARY_ENI}\n"
        f"route add {UNDERLAY_GATEWAY} dev {SECONDARY_ENI} scope link table {ENI_TABLE}\n"
        f"route add default via {UNDERLAY_GATEWAY} dev {SECONDARY_ENI} table {ENI_TABLE}\n"
        f"rule add not to {VPC_CIDR} lookup main pref {RULE_LEAVE_VPC}\n"
    )
    run_in(node.init_pid, ["ip", "-batch", "-"], input=script)
    # Asymmetric paths (in on one ENI, out of the other) need loose reverse path checks.
    set_sysctls(
        node.init_pid,
        {"net.ipv4.conf.eth0.rp_filter": "2", f"net.ipv4.conf.{SECONDARY_ENI}.rp_filter": "2"},
    )
    run_in(
        node.init_pid,
        ["iptables-restore", "--noflush", "-w", "30"],
        input=snat_rules(node),
        timeout=60,
    )


def _ports(node: NodeRecord) -> tuple[tuple[str, str], ...]:
    """(underlay port, the node address behind it) for both ENIs."""
    index = int(node.name.removeprefix("node"))
    return (
        (f"veth-{node.name}", node.address),
        (f"veth-{node.name}-{SECONDARY_ENI}", eni_address(index)),
    )


def attach_to_vpc(underlay_pid: int, node: NodeRecord) -> None:
    """Make the node's ENIs ports of the VPC router instead of the underlay bridge.

    The VPC answers every ARP request on the subnet for an address it can deliver
    elsewhere: here the underlay namespace is that router, with a /32 route to each
    ENI address and proxy_arp on each port (arp_fwd_proxy answers when the route
    leaves by another port).
    """
    script = ""
    sysctls = ""
    for port, address in _ports(node):
        script += f"link set {port} nomaster\nroute add {address}/32 dev {port}\n"
        sysctls += (
            f"echo 1 > /proc/sys/net/ipv4/conf/{port}/proxy_arp; "
            f"echo 0 > /proc/sys/net/ipv4/conf/{port}/send_redirects; "
            f"echo 0 > /proc/sys/net/ipv4/neigh/{port}/proxy_delay; "
        )
    run_in_net(underlay_pid, ["ip", "-batch", "-"], input=script)
    # The VPC router forwards between ENIs; it never sends redirects (they would change
    # the nodes' route cache).
    run_in_net(
        underlay_pid,
        [
            "sh",
            "-ec",
            sysctls + "echo 1 > /proc/sys/net/ipv4/ip_forward; "
            "echo 0 > /proc/sys/net/ipv4/conf/all/send_redirects",
        ],
    )


def _mac(init_pid: int, dev: str) -> str:
    (link,) = json.loads(run_in(init_pid, ["ip", "-j", "link", "show", "dev", dev]).stdout)
    return str(link["address"])


def wire_fabric(
    underlay_pid: int, nodes: tuple[NodeRecord, ...], pods: tuple[PodRecord, ...]
) -> None:
    """The VPC delivers each pod address to the ENI that owns it (it knows the MAC: no ARP)."""
    by_name = {n.name: n for n in nodes}
    script = ""
    for p in pods:
        node = by_name[p.node]
        eth0, eth1 = _ports(node)
        port, dev = (eth1[0], SECONDARY_ENI) if secondary_eni(p.ip) else (eth0[0], "eth0")
        script += (
            f"route replace {p.ip}/32 dev {port}\n"
            f"neigh replace {p.ip} lladdr {_mac(node.init_pid, dev)} dev {port} nud permanent\n"
        )
    run_in_net(underlay_pid, ["ip", "-batch", "-"], input=script)


def vpc_cidr() -> str:
    """The VPC's CIDR (the lab's underlay subnet)."""
    return VPC_CIDR
