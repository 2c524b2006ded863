"""`?`: every key of the current screen, and the app's global keys (views from the registry)."""

from __future__ import annotations

from typing import Any, ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen, Screen
from textual.widgets import Static

from podpath.tui import registry
from podpath.tui.rows.model import Row, page, row
from podpath.tui.widgets.table import RowTable

# The app's own keys; `:`'s line is added from the registry when help opens.
GLOBAL_KEYS: tuple[tuple[str, str], ...] = (
    ("/", "filter the current list (substring); esc clears"),
    ("enter", "drill in"),
    ("esc", "back"),
    ("t", "trace a packet (from the selected pod, or to the selected Service)"),
    ("r", "refresh (live node: re-collect in the background)"),
    ("w", "write the current snapshot to a file"),
    ("ctrl+p", "command palette"),
    ("?", "this help"),
    ("q", "quit"),
)


def key_rows(screen: Screen[Any]) -> list[Row]:
    """The screen's own bindings, then the global keys."""
    out = []
    seen = set()
    # Subclasses first, so a screen's own meaning of a key wins over its base's.
    for cls in type(screen).__mro__:
        if cls.__module__.startswith("textual."):
            continue  # Textual's own focus/copy keys are not ours to explain
        for binding in cls.__dict__.get("BINDINGS", []):
            if not isinstance(binding, Binding) or not binding.description:
                continue
            keys = (
                binding.key.replace("slash", "/")
                .replace("escape", "esc")
                .replace("question_mark", "?")
            )
            if keys in seen:
                continue
            seen.add(keys)
            out.append(row(f"s:{keys}", keys, binding.description))
    views = " ".join(f":{v.name}" for v in registry.jump_views())
    for keys, what in ((":", f"jump to a view by name ({views})"), *GLOBAL_KEYS):
        if keys not in seen:
            out.append(row(f"g:{keys}", keys, what))
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
        table.set_columns(("KEY", "WHAT IT DOES"))
        table.show(page(key_rows(self.for_screen)))
        table.focus()
