"""Pure row builders for the Pods list and the Pod screen's tabs."""

from __future__ import annotations

import os

from podpath.analysis.index import SnapshotIndex, ip_in
from podpath.analysis.pod_counts import pod_counts
from podpath.analysis.services import endpoints_of
from podpath.listing import address_text
from podpath.netfilter.kube_proxy import Service
from podpath.snapshot.model import NAMESPACE_TYPES, Link, Pod, Rule
from podpath.trace import own_rules
from podpath.trace.routing import DROP_TYPES, describe_rule
from podpath.tui.rows.model import Cell, Row, cell, join, row
from podpath.tui.rows.routing import route_row
from podpath.tui.rows.services import service_id, vip_port

# As k9s orders pods (NAME, READY, STATUS, RESTARTS, IP, NODE): the counts a kubectl user
# reads first sit next to the name, the long netns name last, off a narrow screen's edge.
POD_COLUMNS = ("POD", "READY", "RESTARTS", "IP", "PAUSE", "HOST IF", "BRIDGE", "NETNS")


def pod_key(pod: Pod) -> str:
    """The key of a pod: namespace/name."""
    return f"{pod.namespace}/{pod.name}"


def pods_by_key(index: SnapshotIndex) -> dict[str, Pod]:
    """Every pod by a unique key: namespace/name, or with `#sandbox` when that repeats.

    Pods found without runtime state (cgroup or pause-process fallbacks) may have no
    name at all, so namespace/name alone is not unique on a real node.
    """
    seen: dict[str, int] = {}
    for pod in index.snapshot.pods:
        seen[pod_key(pod)] = seen.get(pod_key(pod), 0) + 1
    out: dict[str, Pod] = {}
    for pod in index.snapshot.pods:
        key = pod_key(pod)
        if seen[key] > 1:
            key = f"{key}#{(pod.sandbox_id or pod.uid or str(pod.pause_pid))[:12]}"
        while key in out:
            key += "'"
        out[key] = pod
    return out


def key_of(index: SnapshotIndex, pod: Pod) -> str | None:
    """The pod's key (see pods_by_key), None when it is not one of this snapshot's pods."""
    return next((k for k, p in pods_by_key(index).items() if p is pod), None)


def pod_holding(index: SnapshotIndex, ns_type: str, inode: int) -> Pod | None:
    """The pod whose sandbox or containers are in this namespace (net: its netns), if any."""
    if ns_type == "net":
        return index.pods_by_netns.get(inode)
    for pod in index.snapshot.pods:
        for container in pod.containers:
            for pid in container.pids:
                proc = index.processes_by_pid.get(pid)
                if proc is not None and dict(proc.namespaces).get(ns_type) == inode:
                    return pod
    return None


def find_pod(index: SnapshotIndex, key: str) -> Pod | None:
    """The pod with this key (see pods_by_key)."""
    return pods_by_key(index).get(key)


def pod_sources(pod: Pod) -> str:
    """Where the pod was found, then who else added to it: "cri+kindnet-db"."""
    return "+".join((pod.source, *pod.also_from))


def cni_record(pod: Pod) -> str:
    """What the CNI plugin recorded for the pod (host interface, gateways, MTU), or "".

    Shown on a line of its own: the pod's info line is already wider than most terminals.
    """
    parts = [
        f"host if {pod.host_interface}" if pod.host_interface else "",
        f"gateway {join(pod.gateways)}" if pod.gateways else "",
        f"mtu {pod.mtu}" if pod.mtu is not None else "",
    ]
    recorded = ", ".join(p for p in parts if p)
    return f"CNI recorded {recorded}" if recorded else ""


def own_rules_line(index: SnapshotIndex, pod: Pod) -> str:
    """The pod namespace's own netfilter rules (a service mesh's sidecar redirect), which
    traces through it do not walk, or "" (podpath.trace.own_rules)."""
    ns = index.netns_by_inode.get(pod.netns_inode) if pod.netns_inode else None
    said = own_rules.summary(ns.netfilter) if ns is not None and ns.netfilter else ""
    return f"own netfilter rules: {said} (traces through the pod do not walk them)" if said else ""


def host_side(index: SnapshotIndex, pod: Pod) -> tuple[Link | None, Link | None, Link | None]:
    """A pod's eth0, its host-side veth peer, and the bridge that peer is on."""
    eth0 = index.pod_interface(pod)
    peer = index.peer(eth0) if eth0 is not None else None
    bridge = index.link(peer.netns, peer.master) if peer is not None else None
    return eth0, peer, bridge


def pod_rows(index: SnapshotIndex) -> list[Row]:
    """One row per pod, sorted by namespace/name."""
    out = []
    for key, pod in sorted(pods_by_key(index).items()):
        _eth0, peer, bridge = host_side(index, pod)
        netns = os.path.basename(pod.netns_path) if pod.netns_path else None
        if pod.host_network:
            netns_cell = Cell("hostNetwork", "warning")
        else:
            netns_cell = cell(netns, "dim")
        # As `ls pods` and kubectl count: running app containers / app containers, and
        # the newest attempts' restarts summed (None: the runtime did not say).
        counts = pod_counts(pod)
        out.append(
            row(
                key,
                Cell(key if pod.name else f"{key} (unnamed, via {pod.source})", "accent"),
                cell(counts.ready, "" if counts.running == counts.containers else "warning"),
                cell(counts.restarts, "warning" if counts.restarts else ""),
                cell(join(pod.ips)),
                cell(pod.pause_pid),
                cell(peer.name if peer else None),
                cell(bridge.name if bridge else None),
                netns_cell,
            )
        )
    return out


# As `crictl ps -a` (and `crictl pods` for the sandbox): state, attempt, restarts, how
# it exited, when; then the PIDs and image. Times are ages at the snapshot's moment.
CONTAINER_COLUMNS = (
    "CONTAINER",
    "KIND",
    "STATE",
    "ATTEMPT",
    "RESTARTS",
    "EXIT",
    "STARTED",
    "FINISHED",
    "PID",
    "IMAGE",
    "COMMAND",
)
STATE_ROLES = {"running": "success", "ready": "success", "exited": "warning"}


def age(nanoseconds: int | None, now: float) -> str | None:
    """`3m ago` for a CRI timestamp (unix nanoseconds), seen from `now` (unix seconds)."""
    if not nanoseconds:
        return None
    seconds = max(0, int(now - nanoseconds / 1e9))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit} ago"
    return f"{seconds}s ago"


def _exit_cell(code: int | None, reason: str | None) -> Cell:
    if code is None:
        return cell(reason, "dim")
    text = f"{code} {reason}" if reason else str(code)
    return Cell(text, "error" if code != 0 else "dim")


def container_rows(index: SnapshotIndex, pod: Pod) -> list[Row]:
    """The pod's containers, sandbox (pause) first, with what the runtime says of each."""
    ordered = sorted(pod.containers, key=lambda c: (c.kind != "sandbox", c.name))
    now = index.snapshot.taken_at
    out = []
    for c in ordered:
        command = c.command
        if not command and c.pids:
            proc = index.processes_by_pid.get(c.pids[0])
            command = proc.cmdline if proc else ()
        sandbox = c.kind == "sandbox"
        # The sandbox's state and attempt are the pod's (crictl pods); its image the pause's.
        state = (c.state or pod.state) if sandbox else c.state
        attempt = c.attempt if c.attempt is not None or not sandbox else pod.attempt
        started = c.started_at or c.created_at or (pod.created_at if sandbox else None)
        image = (c.image or pod.sandbox_image) if sandbox else c.image
        failed = c.state == "exited" and c.exit_code not in (None, 0)
        out.append(
            row(
                f"ctr:{c.id}",
                Cell(c.name, "accent" if sandbox else ""),
                Cell(c.kind, "dim"),
                cell(state, "error" if failed else STATE_ROLES.get(state or "", "")),
                cell(attempt),
                cell(c.restart_count, "warning" if c.restart_count else ""),
                _exit_cell(c.exit_code, c.reason),
                cell(age(started, now), "dim"),
                cell(age(c.finished_at, now), "dim"),
                cell(join(c.pids)),
                cell(image),
                cell(" ".join(command)),
            )
        )
    return out


def namespace_columns(pod: Pod) -> tuple[str, ...]:
    """Columns of the namespace-sharing matrix: type, then one per container."""
    ordered = sorted(pod.containers, key=lambda c: (c.kind != "sandbox", c.name))
    names = [c.name for c in ordered]
    # A restarted container is listed once per attempt: `web#0`, `web#1` tell them apart.
    return (
        "NS TYPE",
        *(
            f"{c.name}#{c.attempt}" if names.count(c.name) > 1 and c.attempt is not None else c.name
            for c in ordered
        ),
    )


def namespace_rows(index: SnapshotIndex, pod: Pod) -> list[Row]:
    """Per namespace type, each container's inode: node-wide, shared with the sandbox, or own."""
    ordered = sorted(pod.containers, key=lambda c: (c.kind != "sandbox", c.name))
    inodes: list[dict[str, int]] = []
    for c in ordered:
        proc = index.processes_by_pid.get(c.pids[0]) if c.pids else None
        inodes.append(dict(proc.namespaces) if proc else {})
    sandbox = inodes[0] if ordered and ordered[0].kind == "sandbox" else {}
    out = []
    for ns_type in NAMESPACE_TYPES:
        cells = [Cell(ns_type, "primary")]
        for c, found in zip(ordered, inodes, strict=True):
            inode = found.get(ns_type)
            if inode is None:
                # An exited container has no process left to read namespaces from.
                cells.append(Cell("exited" if c.state == "exited" else "?", "dim"))
            elif ns_type in c.node_namespaces:
                # Every process of the node has it (user, cgroup, time on most nodes): not
                # something the pod shares, and not the container's own.
                cells.append(Cell(f"node {inode}", "dim"))
            elif c.kind == "sandbox":
                cells.append(Cell(f"{inode}", "accent"))
            elif inode == sandbox.get(ns_type):
                cells.append(Cell(f"shared {inode}", "success"))
            else:
                cells.append(Cell(f"own {inode}", ""))
        out.append(Row(f"ns:{ns_type}", tuple(cells)))
    return out


INTERFACE_COLUMNS = ("INTERFACE", "PEER (HOST)", "BRIDGE", "MAC", "MTU", "STATE", "ADDRESSES")


def link_label(link: Link) -> str:
    """`eth0@if12` as ip shows it."""
    return f"{link.name}@if{link.link}" if link.link is not None else link.name


def interface_rows(index: SnapshotIndex, pod: Pod) -> list[Row]:
    """The pod's interfaces with their peers on the host and the bridge."""
    if pod.netns_inode is None:
        return []
    ns = index.netns_by_inode.get(pod.netns_inode)
    out = []
    for link in ns.links if ns else ():
        peer = index.peer(link)
        bridge = index.link(peer.netns, peer.master) if peer else None
        addrs = join(address_text(a.address, a.prefixlen, a.flags) for a in link.addresses)
        out.append(
            row(
                f"if:{link.ifindex}",
                Cell(link_label(link), "accent"),
                cell(f"↔ {link_label(peer)}" if peer else None),
                cell(f"→ {bridge.name}" if bridge else None),
                cell(link.mac, "dim"),
                cell(link.mtu),
                Cell(link.state, "success" if link.state in ("UP", "UNKNOWN") else "warning"),
                cell(addrs),
            )
        )
    return out


ROUTE_COLUMNS = ("WHERE", "TABLE", "TYPE", "DESTINATION", "VIA", "DEV", "SRC", "PROTO", "SCOPE")


def route_rows(index: SnapshotIndex, pod: Pod) -> list[Row]:
    """The pod's routes (local table aside), then the node's routes that reach the pod's IPs,
    then every route of a node table a rule picks for the pod's own traffic (`from POD lookup 2`)."""
    out = []
    if pod.netns_inode is not None:
        for i, r in enumerate(index.routes(pod.netns_inode)):
            if r.table != 255:
                out.append(route_row(index, f"pod:{i}", Cell("pod", "accent"), r))
    chosen = _tables_for_pod_source(index, pod)
    for i, r in enumerate(index.routes(index.snapshot.root_netns)):
        if r.table == 255:
            continue
        if r.table in chosen or (
            r.dst not in ("0.0.0.0/0", "::/0") and any(ip_in(ip, r.dst) for ip in pod.ips)
        ):
            out.append(route_row(index, f"node:{i}", Cell("node", "primary"), r))
    return out


def _tables_for_pod_source(index: SnapshotIndex, pod: Pod) -> frozenset[int]:
    """Tables other than main that a node rule selects by the pod's source address."""
    root = index.root_netns
    rules = root.rules if root is not None else ()
    return frozenset(
        r.table
        for r in rules
        if r.action == "lookup"
        and r.table not in (None, 253, 254, 255)
        and r.src
        and not r.invert
        and any(ip_in(ip, r.src) for ip in pod.ips)
    )


RULE_COLUMNS = ("WHERE", "FAMILY", "PRIO", "RULE")


def rule_rows(index: SnapshotIndex, pod: Pod) -> list[Row]:
    """The pod's policy rules, then the node's that can select a table for the pod's packets,
    each as `ip rule` prints it (a rule only for other pods' addresses is left out)."""
    out = []
    if pod.netns_inode is not None:
        ns = index.netns_by_inode.get(pod.netns_inode)
        for i, r in enumerate(ns.rules if ns else ()):
            out.append(_rule_row(f"pod:{i}", Cell("pod", "accent"), r))
    root = index.root_netns
    for i, r in enumerate(root.rules if root is not None else ()):
        if _concerns(r, pod):
            out.append(_rule_row(f"node:{i}", Cell("node", "primary"), r))
    return out


def _concerns(rule: Rule, pod: Pod) -> bool:
    """Can the rule take the pod's packets (its src holds the pod) or packets to it (its dst does)?"""
    if rule.invert or not pod.ips:
        return True
    outbound = rule.src is None or any(ip_in(ip, rule.src) for ip in pod.ips)
    inbound = rule.dst is not None and any(ip_in(ip, rule.dst) for ip in pod.ips)
    return outbound or inbound


def _rule_row(key: str, where: Cell, r: Rule) -> Row:
    prio, _, text = describe_rule(r).partition(": ")
    role = "error" if r.action in DROP_TYPES else ""
    return row(key, where, "ipv4" if r.family == 4 else "ipv6", prio, Cell(text, role))


NEIGHBOUR_COLUMNS = ("WHERE", "KIND", "ADDRESS", "LLADDR / MAC", "DEV / PORT", "STATE")


def neighbour_rows(index: SnapshotIndex, pod: Pod) -> list[Row]:
    """ARP entries inside the pod and the bridge FDB entries for the pod's MAC."""
    out = []
    if pod.netns_inode is not None:
        ns = index.netns_by_inode.get(pod.netns_inode)
        for i, n in enumerate(ns.neighbours if ns else ()):
            dev = index.link(n.netns, n.ifindex)
            out.append(
                row(
                    f"neigh:{i}",
                    Cell("pod", "accent"),
                    "arp" if n.family == 4 else "ndp",
                    n.dst,
                    n.lladdr,
                    dev.name if dev else n.ifindex,
                    Cell(join(n.state), "dim"),
                )
            )
    eth0 = index.pod_interface(pod)
    root = index.root_netns
    if eth0 is not None and eth0.mac and root is not None:
        for i, f in enumerate(root.fdb):
            if f.mac.lower() != eth0.mac.lower():
                continue
            port = index.link(f.netns, f.ifindex)
            master = index.link(f.netns, f.master)
            where = f"{master.name} fdb" if master else "fdb"
            out.append(
                row(
                    f"fdb:{i}",
                    Cell("node", "primary"),
                    where,
                    f.dst,
                    f.mac,
                    port.name if port else f.ifindex,
                    Cell(join((*f.state, *f.flags)), "dim"),
                )
            )
    return out


NAT_COLUMNS = ("SERVICE", "VIP:PORT", "THIS ENDPOINT", "PROBABILITY", "MASQUERADE", "DNAT RULE")


def nat_rows(services: tuple[Service, ...], pod: Pod) -> list[Row]:
    """Services whose endpoints include this pod, with this endpoint's probability."""
    return [
        row(
            f"{service_id(svc)}>{ep.ip}:{ep.port}",
            Cell(f"{svc.namespace}/{svc.name}", "accent"),
            vip_port(svc),
            f"{ep.ip}:{ep.port}",
            Cell(f"{ep.probability:.4f}", "primary"),
            Cell(svc.masquerade, "dim"),
            cell(ep.dnat_rule_text or ep.sep_chain, "dim"),
        )
        for svc, ep in endpoints_of(services, frozenset(pod.ips))
    ]
