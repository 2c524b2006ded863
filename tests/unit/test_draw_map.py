"""The node map model: what `podpath draw` shows, built from hand-made and bundled snapshots."""

from __future__ import annotations

import dataclasses
from importlib import resources

from trace_factory import (
    ETH0,
    NodeSpec,
    PodSpec,
    build_node,
    pod_inode,
    root_inode,
    two_nodes,
    with_root,
)

from podpath.draw.build import MapFilter, build_map
from podpath.draw.dot import label_text, to_dot
from podpath.draw.model import NodeMap, link_id, safe_id, stack_id
from podpath.draw.outline import outline
from podpath.snapshot.codec import loads
from podpath.snapshot.model import Container, FdbEntry, Link, Pod, Route, Snapshot


def demo() -> list[Snapshot]:
    """The two bundled demo snapshots (recorded from a real 2-node VXLAN lab)."""
    data = resources.files("podpath").joinpath("data")
    return [
        loads(data.joinpath(name).read_bytes())
        for name in ("demo-snapshot.json", "demo-snapshot-node2.json")
    ]


def kinds(node_map: NodeMap) -> dict[str, set[str]]:
    """Element titles by kind."""
    out: dict[str, set[str]] = {}
    for e in node_map.elements:
        out.setdefault(e.kind, set()).add(e.title)
    return out


def joined(node_map: NodeMap, kind: str) -> set[tuple[str, str]]:
    """(source title, target title) of every connection of a kind."""
    out = set()
    for c in node_map.connections:
        if c.kind == kind:
            a, b = node_map.element(c.source), node_map.element(c.target)
            assert a is not None and b is not None
            out.add((a.title, b.title))
    return out


def test_every_pod_veth_bridge_and_uplink_of_a_node_is_drawn() -> None:
    """One bridged node: pods with IPs and eth0@ifN, their host veths on cni0, the stack, eth0."""
    a, _b = two_nodes()
    m = build_map([a])
    k = kinds(m)
    assert k["pod"] == {"default/a", "default/b"}
    assert k["veth"] == {"veth0000@if2", "veth0001@if2"}
    assert k["bridge"] == {"cni0"} and k["uplink"] == {"eth0"} and k["stack"] == {"IP stack"}
    pod = next(e for e in m.elements if e.title == "default/a")
    assert "10.244.0.5" in pod.lines and [p.text for p in pod.ports] == ["eth0@if10"]
    assert joined(m, "veth-pair") == {("default/a", "veth0000@if2"), ("default/b", "veth0001@if2")}
    assert joined(m, "bridge-port") == {("veth0000@if2", "cni0"), ("veth0001@if2", "cni0")}
    assert joined(m, "bridge-stack") == {("cni0", "IP stack")}
    assert ("IP stack", "eth0") in joined(m, "route")
    assert joined(m, "wire") == {("eth0", "network 192.168.0.0/24")}


def test_veth_pair_joins_the_pods_own_interface_port() -> None:
    """The pod end of a veth pair is the pod's eth0 row (a port), so the line starts there."""
    a, _b = two_nodes()
    m = build_map([a])
    pair = next(c for c in m.connections if c.kind == "veth-pair")
    pod = m.element(pair.source)
    assert pod is not None and pair.source_port in {p.id for p in pod.ports}


def test_two_host_gw_nodes_share_their_network_and_label_the_routes() -> None:
    """host-gw: both uplinks meet in one network; the route to the other pod CIDR is on the edge."""
    m = build_map(list(two_nodes("host-gw")))
    networks = [e for e in m.elements if e.kind == "network"]
    assert [n.title for n in networks] == ["network 192.168.0.0/24"]
    wires = {c.source for c in m.connections if c.kind == "wire"}
    assert wires == {link_id(0, root_inode(0), ETH0), link_id(1, root_inode(1), ETH0)}
    to_eth0 = next(
        c
        for c in m.connections
        if c.kind == "route" and c.target == link_id(0, root_inode(0), ETH0)
    )
    assert "10.244.1.0/24 via 192.168.0.3" in to_eth0.labels
    assert "default via 192.168.0.1" in to_eth0.labels
    assert [g.title for g in m.groups if g.kind == "node"] == ["node-a", "node-b"]


def test_vxlan_devices_of_two_loaded_nodes_are_joined_by_one_tunnel() -> None:
    """VXLAN: flannel.1 has its underlay eth0, the route to the remote CIDR, one tunnel to node-b."""
    m = build_map(list(two_nodes("vxlan")))
    assert kinds(m)["vxlan"] == {"flannel.1"}
    tunnels = [c for c in m.connections if c.kind == "tunnel"]
    assert len(tunnels) == 1
    ends = {m.element(tunnels[0].source), m.element(tunnels[0].target)}
    assert {(e.node, e.title) for e in ends if e is not None} == {
        (0, "flannel.1"),
        (1, "flannel.1"),
    }
    assert ("flannel.1", "eth0") in joined(m, "underlay")
    via = next(
        c for c in m.connections if c.kind == "route" and c.labels and "onlink" in c.labels[0]
    )
    assert via.labels == ("10.244.1.0/24 via 10.244.1.0 onlink",)


def test_a_vtep_no_loaded_snapshot_owns_is_drawn_as_such() -> None:
    """With only node-a loaded, its FDB's remote VTEP is a box saying no snapshot covers it."""
    a, _b = two_nodes("vxlan")
    m = build_map([a])
    vtep = next(e for e in m.elements if e.kind == "vtep")
    assert vtep.title == "VTEP 192.168.0.3" and vtep.node is None
    assert ("flannel.1", "VTEP 192.168.0.3") in joined(m, "tunnel")


def test_routed_veths_join_the_stack_with_their_routes() -> None:
    """A Calico-style node (veths with no bridge, a /32 route each) draws veth -> IP stack."""
    a = build_node(NodeSpec(pods=[PodSpec("a", "10.244.0.5")]))
    root = next(ns for ns in a.netns if ns.inode == a.root_netns)
    links = tuple(
        dataclasses.replace(link, master=None) if link.kind == "veth" else link
        for link in root.links
    )
    routes = root.routes + (Route(a.root_netns, 4, 254, "unicast", "10.244.0.5/32", dev=10),)
    m = build_map([with_root(a, links=links, routes=routes)])
    assert joined(m, "bridge-port") == set()
    routed = next(c for c in m.connections if c.kind == "route" and c.target == stack_id(0))
    assert m.element(routed.source) is not None
    assert routed.labels == ("10.244.0.5/32",)


def test_filters_keep_only_matching_pods_and_say_how_many_were_left_out() -> None:
    """--namespace and --pod patterns drop other pods and their veths; a note counts them."""
    a = build_node(
        NodeSpec(
            pods=[
                PodSpec("web-1", "10.244.0.5"),
                PodSpec("web-2", "10.244.0.6"),
                PodSpec("dns", "10.244.0.7", "kube-system"),
            ]
        )
    )
    m = build_map([a], MapFilter(namespaces=("default",)))
    assert kinds(m)["pod"] == {"default/web-1", "default/web-2"}
    assert len(kinds(m)["veth"]) == 2
    assert m.notes == ("node-a: 1 pods left out by the filter",)
    m = build_map([a], MapFilter(pods=("*/web-2", "dns")))
    assert kinds(m)["pod"] == {"default/web-2", "kube-system/dns"}
    assert not MapFilter().active and MapFilter(pods=("x",)).active


def test_big_nodes_fold_veths_into_pod_boxes() -> None:
    """Folded: no veth boxes; the pod's port row names its host veth and joins the bridge."""
    a, _b = two_nodes()
    m = build_map([a], fold_veths=True)
    assert "veth" not in kinds(m)
    assert joined(m, "bridge-port") == {("default/a", "cni0"), ("default/b", "cni0")}
    pod = next(e for e in m.elements if e.title == "default/a")
    assert pod.ports[0].text == "eth0@if10 ⇄ veth0000@if2" and pod.ports[0].peer == "veth0000"
    many = build_node(NodeSpec(pods=[PodSpec(f"p{i}", f"10.244.0.{i + 2}") for i in range(13)]))
    assert "veth" not in kinds(build_map([many]))
    assert "veth" in kinds(build_map([many], fold_veths=False))


def test_host_network_pods_and_pods_without_a_netns_are_still_drawn() -> None:
    """A hostNetwork pod hangs off the node's stack; a pod whose netns was not read says so."""
    a = build_node(NodeSpec(pods=[PodSpec("a", "10.244.0.5")]))
    host = Pod(
        "kube-system",
        "proxy",
        "u1",
        "s1",
        7,
        netns_inode=a.root_netns,
        ips=("192.168.0.2",),
        host_network=True,
    )
    lost = Pod("default", "lost", "u2", "s2", 8, netns_inode=123, ips=("10.244.0.9",))
    m = build_map([dataclasses.replace(a, pods=(*a.pods, host, lost))])
    assert ("kube-system/proxy", "IP stack") in joined(m, "host-network")
    gone = next(e for e in m.elements if e.title == "default/lost")
    assert "network namespace not read" in gone.lines


def test_containers_are_listed_without_the_sandbox() -> None:
    """A pod's box names each app container once; the pause sandbox is not one of them."""
    a = build_node(NodeSpec(pods=[PodSpec("a", "10.244.0.5")]))
    pod = dataclasses.replace(
        a.pods[0],
        containers=(
            Container("POD", "1", "sandbox"),
            Container("web", "2", "container"),
            Container("sidecar", "3", "container"),
            # web restarted: crictl ps -a lists the exited attempt beside the running one
            Container("web", "4", "container"),
        ),
    )
    m = build_map([dataclasses.replace(a, pods=(pod,))])
    box = next(e for e in m.elements if e.kind == "pod")
    assert "containers: web, sidecar" in box.lines


def test_demo_snapshots_map_matches_what_they_hold() -> None:
    """The bundled 2-node lab recording: every pod, IP, host veth, both flannel.1 and cni0."""
    snaps = demo()
    m = build_map(snaps)
    titles = kinds(m)
    for i, snap in enumerate(snaps):
        for pod in snap.pods:
            box = next(e for e in m.elements if e.title == f"{pod.namespace}/{pod.name}")
            assert box.node == i and set(pod.ips) <= set(box.addresses)
        root = next(ns for ns in snap.netns if ns.inode == snap.root_netns)
        for link in root.links:
            if link.kind == "veth" and link.peer is not None:
                assert f"{link.name}@if{link.peer.ifindex}" in titles["veth"]
    assert len([e for e in m.elements if e.kind == "bridge"]) == 2
    assert len([c for c in m.connections if c.kind == "tunnel"]) == 1
    assert len([e for e in m.elements if e.kind == "network"]) == 1


def test_ids_are_stable_and_safe_whatever_the_names() -> None:
    """Two builds give the same ids; every id is made of safe characters only."""
    hostile = build_node(NodeSpec(pods=[PodSpec('x"];\n<b>\\N', "10.244.0.5", "a b/c")]))
    first, second = build_map([hostile]), build_map([hostile])
    assert [e.id for e in first.elements] == [e.id for e in second.elements]
    ids = [e.id for e in first.elements] + [c.id for c in first.connections]
    ids += [g.id for g in first.groups]
    assert all(safe_id(i) for i in ids)


def test_label_text_escapes_markup_controls_and_graphviz_escapes() -> None:
    """XML specials become entities, controls become visible, backslashes are doubled."""
    assert label_text('<b>&"') == "&lt;b&gt;&amp;&quot;"
    assert label_text("a\x1b[31m") == "a\\\\x1b[31m"
    # A backslash is shown doubled (safe_text.visible: `\\N` never reads as an escape), and
    # each of those is escaped again for Graphviz.
    assert label_text("\\N\\G") == "\\\\\\\\N\\\\\\\\G"
    assert label_text("\ufffe") == "\\\\ufffe"
    assert label_text("\udcff") == "\\\\xff"


def test_dot_holds_no_raw_hostile_string() -> None:
    """A pod named to break out of DOT and SVG appears in the DOT only in its escaped form."""
    name = 'evil"] -> x [label="pwned"]; <svg onload=alert(1)>\\N\x1b]0;t\x07'
    snap = build_node(NodeSpec(pods=[PodSpec(name, "10.244.0.5")]))
    text = to_dot(build_map([snap]))
    assert name not in text and "<svg" not in text and '"pwned"' not in text
    assert label_text(f"default/{name}") in text


def test_outline_walks_from_the_stack_out_and_to_the_pods() -> None:
    """The text form: node, IP stack, uplink and bridge under it, each pod under its veth."""
    rows = outline(build_map(list(two_nodes("vxlan"))))
    text = ["  " * r.depth + r.text for r in rows]
    assert text[0].startswith("node node-a")
    assert text[1].startswith("  IP stack")
    veth = next(i for i, t in enumerate(text) if t.strip().startswith("veth veth0000@if2"))
    assert text[veth + 1].strip().startswith("pod default/a  10.244.0.5")
    assert rows[veth + 1].depth == rows[veth].depth + 1
    assert any("tunnel to node node-b" in t for t in text)
    assert any(t.strip() == "joins node-a, node-b" for t in text)


def test_outline_lists_elements_no_connection_reaches() -> None:
    """A pod whose netns was not read is still a row of its node."""
    a = build_node(NodeSpec())
    lost = Pod("default", "lost", "u", "s", 8, netns_inode=99, ips=("10.244.0.9",))
    rows = outline(build_map([dataclasses.replace(a, pods=(lost,))]))
    assert any(r.text.startswith("pod default/lost") and r.depth == 1 for r in rows)


def test_bridge_ports_that_are_not_veths_are_drawn_on_the_bridge() -> None:
    """A VXLAN device or NIC enslaved to a bridge is a port of it, not a routed device."""
    a = build_node(NodeSpec(pods=[PodSpec("a", "10.244.0.5")]))
    nic = Link(a.root_netns, 50, "eth1", None, "02:00:00:00:00:50", 1500, "UP", ("UP",), master=3)
    root = next(ns for ns in a.netns if ns.inode == a.root_netns)
    fdb = (*root.fdb, FdbEntry(a.root_netns, 50, "02:00:00:00:00:51", master=3))
    m = build_map([with_root(a, links=(*root.links, nic), fdb=fdb)])
    assert ("eth1", "cni0") in joined(m, "bridge-port")


def test_veth_to_a_namespace_no_pod_claims_is_drawn_as_a_netns() -> None:
    """A veth whose peer netns belongs to no pod ends in a netns box named by its path."""
    a = build_node(NodeSpec(pods=[PodSpec("a", "10.244.0.5")]))
    ns = next(n for n in a.netns if n.inode == pod_inode(0, 0))
    ns = dataclasses.replace(ns, paths=("/run/netns/orphan",))
    snap = dataclasses.replace(
        a, pods=(), netns=tuple(ns if n.inode == ns.inode else n for n in a.netns)
    )
    m = build_map([snap])
    assert ("/run/netns/orphan", "veth0000@if2") in joined(m, "veth-pair")


def test_big_maps_lay_pods_out_in_columns_small_ones_top_down() -> None:
    """Folded pods get edge lengths 1..k (k about sqrt(n/3)) left to right; small maps go top down."""
    from podpath.draw.dot import stagger

    big = build_map(
        [build_node(NodeSpec(pods=[PodSpec(f"p{i}", f"10.244.0.{i + 2}") for i in range(30)]))]
    )
    lengths = sorted(stagger(big).values())
    assert lengths == [1] * 10 + [2] * 10 + [3] * 10
    assert 'rankdir="LR"' in to_dot(big) and 'minlen="3"' in to_dot(big)
    small = build_map(list(two_nodes()))
    assert stagger(small) == {} and 'rankdir="TB"' in to_dot(small)
