"""`:map`: podpath draw's outline as a keyboard tree, at 250 pods, and a trace laid on it."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

from trace_pilot import traced

from podpath.draw.build import build_map
from podpath.draw.outline import outline
from podpath.safe_text import visible
from podpath.snapshot.model import Snapshot
from podpath.tui.app import PodpathApp
from podpath.tui.screens.map import MapScreen
from podpath.tui.screens.pod import PodScreen

sys.path.insert(0, str(Path(__file__).resolve().parent))
from scale_snapshot import build  # noqa: E402

SIZE = (160, 48)
CLIENT = "default/client-6f9b8d7c4-qp2ld"


def _split(text: str) -> tuple[int, str]:
    """A shown line as (depth, text): `│  ├─ veth …` is depth 2 (three cells a level)."""
    rest = text.lstrip(" │├└─")
    return (len(text) - len(rest)) // 3, rest


def _texts(screen: MapScreen) -> list[str]:
    table = screen.table
    column = 1 if screen.path is not None else 0
    return [table.row_texts(i)[column] for i in range(table.row_count)]


async def test_map_is_the_draw_outline_and_enter_opens_a_pod(
    make_app: Callable[..., PodpathApp], fixed_snapshot: Snapshot
) -> None:
    """Every line `podpath draw` prints is on :map, indented alike; enter on a pod opens it."""
    expected = [(r.depth, visible(r.text)) for r in outline(build_map([fixed_snapshot]))]
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("colon", *"map", "enter")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, MapScreen)
        shown = [_split(t) for t in _texts(screen)]
        assert shown == expected
        pod_line = next(i for i, (_d, t) in enumerate(shown) if t.startswith(f"pod {CLIENT}"))
        screen.table.move_cursor(row=pod_line)
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, PodScreen) and app.screen.pod_key == CLIENT


async def test_a_filter_keeps_the_lines_above_a_match(
    make_app: Callable[..., PodpathApp],
) -> None:
    """`/client` shows the client pod under its veth, bridge, IP stack and node."""
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("colon", *"map", "enter", "slash", *"client", "enter")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, MapScreen)
        texts = _texts(screen)
        lines = [_split(t) for t in texts]
        kinds = [t.split()[0] for _d, t in lines]
        assert kinds[0] == "node" and kinds[-1] == "pod" and CLIENT in texts[-1]
        assert "bridge" in kinds and "IP" in kinds
        assert [d for d, _t in lines] == list(range(len(lines)))  # each under the one before


async def test_250_pods_start_folded_and_a_pod_is_found_by_name() -> None:
    """At 250 pods the bridge starts folded (a screen, not 500 lines); `/` finds one pod."""
    from podpath.tui.app import create_app
    from podpath.tui.source import static_source

    scale = build(pods=250, service_count=10, conntrack=10)
    pod = scale.pods[-1]
    app = create_app(static_source(scale, "file", "scale.json"))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("colon", *"map", "enter")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, MapScreen)
        texts = _texts(screen)
        folded = [t for t in texts if "▸ bridge cni0" in t]
        assert folded and "below, enter unfolds" in folded[0]
        assert screen.table.row_count < 40
        await pilot.press("slash", *pod.name, "enter")
        await pilot.pause()
        texts = _texts(screen)
        assert f"{pod.namespace}/{pod.name}" in texts[-1] and len(texts) <= 6
        await pilot.press("escape", "z")  # clear the filter, unfold everything
        await pilot.pause()
        assert sum("pod " in t for t in _texts(screen)) >= 190  # capped at the table's limit


async def test_the_trace_on_the_map_numbers_each_step_where_it_happens(
    make_app: Callable[..., PodpathApp],
) -> None:
    """m in Trace: the client pod has step 1, the bridge and the server pod later steps, in order."""
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        trace, _result = await traced(pilot, CLIENT, "default/web:80")
        branch = trace.selected_branch()
        assert branch is not None and branch.verdict == "delivered"
        await pilot.press("m")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, MapScreen) and screen.path is not None
        table = screen.table
        rows = [table.row_texts(i) for i in range(table.row_count)]
        steps = {_split(r[1])[1]: r[0].split() for r in rows if r[0]}
        client = next(v for k, v in steps.items() if k.startswith(f"pod {CLIENT}"))
        assert client[0] == "1"
        numbers = sorted(int(n.lstrip("↩")) for v in steps.values() for n in v)
        assert numbers == list(range(1, len(screen.path.steps) + 1))  # every step, once
        bridge = next(v for k, v in steps.items() if k.startswith("bridge"))
        server_pod = branch.hops[-1].text.split("delivered to pod ")[1].split(":")[0]
        server = next(v for k, v in steps.items() if k.startswith(f"pod {server_pod}"))
        assert int(bridge[0]) < int(next(n for n in server if not n.startswith("↩")))
        assert any(n.startswith("↩") for v in steps.values() for n in v)  # the reply too
        assert "branch 1 (delivered) of trace tcp from pod" in screen.heading()
