"""What using the TUI as a newcomer found (tmux on the demo and a lab node), one test each."""

from __future__ import annotations

from collections.abc import Callable

from test_every_key import post_key
from textual.widgets import Input

from podpath.tui.app import PodpathApp
from podpath.tui.screens.netfilter import NetfilterScreen

SIZE = (120, 36)


async def test_a_filter_typed_then_a_drill_in_leaves_the_next_level_unfiltered(
    make_app: Callable[..., PodpathApp],
) -> None:
    """`/nat enter enter` at once in Netfilter opens nat with every chain, not those matching nat."""
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("colon", *"ipt", "enter")
        await pilot.pause()
        await pilot.press("enter")  # the first backend: its tables
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, NetfilterScreen)
        for key in ("slash", "n", "a", "t", "enter", "enter"):
            post_key(app, key)
        await pilot.pause(0.5)
        assert screen.level.table == "nat"
        assert screen.needle == "" and not screen.query_one("#filter", Input).display
        assert "match" not in str(screen.query_one("#count").render())
        assert screen.table.row_count > 1  # KUBE-* chains and the rest, not only "nat" ones
