"""How far a step is: its items counted and told, at most once an interval (podpath.progress)."""

from __future__ import annotations

import time

import pytest

from podpath.progress import Items, items_text


def test_items_are_told_with_their_count_once_an_interval_has_passed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Ticks within the interval tell nothing; the first tick after it tells "what i/n"."""
    monkeypatch.setenv("PODPATH_PROGRESS_INTERVAL", "0.05")
    told: list[tuple[str, int, int]] = []
    items = Items(lambda what, done, total: told.append((what, done, total)), "pods", 3, 8, 1200)
    for _ in range(500):
        items.tick()
    assert told == []  # the step's start was told just before: nothing more yet
    time.sleep(0.06)
    items.tick(500)
    items.tick()  # within the next interval: not told
    assert told == [("pods 1,000/1,200", 3, 8)]
    time.sleep(0.06)
    items.reached(1250, 1300)  # the size may be learnt as the work goes
    assert told[-1] == ("pods 1,250/1,300", 3, 8) and items.count == 1250


def test_without_a_listener_counting_still_works() -> None:
    """With no progress callable, items are counted and nothing else happens."""
    items = Items(None, "rows", 0, 1, 10)
    for _ in range(10):
        items.tick()
    assert items.count == 10


def test_a_bad_interval_setting_falls_back_to_a_tenth_of_a_second(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """PODPATH_PROGRESS_INTERVAL that is not a number is ignored, never an error."""
    monkeypatch.setenv("PODPATH_PROGRESS_INTERVAL", "soon")
    assert Items(None, "rows", 0, 1, 10).interval == 0.1


def test_the_count_never_shows_more_than_the_size() -> None:
    """A count past the announced size (items added meanwhile) is shown as the size."""
    assert items_text("network namespaces", 260, 251) == "network namespaces 251/251"
