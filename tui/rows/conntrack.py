"""Pure row builders for conntrack entries: original vs reply, DNAT explained, stale flagged."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from podpath.analysis.conntrack import involves, nat_note, service_addresses
from podpath.conntrack import ConntrackEntry, ConntrackTuple
from podpath.netfilter.kube_proxy import Service
from podpath.tui.rows.model import Cell, Row, cell, row

# A NAT note's kind (analysis.conntrack.NatNote) -> the role of its cell.
NOTE_ROLES = {"stale": "error", "dnat": "primary", "snat": "primary", "": "dim"}


def endpoint_text(t: ConntrackTuple) -> str:
    """src:sport → dst:dport."""
    sport = f":{t.sport}" if t.sport is not None else ""
    dport = f":{t.dport}" if t.dport is not None else ""
    return f"{t.src}{sport} → {t.dst}{dport}"


CONNTRACK_COLUMNS = ("PROTO", "STATE", "ORIGINAL", "REPLY", "NOTE")


def conntrack_rows(
    entries: tuple[ConntrackEntry, ...],
    services: Iterable[Service] = (),
    ips: frozenset[str] | None = None,
    tick: Callable[[], object] | None = None,
) -> list[Row]:
    """Conntrack entries (optionally only those involving `ips`), DNAT explained, stale
    flagged (`tick` is told each entry, for progress)."""
    addresses = service_addresses(services)
    out = []
    # Keys are positions in the whole table, so a pod's rows keep the Conntrack screen's keys.
    for i, e in enumerate(entries):
        if tick is not None:
            tick()
        if ips is not None and not involves(e, ips):
            continue
        note = nat_note(e, addresses)
        out.append(
            row(
                f"ct:{i}",
                Cell(e.protocol, "dim"),
                cell(e.state),
                endpoint_text(e.original),
                endpoint_text(e.reply),
                Cell(note.text, NOTE_ROLES[note.kind]),
            )
        )
    return out
