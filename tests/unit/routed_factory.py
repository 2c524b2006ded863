"""Hand-built snapshots of routed nodes: Calico-style, AWS VPC CNI-style and Cilium-style.

The shapes follow what those CNIs leave in the kernel (and what the lab builds for
real): a cali/eni/lxc veth per pod with no address on the host side, a /32 route to
each pod, the pod's gateway 169.254.1.1 (an address that exists nowhere) reached over
a link-scope route or `onlink`, proxy_arp on the host side or a permanent neighbour
in the pod, and the sysctls as netconf entries.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from podpath.snapshot.model import (
    SCHEMA_VERSION,
    Address,
    BpfProgram,
    Link,
    LinkRef,
    Neighbour,
    NetConf,
    NetNamespace,
    NodeFacts,
    Pod,
    Route,
    Rule,
    Snapshot,
    TcFilter,
    Xdp,
)

LO, ETH0, ETH1 = 1, 2, 3
LOCAL, MAIN = 255, 254
CALI_MAC = "ee:ee:ee:ee:ee:ee"
GW4 = "169.254.1.1"
GW6 = "fe80::ecee:eeff:feee:eeee"


def root_inode(node: int) -> int:
    """The root netns inode of node n."""
    return 4026532000 + node * 1000


def pod_inode(node: int, i: int) -> int:
    """The netns inode of pod i on node n."""
    return root_inode(node) + 1 + i


def host_index(i: int) -> int:
    """ifindex of pod i's host-side veth."""
    return 10 + i


@dataclass
class RoutedPod:
    """A pod of a routed node."""

    name: str
    ip: str
    ip6: str | None = None
    host_veth: str = ""  # defaults to cali<i...>


@dataclass
class RoutedNode:
    """A routed node: its address, pods and how they reach their gateway."""

    number: int = 0
    hostname: str = "calico-a"
    address: str = "192.168.0.2"
    address6: str | None = None
    default_gateway: str | None = "192.168.0.1"  # None: no route covers 169.254.1.1
    pods: list[RoutedPod] = field(default_factory=list)
    onlink: bool = False  # pod default route `via 169.254.1.1 dev eth0 onlink`
    proxy_arp: int | None = 1  # None: netconf not collected
    static_arp: bool = False  # AWS: permanent neighbour for 169.254.1.1 in the pod
    host_prefix: str = "cali"
    rp_filter_all: int = 0
    rp_filter_host: int = 0
    forwarding: int = 1
    remote_routes: tuple[tuple[str, str], ...] = ()  # (pod CIDR, via node address)
    rules: tuple[Rule, ...] = ()
    extra_routes: tuple[Route, ...] = ()
    extra_links: tuple[Link, ...] = ()
    tc_filters: tuple[TcFilter, ...] = ()
    pod_neighbours: tuple[Neighbour, ...] = ()
    xdp_on_eth0: Xdp | None = None


def _conf(family: int, ifindex: int, forwarding: int, rp: int, proxy: int) -> NetConf:
    """A netconf entry as podpath reads it on a kernel before 6.17: IPv4's /proc/sys
    keys read, IPv6's force_forwarding absent."""
    conf = NetConf(family, ifindex, forwarding, rp if family == 4 else None, proxy, 0, 0)
    if family == 4:
        return replace(conf, accept_local=0, route_localnet=0, src_valid_mark=0)
    return conf


def _lo(inode: int, with6: bool) -> Link:
    addrs: tuple[Address, ...] = (Address(4, "127.0.0.1", 8, "host"),)
    if with6:
        addrs += (Address(6, "::1", 128, "host"),)
    return Link(
        inode,
        LO,
        "lo",
        None,
        "00:00:00:00:00:00",
        65536,
        "UNKNOWN",
        ("LOOPBACK", "UP"),
        addresses=addrs,
    )


def build(spec: RoutedNode) -> Snapshot:
    """A Snapshot of one routed node."""
    n = spec.number
    root = root_inode(n)
    dual = spec.address6 is not None
    eth0_addrs: tuple[Address, ...] = (Address(4, spec.address, 24),)
    if spec.address6:
        eth0_addrs += (Address(6, spec.address6, 64),)
    links: list[Link] = [
        _lo(root, dual),
        Link(
            root,
            ETH0,
            "eth0",
            None,
            f"02:00:00:00:{n:02x}:02",
            1500,
            "UP",
            ("UP",),
            addresses=eth0_addrs,
            xdp=spec.xdp_on_eth0,
        ),
        *spec.extra_links,
    ]
    subnet = f"{spec.address.rsplit('.', 1)[0]}.0/24"
    routes: list[Route] = [
        Route(
            root,
            4,
            MAIN,
            "unicast",
            subnet,
            dev=ETH0,
            scope="link",
            prefsrc=spec.address,
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
    ]
    if spec.default_gateway:
        routes.append(
            Route(root, 4, MAIN, "unicast", "0.0.0.0/0", gateway=spec.default_gateway, dev=ETH0)
        )
    for cidr, via in spec.remote_routes:
        fam = 6 if ":" in cidr else 4
        routes.append(
            Route(root, fam, MAIN, "unicast", cidr, gateway=via, dev=ETH0, protocol="bird")
        )
    if spec.address6:
        routes.append(Route(root, 6, MAIN, "unicast", f"{spec.address6}/64", dev=ETH0, metric=256))
        routes.append(Route(root, 6, LOCAL, "local", f"{spec.address6}/128", dev=ETH0))
    conf = [
        _conf(4, -1, spec.forwarding, spec.rp_filter_all, 0),
        _conf(4, -2, spec.forwarding, 0, 0),
        _conf(4, ETH0, spec.forwarding, 0, 0),
        _conf(6, -1, spec.forwarding, 0, 0),
        _conf(6, ETH0, spec.forwarding, 0, 0),
    ]
    namespaces: list[NetNamespace] = []
    pods: list[Pod] = []
    for i, p in enumerate(spec.pods):
        inode = pod_inode(n, i)
        hidx = host_index(i)
        name = p.host_veth or f"{spec.host_prefix}{n}{i:010d}"
        host_addrs = (Address(6, GW6, 64, "link"),) if p.ip6 else ()
        links.append(
            Link(
                root,
                hidx,
                name,
                "veth",
                CALI_MAC,
                1500,
                "UP",
                ("UP",),
                link=ETH0,
                link_netnsid=i,
                peer=LinkRef(inode, ETH0),
                addresses=host_addrs,
            )
        )
        routes.append(Route(root, 4, MAIN, "unicast", f"{p.ip}/32", dev=hidx, scope="link"))
        if p.ip6:
            routes.append(Route(root, 6, MAIN, "unicast", f"{p.ip6}/128", dev=hidx, metric=1024))
        if spec.proxy_arp is not None:
            conf.append(_conf(4, hidx, spec.forwarding, spec.rp_filter_host, spec.proxy_arp))
            conf.append(_conf(6, hidx, spec.forwarding, 0, 1 if p.ip6 else 0))
        pod_addrs: tuple[Address, ...] = (Address(4, p.ip, 32),)
        if p.ip6:
            pod_addrs += (Address(6, p.ip6, 128),)
        pod_mac = f"0a:58:{n:02x}:00:00:{i:02x}"
        pod_links = (
            _lo(inode, p.ip6 is not None),
            Link(
                inode,
                ETH0,
                "eth0",
                "veth",
                pod_mac,
                1500,
                "UP",
                ("UP",),
                link=hidx,
                link_netnsid=0,
                peer=LinkRef(root, hidx),
                addresses=pod_addrs,
            ),
        )
        flags = ("onlink",) if spec.onlink else ()
        pod_routes = [
            Route(inode, 4, MAIN, "unicast", "0.0.0.0/0", gateway=GW4, dev=ETH0, flags=flags),
            Route(inode, 4, LOCAL, "local", "127.0.0.0/8", dev=LO, scope="host"),
            Route(inode, 4, LOCAL, "local", f"{p.ip}/32", dev=ETH0, scope="host", prefsrc=p.ip),
        ]
        if not spec.onlink:
            pod_routes.append(Route(inode, 4, MAIN, "unicast", f"{GW4}/32", dev=ETH0, scope="link"))
        if p.ip6:
            pod_routes += [
                Route(inode, 6, MAIN, "unicast", "::/0", gateway=GW6, dev=ETH0, metric=1024),
                Route(inode, 6, MAIN, "unicast", "fe80::/64", dev=ETH0, metric=256),
                Route(inode, 6, LOCAL, "local", f"{p.ip6}/128", dev=ETH0),
            ]
        neigh = list(spec.pod_neighbours)
        if spec.static_arp:
            neigh.append(Neighbour(inode, 4, ETH0, GW4, CALI_MAC, ("PERMANENT",)))
        namespaces.append(
            NetNamespace(
                inode,
                paths=(f"/var/run/netns/cni-{n}-{i}",),
                links=pod_links,
                routes=tuple(pod_routes),
                neighbours=tuple(neigh),
                netconf=(
                    _conf(4, -1, 0, 0, 0),
                    _conf(4, ETH0, 0, 0, 0),
                    _conf(6, -1, 0, 0, 0),
                    _conf(6, ETH0, 0, 0, 0),
                ),
            )
        )
        pods.append(
            Pod(
                "default",
                p.name,
                f"uid-{n}-{i}",
                f"sb-{n}-{i}",
                100 + i,
                netns_inode=inode,
                ips=(p.ip, p.ip6) if p.ip6 else (p.ip,),
                runtime="containerd",
            )
        )
    routes.extend(spec.extra_routes)
    root_ns = NetNamespace(
        root,
        links=tuple(links),
        routes=tuple(routes),
        rules=spec.rules,
        netconf=tuple(conf),
        tc_filters=spec.tc_filters,
    )
    return Snapshot(
        schema_version=SCHEMA_VERSION,
        taken_at=0.0,
        node=NodeFacts(spec.hostname, "6.1.0", ip_forward=spec.forwarding),
        root_netns=root,
        pods=tuple(pods),
        netns=(root_ns, *namespaces),
    )


def without_netconf(snapshot: Snapshot) -> Snapshot:
    """The same node as an older snapshot would hold it: no netconf anywhere."""
    return replace(snapshot, netns=tuple(replace(ns, netconf=()) for ns in snapshot.netns))


def bpf_filter(ifindex: int, hook: str = "ingress") -> TcFilter:
    """Cilium's from-container classifier on a host-side veth."""
    return TcFilter(
        ifindex,
        hook,
        "bpf",
        "all",
        1,
        0,
        "0x1",
        True,
        BpfProgram(
            2404, "cil_from_contai", "a55c91b88bcdc6f1", "bpf_lxc.o:[from-container]", "sched_cls"
        ),
    )
