"""`:map`: podpath draw's outline as a keyboard tree, at 250 pods, and a trace laid on it."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

from textual.pilot import Pilot
from trace_pilot import traced

from podpath.draw.build import build_map
from podpath.draw.outline import outline
from podpath.safe_text import visible
from podpath.snapshot.model import Pod, Snapshot
from podpath.tui.app import PodpathApp
from podpath.tui.screens.map import MapScreen
from podpath.tui.screens.pod import PodScreen
from podpath.tui.widgets.table import RowTable

sys.path.insert(0, str(Path(__file__).resolve().parent))
from scale_snapshot import build  # noqa: E402

SIZE = (160, 48)
CLIENT = "default/client-6f9b8d7c4-qp2ld"


def _split(text: str) -> tuple[int, str]:
    """A shown line as (depth, text): `│  ├─ veth …` is depth 2 (three cells a level)."""
    rest = text.lstrip(" │├└─")
    return (len(text) - len(rest)) // 3, rest


async def _open_map(pilot: Pilot[None], *keys: str) -> MapScreen:
    """`:map` (then `keys`): the map screen."""
    await pilot.press("colon", *"map", "enter", *keys)
    await pilot.pause()
    screen = pilot.app.screen
    assert isinstance(screen, MapScreen)
    return screen


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
        screen = await _open_map(pilot)
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
        screen = await _open_map(pilot, "slash", *"client", "enter")
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
        screen = await _open_map(pilot)
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


DATA = Path(__file__).resolve().parents[2] / "src" / "podpath" / "data"


def _two_nodes() -> PodpathApp:
    """The app as `podpath tui --snapshot node1.json node2.json` builds it (the bundled demo's)."""
    from podpath.snapshot.codec import load_path
    from podpath.tui.app import create_app
    from podpath.tui.source import static_source

    node1 = load_path(str(DATA / "demo-snapshot.json"))
    node2 = load_path(str(DATA / "demo-snapshot-node2.json"))
    return create_app(static_source(node1, "snapshot", "node1.json", peers=(node2,)))


def _select_a_pod_of(screen: MapScreen, node: Snapshot) -> Pod:
    """Put the cursor on a pod of `node` in the map (under that node's line); that pod."""
    pod = next(p for p in node.pods if not p.host_network and p.ips)
    texts = _texts(screen)
    first = next(i for i, t in enumerate(texts) if t.startswith(f"node {node.node.hostname}"))
    line = next(
        i for i, t in enumerate(texts) if i > first and f"pod {pod.namespace}/{pod.name}" in t
    )
    screen.table.move_cursor(row=line)
    return pod


async def _on_a_pod_of_node2(pilot: Pilot[None]) -> tuple[MapScreen, Snapshot, Pod]:
    """:map with the cursor on a pod of the second node: the screen, that node, the pod."""
    screen = await _open_map(pilot)
    app = pilot.app
    assert isinstance(app, PodpathApp) and app.loaded is not None
    loaded = app.loaded
    node2: Snapshot = loaded.peers[0]
    return screen, node2, _select_a_pod_of(screen, node2)


async def test_enter_on_another_nodes_pod_opens_it_and_escape_returns_to_the_map() -> None:
    """With two snapshots, enter on node2's pod shows that pod of node2's snapshot; esc: the map."""
    app = _two_nodes()
    async with app.run_test(size=SIZE) as pilot:
        screen, node2, pod = await _on_a_pod_of_node2(pilot)
        await pilot.press("enter")
        await pilot.pause()
        shown = app.screen
        assert isinstance(shown, PodScreen) and shown.node == 1
        assert shown.pod_key == f"{pod.namespace}/{pod.name}"
        assert shown.selected_pod() == pod  # node2's record, not a namesake of node1
        heading = str(shown.query_one("#heading").render())
        assert f"on {node2.node.hostname}" in heading
        interfaces = shown.query_one("#t-interfaces", RowTable)
        assert any(
            pod.ips[0] in " ".join(interfaces.row_texts(i)) for i in range(interfaces.row_count)
        )
        await pilot.press("s")  # a shell would run on this machine, not on node2: refused
        await pilot.pause()
        assert any(node2.node.hostname in str(n.message) for n in app._notifications)
        await pilot.press("escape")
        await pilot.pause()
        assert app.screen is screen


async def test_t_on_another_nodes_pod_traces_from_it() -> None:
    """t on node2's pod in :map opens Trace from that pod (the trace engine finds it on node2)."""
    app = _two_nodes()
    async with app.run_test(size=SIZE) as pilot:
        screen, node2, pod = await _on_a_pod_of_node2(pilot)
        await pilot.press("t")
        await pilot.pause()
        from podpath.tui.screens.trace import TraceScreen

        assert isinstance(app.screen, TraceScreen)
        assert app.screen.source_spec == f"{pod.namespace}/{pod.name}"


async def test_slash_name_enter_enter_opens_the_pod_found(
    make_app: Callable[..., PodpathApp],
) -> None:
    """`/client` enter enter on :map opens the client pod, not the node line above the match."""
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        screen = await _open_map(pilot, "slash", *"client", "enter")
        assert _texts(screen)[0].startswith("node ")  # the lines above are shown...
        await pilot.press("enter")  # ...but the cursor is on the match
        await pilot.pause()
        pod_screen = app.screen
        assert isinstance(pod_screen, PodScreen) and pod_screen.pod_key == CLIENT
        await pilot.press("escape")
        await pilot.pause()
        assert app.screen is screen
        assert str(screen.query_one("#count").render()).startswith("1 of ")
