"""What the Trace screen's inputs complete: every loaded node's pods, pod IPs, Services
and ClusterIPs, listed once (by the background worker on a big snapshot), one suggester
for both inputs."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from textual.widgets import Input

from podpath.snapshot.model import Snapshot
from podpath.tui import state
from podpath.tui.app import PodpathApp
from podpath.tui.screens.trace import TraceScreen
from podpath.tui.state import SERVICES, TRACE_WORDS, Loaded

SIZE = (160, 48)


def _expected(loaded: Loaded) -> set[str]:
    index, services = loaded.index, loaded.parsed.services()
    return {
        "node",
        *index.pods_by_name,
        *index.pods_by_ip,
        *(f"{s.namespace}/{s.name}:{s.port}" for s in services),
        *(f"{s.cluster_ip}:{s.port}" for s in services if s.cluster_ip),
    }


def test_the_words_are_listed_once_as_a_stage(fixed_snapshot: Snapshot) -> None:
    loaded = Loaded(fixed_snapshot)
    loaded.prepare()
    assert loaded.has(TRACE_WORDS)
    words = loaded.trace_words()
    assert list(words) == sorted(_expected(loaded))
    assert any(w.startswith("default/web:") for w in words)
    assert loaded.trace_words() is words  # kept, not listed again


def test_before_the_services_are_parsed_they_are_not_kept(
    fixed_snapshot: Snapshot, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a big snapshot the Services come later: the pods are offered meanwhile, and the
    list is made again (and kept) once the Services are parsed."""
    monkeypatch.setattr(state, "INLINE_PREPARE_BYTES", 0)
    loaded = Loaded(fixed_snapshot)
    early = loaded.trace_words()
    assert not loaded.has(SERVICES)
    assert "default/web:80" not in early and set(loaded.index.pods_by_name) <= set(early)
    loaded.prepare()
    assert set(loaded.trace_words()) == _expected(loaded) and "default/web:80" in _expected(loaded)


async def test_both_inputs_share_one_suggester_of_those_words(
    make_app: Callable[..., PodpathApp],
) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        app.push_screen(TraceScreen())
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, TraceScreen)
        source, destination = (screen.query_one(f"#{i}", Input) for i in ("from", "to"))
        assert source.suggester is not None and source.suggester is destination.suggester
        # (the suggester is asked with the typed text casefolded)
        assert await source.suggester.get_suggestion("default/web:") == "default/web:80"
