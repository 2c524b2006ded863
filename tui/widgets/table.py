"""A row-cursor table that paints `Row`s literally, line by line, and updates in place by key.

Textual's DataTable renders every visible cell through Rich (a console render per cell,
twice per screen open) and its machinery for cell cursors, fixed columns and row
heights: ~45% of opening a screen. Our tables need one line per row, a row cursor and
a header, so this widget paints each line straight from plain strings with styles
worked out once per repaint (Textual's line API): the same look, a fraction of the cost.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from rich.cells import cell_len, set_cell_size
from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.binding import Binding, BindingType
from textual.geometry import Region, Size, Spacing
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip

from podpath.tui.rows.model import MORE_KEY, Cell, Page, Row, more_row
from podpath.tui.text import clean
from podpath.tui.widgets.keys import pass_on

ROLE_COLOURS = ("accent", "primary", "warning", "error", "success")
PADDING = 1  # blank cells on each side of a cell, as DataTable's cell_padding
LAST_ROOM = 60  # columns the last column keeps before `fold_when_narrow` columns give way


class RowMessage(Message):
    """Something happened on one row of a RowTable: the table, and the row's key."""

    def __init__(self, table: RowTable, key: str | None) -> None:
        super().__init__()
        self.table = table
        self.key = key

    @property
    def control(self) -> RowTable:
        """The table it happened in."""
        return self.table


class RowTable(ScrollView, can_focus=True):
    """A table of `Row`s with a header and a row cursor; the cursor survives updates."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "select_cursor", "Select", show=False),
        # j/k as well: k9s (and less, vim) move the cursor with them.
        Binding("up,k", "cursor_up", "Cursor up", show=False),
        Binding("down,j", "cursor_down", "Cursor down", show=False),
        Binding("pageup", "page_up", "Page up", show=False),
        Binding("pagedown", "page_down", "Page down", show=False),
        Binding("home,ctrl+home", "first", "First row", show=False),
        Binding("end,ctrl+end", "last", "Last row", show=False),
        Binding("left", "scroll_left", "Scroll left", show=False),
        Binding("right", "scroll_right", "Scroll right", show=False),
    ]

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "rowtable--header",
        "rowtable--cursor",
        "rowtable--even-row",
    }

    # DataTable's own look, so screens read the same as before.
    DEFAULT_CSS = """
    RowTable {
        background: $surface;
        color: $foreground;
        height: 1fr;
        &:focus {
            background-tint: $foreground 5%;
            & > .rowtable--cursor {
                background: $block-cursor-background;
                color: $block-cursor-foreground;
                text-style: $block-cursor-text-style;
            }
            & > .rowtable--header {
                background-tint: $foreground 5%;
            }
        }
        &:dark > .rowtable--even-row {
            background: $surface-darken-1 40%;
        }
        & > .rowtable--header {
            text-style: bold;
            background: $panel;
            color: $foreground;
        }
        &:ansi > .rowtable--header {
            background: ansi_bright_blue;
            color: ansi_default;
        }
        & > .rowtable--even-row {
            background: $surface-lighten-1 50%;
        }
        & > .rowtable--cursor {
            background: $block-cursor-blurred-background;
            color: $block-cursor-blurred-foreground;
            text-style: $block-cursor-blurred-text-style;
        }
    }
    """

    class RowHighlighted(RowMessage):
        """The cursor moved to another row."""

    class RowSelected(RowMessage):
        """Enter (or a click) on a row."""

    def __init__(
        self,
        *,
        id: str | None = None,
        classes: str | None = None,
        fold_empty: bool = False,
        fold_when_narrow: Sequence[str] = (),
    ) -> None:
        super().__init__(id=id, classes=classes)
        self.show_cursor = True
        # Columns blank on every row shown take no width (header included), and the
        # `fold_when_narrow` ones none when the rows are wider than the table (the screen
        # says their facts elsewhere): a narrow terminal's columns go to what is left.
        self.fold_empty = fold_empty
        self.fold_when_narrow = frozenset(fold_when_narrow)
        self._folded: frozenset[int] = frozenset()
        self.cursor_row = 0
        self._columns_shown: tuple[str, ...] = ()
        self._keys: list[str] = []
        self._cells: dict[str, tuple[Cell, ...]] = {}
        # What is painted: each row's cells as visible plain text, and column widths.
        self._texts: list[tuple[str, ...]] = []
        self._header: tuple[str, ...] = ()
        self._widths: list[int] = []
        # Styles for one repaint (component styles depend on focus and theme).
        self._paint: dict[str, Style] = {}
        self._roles: dict[str, Style] = {}

    # -- data --------------------------------------------------------------------------

    @property
    def row_count(self) -> int:
        """Rows shown (the "more" row included)."""
        return len(self._keys)

    def row_texts(self, index: int) -> tuple[str, ...]:
        """The cells of the row at `index` as painted (controls made visible)."""
        return self._texts[index]

    def set_columns(self, columns: Sequence[str]) -> None:
        """Set the column headers (their text is literal: it may come from the node)."""
        cols = tuple(columns)
        if cols == self._columns_shown:
            return
        self._columns_shown = cols
        self._keys, self._cells, self._texts = [], {}, []
        self.cursor_row = 0
        self._layout_rows()

    @property
    def shown_columns(self) -> tuple[str, ...]:
        """The column headers painted: all but those folded for being blank on every row."""
        return tuple(h for i, h in enumerate(self._header) if i not in self._folded)

    def cell_region(self, index: int, column: str) -> Region | None:
        """Where row `index`'s cell of `column` is painted on screen (None: no such column,
        or folded); the region may lie outside the table's when scrolled out of view."""
        if column not in self._header or self._header.index(column) in self._folded:
            return None
        i = self._header.index(column)
        x = PADDING + sum(
            w + 2 * PADDING for j, w in enumerate(self._widths[:i]) if j not in self._folded
        )
        scroll_x, scroll_y = self.scroll_offset
        content = self.content_region
        return Region(
            content.x + x - scroll_x, content.y + 1 + index - scroll_y, self._widths[i], 1
        )

    @property
    def selected_key(self) -> str | None:
        """The key of the row under the cursor (None when empty or on the "more" row)."""
        if not self._keys or not 0 <= self.cursor_row < len(self._keys):
            return None
        key = self._keys[self.cursor_row]
        return None if key == MORE_KEY else key

    def selected_cells(self) -> tuple[Cell, ...]:
        """The cells of the row under the cursor."""
        key = self.selected_key
        return self._cells.get(key, ()) if key else ()

    def show(self, shown: Page) -> None:
        """Show a page of rows; the cursor stays on its row when that row is still shown."""
        rows: list[Row] = _unique(shown.rows)
        if shown.hidden > 0:
            rows.append(more_row(shown.hidden, len(self._columns_shown)))
        keys = [r.key for r in rows]
        if keys == self._keys:
            if any(self._cells.get(r.key) != r.cells for r in rows):
                self._cells = {r.key: r.cells for r in rows}
                self._texts = [_texts(r.cells) for r in rows]
                self._layout_rows()
            return
        previous = self.selected_key
        self._keys = keys
        self._cells = {r.key: r.cells for r in rows}
        self._texts = [_texts(r.cells) for r in rows]
        self._layout_rows()
        row = keys.index(previous) if previous is not None and previous in self._cells else 0
        self.move_cursor(row=row)

    def move_to_key(self, key: str) -> bool:
        """Put the cursor on the row with this key, if shown."""
        if key in self._cells:
            self.move_cursor(row=self._keys.index(key))
            return True
        return False

    def move_cursor(self, *, row: int, animate: bool = False, scroll: bool = True) -> None:
        """Put the cursor on row `row` (clamped), scrolled into view; says so if it moved."""
        target = max(0, min(row, len(self._keys) - 1))
        moved = target != self.cursor_row
        self.cursor_row = target
        if scroll:
            self._scroll_cursor_into_view(animate)
        self.refresh()
        if moved:
            self.post_message(self.RowHighlighted(self, self.selected_key))

    def _layout_rows(self) -> None:
        """Column widths and the virtual size from what is shown now."""
        headers = tuple(clean(c) for c in self._columns_shown)
        widths = [cell_len(h) for h in headers]
        for texts in self._texts:
            for i, text in enumerate(texts[: len(widths)]):
                n = cell_len(text)
                if n > widths[i]:
                    widths[i] = n
        self._header = headers
        self._widths = widths
        self._folded = self._fold(headers, widths)
        total = sum(w + 2 * PADDING for i, w in enumerate(widths) if i not in self._folded)
        self.virtual_size = Size(total, len(self._keys) + 1)
        self.refresh()

    def _fold(self, headers: tuple[str, ...], widths: list[int]) -> frozenset[int]:
        """The columns that take no width: blank on every row, or given up when narrow."""
        folded = set()
        if self.fold_empty and self._texts:
            folded = {i for i in range(len(widths)) if not any(_at(t, i) for t in self._texts)}
        room = self.size.width
        if room and widths and self.fold_when_narrow:
            before = sum(w + 2 * PADDING for i, w in enumerate(widths[:-1]) if i not in folded)
            last = widths[-1] + 2 * PADDING
            # Only when the last column (the sentence that explains a row) is left too
            # little to read: at 120 columns the folded facts stay as columns.
            if room - before < min(last, LAST_ROOM):
                folded |= {i for i, h in enumerate(headers) if h in self.fold_when_narrow}
        return frozenset(folded)

    def on_resize(self, event: events.Resize) -> None:
        """Fold or unfold the narrow-screen columns for the new width."""
        if self.fold_when_narrow:
            self._layout_rows()

    # -- painting ----------------------------------------------------------------------

    def render_lines(self, crop: Region) -> list[Strip]:
        """Work the styles out once per repaint, then paint the lines."""
        self._prepare_paint()
        return super().render_lines(crop)

    def _prepare_paint(self) -> None:
        component = self.get_component_rich_style
        self._paint = {name: component(name) for name in self.COMPONENT_CLASSES}
        self._roles = self._role_styles()

    def render_line(self, y: int) -> Strip:
        """Line y of the widget: the header stays on line 0, rows scroll under it."""
        width = self.size.width
        scroll_x, scroll_y = self.scroll_offset
        base = self.rich_style
        if not self._paint:
            self._prepare_paint()
        if y == 0:
            line = self._line(self._header, [base + self._paint["rowtable--header"]])
            return line.crop_extend(scroll_x, scroll_x + width, base)
        index = y - 1 + scroll_y
        if index >= len(self._texts):
            return Strip.blank(width, base)
        return self._row_line(index, base).crop_extend(scroll_x, scroll_x + width, base)

    def _row_line(self, index: int, base: Style) -> Strip:
        """One row, full width, in its roles' colours (cursor and zebra stripes on top)."""
        if index % 2 == 1:
            base = base + self._paint["rowtable--even-row"]
        roles = self._roles
        cells = self._cells.get(self._keys[index], ())
        styles = [base + roles.get(c.role, _PLAIN) for c in cells]
        if self.show_cursor and index == self.cursor_row:
            cursor = self._paint["rowtable--cursor"]
            styles = [s + cursor for s in styles]
            base = base + cursor
        styles += [base] * (len(self._widths) - len(styles))
        return self._line(self._texts[index], styles)

    def _line(self, texts: Sequence[str], styles: Sequence[Style]) -> Strip:
        """Cells padded to the column widths, each in its style."""
        pad = " " * PADDING
        segments = []
        for i, width in enumerate(self._widths):
            if i in self._folded:
                continue
            text = texts[i] if i < len(texts) else ""
            fitted = (
                text + " " * (width - cell_len(text))
                if cell_len(text) <= width
                else (set_cell_size(text, width))
            )
            segments.append(Segment(pad + fitted + pad, styles[min(i, len(styles) - 1)]))
        return Strip(segments, self.virtual_size.width)

    def _role_styles(self) -> dict[str, Style]:
        """Semantic roles -> the current theme's colours."""
        theme = self.app.current_theme
        out: dict[str, Style] = {"": _PLAIN, "dim": Style(dim=True)}
        for role in ROLE_COLOURS:
            colour = getattr(theme, role, None)
            out[role] = Style.parse(colour) if colour else _PLAIN
        out["error"] = out["error"] + Style(bold=True)
        return out

    # -- cursor and keys ---------------------------------------------------------------

    def _scroll_cursor_into_view(self, animate: bool = False) -> None:
        region = Region(int(self.scroll_x), self.cursor_row + 1, max(1, self.size.width), 1)
        self.scroll_to_region(region, animate=animate, spacing=Spacing(1, 0, 0, 0), force=True)

    def _page_height(self) -> int:
        return max(1, self.scrollable_content_region.height - 1)

    def action_cursor_up(self) -> None:
        """One row up."""
        self.move_cursor(row=self.cursor_row - 1)

    def action_cursor_down(self) -> None:
        """One row down."""
        self.move_cursor(row=self.cursor_row + 1)

    def action_page_up(self) -> None:
        """One page up."""
        self.move_cursor(row=self.cursor_row - self._page_height())

    def action_page_down(self) -> None:
        """One page down."""
        self.move_cursor(row=self.cursor_row + self._page_height())

    def action_first(self) -> None:
        """The first row."""
        self.move_cursor(row=0)

    def action_last(self) -> None:
        """The last row."""
        self.move_cursor(row=len(self._keys) - 1)

    def action_select_cursor(self) -> None:
        """Enter: say which row was chosen."""
        if self._keys:
            self.post_message(self.RowSelected(self, self.selected_key))

    async def _on_key(self, event: events.Key) -> None:
        """A key that arrived after the focus moved on goes to the focused widget (keys.py)."""
        pass_on(self, event)

    async def _on_click(self, event: events.Click) -> None:
        """A click on a row moves the cursor there and selects it (as DataTable does)."""
        index = event.y - 1 + int(self.scroll_y)
        if event.y < 1 or not 0 <= index < len(self._keys):
            return
        self.move_cursor(row=index, scroll=False)
        self.post_message(self.RowSelected(self, self.selected_key))


_PLAIN = Style()


def _at(texts: tuple[str, ...], i: int) -> str:
    """The text of column i of a painted row ("" past its last cell)."""
    return texts[i] if i < len(texts) else ""


def _texts(cells: tuple[Cell, ...]) -> tuple[str, ...]:
    """Cells as they are painted: literal, controls made visible, on one line."""
    return tuple(clean(c.text) for c in cells)


def _unique(rows: Sequence[Row]) -> list[Row]:
    """Rows with unique keys: node data can repeat what should be unique (two unnamed pods)."""
    seen: set[str] = set()
    out = []
    for r in rows:
        key = r.key
        while key in seen:
            key += "'"
        seen.add(key)
        out.append(r if key == r.key else Row(key, r.cells))
    return out
