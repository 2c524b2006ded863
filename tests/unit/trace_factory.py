"""Small factories for hand-built node snapshots that the trace engine tests walk.

A node has a root netns with lo, eth0 (the underlay), a cni0 bridge and one veth
port per pod; each pod has its own netns with lo and eth0. Optional: a flannel-style
VXLAN device, routes to other nodes' pod CIDRs (host-gw or VXLAN), policy rules,
iptables-save text, and the sysctls the engine reads.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from podpath.snapshot.model import (
    SCHEMA_VERSION,
    Address,
    FdbEntry,
    IpsetDump,
    IptablesDump,
    IpvsDump,
    Link,
    LinkRef,
    Neighbour,
    NetNamespace,
    NftDump,
    NodeFacts,
    Pod,
    Route,
    Rule,
    Snapshot,
    Vxlan,
)

LO, ETH0, CNI0, FLANNEL = 1, 2, 3, 4
KUBE_IPVS0 = 9
LOCAL, MAIN = 255, 254


def mac(node: int, k: int) -> str:
    """A deterministic MAC for device k of node n."""
    return f"02:00:{node:02x}:00:00:{k:02x}"


def root_inode(node: int) -> int:
    """The root netns inode of node n."""
    return 4026531000 + node * 1000


def pod_inode(node: int, i: int) -> int:
    """The netns inode of pod i on node n."""
    return root_inode(node) + 1 + i


def flannel_mac(node: int) -> str:
    """The MAC of node n's flannel.1 device."""
    return mac(node, 0xF1)


@dataclass
class PodSpec:
    """A pod to put on a node."""

    name: str
    ip: str
    namespace: str = "default"


@dataclass
class PeerNode:
    """Another node this node routes a pod CIDR to."""

    address: str  # its underlay address
    pod_cidr: str  # e.g. 10.244.1.0/24
    index: int  # its node number (for its flannel MAC)


@dataclass
class NodeSpec:
    """Everything a hand-built node is made of."""

    number: int = 0
    hostname: str = "node-a"
    address: str = "192.168.0.2"
    pod_cidr: str = "10.244.0.0/24"
    gateway: str = "192.168.0.1"
    pods: list[PodSpec] = field(default_factory=list)
    peers: list[PeerNode] = field(default_factory=list)
    overlay: str = "host-gw"  # host-gw | vxlan
    iptables: str = ""
    iptables_backend: str = "nft"
    nft_json: str | None = None
    rules: tuple[Rule, ...] = ()
    extra_routes: tuple[Route, ...] = ()
    fdb_known: bool = True  # does cni0's FDB know the pods' MACs?
    neighbours_known: bool = True
    ip_forward: int | None = 1
    bridge_nf_call_iptables: int | None = 1


def _bridge_ip(cidr: str) -> str:
    base = cidr.split("/")[0].rsplit(".", 1)[0]
    return f"{base}.1"


def pod_mac(node: int, i: int) -> str:
    """The MAC of pod i's eth0 on node n."""
    return mac(node, 0x40 + i)


def build_node(spec: NodeSpec) -> Snapshot:
    """A Snapshot of one node from a spec."""
    n = spec.number
    root = root_inode(n)
    bridge_ip = _bridge_ip(spec.pod_cidr)
    plen = 24
    root_links = [
        Link(
            root,
            LO,
            "lo",
            None,
            "00:00:00:00:00:00",
            65536,
            "UNKNOWN",
            ("LOOPBACK", "UP"),
            addresses=(Address(4, "127.0.0.1", 8, "host"),),
        ),
        Link(
            root,
            ETH0,
            "eth0",
            None,
            mac(n, ETH0),
            1500,
            "UP",
            ("UP",),
            addresses=(Address(4, spec.address, plen),),
        ),
        Link(
            root,
            CNI0,
            "cni0",
            "bridge",
            mac(n, CNI0),
            1450,
            "UP",
            ("UP",),
            addresses=(Address(4, bridge_ip, 24),),
        ),
    ]
    routes = [
        Route(
            root,
            4,
            MAIN,
            "unicast",
            "0.0.0.0/0",
            gateway=spec.gateway,
            dev=ETH0,
            prefsrc=spec.address,
        ),
        Route(
            root,
            4,
            MAIN,
            "unicast",
            f"{spec.address.rsplit('.', 1)[0]}.0/24",
            dev=ETH0,
            scope="link",
            prefsrc=spec.address,
            protocol="kernel",
        ),
        Route(
            root,
            4,
            MAIN,
            "unicast",
            spec.pod_cidr,
            dev=CNI0,
            scope="link",
            prefsrc=bridge_ip,
            protocol="kernel",
        ),
        Route(root, 4, LOCAL, "local", "127.0.0.0/8", dev=LO, scope="host", prefsrc="127.0.0.1"),
        Route(
            root,
            4,
            LOCAL,
            "local",
            f"{spec.address}/32",
            dev=ETH0,
            scope="host",
            prefsrc=spec.address,
        ),
        Route(
            root, 4, LOCAL, "local", f"{bridge_ip}/32", dev=CNI0, scope="host", prefsrc=bridge_ip
        ),
    ]
    neighbours: list[Neighbour] = [
        Neighbour(root, 4, ETH0, spec.gateway, mac(99, 1), ("REACHABLE",)),
    ]
    fdb: list[FdbEntry] = []
    if spec.overlay == "vxlan" and spec.peers:
        root_links.append(
            Link(
                root,
                FLANNEL,
                "flannel.1",
                "vxlan",
                flannel_mac(n),
                1450,
                "UNKNOWN",
                ("UP",),
                addresses=(Address(4, spec.pod_cidr.split("/")[0], 32),),
                vxlan=Vxlan(1, 8472, spec.address, None, ETH0, False),
            )
        )
    for peer in spec.peers:
        neighbours.append(
            Neighbour(root, 4, ETH0, peer.address, mac(peer.index, ETH0), ("REACHABLE",))
        )
        if spec.overlay == "vxlan":
            net = peer.pod_cidr.split("/")[0]
            routes.append(
                Route(
                    root,
                    4,
                    MAIN,
                    "unicast",
                    peer.pod_cidr,
                    gateway=net,
                    dev=FLANNEL,
                    flags=("onlink",),
                )
            )
            neighbours.append(
                Neighbour(root, 4, FLANNEL, net, flannel_mac(peer.index), ("PERMANENT",))
            )
            fdb.append(
                FdbEntry(
                    root,
                    FLANNEL,
                    flannel_mac(peer.index),
                    dst=peer.address,
                    state=("permanent",),
                    flags=("self",),
                )
            )
        else:
            routes.append(
                Route(root, 4, MAIN, "unicast", peer.pod_cidr, gateway=peer.address, dev=ETH0)
            )
    namespaces: list[NetNamespace] = []
    pods: list[Pod] = []
    for i, p in enumerate(spec.pods):
        inode = pod_inode(n, i)
        veth_index = 10 + i
        host_veth = Link(
            root,
            veth_index,
            f"veth{n}{i:03d}",
            "veth",
            mac(n, veth_index),
            1450,
            "UP",
            ("UP",),
            master=CNI0,
            link=2,
            link_netnsid=i,
            peer=LinkRef(inode, ETH0),
        )
        root_links.append(host_veth)
        pod_eth0 = Link(
            inode,
            ETH0,
            "eth0",
            "veth",
            pod_mac(n, i),
            1450,
            "UP",
            ("UP",),
            link=veth_index,
            link_netnsid=0,
            peer=LinkRef(root, veth_index),
            addresses=(Address(4, p.ip, 24),),
        )
        pod_links = (
            Link(
                inode,
                LO,
                "lo",
                None,
                "00:00:00:00:00:00",
                65536,
                "UNKNOWN",
                ("LOOPBACK", "UP"),
                addresses=(Address(4, "127.0.0.1", 8, "host"),),
            ),
            pod_eth0,
        )
        pod_routes = (
            Route(inode, 4, MAIN, "unicast", "0.0.0.0/0", gateway=bridge_ip, dev=ETH0),
            Route(
                inode,
                4,
                MAIN,
                "unicast",
                spec.pod_cidr,
                dev=ETH0,
                scope="link",
                prefsrc=p.ip,
                protocol="kernel",
            ),
            Route(inode, 4, LOCAL, "local", "127.0.0.0/8", dev=LO, scope="host"),
            Route(inode, 4, LOCAL, "local", f"{p.ip}/32", dev=ETH0, scope="host", prefsrc=p.ip),
        )
        pod_neigh = (Neighbour(inode, 4, ETH0, bridge_ip, mac(n, CNI0), ("REACHABLE",)),)
        namespaces.append(
            NetNamespace(
                inode,
                links=pod_links,
                routes=pod_routes,
                neighbours=pod_neigh if spec.neighbours_known else (),
            )
        )
        if spec.neighbours_known:
            neighbours.append(Neighbour(root, 4, CNI0, p.ip, pod_mac(n, i), ("REACHABLE",)))
        if spec.fdb_known:
            fdb.append(FdbEntry(root, veth_index, pod_mac(n, i), master=CNI0))
        pods.append(
            Pod(
                p.namespace,
                p.name,
                f"uid-{n}-{i}",
                f"sandbox-{n}-{i}",
                100 + i,
                netns_inode=inode,
                ips=(p.ip,),
                runtime="containerd",
            )
        )
    routes.extend(spec.extra_routes)
    root_ns = NetNamespace(
        root,
        links=tuple(root_links),
        routes=tuple(routes),
        rules=spec.rules,
        neighbours=tuple(neighbours),
        fdb=tuple(fdb),
    )
    dumps = (
        (IptablesDump(spec.iptables_backend, "ipv4", ("iptables-save",), spec.iptables),)
        if spec.iptables
        else ()
    )
    return Snapshot(
        schema_version=SCHEMA_VERSION,
        taken_at=0.0,
        node=NodeFacts(
            spec.hostname,
            "6.1.0",
            ip_forward=spec.ip_forward,
            bridge_nf_call_iptables=spec.bridge_nf_call_iptables,
        ),
        root_netns=root,
        pods=tuple(pods),
        netns=(root_ns, *namespaces),
        iptables=dumps,
        nft=NftDump(spec.nft_json) if spec.nft_json is not None else None,
    )


def two_nodes(
    overlay: str = "host-gw", iptables_a: str = "", iptables_b: str = ""
) -> tuple[Snapshot, Snapshot]:
    """node-a (pods a, b) and node-b (pods c, d), routed to each other by host-gw or VXLAN."""
    a = NodeSpec(
        0,
        "node-a",
        "192.168.0.2",
        "10.244.0.0/24",
        pods=[PodSpec("a", "10.244.0.5"), PodSpec("b", "10.244.0.6")],
        peers=[PeerNode("192.168.0.3", "10.244.1.0/24", 1)],
        overlay=overlay,
        iptables=iptables_a,
    )
    b = NodeSpec(
        1,
        "node-b",
        "192.168.0.3",
        "10.244.1.0/24",
        pods=[PodSpec("c", "10.244.1.5"), PodSpec("d", "10.244.1.6")],
        peers=[PeerNode("192.168.0.2", "10.244.0.0/24", 0)],
        overlay=overlay,
        iptables=iptables_b,
    )
    return build_node(a), build_node(b)


def ipvs_mode(
    snapshot: Snapshot,
    listing: str,
    vips: list[str],
    *,
    ipvs: bool = True,
    conn: str | None = None,
) -> Snapshot:
    """The node as kube-proxy's IPVS mode leaves it: the VIPs on the dummy kube-ipvs0 with
    local routes, and (unless ipvs=False: not read) the IPVS listing and an empty ipset dump."""
    root = snapshot.root_netns
    dummy = Link(
        root,
        KUBE_IPVS0,
        "kube-ipvs0",
        "dummy",
        "1a:ce:f5:5f:c1:4d",
        1500,
        "DOWN",
        ("BROADCAST", "NOARP"),
        addresses=tuple(Address(4, v, 32) for v in vips),
    )
    local = tuple(
        Route(root, 4, LOCAL, "local", f"{v}/32", dev=KUBE_IPVS0, scope="host", prefsrc=v)
        for v in vips
    )
    root_ns = next(ns for ns in snapshot.netns if ns.inode == root)
    changed = with_root(snapshot, links=(*root_ns.links, dummy), routes=(*root_ns.routes, *local))
    return replace(
        changed,
        ipvs=IpvsDump(listing, conn) if ipvs else None,
        ipsets=IpsetDump("") if ipvs else None,
    )


def with_root(snapshot: Snapshot, **changes: object) -> Snapshot:
    """The snapshot with its root netns changed (routes=..., rules=..., fdb=...)."""
    netns = tuple(
        replace(ns, **changes) if ns.inode == snapshot.root_netns else ns  # type: ignore[arg-type]
        for ns in snapshot.netns
    )
    return replace(snapshot, netns=netns)


def kube_services(
    vip: str,
    port: int,
    endpoints: list[str],
    name: str = "default/web",
    extra_filter: str = "",
    forward_policy: str = "ACCEPT",
    nodeport: int | None = None,
) -> str:
    """iptables-save text in kube-proxy's shape: one Service with endpoints, MASQUERADE, KUBE-FORWARD."""
    svc = "KUBE-SVC-TESTSVC0000000001"
    seps = [f"KUBE-SEP-TESTSEP{i:011d}" for i in range(len(endpoints))]
    nat = [
        "*nat",
        ":PREROUTING ACCEPT [0:0]",
        ":INPUT ACCEPT [0:0]",
        ":OUTPUT ACCEPT [0:0]",
        ":POSTROUTING ACCEPT [0:0]",
        ":KUBE-SERVICES - [0:0]",
        ":KUBE-NODEPORTS - [0:0]",
        ":KUBE-POSTROUTING - [0:0]",
        ":KUBE-MARK-MASQ - [0:0]",
        f":{svc} - [0:0]",
        *[f":{s} - [0:0]" for s in seps],
        '-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
        '-A OUTPUT -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
        '-A POSTROUTING -m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING',
        "-A KUBE-MARK-MASQ -j MARK --or-mark 0x4000",
        "-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN",
        "-A KUBE-POSTROUTING -j MARK --xor-mark 0x4000",
        '-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE --random-fully',
        f'-A KUBE-SERVICES -d {vip}/32 -p tcp -m comment --comment "{name}:http cluster IP" -m tcp --dport {port} -j {svc}',
    ]
    if nodeport is not None:
        nat.append(
            f'-A KUBE-NODEPORTS -p tcp -m comment --comment "{name}:http" -m tcp --dport {nodeport} -j {svc}'
        )
    nat.append(
        '-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS'
    )
    nat.append(
        f'-A {svc} ! -s 10.244.0.0/16 -d {vip}/32 -p tcp -m comment --comment "{name}:http cluster IP" -m tcp --dport {port} -j KUBE-MARK-MASQ'
    )
    if nodeport is not None:
        nat.append(
            f'-A {svc} -p tcp -m comment --comment "{name}:http" -m tcp --dport {nodeport} -j KUBE-MARK-MASQ'
        )
    n = len(endpoints)
    for i, (ep, sep) in enumerate(zip(endpoints, seps, strict=True)):
        if i < n - 1:
            nat.append(
                f'-A {svc} -m comment --comment "{name}:http -> {ep}:8080" -m statistic --mode random --probability {1 / (n - i):.11f} -j {sep}'
            )
        else:
            nat.append(f'-A {svc} -m comment --comment "{name}:http -> {ep}:8080" -j {sep}')
    for ep, sep in zip(endpoints, seps, strict=True):
        nat.append(f'-A {sep} -s {ep}/32 -m comment --comment "{name}:http" -j KUBE-MARK-MASQ')
        nat.append(
            f'-A {sep} -p tcp -m comment --comment "{name}:http" -m tcp -j DNAT --to-destination {ep}:8080'
        )
    nat.append("COMMIT")
    filt = [
        "*filter",
        ":INPUT ACCEPT [0:0]",
        f":FORWARD {forward_policy} [0:0]",
        ":OUTPUT ACCEPT [0:0]",
        ":KUBE-FORWARD - [0:0]",
        '-A FORWARD -m comment --comment "kubernetes forwarding rules" -j KUBE-FORWARD',
        "-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP",
        '-A KUBE-FORWARD -m comment --comment "kubernetes forwarding rules" -m mark --mark 0x4000/0x4000 -j ACCEPT',
        '-A KUBE-FORWARD -m comment --comment "kubernetes forwarding conntrack rule" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT',
    ]
    if extra_filter:
        filt.append(extra_filter)
    filt.append("COMMIT")
    return "\n".join(nat + filt) + "\n"
