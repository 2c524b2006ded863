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

IPv6 (`--ip-family ipv6`; the plugin has no dual-stack mode: a cluster is IPv4 or IPv6).
From aws/amazon-vpc-cni-k8s's cmd/routed-eni-cni-plugin/driver/driver.go (setupVeth,
setupIPBasedContainerRouteRules), pkg/networkutils/network.go (SetupHostNetwork,
updateHostIptablesRules, setupRuleToBlockNodeLocalAccess), cmd/egress-cni-plugin
(main.go, egressContext.go, snat/snat.go) and its entrypoint's egress IPAM constants:
pods take addresses from a /80 prefix delegated to the primary ENI only (no secondary
ENI, no table 2, no rule 1025, no AWS-SNAT-CHAIN: "for v6 ... traffic enters and exits
from the ENI it came from"); the node has `ip -6 rule` 1024 `fwmark 0x80/0x80 lookup
main` (the main-ENI rule, AF_INET6) and, per pod, rule 512 `to POD lookup main` and
`POD/128 dev eniXXX` in main. Each pod also gets IPv4 egress from the chained
egress-cni plugin: `v4if0` with an address of 169.254.172.0/22 (host-local, its own
dataDir), the host end holding 169.254.172.1/32 scope link, SNAT of that address to
the node's IPv4 (chain CNI-E4-...), and FORWARD rejects new connections to the range.
The VPC router here routes each pod's and node's IPv6 address to its ENI and answers
neighbour solicitations for them on the other ports by proxy NDP (one proxy entry a
port and address), as it answers ARP for IPv4.
"""

from __future__ import annotations

import json
from typing import Any

from podpath.lab.cni_plugin import ENI_TABLE, secondary_eni
from podpath.lab.network import (
    UNDERLAY_GATEWAY,
    UNDERLAY_GATEWAY6,
    UNDERLAY_PREFIX,
    set_sysctls,
)
from podpath.lab.node import run_in, run_in_net
from podpath.lab.records import NodeRecord, PodRecord

CONFLIST_NAME = "10-aws.conflist"
NETWORK_NAME = "aws-cni"
VPC_CIDR = "172.18.0.0/16"
SECONDARY_ENI = "eth1"
RULE_LEAVE_VPC = 1025
# IPv6 mode (the subnet's IPv6 CIDR is the underlay's fd00:172:18::/64).
RULE_MAIN_ENI = 1024  # networkutils' hostRulePriority: fwmark 0x80/0x80 lookup main
MAIN_ENI_MARK = 0x80
EGRESS_PLUGIN = "egress-cni"
EGRESS_SUBNET = "169.254.172.0/22"
EGRESS_DATA_DIR = "/run/cni/v6pd/egress-v4-ipam"


def eni_address(index: int) -> str:
    """The secondary ENI's primary address of node `index` (1-based)."""
    return f"172.18.1.{index + 1}"


def pod_range(index: int) -> tuple[str, str]:
    """The slice of the VPC subnet whose addresses node `index` gives its pods."""
    return f"172.18.{15 + index}.2", f"172.18.{15 + index}.254"


def pod_prefix6(index: int) -> str:
    """The /80 prefix delegated to node `index`'s primary ENI (inside the subnet's /64)."""
    return f"fd00:172:18:0:{index:x}::/80"


def conflist(
    node_index: int, families: tuple[int, ...] = (4,), node_ip: str = ""
) -> dict[str, Any]:
    """The aws-cni conflist (misc/10-aws.conflist) with IPAM from the node's slice of the VPC.

    IPv6: addresses from the node's /80 prefix, and the chained egress-cni plugin with
    its host-local range for the pods' IPv4 egress, SNATed to `node_ip`.
    """
    if families == (6,):
        return conflist6(node_index, node_ip)
    start, end = pod_range(node_index)
    ipv4_range = {
        "subnet": VPC_CIDR,
        "rangeStart": start,
        "rangeEnd": end,
        "gateway": UNDERLAY_GATEWAY,
    }
    return _conflist(_aws_cni(ipv4_range))


def conflist6(node_index: int, node_ip: str) -> dict[str, Any]:
    """IPv6 mode's conflist: aws-cni over the /80 prefix, egress-cni (IPv4 egress), portmap."""
    prefix = pod_prefix6(node_index).split("/")[0]
    ipv6_range = {
        "subnet": pod_prefix6(node_index),
        "rangeStart": f"{prefix}2",
        "rangeEnd": f"{prefix}fe",
    }
    egress = {
        "name": EGRESS_PLUGIN,
        "type": EGRESS_PLUGIN,
        "mtu": "1500",
        "enabled": "true",
        "randomizeSNAT": "prng",
        "nodeIP": node_ip,
        "ipam": {
            "type": "host-local",
            "ranges": [[{"subnet": EGRESS_SUBNET}]],
            "routes": [{"dst": "0.0.0.0/0"}],
            "dataDir": EGRESS_DATA_DIR,
        },
        "pluginLogLevel": "DEBUG",
    }
    return _conflist(_aws_cni(ipv6_range), egress)


def _aws_cni(address_range: dict[str, str]) -> dict[str, Any]:
    """The aws-cni plugin's entry (misc/10-aws.conflist) with host-local IPAM over a range."""
    return {
        "name": NETWORK_NAME,
        "type": "aws-cni",
        "vethPrefix": "eni",
        "mtu": 1500,
        "pluginLogLevel": "DEBUG",
        "ipam": {"type": "host-local", "ranges": [[address_range]]},
    }


def _conflist(*plugins: dict[str, Any]) -> dict[str, Any]:
    """The conflist: `plugins`, then portmap (hostPort, with SNAT of hairpinned traffic)."""
    portmap = {"type": "portmap", "capabilities": {"portMappings": True}, "snat": True}
    return {
        "cniVersion": "0.4.0",
        "name": NETWORK_NAME,
        "disableCheck": True,
        "plugins": [*plugins, portmap],
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


def prepare_node6(node: NodeRecord) -> None:
    """IPv6 mode: the main-ENI rule 1024 (AF_INET6) and FORWARD's reject of new connections
    to the egress range (no secondary ENI, no IPv6 SNAT: ipamd programs neither)."""
    mark = f"{MAIN_ENI_MARK:#x}"
    run_in(
        node.init_pid,
        ["ip", "-6", "rule", "add", "fwmark", f"{mark}/{mark}", "lookup", "main"]
        + ["pref", str(RULE_MAIN_ENI)],
    )
    block = "Block Node Local Pod access via IPv4"
    run_in(
        node.init_pid,
        ["iptables", "-w", "30", "-I", "FORWARD", "1", "-d", EGRESS_SUBNET]
        + ["-m", "conntrack", "--ctstate", "NEW", "-m", "comment", "--comment", block]
        + ["-j", "REJECT"],
        timeout=60,
    )


def prepare_node(node: NodeRecord, index: int, families: tuple[int, ...] = (4,)) -> None:
    """The secondary ENI's address and table, rule 1025, loose rp_filter, SNAT rules (IPv4);
    `prepare_node6` in IPv6 mode."""
    if families == (6,):
        prepare_node6(node)
        return
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
    """(underlay port, the node address behind it) for both ENIs (IPv6 mode: eth0 only)."""
    index = int(node.name.removeprefix("node"))
    if node.address6:
        return ((f"veth-{node.name}", node.address),)
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
    if node.address6:
        # IPv6: the node's address routed to its port, proxy NDP on the port (entries
        # for the gateway here, for the other nodes' and pods' addresses in wire_fabric).
        port = f"veth-{node.name}"
        script += (
            f"route add {node.address6}/128 dev {port}\n"
            f"neigh replace proxy {UNDERLAY_GATEWAY6} dev {port}\n"
        )
        sysctls += (
            "echo 1 > /proc/sys/net/ipv6/conf/all/forwarding; "
            f"echo 1 > /proc/sys/net/ipv6/conf/{port}/forwarding; "
            f"echo 1 > /proc/sys/net/ipv6/conf/{port}/proxy_ndp; "
            f"echo 0 > /proc/sys/net/ipv6/neigh/{port}/proxy_delay; "
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
    """The VPC delivers each pod address to the ENI that owns it (it knows the MAC: no ARP).

    IPv6: each pod's /128 goes to its node's eth0 the same way, and every other port
    answers neighbour solicitations for it (and for the other nodes' addresses) by proxy
    NDP -- Linux proxies only the addresses it has an entry for on the asking port.
    """
    by_name = {n.name: n for n in nodes}
    script = ""
    # IPv6: (port, address behind it) -- every other port answers for the address by proxy.
    behind: list[tuple[str, str]] = [(f"veth-{n.name}", n.address6) for n in nodes if n.address6]
    for p in pods:
        node = by_name[p.node]
        for ip in p.ips or (p.ip,):
            if ":" in ip:
                port = f"veth-{node.name}"
                mac = _mac(node.init_pid, "eth0")
                script += (
                    f"route replace {ip}/128 dev {port}\n"
                    f"neigh replace {ip} lladdr {mac} dev {port} nud permanent\n"
                )
                behind.append((port, ip))
                continue
            ports = _ports(node)
            port, dev = (ports[1][0], SECONDARY_ENI) if secondary_eni(ip) else (ports[0][0], "eth0")
            script += (
                f"route replace {ip}/32 dev {port}\n"
                f"neigh replace {ip} lladdr {_mac(node.init_pid, dev)} dev {port} nud permanent\n"
            )
    for n in nodes:
        port = f"veth-{n.name}"
        script += "".join(
            f"neigh replace proxy {ip} dev {port}\n" for other, ip in behind if other != port
        )
    if script:
        run_in_net(underlay_pid, ["ip", "-batch", "-"], input=script)


def vpc_cidr() -> str:
    """The VPC's CIDR (the lab's underlay subnet)."""
    return VPC_CIDR
