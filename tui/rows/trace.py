"""Pure builders for the Trace screen: branches, hops, and the detail of one hop."""

from __future__ import annotations

import time
from collections.abc import Sequence

from podpath.conntrack import ConntrackEntry
from podpath.netfilter.owners import Owner
from podpath.trace.model import Branch, Hop, Trace
from podpath.tui.rows.model import Cell, Row, row
from podpath.tui.rows.netfilter import owner_text

# How a netfilter hop's backend is named (the JSON's "backend" value), as `podpath trace`.
BACKENDS = {"nft": "iptables-nft", "legacy": "iptables-legacy", "nftables": "nftables"}
MAX_FLOW_ENTRIES = 3  # conntrack entries of the traced flow named on the line
LIVE_CONNTRACK = "conntrack now"  # the flow line's label on a live node

VERDICT_ROLES = {
    "delivered": "success",
    "dropped": "error",
    "leaves-node": "primary",
    "uncertain": "warning",
}

BRANCH_COLUMNS = ("#", "PROBABILITY", "VERDICT", "WHERE IT ENDS")


def branch_rows(trace: Trace) -> list[Row]:
    """One row per branch with its probability and verdict."""
    return [
        row(
            f"b:{i}",
            Cell(str(i + 1), "dim"),
            Cell(f"{b.probability:.4f}", "primary"),
            Cell(b.verdict, VERDICT_ROLES.get(b.verdict, "")),
            Cell(b.reason + (f" (if guesses hold: {b.outcome})" if b.outcome else "")),
        )
        for i, b in enumerate(trace.branches)
    ]


HOP_COLUMNS = ("#", "KIND", "NODE", "RULE OF", "WHAT HAPPENS")


def hop_owner(hop: Hop) -> Owner | None:
    """Who made the rule a netfilter (or IPVS, eBPF) hop took, when the trace says."""
    owner = hop.data.get("owner")
    if not isinstance(owner, dict):
        return None
    return Owner(*(str(owner.get(k) or "") for k in ("kind", "agent", "name", "how")))


def hop_rows(hops: tuple[Hop, ...]) -> list[Row]:
    """One row per hop of a path; a rule's hop says whose rule it is."""
    out = []
    for i, h in enumerate(hops):
        owner = hop_owner(h)
        out.append(
            row(
                f"h:{i}",
                Cell(str(i + 1), "dim"),
                Cell(h.kind, "accent"),
                Cell(h.node, "dim"),
                Cell(owner_text(owner) if owner else "", "success" if owner else "dim"),
                Cell(h.text),
            )
        )
    return out


def rule_facts(hop: Hop) -> str:
    """A rule hop's backend, owner and counter in one line (empty for other hops)."""
    facts = []
    backend = hop.data.get("backend")
    if hop.kind == "netfilter" and backend:
        facts.append(BACKENDS.get(str(backend), str(backend)))
    owner = hop_owner(hop)
    if owner is not None:
        facts.append(f"rule of {owner.text}")
    counter = hop.data.get("counter")
    if isinstance(counter, dict):
        facts.append(f"counter {counter.get('packets')} packets {counter.get('bytes')} bytes")
    return " · ".join(facts)


def path_hops(branch: Branch, reply: bool) -> tuple[Hop, ...]:
    """The hops of a branch, or of its (first) reply path."""
    if not reply:
        return branch.hops
    return branch.reply[0].hops if branch.reply else ()


def path_doubts(branch: Branch, reply: bool) -> tuple[str, ...]:
    """What the shown path (the branch, or its first reply) had to leave open: the
    reasons it is uncertain, which its row can show only cut to the screen's width."""
    if not reply:
        return branch.uncertain
    return branch.reply[0].uncertain if branch.reply else ()


def hop_detail(hop: Hop, explain: bool) -> str:
    """The entries that decided a hop, one per line; with `explain`, the binary AND too."""
    facts = rule_facts(hop)
    lines = [hop.text, *([f"  {facts}"] if facts else []), *("  " + d for d in hop.details)]
    if explain and hop.explain:
        lines += ["", "route lookup, bit by bit:", *("  " + e for e in hop.explain)]
    elif hop.explain:
        lines.append("  (press a for the binary AND)")
    return "\n".join(lines)


def completions(pod_names: list[str], pod_ips: list[str], services: list[str]) -> list[str]:
    """Everything the source/destination inputs complete: pods, Services, IPs, the node."""
    return sorted({"node", *pod_names, *pod_ips, *services})


def _hostport(ip: str, port: int | None) -> str:
    shown = f"[{ip}]" if ":" in ip else ip
    return f"{shown}:{port}" if port is not None else shown


def _endpoint(branch: Branch) -> str | None:
    """The endpoint the branch's last DNAT chose (`10.244.0.5:80`), if it has one."""
    for hop in reversed(branch.hops):
        if hop.kind == "nat" and hop.data.get("type") == "DNAT":
            return str(hop.data.get("to"))
    return None


def conntrack_label(live: bool, taken_at: float) -> str:
    """Whose conntrack the flow line shows: the live node's, or the saved snapshot's."""
    if live:
        return LIVE_CONNTRACK
    taken = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(taken_at))
    return f"conntrack in the snapshot ({taken})"


def flow_text(
    entries: Sequence[ConntrackEntry], branch: Branch, label: str = LIVE_CONNTRACK
) -> str:
    """The entries beside the prediction: tuples, the NAT applied, the chosen endpoint.

    `label` says whose table it is (conntrack_label): a saved snapshot's is not "now".
    """
    if not entries:
        seen = "has not" if label == LIVE_CONNTRACK else "had not"
        return f"{label}: no entry of this flow (the kernel {seen} seen it)"
    predicted = _endpoint(branch)
    parts = []
    for e in entries[:MAX_FLOW_ENTRIES]:
        o, r = e.original, e.reply
        nat = []
        chosen = _hostport(r.src, r.sport)
        if (r.src, r.sport) != (o.dst, o.dport):
            nat.append(f"DNAT to {chosen}")
        if r.dst != o.src:
            nat.append(f"SNAT to {r.dst}")
        same = " = this branch" if predicted is not None and chosen == predicted else ""
        parts.append(
            f"{e.state or e.protocol} {_hostport(o.src, o.sport)} → {_hostport(o.dst, o.dport)}, "
            f"reply from {chosen}" + (f" ({', '.join(nat)}{same})" if nat else same)
        )
    more = f" (+{len(entries) - MAX_FLOW_ENTRIES} more)" if len(entries) > MAX_FLOW_ENTRIES else ""
    return (
        f"{label}, {len(entries)} entr{'y' if len(entries) == 1 else 'ies'}: "
        + "; ".join(parts)
        + more
    )
