"""Everything worth a warning on a node, each with why: the list `podpath ls problems`
prints and the TUI's Problems screen shows.

Gaps (what could not be read), kube-proxy's own warnings (several netfilter backends
in use, mode-switch leftovers), an unprivileged collection, leaked IPAM addresses, pod
MTUs above the overlay's, conntrack entries DNATed to a former endpoint, and whatever
the parsers could not read.
"""

from __future__ import annotations

from dataclasses import dataclass

from podpath.analysis.conntrack import stale_entries
from podpath.analysis.index import SnapshotIndex
from podpath.analysis.parsed import ParsedSnapshot
from podpath.snapshot.model import Gap

# Gap kinds that mean the data is wrong, not just missing.
ERROR_GAPS = frozenset({"error", "inconsistent"})


@dataclass(frozen=True)
class Problem:
    """Something wrong or missing on the node, and why it matters."""

    severity: str  # "error" or "warning"
    subject: str
    why: str


def problems(parsed: ParsedSnapshot) -> tuple[Problem, ...]:
    """Every problem of the snapshot, errors first, then by subject."""
    parsed.parse_all()
    index = parsed.index
    snap = index.snapshot
    found = [_gap_problem(g) for g in snap.gaps if g.kind != "skipped"]
    mode = parsed.kube_proxy_mode()
    if mode is not None:
        found += [Problem("warning", "netfilter backends", w) for w in mode.warnings]
    if snap.node.euid not in (None, 0):
        found.append(
            Problem(
                "warning",
                "unprivileged",
                f"collected as uid {snap.node.euid}: parts may be missing",
            )
        )
    found += [
        Problem(
            "warning",
            f"IPAM {a.network} {a.ip}",
            f"reserved for {a.container_id[:12]}, which is no pod: a leaked address",
        )
        for a in snap.cni.allocations
        if a.stale
    ]
    found += mtu_problems(index)
    stale = len(stale_entries(parsed.conntrack(), parsed.services()))
    if stale:
        entries = "entry" if stale == 1 else "entries"
        found.append(
            Problem(
                "warning",
                "stale conntrack",
                f"{stale} {entries} DNAT to an address that is no longer a Service endpoint",
            )
        )
    found += [Problem("warning", "parser", note) for note in parsed.notes]
    return tuple(sorted(found, key=lambda p: (p.severity != "error", p.subject)))


def _gap_problem(gap: Gap) -> Problem:
    needs = (
        f" (needs {gap.capability})" if gap.capability and gap.capability not in gap.reason else ""
    )
    return Problem(
        "error" if gap.kind in ERROR_GAPS else "warning", gap.subject, gap.reason + needs
    )


def mtu_problems(index: SnapshotIndex) -> list[Problem]:
    """Pods whose eth0 MTU is above the overlay's: large packets to other nodes are lost."""
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
                    f"eth0 MTU {eth0.mtu} > overlay MTU {overlay_mtu}: large packets to other "
                    "nodes are dropped or fragmented",
                )
            )
    return out
