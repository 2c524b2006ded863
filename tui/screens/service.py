"""One Service: its endpoints resolved to pods, and the chain walk kube-proxy wrote for it."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import Header, Static

from podpath.netfilter.kube_proxy import Service
from podpath.tui.rows.model import page
from podpath.tui.rows.services import (
    ENDPOINT_COLUMNS,
    FACT_COLUMNS,
    WALK_COLUMNS,
    chain_walk_rows,
    endpoint_rows,
    find_service,
    service_fact_rows,
    service_name,
    vip,
    vip_port,
    walk_heading,
)
from podpath.tui.screens.base import BaseScreen
from podpath.tui.text import literal_content
from podpath.tui.widgets.footer import KeysFooter
from podpath.tui.widgets.table import RowTable
from podpath.wording import count


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
        yield RowTable(id="facts")
        yield RowTable(id="endpoints", classes="half")
        yield Static("Chain walk (nat table)", id="walk-heading", classes="subheading")
        yield RowTable(id="walk")
        yield KeysFooter()

    def service(self) -> Service | None:
        """The Service this screen shows."""
        loaded = self.loaded
        return find_service(loaded.parsed.services(), self.key) if loaded else None

    def on_mount(self) -> None:
        """Show the Service."""
        self.reload()
        self.set_focus(self.query_one("#endpoints", RowTable))

    def reload(self) -> None:
        """Fill both tables."""
        loaded, svc = self.loaded, self.service()
        heading = self.query_one("#heading", Static)
        if loaded is None or svc is None:
            heading.update(literal_content(f"Service {self.key} — not in this snapshot"))
            return
        eps = count(len(svc.endpoints), "endpoint")
        if svc.name:
            text = (
                f"Service {service_name(svc)} · {vip_port(svc)} · "
                f"{eps} · {svc.svc_chain or svc.backend}"
            )
            if svc.backend == "ipvs":
                # IPVS names no Service: the name is what pods' environments say.
                text += " · named from pods' service-link environment"
        else:
            # No pod's environment names it: its virtual service is all there is to call it by.
            text = (
                f"IPVS virtual service {svc.svc_chain} · {eps} · IPVS names no Service and "
                "no pod's service-link environment names this one"
            )
        heading.update(literal_content(text))
        facts = self.query_one("#facts", RowTable)
        facts.set_columns(FACT_COLUMNS)
        facts.show(page(service_fact_rows(loaded.index, svc)))
        endpoints = self.query_one("#endpoints", RowTable)
        endpoints.set_columns(ENDPOINT_COLUMNS)
        endpoints.show(page(endpoint_rows(loaded.index, svc)))
        self.query_one("#walk-heading", Static).update(literal_content(walk_heading(svc)))
        walk = self.query_one("#walk", RowTable)
        walk.set_columns(WALK_COLUMNS)
        walk.show(page(chain_walk_rows(loaded.parsed.rule_dumps(), svc)))

    def action_trace(self) -> None:
        """Open Trace toward this Service."""
        svc = self.service()
        if svc is not None:
            self.state().start_trace("", f"{vip(svc)}:{svc.port}")
