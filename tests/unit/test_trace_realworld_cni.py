"""Traces on real nodes' routes, rules and neighbours: the AWS VPC CNI's and Cilium's (ENI mode).

The fixtures are what the projects' own documents show of a real node (SOURCES.md):
the AWS VPC CNI proposal's pod and host dumps, Cilium's ENI datapath rules and
routes, and a `tc filter show` of cilium_host. What the dumps do not show (the
node's ENI devices, the pod's peer namespace) is modelled minimally here, and said so.
"""

from __future__ import annotations

from dataclasses import replace

from realworld_ip import REALWORLD, addresses, arp_entries, lines, routes, rules, tc_filters

from podpath.analysis.dataplane import detect
from podpath.analysis.index import SnapshotIndex
from podpath.snapshot.model import (
    SCHEMA_VERSION,
    Address,
    Link,
    LinkRef,
    NetNamespace,
    NodeFacts,
    Pod,
    Route,
    Rule,
    Snapshot,
)
from podpath.trace.engine import trace
from podpath.trace.model import JsonValue
from podpath.trace.probe import Probe

AWS = REALWORLD / "aws"
CILIUM = REALWORLD / "cilium"
ROOT, POD = 4026532100, 4026532101
# The host's devices named in the dumps; the pod's peer veth is the route's device.
AWS_DEVS = {
    "eth0": 2,
    "eth1": 3,
    "aws8db0408c9a8": 231,
    "awsbcd978401eb": 232,
    "awsc2f87dc4cdd": 233,
    "aws4914061689b": 234,
}
ENI_1 = 2  # the table the rt_tables name eni-1 stands for (device number + 1)


def _aws_node() -> Snapshot:
    pod_mac, pod_addrs = addresses(AWS / "cni-proposal-pod-ip-addr-show.txt", "eth0")
    (gw,) = arp_entries(AWS / "cni-proposal-pod-arp-a.txt", POD, {"eth0": 3})
    host_links = [
        Link(
            ROOT,
            1,
            "lo",
            None,
            "00:00:00:00:00:00",
            65536,
            "UNKNOWN",
            addresses=(Address(4, "127.0.0.1", 8, "host"),),
        ),
        Link(
            ROOT,
            2,
            "eth0",
            None,
            "0a:00:00:00:00:02",
            9001,
            "UP",
            addresses=(Address(4, "10.0.104.183", 19),),
        ),
        Link(ROOT, 3, "eth1", None, "0a:00:00:00:00:03", 9001, "UP"),
    ]
    for name, index in AWS_DEVS.items():
        if name.startswith("aws"):
            peer = LinkRef(POD, 3) if index == 231 else None
            mac = gw.lladdr if index == 231 else f"0a:00:00:00:01:{index - 200:02x}"
            host_links.append(Link(ROOT, index, name, "veth", mac, 9001, "UP", peer=peer))
    host_routes = routes(AWS / "cni-proposal-host-ip-route-show.txt", ROOT, AWS_DEVS)
    host_routes += routes(
        AWS / "cni-proposal-host-ip-route-show-table-eni-1.txt", ROOT, AWS_DEVS, ENI_1
    )
    host_routes += [
        Route(ROOT, 4, 255, "local", "10.0.104.183/32", dev=2, scope="host"),
        Route(ROOT, 4, 255, "local", "127.0.0.0/8", dev=1, scope="host"),
    ]
    host_rules = rules(AWS / "cni-proposal-host-ip-rule-list.txt", ROOT, {"eni-1": ENI_1})
    host_rules += [Rule(ROOT, 4, 32766, "lookup", 254), Rule(ROOT, 4, 32767, "lookup", 253)]
    pod_links = (
        Link(
            POD,
            1,
            "lo",
            None,
            "00:00:00:00:00:00",
            65536,
            "UNKNOWN",
            addresses=(Address(4, "127.0.0.1", 8, "host"),),
        ),
        Link(
            POD,
            3,
            "eth0",
            "veth",
            pod_mac,
            1500,
            "UP",
            peer=LinkRef(ROOT, 231),
            addresses=pod_addrs,
        ),
    )
    pod_routes = routes(AWS / "cni-proposal-pod-ip-route-show.txt", POD, {"eth0": 3})
    pod_routes.append(Route(POD, 4, 255, "local", "10.0.97.30/32", dev=3, scope="host"))
    return Snapshot(
        schema_version=SCHEMA_VERSION,
        taken_at=0.0,
        node=NodeFacts("ip-10-0-104-183", "4.14", ip_forward=1),
        root_netns=ROOT,
        pods=(Pod("default", "app", "uid", "sb", 1, netns_inode=POD, ips=("10.0.97.30",)),),
        netns=(
            NetNamespace(
                ROOT, links=tuple(host_links), routes=tuple(host_routes), rules=tuple(host_rules)
            ),
            NetNamespace(POD, links=pod_links, routes=tuple(pod_routes), neighbours=(gw,)),
        ),
    )


def _host_route(dst: str) -> dict[str, JsonValue]:
    t = trace([_aws_node()], Probe("default/app", f"{dst}:443"))
    (branch,) = t.branches
    return next(h.data for h in branch.hops if h.kind == "route" and h.data["iif"])


def test_aws_dumps_parse_to_the_documented_shape() -> None:
    """The pod dumps give a /32 and the permanent 169.254.1.1; the host's rules are 0/512/1025/1536."""
    _mac, addrs = addresses(AWS / "cni-proposal-pod-ip-addr-show.txt", "eth0")
    assert [(a.address, a.prefixlen) for a in addrs if a.family == 4] == [("10.0.97.30", 32)]
    parsed = rules(AWS / "cni-proposal-host-ip-rule-list.txt", ROOT, {"eni-1": ENI_1})
    assert [(r.priority, r.invert, r.table) for r in parsed] == [
        (0, False, 255),
        (512, False, 254),
        (1025, True, 254),
        (1536, False, ENI_1),
    ]
    assert lines(AWS / "cni-proposal-host-ip-route-show.txt")[2].endswith("scope link")


def test_aws_pod_gateway_needs_no_arp() -> None:
    """The pod's 169.254.1.1 is a PERMANENT entry: the frame goes to the host veth, no request."""
    (branch,) = trace([_aws_node()], Probe("default/app", "10.0.97.159:80")).branches
    gw = next(h for h in branch.hops if h.kind == "neighbour")
    assert (gw.data["ip"], gw.data["state"], gw.data["lladdr"]) == (
        "169.254.1.1",
        ["PERMANENT"],
        "2a:09:74:cd:c4:62",
    )


def test_aws_pod_gateway_entry_for_a_host_veth_made_again_is_dropped() -> None:
    """The dump's PERMANENT 169.254.1.1 holds the host veth's MAC, and the frame is taken.
    Made again with another MAC, the host veth takes the frame for another host: ip_rcv
    drops it, and nothing resolves the entry again (the lab's aws-vpc test shows it with
    real traffic)."""
    node = _aws_node()
    root = next(ns for ns in node.netns if ns.inode == ROOT)
    links = tuple(
        replace(lk, mac="0a:00:00:00:02:31") if lk.ifindex == 231 else lk for lk in root.links
    )
    remade = replace(
        node, netns=tuple(replace(ns, links=links) if ns.inode == ROOT else ns for ns in node.netns)
    )
    probe = Probe("default/app", "10.0.97.159:80")
    (taken,) = trace([node], probe).branches
    assert not [h for h in taken.hops if h.kind == "drop"], taken.reason
    (branch,) = trace([remade], probe).branches
    assert branch.verdict == "dropped", branch.reason
    assert "has MAC 0a:00:00:00:02:31, and the frame is for 2a:09:74:cd:c4:62" in branch.reason
    assert "PERMANENT: nothing resolves it again" in branch.reason


def test_aws_to_the_pod_is_main_by_rule_512() -> None:
    """Toward the pod: rule 512 (`to 10.0.97.30 lookup main`) and main's /32 into its aws* veth."""
    t = trace([_aws_node()], Probe("node", "10.0.97.30:80"))
    route = t.branches[0].hops[0].data
    assert str(route["rule"]).startswith("512: from all to 10.0.97.30 lookup main")
    assert (route["table"], route["dev"]) == (254, "aws8db0408c9a8")


def test_aws_dump_without_the_other_pods_rule_512_sends_them_out_of_eth1() -> None:
    """The dump lists rule 512 for one pod only: to the others, the pod's rule 1536 wins (eni-1, eth1)."""
    d = _host_route("10.0.97.159")
    assert str(d["rule"]).startswith("1536:")
    assert (d["table"], d["dev"]) == (ENI_1, "eth1")


def test_aws_leaving_the_vpc_uses_main_by_rule_1025() -> None:
    """Outside 10.0.0.0/16 the inverted rule 1025 picks main: the primary ENI eth0."""
    d = _host_route("8.8.8.8")
    assert str(d["rule"]).startswith("1025: not from all to 10.0.0.0/16")
    assert (d["table"], d["dev"], d["gateway"]) == (254, "eth0", "10.0.96.1")


def test_aws_inside_the_vpc_uses_the_enis_table_by_rule_1536() -> None:
    """Inside the VPC the pod's own rule 1536 picks eni-1: out of eth1, the ENI it belongs to."""
    d = _host_route("10.0.50.5")
    assert str(d["rule"]).startswith("1536: from 10.0.97.30 lookup 2")
    assert (d["table"], d["dev"], d["gateway"]) == (ENI_1, "eth1", "10.0.96.1")


CROOT, CPOD = 4026532200, 4026532201
CDEVS = {"eth0": 2, "eth2": 3, "cilium_host": 5, "cilium_net": 4, "lxc5a4def8d96c5": 40}


def _cilium_node() -> Snapshot:
    tc = tc_filters(CILIUM / "cilium-docs-tc-filter-show-cilium-host-egress.txt", 5, "egress")
    links = (
        Link(CROOT, 1, "lo", None, "00:00:00:00:00:00", 65536, "UNKNOWN"),
        Link(
            CROOT,
            2,
            "eth0",
            None,
            "0a:00:00:00:00:02",
            9001,
            "UP",
            addresses=(Address(4, "192.168.10.10", 16),),
        ),
        Link(CROOT, 3, "eth2", None, "0a:00:00:00:00:03", 9001, "UP"),
        Link(
            CROOT,
            4,
            "cilium_net",
            "veth",
            "86:56:9f:8b:8b:3c",
            9001,
            "UP",
            ("NOARP", "UP"),
            peer=LinkRef(CROOT, 5),
        ),
        Link(
            CROOT,
            5,
            "cilium_host",
            "veth",
            "ee:33:1a:5c:1d:6c",
            9001,
            "UP",
            ("NOARP", "UP"),
            peer=LinkRef(CROOT, 4),
            addresses=(Address(4, "192.168.174.161", 32, "link"),),
        ),
        Link(
            CROOT,
            40,
            "lxc5a4def8d96c5",
            "veth",
            "0a:00:00:00:00:28",
            9001,
            "UP",
            peer=LinkRef(CPOD, 2),
        ),
    )
    node_routes = routes(CILIUM / "cilium-docs-eni-route-to-lxc.txt", CROOT, CDEVS)
    node_routes += routes(CILIUM / "cilium-docs-eni-table-92.txt", CROOT, CDEVS, 92)
    # Modelled: the node's own subnet, and a CIDR routed to cilium_host (tunnel/host routing).
    node_routes += [
        Route(CROOT, 4, 254, "unicast", "192.168.0.0/16", dev=2, scope="link"),
        Route(CROOT, 4, 254, "unicast", "10.60.1.0/24", gateway="192.168.174.161", dev=5),
    ]
    node_rules = rules(CILIUM / "cilium-docs-eni-ip-rule-to-endpoint.txt", CROOT, {})
    node_rules += rules(CILIUM / "cilium-docs-eni-ip-rule-from-endpoint.txt", CROOT, {})
    node_rules += [Rule(CROOT, 4, 0, "lookup", 255), Rule(CROOT, 4, 32766, "lookup", 254)]
    pod = NetNamespace(
        CPOD,
        links=(
            Link(
                CPOD,
                2,
                "eth0",
                "veth",
                "0a:00:00:00:01:02",
                9001,
                "UP",
                peer=LinkRef(CROOT, 40),
                addresses=(Address(4, "192.168.105.44", 32),),
            ),
        ),
        routes=(
            Route(
                CPOD,
                4,
                254,
                "unicast",
                "0.0.0.0/0",
                gateway="192.168.174.161",
                dev=2,
                flags=("onlink",),
            ),
        ),
    )
    return Snapshot(
        schema_version=SCHEMA_VERSION,
        taken_at=0.0,
        node=NodeFacts("ip-192-168-10-10", "6.1", ip_forward=1),
        root_netns=CROOT,
        pods=(Pod("default", "ep", "u", "s", 1, netns_inode=CPOD, ips=("192.168.105.44",)),),
        netns=(
            NetNamespace(
                CROOT,
                links=links,
                routes=tuple(node_routes),
                rules=tuple(node_rules),
                tc_filters=tuple(tc),
            ),
            pod,
        ),
    )


def test_cilium_tc_dump_parses_to_the_program_tc_shows() -> None:
    """The real `tc filter show dev cilium_host egress` gives bpf_host.o:[from-netdev], id 406."""
    (f,) = tc_filters(CILIUM / "cilium-docs-tc-filter-show-cilium-host-egress.txt", 5, "egress")
    assert (f.kind, f.pref, f.direct_action) == ("bpf", 1, True)
    assert f.program is not None
    assert (f.program.id, f.program.tag, f.program.section) == (
        406,
        "e0362f5bd9163a0a",
        "bpf_host.o:[from-netdev]",
    )


def test_cilium_eni_node_is_detected_as_cilium_without_kube_proxy() -> None:
    """cilium_host/cilium_net and a bpf_host program; no KUBE-* rules: kube-proxy replacement."""
    plane = detect(SnapshotIndex(_cilium_node()))
    assert (plane.cni, plane.ebpf, plane.kube_proxy_rules) == ("cilium", True, False)


def test_cilium_eni_endpoint_egress_uses_rule_30_and_table_92() -> None:
    """From the endpoint into the VPC: rule 30 (from the endpoint to 192.168.0.0/16) -> table 92 -> eth2."""
    (branch,) = trace([_cilium_node()], Probe("default/ep", "192.168.50.5:80")).branches
    host = next(h.data for h in branch.hops if h.kind == "route" and h.data["iif"])
    assert str(host["rule"]).startswith("30: from 192.168.105.44 to 192.168.0.0/16 lookup 92")
    assert (host["table"], host["dev"], host["gateway"]) == (92, "eth2", "192.168.0.1")


def test_cilium_eni_to_endpoint_uses_rule_20_and_the_lxc_route() -> None:
    """Toward the endpoint: rule 20 sends it to main, whose /32 leads into lxc5a4def8d96c5."""
    t = trace([_cilium_node()], Probe("node", "192.168.105.44:80"))
    route = t.branches[0].hops[0].data
    assert str(route["rule"]).startswith("20: from all to 192.168.105.44 lookup main")
    assert route["dev"] == "lxc5a4def8d96c5"


def test_cilium_host_egress_program_decides_and_is_named() -> None:
    """A packet routed out of cilium_host meets bpf_host.o's program there: the trace names it and stops."""
    (branch,) = trace([_cilium_node()], Probe("node", "10.60.1.9:80")).branches
    assert branch.verdict == "uncertain"
    hop = branch.hops[-1]
    assert (hop.kind, hop.data["dev"], hop.data["hook"]) == ("ebpf", "cilium_host", "tc egress")
    assert (hop.data["program_id"], hop.data["program_tag"], hop.data["section"]) == (
        406,
        "e0362f5bd9163a0a",
        "bpf_host.o:[from-netdev]",
    )
