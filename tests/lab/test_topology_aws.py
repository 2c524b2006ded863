"""An AWS VPC CNI-shaped lab (2 nodes, two ENIs each, policy routing): the trace against the kernel.

Pods on the secondary ENI leave by its table (rule 1536) and pods on the primary by
main; rule 512 brings traffic for a pod to main. The VPC between the nodes is not in
any snapshot: a trace that leaves toward its router continues, as an assumption it
states, on the node that owns the destination -- and real traffic must land there.
Traffic leaving the VPC is SNATed to the node's primary address, as the real
conntrack entry shows.

kube-proxy runs with EKS's configuration (no cluster CIDR): a pod's traffic to a
ClusterIP keeps its address, in iptables and nftables mode (`labnft`) and in IPv6,
as the trace says and the real conntrack entries show.

The `test_ipv6_*` tests prove the VPC CNI's IPv6 mode on a lab of its own (`lab6`):
pods on the primary ENI's /80 prefix behind fe80::1 (a PERMANENT neighbour), rules 512
and 1024 in `ip -6 rule`, no IPv6 SNAT, and IPv4 egress by egress-cni's v4if0 SNATed
to the node's IPv4.
"""

from __future__ import annotations

import ipaddress
import json
from typing import TYPE_CHECKING

import pytest
from topology_proof import (
    assert_pod_to_pod,
    assert_routes_equal_kernel,
    assert_service,
    family_ip,
    hostport,
    ordered,
    service,
    topology_fixtures,
    web_pods,
)

from podpath.analysis.dataplane import detect
from podpath.analysis.index import SnapshotIndex
from podpath.conntrack import parse_conntrack
from podpath.doctor import diagnose
from podpath.lab.cni_plugin import egress_chain, secondary_eni
from podpath.lab.network import UNDERLAY_GATEWAY6
from podpath.listing import rules as rules_listing
from podpath.table import render_text
from podpath.trace.engine import trace
from podpath.trace.probe import Probe

if TYPE_CHECKING:
    from podpath.lab import Lab, PodRecord
    from podpath.trace.model import Branch

pytestmark = pytest.mark.lab


# 2 AWS-style nodes, 3 pods each (addresses alternate between the two ENIs).
lab, indexes = topology_fixtures(
    "aws", nodes=2, pods=3, services=3, cni="aws-vpc", runtime="containerd"
)


def test_doctor_says_once_per_eni_that_the_vpc_is_not_judged(
    lab: Lab, indexes: dict[str, SnapshotIndex]
) -> None:
    """The doctor over both nodes: the paths crossing the VPC (no snapshot holds its
    router) are one info finding per direction and receiving ENI (eth0, eth1: the node's
    route back to the source picks it), not one per pair of addresses; nothing is
    critical or a warning on this healthy lab."""
    report = diagnose(ordered(indexes))
    assert not [f for f in report.findings if f.grade in ("critical", "warning")], [
        (f.check, f.subject) for f in report.findings
    ]
    judged = [f for f in report.findings if f.check == "cannot-judge"]
    subjects = sorted(f.subject for f in judged)
    possible = {
        f"the network from node {a} to {eni} of node {b}"
        for a, b in (("node1", "node2"), ("node2", "node1"))
        for eni in ("eth0", "eth1")
    }
    assert set(subjects) <= possible and len(subjects) == len(set(subjects)), subjects
    senders = {s.split()[4] for s in subjects}
    assert senders == {"node1", "node2"}, subjects
    assert all(f.affected >= 1 and f.paths for f in judged)


def _on(lab: Lab, node: str, secondary: bool) -> PodRecord:
    """A pod of the node on the secondary ENI (odd address) or the primary one (pods are
    made in parallel, so which pod got which address differs between runs)."""
    return next(p for p in lab.pods_on(node) if secondary_eni(p.ip) == secondary)


def test_rules_and_static_neighbours_equal_the_kernel(
    lab: Lab, indexes: dict[str, SnapshotIndex]
) -> None:
    """Rules 512/1025/1536 equal `ip -j rule`; each pod holds 169.254.1.1 PERMANENT; detected as AWS."""
    index = indexes["node1"]
    root = index.root_netns
    assert root is not None
    kernel = json.loads(lab.exec("node1", ["ip", "-j", "rule"]).stdout)

    def side(addr: str, length: object) -> str:
        return addr if addr == "all" or length in (None, 32) else f"{addr}/{length}"

    want = sorted(
        (
            r["priority"],
            "not" in r,
            side(r.get("src", "all"), r.get("srclen")),
            side(r.get("dst", "all"), r.get("dstlen")),
        )
        for r in kernel
    )
    got = sorted(
        (
            r.priority,
            r.invert,
            (r.src or "all").removesuffix("/32"),
            (r.dst or "all").removesuffix("/32"),
        )
        for r in root.rules
        if r.family == 4
    )
    assert got == want
    prios = {r.priority for r in root.rules}
    assert {512, 1025, 1536} <= prios
    for pod in lab.pods_on("node1"):
        ns = index.netns_by_inode[index.pods_by_name[pod.ref].netns_inode or 0]
        (gw,) = [n for n in ns.neighbours if n.dst == "169.254.1.1"]
        assert gw.state == ("PERMANENT",)
    assert detect(index).cni == "aws-vpc-cni"


def test_ls_rules_says_what_ip_rule_says(lab: Lab, indexes: dict[str, SnapshotIndex]) -> None:
    """`ls rules` of the root netns, line for line, is `ip rule show` (with `not`, host prefixes)."""
    index = indexes["node1"]
    root = index.root_netns
    assert root is not None
    kernel = lab.exec("node1", ["ip", "rule", "show"]).stdout.splitlines()
    listing = rules_listing(index)
    got = [
        f"{row['priority']}:\t{row['text']}"
        for row in listing.rows
        if row["netns"] == root.inode and row["family"] == 4
    ]
    assert got == [line.rstrip() for line in kernel]
    text = render_text(listing)
    assert any(" 1025 not from all to " in line for line in text.splitlines())


def test_host_veths_carry_the_vpc_cnis_ipv6_sysctls_in_ipv4_mode(
    lab: Lab, indexes: dict[str, SnapshotIndex]
) -> None:
    """IPv4 mode, as setupVeth does in either: each eni veth's /proc/sys/net/ipv6/conf says
    accept_ra 0, accept_redirects 1, forwarding 0 (a new interface takes conf/default's,
    whose accept_ra is 1), and the snapshot's IPv6 netconf of the veth says forwarding 0."""
    root = indexes["node1"].root_netns
    assert root is not None
    default = lab.exec("node1", ["cat", "/proc/sys/net/ipv6/conf/default/accept_ra"]).stdout
    assert default.strip() != "0"
    names = ("accept_ra", "accept_redirects", "forwarding")
    for pod in lab.pods_on("node1"):
        paths = [f"/proc/sys/net/ipv6/conf/{pod.host_veth}/{name}" for name in names]
        values = lab.exec("node1", ["cat", *paths]).stdout.split()
        assert values == ["0", "1", "0"], (pod.host_veth, values)
        veth = indexes["node1"].link_by_name(root.inode, pod.host_veth)
        assert veth is not None
        (conf,) = [c for c in root.netconf if c.family == 6 and c.ifindex == veth.ifindex]
        assert conf.forwarding == 0


@pytest.mark.parametrize("secondary", [False, True])
def test_pod_to_pod_on_the_node(
    lab: Lab, indexes: dict[str, SnapshotIndex], secondary: bool
) -> None:
    """Same node: rule 512 sends the packet to the other pod's eni veth; no ARP for 169.254.1.1."""
    src = _on(lab, "node1", secondary)
    dst = next(p for p in web_pods(lab, "node1") if p.ref != src.ref)
    branch = assert_pod_to_pod(lab, indexes, src, dst, 4)
    rules = [h.data["rule"] for h in branch.hops if h.kind == "route"]
    assert any(str(r).startswith("512:") for r in rules), rules
    gw = next(h for h in branch.hops if h.kind == "neighbour")
    assert gw.data["state"] == ["PERMANENT"]


@pytest.mark.parametrize("secondary", [False, True])
def test_pod_to_pod_across_the_vpc(
    lab: Lab, indexes: dict[str, SnapshotIndex], secondary: bool
) -> None:
    """Across nodes: the secondary ENI's pods leave by table 2, the primary's by main; the trace
    continues on the owner node as a stated assumption, and real traffic lands there."""
    src = _on(lab, "node1", secondary)
    dst = web_pods(lab, "node2")[0]
    branch = assert_pod_to_pod(lab, indexes, src, dst, 4)
    assert branch.verdict == "uncertain" and branch.outcome == "delivered"
    assert any("not in the snapshots" in u for u in branch.uncertain)
    first_host = next(h for h in branch.hops if h.kind == "route" and h.data["iif"])
    assert first_host.data["table"] == (2 if secondary else 254), first_host.text


def test_service_and_back(lab: Lab, indexes: dict[str, SnapshotIndex]) -> None:
    """pod -> web Service: endpoints on both nodes, real traffic, conntrack's reply tuple."""
    assert_service(lab, indexes, _on(lab, "node1", False), 4)


def _masquerade_hops(branch: Branch) -> list[str]:
    """The hops that mark for masquerade (iptables or nftables) or masquerade."""
    marks = ("-> KUBE-MARK-MASQ", "jump mark-for-masquerade")
    return [
        h.text
        for h in branch.hops
        if any(m in h.text for m in marks) or (h.kind == "nat" and "masquerade" in h.text.lower())
    ]


def assert_service_keeps_the_pod_address(
    lab: Lab, indexes: dict[str, SnapshotIndex], src: PodRecord, family: int
) -> None:
    """pod -> web's ClusterIP under EKS's kube-proxy (no cluster CIDR, so no `! -s CIDR`
    masquerade): each branch to another pod is DNAT only, with the pod's own source; only
    the branch back to the pod itself is masqueraded (kube-proxy's hairpin rule). Real
    traffic to every endpoint; each conntrack entry to another pod has the pod's own address
    as its reply destination (no SNAT)."""
    assert_service(lab, indexes, src, family)
    web = service(lab, "default/web", family)
    src_ip = family_ip(src, family)
    result = trace(ordered(indexes), Probe(src.ref, hostport(web.cluster_ip, web.port)))
    hairpins = [b for b in result.branches if b.packet.dst == src_ip]
    assert len(hairpins) == 1, [b.packet.dst for b in result.branches]
    assert _masquerade_hops(hairpins[0]) and hairpins[0].packet.src != src_ip
    for branch in result.branches:
        if branch is not hairpins[0]:
            assert not _masquerade_hops(branch), _masquerade_hops(branch)
            assert branch.packet.src == src_ip, branch.packet
    argv = ["conntrack", "-L", "-f", "ipv6" if family == 6 else "ipv4", "-p", "tcp"]
    done = lab.exec(src.node, [*argv, "--orig-src", src_ip, "--orig-dst", web.cluster_ip])
    others = [e for e in parse_conntrack(done.stdout) if e.reply.src != src_ip]
    assert others, done.stdout
    assert {e.reply.dst for e in others} == {src_ip}


def test_service_keeps_the_pod_address(lab: Lab, indexes: dict[str, SnapshotIndex]) -> None:
    """IPv4, iptables mode: pod -> Service is not masqueraded (EKS's kube-proxy)."""
    assert_service_keeps_the_pod_address(lab, indexes, web_pods(lab, "node1")[0], 4)


def test_leaving_the_vpc_is_snatted_to_the_primary_address(
    lab: Lab, indexes: dict[str, SnapshotIndex]
) -> None:
    """To an address outside the VPC: rule 1025 -> main -> eth0, AWS-SNAT-CHAIN SNATs to the node."""
    src = _on(lab, "node1", True)
    result = trace(ordered(indexes), Probe(src.ref, "198.51.100.7:80"))
    (branch,) = result.branches
    assert branch.verdict == "leaves-node", branch.reason
    node_ip = lab.node("node1").address
    assert branch.packet.src == node_ip
    assert any(h.kind == "nat" and "SNAT" in h.text for h in branch.hops)
    host = next(h for h in branch.hops if h.kind == "route" and h.data["iif"])
    assert str(host.data["rule"]).startswith("1025:") and host.data["dev"] == "eth0"
    assert assert_routes_equal_kernel(lab, indexes, result.branches) >= 2
    lab.probe(
        src.ref, "198.51.100.7", 80, wait=1
    )  # fails (nothing leaves the lab); conntrack remembers
    done = lab.exec(
        "node1",
        ["conntrack", "-L", "-p", "tcp", "--orig-src", src.ip, "--orig-dst", "198.51.100.7"],
        check=False,
    )
    entries = parse_conntrack(done.stdout)
    assert entries, done.stderr
    assert {e.reply.dst for e in entries} == {node_ip}


# The VPC CNI's IPv6 mode: 2 nodes, 3 pods each, every address of the primary ENI's prefix.
lab6, indexes6 = topology_fixtures(
    "aws6",
    names=("lab6", "indexes6"),
    nodes=2,
    pods=3,
    services=3,
    cni="aws-vpc",
    ip_family="ipv6",
    runtime="containerd",
)
GATEWAY6 = "fe80::1"
EGRESS_SUBNET = ipaddress.ip_network("169.254.172.0/22")
TABLES = {253: "default", 254: "main", 255: "local"}


def _in_pod(pod: PodRecord, *argv: str) -> list[str]:
    return ["nsenter", f"--net={pod.netns_path}", "--", *argv]


def _egress_address(lab: Lab, pod: PodRecord) -> str:
    """The pod's IPv4 egress address: what the kernel holds on its v4if0."""
    out = lab.exec(pod.node, _in_pod(pod, "ip", "-j", "-4", "addr", "show", "dev", "v4if0"))
    (link,) = json.loads(out.stdout)
    (addr,) = link["addr_info"]
    return str(addr["local"])


def test_ipv6_rules_neighbours_and_pod_ips_equal_the_kernel(
    lab6: Lab, indexes6: dict[str, SnapshotIndex]
) -> None:
    """node1's IPv6 rules equal `ip -j -6 rule`: 512 `to POD/128 lookup main` per pod and 1024
    `fwmark 0x80/0x80 lookup main`, no 1536 (one ENI) and no 1025 or 1536 in IPv4 either;
    each pod's fe80::1 is PERMANENT with its eni veth's MAC, as `ip -j -6 neigh` says; a
    pod's IP is its /128 alone (CRI's), not v4if0's egress address."""
    index = indexes6["node1"]
    root = index.root_netns
    assert root is not None
    kernel = json.loads(lab6.exec("node1", ["ip", "-j", "-6", "rule"]).stdout)

    def side(addr: str, length: object) -> str:
        return addr if addr == "all" or length in (None, 128) else f"{addr}/{length}"

    want = sorted(
        (
            r["priority"],
            side(r.get("src", "all"), r.get("srclen")),
            side(r.get("dst", "all"), r.get("dstlen")),
            r.get("fwmark"),
            r.get("fwmask"),
            r["table"],
        )
        for r in kernel
    )
    got = sorted(
        (
            r.priority,
            (r.src or "all").removesuffix("/128"),
            (r.dst or "all").removesuffix("/128"),
            None if r.fwmark is None else hex(r.fwmark),
            None if r.fwmask is None else hex(r.fwmask),
            TABLES.get(r.table or 0, str(r.table)),
        )
        for r in root.rules
        if r.family == 6
    )
    assert got == want
    pods = lab6.pods_on("node1")
    records = {n.name: n for n in lab6.record.nodes}
    for p in lab6.pods:  # every pod address is of its node's /80 prefix
        prefix = ipaddress.ip_network(str(records[p.node].pod_cidr6))
        assert prefix.prefixlen == 80 and ipaddress.ip_address(p.ip) in prefix, (p.ip, prefix)
    to_pods = {r.dst for r in root.rules if r.family == 6 and r.priority == 512}
    assert to_pods == {f"{p.ip}/128" for p in pods}
    assert 1024 in {r.priority for r in root.rules if r.family == 6}
    assert {r.priority for r in root.rules} & {1025, 1536} == set()
    for pod in pods:
        snap = index.pods_by_name[pod.ref]
        assert snap.ips == (pod.ip,), snap.ips
        assert _egress_address(lab6, pod) not in index.pods_by_ip
        ns = index.netns_by_inode[snap.netns_inode or 0]
        (gw,) = [n for n in ns.neighbours if n.dst == GATEWAY6]
        argv = _in_pod(pod, "ip", "-j", "-6", "neigh", "show", GATEWAY6, "dev", "eth0")
        (real,) = json.loads(lab6.exec("node1", argv).stdout)
        host = index.link_by_name(root.inode, pod.host_veth)
        assert host is not None
        assert (gw.lladdr, gw.state) == (real["lladdr"], tuple(real["state"]))
        assert (gw.lladdr, gw.state) == (host.mac, ("PERMANENT",))
    assert detect(index).cni == "aws-vpc-cni"


def _kernel_routes(
    lab: Lab, pod: PodRecord | None, node: str, family: int
) -> set[tuple[object, ...]]:
    """`ip -j -N route show table main` in the pod's (or the node's) namespace, normalised."""
    argv = ["ip", "-j", f"-{family}", "route", "show", "table", "main"]
    out = lab.exec(node, _in_pod(pod, *argv) if pod else argv).stdout
    full = 32 if family == 4 else 128
    got: set[tuple[object, ...]] = set()
    for r in json.loads(out):
        dst = str(r["dst"])
        dst = ("0.0.0.0/0" if family == 4 else "::/0") if dst == "default" else dst
        dst = dst if "/" in dst else f"{dst}/{full}"
        scope = r.get("scope", "global") if family == 4 else "global"
        row = (r.get("type", "unicast"), dst, r.get("gateway"), r["dev"], r.get("prefsrc"))
        got.add((*row, scope, r.get("metric")))
    return got


def _snapshot_routes(index: SnapshotIndex, inode: int, family: int) -> set[tuple[object, ...]]:
    ns = index.netns_by_inode[inode]
    names = {lk.ifindex: lk.name for lk in ns.links}
    return {
        (r.type, r.dst, r.gateway, names.get(r.dev or 0), r.prefsrc, r.scope, r.metric)
        for r in ns.routes
        if r.family == family and r.table == 254
    }


def test_ipv6_routes_and_host_veth_sysctls_equal_the_kernel(
    lab6: Lab, indexes6: dict[str, SnapshotIndex]
) -> None:
    """Each pod's main routes of both families (eth0: /128, fe80::1, default via fe80::1;
    v4if0: default via 169.254.172.1, the /22 via it, 169.254.172.1 scope link) and node1's
    IPv6 main routes (POD/128 dev eniXXX) equal `ip -j route`; each eni veth's IPv6
    forwarding is 0 (the VPC CNI's setupVeth) as its sysctl says, and pods still pass
    traffic because IPv6 forwards by conf/all."""
    index = indexes6["node1"]
    root = index.root_netns
    assert root is not None
    for pod in lab6.pods_on("node1"):
        inode = index.pods_by_name[pod.ref].netns_inode or 0
        for family in (4, 6):
            want = _kernel_routes(lab6, pod, "node1", family)
            assert _snapshot_routes(index, inode, family) == want, (pod.ref, family)
        six = _snapshot_routes(index, inode, 6)
        assert ("unicast", "::/0", GATEWAY6, "eth0", None, "global", 1024) in six
        four = _snapshot_routes(index, inode, 4)
        assert ("unicast", "0.0.0.0/0", "169.254.172.1", "v4if0", None, "global", None) in four
        veth = index.link_by_name(root.inode, pod.host_veth)
        assert veth is not None
        (conf,) = [c for c in root.netconf if c.family == 6 and c.ifindex == veth.ifindex]
        argv = ["sysctl", "-n", f"net.ipv6.conf.{pod.host_veth}.forwarding"]
        assert conf.forwarding == int(lab6.exec("node1", argv).stdout) == 0
    want = _kernel_routes(lab6, None, "node1", 6)
    assert _snapshot_routes(index, root.inode, 6) == want
    pod_routes = {(r[1], r[3]) for r in want}
    assert {(f"{p.ip}/128", p.host_veth) for p in lab6.pods_on("node1")} <= pod_routes


def test_ipv6_ls_rules_says_what_ip_rule_says(
    lab6: Lab, indexes6: dict[str, SnapshotIndex]
) -> None:
    """`ls rules` of node1's IPv6 rules, line for line, is `ip -6 rule show`."""
    index = indexes6["node1"]
    root = index.root_netns
    assert root is not None
    kernel = lab6.exec("node1", ["ip", "-6", "rule", "show"]).stdout.splitlines()
    got = [
        f"{row['priority']}:\t{row['text']}"
        for row in rules_listing(index).rows
        if row["netns"] == root.inode and row["family"] == 6
    ]
    assert got == [line.rstrip() for line in kernel]


@pytest.mark.parametrize("node", ["node1", "node2"])
def test_ipv6_pod_to_pod(lab6: Lab, indexes6: dict[str, SnapshotIndex], node: str) -> None:
    """Via fe80::1 (no NDP: PERMANENT) to the node; on the node rule 512 finds the other pod's
    eni veth; across nodes main's subnet route leaves by eth0 (the VPC answers NDP for the
    address) and the trace continues on the owner node as a stated assumption."""
    src = web_pods(lab6, "node1")[0]
    dst = web_pods(lab6, node)[-1]
    branch = assert_pod_to_pod(lab6, indexes6, src, dst, 6)
    gw = next(h for h in branch.hops if h.kind == "neighbour")
    assert gw.data["state"] == ["PERMANENT"], gw.text
    first_host = next(h for h in branch.hops if h.kind == "route" and h.data["iif"])
    assert first_host.data["table"] == 254, first_host.text
    if node == "node1":
        assert str(first_host.data["rule"]).startswith("512:"), first_host.text
        assert first_host.data["dev"] == dst.host_veth
    else:
        assert first_host.data["dev"] == "eth0", first_host.text
        assert branch.verdict == "uncertain" and branch.outcome == "delivered"
        assert any("not in the snapshots" in u for u in branch.uncertain)


def test_ipv6_service_and_back(lab6: Lab, indexes6: dict[str, SnapshotIndex]) -> None:
    """pod -> the IPv6 web Service: endpoints on both nodes, real traffic, conntrack's reply."""
    assert_service(lab6, indexes6, web_pods(lab6, "node1")[0], 6)


def test_ipv6_service_keeps_the_pod_address(lab6: Lab, indexes6: dict[str, SnapshotIndex]) -> None:
    """IPv6, ip6tables: pod -> Service is not masqueraded (EKS's kube-proxy)."""
    assert_service_keeps_the_pod_address(lab6, indexes6, web_pods(lab6, "node1")[0], 6)


def test_ipv6_leaving_the_vpc_keeps_the_pod_address(
    lab6: Lab, indexes6: dict[str, SnapshotIndex]
) -> None:
    """IPv6 mode has no SNAT: to an address outside the VPC the packet leaves eth0 toward the
    VPC router with the pod's own address, as the real conntrack entry shows (no reply NAT)."""
    src = web_pods(lab6, "node1")[0]
    far = "2001:db8::7"
    result = trace(ordered(indexes6), Probe(src.ref, f"[{far}]:80"))
    (branch,) = result.branches
    assert branch.verdict == "leaves-node", branch.reason
    assert branch.packet.src == src.ip
    assert not any(h.kind == "nat" for h in branch.hops)
    host = next(h for h in branch.hops if h.kind == "route" and h.data["iif"])
    assert (host.data["dev"], host.data["gateway"]) == ("eth0", UNDERLAY_GATEWAY6), host.text
    assert assert_routes_equal_kernel(lab6, indexes6, result.branches) >= 2
    lab6.probe(src.ref, far, 80, wait=1)  # fails (nothing leaves the lab); conntrack remembers
    argv = ["conntrack", "-L", "-f", "ipv6", "-p", "tcp", "--orig-src", src.ip]
    done = lab6.exec("node1", [*argv, "--orig-dst", far], check=False)
    entries = parse_conntrack(done.stdout)
    assert entries, done.stderr
    assert {e.reply.dst for e in entries} == {src.ip}


def test_ipv6_pods_reach_ipv4_by_egress_cni_snatted_to_the_node(
    lab6: Lab, indexes6: dict[str, SnapshotIndex]
) -> None:
    """IPv4 from an IPv6 pod: default via 169.254.172.1 dev v4if0 from its egress address;
    the node SNATs it in the pod's CNI-E4 chain to its IPv4, as the trace says, the kernel
    routes and the real conntrack entry's reply tuple shows."""
    src = web_pods(lab6, "node1")[0]
    egress = _egress_address(lab6, src)
    assert ipaddress.ip_address(egress) in EGRESS_SUBNET
    result = trace(ordered(indexes6), Probe(src.ref, "198.51.100.7:80"))
    (branch,) = result.branches
    assert branch.verdict == "leaves-node", branch.reason
    first = branch.hops[0]
    assert (first.kind, first.data["dev"], first.data["gateway"]) == (
        "route",
        "v4if0",
        "169.254.172.1",
    ), first.text
    assert first.data.get("chosen_src") == egress, first.text
    node_ip = lab6.node("node1").address
    assert branch.packet.src == node_ip
    chain = egress_chain("aws-cni", src.sandbox_id)
    jumps = [h for h in branch.hops if h.kind == "netfilter" and chain in h.text]
    assert jumps, chain
    for hop in jumps:  # egress-cni's, not the bridge plugin's ipMasq (same comment form)
        owner = hop.data["owner"]
        assert isinstance(owner, dict), hop.data
        assert (owner["agent"], owner["name"]) == ("AWS VPC CNI egress-cni (SNAT)", "aws-cni")
    assert any(h.kind == "nat" and "SNAT" in h.text for h in branch.hops)
    assert assert_routes_equal_kernel(lab6, indexes6, result.branches) >= 2
    lab6.probe(
        src.ref, "198.51.100.7", 80, wait=1
    )  # fails (nothing leaves the lab); conntrack remembers
    argv = ["conntrack", "-L", "-f", "ipv4", "-p", "tcp", "--orig-src", egress]
    done = lab6.exec("node1", [*argv, "--orig-dst", "198.51.100.7"], check=False)
    entries = parse_conntrack(done.stdout)
    assert entries, done.stderr
    assert {e.reply.dst for e in entries} == {node_ip}


def test_ipv6_egress_addresses_are_node_local(
    lab6: Lab, indexes6: dict[str, SnapshotIndex]
) -> None:
    """Another pod's egress address: FORWARD rejects new connections to 169.254.172.0/22 (the
    trace's drop, nc's "Connection refused"); the node itself (OUTPUT) reaches it."""
    src, dst = web_pods(lab6, "node1")[:2]
    target = _egress_address(lab6, dst)
    result = trace(ordered(indexes6), Probe(src.ref, f"{target}:80"))
    (branch,) = result.branches
    assert branch.verdict == "dropped", branch.reason
    assert "Block Node Local Pod access via IPv4" in branch.reason
    assert branch.reason.endswith("(AWS VPC CNI))"), branch.reason
    assert assert_routes_equal_kernel(lab6, indexes6, result.branches) >= 2
    answer = lab6.probe(src.ref, target, 80)
    assert not answer.ok and "refused" in answer.error, answer
    result = trace(ordered(indexes6), Probe("node1", f"{target}:80"))
    (branch,) = result.branches
    assert (branch.outcome or branch.verdict) == "delivered", branch.reason
    assert (branch.hops[-1].kind, branch.hops[-1].data["pod"]) == ("deliver", dst.ref)
    assert assert_routes_equal_kernel(lab6, indexes6, result.branches) >= 2
    answer = lab6.probe("node1", target, 80)
    assert answer.ok and answer.served_by == dst.ref, answer


# kube-proxy's nftables mode on the VPC CNI (IPv4; IPv6 takes the same rules, see
# tests/lab/test_kubeproxy_eks.py).
labnft, indexesnft = topology_fixtures(
    "awsnft",
    names=("labnft", "indexesnft"),
    nodes=2,
    pods=3,
    services=3,
    cni="aws-vpc",
    proxy_mode="nftables",
    runtime="containerd",
)


def test_nftables_service_keeps_the_pod_address(
    labnft: Lab, indexesnft: dict[str, SnapshotIndex]
) -> None:
    """IPv4, nftables mode: no `ip saddr != CIDR jump mark-for-masquerade` in the kernel's
    table, and pod -> Service is not masqueraded."""
    table = labnft.exec("node1", ["nft", "list", "table", "ip", "kube-proxy"]).stdout
    assert "saddr != " not in table and "short-circuit pod traffic" not in table
    src = web_pods(labnft, "node1")[0]
    assert_service_keeps_the_pod_address(labnft, indexesnft, src, 4)
