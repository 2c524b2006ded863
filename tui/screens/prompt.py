"""A one-line question (a file name, a capture size) answered with enter, cancelled with esc."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Static

from podpath.tui.text import literal_content
from podpath.tui.widgets.keys import KeyInput


class PromptScreen(ModalScreen[str | None]):
    """Ask for one line of text."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel"),
        Binding("enter", "answer", "Answer", show=False, priority=True),  # see key_order
    ]

    def __init__(self, question: str, default: str = "") -> None:
        super().__init__()
        self.question = question
        self.default = default

    def compose(self) -> ComposeResult:
        """The question and the input."""
        with Vertical(id="prompt"):
            yield Static(literal_content(self.question), id="prompt-question")
            yield KeyInput(value=self.default, id="prompt-input")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        """Enter answers (the priority binding does it first)."""
        event.stop()
        self.action_answer()

    def action_answer(self) -> None:
        """Enter answers at once: the next key is not more text for the question."""
        if self.is_active:
            self.dismiss(self.query_one("#prompt-input", Input).value.strip() or None)

    def action_cancel(self) -> None:
        """Esc cancels."""
        self.dismiss(None)
