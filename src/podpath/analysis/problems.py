"""What a node's facts show is wrong, without a trace: the fact checks of `podpath doctor`.

What could not be read (gaps, an unprivileged collection, what a parser could not
read), a conntrack table nearly full, a neighbour table past its soft limit, pods
whose host veth left their bridge or whose eth0 is gone, a second netfilter backend holding rules,
addresses IPAM handed to no pod, conntrack entries that still send a connection to a
former endpoint, sysctls a bridge CNI with kube-proxy needs, pods whose MTU is not
the CNI config's. The doctor (`podpath.doctor`) adds what the traces of every path
show; where a fault also fails paths (forwarding off, bridge-nf-call-iptables off) the
fact and the paths make one finding, with the same id.
"""

from __future__ import annotations

from podpath.analysis.address_conflicts import address_conflicts
from podpath.analysis.cni_config import active_config, plugins
from podpath.analysis.detached_ports import detached_findings
from podpath.analysis.findings import Finding, ordered
from podpath.analysis.gone_interfaces import gone_interface_findings
from podpath.analysis.index import SnapshotIndex
from podpath.analysis.neighbour_tables import neighbour_table_fill
from podpath.analysis.parsed import ParsedSnapshot
from podpath.conntrack import ConntrackEntry
from podpath.snapshot.model import CniConfig, Link, NodeFacts
from podpath.wording import count

# Gap kinds that mean the data is wrong, not just missing.
ERROR_GAPS = frozenset({"error", "inconsistent"})
# conntrack's fill level that is a warning, and the one that is critical (the kernel
# drops the first packet of every new connection once the table is full).
CONNTRACK_WARN = 0.80
CONNTRACK_CRITICAL = 0.95
STALE_EXAMPLES = 5


def problems(parsed: ParsedSnapshot) -> tuple[Finding, ...]:
    """Every finding the node's facts show, worst first (the doctor adds the paths')."""
    parsed.parse_all(conntrack=False)
    index = parsed.index
    node = index.snapshot.node.hostname
    found: list[Finding] = []
    found += _gaps(parsed, node)
    found += _conntrack_fill(index, node)
    found += neighbour_table_fill(index)
    found += _backends(parsed, node)
    found += _leaked_ipam(index, node)
    found += _stale_conntrack(parsed, node)
    found += _bridge_sysctls(index, parsed, node)
    found += _forwarding(index, node)
    found += _cni_mtu(index, node)
    found += _service_link_names(index, node)
    found += address_conflicts(index)
    found += detached_findings(index)
    found += gone_interface_findings(index)
    return ordered(found)


def _env_prefix(name: str) -> str:
    """A Service name as kubelet writes it in variable names."""
    return name.upper().replace("-", "_")


def _service_link_names(index: SnapshotIndex, node: str) -> list[Finding]:
    """IPVS mode: pods' Service-link variables naming an unserved address, or in conflict."""
    if not index.snapshot.service_links or index.kube_proxy_mode.mode != "ipvs":
        return []
    names = index.service_names
    out = []
    for n in names.stale:
        where = f"{n.link.ip}:{n.link.port}/{n.link.protocol.lower()}"
        out.append(
            Finding(
                "service-link-stale",
                "warning",
                f"Service {n.link.service}",
                f"{count(len(n.carriers), 'container')} of this node were given "
                f"{n.link.service} at {where} "
                "(kubelet's Service-link variables), which IPVS does not serve: the Service "
                "or this port was deleted or changed since they started, and a client "
                "reading the variables connects to nothing",
                "restart those pods to give them the current ClusterIP, or have clients "
                "use the Service's DNS name, which follows it",
                node,
                evidence=tuple(f"{c}: {_env_prefix(n.link.name)}_SERVICE_HOST" for c in n.carriers),
                key=f"{node}:{n.link.service}:{where}",
            )
        )
    for (ip, port, proto), named in sorted(names.conflicts.items()):
        where = f"{ip}:{port}/{proto.lower()}"
        out.append(
            Finding(
                "service-link-conflict",
                "info",
                f"IPVS {where}",
                f"pods' Service-link variables name {where} "
                + " and ".join(n.link.service for n in named)
                + ": one of them is out of date, so the virtual service is left unnamed",
                "restart the pods holding the older variables (see evidence)",
                node,
                evidence=tuple(f"{n.link.service}: {', '.join(n.carriers)}" for n in named),
                key=f"{node}:{where}",
            )
        )
    return out


def _gaps(parsed: ParsedSnapshot, node: str) -> list[Finding]:
    """What could not be read: the doctor's view of it is partial, not the node broken."""
    snap = parsed.index.snapshot
    out = []
    for gap in snap.gaps:
        if gap.kind == "skipped":
            continue
        needs = (
            f" (needs {gap.capability})"
            if gap.capability and gap.capability not in gap.reason
            else ""
        )
        out.append(
            Finding(
                "unread",
                "warning" if gap.kind in ERROR_GAPS else "info",
                gap.subject,
                f"could not be read: {gap.reason}{needs}; paths through it are judged without it",
                f"run podpath with {gap.capability}" if gap.capability else "see the reason",
                node,
                key=f"{gap.subject}:{gap.reason}",
            )
        )
    if snap.node.euid not in (None, 0):
        out.append(
            Finding(
                "unread",
                "warning",
                "unprivileged",
                f"collected as uid {snap.node.euid}: parts may be missing",
                "run podpath as root (or in a privileged debug pod)",
                node,
                key="unprivileged",
            )
        )
    out += [
        Finding(
            "unread",
            "warning",
            "parser",
            note,
            "report it: podpath could not read what the node's tools printed",
            node,
            key=f"parser:{note}",
        )
        for note in parsed.notes
    ]
    return out


def _conntrack_fill(index: SnapshotIndex, node: str) -> list[Finding]:
    facts = index.snapshot.node
    count, limit = facts.conntrack_count, facts.conntrack_max
    if count is None or not limit:
        return []
    fill = count / limit
    if fill < CONNTRACK_WARN:
        return []
    full = count >= limit
    grade = "critical" if fill >= CONNTRACK_CRITICAL else "warning"
    state = "full" if full else f"{fill:.0%} full"
    return [
        Finding(
            "conntrack-full",
            grade,
            f"node {node}",
            f"the conntrack table is {state}: {count} of {limit} entries; the kernel drops "
            "the first packet of every new connection once it is full "
            '("nf_conntrack: table full, dropping packet" in the kernel log)',
            "raise net.netfilter.nf_conntrack_max (kube-proxy's --conntrack-min and "
            "--conntrack-max-per-core set it), or find what opens so many connections "
            "(conntrack -L | sort by source)",
            node,
            "conntrack table: nf_conntrack_count / nf_conntrack_max",
            (
                f"net.netfilter.nf_conntrack_count = {count}",
                f"net.netfilter.nf_conntrack_max = {limit}",
            ),
            key=node,
        )
    ]


def _backends(parsed: ParsedSnapshot, node: str) -> list[Finding]:
    mode = parsed.kube_proxy_mode()
    if mode is None:
        return []
    return [
        Finding(
            "netfilter-backends",
            "warning",
            f"node {node}",
            warning,
            "remove the rules of the backend kube-proxy does not use (iptables-legacy-save "
            "and iptables-nft-save show each), and make every agent use the same iptables",
            node,
            evidence=(*mode.evidence, *_rules_per_backend(parsed)),
            key=f"{node}:{warning}",
        )
        for warning in mode.warnings
    ]


def _rules_per_backend(parsed: ParsedSnapshot) -> list[str]:
    """`iptables-legacy/ipv4: 1 rule, in filter/DOCTOR-TEST`: where each backend's rules are."""
    out = []
    for dump in parsed.rule_dumps():
        rs = dump.ruleset
        held = [f"{t}/{c}" for t in rs.tables for c in rs.chain_names(t) if rs.rule_count_of(t, c)]
        if held:
            n = rs.rule_count()
            shown = ", ".join(held[:4]) + (
                f" (+{len(held) - 4} more chains)" if len(held) > 4 else ""
            )
            out.append(f"iptables-{dump.label}: {n} rule{'s' if n != 1 else ''}, in {shown}")
    return out


def _leaked_ipam(index: SnapshotIndex, node: str) -> list[Finding]:
    return [
        Finding(
            "ipam-leaked",
            "warning",
            f"IPAM {a.network} {a.ip}",
            f"{a.ip} is reserved for {a.container_id[:12]}, which is no pod: a leaked address, "
            "never handed out again (when the range runs out, pods fail to start)",
            f"remove /var/lib/cni/networks/{a.network}/{a.ip} once you are sure no sandbox "
            f"{a.container_id[:12]} exists (crictl pods -q --no-trunc)",
            node,
            evidence=(f"/var/lib/cni/networks/{a.network}/{a.ip}: {a.container_id}",),
            key=f"{node}:{a.network}:{a.ip}",
        )
        for a in index.snapshot.cni.allocations
        if a.stale
    ]


def _stale_conntrack(parsed: ParsedSnapshot, node: str) -> list[Finding]:
    stale = parsed.stale_conntrack()
    if not stale:
        return []
    n = len(stale)
    targets = sorted({(e.protocol, e.reply.src, e.reply.sport) for e in stale})
    where = ", ".join(f"{ip}:{port}/{proto}" for proto, ip, port in targets[:STALE_EXAMPLES])
    return [
        Finding(
            "stale-conntrack",
            "warning",
            f"node {node}",
            f"{n} conntrack {'entry still DNATs' if n == 1 else 'entries still DNAT'} a Service to "
            f"{'an address' if len(targets) == 1 else 'addresses'} no longer among its "
            f"endpoints ({where}): packets of those flows keep going there until the entries "
            "expire",
            "delete them as kube-proxy does for UDP: "
            + "; ".join(_delete_command(e) for e in stale[:2])
            + ("; ..." if n > 2 else ""),
            node,
            evidence=tuple(_entry_text(e) for e in stale[:STALE_EXAMPLES]),
            key=node,
        )
    ]


def _delete_command(entry: ConntrackEntry) -> str:
    o, r = entry.original, entry.reply
    return f"conntrack -D -p {entry.protocol} --orig-dst {o.dst} --reply-src {r.src}"


def _entry_text(entry: ConntrackEntry) -> str:
    o, r = entry.original, entry.reply
    return (
        f"{entry.protocol} {o.src}:{o.sport} -> {o.dst}:{o.dport} "
        f"(reply from {r.src}:{r.sport}) {entry.state or ''}".rstrip()
    )


def pod_bridges(index: SnapshotIndex) -> list[Link]:
    """Bridges of the root namespace that pods' host veths are ports of."""
    bridges: dict[int, Link] = {}
    for pod in index.snapshot.pods:
        eth0 = index.pod_interface(pod)
        peer = index.peer(eth0) if eth0 is not None else None
        master = index.link(peer.netns, peer.master) if peer is not None else None
        if master is not None and master.kind == "bridge":
            bridges.setdefault(master.ifindex, master)
    return list(bridges.values())


def _bridge_sysctls(index: SnapshotIndex, parsed: ParsedSnapshot, node: str) -> list[Finding]:
    """bridge-nf-call-iptables off (or br_netfilter absent) on a bridge CNI with kube-proxy,
    and bridge-nf-call-ip6tables off where pods have IPv6 addresses; a bridge whose own
    nf_call_iptables is on is spared (NodeFacts.bridge_nf_calls)."""
    facts = index.snapshot.node
    mode = parsed.kube_proxy_mode()
    if mode is None or mode.mode not in ("iptables", "nftables", "ipvs"):
        return []
    six = any(":" in ip for p in index.snapshot.pods if not p.host_network for ip in p.ips)
    found = []
    bridged = pod_bridges(index)
    for family in (4, 6) if six else (4,):
        bridges = [b.name for b in bridged if bridge_nf_off(facts, family, b)]
        off = bridge_nf_off(facts, family)
        # br_netfilter absent: one finding, IPv4's.
        if not bridges or off is None or (family == 6 and off[1] != "0"):
            continue
        name, value = off
        found.append(
            Finding(
                "bridge-nf-off",
                "warning",
                f"node {node}",
                f"{name} is {value} while pods are on bridge {', '.join(bridges)} and "
                f"kube-proxy runs in {mode.mode} mode: a Service endpoint's answer to a pod "
                "on the same bridge is bridged past conntrack, untranslated",
                bridge_nf_fix(name),
                node,
                evidence=(f"{name} = {value}",),
                key=node if family == 4 else f"{node}:ipv6",
            )
        )
    return found


def bridge_nf_off(
    facts: NodeFacts, family: int, bridge: Link | None = None
) -> tuple[str, str] | None:
    """The family's bridge-nf-call switch and its value in words when br_netfilter does not
    hand that family's bridged frames (of `bridge`) to the IP hooks (0, or absent); None
    when it does."""
    six = family == 6
    name = f"net.bridge.bridge-nf-call-{'ip6tables' if six else 'iptables'}"
    value = facts.bridge_nf_calls(family, bridge)
    if value not in (0, None):
        return None
    return name, "absent (br_netfilter is not loaded)" if value is None else "0"


def bridge_nf_fix(name: str) -> str:
    """How to turn a bridge-nf-call switch on, and keep it on."""
    return (
        f"modprobe br_netfilter; sysctl -w {name}=1 (and keep both in /etc/modules-load.d/ "
        "and /etc/sysctl.d/)"
    )


# NetConf.ifindex of conf/all (podpath.snapshot.model.NetConf).
_CONF_ALL = -1


def _forwarding(index: SnapshotIndex, node: str) -> list[Finding]:
    """Forwarding off in a family the node's pods use: every path that crosses the node's
    stack in it fails."""
    pods = [p for p in index.snapshot.pods if not p.host_network]
    found = []
    if index.snapshot.node.ip_forward == 0 and pods:
        found.append(_forwarding_off(index, node, "net.ipv4.ip_forward", node))
    conf6 = [c for c in index.root_netns.netconf if c.family == 6] if index.root_netns else []
    every6 = next((c for c in conf6 if c.ifindex == _CONF_ALL), None)
    # An interface that forwards whatever conf/all says (force_forwarding, Linux 6.17+)
    # makes it a matter of which paths cross which interface: the doctor's traces judge.
    forced = any(c.force_forwarding for c in conf6)
    six = any(":" in ip for p in pods for ip in p.ips)
    if every6 is not None and every6.forwarding == 0 and six and not forced:
        found.append(_forwarding_off(index, node, "net.ipv6.conf.all.forwarding", f"{node}:ipv6"))
    return found


def _forwarding_off(index: SnapshotIndex, node: str, sysctl: str, key: str) -> Finding:
    return Finding(
        "ip-forward-off",
        "warning",
        f"node {node}",
        f"{sysctl} is 0 on a node with pods of that family: nothing a pod sends is routed "
        "beyond the node's own addresses, Services included"
        + forwarding_spared(index, 6 if sysctl.startswith("net.ipv6.") else 4),
        forwarding_fix(sysctl),
        node,
        evidence=(f"{sysctl} = 0",),
        key=key,
    )


def forwarding_spared(index: SnapshotIndex, family: int = 4) -> str:
    """What still works on a node that does not forward, in words: pods on one bridge
    reach each other bridged; routed pods (Calico, ptp) are routed even to each other.
    IPv6 spares a Service's endpoint behind the client's own bridge too: br_netfilter
    bridges the DNATed frame (`Engine._bridged_dnat6`), where IPv4's input lookup fails."""
    if not pod_bridges(index):
        return ", and pod to pod on this node (its pods are routed, no bridge joins them)"
    if family == 6 and index.snapshot.node.bridge_nf_calls(6) != 0:
        return (
            ", but for an endpoint behind the client's own bridge (br_netfilter bridges the "
            "DNATed frame: it is never forwarded); pod to pod on one bridge works"
        )
    return (
        " (a DNATed packet is routed even to an endpoint on the same bridge); only pod "
        "to pod on one bridge works"
    )


def forwarding_fix(sysctl: str) -> str:
    """The fix of forwarding off: the family's switch (IPv4's sets every interface's)."""
    switch = (
        "net.ipv6.conf.all.forwarding" if sysctl.startswith("net.ipv6.") else "net.ipv4.ip_forward"
    )
    return (
        f"sysctl -w {switch}=1 and keep it in /etc/sysctl.d/ (kubelet and every CNI need "
        "forwarding)"
    )


def _cni_mtu(index: SnapshotIndex, node: str) -> list[Finding]:
    """Pods whose eth0 MTU is not the one the active CNI config asks for."""
    conf = active_config(index.snapshot.cni)
    wanted = _config_mtu(conf) if conf is not None else None
    if wanted is None or conf is None:
        return []
    off = []
    for pod in index.snapshot.pods:
        eth0 = index.pod_interface(pod)
        if eth0 is not None and not pod.host_network and eth0.mtu != wanted:
            off.append(f"{pod.namespace}/{pod.name} eth0 mtu {eth0.mtu}")
    if not off:
        return []
    return [
        Finding(
            "mtu-mismatch",
            "warning",
            f"node {node}",
            f"{len(off)} pod{'s' if len(off) != 1 else ''}' eth0 MTU differs from the "
            f"mtu {wanted} of the CNI config {conf.path}: made before the config changed, "
            "or changed since",
            "re-create those pods (the CNI plugin sets the MTU when it makes a pod's network)",
            node,
            evidence=(f"{conf.path}: mtu {wanted}", *off[:5]),
            key=f"{node}:cni-config",
        )
    ]


def _config_mtu(conf: CniConfig) -> int | None:
    """The `mtu` of the first plugin of a config that sets one."""
    for plugin in plugins(conf):
        if isinstance(plugin.get("mtu"), int):
            mtu: int = plugin["mtu"]
            return mtu
    return None
