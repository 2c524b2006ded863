"""Pure row builders for the Routing view: the root namespace's policy rules, then its routes.

It reads as `ip rule` followed by `ip route show table all` (both families): each rule in
priority order with the table it looks up, then each table's routes with their type.
"""

from __future__ import annotations

from podpath.analysis.index import SnapshotIndex
from podpath.snapshot.model import Route, Rule
from podpath.trace.routing import DROP_TYPES, describe_rule, table_name
from podpath.tui.rows.model import Cell, Row, row

ROUTING_COLUMNS = (
    "WHAT",
    "TABLE",
    "TYPE",
    "RULE / DESTINATION",
    "VIA",
    "DEV",
    "SRC",
    "PROTO",
    "SCOPE",
)


def routing_rows(index: SnapshotIndex) -> list[Row]:
    """The root namespace's rules (by family, then priority), then its routes, table by table."""
    root = index.root_netns
    if root is None:
        return []
    rules = sorted(enumerate(root.rules), key=lambda ir: (ir[1].family, ir[1].priority))
    out = [_rule_row(i, r) for i, r in rules]
    # Tables in the order the rules consult them, then any other (main before local).
    order: dict[int, int] = {}
    for _, r in rules:
        if r.table is not None:
            order.setdefault(r.table, len(order))
    routes = sorted(
        enumerate(root.routes),
        key=lambda ir: (ir[1].family, order.get(ir[1].table, len(order)), ir[1].table),
    )
    out += [route_row(index, f"route:{i}", Cell("route", "primary"), r) for i, r in routes]
    return out


def _rule_row(i: int, r: Rule) -> Row:
    prio, _, text = describe_rule(r).partition(": ")
    action = r.action if r.action != "goto" else f"goto {r.goto}"
    return row(
        f"rule:{i}",
        Cell(f"rule {prio}", "accent"),
        table_name(r.table) if r.action == "lookup" and r.table is not None else None,
        Cell(action, "error" if r.action in DROP_TYPES else "dim"),
        Cell(text, "warning" if r.invert else ""),
        None,
        None,
        None,
        Cell(r.protocol or "-", "dim"),
        None,
    )


def route_row(index: SnapshotIndex, key: str, where: Cell, r: Route) -> Row:
    """One route as `ip route` prints it, under ROUTING_COLUMNS' last eight headers."""
    dev = index.link(r.netns, r.dev)
    return row(
        key,
        where,
        table_name(r.table),
        Cell(r.type, "error" if r.type in DROP_TYPES else "dim"),
        r.dst,
        r.gateway,
        dev.name if dev else r.dev,
        r.prefsrc,
        Cell(r.protocol, "dim"),
        Cell(r.scope, "dim"),
    )
