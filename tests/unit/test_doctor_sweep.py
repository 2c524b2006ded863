"""The doctor's sweep: endpoints alike are followed once, and the verdicts do not change."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from trace_factory import NodeSpec, PodSpec, build_node, kube_services, two_nodes, with_root

from podpath.analysis.index import SnapshotIndex
from podpath.analysis.parsed import ParsedSnapshot
from podpath.doctor import diagnose
from podpath.doctor.causes import Aim
from podpath.doctor.classes import PodClass, pod_classes
from podpath.doctor.findings import Report
from podpath.doctor.named import named_in_rules
from podpath.doctor.sweep import Sweep, _Paths, _ServiceSweep, sweep
from podpath.doctor.tracer import Origin, Tracer
from podpath.netfilter.kube_proxy import Endpoint, Service
from podpath.snapshot.model import Pod
from podpath.trace.model import Branch

PODS = [PodSpec(f"web-{i}", f"10.244.0.{i + 2}") for i in range(6)]
VIP = "10.96.0.10"


def _index() -> SnapshotIndex:
    endpoints = [p.ip for p in PODS[1:]]
    return SnapshotIndex(
        build_node(NodeSpec(pods=PODS, iptables=kube_services(VIP, 80, endpoints)))
    )


def test_alike_endpoints_are_followed_once_with_their_whole_probability() -> None:
    """Five endpoints in one position, none listening differently: one branch of p=1
    instead of five of p=0.2, with the same verdict and a note that says so."""
    index = _index()
    tracer = Tracer([index])
    once = _followed_once(tracer, Origin("pod", 0, "default/web-0", index.snapshot.pods[0]))
    notes = [d for h in once.hops for d in h.details if "more destinations alike" in d]
    assert notes == [
        "and 4 more destinations alike (same position, same listener): followed once for all"
    ]
    assert tracer.engine.alike is None  # reset after the call


def _followed_once(tracer: Tracer, origin: Origin) -> Branch:
    """The one branch of the Service's trace with every endpoint alike, after checking it
    against the five branches traced without: the same verdict, the whole probability."""
    every = tracer.trace(origin, VIP, 80, "tcp")
    once = tracer.trace(origin, VIP, 80, "tcp", lambda f: (f.packet.dport, "same"))
    assert len(every.branches) == 5 and len(once.branches) == 1
    assert abs(once.branches[0].probability - 1.0) < 1e-9
    assert {b.verdict for b in every.branches} == {once.branches[0].verdict}
    return once.branches[0]


def test_from_the_node_alike_endpoints_merge_where_the_dnat_chose_them() -> None:
    """From the node, filter OUTPUT follows nat OUTPUT's DNAT in the same hook: the
    endpoints alike are merged as nat leaves them, so filter OUTPUT is walked once for
    all five, and the note sits on the DNAT hop, not on the hook's last."""
    index = _index()
    origin = Origin("node", 0, index.snapshot.node.hostname)
    hops = _followed_once(Tracer([index]), origin).hops
    noted = [h for h in hops if any("more destinations alike" in d for d in h.details)]
    assert [h.text for h in noted] == ["DNAT 10.96.0.10:80 -> 10.244.0.3:8080"]
    after = hops[hops.index(noted[0]) + 1]
    assert (after.data.get("table"), after.data.get("chain")) == ("filter", "OUTPUT")


def test_the_report_counts_every_path_though_fewer_are_followed() -> None:
    """diagnose() on the node: the Service's paths from every pod are counted."""
    report = diagnose([_index()])
    assert report.coverage.pods == len(PODS)
    assert report.coverage.paths >= len(PODS)


def _lb_node(mode: str) -> SnapshotIndex:
    """web-lb as the lab makes it: an external IP, and an LB IP only 172.18.100.0/24 may reach."""
    import nft_real

    from podpath.lab.kubeproxy import restore_input
    from podpath.lab.kubeproxy_nft import render
    from podpath.lab.plan import _service

    eps = tuple((p.ip, 80) for p in PODS[1:3])
    lb = _service(
        "default", "web-lb", "http", "TCP", "10.96.0.104", 80, 30082, eps,
        external_ips=("192.0.2.10",), lb_ips=("192.0.2.11",), source_ranges=("172.18.100.0/24",),
    )  # fmt: skip
    if mode == "iptables":
        return SnapshotIndex(build_node(NodeSpec(pods=PODS, iptables=restore_input([lb]))))
    loaded = nft_real.load(render([lb], ("192.168.0.2",)))
    return SnapshotIndex(build_node(NodeSpec(pods=PODS, nft_json=loaded.json)))


@pytest.mark.parametrize("mode", ["iptables", "nftables"])
def test_an_external_ip_is_not_judged_by_its_services_source_ranges(mode: str) -> None:
    """Only the LB IP is subject to loadBalancerSourceRanges: the outside client's drop
    there was shared with the external IP of the same Service (one shape), so the doctor
    named 192.0.2.10 as dropped while the kernel answers it."""
    report = diagnose([_lb_node(mode)])
    dropped = {
        p.destination for f in report.findings if f.check == "netfilter-drop" for p in f.paths
    }
    assert "192.0.2.10:80" not in dropped, [f.paths for f in report.findings]


@pytest.mark.parametrize("mode", ["iptables", "nftables"])
def test_a_drop_by_the_lb_ips_own_source_ranges_is_information(mode: str) -> None:
    """The doctor's outside client (203.0.113.10) is outside web-lb's 172.18.100.0/24: the
    drop at the LB IP is what the Service asks, told as `lb-source-ranges` (info), not a
    critical `netfilter-drop` to remove."""
    report = diagnose([_lb_node(mode)])
    checks = {f.check: f for f in report.findings}
    assert "netfilter-drop" not in checks and not report.critical, report.findings
    found = checks["lb-source-ranges"]
    assert found.grade == "info" and "172.18.100.0/24" in found.cause, found
    assert [p.destination for p in found.paths] == ["192.0.2.11:80"]


def _port(n: int, ips: list[str]) -> Service:
    eps = tuple(Endpoint(ip, 80, 1 / len(ips), f"KUBE-SEP-{n}-{i}", "") for i, ip in enumerate(ips))
    return Service("default", f"svc-{n}", "http", "TCP", f"10.96.1.{n}", 80, endpoints=eps)


def test_a_class_s_paths_are_grouped_by_the_shape_each_port_has_from_each_pod() -> None:
    """class_groups() starts from the ports' shapes as seen from a pod that is none of
    their endpoints and sets apart each pod's paths to the ports that end in itself: every
    (pod, port) path of the class is judged once, in a group whose paths all have the
    shape that shaping that port for that very pod gives (up to its endpoints' order)."""
    index = _index()
    ips = [p.ip for p in PODS]
    # Ports alike but for one of them ending in web-0, ports ending in two pods of the
    # class, each of several pods' own, and an empty one.
    endpoints = [[ips[0], ips[1]], [ips[2], ips[1]], [ips[0]], [ips[3]], [ips[4], ips[0]], []]
    services = tuple(_port(n, eps) for n, eps in enumerate(endpoints))
    out = Sweep()
    classes = pod_classes(index, 0)
    for cls in classes:
        for pod in cls.members:
            out.class_of[(0, pod.netns_inode or 0)] = cls.key
    each = _ServiceSweep(Tracer([index]), 0, index, classes, services, out, named_in_rules(index))
    hairpins = 0
    for cls in classes:
        judged: list[tuple[str, str]] = []
        for group in each.class_groups(cls):
            shapes: set[object] = set()
            for paths in group:
                pods = _stood_for(cls, paths)
                assert len(pods) == paths.weight
                for pod in pods:
                    origin = Origin("pod", 0, pod.name, pod)
                    shape = each._shape(paths.svc, paths.aim, origin)
                    # Its endpoints as a multiset: the order kube-proxy lists them in
                    # decides no verdict.
                    ends = shape[-1]
                    assert isinstance(ends, tuple)
                    shapes.add((shape[:-1], tuple(sorted(ends, key=repr))))
                    judged.append((pod.name, paths.svc.name))
                hairpins += paths.weight == 1 and paths.origin.pod in pods and len(cls.members) > 1
            assert len(shapes) == 1, group
        every = [(p.name, svc.name) for p in cls.members for svc, _ in each.cluster_aims]
        assert sorted(judged) == sorted(every)
    assert hairpins  # paths to a pod's own ports were set apart


def _stood_for(cls: PodClass, paths: _Paths) -> list[Pod]:
    """The pods of the class whose path to the port `paths` judges."""
    ips = {ep.ip for ep in paths.svc.endpoints}
    origin = paths.origin.pod
    assert origin is not None
    if set(origin.ips) & ips:
        # Its own port: judged for the pods of the class that end in it alike (here, all
        # of them do: every pod listens alike).
        return [p for p in cls.members if set(p.ips) & ips]
    return [p for p in cls.members if not set(p.ips) & ips]


def test_an_endpoint_a_rule_names_is_not_merged_with_the_others() -> None:
    """A filter OUTPUT rule of the node's own drops one endpoint's address: from the
    node, that endpoint is followed on its own (not merged into the others alike), so
    the doctor names the drop on the path from the node."""
    dropped = PODS[3].ip
    rules = kube_services(
        VIP, 80, [p.ip for p in PODS[1:]], extra_filter=f"-A OUTPUT -d {dropped}/32 -j DROP"
    )
    index = SnapshotIndex(build_node(NodeSpec(pods=PODS, iptables=rules)))
    report = diagnose([index])
    node = index.snapshot.node.hostname
    drops = [
        f
        for f in report.findings
        if f.check == "netfilter-drop" and any(p.source == node for p in f.paths)
    ]
    assert drops and any(f"-d {dropped}/32" in e for f in drops for e in f.evidence), [
        (f.check, f.subject, [p.source for p in f.paths]) for f in report.findings
    ]


def test_endpoints_in_a_network_a_rule_names_are_not_merged_with_the_others() -> None:
    """A filter OUTPUT rule of the node's own drops a network, 10.244.0.4/31, that holds
    one endpoint (10.244.0.5) and whose own address is no pod's: from the node, that
    endpoint is followed apart from the others alike, so the doctor names the drop (when
    one was followed for all four, it was one outside the network)."""
    pods = [PodSpec(f"web-{i}", f"10.244.0.{n}") for i, n in enumerate((2, 3, 5, 6, 7))]
    rules = kube_services(
        VIP, 80, [p.ip for p in pods[1:]], extra_filter="-A OUTPUT -d 10.244.0.4/31 -j DROP"
    )
    index = SnapshotIndex(build_node(NodeSpec(pods=pods, iptables=rules)))
    dropped = _dropped_destinations(diagnose([index]), "-d 10.244.0.4/31")
    assert dropped == {"default/web:80"}


def test_a_remote_endpoint_a_rule_names_is_not_merged_with_the_others() -> None:
    """Both endpoints live on another node (one route leads to both); node-a's own FORWARD
    rule drops one of them: from node-a's pods it is followed on its own."""
    services = kube_services(
        VIP, 80, ["10.244.1.5", "10.244.1.6"], extra_filter="-A FORWARD -d 10.244.1.6/32 -j DROP"
    )
    node_a, _node_b = two_nodes(iptables_a=services)
    dropped = _dropped_destinations(diagnose([SnapshotIndex(node_a)]), "-d 10.244.1.6/32")
    assert dropped == {"default/web:80"}


def test_a_pod_another_nodes_rule_names_is_traced_apart_from_its_class() -> None:
    """node-b's pods c and d would be one class on node-b; node-a's FORWARD rule drops d's
    address. From node-a's pods, the way to d is traced as well as the way to c; and d,
    whose packets' replies cross that rule, is a class of its own: a and b answer d's
    pings into the drop, c's get through (with c and d one class, the first of them
    stood for both, so d's failures were missed or c blamed for them)."""
    node_a, node_b = two_nodes(iptables_a="*filter\n-A FORWARD -d 10.244.1.6/32 -j DROP\nCOMMIT\n")
    report = diagnose([SnapshotIndex(node_a), SnapshotIndex(node_b)])
    assert _dropped_destinations(report, "-d 10.244.1.6/32") == {"10.244.1.6", "10.244.0.5"}
    (found,) = [f for f in report.findings if f.check == "netfilter-drop"]
    # a and b to d, d to a and b: four paths, none of c's.
    assert found.affected == 4 and "default/c" not in {p.source for p in found.paths}


def test_a_rule_on_the_far_node_that_drops_the_overlay_is_that_nodes_finding() -> None:
    """node-b's INPUT drops UDP 8472: every pod packet between the nodes travels in a
    VXLAN packet to that port. One finding, on node-b (where the rule is: it said the
    first path's own node, node-a), naming the VXLAN packet the rule drops."""
    drop = "*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -p udp -m udp --dport 8472 -j DROP\nCOMMIT\n"
    node_a, node_b = two_nodes("vxlan", iptables_b=drop)
    report = diagnose([SnapshotIndex(node_a), SnapshotIndex(node_b)])
    (found,) = report.findings
    assert found.check == "netfilter-drop" and found.node == "node-b"
    assert (
        "drops the VXLAN packet (udp 192.168.0.2 -> 192.168.0.3:8472) that carries" in found.cause
    )
    # Every path between the two nodes, each way (a and b to c and d, and back): 8 of 12.
    assert found.affected == 8 and report.coverage.paths == 12


def test_an_answer_dropped_on_its_way_back_is_said_to_be_the_answer() -> None:
    """node-a's FORWARD drops what a sends in established connections: its answers. The
    cause read "drops 10.244.0.5 -> 10.244.0.5/icmp" (the answer's source, then what the
    client aimed at), as though a request had been dropped."""
    rule = "-A FORWARD -s 10.244.0.5/32 -m conntrack --ctstate ESTABLISHED -j DROP"
    node_a, node_b = two_nodes(iptables_a=f"*filter\n{rule}\nCOMMIT\n")
    (found,) = diagnose([SnapshotIndex(node_a), SnapshotIndex(node_b)]).findings
    assert found.cause.startswith("on the way back, host firewall filter/FORWARD drops the answer")
    assert (
        "the answer 10.244.0.5 -> 10.244.0.6 (of its connection to 10.244.0.5/icmp)" in found.cause
    )
    assert found.affected == 3  # b, c and d to a


def test_vteps_on_different_udp_ports_are_each_nodes_finding() -> None:
    """node-b's flannel.1 listens on UDP 4789, node-a's on 8472: each node's packets reach
    no VXLAN socket on the other. A finding for each receiving node, its cross-node paths."""
    node_a, node_b = two_nodes("vxlan")
    root = next(ns for ns in node_b.netns if ns.inode == node_b.root_netns)
    links = tuple(
        replace(lk, vxlan=replace(lk.vxlan, port=4789)) if lk.vxlan is not None else lk
        for lk in root.links
    )
    report = diagnose([SnapshotIndex(node_a), SnapshotIndex(with_root(node_b, links=links))])
    found = {(f.check, f.node, f.affected) for f in report.findings}
    assert found == {("vxlan-port-mismatch", "node-a", 4), ("vxlan-port-mismatch", "node-b", 4)}


def _dropped_destinations(report: Report, evidence: str) -> set[str]:
    """The destinations of the paths a netfilter drop with this evidence decides."""
    found = [
        f
        for f in report.findings
        if f.check == "netfilter-drop" and any(evidence in e for e in f.evidence)
    ]
    return {p.destination for f in found for p in f.paths}


@pytest.mark.parametrize(
    ("network", "classes"),
    [
        ("10.244.0.4/30", [["web-0", "web-1"], ["web-2", "web-3", "web-4", "web-5"]]),
        ("10.244.0.5-10.244.0.6", [["web-0", "web-1", "web-2", "web-5"], ["web-3", "web-4"]]),
        ("10.244.0.0/24", [["web-0", "web-1", "web-2", "web-3", "web-4", "web-5"]]),
    ],
)
def test_pods_a_named_network_holds_are_a_class_apart(
    network: str, classes: list[list[str]]
) -> None:
    """A host rule naming a network or an address range sets the pods it holds apart from
    those it does not; one that holds every pod (the pod CIDR) sets none apart."""
    match = f"-m iprange --src-range {network}" if "-" in network else f"-s {network}"
    rules = f"*filter\n-A FORWARD {match} -j DROP\nCOMMIT\n"
    index = SnapshotIndex(build_node(NodeSpec(pods=PODS, iptables=rules)))
    found = [sorted(p.name for p in c.members) for c in pod_classes(index, 0)]
    assert sorted(found) == classes


def test_a_pod_whose_host_interface_a_rule_names_is_a_class_of_its_own() -> None:
    """`-o veth0002` (web-2's host side) in a host rule sets web-2 apart."""
    rules = "*filter\n-A FORWARD -o veth0002 -j DROP\nCOMMIT\n"
    index = SnapshotIndex(build_node(NodeSpec(pods=PODS, iptables=rules)))
    found = [sorted(p.name for p in c.members) for c in pod_classes(index, 0)]
    assert sorted(found) == [["web-0", "web-1", "web-3", "web-4", "web-5"], ["web-2"]]


@pytest.mark.parametrize(
    "switch",
    [{"hairpin": False}, {"isolated": True}, {"learning": False}, {"port_state": "listening"}],
)
def test_a_pod_whose_bridge_port_switch_differs_is_a_class_of_its_own(
    switch: dict[str, Any],
) -> None:
    """web-2's bridge port alone has hairpin mode off, is isolated, does not learn, or is
    held by STP: each changes what the bridge does with its frames, so web-2 is traced
    apart."""
    snap = build_node(NodeSpec(pods=PODS))
    root = next(ns for ns in snap.netns if ns.inode == snap.root_netns)
    links = tuple(replace(lk, **switch) if lk.name == "veth0002" else lk for lk in root.links)
    index = SnapshotIndex(with_root(snap, links=links))
    found = [sorted(p.name for p in c.members) for c in pod_classes(index, 0)]
    assert sorted(found) == [["web-0", "web-1", "web-3", "web-4", "web-5"], ["web-2"]]


@pytest.mark.parametrize(
    ("port", "rule", "evidence"),
    [
        # A multiport list whose first port is 22: only its first port was read.
        (443, "-p tcp -m multiport --dports 22,443", "--dports 22,443"),
        # The VIP of the second Service: the shape holds what rules name of it.
        (80, "-d 10.96.0.101/32 -p tcp", "-d 10.96.0.101/32"),
    ],
)
def test_a_port_or_vip_a_rule_names_is_not_shared_with_other_ports(
    port: int, rule: str, evidence: str
) -> None:
    """web:80 and web-b reach the same endpoints alike; a mangle PREROUTING rule drops
    web-b's port or VIP: web-b is traced on its own and the drop named (it shared web's
    shape, so web's working trace spoke for it)."""
    from podpath.lab.kubeproxy import restore_input
    from podpath.lab.plan import _service

    eps = tuple((p.ip, 80) for p in PODS[1:3])
    web = _service("default", "web", "http", "TCP", "10.96.0.100", 80, None, eps)
    other = _service("default", "web-b", "http", "TCP", "10.96.0.101", port, None, eps)
    mangle = f"*mangle\n-A PREROUTING {rule} -j DROP\nCOMMIT\n"
    index = SnapshotIndex(
        build_node(NodeSpec(pods=PODS, iptables=restore_input([web, other]) + mangle))
    )
    dropped = _dropped_destinations(diagnose([index]), evidence)
    assert dropped == {f"default/web-b:{port}"}


def test_an_ipv6_destination_is_written_as_podpath_trace_reads_it() -> None:
    """A finding's path and its `podpath trace --to` line: `[fd00::5]:80`, not the
    ambiguous `fd00::5:80` (a bare IPv6 address, to `podpath trace`, has no port)."""
    from podpath.trace.probe import split_port

    target = Aim("pod", "pod default/web-1", "fd00:10:244::5", 80, "tcp").target
    assert target == "[fd00:10:244::5]:80"
    assert split_port(target) == ("fd00:10:244::5", "80")
    assert Aim("pod", "pod default/web-1", "10.244.0.5", None, "icmp").target == "10.244.0.5"


def test_every_pod_to_pod_path_is_judged_when_another_nodes_rule_names_a_pod() -> None:
    """node-b's rule names pod a (10.244.0.5): on node-a, a is a destination kind of its
    own, whose only pod is its class's first pod. Its class's other pod (b) reaches it
    all the same: 4 pods, 12 pod-to-pod paths (b -> a was left out)."""
    a, b = two_nodes(iptables_b="*filter\n-A FORWARD -s 10.244.0.5/32 -j ACCEPT\nCOMMIT\n")
    indexes = [SnapshotIndex(a), SnapshotIndex(b)]
    views = [ParsedSnapshot(i) for i in indexes]
    swept = sweep(Tracer(indexes), views)
    to_pods = [j for j in swept.judged if j.path.destination.startswith("10.244.")]
    assert sum(j.weight for j in to_pods) == 4 * 3
    assert ("default/b", "10.244.0.5") in {(j.path.source, j.path.destination) for j in to_pods}
