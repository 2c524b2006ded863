"""`podpath ls KIND`: one table definition per kind drives both the text and the JSON.

Each kind's listing (`podpath.table`) is made from the snapshot's index; namespaces,
which need only the snapshot, have a module of their own (`podpath.namespace_listing`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from podpath.analysis.index import SnapshotIndex
from podpath.analysis.pod_counts import pod_counts
from podpath.analysis.sockets import containers_by_pid, endpoint, is_listening, peer_endpoint
from podpath.namespace_listing import namespaces
from podpath.netfilter.owners import Owner, iptables_owner, nft_owner
from podpath.snapshot.codec import to_jsonable
from podpath.snapshot.model import (
    BpfProgram,
    Container,
    Link,
    NetConf,
    NetNamespace,
    Pod,
    Socket,
    SocketOwner,
    TcFilter,
    TcQdisc,
)
from podpath.table import Column, Listing, Row, key
from podpath.trace import sysctls
from podpath.trace.routing import describe_rule, table_name

if TYPE_CHECKING:
    from podpath.netfilter.kube_proxy import Service

# --- pods -------------------------------------------------------------------------


def _interface_row(index: SnapshotIndex, link: Link) -> Row:
    peer = index.peer(link)
    master = index.link(peer.netns, peer.master) if peer and peer.master else None
    return {
        "name": link.name,
        "ifindex": link.ifindex,
        "mac": link.mac,
        "mtu": link.mtu,
        "kind": link.kind,
        "state": link.state,
        "addresses": [f"{a.address}/{a.prefixlen}" for a in link.addresses],
        "peer": None
        if peer is None
        else {
            "name": peer.name,
            "ifindex": peer.ifindex,
            "netns_inode": peer.netns,
            "master": master.name if master else None,
        },
    }


def _pod_row(index: SnapshotIndex, pod: Pod) -> Row:
    ns = index.netns_by_inode.get(pod.netns_inode) if pod.netns_inode is not None else None
    links = (
        []
        if ns is None or pod.host_network
        else [_interface_row(index, link) for link in ns.links if link.name != "lo"]
    )
    counts = pod_counts(pod)
    return {
        "namespace": pod.namespace,
        "name": pod.name,
        "uid": pod.uid,
        "sandbox_id": pod.sandbox_id,
        "pause_pid": pod.pause_pid,
        "netns": {"inode": pod.netns_inode, "path": pod.netns_path},
        "ips": list(pod.ips),
        "host_network": pod.host_network,
        "runtime": pod.runtime,
        "source": pod.source,
        "also_from": list(pod.also_from),
        "host_interface": pod.host_interface,
        "gateways": list(pod.gateways),
        "mtu": pod.mtu,
        "sandbox_image": pod.sandbox_image,
        "state": pod.state,
        "attempt": pod.attempt,
        "created_at": pod.created_at,
        # As kubectl get pods: app containers running / app containers, restarts summed.
        "ready": counts.ready,
        "restarts": counts.restarts,
        "containers": [
            {
                "name": c.name,
                "id": c.id,
                "kind": c.kind,
                "pids": list(c.pids),
                "image": c.image,
                "image_id": c.image_id,
                "state": c.state,
                "attempt": c.attempt,
                "restart_count": c.restart_count,
                "exit_code": c.exit_code,
                "reason": c.reason,
                "created_at": c.created_at,
                "started_at": c.started_at,
                "finished_at": c.finished_at,
                "log_path": c.log_path,
                "shared_namespaces": list(c.shared_namespaces),
                "node_namespaces": list(c.node_namespaces),
            }
            for c in pod.containers
        ],
        "interfaces": links,
    }


def _host_side(row: Row) -> str:
    peers = [i["peer"] for i in row["interfaces"] if i.get("peer")]
    if not peers:
        return "hostNetwork" if row["host_network"] else "-"
    peer = peers[0]
    return f"{peer['name']}@{peer['master']}" if peer["master"] else peer["name"]


def pods(index: SnapshotIndex) -> Listing:
    """Pods with their sandbox, netns, IPs, containers and interfaces (veth peers resolved)."""
    rows = [_pod_row(index, pod) for pod in index.snapshot.pods]
    cols = (
        Column("NAMESPACE", key("namespace")),
        Column("NAME", key("name")),
        Column("IP", key("ips")),
        Column("PAUSE", key("pause_pid"), True),
        Column("NETNS", lambda r: r["netns"]["path"] or r["netns"]["inode"]),
        Column("HOST-IF", _host_side),
        # As kubectl get pods reads: a restarted container's exited attempts are not more
        # containers, and the sandbox is none (podpath.analysis.pod_counts).
        Column("READY", key("ready"), True),
        Column("RESTARTS", key("restarts"), True),
        Column("SANDBOX", lambda r: (r["sandbox_id"] or "")[:13]),
        Column("SOURCE", lambda r: "+".join([r["source"], *r["also_from"]])),
    )
    return Listing(rows, cols)


# --- links, routes, rules, neighbours, fdb ----------------------------------------------


def _netns_label(index: SnapshotIndex, inode: int) -> str:
    if inode == index.snapshot.root_netns:
        return "root"
    pod = index.pods_by_netns.get(inode)
    if pod is not None:
        return f"{pod.namespace}/{pod.name}"
    ns = index.netns_by_inode.get(inode)
    return ns.paths[0].rsplit("/", 1)[-1] if ns and ns.paths else str(inode)


def _dev_name(index: SnapshotIndex, netns: int, ifindex: int | None) -> str | None:
    link = index.link(netns, ifindex)
    return link.name if link else (None if ifindex is None else f"if{ifindex}")


def links(index: SnapshotIndex) -> Listing:
    """Every link of every namespace, `ip -d link`-style, with the veth peer resolved."""
    rows = []
    for ns in index.snapshot.netns:
        for link in ns.links:
            row = to_jsonable(link)
            row["netns_label"] = _netns_label(index, ns.inode)
            row["master_name"] = _dev_name(index, ns.inode, link.master)
            peer = index.peer(link)
            row["peer_name"] = peer.name if peer else None
            vxlan = link.vxlan
            row["vxlan_dev_name"] = (
                _dev_name(index, ns.inode, vxlan.dev) if vxlan and vxlan.dev else None
            )
            row["vxlan_remotes"] = _vxlan_remotes(ns, link)
            rows.append(row)
    cols = (
        Column("NETNS", key("netns_label")),
        Column("IDX", key("ifindex"), True),
        Column("NAME", lambda r: r["name"] + (f"@if{r['link']}" if r.get("link") else "")),
        Column("KIND", key("kind")),
        Column("STATE", key("state")),
        Column("MTU", key("mtu"), True),
        Column("MAC", key("mac")),
        Column("MASTER", key("master_name")),
        Column("PEER", key("peer_name")),
        Column(
            "ADDRESSES",
            lambda r: [
                address_text(a["address"], a["prefixlen"], a.get("flags") or ())
                for a in r["addresses"]
            ],
        ),
        # `ip -d link show type vxlan`: id, local, remote (fixed, or the FDB's), dstport, dev.
        Column("VNI", lambda r: r["vxlan"]["vni"] if r["vxlan"] else None, True),
        Column("LOCAL", lambda r: r["vxlan"]["local"] if r["vxlan"] else None),
        Column("REMOTE", lambda r: r["vxlan_remotes"] or None),
        Column("DSTPORT", lambda r: r["vxlan"]["port"] if r["vxlan"] else None, True),
        Column("UNDERLAY", key("vxlan_dev_name")),
        Column(
            "OPTIONS",
            lambda r: _vxlan_options(r["vxlan"]) + _port_options(r) + _bridge_options(r) or None,
        ),
    )
    return Listing(rows, cols)


# Address flags that make the kernel leave an address unused (Address.usable), said after it.
_UNUSED_FLAGS = ("tentative", "dadfailed")


def address_text(address: str, prefixlen: int, flags: Sequence[str] = ()) -> str:
    """`10.244.0.1/24`; `fd00::2/64(dadfailed)` for one the kernel does not use, as `ip
    addr` says it after the address (an optimistic tentative one is used meanwhile)."""
    said = [
        f for f in _UNUSED_FLAGS if f in flags and not (f == "tentative" and "optimistic" in flags)
    ]
    if "dadfailed" in said:
        said = ["dadfailed"]  # the kernel keeps it tentative too
    return f"{address}/{prefixlen}" + (f"({','.join(said)})" if said else "")


def _vxlan_options(vxlan: dict[str, Any] | None) -> list[str]:
    """What `ip -d link` prints of a VXLAN device's non-default switches: nolearning proxy l2miss."""
    if not vxlan:
        return []
    return (["nolearning"] if not vxlan["learning"] else []) + list(vxlan["flags"])


def _port_options(row: Row) -> list[str]:
    """A bridge port's switches that change what the bridge does, as `bridge -d link` says
    them on (hairpin, isolated) or off (learning), and its STP state when it is not
    forwarding (state:disabled): each decides a trace's bridged frames."""
    words = [name for name in ("hairpin", "isolated") if row.get(name)]
    words += ["nolearning"] if row.get("learning") is False else []
    state = row.get("port_state")
    return words + ([f"state:{state}"] if state not in (None, "forwarding") else [])


def _bridge_options(row: Row) -> list[str]:
    """A bridge's own br_netfilter switches when on (`ip -d link`: nf_call_iptables 1): its
    frames go through the IP hooks whatever net.bridge.bridge-nf-call-* say."""
    return [name for name in ("nf_call_iptables", "nf_call_ip6tables") if row.get(name)]


# `ip -s link`'s counters: RX and TX bytes, packets, errors, dropped.
_STAT_COLUMNS = tuple(
    (f"{way.upper()}-{label}", f"{way}_{field}")
    for way in ("rx", "tx")
    for label, field in (
        ("BYTES", "bytes"),
        ("PKTS", "packets"),
        ("ERR", "errors"),
        ("DROP", "dropped"),
    )
)


def _stat(field: str) -> Callable[[Row], object]:
    return lambda row: row["stats"][field] if row.get("stats") else None


def link_stats(index: SnapshotIndex) -> Listing:
    """Every link with its counters, like `ip -s link` (JSON rows are those of `ls links`)."""
    cols = (
        Column("NETNS", key("netns_label")),
        Column("IDX", key("ifindex"), True),
        Column("NAME", key("name")),
        Column("STATE", key("state")),
        *(Column(header, _stat(field), True) for header, field in _STAT_COLUMNS),
    )
    return Listing(links(index).rows, cols)


def _vxlan_remotes(ns: NetNamespace, link: Link) -> list[str]:
    """A VXLAN device's remote VTEPs: its fixed remote or group, else its FDB's destinations."""
    if link.vxlan is None:
        return []
    fixed = [link.vxlan.group] if link.vxlan.group else []
    learnt = [f.dst for f in ns.fdb if f.ifindex == link.ifindex and f.dst]
    return list(dict.fromkeys(fixed + learnt))


def _per_netns(index: SnapshotIndex, attr: str) -> list[Row]:
    rows = []
    for ns in index.snapshot.netns:
        for item in getattr(ns, attr):
            row = to_jsonable(item)
            row["netns_label"] = _netns_label(index, ns.inode)
            if "dev" in row or "ifindex" in row:
                row["dev_name"] = _dev_name(index, ns.inode, row.get("dev", row.get("ifindex")))
            if "table" in row:
                # As `ip` names them: 254 is main, 255 local, 253 default.
                row["table_name"] = table_name(row["table"]) if row["table"] is not None else None
            rows.append(row)
    return rows


def _family(row: Row) -> str:
    """ipv4 or ipv6, as the iptables listing names families."""
    family = row.get("family")
    return "ipv4" if family == 4 else "ipv6" if family == 6 else str(family)


def routes(index: SnapshotIndex) -> Listing:
    """Routes of every table of every namespace."""
    cols = (
        Column("NETNS", key("netns_label")),
        Column("FAMILY", _family),
        Column("TABLE", key("table_name")),
        Column("TYPE", key("type")),
        Column("DST", key("dst")),
        Column("VIA", key("gateway")),
        Column("DEV", key("dev_name")),
        Column("SRC", key("prefsrc")),
        Column("METRIC", key("metric"), True),
        Column("PROTO", key("protocol")),
        Column("SCOPE", key("scope")),
    )
    return Listing(_per_netns(index, "routes"), cols)


def rules(index: SnapshotIndex) -> Listing:
    """Policy routing rules of every namespace, each worded as `ip rule` prints it."""
    rows = _per_netns(index, "rules")
    texts = [describe_rule(rule) for ns in index.snapshot.netns for rule in ns.rules]
    for row, text in zip(rows, texts, strict=True):
        # "1025: not from all to 172.18.0.0/16 lookup main": the words after the priority.
        row["text"] = text.split(": ", 1)[1]
    cols = (
        Column("NETNS", key("netns_label")),
        # `ip rule` and `ip -6 rule` are two lists: without it their rules look doubled.
        Column("FAMILY", _family),
        Column("PRIO", key("priority"), True),
        Column("RULE", key("text")),
    )
    return Listing(rows, cols)


def neighbours(index: SnapshotIndex) -> Listing:
    """ARP/NDP entries of every namespace."""
    cols = (
        Column("NETNS", key("netns_label")),
        Column("DST", key("dst")),
        Column("DEV", key("dev_name")),
        Column("LLADDR", key("lladdr")),
        Column("STATE", key("state")),
    )
    return Listing(_per_netns(index, "neighbours"), cols)


def fdb(index: SnapshotIndex) -> Listing:
    """Bridge and VXLAN forwarding entries of every namespace."""
    rows = _per_netns(index, "fdb")
    for row in rows:
        row["master_name"] = _dev_name(index, row["netns"], row.get("master"))
    cols = (
        Column("NETNS", key("netns_label")),
        Column("MAC", key("mac")),
        Column("DEV", key("dev_name")),
        Column("MASTER", key("master_name")),
        Column("VLAN", key("vlan")),
        Column("DST", key("dst")),
        Column("STATE", key("state")),
        Column("FLAGS", key("flags")),
    )
    return Listing(rows, cols)


# --- netconf, tc ---------------------------------------------------------------------

_CONF_NAMES = {sysctls.ALL: "all", sysctls.DEFAULT: "default"}


def _conf_dev(index: SnapshotIndex, netns: int, ifindex: int) -> str | None:
    """The row's device as /proc/sys/net/ipv*/conf names it: all, default, or the interface."""
    return _CONF_NAMES.get(ifindex) or _dev_name(index, netns, ifindex)


def _effective(ns: NetNamespace, conf: NetConf) -> dict[str, int | None]:
    """What the kernel decides with on this interface, all+interface combined (sysctls)."""
    if conf.ifindex == sysctls.DEFAULT:
        # conf/default only seeds interfaces created later: nothing is decided with it.
        return dict.fromkeys(("forwarding", "rp_filter", "proxy_neigh", *_ORCONF))
    link = next((lk for lk in ns.links if lk.ifindex == conf.ifindex), None)
    if conf.ifindex == sysctls.ALL or link is None:
        return {
            "forwarding": conf.forwarding,
            "rp_filter": conf.rp_filter,
            "proxy_neigh": conf.proxy_neigh,
            **{key: getattr(conf, key) for key in _ORCONF},
        }
    proxy = sysctls.proxy_arp(ns, link) if conf.family == 4 else sysctls.proxy_ndp(ns, link)
    forwarding = sysctls.forwarding(ns, conf.family, link)
    every = sysctls.netconf(ns, conf.family, sysctls.ALL)
    return {
        "forwarding": None if forwarding is None else int(forwarding),
        "rp_filter": sysctls.rp_filter(ns, link) if conf.family == 4 else None,
        "proxy_neigh": None if proxy is None else int(proxy),
        **{key: _or_conf(conf, every, key) for key in _ORCONF},
    }


# IPv4 sysctls the kernel reads as all OR interface (IN_DEV_ORCONF in inetdevice.h).
_ORCONF = ("accept_local", "route_localnet", "src_valid_mark")


def _or_conf(conf: NetConf, every: NetConf | None, key: str) -> int | None:
    """conf/all/KEY OR conf/DEV/KEY; None when either was not read."""
    mine, theirs = getattr(conf, key), getattr(every, key) if every is not None else None
    return None if mine is None or theirs is None else int(bool(mine or theirs))


def _conf_order(conf: NetConf) -> tuple[int, bool, int]:
    # all, then default, then the interfaces in index order.
    return (conf.family, conf.ifindex >= 0, abs(conf.ifindex))


def _eff(name: str) -> Callable[[Row], object]:
    """A cell of the row's effective (kernel-combined) values."""
    return lambda r: r["effective"][name]


NETCONF_COLUMNS = (
    Column("NETNS", key("netns_label")),
    Column("FAMILY", _family),
    Column("DEV", key("dev_name")),
    Column("FORWARDING", key("forwarding"), True),
    Column("RP_FILTER", key("rp_filter"), True),
    Column("PROXY", key("proxy_neigh"), True),
    Column("MC_FWD", key("mc_forwarding"), True),
    Column("IGN_LINKDOWN", key("ignore_routes_with_linkdown"), True),
    Column("ACC_LOCAL", key("accept_local"), True),
    Column("LOCALNET", key("route_localnet"), True),
    Column("SRC_VMARK", key("src_valid_mark"), True),
    # The kernel's own combination: forwarding (IPv6: conf/all or the interface's
    # force_forwarding), max(all, dev) rp_filter,
    # all OR dev proxy_arp/proxy_ndp (include/linux/inetdevice.h).
    Column("EFF-FWD", _eff("forwarding"), True),
    Column("EFF-RPF", lambda r: _rp_mode(r["effective"]["rp_filter"])),
    Column("EFF-PROXY", _eff("proxy_neigh"), True),
    # IPv6, Linux 6.17+; last, as rarely set: the effective values stay on screen.
    Column("FORCE_FWD", key("force_forwarding"), True),
)


def netconf(index: SnapshotIndex) -> Listing:
    """Per-interface IP sysctls of every namespace (`ip netconf`), with the effective values."""
    rows: list[Row] = []
    for ns in index.snapshot.netns:
        for conf in sorted(ns.netconf, key=_conf_order):
            row = to_jsonable(conf)
            row["netns"] = ns.inode
            row["netns_label"] = _netns_label(index, ns.inode)
            row["dev_name"] = _conf_dev(index, ns.inode, conf.ifindex)
            row["effective"] = _effective(ns, conf)
            rows.append(row)
    return Listing(rows, NETCONF_COLUMNS)


def _rp_mode(value: object) -> str | None:
    """An effective rp_filter with its meaning: 1 (strict)."""
    if not isinstance(value, int):
        return None
    return f"{value} ({sysctls.RP_FILTER_MODES.get(value, '?')})"


def _tc_program(program: BpfProgram | None) -> Row | None:
    return None if program is None else to_jsonable(program)


def _program_text(row: Row) -> str | None:
    """A filter's program as `tc filter show` words it: name[id] tag, or the section."""
    prog = row.get("program")
    if not prog:
        return None
    name = prog.get("name") or prog.get("section") or "?"
    ident = f"[{prog['id']}]" if prog.get("id") is not None else ""
    tag = f" tag {prog['tag']}" if prog.get("tag") else ""
    return f"{name}{ident}{tag}"


TC_COLUMNS = (
    Column("NETNS", key("netns_label")),
    Column("DEV", key("dev_name")),
    Column("OBJECT", key("object")),
    Column("KIND", key("kind")),
    # A qdisc's place (`parent root`, `parent ffff:fff1`); a filter's direction.
    Column("WHERE", lambda r: r.get("hook") or f"parent {r['parent']}"),
    Column("HANDLE", key("handle")),
    Column("PREF", key("pref"), True),
    Column("PROTO", key("protocol")),
    Column("DA", lambda r: ("yes" if r["direct_action"] else "no") if "hook" in r else None),
    Column("PROGRAM", _program_text),
)


def _qdisc_row(q: TcQdisc) -> Row:
    return {"object": "qdisc", "kind": q.kind, "handle": q.handle, "parent": q.parent}


def _filter_row(f: TcFilter) -> Row:
    return {
        "object": "filter",
        "kind": f.kind,
        "hook": f.hook,
        "protocol": f.protocol,
        "pref": f.pref,
        "chain": f.chain,
        "handle": f.handle,
        "direct_action": f.direct_action,
        "program": _tc_program(f.program),
    }


def tc(index: SnapshotIndex) -> Listing:
    """Qdiscs and filters of every interface of every namespace, filters with their programs."""
    rows: list[Row] = []
    for ns in index.snapshot.netns:
        label = _netns_label(index, ns.inode)
        # Per device: its qdiscs, then its filters, each in the order the kernel listed them
        # (sorted() is stable).
        objects = sorted(
            [(q.ifindex, 0, _qdisc_row(q)) for q in ns.qdiscs]
            + [(f.ifindex, 1, _filter_row(f)) for f in ns.tc_filters],
            key=lambda item: (item[0], item[1]),
        )
        names = {i: _dev_name(index, ns.inode, i) for i in {item[0] for item in objects}}
        for ifindex, _order, body in objects:
            head = {"netns": ns.inode, "netns_label": label, "dev_name": names[ifindex]}
            rows.append({**head, "ifindex": ifindex, **body})
    return Listing(rows, TC_COLUMNS)


# --- sockets --------------------------------------------------------------------------


def _owner_row(by_pid: dict[int, tuple[Pod, Container]], owner: SocketOwner) -> Row:
    pod, container = by_pid.get(owner.pid, (None, None))
    return {
        "pid": owner.pid,
        "comm": owner.comm,
        "fd": owner.fd,
        "pod": f"{pod.namespace}/{pod.name}" if pod else None,
        "container": container.name if container else None,
    }


def _socket_row(
    index: SnapshotIndex, by_pid: dict[int, tuple[Pod, Container]], sock: Socket
) -> Row:
    pod = index.pods_by_netns.get(sock.netns)
    dev = _dev_name(index, sock.netns, sock.bound_dev) if sock.bound_dev else None
    return {
        "netns": sock.netns,
        "netns_label": _netns_label(index, sock.netns),
        "pod": f"{pod.namespace}/{pod.name}" if pod else None,
        "netid": sock.protocol,
        "family": sock.family,
        "state": sock.state,
        "recv_q": sock.recv_q,
        "send_q": sock.send_q,
        "local": sock.local,
        "local_port": sock.local_port,
        "peer": sock.peer,
        "peer_port": sock.peer_port,
        "v6only": sock.v6only,
        "bound_dev": dev,
        "inode": sock.inode,
        "uid": sock.uid,
        "owners": [_owner_row(by_pid, o) for o in sock.owners],
    }


def _process_cell(row: Row) -> str:
    """ss -p's users:(("comm",pid=N,fd=M),...), without the users: prefix."""
    return ",".join(f'("{o["comm"]}",pid={o["pid"]},fd={o["fd"]})' for o in row["owners"])


def _container_cell(row: Row) -> str:
    """Each owner's container; with its pod when that is not the namespace's own pod."""
    names = []
    for o in row["owners"]:
        if o["container"] is None:
            continue
        names.append(o["container"] if o["pod"] == row["pod"] else f"{o['pod']}/{o['container']}")
    return ",".join(dict.fromkeys(names))


def sockets(index: SnapshotIndex, listening_only: bool = False) -> Listing:
    """TCP and UDP sockets of every namespace, like `ss -tuanp` run in each (listeners first)."""
    by_pid = containers_by_pid(index.snapshot.pods)
    rows = []
    for ns in index.snapshot.netns:
        found = [s for s in ns.sockets or () if not listening_only or is_listening(s)]
        found.sort(key=lambda s: (not is_listening(s), s.protocol, s.local_port, s.family))
        rows += [_socket_row(index, by_pid, s) for s in found]
    cols = (
        Column("NETNS", key("netns_label")),
        Column("NETID", key("netid")),
        Column("STATE", key("state")),
        Column("RECV-Q", key("recv_q"), True),
        Column("SEND-Q", key("send_q"), True),
        Column(
            "LOCAL",
            lambda r: endpoint(
                r["family"], r["local"], r["local_port"], r["v6only"], r["bound_dev"]
            ),
        ),
        Column(
            "PEER", lambda r: peer_endpoint(r["family"], r["peer"], r["peer_port"], r["v6only"])
        ),
        Column("PROCESS", _process_cell),
        Column("CONTAINER", _container_cell),
    )
    return Listing(rows, cols)


def listening_sockets(index: SnapshotIndex) -> Listing:
    """Only the listening sockets (TCP LISTEN, unconnected UDP), like `ss -tulnp`."""
    return sockets(index, listening_only=True)


# --- netfilter, services, conntrack, cni, gaps ---------------------------------------


def iptables(index: SnapshotIndex) -> Listing:
    """Every iptables rule of every backend and family, labelled."""
    rows: list[Row] = []
    for dump, ruleset in index.rulesets:
        for table in ruleset.tables:
            for chain in ruleset.chains(table):
                for rule in ruleset.rules(table, chain.name):
                    rows.append(
                        {
                            "backend": dump.backend,
                            "family": dump.family,
                            "table": table,
                            "chain": chain.name,
                            "position": rule.position,
                            "target": rule.target.name if rule.target else None,
                            "rule": rule.text,
                            "owner": iptables_owner(
                                table,
                                chain.name,
                                rule.comments,
                                rule.target.name if rule.target else None,
                            ).as_json(),
                            "unknown": list(rule.unknown),
                            "counter": (
                                {"packets": rule.counters[0], "bytes": rule.counters[1]}
                                if rule.counters is not None
                                else None
                            ),
                        }
                    )
    cols = (
        Column("BACKEND", key("backend")),
        Column("FAMILY", key("family")),
        Column("TABLE", key("table")),
        Column("PKTS", lambda r: r["counter"]["packets"] if r["counter"] else None, True),
        Column("OWNER", _owner_text),
        Column("RULE", key("rule")),
    )
    return Listing(rows, cols)


def _owner_text(row: Row) -> str:
    """Who made the rule, as a trace hop says it: `NetworkPolicy default/web (kube-router)`."""
    o = row["owner"]
    return Owner(o["kind"], o["agent"], o["name"], o["how"]).text


def nft(index: SnapshotIndex) -> Listing:
    """Rules of the native nftables tables."""
    rows: list[Row] = []
    if index.nft_ruleset is not None:
        for rule in index.nft_ruleset.rules:
            rows.append(
                {
                    "family": rule.family,
                    "table": rule.table,
                    "chain": rule.chain,
                    "handle": rule.handle,
                    "rule": rule.text,
                    "counter": _nft_counter(rule.expr),
                    "owner": nft_owner(rule.family, rule.table, rule.chain, rule.comment).as_json(),
                }
            )
    cols = (
        Column("FAMILY", key("family")),
        Column("TABLE", key("table")),
        Column("CHAIN", key("chain")),
        Column("OWNER", _owner_text),
        Column("RULE", key("rule")),
    )
    return Listing(rows, cols)


def service_type(s: Service) -> str:
    """The Service's type as its rules show it: LoadBalancer, NodePort, ClusterIP, ExternalIP."""
    if s.load_balancer_ips:
        return "LoadBalancer"
    if s.node_port is not None:
        return "NodePort"
    return "ClusterIP" if s.cluster_ip else ("ExternalIP" if s.external_ips else "-")


def _affinity(row: Row) -> str:
    from podpath.analysis.affinity import affinity_text

    timeout = row["affinity"]["timeout"] if row["affinity"] else None
    return affinity_text(timeout, len(row["pins"])) or "-"


def _policy(row: Row) -> str:
    parts = []
    if row["internal_policy"] == "Local":
        parts.append("int:Local")
    if row["external_policy"] == "Local":
        parts.append("ext:Local")
    return ",".join(parts) or "-"


def _nft_counter(expr: tuple[Any, ...]) -> dict[str, int] | None:
    """An nft rule's `counter` statement's packets and bytes, when it has one."""
    for stmt in expr:
        counter = stmt.get("counter") if isinstance(stmt, dict) else None
        if isinstance(counter, dict) and "packets" in counter:
            return {"packets": int(counter["packets"]), "bytes": int(counter.get("bytes", 0))}
    return None


def name_source(s: Service) -> str | None:
    """Where a Service's name comes from: kube-proxy's rules, or (IPVS) pods' environment."""
    if not s.name:
        return None
    if s.backend == "ipvs":
        from podpath.analysis.service_names import SOURCE

        return f"named from {SOURCE}"
    return "kube-proxy's rules"


def services(index: SnapshotIndex) -> Listing:
    """kube-proxy Services with endpoints, each endpoint's share, affinity and policies."""
    from podpath.analysis.affinity import affinity_pins

    rows = []
    conflicts = index.service_names.conflicts if index.snapshot.service_links else {}
    for s in index.services:
        pins = affinity_pins(index, s)
        rows.append(
            {
                "namespace": s.namespace,
                "name": s.name,
                "port_name": s.port_name,
                "name_source": name_source(s),
                # Services pods' environments name for this unnamed IPVS address (conflicting).
                "name_candidates": [
                    n.link.service
                    for n in conflicts.get(
                        (s.cluster_ip or "", s.port or 0, s.protocol.upper()), ()
                    )
                    if not s.name
                ],
                "protocol": s.protocol,
                "type": service_type(s),
                "cluster_ip": s.cluster_ip,
                "port": s.port,
                "node_port": s.node_port,
                "external_ips": list(s.external_ips),
                "load_balancer_ips": list(s.load_balancer_ips),
                "source_ranges": list(s.source_ranges),
                "backend": s.backend,
                "masquerade": s.masquerade,
                "svc_chain": s.svc_chain,
                "internal_policy": s.internal_policy,
                "external_policy": s.external_policy,
                "no_endpoints": s.no_endpoints,
                "no_local_endpoints": s.no_local_endpoints,
                "affinity": (
                    {"type": "ClientIP", "timeout": s.affinity_timeout}
                    if s.affinity_timeout is not None
                    else None
                ),
                "pins": [
                    {
                        "client": p.client,
                        "endpoint": p.endpoint,
                        "age": p.age,
                        "expires": p.expires,
                        "source": p.source,
                    }
                    for p in pins
                ],
                "ipvs": (
                    {"scheduler": s.scheduler, "persistent": s.persistent}
                    if s.backend == "ipvs"
                    else None
                ),
                "endpoints": [
                    {
                        "ip": e.ip,
                        "port": e.port,
                        "probability": e.probability,
                        "chain": e.sep_chain,
                        "local": e.local,
                        "weight": e.weight,
                    }
                    for e in s.endpoints
                ],
            }
        )
    cols = (
        Column("NAMESPACE", key("namespace")),
        Column("NAME", key("name")),
        Column("TYPE", key("type")),
        Column("PORT", lambda r: f"{r['port']}/{r['protocol']}"),
        Column("CLUSTER-IP", key("cluster_ip")),
        Column("NODEPORT", key("node_port"), True),
        # kubectl's EXTERNAL-IP: LoadBalancer ingress IPs, then spec.externalIPs.
        Column("EXTERNAL-IP", lambda r: r["load_balancer_ips"] + r["external_ips"]),
        Column("SOURCE-RANGES", key("source_ranges")),
        Column(
            "MODE", lambda r: r["backend"] if not r["ipvs"] else f"ipvs:{r['ipvs']['scheduler']}"
        ),
        Column("AFFINITY", _affinity),
        Column("POLICY", _policy),
        Column(
            "ENDPOINTS",
            lambda r: (
                [f"{e['ip']}:{e['port']}({e['probability']:.3f})" for e in r["endpoints"]]
                or (r["no_endpoints"] or "none")
            ),
        ),
    )
    return Listing(rows, cols)


def _tuple_row(t: Any) -> Row:
    return {"src": t.src, "dst": t.dst, "sport": t.sport, "dport": t.dport}


def conntrack(index: SnapshotIndex) -> Listing:
    """Conntrack entries, original and reply tuples side by side."""
    rows = [
        {
            "family": e.family,
            "protocol": e.protocol,
            "state": e.state,
            "timeout": e.timeout,
            "original": _tuple_row(e.original),
            "reply": _tuple_row(e.reply),
            "status": list(e.status),
            "mark": e.mark,
            "zone": e.zone,
            "dnat": e.is_dnat,
            "snat": e.is_snat,
        }
        for e in index.conntrack
    ]

    def side(name: str) -> Callable[[Row], str]:
        def cell(r: Row) -> str:
            t = r[name]
            ports = f" {t['sport']}->{t['dport']}" if t["sport"] is not None else ""
            return f"{t['src']}->{t['dst']}{ports}"

        return cell

    cols = (
        Column("PROTO", key("protocol")),
        Column("STATE", key("state")),
        Column("ORIGINAL", side("original")),
        Column("REPLY", side("reply")),
        Column("NAT", lambda r: "/".join(k for k in ("dnat", "snat") if r[k]) or None),
        Column("STATUS", key("status")),
    )
    return Listing(rows, cols)


def cni(index: SnapshotIndex) -> Listing:
    """CNI config files (the active one marked) and host-local IPAM allocations."""
    state = index.snapshot.cni
    rows: list[Row] = [
        {
            "kind": "config",
            "path": c.path,
            "name": c.name,
            "active": c.path == state.active,
            "plugins": list(c.plugins),
            "error": c.error,
        }
        for c in state.configs
    ]
    rows += [
        {
            "kind": "allocation",
            "network": a.network,
            "ip": a.ip,
            "container_id": a.container_id,
            "ifname": a.ifname,
            "stale": a.stale,
        }
        for a in state.allocations
    ]
    cols = (
        Column("KIND", key("kind")),
        Column("WHAT", lambda r: r.get("path") or f"{r['network']} {r['ip']}"),
        Column(
            "DETAIL",
            lambda r: (
                ("ACTIVE " if r.get("active") else "") + " -> ".join(r["plugins"])
                if r["kind"] == "config"
                else f"{r['container_id'][:13]} {r.get('ifname') or ''}"
            ),
        ),
        Column(
            "NOTE", lambda r: r.get("error") or ("stale: no such sandbox" if r.get("stale") else "")
        ),
    )
    return Listing(rows, cols)


def gaps(index: SnapshotIndex) -> Listing:
    """What could not be read, and why."""
    rows = [to_jsonable(g) for g in index.snapshot.gaps]
    cols = (
        Column("KIND", key("kind")),
        Column("SUBJECT", key("subject")),
        Column("REASON", _gap_reason),
        Column("CAPABILITY", key("capability")),
    )
    return Listing(rows, cols)


def _gap_reason(row: Row) -> object:
    """The reason without a "(needs CAP_X)" that the CAPABILITY column says already."""
    reason, cap = row.get("reason"), row.get("capability")
    if isinstance(reason, str) and cap:
        return reason.replace(f" (needs {cap})", "")
    return reason


def problems(index: SnapshotIndex) -> Listing:
    """Everything `podpath doctor` finds, worst first: what the TUI's Problems screen lists."""
    from podpath.doctor import diagnose

    rows: list[Row] = [
        {
            "severity": f.severity,
            "subject": f.subject,
            "why": f.cause,
            "fix": f.fix,
            "id": f.id,
            "check": f.check,
            "grade": f.grade,
            "node": f.node,
            "hop": f.hop,
            "evidence": list(f.evidence),
            "affected": f.affected,
            "paths": [p.text for p in f.paths],
        }
        for f in diagnose([index]).findings
    ]
    cols = (
        Column("SEVERITY", key("severity")),
        Column("SUBJECT", key("subject")),
        Column("WHY", key("why")),
        Column("FIX", key("fix")),
    )
    return Listing(rows, cols)


KINDS: dict[str, Callable[[SnapshotIndex], Listing]] = {
    "namespaces": lambda index: namespaces(index.snapshot),
    "pods": pods,
    "links": links,
    "routes": routes,
    "rules": rules,
    "neigh": neighbours,
    "fdb": fdb,
    "netconf": netconf,
    "tc": tc,
    "iptables": iptables,
    "nft": nft,
    "services": services,
    "sockets": sockets,
    "conntrack": conntrack,
    "cni": cni,
    "gaps": gaps,
    "problems": problems,
}


def listing(index: SnapshotIndex, kind: str) -> Listing:
    """The listing of one kind (a key of KINDS)."""
    return KINDS[kind](index)


def kinds() -> Iterable[str]:
    """The kinds `podpath ls` knows."""
    return KINDS.keys()
