"""The view registry drives the app: home's menu, `:`, help and ctrl+p all read it."""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

import pytest
from textual.binding import Binding, BindingType

from podpath.tui import registry
from podpath.tui.app import PodpathApp
from podpath.tui.rows.model import Row, row
from podpath.tui.screens.base import TableScreen
from podpath.tui.screens.help import HelpScreen, key_rows
from podpath.tui.screens.node import NodeScreen
from podpath.tui.screens.pods import PodsScreen
from podpath.tui.state import Loaded

SIZE = (120, 36)


class EchoScreen(TableScreen):
    """A screen added by a test, to show that the registry alone makes it reachable."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("e", "echo", "Echo")]
    HEADING = "Echo"
    COLUMNS = ("WHAT",)

    def build_rows(self, loaded: Loaded) -> list[Row]:
        """One row naming the node."""
        return [row("echo", loaded.snapshot.node.hostname)]

    def action_echo(self) -> None:
        """Say something."""
        self.notify("echo")


ECHO = registry.View(
    "echo",
    "Echo test view",
    EchoScreen,
    "a view that exists only in this test",
    ("ec",),
    lambda loaded: 42,
)


@pytest.fixture
def with_echo(monkeypatch: pytest.MonkeyPatch) -> None:
    """The registry with one more view, and nothing else changed."""
    monkeypatch.setattr(registry, "VIEWS", (*registry.VIEWS, ECHO))


def test_every_view_name_and_alias_resolves_to_its_view() -> None:
    """`:NAME` and every alias find the view; text after the name is its argument."""
    for view in registry.jump_views():
        for word in (view.name, *view.aliases):
            found = registry.resolve(f":{word.upper()} some filter")
            assert found == (view, "some filter"), word
    assert registry.resolve("nope") is None


def test_names_and_aliases_never_clash() -> None:
    """No word `:` accepts names two views."""
    words = [w for v in registry.jump_views() for w in (v.name, *v.aliases)]
    assert len(words) == len(set(words))
    assert len({v.name for v in registry.VIEWS}) == len(registry.VIEWS)


async def test_home_lists_every_view_of_the_registry(make_app: Callable[..., PodpathApp]) -> None:
    """Home's menu is the registry's views (home itself aside), in its order, with counts."""
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert isinstance(app.screen, NodeScreen)
        keys = list(app.screen.table._keys)
    expected = [f"go:{v.name}" for v in registry.jump_views() if v.name != registry.HOME]
    assert keys == expected


@pytest.mark.parametrize("view", [v.name for v in registry.jump_views()])
async def test_each_view_opens_from_the_jump_prompt(
    view: str, make_app: Callable[..., PodpathApp]
) -> None:
    """`:name` enter opens the view's screen (home stays the one home)."""
    app = make_app()
    found = registry.find(view)
    assert found is not None
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("colon", *view, "enter")
        await pilot.pause()
        assert type(app.screen) is type(found.screen(""))
        assert len(app.screen_stack) == (2 if view == registry.HOME else 3)


async def test_a_jump_with_an_argument_opens_the_view_filtered(
    make_app: Callable[..., PodpathApp],
) -> None:
    """`:po web` opens Pods with the filter `web` applied."""
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("colon", *"po web", "enter")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, PodsScreen) and screen.needle == "web"
        assert screen.table.row_count == 2


async def test_a_view_added_to_the_registry_is_everywhere(
    with_echo: None, make_app: Callable[..., PodpathApp]
) -> None:
    """One View added to the registry shows on home with its count, in `:`, help and ctrl+p."""
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        home = app.screen
        assert isinstance(home, NodeScreen)
        assert home.table.row_texts(home.table._keys.index("go:echo")) == (
            "Echo test view",
            "42",
            ":echo",
        )
        palette = [c.title for c in app.get_system_commands(app.screen)]
        assert "Go to Echo test view" in palette
        await pilot.press("colon", *"ec", "enter")
        await pilot.pause()
        assert isinstance(app.screen, EchoScreen) and app.screen.table.row_count == 1
        help_lines = {r.cells[0].text: r.cells[1].text for r in key_rows(app.screen)}
        assert help_lines[":echo"] == "a view that exists only in this test"
        assert help_lines["e"] == "Echo"
        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)


def test_an_unknown_view_is_refused_by_name() -> None:
    """The registry has no view for a typo, and a detail view needs its argument."""
    assert registry.find("podz") is None
    pod = registry.find("pod")
    assert pod is not None and pod.detail and pod not in registry.jump_views()
