"""A trace as text (like the article: one line per hop, decisions indented) or as the JSON contract.

Every string from the node (interface names, rule text, comments) may hold escape
sequences; `visible` makes control characters printable so a rule comment cannot
drive the terminal.
"""

from __future__ import annotations

import json

from podpath.netfilter.owners import Owner
from podpath.safe_text import visible
from podpath.trace.model import Branch, Hop, JsonValue, Trace
from podpath.trace.probe import hostport


def hop_json(hop: Hop) -> dict[str, JsonValue]:
    """One hop of the JSON contract: kind, node, text, details, then the kind's keys."""
    out: dict[str, JsonValue] = {
        "kind": hop.kind,
        "node": hop.node,
        "text": hop.text,
        "details": list(hop.details),
    }
    if hop.explain:
        out["explain"] = list(hop.explain)
    for key, value in hop.data.items():
        out.setdefault(key, value)
    return out


def branch_json(branch: Branch) -> dict[str, JsonValue]:
    """One branch of the JSON contract."""
    return {
        "probability": branch.probability,
        "verdict": branch.verdict,
        "reason": branch.reason,
        "outcome": branch.outcome,
        "uncertain": list(branch.uncertain),
        "final": {
            "src": branch.packet.src,
            "dst": branch.packet.dst,
            "proto": branch.packet.proto,
            "sport": branch.packet.sport,
            "dport": branch.packet.dport,
        },
        "hops": [hop_json(h) for h in branch.hops],
        "reply": [branch_json(r) for r in branch.reply],
    }


def trace_json(trace: Trace) -> dict[str, JsonValue]:
    """The whole trace as the JSON contract: {"probe": {...}, "branches": [...]}."""
    return {"probe": trace.probe, "branches": [branch_json(b) for b in trace.branches]}


def dumps(trace: Trace) -> str:
    """The JSON contract as text (ASCII, so any byte from the node survives)."""
    return json.dumps(trace_json(trace), indent=2, ensure_ascii=True)


def _header(trace: Trace) -> str:
    p = trace.probe
    dport = p.get("dport")
    dst = hostport(str(p.get("dst")), dport if isinstance(dport, int) else None)
    return visible(
        f"trace {p.get('proto')} from {p.get('src_label')} ({p.get('src') or 'source chosen by routing'}) "
        f"to {p.get('dst_label')} ({dst}) on {p.get('node')}"
    )


# How a netfilter hop's backend is named in text (the JSON's "backend" value).
_BACKENDS = {"nft": "iptables-nft", "legacy": "iptables-legacy", "nftables": "nftables"}


def _rule_facts(hop: Hop) -> list[str]:
    """Who made a netfilter hop's rule, and its counter, as one line (empty when unknown)."""
    facts = []
    owner = hop.data.get("owner")
    if isinstance(owner, dict):
        made = Owner(*(str(owner.get(k) or "") for k in ("kind", "agent", "name", "how")))
        facts.append(f"rule of {made.text}")
    counter = hop.data.get("counter")
    if isinstance(counter, dict):
        facts.append(f"counter {counter.get('packets')} packets {counter.get('bytes')} bytes")
    return ["; ".join(facts)] if facts else []


def _hop_lines(hop: Hop, explain: bool, indent: str, multi_node: bool) -> list[str]:
    where = f"[{hop.node}] " if multi_node else ""
    text = hop.text
    details = list(hop.details)
    if hop.kind == "netfilter":
        backend = str(hop.data.get("backend") or "")
        text = f"{_BACKENDS.get(backend, backend)} {text}".strip()
        details = _rule_facts(hop) + details
    lines = [f"{indent}{hop.kind:<10} {where}{visible(text)}"]
    lines.extend(f"{indent}{'':<10}   {visible(d)}" for d in details)
    if explain:
        lines.extend(f"{indent}{'':<10}   {visible(e)}" for e in hop.explain)
    return lines


def _branch_lines(
    branch: Branch, n: int, total: int, explain: bool, indent: str, title: str
) -> list[str]:
    head = f"{indent}{title} {n} of {total}: p={branch.probability:.4f}  {branch.verdict.upper()}: {visible(branch.reason)}"
    lines = [head]
    nodes = {h.node for h in branch.hops}
    for hop in branch.hops:
        lines.extend(_hop_lines(hop, explain, indent + "  ", len(nodes) > 1))
    for note in branch.uncertain:
        lines.append(f"{indent}  uncertain: {visible(note)}")
    for i, reply in enumerate(branch.reply, 1):
        lines.extend(_branch_lines(reply, i, len(branch.reply), explain, indent + "  ", "reply"))
    return lines


def render_text(trace: Trace, explain: bool = False) -> str:
    """The trace as text: a header, then each branch with its hops."""
    lines = [_header(trace)]
    total = len(trace.branches)
    for i, branch in enumerate(trace.branches, 1):
        lines.append("")
        lines.extend(_branch_lines(branch, i, total, explain, "", "branch"))
    if total > 1:
        lines.append("")
        summary: dict[str, float] = {}
        for b in trace.branches:
            summary[b.verdict] = summary.get(b.verdict, 0.0) + b.probability
        lines.append("summary: " + ", ".join(f"{v} {p:.4f}" for v, p in summary.items()))
    return "\n".join(lines) + "\n"
