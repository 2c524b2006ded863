"""Home: the node's facts, the views it holds (from the registry), and a banner for problems."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.content import Content
from textual.widgets import Header, Input, Static

from podpath.analysis.dataplane import dataplane_text, mode_text
from podpath.analysis.findings import Finding
from podpath.tui.rows.model import Page, Row, page
from podpath.tui.rows.node import MENU_COLUMNS, fact_rows, menu_rows
from podpath.tui.screens.base import TableScreen, pending_text
from podpath.tui.state import PROBLEMS, SERVICES, Loaded
from podpath.tui.text import literal_content
from podpath.tui.widgets.footer import KeysFooter
from podpath.tui.widgets.keys import KeyInput
from podpath.tui.widgets.table import RowTable
from podpath.wording import count


class NodeScreen(TableScreen):
    """The home screen: facts, the menu of views with counts (enter opens each), a problems banner."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("p", "problems", "Problems"),
        # Home has nothing to go back to: esc only clears the filter.
        Binding("escape", "back", "Clear filter", show=False),
    ]
    # Under 30 lines (80x24) the facts give up two rows so every view of the menu shows
    # (tui/styles.py, `-short`).
    VERTICAL_BREAKPOINTS = [(0, "-short"), (30, "-tall")]

    HEADING = "Node"
    COLUMNS = MENU_COLUMNS

    def __init__(self) -> None:
        super().__init__()
        # The stages of the prepare worker the rows shown include (counts, problems).
        self._shown_stages: frozenset[str] = frozenset()
        # The facts shown, and what they were made from: counting a big node's rules for
        # its "iptables" fact takes 70 ms, and home is repainted at each step of the parse.
        self._facts: tuple[tuple[object, ...], list[Row]] = ((), [])

    def compose(self) -> ComposeResult:
        """Banner, facts, the filter (hidden until /), the menu of views."""
        yield Header()
        yield Static("", id="note")
        yield Static("", id="banner")
        yield RowTable(id="facts")
        yield KeyInput(placeholder="filter the views — esc clears", id="filter")
        yield RowTable(id="table")
        yield KeysFooter()

    def prepare(self) -> None:
        """The facts table is not a stop for the cursor; the filter starts hidden."""
        facts = self.query_one("#facts", RowTable)
        facts.can_focus = False
        facts.show_cursor = False
        self.query_one("#filter", Input).display = bool(self.needle)

    def reload(self) -> None:
        """Rebuild when the snapshot changed or its views became ready."""
        loaded = self.loaded
        if loaded is not None and loaded.done_stages() != self._shown_stages:
            self._shown_stages = loaded.done_stages()
            self._built_for = None
        super().reload()

    def build_rows(self, loaded: Loaded) -> list[Row]:
        """The views reachable from home (the registry's), with counts."""
        return menu_rows(self.state().home_menu(loaded))

    def gap_lines(self, loaded: Loaded) -> list[str]:
        """Home names problems in its banner, not in a gap line."""
        return []

    def repaint_rows(self) -> Page:
        """Show facts, banner and menu."""
        loaded = self.loaded
        note = self.query_one("#note", Static)
        source_note = self.state().source.note
        note.display = bool(source_note)
        if source_note:
            note.update(literal_content(source_note))
        banner = self.query_one("#banner", Static)
        if loaded is None:
            banner.update("collecting the node's state…", layout=False)
            banner.set_class(False, "-problems")
            return page([])
        found = loaded.problems
        parsed = loaded.has(SERVICES)
        mode = mode_text(loaded.parsed.kube_proxy_mode()) if parsed else "…"
        plane = dataplane_text(loaded.parsed.dataplane()) if parsed else "…"
        facts = self.query_one("#facts", RowTable)
        facts.set_columns(("FACT", "VALUE"))
        backends = loaded.iptables_backends()
        made_of = (loaded, mode, plane, backends)
        if self._facts[0] != made_of:
            # Until the worker has counted a big node's rules, its "iptables" fact waits.
            shown = ["…"] if backends is None else backends
            self._facts = (made_of, fact_rows(loaded.index, mode, plane, shown))
        facts.show(page(self._facts[1]))
        so_far = loaded.fact_problems if found is None else None
        banner.set_class(bool(found or so_far), "-problems")
        # The banner is one line high (styles.py): a new text needs no layout pass, which
        # the screen otherwise runs at each step of the parse (10 at 10k Services).
        banner.update(_banner_text(loaded, found, so_far), layout=False)
        return super().repaint_rows()

    def show_title(self, shown: Page) -> None:
        """Home has no title line: the banner and the facts take its place."""

    def on_click(self, event: object) -> None:
        """A click on the banner opens the Problems screen."""
        widget = getattr(event, "widget", None)
        if widget is not None and widget.id == "banner":
            self.action_problems()

    def action_problems(self) -> None:
        """Open the Problems screen."""
        self.state().open_screen("problems")

    def open_row(self, key: str, loaded: Loaded) -> None:
        """Open the view of the selected menu row."""
        if key.startswith("go:"):
            self.state().open_screen(key[3:])

    def go_back(self) -> None:
        """Home has nowhere to go back to."""


def _banner_text(
    loaded: Loaded, found: tuple[Finding, ...] | None, so_far: tuple[Finding, ...] | None
) -> Content | str:
    """Home's one line about problems: the first found, or how far their search is."""
    if found is None and so_far:
        # A first sight of the problems; the sweep of every path may add more.
        first = so_far[0]
        return literal_content(
            f"⚠ {count(len(so_far), 'problem')} so far: {first.subject} — {first.cause}"
            f"   ({pending_text(loaded, PROBLEMS)})"
        )
    if found is None:
        return pending_text(loaded, PROBLEMS)
    if found:
        first = found[0]
        return literal_content(
            f"⚠ {count(len(found), 'problem')}: {first.subject} — {first.cause}   (p or :problems)"
        )
    return "✓ no gaps or warnings"
