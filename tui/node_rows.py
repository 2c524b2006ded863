"""Pure builders for the Node (home) screen and the Problems screen."""

from __future__ import annotations

import time
from dataclasses import dataclass

from podpath.dataplane import detect
from podpath.snapshot.index import SnapshotIndex
from podpath.tui.adapters import Views
from podpath.tui.rows import Cell, Row, cell, row


@dataclass(frozen=True)
class Problem:
    """Something wrong or missing on the node, and why it matters."""

    severity: str  # "warning" or "error"
    subject: str
    why: str


def kube_proxy_mode(index: SnapshotIndex) -> str:
    """kube-proxy's mode as the rules show it: iptables (backend), nftables, or unknown."""
    snap = index.snapshot
    if snap.nft is not None and '"kube-proxy"' in snap.nft.json_text:
        return "nftables"
    backends = sorted({d.backend for d in snap.iptables if "KUBE-SERVICES" in d.text})
    if backends:
        return "iptables (" + ", ".join(backends) + ")"
    return "unknown"


def iptables_backends(index: SnapshotIndex) -> list[str]:
    """Backends that hold at least one rule, labelled backend/family."""
    return sorted({f"{d.backend}/{d.family}" for d in index.snapshot.iptables if "\n-A " in d.text})


def fact_rows(index: SnapshotIndex) -> list[Row]:
    """Facts about the node, one per row."""
    snap = index.snapshot
    runtimes = sorted({p.runtime for p in snap.pods}) or ["unknown"]
    taken = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(snap.taken_at))
    facts: list[tuple[str, object]] = [
        ("node", snap.node.hostname),
        ("kernel", snap.node.kernel),
        ("runtime", ", ".join(runtimes)),
        ("CNI config", snap.cni.active),
        ("kube-proxy", kube_proxy_mode(index)),
        ("dataplane", detect(index).summary),
        ("iptables", ", ".join(iptables_backends(index)) or None),
        ("ip_forward", snap.node.ip_forward),
        ("taken", f"{taken} ({snap.duration:.2f} s)"),
    ]
    return [row(f"fact:{k}", Cell(k, "dim"), cell(v)) for k, v in facts]


@dataclass(frozen=True)
class Derived:
    """What home shows that needs the rules and conntrack parsed (slow on big nodes)."""

    services: int
    conntrack: int
    problems: tuple[Problem, ...]


def derive(index: SnapshotIndex, views: Views) -> Derived:
    """Parse what home needs: Services, conntrack entries, problems."""
    return Derived(len(views.services()), len(views.conntrack()), tuple(problems(index, views)))


def raw_size(index: SnapshotIndex) -> int:
    """Bytes of rule and conntrack text the parsers would read."""
    snap = index.snapshot
    size = sum(len(d.text) for d in snap.iptables)
    size += len(snap.nft.json_text) if snap.nft else 0
    return size + (len(snap.conntrack.text) if snap.conntrack else 0)


def count_rows(index: SnapshotIndex, derived: Derived | None) -> list[Row]:
    """The screens reachable from home, each with its count ("…" while still parsing)."""
    snap = index.snapshot
    pending = "…"
    links = sum(len(ns.links) for ns in snap.netns)
    rules = sum(d.text.count("\n-A ") for d in snap.iptables)
    entries: list[tuple[str, str, object]] = [
        ("pods", "Pods", len(snap.pods)),
        ("svc", "Services", derived.services if derived else pending),
        ("ns", "Namespaces", len(snap.namespaces)),
        ("links", "Links", links),
        ("ipt", "Netfilter rules", rules),
        ("ct", "Conntrack entries", derived.conntrack if derived else pending),
        ("cni", "CNI configs / IPAM", f"{len(snap.cni.configs)} / {len(snap.cni.allocations)}"),
        ("trace", "Trace a packet", ""),
        ("problems", "Problems", len(derived.problems) if derived else pending),
    ]
    return [
        Row(
            f"go:{key}",
            (Cell(label, "accent"), Cell(f"{value}", "primary"), Cell(f":{key}", "dim")),
        )
        for key, label, value in entries
    ]


def problems(index: SnapshotIndex, views: Views) -> list[Problem]:
    """Everything worth a warning: gaps, mixed backends, leaked IPAM, MTU mismatch, stale conntrack."""
    snap = index.snapshot
    out = [
        Problem(
            "error" if g.kind in ("error", "inconsistent") else "warning",
            g.subject,
            g.reason
            + (f" (needs {g.capability})" if g.capability and g.capability not in g.reason else ""),
        )
        for g in snap.gaps
    ]
    backends = {d.backend for d in snap.iptables if "\n-A " in d.text}
    if len(backends) > 1 or (
        backends and snap.nft is not None and '"kube-proxy"' in snap.nft.json_text
    ):
        out.append(
            Problem(
                "warning",
                "mixed netfilter backends",
                "rules exist in "
                + ", ".join(sorted(backends))
                + (" and native nftables" if snap.nft else "")
                + ": the kernel runs all of them, in hook priority order",
            )
        )
    if snap.node.euid not in (None, 0):
        out.append(
            Problem(
                "warning",
                "unprivileged",
                f"collected as uid {snap.node.euid}: parts may be missing",
            )
        )
    for a in snap.cni.allocations:
        if a.stale:
            out.append(
                Problem(
                    "warning",
                    f"IPAM {a.network} {a.ip}",
                    f"reserved for {a.container_id[:12]}, which is no pod: a leaked address",
                )
            )
    out.extend(_mtu_problems(index))
    stale = sum(1 for r in _stale_conntrack(views) if r)
    if stale:
        out.append(
            Problem(
                "warning",
                "stale conntrack",
                f"{stale} {'entry' if stale == 1 else 'entries'} DNAT to an address that is no longer a Service endpoint",
            )
        )
    out.extend(Problem("warning", "parser", note) for note in views.notes)
    return out


def _stale_conntrack(views: Views) -> list[bool]:
    services = views.services()
    vips = {(s.vip, s.port) for s in services}
    endpoints = {(e.ip, e.port) for s in services for e in s.endpoints}
    return [
        e.dnat
        and (e.original.dst, e.original.dport) in vips
        and (e.reply.src, e.reply.sport) not in endpoints
        for e in views.conntrack()
    ]


def _mtu_problems(index: SnapshotIndex) -> list[Problem]:
    root = index.root_netns
    if root is None:
        return []
    overlays = [link for link in root.links if link.kind == "vxlan"]
    if not overlays:
        return []
    overlay_mtu = min(link.mtu for link in overlays)
    out = []
    for pod in index.snapshot.pods:
        eth0 = index.pod_interface(pod)
        if eth0 is not None and eth0.mtu > overlay_mtu:
            out.append(
                Problem(
                    "warning",
                    f"MTU {pod.namespace}/{pod.name}",
                    f"eth0 MTU {eth0.mtu} > overlay MTU {overlay_mtu}: large packets to other nodes are dropped or fragmented",
                )
            )
    return out


PROBLEM_COLUMNS = ("SEVERITY", "SUBJECT", "WHY")


def problem_rows(found: list[Problem]) -> list[Row]:
    """One row per problem, errors first."""
    ordered = sorted(found, key=lambda p: (p.severity != "error", p.subject))
    return [
        row(f"p:{i}", Cell(p.severity, p.severity), Cell(p.subject, "accent"), cell(p.why))
        for i, p in enumerate(ordered)
    ]
