"""A DataTable that shows `Row`s literally, capped, and updated in place by key."""

from __future__ import annotations

from collections.abc import Sequence

from podpath.tui.rows import MORE_KEY, Cell, Page, Row, more_row
from podpath.tui.text import literal_text
from rich.text import Text
from textual.widgets import DataTable


class RowTable(DataTable[Text]):
    """A row-cursor table fed with `Row`s; the cursor and scroll survive updates."""

    DEFAULT_CSS = """
    RowTable { height: 1fr; }
    """

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes, cursor_type="row", zebra_stripes=True)
        self._columns_shown: tuple[str, ...] = ()
        self._keys: list[str] = []
        self._cells: dict[str, tuple[Cell, ...]] = {}

    def _styles(self) -> dict[str, str]:
        theme = self.app.current_theme
        return {
            "": "",
            "dim": "dim",
            "accent": theme.accent or "",
            "primary": theme.primary or "",
            "warning": theme.warning or "",
            "error": f"bold {theme.error}" if theme.error else "bold",
            "success": theme.success or "",
        }

    def _cell(self, c: Cell, styles: dict[str, str]) -> Text:
        return literal_text(c.text, styles.get(c.role, ""))

    def set_columns(self, columns: Sequence[str]) -> None:
        """Set the column headers (their text is literal: it may come from the node)."""
        cols = tuple(columns)
        if cols == self._columns_shown:
            return
        self.clear(columns=True)
        self._keys = []
        self._cells = {}
        self._columns_shown = cols
        for i, name in enumerate(cols):
            self.add_column(literal_text(name, "bold"), key=f"c{i}")

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
        """Show a page of rows: cells change in place when the keys are unchanged."""
        rows: list[Row] = _unique(shown.rows)
        if shown.hidden > 0:
            rows.append(more_row(shown.hidden, len(self._columns_shown)))
        keys = [r.key for r in rows]
        styles = self._styles()
        if keys == self._keys and self.row_count == len(keys):
            for r in rows:
                if self._cells.get(r.key) != r.cells:
                    for i, c in enumerate(r.cells):
                        self.update_cell(r.key, f"c{i}", self._cell(c, styles))
                    self._cells[r.key] = r.cells
            return
        previous = self.selected_key
        self.clear()
        self._keys = keys
        self._cells = {r.key: r.cells for r in rows}
        # All at once: a page is capped (rows.MAX_ROWS), and a DataTable only renders the
        # lines on screen; adding rows in later chunks kept the loop busy between keys.
        for r in rows:
            self.add_row(*(self._cell(c, styles) for c in r.cells), key=r.key)
        if previous is not None and previous in self._cells:
            self.move_cursor(row=self._keys.index(previous), animate=False)

    def move_to_key(self, key: str) -> bool:
        """Put the cursor on the row with this key, if shown."""
        if key in self._cells:
            self.move_cursor(row=self._keys.index(key), animate=False)
            return True
        return False


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
