"""A key that reaches a widget after the focus has moved on is passed to the focused one.

podpath.tui.key_order lets one key in at a time; a focus change that happens in a
message handled after its key (a row opened, a prompt answered) can still leave the
next key queued at the widget that had the focus. Such a widget passes the key back
to the app, which hands it to the widget focused now.
"""

from __future__ import annotations

from textual import events
from textual.widget import Widget
from textual.widgets import Input


def pass_on(widget: Widget, event: events.Key) -> bool:
    """Re-send a key that reached `widget` after the focus moved to another widget or screen."""
    app = widget.app
    moved = app.focused is not None and app.focused is not widget
    if not moved and widget.screen is app.screen:
        return False
    event.stop()
    event.prevent_default()  # the base classes' key handlers must not see it
    app.post_message(events.Key(event.key, event.character))
    return True


class KeyInput(Input):
    """An Input that passes on keys it received after losing the focus (see pass_on)."""

    async def _on_key(self, event: events.Key) -> None:
        pass_on(self, event)
