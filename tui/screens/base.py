"""The shape every list screen shares: header, title line, filter, table, footer."""

from __future__ import annotations

from typing import Any, ClassVar, cast

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.screen import Screen
from textual.widgets import Header, Input, Static
from textual.worker import Worker, WorkerState

from podpath.snapshot.model import Pod
from podpath.tui.rows.model import Page, Row, RowSet, page, rowset
from podpath.tui.rows.pod import key_of
from podpath.tui.state import DOING, AppState, Loaded
from podpath.tui.text import clean, literal_content
from podpath.tui.widgets.footer import KeysFooter
from podpath.tui.widgets.keys import KeyInput
from podpath.tui.widgets.table import RowTable


def pending_text(loaded: Loaded | None, stage: str | None = None) -> str:
    """What a view that waits for a stage of the parse worker says meanwhile (or after it
    failed): what it waits for, and what the worker is doing now and how far it is."""
    if loaded is not None and loaded.failed:
        return "not shown: parsing the rules and conntrack failed"
    if loaded is None or not loaded.current:
        return f"{DOING.get(stage or '', 'preparing the views')}…"
    now = f"{DOING[loaded.current]} ({loaded.how_far()})"
    if stage is None:
        return f"preparing the views: {now}…"
    if stage == loaded.current:
        return f"{now}…"
    return f"{DOING[stage]} next; now {now}…"


class BaseScreen(Screen[None]):
    """A screen that shows data from the loaded snapshot and reloads when it changes."""

    def state(self) -> AppState:
        """The app, seen through what screens may use."""
        return cast(AppState, self.app)

    @property
    def loaded(self) -> Loaded | None:
        """The current snapshot and its views, if one is loaded."""
        return self.state().loaded

    def reload(self) -> None:
        """Show the current snapshot (called on mount and after every refresh)."""

    def on_unmount(self) -> None:
        """Closed: let go of the snapshot (`release`)."""
        self.release()

    def release(self) -> None:
        """Drop what this screen holds of a snapshot and its views. A closed screen is
        cyclic garbage, and one that was open when the app froze its heap (a refresh:
        tui/weak_work.py) is never collected: what it still held would stay for good."""

    def on_screen_resume(self) -> None:
        """Show the newest snapshot when coming back to this screen."""
        self.reload()

    def trace_inputs(self) -> tuple[str, str]:
        """(source, destination) that `t` prefills in Trace: the selected pod, if any."""
        getter = getattr(self, "selected_pod", None)
        pod = getter() if callable(getter) else None
        if isinstance(pod, Pod):
            return f"{pod.namespace}/{pod.name}", ""
        return "", ""

    def action_back(self) -> None:
        """Go back one screen (never past the home screen)."""
        if len(self.app.screen_stack) > 2:
            self.app.pop_screen()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """No action once the app is quitting: the screens are being torn down."""
        if self.state().quitting or not self.app.is_running:
            return False
        return super().check_action(action, parameters)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """A worker of this screen finished: its result to worker_done, a failure reported once."""
        if event.state == WorkerState.SUCCESS:
            self.worker_done(event.worker)
        elif event.state == WorkerState.ERROR:
            self.state().report_failure(event.worker)
            self.worker_failed(event.worker)

    def worker_done(self, worker: Worker[Any]) -> None:
        """Show what a worker of this screen produced (screens with workers override)."""

    def worker_failed(self, worker: Worker[Any]) -> None:
        """Leave a screen's waiting state after its worker failed (already reported)."""


def enter_binding(what: str) -> Binding:
    """The list's enter (TableScreen's: priority, hidden), with what it does on this screen."""
    return Binding(
        "enter", "enter", f"{what} (in the filter: to the list)", show=False, priority=True
    )


class TableScreen(BaseScreen):
    """A filterable list of rows; enter drills in, esc goes back."""

    BINDINGS: ClassVar[list[BindingType]] = [
        # priority: they move the focus, and must have done it when the next key is let
        # in (podpath.tui.key_order); check_action limits each to where it applies.
        Binding("slash", "filter", "Filter", priority=True),
        Binding(
            "enter", "enter", "Open (in the filter: back to the list)", show=False, priority=True
        ),
        Binding("escape", "back", "Back"),
        Binding("y", "copy", "Copy"),
    ]
    HEADING = ""
    COLUMNS: tuple[str, ...] = ()
    # The stage of the parse worker whose rows this screen waits for (tui/state.py).
    PENDING_STAGE: str | None = None
    # Words that mark a snapshot gap (or parser note) as this view's: its data is partial.
    GAP_WORDS: tuple[str, ...] = ()

    def __init__(self, needle: str = "") -> None:
        super().__init__()
        self.needle = needle
        self._rows: RowSet = rowset(())
        self._built_for: Loaded | None = None
        # True while the rows wait for the snapshot's views (parsed in a worker).
        self._pending = False

    def compose(self) -> ComposeResult:
        """Header, title line with counts, hidden filter input, the table, footer."""
        yield Header()
        with Horizontal(id="titlebar"):
            yield Static(self.HEADING, id="heading")
            yield Static("", id="count")
        yield Static("", id="gaps")
        yield KeyInput(
            value=self.needle, placeholder="filter (substring) — esc clears", id="filter"
        )
        yield RowTable(id="table")
        yield KeysFooter()

    def on_mount(self) -> None:
        """Set up, show the rows, focus the table."""
        self.prepare()
        self.reload()
        self.set_focus(self.table)

    def release(self) -> None:
        """Drop the rows and the snapshot they were built for (see BaseScreen.release)."""
        self._rows = rowset(())
        self._built_for = None

    def prepare(self) -> None:
        """Set up widgets before the first rows are shown (the filter starts hidden)."""
        self.query_one("#filter", Input).display = bool(self.needle)
        self.query_one("#gaps", Static).display = False

    @property
    def table(self) -> RowTable:
        """The screen's table."""
        return self.query_one("#table", RowTable)

    def columns(self) -> tuple[str, ...]:
        """The column headers."""
        return self.COLUMNS

    def build_rows(self, loaded: Loaded) -> list[Row]:
        """All rows of this screen (filtered and capped later)."""
        return []

    def build_rowset(self, loaded: Loaded) -> RowSet | None:
        """All rows, ready to filter; None while they wait for views parsed in a worker."""
        return rowset(self.build_rows(loaded))

    def gap_lines(self, loaded: Loaded) -> list[str]:
        """Why this view's data may be partial: the snapshot's gaps that concern it."""
        words = self.GAP_WORDS
        if not words:
            return []
        found = [
            f"{g.subject}: {g.reason}"
            for g in loaded.snapshot.gaps
            if any(w in f"{g.subject} {g.reason}".lower() for w in words)
        ]
        found += [n for n in loaded.parsed.notes if any(w in n.lower() for w in words)]
        return found

    def heading(self) -> str:
        """The title line (may include node data: it is shown literally)."""
        return self.HEADING

    def reload(self) -> None:
        """Rebuild rows when the snapshot changed, then show the filtered page."""
        loaded = self.loaded
        if loaded is not None and loaded is not self._built_for:
            built = self.build_rowset(loaded)
            self._pending = built is None
            if built is not None:
                self._rows = built
                self._built_for = loaded
            gaps = self.gap_lines(loaded)
            for note in self.query("#gaps").results(Static):
                note.display = bool(gaps)
                if gaps:
                    more = f" (+{len(gaps) - 1} more, see :problems)" if len(gaps) > 1 else ""
                    note.update(literal_content(f"⚠ partial: {gaps[0]}{more}"))
        self.repaint_rows()

    def rebuild(self) -> None:
        """Rebuild rows from the same snapshot (the screen's own state changed)."""
        self._built_for = None
        self.reload()

    def shown_page(self) -> Page:
        """The rows to show: those the filter keeps, capped (a screen may order them its way)."""
        return page(self._rows, self.needle)

    def repaint_rows(self) -> Page:
        """Apply the filter to the rows and show them."""
        shown = self.shown_page()
        table = self.table
        table.set_columns(self.columns())
        table.show(shown)
        self.show_title(shown)
        return shown

    def show_title(self, shown: Page) -> None:
        """The title line: heading, and how many rows there are or match the filter."""
        self.query_one("#heading", Static).update(literal_content(self.heading()))
        if self._pending:
            count = pending_text(self.loaded, self.PENDING_STAGE)
        elif self.needle:
            count = f"{shown.matched:,} of {shown.total:,} match “{self.needle}”"
        else:
            count = f"{shown.total:,} row{'' if shown.total == 1 else 's'}"
        self.query_one("#count", Static).update(literal_content(count))

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """`/` opens the filter unless text is being typed; enter is the filter's or the list's."""
        focused = self.focused
        if action == "filter" and isinstance(focused, Input):
            return False
        if action == "enter":
            in_filter = isinstance(focused, Input) and focused.id == "filter"
            on_list = focused is not None and focused.id == "table"
            if not (in_filter or on_list):
                return False
        return super().check_action(action, parameters)

    def action_enter(self) -> None:
        """Enter: in the filter, back to the list; on the list, open the row (at once)."""
        if isinstance(self.focused, Input):
            self.action_filter_done()
            return
        key, loaded = self.table.selected_key, self.loaded
        if key is not None and loaded is not None:
            self.open_row(key, loaded)

    def action_filter_done(self) -> None:
        """Enter in the filter: the rows filtered by all that was typed, then the table."""
        # The Input.Changed of the last letters may still be on their way: ↓ must move
        # in the filtered rows, not in the ones before them.
        value = self.query_one("#filter", Input).value
        if value != self.needle:
            self.needle = value
            self.repaint_rows()
        self.set_focus(self.table)

    def action_filter(self) -> None:
        """Show the filter input and focus it."""
        filt = self.query_one("#filter", Input)
        filt.display = True
        self.set_focus(filt)

    def on_input_changed(self, event: Input.Changed) -> None:
        """Filter as the user types."""
        if event.input.id == "filter":
            event.stop()
            if event.value != event.input.value:
                # Late: the filter changed since (enter then a drill-in cleared it), and
                # this message must not bring its old text back.
                return
            self.needle = event.value
            self.repaint_rows()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        """Enter in the filter returns to the table."""
        if event.input.id == "filter":
            event.stop()
            self.set_focus(self.table)

    def action_back(self) -> None:
        """Esc clears the filter first, then goes back."""
        filt = self.query_one("#filter", Input)
        if self.needle or filt.has_focus:
            self.clear_filter()
            self.repaint_rows()
            return
        self.go_back()

    def clear_filter(self) -> None:
        """Empty and hide the filter, and give the table the focus back."""
        filt = self.query_one("#filter", Input)
        with filt.prevent(Input.Changed):
            filt.value = ""
        self.needle = ""
        filt.display = False
        self.set_focus(self.table)

    def go_back(self) -> None:
        """Leave this screen (never past home)."""
        super().action_back()

    def on_row_table_row_selected(self, event: RowTable.RowSelected) -> None:
        """Enter on a row drills in."""
        event.stop()
        key = self.table.selected_key
        loaded = self.loaded
        if key is not None and loaded is not None:
            self.open_row(key, loaded)

    def open_row(self, key: str, loaded: Loaded) -> None:
        """Drill into a row (screens override)."""

    def open_pod(self, loaded: Loaded, pod: Pod | None, what: str) -> None:
        """Open a pod's screen, or say in one line that `what` belongs to no pod."""
        key = key_of(loaded.index, pod) if pod is not None else None
        if key is None:
            self.notify(clean(f"{what}: no pod of this node"), timeout=3, markup=False)
            return
        self.state().open_screen("pod", key)

    def action_copy(self) -> None:
        """Copy the selected row's first cell (the name) to the clipboard."""
        cells = self.table.selected_cells()
        if cells:
            self.app.copy_to_clipboard(cells[0].text)
            self.notify(clean(f"copied {cells[0].text}"), markup=False, timeout=2)
