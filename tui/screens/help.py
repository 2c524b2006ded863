"""`?`: every key of the current screen, and the app's global keys (views from the registry)."""

from __future__ import annotations

import textwrap
from dataclasses import replace
from typing import Any, ClassVar

from rich.cells import cell_len
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.keys import format_key
from textual.screen import ModalScreen, Screen
from textual.widgets import Static

from podpath.tui import registry
from podpath.tui.rows.model import Cell, Row, page, row
from podpath.tui.widgets.table import PADDING, RowTable

# The app's own keys; `:`'s line is added from the registry when help opens.
GLOBAL_KEYS: tuple[tuple[str, str], ...] = (
    ("↑ ↓ j k", "move (PgUp PgDn home end; ← → scroll a wide list)"),
    ("/", "filter the current list (substring); esc clears"),
    ("enter", "drill in"),
    ("esc", "back"),
    ("t", "trace from the selected pod, to a Service, or a connection"),
    ("r", "refresh (live node: re-collect in the background)"),
    ("w", "write the current snapshot to a file"),
    ("ctrl+p", "command palette"),
    ("?", "this help"),
    ("q", "quit"),
)


COLUMNS = ("KEY", "WHAT IT DOES", "ALSO")

# How a key is written in help (Textual's names are not what the keyboard says).
KEY_NAMES = {
    "left": "←",
    "right": "→",
    "up": "↑",
    "down": "↓",
    "escape": "esc",
    "enter": "enter",
    "pageup": "PgUp",
    "pagedown": "PgDn",
}


def key_text(binding: Binding) -> str:
    """The keys of a binding as a user types them: `left,h,left_square_bracket` -> `← h [`."""
    if binding.key_display:
        return binding.key_display
    shown = []
    for key in binding.key.split(","):
        *modifiers, name = key.strip().split("+")
        text = KEY_NAMES.get(name) or format_key(name)
        shown.append("+".join((*modifiers, text)))
    return " ".join(shown)


def key_rows(screen: Screen[Any]) -> list[Row]:
    """The screen's own bindings, the global keys, then one `:name` line per view."""
    out = []
    seen = set()
    # Subclasses first, so a screen's own meaning of a key wins over its base's.
    for cls in type(screen).__mro__:
        if cls.__module__.startswith("textual."):
            continue  # Textual's own focus/copy keys are not ours to explain
        for binding in cls.__dict__.get("BINDINGS", []):
            if not isinstance(binding, Binding) or not binding.description:
                continue
            keys = key_text(binding)
            if keys in seen:
                continue
            seen.add(keys)
            out.append(row(f"s:{keys}", keys, binding.description))
    jump = (":", "jump to a view: `:pods web` enter opens Pods filtered")
    for keys, what in (jump, *GLOBAL_KEYS):
        if keys not in seen:
            out.append(row(f"g:{keys}", keys, what))
    # One line per view: a line listing them all was cut at the modal's edge.
    for view in registry.jump_views():
        aliases = " ".join(f":{a}" for a in view.aliases)
        out.append(Row(f"v:{view.name}", (Cell(f":{view.name}"), Cell(view.about), Cell(aliases))))
    return out


def wrap_rows(rows: list[Row], width: int) -> list[Row]:
    """Rows that fit `width` columns whole: when they do not, a view's aliases join its
    line (`(also :home)`) and WHAT IT DOES wraps onto rows of its own (keys `KEY~1`...)."""
    key_width = max((cell_len(r.cells[0].text) for r in rows), default=0)
    also_width = max((cell_len(r.cells[2].text) for r in rows if len(r.cells) > 2), default=0)
    widest = max((cell_len(r.cells[1].text) for r in rows if len(r.cells) > 1), default=0)
    if key_width + widest + also_width + 6 * PADDING <= width:
        return rows
    # Two columns (HelpScreen.fit drops ALSO): the aliases move into the text.
    room = max(width - key_width - 4 * PADDING, 10)
    out = []
    for r in rows:
        key, what, *also = r.cells
        text = f"{what.text} (also {also[0].text})" if also and also[0].text else what.text
        first, *rest = textwrap.wrap(text, room) or [""]
        out.append(Row(r.key, (key, replace(what, text=first))))
        out.extend(
            Row(f"{r.key}~{i}", (Cell(""), replace(what, text=line)))
            for i, line in enumerate(rest, 1)
        )
    return out


class HelpScreen(ModalScreen[None]):
    """A modal list of keys; esc or ? closes it."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,question_mark,q", "dismiss", "Close"),
    ]

    def __init__(self, for_screen: Screen[Any]) -> None:
        super().__init__()
        self.for_screen = for_screen

    def compose(self) -> ComposeResult:
        """A title and the key table."""
        with Vertical(id="help"):
            yield Static(
                f"Keys — {type(self.for_screen).__name__.removesuffix('Screen')}", id="help-title"
            )
            yield RowTable(id="keys")

    def on_mount(self) -> None:
        """Fill the table."""
        table = self.query_one(RowTable)
        table.set_columns(COLUMNS)
        table.show(page(key_rows(self.for_screen)))
        self.set_focus(table)
        self.call_after_refresh(self.fit)

    def on_resize(self) -> None:
        """A new width: wrap the lines again."""
        self.call_after_refresh(self.fit)

    def fit(self) -> None:
        """Wrap the lines into the modal's width (80 columns cut `:`'s line), never cut them."""
        table = self.query_one(RowTable)
        # The vertical scrollbar's columns are kept free whether it shows or not.
        width = table.size.width - table.styles.scrollbar_size_vertical
        rows = key_rows(self.for_screen)
        fitted = wrap_rows(rows, width)
        table.set_columns(COLUMNS if fitted is rows else COLUMNS[:2])
        table.show(page(fitted))
