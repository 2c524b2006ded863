"""Keys are handled one at a time, in the order they were typed, by whatever has the focus then.

Textual hands a key to the widget focused when the key is *read*, and runs its
bindings only once it has bubbled back up to the app. Typed in one burst (`/web`
enter ↓ enter, a paste, tmux send-keys), every key was queued at the table before `/`
had moved the focus to the filter: the letters fired the table's and the app's
bindings (`w` opened the write prompt), ↓ after enter in the filter never reached the
table, and keys typed while a screen opened reached its half-built bindings.

So the app lets one key in at a time: a key waits while the one before it is still
being handled (until it was stopped by the widget that took it, or its bindings ran
at the app) and while the screen it is for is still mounting. A key whose handling
cannot be seen to end is let go after KEY_TIMEOUT, so no key waits for ever.
"""

from __future__ import annotations

import time
from collections import deque
from typing import TYPE_CHECKING

from textual import events
from textual.app import App, ScreenStackError

# How often waiting keys check again (seconds), and how long one key may hold the rest.
KEY_STEP = 0.01
KEY_TIMEOUT = 0.5

if TYPE_CHECKING:
    _Base = App[None]
else:
    _Base = object


def _forwarded(event: events.Key) -> bool:
    """Whether the app handed the key on (read afresh: handling it may have changed it)."""
    return event.is_forwarded


class KeyOrder(_Base):
    """App mixin: one key at a time (see the module's docstring)."""

    def __init__(self) -> None:
        super().__init__()
        self._waiting_keys: deque[events.Key] = deque()
        self._key_in_flight: events.Key | None = None
        self._key_since = 0.0
        self._key_released: events.Key | None = None
        self._released_since = 0.0
        self._release_pending = False

    async def on_event(self, event: events.Event) -> None:
        """Let a key in only when the one before it is done and its screen is mounted."""
        if isinstance(event, events.Key) and (not self.screen_stack or not self.is_running):
            # The app is closing (is_running is False from the start of its shutdown):
            # its screens are being torn down, and a key handled now would query widgets
            # already removed (NoMatches '#table' on PodsScreen, seen under load).
            return
        if not isinstance(event, events.Key) or event.is_forwarded:
            await super().on_event(event)
            return
        if event is not self._key_released and self._must_wait():
            self._waiting_keys.append(events.Key(event.key, event.character))
            self._schedule_release(0.0 if self._key_in_flight is not None else KEY_STEP)
            return
        self._key_released = None
        self._key_in_flight, self._key_since = event, time.monotonic()
        await super().on_event(event)  # a priority binding, or handed to the focused widget
        if not _forwarded(event):
            self._key_done(event)
            return
        target = self.focused or self.screen
        target.call_later(self._after_target, event)

    async def _on_key(self, event: events.Key) -> None:
        """The key came back up to the app: its bindings run, and then it is done."""
        if not self.screen_stack:
            # Back up after the app's screens were torn down (q, then more keys).
            event.prevent_default()
            self._key_done(event)
            return
        await super()._on_key(event)
        event.prevent_default()  # App._on_key ran through super(): not a second time
        self._key_done(event)

    def _after_target(self, event: events.Key) -> None:
        """The widget that took the key has handled it: done, unless it bubbles on."""
        if event._stop_propagation:
            self._key_done(event)

    def keys_pending(self) -> bool:
        """True while a typed key waits or is being handled (tests wait for this to end)."""
        in_flight = self._key_in_flight is not None and (
            time.monotonic() - self._key_since < KEY_TIMEOUT
        )
        # Handed on and not read again yet (see _busy).
        released = self._key_released is not None and (
            time.monotonic() - self._released_since < KEY_TIMEOUT
        )
        return bool(self._waiting_keys) or self._release_pending or in_flight or released

    def _key_done(self, event: events.Key) -> None:
        if event is self._key_in_flight:
            self._key_in_flight = None
            if self._waiting_keys:
                self._schedule_release(0.0)

    def _must_wait(self) -> bool:
        return bool(self._waiting_keys) or self._busy()

    def _busy(self) -> bool:
        """A key is still being handled or on its way back in, or its screen is mounting."""
        if self._key_released is not None:
            # Handed on but not read again yet: a second key handed on now would be read
            # first, and this one would queue behind the rest (`pods` typed as `pdso`).
            if time.monotonic() - self._released_since < KEY_TIMEOUT:
                return True
            self._key_released = None  # never read again (the app is closing)
        if self._key_in_flight is not None:
            if time.monotonic() - self._key_since < KEY_TIMEOUT:
                return True
            self._key_in_flight = None  # its handling ended where we cannot see
        try:
            return not self.screen.is_mounted
        except ScreenStackError:
            return True

    def _schedule_release(self, delay: float) -> None:
        if self._release_pending:
            return
        self._release_pending = True
        if delay:
            self.set_timer(delay, self._release_key)
        else:
            self.call_later(self._release_key)

    def _release_key(self) -> None:
        """Hand on the first waiting key, or look again soon."""
        self._release_pending = False
        if not self._waiting_keys:
            return
        if self._busy():
            self._schedule_release(KEY_STEP)
            return
        key = self._waiting_keys.popleft()
        self._key_released, self._released_since = key, time.monotonic()
        self.post_message(key)
