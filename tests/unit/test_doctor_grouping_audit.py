"""Audit of the doctor's grouping: cases where one traced path stands for another that the
kernel treats differently (the pod classes, the Service port shapes, the endpoints
followed once, the pod-to-pod targets). Each test first traces the single path directly
(the engine gets it right) and then asks diagnose() for the finding the kernel's
behaviour calls for."""

from __future__ import annotations

from dataclasses import replace

import pytest
from routed_factory import RoutedNode, RoutedPod
from routed_factory import build as routed
from routed_factory import root_inode as routed_root
from trace_factory import NodeSpec, PodSpec, build_node, ipvs_mode, root_inode, with_root

from podpath.analysis.index import SnapshotIndex
from podpath.doctor import diagnose
from podpath.doctor.classes import pod_classes
from podpath.doctor.findings import Report
from podpath.doctor.named import named_in_rules
from podpath.doctor.tracer import Origin, Tracer
from podpath.lab.kubeproxy import restore_input
from podpath.lab.plan import _service
from podpath.lab.records import ServiceRecord
from podpath.snapshot.model import IpsetDump, Route, Rule, Snapshot

PODS = [PodSpec(f"web-{i}", f"10.244.0.{i + 2}") for i in range(6)]
ROOT = root_inode(0)
# The main and local tables' own rules, for tests that add one of their own.
BASE_RULES = (Rule(ROOT, 4, 0, "lookup", 255), Rule(ROOT, 4, 32766, "lookup", 254))
BLACKHOLE_100 = (Route(ROOT, 4, 100, "blackhole", "0.0.0.0/0"),)


def _verdicts(
    index: SnapshotIndex, source: str, dst: str, port: int | None, proto: str = "tcp"
) -> list[tuple[str | None, str]]:
    """(destination, verdict) of each branch of one path traced on its own."""
    tracer = Tracer([index])
    if source == "node":
        origin = Origin("node", 0, index.snapshot.node.hostname)
    else:
        pod = next(p for p in index.snapshot.pods if p.name == source)
        origin = Origin("pod", 0, f"default/{source}", pod)
    return sorted(
        (b.packet.dst, b.verdict) for b in tracer.trace(origin, dst, port, proto).branches
    )


def _paths(report: Report, check: str, evidence: str = "") -> set[tuple[str, str]]:
    """(source, destination) of the paths findings of a check (with this evidence) decide."""
    return {
        (p.source, p.destination)
        for f in report.findings
        if f.check == check and (not evidence or any(evidence in e for e in f.evidence))
        for p in f.paths
    }


def _two_ports() -> tuple[str, str]:
    """web:80 and alt:81, each to web-1 and web-2 on its own port: one shape unless a rule
    names a port."""
    web = _service("default", "web", "http", "TCP", "10.96.0.100", 80, None,
                   tuple((p.ip, 80) for p in PODS[1:3]))  # fmt: skip
    alt = _service("default", "alt", "http", "TCP", "10.96.0.101", 81, None,
                   tuple((p.ip, 81) for p in PODS[1:3]))  # fmt: skip
    return restore_input([web, alt]), "10.96.0.101"


# --- Service ports: what names a port outside iptables' `--dport N` words -------------------

_PREROUTING = "chain pre {\n type filter hook prerouting priority -150; policy accept;\n"
NFT_PORT_RULES = {
    # A named set of ports: the rule says `@blocked`; the set's elements ("81") are read
    # as addresses only (read_ports wants a `dport` word before the number).
    "named-set": "table inet hostfw {\n set blocked {\n type inet_service\n elements = { 81 }\n"
    " }\n" + _PREROUTING + " tcp dport @blocked drop\n }\n}\n",
    # A negated port: `_PORTS` wants the number right after `dport`, not `!=`.
    "negated": "table inet hostfw {\n" + _PREROUTING + " tcp dport != 80 drop\n }\n}\n",
    # A verdict map: `dport vmap { 81 : drop }`.
    "vmap": "table inet hostfw {\n" + _PREROUTING + " tcp dport vmap { 81 : drop }\n }\n}\n",
}


@pytest.mark.parametrize("kind", list(NFT_PORT_RULES))
def test_a_port_an_nft_set_negation_or_vmap_names_is_not_shared(kind: str) -> None:
    """A host nft table drops port 81 (by a named set, `!= 80`, or a vmap): alt:81 is
    dropped, web:80 is delivered. The two ports had one shape (port_tags knew no port), so
    alt's drop was shared with web:80 (an invented finding), or web's delivery with alt."""
    import nft_real

    rules, _alt_vip = _two_ports()
    loaded = nft_real.load(NFT_PORT_RULES[kind])
    index = SnapshotIndex(build_node(NodeSpec(pods=PODS, iptables=rules, nft_json=loaded.json)))
    # The engine alone: 81 dropped, 80 delivered.
    assert {v for _, v in _verdicts(index, "web-0", "10.96.0.101", 81)} == {"dropped"}
    assert {v for _, v in _verdicts(index, "web-0", "10.96.0.100", 80)} == {"delivered"}
    dropped = {d for _, d in _paths(diagnose([index]), "netfilter-drop", "hostfw")}
    assert dropped == {"default/alt:81"}


def test_a_port_an_ip_rule_selects_is_not_shared() -> None:
    """`ip rule add ipproto tcp dport 81 lookup 100` (table 100: blackhole): the endpoint
    port 81 is routed into the blackhole, port 80 is not. Ports are named only from
    netfilter text, so alt:81's no-route was shared with web:80 (invented)."""
    rules, _ = _two_ports()
    ip_rules = (Rule(ROOT, 4, 100, "lookup", 100, ipproto=6, dport=(81, 81)), *BASE_RULES)
    spec = NodeSpec(pods=PODS, iptables=rules, rules=ip_rules, extra_routes=BLACKHOLE_100)
    index = SnapshotIndex(build_node(spec))
    assert {v for _, v in _verdicts(index, "web-0", "10.96.0.101", 81)} == {"dropped"}
    assert {v for _, v in _verdicts(index, "web-0", "10.96.0.100", 80)} == {"delivered"}
    refused = {d for _, d in _paths(diagnose([index]), "no-route")}
    assert refused == {"default/alt:81"}


def test_the_values_of_an_nft_map_name_pods_and_ports() -> None:
    """A host nft table DNATs through a named map whose values are a pod and port
    (`dnat ip to ip daddr map @steer`, 10.96.0.200 -> web-3:81): only its keys were read,
    so web-3 stayed in its class and port 81 was named by nothing."""
    import nft_real

    steer = (
        "table ip hostnat {\n map steer {\n type ipv4_addr : ipv4_addr . inet_service\n"
        f" elements = {{ 10.96.0.200 : {PODS[3].ip} . 81 }}\n }}\n"
        " chain pre {\n type nat hook prerouting priority -100; policy accept;\n"
        " meta l4proto tcp dnat ip to ip daddr map @steer\n }\n}\n"
    )
    loaded = nft_real.load(steer)
    index = SnapshotIndex(build_node(NodeSpec(pods=PODS, nft_json=loaded.json)))
    named = named_in_rules(index)
    assert PODS[3].ip in named.addresses and named.port_tags(81) == ((81, 81),)
    assert len(pod_classes(index, 0)) == 2


# --- pod classes: what sets pods apart outside netfilter's addresses and exact names ----------


def test_pods_an_ip_rule_network_holds_are_a_class_apart() -> None:
    """`ip rule add from 10.244.0.0/30 lookup 100` (table 100: blackhole) catches web-0
    and web-1 only: their way to a Service on another pod is blackholed, the other pods'
    is not. The node's ip rules are compared per pod only when they name its exact
    address (`_root_shape`), and named.py reads no ip rule: all six pods were one class,
    traced from web-4 (an endpoint), and nothing was reported."""
    svc = _service("default", "web", "http", "TCP", "10.96.0.100", 80, None,
                   ((PODS[4].ip, 80), (PODS[5].ip, 80)))  # fmt: skip
    ip_rules = (Rule(ROOT, 4, 100, "lookup", 100, src="10.244.0.0/30"), *BASE_RULES)
    spec = NodeSpec(
        pods=PODS, iptables=restore_input([svc]), rules=ip_rules, extra_routes=BLACKHOLE_100
    )
    index = SnapshotIndex(build_node(spec))
    assert {v for _, v in _verdicts(index, "web-0", "10.96.0.100", 80)} == {"dropped"}
    assert {v for _, v in _verdicts(index, "web-3", "10.96.0.100", 80)} == {"delivered"}
    report = diagnose([index])
    found = [f for f in report.findings if f.check == "no-route"]
    sources = {p.source for f in found for p in f.paths}
    assert sources and sources <= {"default/web-0", "default/web-1"}, report.findings
    # web-0 and web-1 fail, and no other pod does.
    assert sum(f.affected for f in found) == 2


def _renamed(snapshot: Snapshot, old: str, new: str) -> Snapshot:
    root = next(ns for ns in snapshot.netns if ns.inode == snapshot.root_netns)
    links = tuple(replace(link, name=new) if link.name == old else link for link in root.links)
    return with_root(snapshot, links=links)


def test_a_pod_an_interface_wildcard_holds_is_a_class_apart() -> None:
    """`-m physdev --physdev-in cali+ -j DROP`: web-2's host side is cali0002 (a pod of
    another CNI on the same bridge), the others' veth000N. Bridged frames from web-2 are
    dropped, the others' pass. singled_out() compares host interface names to the
    rules' words exactly ("cali+" is no name), and the class key leaves the name out:
    web-2 was in web-0's class and its drop was never reported."""
    rules = "*filter\n-A FORWARD -m physdev --physdev-in cali+ -j DROP\nCOMMIT\n"
    index = SnapshotIndex(
        _renamed(build_node(NodeSpec(pods=PODS, iptables=rules)), "veth0002", "cali0002")
    )
    assert _verdicts(index, "web-2", PODS[3].ip, None, "icmp") == [(PODS[3].ip, "dropped")]
    assert _verdicts(index, "web-0", PODS[3].ip, None, "icmp") == [(PODS[3].ip, "delivered")]
    # web-2's own paths, and web-0's to web-2 on the way back (the reply enters from
    # cali0002): the pod-to-pod paths are traced from each class to each class.
    paths = _paths(diagnose([index]), "netfilter-drop", "cali+")
    assert {s for s, _ in paths} == {"default/web-0", "default/web-2"}, paths
    assert {d for s, d in paths if s == "default/web-0"} == {PODS[2].ip}, paths


# --- hairpin: which Services end in which member of a class ---------------------------------


def test_each_pod_that_reaches_itself_through_a_service_is_judged() -> None:
    """Hairpin mode is off on every bridge port. s1's only endpoint is web-1, s2's is
    web-2: web-1 -> s1 and web-2 -> s2 both need hairpin and are dropped; web-1 -> s2
    and web-2 -> s1 pass. All six pods are one class traced from web-1 (an endpoint):
    web-2's own hairpin path was never traced (no hairpin-off finding for web-2), and
    web-1's failure was counted for all six pods. Both are judged now, one path each (the
    two are one finding: the same cause)."""
    s1 = _service("default", "s1", "http", "TCP", "10.96.0.101", 80, None, ((PODS[1].ip, 80),))
    s2 = _service("default", "s2", "http", "TCP", "10.96.0.102", 80, None, ((PODS[2].ip, 80),))
    snapshot = build_node(NodeSpec(pods=PODS, iptables=restore_input([s1, s2])))
    root = next(ns for ns in snapshot.netns if ns.inode == snapshot.root_netns)
    links = tuple(replace(x, hairpin=False) if x.kind == "veth" else x for x in root.links)
    index = SnapshotIndex(with_root(snapshot, links=links))
    assert _verdicts(index, "web-2", "10.96.0.102", 80) == [(PODS[2].ip, "dropped")]
    assert _verdicts(index, "web-1", "10.96.0.102", 80) == [(PODS[2].ip, "delivered")]
    report = diagnose([index])
    hairpin = [f for f in report.findings if f.check == "hairpin-off"]
    paths = {(p.source, p.destination) for f in hairpin for p in f.paths}
    assert paths == {("default/web-1", "default/s1:80"), ("default/web-2", "default/s2:80")}
    assert sum(f.affected for f in hairpin) == 2, [(f.subject, f.affected) for f in hairpin]
    assert report.coverage.paths == 6 * 2 + 2 + 6 * 5  # pods and node to ports, pod to pod


def _hairpin_off(services: list[ServiceRecord]) -> SnapshotIndex:
    """The six pods behind these Services, hairpin mode off on every bridge port."""
    snapshot = build_node(NodeSpec(pods=PODS, iptables=restore_input(services)))
    root = next(ns for ns in snapshot.netns if ns.inode == snapshot.root_netns)
    links = tuple(replace(x, hairpin=False) if x.kind == "veth" else x for x in root.links)
    return SnapshotIndex(with_root(snapshot, links=links))


def test_a_hairpin_findings_subject_counts_the_pods_it_stands_for() -> None:
    """web-1 reaches itself through s1 and s3, web-2 through s2: one finding, three paths,
    two pods. Its subject said "pod default/web-1 (and 2 like it)", counting the other
    destinations, as though two more pods were behind it."""
    s1 = _service("default", "s1", "http", "TCP", "10.96.0.101", 80, None, ((PODS[1].ip, 80),))
    s2 = _service("default", "s2", "http", "TCP", "10.96.0.102", 80, None, ((PODS[2].ip, 80),))
    s3 = _service("default", "s3", "http", "TCP", "10.96.0.103", 80, None, ((PODS[1].ip, 80),))
    (finding,) = [f for f in diagnose([_hairpin_off([s1, s2, s3])]).findings]
    assert finding.check == "hairpin-off" and finding.affected == 3
    assert finding.subject == "pod default/web-1 (and 1 pod like it)"


def test_pods_ending_in_one_port_alike_are_named_in_the_subject() -> None:
    """s4's endpoints are web-1 and web-2: their two hairpin paths are judged as one (web-1
    listed, weighing two). The subject said "pod default/web-1" alone, and the fix names
    web-1's port: nothing said web-2's port needs hairpin mode too."""
    s4 = _service("default", "s4", "http", "TCP", "10.96.0.104", 80, None,
                  ((PODS[1].ip, 80), (PODS[2].ip, 80)))  # fmt: skip
    (finding,) = [f for f in diagnose([_hairpin_off([s4])]).findings]
    assert finding.check == "hairpin-off" and finding.affected == 2
    assert [p.source for p in finding.paths] == ["default/web-1"]
    assert finding.subject == "pod default/web-1 (and 1 pod like it)"


def test_a_rule_that_drops_several_services_is_not_said_to_have_others_like_it() -> None:
    """FORWARD drops TCP to port 8080, which Services a and b both use: one finding whose
    subject is the rule. It read "rule filter/FORWARD (and 1 like it)", as though another
    rule dropped them too; the other Service is in its paths."""
    a = _service("default", "a", "http", "TCP", "10.96.0.105", 8080, None, ((PODS[1].ip, 8080),))
    b = _service("default", "b", "http", "TCP", "10.96.0.106", 8080, None, ((PODS[2].ip, 8080),))
    drop = "*filter\n:FORWARD ACCEPT [0:0]\n-A FORWARD -p tcp --dport 8080 -j DROP\nCOMMIT\n"
    index = SnapshotIndex(build_node(NodeSpec(pods=PODS, iptables=restore_input([a, b]) + drop)))
    (finding,) = [f for f in diagnose([index]).findings if f.check == "netfilter-drop"]
    assert finding.subject == "rule filter/FORWARD"
    assert {p.destination for p in finding.paths} == {"default/a:8080", "default/b:8080"}


# --- endpoints followed once: what the node's neighbour table says of each ------------------


def test_an_endpoint_the_node_resolves_to_a_stale_mac_is_followed_apart() -> None:
    """The node's neighbour table holds web-3's address PERMANENT with a MAC no port has
    (an address a new pod reused): a frame routed to web-3 by cni0 is flooded, and every
    pod drops it; one to web-2 arrives. endpoint_shape() has no word of the node's neighbour entries:
    web-2 and web-3 were merged, web-2 followed for both (from the node and from web-0,
    the class's representative as the endpoint of another Service, api), and nothing
    was said of web-3's half of web's connections."""
    web = _service("default", "web", "http", "TCP", "10.96.0.100", 80, None,
                   ((PODS[2].ip, 80), (PODS[3].ip, 80)))  # fmt: skip
    api = _service("default", "api", "http", "TCP", "10.96.0.99", 80, None, ((PODS[0].ip, 80),))
    snapshot = build_node(NodeSpec(pods=PODS, iptables=restore_input([web, api])))
    root = next(ns for ns in snapshot.netns if ns.inode == snapshot.root_netns)
    stale = "02:00:00:00:00:99"
    neighbours = tuple(
        replace(n, lladdr=stale, state=("PERMANENT",)) if n.dst == PODS[3].ip else n
        for n in root.neighbours
    )
    index = SnapshotIndex(with_root(snapshot, neighbours=neighbours))
    for source in ("node", "web-0"):
        assert _verdicts(index, source, "10.96.0.100", 80) == [
            (PODS[2].ip, "delivered"),
            # The engine: flooded, and every port's pod drops a frame for another MAC.
            (PODS[3].ip, "dropped"),
        ]
    report = diagnose([index])
    said = [f for f in report.findings if stale in f.cause or any(stale in e for e in f.evidence)]
    assert said, [(f.check, f.subject, f.cause) for f in report.findings]
    # The node's and web-0's paths to web (web-3's own path shows the MAC in any case).
    sources = {p.source for f in said for p in f.paths}
    assert {"node-a", "default/web-0"} <= sources, sources


def test_a_pods_address_resolved_on_another_interface_leaves_it_in_its_class() -> None:
    """The node's neighbour table also holds web-3's address on eth0 with another MAC (the
    uplink once had a host of that address): the node reaches web-3 by cni0, where the
    entry is web-3's own, and web-3 answers as the others do. Entries were keyed by address
    alone: the eth0 one made web-3 a class of its own."""
    snapshot = build_node(NodeSpec(pods=PODS))
    root = next(ns for ns in snapshot.netns if ns.inode == snapshot.root_netns)
    (eth0,) = [link for link in root.links if link.name == "eth0"]
    (cni0,) = [n for n in root.neighbours if n.dst == PODS[3].ip]
    other = replace(cni0, ifindex=eth0.ifindex, lladdr="02:00:00:00:00:99", state=("STALE",))
    index = SnapshotIndex(with_root(snapshot, neighbours=(*root.neighbours, other)))
    assert _verdicts(index, "node", PODS[3].ip, 80) == [(PODS[3].ip, "delivered")]
    assert len(pod_classes(index, 0)) == 1


# --- IPVS persistence: clients a template pins ----------------------------------------------

IPVS_LISTING = (
    "IP Virtual Server version 1.2.1 (size=4096)\n"
    "Prot LocalAddress:Port Scheduler Flags\n"
    "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n"
    "TCP  10.96.0.100:80 rr persistent 10800\n"
    "  -> 10.244.0.4:80                Masq    1      0          0\n"
    "  -> 10.244.0.5:80                Masq    1      0          0\n"
    "  -> 10.244.0.200:80              Masq    0      0          3\n"
)
# web-1 (10.244.0.3) pinned to 10.244.0.200:80 (0AF400C8 0050), the weight-0 server
# graceful termination keeps for the clients persistence still sends there.
IPVS_CONN = (
    "Pro FromIP   FPrt ToIP     TPrt DestIP   DPrt State       Expires PEName PEData\n"
    "IP  0AF40003 0000 0A600064 0000 0AF400C8 0050 NONE          10700\n"
)


def test_a_client_an_ipvs_persistence_template_pins_is_a_class_apart() -> None:
    """IPVS mode, a persistent Service: web-1 has a template pinning it to 10.244.0.200, a
    weight-0 server no pod holds any more; every other pod is balanced over web-2 and
    web-3. The kernel sends web-1's connections to the gone address (ARP unanswered),
    the others' are delivered. named.py reads xt_recent pins and nft affinity sets but not
    /proc/net/ip_vs_conn, so web-1 stayed in the class traced from web-2 and its path was
    never judged."""
    snapshot = ipvs_mode(
        build_node(NodeSpec(pods=PODS)), IPVS_LISTING, ["10.96.0.100"], conn=IPVS_CONN
    )
    index = SnapshotIndex(snapshot)
    # The engine follows the pin: ARP for it floods cni0, whose every port leads into a
    # namespace of the snapshot, and nothing answers.
    assert _verdicts(index, "web-1", "10.96.0.100", 80) == [("10.244.0.200", "dropped")]
    assert _verdicts(index, "web-0", "10.96.0.100", 80) == [
        (PODS[2].ip, "delivered"),
        (PODS[3].ip, "delivered"),
    ]
    report = diagnose([index])
    said = [
        f
        for f in report.findings
        if "10.244.0.200" in f.cause or any("10.244.0.200" in e for e in f.evidence)
    ]
    assert said, [(f.check, f.subject, f.cause) for f in report.findings]


# --- what must not set paths apart (review of the above): no class per pod, no shape per port ---


def test_per_pod_ip_rules_of_a_routed_cni_keep_the_pods_one_class() -> None:
    """AWS VPC CNI gives every pod `to POD lookup main` and `from POD lookup T`: rules of
    a pod's own address, the same for every pod but for it, keep them one class (read as
    the pods' own, not as named addresses: each pod was a class of its own, 37 traces)."""
    rules = (
        tuple(
            r
            for p in PODS
            for r in (
                Rule(ROOT, 4, 512, "lookup", 254, dst=f"{p.ip}/32"),
                Rule(ROOT, 4, 1536, "lookup", 254, src=f"{p.ip}/32"),
            )
        )
        + BASE_RULES
    )
    svc = _service("default", "web", "http", "TCP", "10.96.0.100", 80, None,
                   ((PODS[4].ip, 80), (PODS[5].ip, 80)))  # fmt: skip
    index = SnapshotIndex(
        build_node(NodeSpec(pods=PODS, rules=rules, iptables=restore_input([svc])))
    )
    assert len(pod_classes(index, 0)) == 1


def test_per_pod_ip_rules_on_each_pods_veth_keep_the_pods_one_class() -> None:
    """A routed node (Calico's shape) with `iif VETH lookup 100` for each pod's host-side
    veth, table 100 a blackhole: the same rule for every pod but for its own veth's name
    keeps them one class (each pod was a class of its own). Pods without the rule are
    still apart, and the doctor finds each path a steered pod's packets take dropped."""
    veths = [f"cali{i:012d}" for i in range(6)]
    pods = [RoutedPod(n, f"10.244.0.{i + 5}", None, veths[i]) for i, n in enumerate("abcdef")]
    root = routed_root(0)
    base = (Rule(root, 4, 0, "lookup", 255), Rule(root, 4, 32766, "lookup", 254))

    def node(steered: list[str]) -> SnapshotIndex:
        own = tuple(Rule(root, 4, 100, "lookup", 100, iif=v) for v in steered)
        blackhole = (Route(root, 4, 100, "blackhole", "0.0.0.0/0"),)
        spec = RoutedNode(pods=pods, rules=own + base, extra_routes=blackhole)
        return SnapshotIndex(routed(spec))

    assert len(pod_classes(node(veths), 0)) == 1
    index = node(veths[2:])
    assert len(pod_classes(index, 0)) == 2
    assert _verdicts(index, "a", "10.244.0.6", 80) == [("10.244.0.6", "delivered")]
    assert _verdicts(index, "c", "10.244.0.5", 80) == [("10.244.0.5", "dropped")]
    # Every pod-to-pod path fails but a's and b's to each other (the reply too is steered).
    report = diagnose([index])
    assert report.coverage.paths == 30 and report.coverage.classes == 2
    assert sum(f.affected for f in report.findings) == 28, report.findings


def test_kube_proxy_ipvs_sets_name_no_service_apart() -> None:
    """IPVS mode: kube-proxy's own ipsets (KUBE-CLUSTER-IP names every VIP and port,
    KUBE-LOOP-BACK every endpoint) are used by its rules only: they set no Service port
    or pod apart (read whole, every port had a shape of its own: 167 traces for 40)."""
    vips = [f"10.96.0.{n + 10}" for n in range(40)]
    listing = [
        "IP Virtual Server version 1.2.1 (size=4096)",
        "Prot LocalAddress:Port Scheduler Flags",
        "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn",
    ]
    for n, vip in enumerate(vips):
        listing.append(f"TCP  {vip}:{8000 + n} rr")
        listing += [
            f"  -> {ep}:{8000 + n}  Masq    1      0          0" for ep in (PODS[4].ip, PODS[5].ip)
        ]
    ipsets = [
        "create KUBE-CLUSTER-IP hash:ip,port family inet hashsize 1024 maxelem 65536",
        *[f"add KUBE-CLUSTER-IP {vip},tcp:{8000 + n}" for n, vip in enumerate(vips)],
        "create KUBE-LOOP-BACK hash:ip,port,ip family inet hashsize 1024 maxelem 65536",
        *[f"add KUBE-LOOP-BACK {ep},tcp:{8000 + n},{ep}" for n in range(40) for ep in (PODS[4].ip, PODS[5].ip)],
    ]  # fmt: skip
    snapshot = ipvs_mode(build_node(NodeSpec(pods=PODS)), "\n".join(listing) + "\n", vips)
    plain = diagnose([SnapshotIndex(snapshot)]).coverage
    with_sets = replace(snapshot, ipsets=IpsetDump("\n".join(ipsets) + "\n"))
    assert diagnose([SnapshotIndex(with_sets)]).coverage.traces == plain.traces


@pytest.mark.parametrize(
    ("top", "chain"),
    [("KUBE-ROUTER-FORWARD", "KUBE-POD-FW-ABCDEF0123456789"), ("cali-FORWARD", "cali-fw-AB")],
)
def test_a_pod_a_policy_chain_names_is_a_class_apart(top: str, chain: str) -> None:
    """kube-router's pod firewall chains start with KUBE- like kube-proxy's, but name the
    pods their policies select: web-3 (10.244.0.5) is set apart and its REJECT found,
    as it is for Calico's chains (read as kube-proxy's, it stayed in its class)."""
    rules = (
        f"*filter\n:FORWARD ACCEPT [0:0]\n:{top} - [0:0]\n:{chain} - [0:0]\n-A FORWARD -j {top}\n"
        f'-A {top} -d 10.244.0.5/32 -m comment --comment "to POD name:web-3" -j {chain}\n'
        f"-A {chain} -j REJECT --reject-with icmp-port-unreachable\nCOMMIT\n"
    )
    index = SnapshotIndex(build_node(NodeSpec(pods=PODS, iptables=rules)))
    assert _verdicts(index, "web-0", PODS[3].ip, None, "icmp") == [(PODS[3].ip, "dropped")]
    classes = sorted(sorted(p.name for p in c.members) for c in pod_classes(index, 0))
    assert ["web-3"] in classes
    dropped = {d for f in diagnose([index]).findings for d in (p.destination for p in f.paths)}
    assert PODS[3].ip in dropped


def test_pods_whose_own_ip_rules_differ_in_a_selector_are_classes_apart() -> None:
    """web-1's `from POD ipproto tcp dport 81 lookup 100` sends only TCP to port 81 into
    table 100 (a blackhole), web-2's `from POD lookup 100` everything: the rules differ
    only in selectors the first rule shape left out."""
    ip_rules = (
        Rule(ROOT, 4, 100, "lookup", 100, src=f"{PODS[1].ip}/32", ipproto=6, dport=(81, 81)),
        Rule(ROOT, 4, 100, "lookup", 100, src=f"{PODS[2].ip}/32"),
        *BASE_RULES,
    )
    spec = NodeSpec(pods=PODS, rules=ip_rules, extra_routes=BLACKHOLE_100)
    classes = [
        sorted(p.name for p in c.members) for c in pod_classes(SnapshotIndex(build_node(spec)), 0)
    ]
    assert ["web-1"] in classes and ["web-2"] in classes, classes


def test_the_progress_told_reaches_its_total() -> None:
    """Pods that are endpoints of their own ports (hairpin) are judged apart, each port
    counted once per source all the same: the last count told is the total."""
    s1 = _service("default", "s1", "http", "TCP", "10.96.0.101", 80, None, ((PODS[1].ip, 80),))
    both = tuple((p.ip, 80) for p in PODS)  # every pod of the class is its endpoint
    s2 = _service("default", "s2", "http", "TCP", "10.96.0.102", 80, None, both)
    index = SnapshotIndex(build_node(NodeSpec(pods=PODS, iptables=restore_input([s1, s2]))))
    told: list[tuple[int, int]] = []
    diagnose([index], judged=lambda done, total: told.append((done, total)))
    assert told and told[-1][0] == told[-1][1] and all(d <= t for d, t in told), told
