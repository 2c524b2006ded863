"""The node snapshot: plain, frozen, typed, versioned data.

This is the contract between the collectors (the only code that reads a node) and
everything that shows or reasons about a node (the trace engine, the TUI, the CLI).
Every field is JSON-serialisable through `podpath.snapshot.codec`.

Conventions:
- A namespace is identified by its nsfs inode (`lsns` does the same; all nsfs inodes
  on one host share one device, recorded in `Namespace.dev`).
- An interface is referenced as (netns inode, ifindex), never by a bare ifindex:
  ifindexes repeat across namespaces.
- Large netfilter and conntrack dumps are kept as the text the kernel's tools print
  and parsed on demand by pure functions in `podpath.netfilter` and
  `podpath.conntrack`: indexing 110k rules is cheap, building 110k objects is not.
- Strings read from the node may hold any bytes: they are decoded with
  `surrogateescape`, so non-UTF-8 bytes survive a JSON round trip unchanged.
- What could not be read is a `Gap`, never silently missing data.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, fields
from operator import attrgetter
from typing import Any

SCHEMA_VERSION = 1


class Value:
    """Equality and hash by field values, as `@dataclass(eq=True)` generates them, written once.

    The dataclasses generate the rest. Generating `__eq__` and `__hash__` for each of
    the model's 36 classes compiled 72 functions at import: a third of importing the
    model, which every command does (8 ms of a cached `trace`'s 0.3 s).
    """

    __slots__ = ()

    def __eq__(self, other: object) -> bool:
        if other.__class__ is self.__class__:
            return _values(self) == _values(other)
        return NotImplemented

    def __hash__(self) -> int:
        return hash(_values(self))


_GETTERS: dict[type, Callable[[object], tuple[Any, ...]]] = {}


def _values(obj: object) -> tuple[Any, ...]:
    """The values of a dataclass instance's compared fields, in field order."""
    get = _GETTERS.get(obj.__class__)
    if get is None:
        names = [f.name for f in fields(obj) if f.compare]  # type: ignore[arg-type]
        if len(names) > 1:
            get = attrgetter(*names)
        else:
            get = _single(names[0]) if names else _none
        _GETTERS[obj.__class__] = get
    return get(obj)


def _single(name: str) -> Callable[[object], tuple[Any, ...]]:
    return lambda obj: (getattr(obj, name),)


def _none(_obj: object) -> tuple[Any, ...]:
    return ()


# Namespace types in the order lsns prints them.
NAMESPACE_TYPES: tuple[str, ...] = ("mnt", "net", "pid", "uts", "ipc", "user", "cgroup", "time")


@dataclass(frozen=True, eq=False)
class Gap(Value):
    """Something a collector could not learn, and why."""

    subject: str
    reason: str
    # vanished | permission | missing-tool | timeout | inconsistent | unavailable | error
    kind: str = "error"
    # The Linux capability that would have allowed the read, when that is the cause.
    capability: str | None = None


@dataclass(frozen=True, eq=False)
class NeighbourTable(Value):
    """One of the kernel's neighbour tables (ARP's arp_cache, NDP's ndisc_cache), as
    `ip -s ntable show` prints it: one table per family for the whole kernel, its entries
    those of every network namespace (net/core/neighbour.c, neightbl_fill_info)."""

    family: int  # 4 (arp_cache) or 6 (ndisc_cache)
    name: str
    # net.ipv4.neigh.default.gc_thresh1/2/3 (ipv6 for ndisc_cache): below thresh1 nothing
    # is collected; past thresh2 a new entry first evicts idle ones; at thresh3 it is refused.
    thresh1: int
    thresh2: int
    thresh3: int
    entries: int  # every namespace's entries, PERMANENT ones included
    # Counters since boot: new entries refused because the table was full ("neighbor
    # table overflow!" in the kernel log), and evictions forced by a new entry.
    table_fulls: int = 0
    forced_gc_runs: int = 0


@dataclass(frozen=True, eq=False)
class NodeFacts(Value):
    """Facts about the node as a whole."""

    hostname: str
    kernel: str
    host_root: str = "/"
    boot_id: str | None = None
    ip_forward: int | None = None
    bridge_nf_call_iptables: int | None = None
    # rp_filter per interface name in the root netns ("all" and "default" included).
    rp_filter: dict[str, int] = field(default_factory=dict)
    # Effective capabilities of the collecting process, by name (CAP_NET_ADMIN, ...).
    capabilities: tuple[str, ...] = ()
    euid: int | None = None
    # The conntrack table: entries now and the most it holds (net.netfilter.
    # nf_conntrack_count, nf_conntrack_max); None where nf_conntrack is not loaded.
    conntrack_count: int | None = None
    conntrack_max: int | None = None
    # bridge-nf-call-iptables' IPv6 twin (net.bridge.bridge-nf-call-ip6tables):
    # br_netfilter hands bridged IPv6 frames to the ip6 hooks only when it is 1. None: not
    # read (absent without br_netfilter, or an older snapshot).
    bridge_nf_call_ip6tables: int | None = None
    # The kernel's neighbour tables (RTM_GETNEIGHTBL); None: not read (an older snapshot,
    # a gap, a listing without the network namespaces).
    neighbour_tables: tuple[NeighbourTable, ...] | None = None

    def bridge_nf_calls(self, family: int, bridge: Link | None = None) -> int | None:
        """net.bridge.bridge-nf-call-iptables (IPv4) or -ip6tables (IPv6): 1 when
        br_netfilter hands the node's bridged frames of that family to the IP hooks. A
        snapshot that did not read the IPv6 switch (older ones) answers with IPv4's: both
        default to 1 when br_netfilter loads, and kubeadm's preflight wants both.

        With `bridge`, that bridge's frames: its own nf_call_iptables (nf_call_ip6tables)
        hands them over with the switch at 0 (br_nf_pre_routing: `!brnet->call_iptables &&
        !br_opt_get(br, BROPT_NF_CALL_IPTABLES)`); with the switch absent br_netfilter is
        not loaded, and nothing hands them over."""
        value = self.bridge_nf_call_iptables
        if family == 6 and self.bridge_nf_call_ip6tables is not None:
            value = self.bridge_nf_call_ip6tables
        if value == 0 and bridge is not None:
            own = bridge.nf_call_ip6tables if family == 6 else bridge.nf_call_iptables
            return 1 if own else 0
        return value


@dataclass(frozen=True, eq=False)
class HolderFd(Value):
    """An open file descriptor that holds a namespace (/proc/PID/fd/FD -> net:[...])."""

    pid: int
    fd: int


@dataclass(frozen=True, eq=False)
class Namespace(Value):
    """One namespace of any type, as lsns shows it, plus holders lsns misses."""

    type: str
    inode: int
    dev: int
    nprocs: int
    pid: int | None  # lowest PID holding it, None when no process does
    uid: int | None
    user: str | None
    command: str | None
    netnsid: int | None = None  # id of this net namespace as seen from the root netns
    nsfs: str | None = None  # a bind-mount path of the nsfs file, e.g. /run/netns/cni-...
    # How it is held: "process", "bind-mount", "fd".
    held_by: tuple[str, ...] = ()
    # Which open fds hold it (pid, fd), when "fd" is among held_by.
    holder_fds: tuple[HolderFd, ...] = ()


@dataclass(frozen=True, eq=False)
class Process(Value):
    """One process. Identity is (pid, start_time)."""

    pid: int
    start_time: int  # clock ticks after boot, field 22 of /proc/PID/stat
    ppid: int
    comm: str
    cmdline: tuple[str, ...]
    uid: int | None
    state: str  # R, S, Z, ... ("?" when unreadable)
    cgroup: str | None
    # Namespace type -> nsfs inode; a type is absent when it could not be read.
    namespaces: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, eq=False)
class Container(Value):
    """A container of a pod (the sandbox/pause container included)."""

    name: str
    id: str
    kind: str  # "sandbox" or "container"
    pids: tuple[int, ...] = ()
    image: str | None = None
    command: tuple[str, ...] = ()
    # OCI process env as KEY=<redacted> unless redaction was turned off.
    env: tuple[str, ...] = ()
    # Namespace types this container shares with its sandbox (e.g. net, ipc, uts) and
    # not with the whole node: namespaces every process of the node shares (user,
    # cgroup, time on most nodes) are in node_namespaces instead.
    shared_namespaces: tuple[str, ...] = ()
    # What the runtime (CRI) reports; None where the source did not say.
    # created | running | exited | unknown; a sandbox's: ready | notready
    state: str | None = None
    attempt: int | None = None  # CRI metadata attempt: 0, then +1 per restart
    restart_count: int | None = None  # kubelet's io.kubernetes.container.restartCount
    exit_code: int | None = None  # exited containers only
    created_at: int | None = None  # unix time in nanoseconds, as CRI reports it
    started_at: int | None = None
    finished_at: int | None = None
    reason: str | None = None  # why it exited (Completed, Error, OOMKilled, ...)
    image_id: str | None = None  # the image's id (sha256:...), CRI image_ref
    log_path: str | None = None
    # Namespace types shared with every process of the node (not a pod's doing).
    node_namespaces: tuple[str, ...] = ()
    # How many of kubelet's Service-link variables were left out of `env`: the snapshot's
    # service_links holds them, with values, once per distinct set (with thousands of
    # Services one container's are megabytes, the same in every replica).
    service_link_env: int = 0


@dataclass(frozen=True, eq=False)
class Pod(Value):
    """A pod sandbox as the runtime (or a fallback) knows it."""

    namespace: str
    name: str
    uid: str
    sandbox_id: str
    pause_pid: int | None
    pause_start_time: int | None = None
    netns_inode: int | None = None
    netns_path: str | None = None
    ips: tuple[str, ...] = ()
    host_network: bool = False
    containers: tuple[Container, ...] = ()
    runtime: str = "unknown"  # containerd | cri-o | docker | unknown
    # How the pod was found: cri (the runtime's CRI socket) | runtime-state (its files)
    # | cgroup | log-dir | pause-process | kindnet-db (cni-kindnet's pod database)
    source: str = "runtime-state"
    log_dir: str | None = None
    sandbox_image: str | None = None  # the pause image, e.g. registry.k8s.io/pause:3.9
    state: str | None = None  # ready | notready (CRI PodSandboxState); None: not known
    attempt: int | None = None  # sandbox attempt (a re-created sandbox counts up)
    created_at: int | None = None  # unix time in nanoseconds
    # Other sources that added to what `source` found (e.g. kindnet-db), in order.
    also_from: tuple[str, ...] = ()
    # What the CNI plugin recorded for the pod (kindnet's database); None/() where unknown.
    host_interface: str | None = None  # the host side of the pod's veth
    gateways: tuple[str, ...] = ()
    mtu: int | None = None


@dataclass(frozen=True, eq=False)
class LinkRef(Value):
    """An interface, by namespace and index."""

    netns: int
    ifindex: int


@dataclass(frozen=True, eq=False)
class Address(Value):
    """An interface address."""

    family: int  # 4 or 6
    address: str
    prefixlen: int
    scope: str = "global"
    label: str | None = None
    # IFA_F_* as `ip addr` prints them: secondary, nodad, optimistic, dadfailed,
    # deprecated, tentative, noprefixroute. A tentative or dadfailed IPv6 address is not
    # used: no local route, no answer to neighbour solicitations (`usable`).
    flags: tuple[str, ...] = ()

    @property
    def usable(self) -> bool:
        """Whether the kernel uses the address: not still in, nor failed by, duplicate
        address detection (an optimistic one is used meanwhile, RFC 4429)."""
        if "dadfailed" in self.flags:
            return False
        return "tentative" not in self.flags or "optimistic" in self.flags


@dataclass(frozen=True, eq=False)
class Vxlan(Value):
    """VXLAN device details."""

    vni: int
    port: int | None = None
    local: str | None = None
    group: str | None = None  # remote or multicast group, when fixed
    dev: int | None = None  # underlay ifindex in the same namespace
    learning: bool = True
    # proxy (answers ARP from the neighbour table), l2miss, l3miss (misses go to an agent).
    flags: tuple[str, ...] = ()


@dataclass(frozen=True, eq=False)
class LinkStats(Value):
    """An interface's counters (IFLA_STATS64, struct rtnl_link_stats64), as `ip -s -s link` shows them."""

    rx_packets: int = 0
    tx_packets: int = 0
    rx_bytes: int = 0
    tx_bytes: int = 0
    rx_errors: int = 0
    tx_errors: int = 0
    rx_dropped: int = 0
    tx_dropped: int = 0
    multicast: int = 0
    collisions: int = 0
    rx_length_errors: int = 0
    rx_over_errors: int = 0
    rx_crc_errors: int = 0
    rx_frame_errors: int = 0
    rx_fifo_errors: int = 0
    rx_missed_errors: int = 0
    tx_aborted_errors: int = 0
    tx_carrier_errors: int = 0
    tx_fifo_errors: int = 0
    tx_heartbeat_errors: int = 0
    tx_window_errors: int = 0
    rx_compressed: int = 0
    tx_compressed: int = 0
    rx_nohandler: int = 0
    rx_otherhost_dropped: int = 0


@dataclass(frozen=True, eq=False)
class BpfProgram(Value):
    """An eBPF program attached to an interface (tc filter or XDP), as far as it was learned."""

    id: int | None = None
    name: str | None = None  # the program's own name (bpf_prog_info, at most 15 chars)
    tag: str | None = None  # hex SHA of the instructions, as tc and bpftool print it
    section: str | None = None  # tc's bpf_name: object and section, e.g. bpf_lxc.o:[from-container]
    type: str | None = None  # sched_cls, sched_act, xdp, ... (bpf_prog_info)


@dataclass(frozen=True, eq=False)
class Xdp(Value):
    """An XDP attachment of a link (IFLA_XDP)."""

    mode: str  # drv | generic | offload | multi
    program: BpfProgram | None = None


@dataclass(frozen=True, eq=False)
class Link(Value):
    """A network interface in one namespace."""

    netns: int
    ifindex: int
    name: str
    kind: str | None  # veth, bridge, vxlan, ... None for plain devices (lo, physical)
    mac: str | None
    mtu: int
    state: str  # operstate: UP, DOWN, UNKNOWN, LOWERLAYERDOWN, ...
    flags: tuple[str, ...] = ()
    master: int | None = None  # ifindex of the bridge/bond in the same namespace
    link: int | None = None  # IFLA_LINK: the peer's ifindex (in link_netnsid's namespace)
    link_netnsid: int | None = None  # IFLA_LINK_NETNSID as seen from this namespace
    peer: LinkRef | None = None  # the veth peer, resolved to a namespace inode
    addresses: tuple[Address, ...] = ()
    vxlan: Vxlan | None = None
    stats: LinkStats | None = None
    xdp: Xdp | None = None
    # A bridge port's hairpin mode (IFLA_BRPORT_MODE): may a frame leave by the port it came
    # in on? None when the link is no bridge port, or the kernel did not say.
    hairpin: bool | None = None
    # The device group (IFLA_GROUP; `ip link ... group`), 0 "default"; None: not collected.
    group: int | None = None
    # A bridge port's isolation (IFLA_BRPORT_ISOLATED; `bridge link set dev X isolated on`):
    # no frame is bridged from one isolated port to another. None: no bridge port, or not said.
    isolated: bool | None = None
    # A bridge port's learning (IFLA_BRPORT_LEARNING; `bridge link set dev X learning off`):
    # a frame in by the port moves its source MAC's FDB entry there, unless the entry is
    # sticky. None: no bridge port, or not said.
    learning: bool | None = None
    # A bridge port's STP state (IFLA_BRPORT_STATE; `bridge link`: state forwarding):
    # disabled, listening, learning, forwarding or blocking. Only a forwarding port takes
    # frames in and lets them out (br_handle_frame, should_deliver). None: no bridge port,
    # or not said (older snapshots).
    port_state: str | None = None
    # A bridge's own br_netfilter switches (IFLA_BR_NF_CALL_IPTABLES, _IP6TABLES; `ip link
    # set BR type bridge nf_call_iptables 1`): on, they hand the bridge's frames of that
    # family to the IP hooks whatever net.bridge.bridge-nf-call-* say (NodeFacts.
    # bridge_nf_calls). None: no bridge, or not said (older snapshots).
    nf_call_iptables: bool | None = None
    nf_call_ip6tables: bool | None = None


@dataclass(frozen=True, eq=False)
class Nexthop(Value):
    """One path of a multipath route."""

    gateway: str | None
    dev: int | None
    weight: int = 1
    flags: tuple[str, ...] = ()


@dataclass(frozen=True, eq=False)
class Route(Value):
    """A route in one table of one namespace."""

    netns: int
    family: int
    table: int
    type: str  # unicast, local, broadcast, blackhole, unreachable, prohibit, ...
    dst: str  # CIDR; default routes are 0.0.0.0/0 or ::/0
    gateway: str | None = None
    dev: int | None = None
    prefsrc: str | None = None
    metric: int | None = None
    scope: str = "global"  # as `ip -d route` names scope 0
    protocol: str = "boot"
    flags: tuple[str, ...] = ()  # onlink, ...
    tos: int = 0
    multipath: tuple[Nexthop, ...] = ()


@dataclass(frozen=True, eq=False)
class Rule(Value):
    """A policy routing rule."""

    netns: int
    family: int
    priority: int
    action: str  # lookup (to_tbl), goto, nop, blackhole, unreachable, prohibit
    table: int | None = None
    src: str | None = None  # CIDR
    dst: str | None = None
    fwmark: int | None = None
    fwmask: int | None = None
    iif: str | None = None
    oif: str | None = None
    invert: bool = False
    goto: int | None = None
    # Selectors and options added after the first schema; their defaults mean "absent".
    tos: int = 0
    ipproto: int | None = None  # IP protocol number (6 tcp, 17 udp)
    sport: tuple[int, ...] = ()  # (first, last) of the source port range; () when absent
    dport: tuple[int, ...] = ()  # (first, last) of the destination port range
    uidrange: tuple[int, ...] = ()  # (first, last) uid of the sending socket
    tun_id: int | None = None
    l3mdev: bool = False  # `lookup [l3mdev-table]`: the table of the packet's VRF
    suppress_prefixlength: int | None = None
    suppress_ifgroup: int | None = None
    protocol: str | None = None  # who made the rule, as `ip rule` names it (kernel, boot, ...)
    # FRA_FLOW: the realms (route class) the rule gives its result, from << 16 | to; IPv4 only.
    realms: int | None = None


@dataclass(frozen=True, eq=False)
class Neighbour(Value):
    """An ARP/NDP entry."""

    netns: int
    family: int
    ifindex: int
    dst: str
    lladdr: str | None
    state: tuple[str, ...] = ()  # REACHABLE, STALE, PERMANENT, ...
    flags: tuple[str, ...] = ()


@dataclass(frozen=True, eq=False)
class FdbEntry(Value):
    """A bridge or VXLAN forwarding database entry."""

    netns: int
    ifindex: int  # the port (or the vxlan device)
    mac: str
    master: int | None = None
    vlan: int | None = None
    dst: str | None = None  # remote VTEP for vxlan entries
    state: tuple[str, ...] = ()  # permanent, static, ...
    flags: tuple[str, ...] = ()  # self, master, extern_learn, ...


@dataclass(frozen=True, eq=False)
class NetConf(Value):
    """One interface's IP sysctls in one namespace (RTM_GETNETCONF), as `ip netconf` shows them.

    `ifindex` -1 is conf/all and -2 conf/default. The kernel combines some with `all`:
    rp_filter is max(all, interface), proxy_arp is all OR interface (IN_DEV_* macros).
    """

    family: int  # 4 or 6
    ifindex: int
    forwarding: int | None = None
    rp_filter: int | None = None  # IPv4 only: 0 off, 1 strict, 2 loose
    proxy_neigh: int | None = None  # proxy_arp (IPv4) or proxy_ndp (IPv6)
    mc_forwarding: int | None = None
    ignore_routes_with_linkdown: int | None = None
    # IPv4 only, from /proc/sys (netconf does not carry them); None: not read.
    accept_local: int | None = None  # a source address of this host accepted on input
    route_localnet: int | None = None  # 127/8 routed, not a martian
    src_valid_mark: int | None = None  # the packet's mark used in the reverse path lookup
    # IPv6 only, from /proc/sys (Linux 6.17+); None: not read or no such key.
    force_forwarding: int | None = None  # forward what this interface receives regardless


@dataclass(frozen=True, eq=False)
class TcQdisc(Value):
    """A queueing discipline of an interface (RTM_GETQDISC)."""

    ifindex: int
    kind: str  # noqueue, fq_codel, clsact, ingress, htb, ...
    handle: str  # as tc prints it, e.g. "ffff:" or "1:"
    parent: str  # "root", "ingress" (ffff:fff1 for clsact/ingress) or a class id


@dataclass(frozen=True, eq=False)
class TcFilter(Value):
    """A traffic control filter of an interface (RTM_GETTFILTER), e.g. an eBPF classifier."""

    ifindex: int
    hook: str  # ingress | egress (clsact/ingress qdisc) or the parent handle, e.g. "1:"
    kind: str  # bpf, u32, flower, matchall, ...
    protocol: str  # all, ip, ipv6, 802.1Q, or the hex ethertype
    pref: int
    chain: int = 0
    handle: str | None = None
    direct_action: bool = False
    program: BpfProgram | None = None  # kind bpf: the attached program (None for classic BPF)


@dataclass(frozen=True, eq=False)
class SocketOwner(Value):
    """A process holding a socket open, as `ss -p` shows it: ("comm",pid=N,fd=M)."""

    pid: int
    comm: str
    fd: int


@dataclass(frozen=True, eq=False)
class Socket(Value):
    """A TCP or UDP socket of one network namespace, as `ss -tuan` shows it."""

    netns: int
    protocol: str  # tcp | udp
    family: int  # 4 or 6
    state: str  # ss's names: LISTEN, UNCONN, ESTAB, TIME-WAIT, SYN-RECV, CLOSE-WAIT, ...
    local: str  # the bound address; 0.0.0.0 or :: for a wildcard bind
    local_port: int
    peer: str | None = None  # None while unconnected (LISTEN, UNCONN)
    peer_port: int | None = None
    inode: int = 0  # sockfs inode; 0 for TIME-WAIT and not-yet-accepted connections
    uid: int | None = None
    recv_q: int = 0  # a listener's accept queue; otherwise bytes not yet read
    send_q: int = 0  # a listener's backlog (sock_diag); otherwise bytes not yet acked
    # IPv6 sockets: False when a wildcard bind also takes IPv4 (v4-mapped); None: unknown.
    v6only: bool | None = None
    bound_dev: int | None = None  # SO_BINDTODEVICE ifindex, when bound to one device
    owners: tuple[SocketOwner, ...] = ()


@dataclass(frozen=True, eq=False)
class NetfilterChain(Value):
    """A chain of a netfilter table of a namespace other than the node's own."""

    name: str
    hook: str | None  # prerouting, input, forward, output, postrouting; None: a regular chain
    rules: int
    type: str | None = None  # a base chain's: filter, nat or route


@dataclass(frozen=True, eq=False)
class NetfilterTable(Value):
    """A netfilter table of a namespace other than the node's own (whose rules are read
    whole: Snapshot.iptables, Snapshot.nft): that it exists, and its chains' rule counts.

    A pod's namespace has none unless something wrote them there, as a service mesh does
    (Istio's ISTIO_OUTPUT redirects a pod's connections to its sidecar)."""

    backend: str  # "nft" (nf_tables: native and iptables-nft alike) or "legacy"
    family: str  # nft's family keyword: ip, ip6, inet, arp, bridge, netdev
    name: str
    # nf_tables' chains; () for a legacy table, whose rules are not counted (counting
    # them needs the table itself: getsockopt, which may create it where it is missing).
    chains: tuple[NetfilterChain, ...] = ()


@dataclass(frozen=True, eq=False)
class NetNamespace(Value):
    """Everything the kernel's network stack holds for one network namespace."""

    inode: int
    dev: int = 0
    paths: tuple[str, ...] = ()  # nsfs bind mounts, e.g. /run/netns/cni-<uuid>
    netnsid: int | None = None  # id in the root netns (ip netns list-id)
    holder_pid: int | None = None  # a process that holds it, if any
    links: tuple[Link, ...] = ()
    routes: tuple[Route, ...] = ()
    rules: tuple[Rule, ...] = ()
    neighbours: tuple[Neighbour, ...] = ()
    fdb: tuple[FdbEntry, ...] = ()
    netconf: tuple[NetConf, ...] = ()
    qdiscs: tuple[TcQdisc, ...] = ()
    tc_filters: tuple[TcFilter, ...] = ()
    # TCP and UDP sockets; None when they were not read (older snapshots, a gap).
    sockets: tuple[Socket, ...] | None = None
    # How they were read: "sock_diag" or "procfs" (which cannot tell v6only).
    sockets_source: str | None = None
    # net.ipv4.ip_local_port_range (IPv6 too): (low, high), where a client's source port
    # comes from when it binds none; () when not read (older snapshots, a gap).
    local_ports: tuple[int, ...] = ()
    # Its own netfilter tables, for a namespace other than the node's; None when not read
    # (the node's own, older snapshots, nf_tables not loaded, a gap).
    netfilter: tuple[NetfilterTable, ...] | None = None


@dataclass(frozen=True, eq=False)
class IptablesDump(Value):
    """The output of one iptables-save run, labelled by backend."""

    backend: str  # "legacy" or "nft"
    family: str  # "ipv4" or "ipv6"
    command: tuple[str, ...]
    text: str
    # nf_tables generation id when the dump was taken (nft backend), to skip reparsing.
    generation: int | None = None


@dataclass(frozen=True, eq=False)
class NftDump(Value):
    """The native nftables ruleset, as `nft -j list ruleset` prints it."""

    json_text: str
    generation: int | None = None


@dataclass(frozen=True, eq=False)
class RecentEntry(Value):
    """One source address an xt_recent list holds (/proc/net/xt_recent/NAME)."""

    address: str
    last_seen: int  # jiffies of its last packet
    age: float | None = None  # seconds from that packet to the snapshot (None: clock unread)


@dataclass(frozen=True, eq=False)
class RecentList(Value):
    """An xt_recent list: kube-proxy's ClientIP affinity keeps one per endpoint (KUBE-SEP-...)."""

    name: str
    entries: tuple[RecentEntry, ...] = ()


@dataclass(frozen=True, eq=False)
class IpvsDump(Value):
    """IPVS as the kernel shows it, verbatim: /proc/net/ip_vs and /proc/net/ip_vs_conn."""

    ip_vs: str
    ip_vs_conn: str | None = None


@dataclass(frozen=True, eq=False)
class ServiceLinkEnv(Value):
    """The Service-link variables kubelet gave one container, and only those.

    Read from the container's runtime spec (a running containerd container's bundle
    `process.env`, what its init was started with), else from /proc/PID/environ of the
    container's init process (collectors/proc/service_links.py): kubelet sets
    `<NAME>_SERVICE_HOST`, `<NAME>_SERVICE_PORT[_<PORTNAME>]` and `<NAME>_PORT_<port>_<PROTO>...`
    for each Service of the pod's namespace that existed when the container was created
    (kubernetes/kubernetes pkg/kubelet/envvars/envvars.go). Every other variable is
    dropped where it is read: environ holds secrets.
    """

    namespace: str  # the pod's
    pod: str
    container: str
    pid: int
    variables: tuple[str, ...] = ()  # NAME=VALUE, Service-link variables only
    started_at: int | None = None  # the container's start (ns), as CRI reports it
    # "namespace/pod/container" of an earlier record whose variables this container has
    # too (then `variables` is empty): every pod of a namespace holds the same set, and
    # with thousands of Services one set is megabytes, so it is written once.
    same_as: str = ""


@dataclass(frozen=True, eq=False)
class IpsetDump(Value):
    """The node's ipsets, as `ipset save` prints them (kube-proxy IPVS mode, Calico...)."""

    text: str
    command: tuple[str, ...] = ("ipset", "save")


@dataclass(frozen=True, eq=False)
class ConntrackDump(Value):
    """The conntrack table, as `conntrack -L -o extended` prints it."""

    text: str
    source: str = "conntrack -L -o extended"


@dataclass(frozen=True, eq=False)
class CniConfig(Value):
    """One file in the CNI configuration directory."""

    path: str
    text: str
    name: str | None = None
    cni_version: str | None = None
    plugins: tuple[str, ...] = ()  # plugin types in chain order
    error: str | None = None  # why it is not a valid config, when it is not


@dataclass(frozen=True, eq=False)
class IpamAllocation(Value):
    """One host-local IPAM reservation (/var/lib/cni/networks/NET/IP)."""

    network: str
    ip: str
    container_id: str
    ifname: str | None = None
    # True when no known sandbox has this container id: a leaked address.
    stale: bool = False


@dataclass(frozen=True, eq=False)
class CniState(Value):
    """CNI configuration and IPAM state."""

    config_dir: str = "/etc/cni/net.d"
    configs: tuple[CniConfig, ...] = ()
    active: str | None = None  # path of the config the runtime would use
    allocations: tuple[IpamAllocation, ...] = ()


@dataclass(frozen=True, eq=False)
class Snapshot(Value):
    """Everything podpath knows about one node at one moment."""

    schema_version: int
    taken_at: float  # unix time
    node: NodeFacts
    root_netns: int  # inode of the node's own (root) network namespace
    namespaces: tuple[Namespace, ...] = ()
    processes: tuple[Process, ...] = ()
    pods: tuple[Pod, ...] = ()
    netns: tuple[NetNamespace, ...] = ()
    iptables: tuple[IptablesDump, ...] = ()
    nft: NftDump | None = None
    conntrack: ConntrackDump | None = None
    cni: CniState = field(default_factory=CniState)
    gaps: tuple[Gap, ...] = ()
    duration: float = 0.0  # seconds the collection took
    # Kernel state some rules consult, of the node's root netns.
    xt_recent: tuple[RecentList, ...] | None = None  # None: not read (an older snapshot)
    ipvs: IpvsDump | None = None  # None: not read, or no ip_vs in the kernel
    ipsets: IpsetDump | None = None
    # Service-link variables of each pod container (None: not read, an older snapshot).
    service_links: tuple[ServiceLinkEnv, ...] | None = None
