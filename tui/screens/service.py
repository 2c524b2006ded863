"""One Service: its endpoints resolved to pods, and the chain walk kube-proxy wrote for it."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import Footer, Header, Static

from podpath.netfilter.model import Rule
from podpath.tui.adapters import ServiceView
from podpath.tui.rows.lists import ENDPOINT_COLUMNS, endpoint_rows, rule_matches, rule_target
from podpath.tui.rows.model import Cell, Row, cell, page
from podpath.tui.screens.base import BaseScreen
from podpath.tui.state import Loaded
from podpath.tui.text import literal_content
from podpath.tui.widgets.table import RowTable

WALK_COLUMNS = ("CHAIN", "#", "MATCHES", "TARGET")


def chain_walk_rows(loaded: Loaded, svc: ServiceView) -> list[Row]:
    """KUBE-SERVICES rules that jump to the Service's chain, its rules, and each endpoint chain's."""
    wanted = [c for c in (svc.chain, *(e.chain for e in svc.endpoints)) if c]
    out: list[Row] = []
    for rs in loaded.views.rulesets():
        if "nat" not in rs.tables:
            continue
        for r in rs.rules("nat", "KUBE-SERVICES"):
            if r.target is not None and r.target.name in wanted:
                out.append(_walk_row(rs.label, r, "KUBE-SERVICES"))
        for name in wanted:
            for r in rs.rules("nat", name):
                out.append(_walk_row(rs.label, r, name))
    return out


def _walk_row(label: str, r: Rule, chain: str) -> Row:
    return Row(
        f"{label}:{chain}:{r.position}",
        (
            Cell(chain, "accent" if chain != "KUBE-SERVICES" else "primary"),
            Cell(str(r.position), "dim"),
            cell(rule_matches(r)),
            Cell(rule_target(r), "primary"),
        ),
    )


class ServiceScreen(BaseScreen):
    """Endpoints (with probability and pod) above the chain walk."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "back", "Back"),
        Binding("t", "trace", "Trace to it"),
    ]

    def __init__(self, key: str) -> None:
        super().__init__()
        self.key = key

    def compose(self) -> ComposeResult:
        """Heading, endpoints, chain walk."""
        yield Header()
        yield Static("", id="heading")
        yield RowTable(id="endpoints", classes="half")
        yield Static("Chain walk (nat table)", id="walk-heading", classes="subheading")
        yield RowTable(id="walk")
        yield Footer()

    def service(self) -> ServiceView | None:
        """The Service this screen shows."""
        loaded = self.loaded
        if loaded is None:
            return None
        return next((s for s in loaded.views.services() if s.key == self.key), None)

    def on_mount(self) -> None:
        """Show the Service."""
        self.reload()
        self.query_one("#endpoints", RowTable).focus()

    def reload(self) -> None:
        """Fill both tables."""
        loaded, svc = self.loaded, self.service()
        heading = self.query_one("#heading", Static)
        if loaded is None or svc is None:
            heading.update(literal_content(f"Service {self.key} — not in this snapshot"))
            return
        heading.update(
            literal_content(
                f"Service {svc.namespace}/{svc.name} {svc.port_name} · {svc.vip}:{svc.port}/{svc.protocol} · "
                f"{len(svc.endpoints)} endpoint(s) · {svc.chain or svc.backend}"
            )
        )
        endpoints = self.query_one("#endpoints", RowTable)
        endpoints.set_columns(ENDPOINT_COLUMNS)
        endpoints.show(page(endpoint_rows(loaded.index, svc)))
        walk = self.query_one("#walk", RowTable)
        walk.set_columns(WALK_COLUMNS)
        walk.show(page(chain_walk_rows(loaded, svc)))

    def action_trace(self) -> None:
        """Open Trace toward this Service."""
        svc = self.service()
        if svc is not None:
            self.state().start_trace("", f"{svc.vip}:{svc.port}")
