"""A scrollable view of one text from the node (a CNI config file), shown literally."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Static

from podpath.tui.text import clean, literal_content


def literal_lines(text: str) -> Content:
    """Multi-line node text: each line cleaned, the newlines kept (they are the file's own)."""
    return Content("\n".join(clean(line) for line in text.split("\n")))


class TextScreen(ModalScreen[None]):
    """A titled, scrollable text; esc closes it."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,q", "dismiss", "Close")]

    def __init__(self, title: str, text: str) -> None:
        super().__init__()
        self.title_text = title
        self.body = text

    def compose(self) -> ComposeResult:
        """Title and the text."""
        with VerticalScroll(id="text-view"):
            yield Static(literal_content(self.title_text), id="text-title")
            yield Static(literal_lines(self.body), id="text-body")
