"""Rows: what a table shows, as plain data, built by pure functions and tested without an App.

A `Row` has a stable key (so a refresh updates rows in place and the cursor survives)
and cells of text with a semantic role; the table widget maps roles to theme colours.
Cell text is raw node data: the widget passes it through `podpath.tui.text`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property

from podpath.safe_text import visible

# Semantic roles a cell may have; the table maps them to theme variables.
ROLES = ("", "dim", "accent", "primary", "warning", "error", "success")

# No table ever holds more rows than this: filter before rendering (Textual's DataTable took
# ~118 us a row to add, 100k rows 12 s, and every changed row on screen costs a fresh
# render). The rest is summarised in one last row. 200 rows: a filter keystroke on
# 10k Services repaints in ~30 ms (400 rows: ~70 ms).
MAX_ROWS = 200
MORE_KEY = "\x00more"


@dataclass(frozen=True)
class Cell:
    """One table cell: raw text and a semantic role."""

    text: str
    role: str = ""


@dataclass(frozen=True)
class Row:
    """One table row with a stable key."""

    key: str
    cells: tuple[Cell, ...]

    @cached_property
    def haystack(self) -> str:
        """The lower-cased text a filter searches, as it is shown (built once per row).

        The table shows each cell through `visible` (`\\x1b`, `\\u202e`): the filter
        searches that same text, so whatever is on screen can be typed to find it.
        """
        return "\n".join(visible(c.text) for c in self.cells).lower()


def cell(text: object, role: str = "") -> Cell:
    """A cell from any value (None shows as a dim dash)."""
    if text is None or text == "":
        return Cell("-", "dim")
    return Cell(str(text), role)


def row(key: str, *cells: Cell | str | int | None) -> Row:
    """A row from cells or plain values."""
    return Row(key, tuple(c if isinstance(c, Cell) else cell(c) for c in cells))


@dataclass(frozen=True)
class Page:
    """The rows a table shows after filtering and capping."""

    rows: tuple[Row, ...]
    total: int  # rows before filtering
    matched: int  # rows the filter kept (before capping)

    @property
    def hidden(self) -> int:
        """Matching rows not shown because of the cap."""
        return self.matched - len(self.rows)


@dataclass(frozen=True)
class RowSet:
    """Rows with their filter text precomputed, so a keystroke filters plain strings."""

    rows: tuple[Row, ...]
    haystacks: tuple[str, ...]


def rowset(rows: Iterable[Row]) -> RowSet:
    """Rows ready to filter: each row's lower-cased text built once."""
    kept = tuple(rows)
    return RowSet(kept, tuple(r.haystack for r in kept))


def page(rows: Iterable[Row] | RowSet, needle: str = "", limit: int = MAX_ROWS) -> Page:
    """Filter rows by a case-insensitive substring and cap them at `limit`."""
    found = rows if isinstance(rows, RowSet) else rowset(rows)
    needle = needle.lower()
    if not needle:
        return Page(found.rows[:limit], len(found.rows), len(found.rows))
    # Plain `in` over precomputed strings: ~1 ms for 10k rows; no renderables yet.
    hits = [i for i, hay in enumerate(found.haystacks) if needle in hay]
    return Page(tuple(found.rows[i] for i in hits[:limit]), len(found.rows), len(hits))


def more_row(hidden: int, width: int) -> Row:
    """The last row of a capped table."""
    first = Cell(f"… {hidden:,} more — refine the filter with /", "warning")
    return Row(MORE_KEY, (first, *(Cell("", "dim") for _ in range(width - 1))))


def join(values: Iterable[object], sep: str = ", ") -> str:
    """Values joined for one cell."""
    return sep.join(str(v) for v in values)
