"""Every key of every view, one at a time, all at once, and while a view is still opening.

Keys come from the bindings themselves (the app's, each view's screen class, the
tables'), and the views from the registry, so a new view or key is covered by adding
it. Whatever the keys do, the app must neither raise nor stop, except `q`, which must
quit cleanly (status 0) however fast other keys follow it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest
from textual import events
from textual.binding import Binding
from textual.screen import Screen

from podpath.tui import registry
from podpath.tui.app import PodpathApp
from podpath.tui.widgets.table import RowTable

SIZE = (120, 36)
# However loaded the machine, the keys of one test are handled well within this (s).
KEYS_DEADLINE = 120
POD = "default/client-6f9b8d7c4-qp2ld"
# Keys that leave the app: pressed last, and checked for a clean exit.
QUIT_KEYS = frozenset({"q", "ctrl+q", "ctrl+c"})
# What a key name types, for keys posted without the Pilot (as a fast typist sends them).
CHARS = {
    "slash": "/",
    "colon": ":",
    "question_mark": "?",
    "left_square_bracket": "[",
    "right_square_bracket": "]",
    "enter": "\r",
    "escape": "\x1b",
}


def _keys_of(classes: list[type[Any]]) -> list[str]:
    keys: list[str] = []
    for cls in classes:
        for klass in cls.__mro__:
            if klass.__module__.startswith("textual."):
                continue  # Textual's own (focus cycling, scrolling) are Textual's to test
            for binding in klass.__dict__.get("BINDINGS", []):
                names = binding.key if isinstance(binding, Binding) else binding[0]
                keys += [k.strip() for k in names.split(",")]
    return list(dict.fromkeys(keys))


def keys_for(screen: type[Screen[Any]]) -> list[str]:
    """Every key podpath binds on the screen, its tables and the app, quit keys last."""
    keys = _keys_of([screen, RowTable, PodpathApp])
    return [k for k in keys if k not in QUIT_KEYS] + [k for k in keys if k in QUIT_KEYS]


def argument_for(view: registry.View, app: PodpathApp) -> str:
    """What a detail view needs to open (a pod, a Service of the fixture); "" for the rest."""
    if view.name == "pod":
        return POD
    if view.name == "service":
        loaded = app.loaded
        assert loaded is not None
        from podpath.tui.rows.services import service_id

        return service_id(loaded.parsed.services()[0])
    return ""


async def keys_handled(pilot: Any) -> None:
    """Wait until the app has handled every key posted so far (or has quit), however
    loaded the machine: a fixed pause let the test end, and the app's shutdown begin,
    with keys still queued (the load-only NoMatches / ScreenStackError failures)."""
    app: PodpathApp = pilot.app
    drained = asyncio.Event()
    app.call_later(drained.set)  # runs after the keys already in the app's queue
    deadline = time.monotonic() + KEYS_DEADLINE
    while app.is_running and time.monotonic() < deadline:
        if drained.is_set() and not app.keys_pending():
            break
        await pilot.pause(0.02)
    assert not app.is_running or time.monotonic() < deadline, "keys still pending"
    if app.is_running:
        await app.workers.wait_for_complete()
        await pilot.pause()


def post_key(app: PodpathApp, key: str) -> None:
    """Send a key the way the terminal driver does, without waiting for it to be handled."""
    char = key if len(key) == 1 else CHARS.get(key)
    app.post_message(events.Key(key, char))


async def _open(pilot: Any, view: registry.View) -> Screen[Any]:
    app: PodpathApp = pilot.app
    app.open_screen(view.name, argument_for(view, app) or None)
    await pilot.pause()
    return app.screen


@pytest.mark.parametrize("view", registry.VIEWS, ids=lambda v: v.name)
async def test_each_key_of_each_view_keeps_the_app_alive(
    view: registry.View, make_app: Callable[..., PodpathApp]
) -> None:
    """One key at a time on the view: no exception, the app runs on; q quits with status 0."""
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        target = await _open(pilot, view)
        for key in keys_for(type(target)):
            await pilot.press(key)
            if len(app.workers):  # let a trace or a parse started by the key finish
                await app.workers.wait_for_complete()
                await pilot.pause()
            if key in QUIT_KEYS and not app.is_running:
                break
            assert app.is_running, f"{key} on {view.name} stopped the app"
            # Back to the view under test (a key may have opened or left a screen).
            while app.screen is not target and len(app.screen_stack) > 2:
                app.pop_screen()
                await pilot.pause()
            if app.screen is not target:
                target = await _open(pilot, view)
    assert app.return_code in (None, 0)


@pytest.mark.parametrize("view", registry.VIEWS, ids=lambda v: v.name)
async def test_all_keys_of_a_view_at_once_then_quit(
    view: registry.View, make_app: Callable[..., PodpathApp]
) -> None:
    """Every key of the view sent back to back, q and more keys after it: a clean exit."""
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        target = await _open(pilot, view)
        keys = keys_for(type(target))
        for key in keys + keys:  # the second round lands on whatever the first opened
            post_key(app, key)
        await keys_handled(pilot)
    assert app.return_code in (None, 0)


@pytest.mark.parametrize("view", registry.jump_views(), ids=lambda v: v.name)
async def test_keys_typed_while_a_view_opens(
    view: registry.View, make_app: Callable[..., PodpathApp]
) -> None:
    """`:name` enter and the view's keys at once, before it has mounted: nothing raises."""
    name = view.name
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        keys = [k for k in keys_for(type(view.screen(""))) if k not in QUIT_KEYS]
        for key in ["colon", *name, "enter", *keys, "escape", "colon", *name, "enter", "q", "t"]:
            post_key(app, key)
        await keys_handled(pilot)
    assert app.return_code in (None, 0)


async def test_slash_on_home_filters_the_views(make_app: Callable[..., PodpathApp]) -> None:
    """`/` on home opens its filter (it raised NoMatches '#filter'); typing narrows the menu."""
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("slash", *"conn")
        await pilot.pause()
        home = app.screen
        assert type(home).__name__ == "NodeScreen"
        assert home.table.row_count == 1  # type: ignore[attr-defined]
        await pilot.press("escape")
        await pilot.pause()
        assert home.table.row_count == len(registry.jump_views()) - 1  # type: ignore[attr-defined]
        assert app.is_running


async def test_q_then_t_quits_cleanly(make_app: Callable[..., PodpathApp]) -> None:
    """`q` then `t` typed at once (it raised NoMatches '#from' on TraceScreen) just quits."""
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        post_key(app, "q")
        post_key(app, "t")
        await keys_handled(pilot)
    assert app.return_code == 0
