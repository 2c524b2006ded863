"""The footer of every screen: on a narrow terminal, compact and made of whole keys only.

Textual's Footer lays its keys out in one row and cuts the row at the edge: at 80
columns the last key was cut mid-word ("m On th") and the command palette's key,
docked over the row, drew as `^ppa lette` in an SVG. Under NARROW columns this footer
is compact, leaves the palette's key to `?` (ctrl+p still opens it), hides the keys
that do not fit whole, and keeps `?` Help among those shown, so every other key can be
found. A wide terminal keeps Textual's footer and the palette's key, but a screen with
many keys (the trace) still overflowed it at 120 columns, so there too only the keys
that fit whole beside the palette's key are shown.
"""

from __future__ import annotations

from collections.abc import Iterable

from textual import events
from textual.app import ComposeResult
from textual.screen import Screen
from textual.widgets import Footer

# FooterKey is not exported by textual.widgets; Textual is pinned exactly (pyproject).
from textual.widgets._footer import FooterKey

# Terminals narrower than this get the compact footer of whole keys.
NARROW = 100
HELP_KEY = "question_mark"


def keep_whole(widths: list[int], help_at: int | None, room: int) -> list[bool]:
    """Which keys (in order, of these widths) to show in `room` columns: the first ones
    that fit whole, after setting aside the room the help key needs."""
    budget = room - (widths[help_at] if help_at is not None else 0)
    used, shown = 0, []
    for i, width in enumerate(widths):
        if i == help_at:
            shown.append(True)
            continue
        fits = used + width <= budget
        used += width if fits else 0
        shown.append(fits)
    return shown


class KeysFooter(Footer):
    """A Footer of whole keys only, `?` Help always; compact on a narrow terminal.

    Textual's Footer rebuilds its keys each time the screen's bindings may have changed:
    every focus change. Opening a trace rebuilt the same ~15 keys 6 times, each with its
    styles, on the event loop beside the trace's worker (the trace painted ~90 ms later
    on a big node: benchmarks/analysis.md, the session of 19:35). This one rebuilds once
    for the changes before a refresh, and only when the keys it would show differ."""

    # What the keys were last built from, and whether a rebuild waits for the refresh.
    _composed: tuple[object, ...] | None = None
    _rebuild_queued = False

    def compose(self) -> ComposeResult:
        """Textual's keys, remembering what they were built from."""
        self._composed = self._keys_wanted() if self._bindings_ready else None
        yield from super().compose()

    def bindings_changed(self, screen: Screen[object]) -> None:
        """The screen's bindings may have changed: rebuild once, after the refresh."""
        self._bindings_ready = True
        if not screen.app.app_focus:
            return
        if self.is_attached and screen is self.screen and not self._rebuild_queued:
            self._rebuild_queued = True
            self.call_after_refresh(self._rebuild_if_changed)

    async def _rebuild_if_changed(self) -> None:
        self._rebuild_queued = False
        # The screen may have been closed before the refresh (a key pressed at once).
        if self.is_attached and self._keys_wanted() != self._composed:
            await self.recompose()

    def _keys_wanted(self) -> tuple[object, ...]:
        """What `compose` builds the keys from: each shown binding and whether it is
        enabled, and the footer's own style."""
        palette = self.app.COMMAND_PALETTE_BINDING
        shown: Iterable[tuple[object, ...]] = (
            (key, b.action, b.description, b.group, b.key_display, b.tooltip, on, tip)
            for key, (_, b, on, tip) in self.screen.active_bindings.items()
            if b.show or key == palette
        )
        return (self.compact, self.show_command_palette, *shown)

    def on_resize(self, event: events.Resize) -> None:
        """Narrow or wide now: rebuild the keys in the matching style."""
        narrow = self.app.size.width < NARROW
        if narrow != self.compact or narrow == self.show_command_palette:
            self.compact = narrow
            self.show_command_palette = not narrow
            self.call_after_refresh(self.recompose)
        else:
            self.call_after_refresh(self._fit)

    async def recompose(self) -> None:
        """Textual rebuilds the keys when the bindings change: fit them again after."""
        await super().recompose()
        self.call_after_refresh(self._fit)

    def _fit(self) -> None:
        everything = list(self.query(FooterKey))
        keys = [k for k in everything if not k.has_class("-command-palette")]
        if not keys or not all(k.display for k in keys):
            return  # already fitted (a later resize recomposes first)
        palette = sum(_width(k) for k in everything if k.has_class("-command-palette"))
        widths = [_width(k) for k in keys]
        helps = [i for i, k in enumerate(keys) if k.key == HELP_KEY]
        shown = keep_whole(widths, helps[0] if helps else None, self.size.width - palette)
        for key, show in zip(keys, shown, strict=True):
            key.display = show


def _width(key: FooterKey) -> int:
    return key.outer_size.width + key.styles.margin.width
