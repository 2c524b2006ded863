"""What the kernel did with a traced flow: its conntrack entries and the rule counters that moved.

A trace predicts; the node's conntrack table and the rules' packet counters say what
happened. `flow_entries` picks the entries of the traced flow (its original direction
as the probe sends it), `entry_line` says which endpoint conntrack chose and whether
NAT was applied, next to the trace's prediction; `moved` compares the counters of the
rules on the traced path between two readings (the same trace run on each).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from podpath.conntrack import ConntrackEntry, ConntrackTuple, is_dnat, is_snat
from podpath.trace.model import Branch, Hop, JsonValue, Trace


@dataclass(frozen=True)
class Moved:
    """One rule on the traced path whose counters grew between two readings."""

    node: str
    where: str  # "iptables-nft nat/KUBE-SEP-X #2" or "nftables ip kube-proxy/..."
    rule: str
    packets: int
    bytes: int

    @property
    def text(self) -> str:
        """`+3 packets (180 bytes)  [node1] iptables-nft nat/KUBE-SEP-X #2: -A ...`."""
        return (
            f"+{self.packets} packet{'s' if self.packets != 1 else ''} ({self.bytes} bytes)  "
            f"[{self.node}] {self.where}: {self.rule}"
        )


def flow_entries(trace: Trace, entries: Iterable[ConntrackEntry]) -> list[ConntrackEntry]:
    """The entries whose original direction is the traced packet (its source, when known,
    its destination, port and protocol), newest state first as conntrack lists them."""
    probe = trace.probe
    src, dst = probe.get("src"), probe.get("dst")
    dport, sport, proto = probe.get("dport"), probe.get("sport"), probe.get("proto")
    found = []
    for e in entries:
        o = e.original
        if e.protocol != proto or o.dst != dst:
            continue
        if src is not None and o.src != src:
            continue
        if isinstance(dport, int) and o.dport != dport:
            continue
        if isinstance(sport, int) and o.sport != sport:
            continue
        found.append(e)
    return found


def predicted_endpoints(trace: Trace) -> dict[str, int]:
    """address:port each branch's DNAT sends the packet to, with the branch's number."""
    out: dict[str, int] = {}
    for n, branch in enumerate(trace.branches, 1):
        for nat in branch.nat:
            if nat.kind == "DNAT":
                out.setdefault(_endpoint(*nat.after), n)
    return out


def entry_line(entry: ConntrackEntry, predicted: dict[str, int]) -> str:
    """One entry: both tuples, the endpoint chosen, the NAT applied, the trace's verdict on it."""
    o, r = entry.original, entry.reply
    state = f" {entry.state}" if entry.state else ""
    head = (
        f"{entry.protocol}{state} {_endpoint(o.src, o.sport)} -> {_endpoint(o.dst, o.dport)}"
        f"  reply {_endpoint(r.src, r.sport)} -> {_endpoint(r.dst, r.dport)}"
    )
    nat = []
    if is_dnat(entry):
        chosen = _endpoint(r.src, r.sport)
        branch = predicted.get(chosen)
        told = (
            f"as predicted by branch {branch}"
            if branch is not None
            else "NOT among the trace's endpoints"
            if predicted
            else "the trace predicted no DNAT"
        )
        nat.append(f"DNAT to {chosen} ({told})")
    elif predicted:
        nat.append("no DNAT, though the trace predicted one")
    if is_snat(entry):
        nat.append(f"SNAT to {r.dst}")
    flags = f" [{','.join(entry.status)}]" if entry.status else ""
    left = f" {entry.timeout} s left" if entry.timeout is not None else ""
    return head + (": " + "; ".join(nat) if nat else ": no NAT") + flags + left


def moved(before: Trace, after: Trace) -> list[Moved]:
    """Rules on the traced path whose packet counters grew from `before` to `after`."""
    then = {_rule_key(h): h for h in _rule_hops(before)}
    out: list[Moved] = []
    for hop in _rule_hops(after):
        old = then.get(_rule_key(hop))
        if old is None:
            continue
        packets = _count(hop, "packets") - _count(old, "packets")
        if packets > 0:
            out.append(
                Moved(
                    hop.node,
                    _where(hop),
                    str(hop.data.get("rule") or ""),
                    packets,
                    _count(hop, "bytes") - _count(old, "bytes"),
                )
            )
    return out


def _rule_hops(trace: Trace) -> list[Hop]:
    """Every counted rule hop of every branch and reply, each rule once."""
    seen: dict[tuple[str, ...], Hop] = {}

    def visit(branches: Iterable[Branch]) -> None:
        for b in branches:
            for h in b.hops:
                if h.kind == "netfilter" and isinstance(h.data.get("counter"), dict):
                    seen.setdefault(_rule_key(h), h)
            visit(b.reply)

    visit(trace.branches)
    return list(seen.values())


def _rule_key(hop: Hop) -> tuple[str, ...]:
    d = hop.data
    return tuple(str(d.get(k)) for k in ("backend", "table", "chain", "position", "rule")) + (
        hop.node,
    )


def _count(hop: Hop, key: str) -> int:
    counter = hop.data.get("counter")
    value = counter.get(key) if isinstance(counter, dict) else None
    return value if isinstance(value, int) else 0


def _where(hop: Hop) -> str:
    d = hop.data
    backend = str(d.get("backend") or "")
    name = {"nft": "iptables-nft", "legacy": "iptables-legacy"}.get(backend, backend)
    position = d.get("position")
    at = f" #{position}" if position is not None else ""
    return f"{name} {d.get('table')}/{d.get('chain')}{at}"


def _endpoint(address: str | None, port: int | None) -> str:
    if address is None:
        return "?"
    host = f"[{address}]" if ":" in address else address
    return f"{host}:{port}" if port is not None else host


def observed_lines(trace: Trace, entries: list[ConntrackEntry], source: str) -> list[str]:
    """The kernel's side of a trace as text: the flow's conntrack entries, or why none."""
    predicted = predicted_endpoints(trace)
    lines = [
        f"conntrack ({source}): {len(entries)} entr{'y' if len(entries) == 1 else 'ies'} of this flow"
    ]
    if not entries and source.startswith("conntrack -L"):
        lines.append(
            "  none: the flow has not been seen (or its entries expired); reproduce it, "
            "with --watch to follow"
        )
    elif not entries:
        lines.append("  none: the flow had not been seen when the snapshot was taken")
    lines.extend(f"  {entry_line(e, predicted)}" for e in entries)
    return lines


def observed_json(trace: Trace, entries: list[ConntrackEntry], source: str) -> dict[str, JsonValue]:
    """The kernel's side of a trace as the JSON contract's `observed` object."""
    predicted = predicted_endpoints(trace)
    return {
        "source": source,
        "conntrack": [
            {
                "original": _tuple_json(e.original),
                "reply": _tuple_json(e.reply),
                "state": e.state,
                "status": list(e.status),
                "dnat": is_dnat(e),
                "snat": is_snat(e),
                "endpoint": _endpoint(e.reply.src, e.reply.sport) if is_dnat(e) else None,
                "predicted_by": predicted.get(_endpoint(e.reply.src, e.reply.sport))
                if is_dnat(e)
                else None,
                "line": entry_line(e, predicted),
            }
            for e in entries
        ],
    }


def _tuple_json(t: ConntrackTuple) -> dict[str, JsonValue]:
    return {"src": t.src, "dst": t.dst, "sport": t.sport, "dport": t.dport}
