"""`:`: jump to a view by name, k9s style, with completion."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.suggester import SuggestFromList
from textual.widgets import Input, Static

# Jump names and their aliases (k9s-like short forms and the full words).
JUMPS: dict[str, str] = {
    "node": "node",
    "home": "node",
    "pods": "pods",
    "po": "pods",
    "pod": "pods",
    "svc": "svc",
    "services": "svc",
    "service": "svc",
    "ns": "ns",
    "namespaces": "ns",
    "links": "links",
    "link": "links",
    "ipt": "ipt",
    "iptables": "ipt",
    "netfilter": "ipt",
    "nf": "ipt",
    "ct": "ct",
    "conntrack": "ct",
    "cni": "cni",
    "ipam": "cni",
    "trace": "trace",
    "problems": "problems",
    "pb": "problems",
}


def resolve_jump(text: str) -> str | None:
    """The screen name for what the user typed (leading ':' optional), or None."""
    return JUMPS.get(text.strip().lstrip(":").lower())


class JumpScreen(ModalScreen[str | None]):
    """A one-line prompt at the bottom; returns the chosen screen name."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    def compose(self) -> ComposeResult:
        """The prompt."""
        with Vertical(id="jump"):
            yield Static(
                "jump to: " + " ".join(f":{n}" for n in dict.fromkeys(JUMPS.values())),
                id="jump-hint",
            )
            yield Input(
                placeholder=":pods",
                suggester=SuggestFromList(sorted(JUMPS), case_sensitive=False),
                id="jump-input",
            )

    def on_input_submitted(self, event: Input.Submitted) -> None:
        """Enter jumps (or says the name is unknown)."""
        event.stop()
        name = resolve_jump(event.value)
        if name is None:
            self.notify(
                f"no view called {event.value.strip()[:40]!r}", severity="warning", timeout=3
            )
            return
        self.dismiss(name)

    def action_cancel(self) -> None:
        """Esc closes without jumping."""
        self.dismiss(None)
