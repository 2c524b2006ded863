"""Home: the node's facts, what it holds, and a banner for problems."""

from __future__ import annotations

from typing import ClassVar

from podpath.tui.base_screen import TableScreen
from podpath.tui.node_rows import (
    INLINE_DERIVE_BYTES,
    Derived,
    count_rows,
    derive,
    fact_rows,
    raw_size,
)
from podpath.tui.rows import Page, Row, page
from podpath.tui.state import Loaded
from podpath.tui.table import RowTable
from podpath.tui.text import literal_content
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import Footer, Header, Static


class NodeScreen(TableScreen):
    """The home screen: facts, counts (enter opens each), and a problems banner."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("p", "problems", "Problems"),
        Binding("y", "copy", "Copy"),
    ]
    HEADING = "Node"
    COLUMNS = ("VIEW", "COUNT", "JUMP")

    def compose(self) -> ComposeResult:
        """Banner, facts, the menu of views."""
        yield Header()
        yield Static("", id="note")
        yield Static("", id="banner")
        yield RowTable(id="facts")
        yield RowTable(id="table")
        yield Footer()

    def prepare(self) -> None:
        """The facts table is not a stop for the cursor."""
        facts = self.query_one("#facts", RowTable)
        facts.can_focus = False
        facts.show_cursor = False

    def __init__(self) -> None:
        super().__init__()
        self._derived: tuple[Loaded, Derived] | None = None

    def derived(self, loaded: Loaded) -> Derived | None:
        """Counts and problems for this snapshot: at once when small, else from a worker."""
        if self._derived is not None and self._derived[0] is loaded:
            return self._derived[1]
        if raw_size(loaded.index) <= INLINE_DERIVE_BYTES:
            self._derived = (loaded, derive(loaded.index, loaded.views))
            return self._derived[1]
        # After the first frame: parsing holds the GIL and would delay it.
        self.call_after_refresh(self._derive, loaded)
        return None

    @work(thread=True, exclusive=True, group="home", exit_on_error=False)
    def _derive(self, loaded: Loaded) -> None:
        """Parse rules and conntrack off the event loop, then update home in place."""
        result = derive(loaded.index, loaded.views)
        self.app.call_from_thread(self._derive_done, loaded, result)

    def _derive_done(self, loaded: Loaded, result: Derived) -> None:
        if loaded is self.loaded:
            self._derived = (loaded, result)
            self.rebuild()

    def build_rows(self, loaded: Loaded) -> list[Row]:
        """The views reachable from home, with counts."""
        return count_rows(loaded.index, self.derived(loaded))

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
            banner.update("collecting the node's state…")
            banner.set_class(False, "-problems")
            return page([])
        facts = self.query_one("#facts", RowTable)
        facts.set_columns(("FACT", "VALUE"))
        facts.show(page(fact_rows(loaded.index)))
        derived = self._derived[1] if self._derived and self._derived[0] is loaded else None
        found = derived.problems if derived else ()
        banner.set_class(bool(found), "-problems")
        if derived is None:
            banner.update("parsing rules and conntrack for problems…")
        elif found:
            first = found[0]
            banner.update(
                literal_content(
                    f"⚠ {len(found)} problem(s): {first.subject} — {first.why}   (p or :problems)"
                )
            )
        else:
            banner.update("✓ no gaps or warnings")
        table = self.table
        table.set_columns(self.columns())
        shown = page(self._rows)
        table.show(shown)
        return shown

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

    def action_back(self) -> None:
        """Home has nowhere to go back to."""
