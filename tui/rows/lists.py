"""Pure row builders for the Services, Netfilter, Namespaces, Links and CNI screens."""

from __future__ import annotations

from podpath.analysis.index import SnapshotIndex
from podpath.netfilter.model import Rule
from podpath.snapshot.model import Link
from podpath.tui.adapters import RulesetView, ServiceView
from podpath.tui.rows.model import Cell, Row, cell, join, row
from podpath.tui.rows.pod import link_label

SERVICE_COLUMNS = ("SERVICE", "VIP:PORT", "EPS", "ENDPOINTS (probability, where)")


def endpoint_place(index: SnapshotIndex, ip: str) -> tuple[str, str]:
    """Where an endpoint lives: (label, role) — a local pod, this node, or a remote node."""
    pod = index.pods_by_ip.get(ip)
    if pod is not None:
        return f"{pod.namespace}/{pod.name}", "success"
    if ip in index.local_addresses.get(index.snapshot.root_netns, frozenset()):
        return "this node (host network)", "primary"
    return "remote node", "warning"


def endpoint_summary(index: SnapshotIndex, svc: ServiceView) -> str:
    """Endpoints as `33% web-abc (10.244.0.5:80)`, remote ones marked."""
    parts = []
    for ep in svc.endpoints:
        pod = index.pods_by_ip.get(ep.ip)
        where = pod.name if pod else endpoint_place(index, ep.ip)[0]
        parts.append(f"{ep.probability:.0%} {where} ({ep.ip}:{ep.port})")
    return ", ".join(parts) if parts else "no endpoints"


def service_rows(index: SnapshotIndex, services: tuple[ServiceView, ...]) -> list[Row]:
    """One row per Service port."""
    out = []
    for svc in sorted(services, key=lambda s: (s.namespace, s.name, s.port_name)):
        name = f"{svc.namespace}/{svc.name}" + (f":{svc.port_name}" if svc.port_name else "")
        summary = endpoint_summary(index, svc)
        out.append(
            row(
                svc.key,
                Cell(name, "accent"),
                f"{svc.vip}:{svc.port}/{svc.protocol}",
                Cell(str(len(svc.endpoints)), "primary" if svc.endpoints else "warning"),
                Cell(summary, "warning" if not svc.endpoints else ""),
            )
        )
    return out


ENDPOINT_COLUMNS = ("ENDPOINT", "PROBABILITY", "POD / NODE", "SEP CHAIN")


def endpoint_rows(index: SnapshotIndex, svc: ServiceView) -> list[Row]:
    """A Service's endpoints, each resolved to a local pod or a remote node."""
    out = []
    for ep in svc.endpoints:
        where = Cell(*endpoint_place(index, ep.ip))
        out.append(
            row(
                f"ep:{ep.ip}:{ep.port}",
                f"{ep.ip}:{ep.port}",
                Cell(f"{ep.probability:.4f}", "primary"),
                where,
                cell(ep.chain, "dim"),
            )
        )
    return out


BACKEND_COLUMNS = ("BACKEND", "TABLES", "CHAINS", "RULES", "COMMAND")


def backend_rows(rulesets: tuple[RulesetView, ...]) -> list[Row]:
    """One row per iptables dump (backend/family)."""
    return [
        row(
            f"dump:{i}",
            Cell(rs.label, "accent"),
            len(rs.tables),
            sum(len(rs.chains(t)) for t in rs.tables),
            rs.total_rules,
            Cell(" ".join(rs.dump.command), "dim"),
        )
        for i, rs in enumerate(rulesets)
    ]


TABLE_COLUMNS = ("TABLE", "CHAINS", "RULES")


def table_rows(ruleset: RulesetView) -> list[Row]:
    """One row per table of a dump."""
    return [
        row(f"table:{t}", Cell(t, "accent"), len(ruleset.chains(t)), ruleset.rule_count(t))
        for t in ruleset.tables
    ]


CHAIN_COLUMNS = ("CHAIN", "POLICY", "RULES", "PACKETS", "BYTES")


def chain_rows(ruleset: RulesetView, table: str) -> list[Row]:
    """One row per chain of a table, built-in chains first (rules are not parsed)."""
    ordered = sorted(ruleset.chains(table), key=lambda c: (not c.builtin, c.name))
    out = []
    for c in ordered:
        counters = c.counters
        out.append(
            row(
                f"chain:{c.name}",
                Cell(c.name, "primary" if c.builtin else "accent"),
                cell(c.policy, "warning" if c.policy == "DROP" else "dim"),
                ruleset.rule_count(table, c.name),
                cell(counters[0] if counters else None),
                cell(counters[1] if counters else None),
            )
        )
    return out


RULE_COLUMNS = ("#", "MATCHES", "TARGET", "COMMENT", "PKTS")


def rule_matches(rule: Rule) -> str:
    """A rule's matches as iptables-save writes them: `-d 10.96.0.10/32 -p udp -m udp --dport 53`."""
    parts = []
    module = ""
    for m in rule.matches:
        if m.option == "comment":
            continue
        if m.module and m.module != module:
            parts.append(f"-m {m.module}")
        module = m.module
        neg = "! " if m.negated else ""
        short = {
            "source": "-s",
            "destination": "-d",
            "protocol": "-p",
            "in-interface": "-i",
            "out-interface": "-o",
        }
        flag = short.get(m.option, f"--{m.option}") if m.module == "" else f"--{m.option}"
        parts.append(f"{neg}{flag} {m.value}".strip())
    return " ".join(parts) + (" " + " ".join(rule.unknown) if rule.unknown else "")


def rule_target(rule: Rule) -> str:
    """A rule's target with its options: `DNAT --to-destination 10.244.0.5:53`."""
    if rule.target is None:
        return ""
    opts = " ".join(f"--{k} {v}" for k, v in rule.target.options.items())
    prefix = "goto " if rule.target.kind == "goto" else ""
    return f"{prefix}{rule.target.name} {opts}".strip()


def rule_rows(rules: tuple[Rule, ...]) -> list[Row]:
    """One row per rule of a chain; jumps to user chains are highlighted."""
    out = []
    for r in rules:
        target_role = (
            "accent" if r.target is not None and r.target.kind in ("jump", "goto") else "primary"
        )
        out.append(
            row(
                f"rule:{r.position}",
                Cell(str(r.position), "dim"),
                cell(rule_matches(r)),
                Cell(rule_target(r), target_role),
                cell(r.comment, "dim"),
                cell(r.counters[0] if r.counters else None),
            )
        )
    return out


NAMESPACE_COLUMNS = ("TYPE", "INODE", "PROCS", "PID", "USER", "COMMAND", "NSFS / HELD BY")


def namespace_rows(index: SnapshotIndex) -> list[Row]:
    """Every namespace of every type, as lsns shows them, plus nsfs and holders."""
    out = []
    for ns in sorted(index.snapshot.namespaces, key=lambda n: (n.type, n.inode)):
        held = ns.nsfs or join(ns.held_by)
        pod = index.pods_by_netns.get(ns.inode) if ns.type == "net" else None
        command = ns.command
        if pod is not None:
            command = f"{ns.command or ''}  [{pod.namespace}/{pod.name}]".strip()
        out.append(
            row(
                f"{ns.type}:{ns.inode}",
                Cell(ns.type, "primary"),
                ns.inode,
                ns.nprocs,
                ns.pid,
                ns.user if ns.user is not None else ns.uid,
                cell(command),
                Cell(held or "-", "dim"),
            )
        )
    return out


LINK_COLUMNS = ("LINK", "KIND", "MAC", "MTU", "STATE", "ADDRESSES / DETAILS")


def link_rows(index: SnapshotIndex) -> list[Row]:
    """The root namespace's links as a tree: bridges with their ports and pods, then the rest."""
    root = index.root_netns
    if root is None:
        return []
    out = []
    done: set[int] = set()

    def add(link_label_text: str, link: Link, indent: str, detail: str = "") -> None:
        done.add(link.ifindex)
        addrs = join(f"{a.address}/{a.prefixlen}" for a in link.addresses)
        if link.vxlan is not None:
            v = link.vxlan
            addrs = join(x for x in (addrs, f"vni {v.vni} port {v.port} local {v.local}") if x)
        out.append(
            row(
                f"link:{link.ifindex}",
                Cell(indent + link_label_text, "accent" if not indent else ""),
                cell(link.kind, "dim"),
                cell(link.mac, "dim"),
                link.mtu,
                Cell(link.state, "success" if link.state in ("UP", "UNKNOWN") else "warning"),
                cell(join(x for x in (addrs, detail) if x)),
            )
        )

    bridges = [link for link in root.links if link.kind == "bridge"]
    for bridge in bridges:
        add(bridge.name, bridge, "")
        ports = index.bridge_ports(bridge)
        for i, port in enumerate(ports):
            branch = "└─ " if i == len(ports) - 1 else "├─ "
            pod = index.pods_by_netns.get(port.peer.netns) if port.peer else None
            detail = f"pod {pod.namespace}/{pod.name}" if pod else ""
            add(link_label(port), port, branch, detail)
    for link in root.links:
        if link.ifindex in done:
            continue
        fdb_remotes = sorted({f.dst for f in root.fdb if f.ifindex == link.ifindex and f.dst})
        detail = ("remotes " + join(fdb_remotes)) if fdb_remotes else ""
        add(link_label(link), link, "", detail)
    return out


CNI_COLUMNS = ("FILE / NETWORK", "NAME / IP", "PLUGINS / CONTAINER", "STATE")


def cni_rows(index: SnapshotIndex) -> list[Row]:
    """CNI config files (the active one marked), then IPAM reservations (leaks flagged)."""
    cni = index.snapshot.cni
    out = []
    for c in cni.configs:
        state = (
            Cell("active", "success")
            if c.path == cni.active
            else Cell(c.error or "", "error" if c.error else "dim")
        )
        out.append(
            row(
                f"cfg:{c.path}",
                Cell(c.path, "accent"),
                cell(c.name),
                cell(join(c.plugins, " → ")),
                state,
            )
        )
    for a in sorted(cni.allocations, key=lambda a: (a.network, a.ip)):
        pod = _pod_by_sandbox(index, a.container_id)
        owner = f"{pod} ({a.container_id[:12]})" if pod else a.container_id[:12]
        state = Cell("leaked", "error") if a.stale else Cell(a.ifname or "", "dim")
        out.append(row(f"ipam:{a.network}/{a.ip}", Cell(a.network, "primary"), a.ip, owner, state))
    return out


def _pod_by_sandbox(index: SnapshotIndex, sandbox_id: str) -> str | None:
    for pod in index.snapshot.pods:
        if pod.sandbox_id == sandbox_id:
            return f"{pod.namespace}/{pod.name}"
    return None
