"""`:`: jump to a view by name, k9s style, with completion (names from podpath.tui.registry)."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.suggester import SuggestFromList
from textual.widgets import Input, Static

from podpath.tui import registry
from podpath.tui.text import clean
from podpath.tui.widgets.keys import KeyInput


class JumpScreen(ModalScreen[tuple[str, str] | None]):
    """A one-line prompt at the bottom; returns (view name, argument), e.g. ("pods", "web")."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel"),
        # priority: the view must be open before the next key is let in (key_order).
        Binding("enter", "jump", "Jump", show=False, priority=True),
    ]

    def compose(self) -> ComposeResult:
        """The prompt, and every view's name as a hint."""
        with Vertical(id="jump"):
            yield Static(
                "jump to: " + " ".join(f":{v.name}" for v in registry.jump_views()),
                id="jump-hint",
            )
            yield KeyInput(
                placeholder=":pods [filter]",
                suggester=SuggestFromList(registry.jump_words(), case_sensitive=False),
                id="jump-input",
            )

    def on_input_submitted(self, event: Input.Submitted) -> None:
        """Enter jumps (the priority binding does it first; a click may still submit)."""
        event.stop()
        self.action_jump()

    def action_jump(self) -> None:
        """Enter jumps at once (the next key is for the view), or says the name is unknown."""
        if not self.is_active:
            return
        value = self.query_one("#jump-input", Input).value
        found = registry.resolve(value)
        if found is None:
            name = value.strip()[:40]
            self.notify(
                clean(f"no view called {name!r}"), severity="warning", timeout=3, markup=False
            )
            return
        view, argument = found
        self.dismiss((view.name, argument))

    def action_cancel(self) -> None:
        """Esc closes without jumping."""
        self.dismiss(None)
