"""Pilot tests of every flow: drill in/out, filter, jump, netfilter, trace, refresh, actions."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable
from pathlib import Path

from sidecar_snapshot import SIDECAR_SAID, with_sidecar_rules
from textual.message import Message
from textual.widgets import Static

from podpath.snapshot.codec import load_path
from podpath.snapshot.model import Pod, Snapshot
from podpath.tui.actions import ActionResult, PodTarget
from podpath.tui.app import PodpathApp, create_app
from podpath.tui.rows.model import MAX_ROWS, MORE_KEY
from podpath.tui.screens.help import HelpScreen
from podpath.tui.screens.netfilter import NetfilterScreen
from podpath.tui.screens.node import NodeScreen
from podpath.tui.screens.pod import PodScreen
from podpath.tui.screens.pods import PodsScreen
from podpath.tui.screens.service import ServiceScreen
from podpath.tui.screens.services import ServicesScreen
from podpath.tui.screens.trace import TraceScreen
from podpath.tui.source import Progress, live_source
from podpath.tui.widgets.table import RowTable

SIZE = (120, 36)
CLIENT = "default/client-6f9b8d7c4-qp2ld"


async def jump(pilot: object, name: str) -> None:
    """Type `:name` enter."""
    await pilot.press("colon", *name, "enter")  # type: ignore[attr-defined]
    await pilot.pause()  # type: ignore[attr-defined]


async def test_home_shows_the_source_in_the_title(make_app: Callable[..., PodpathApp]) -> None:
    """The header names the snapshot file, the node and the time it was taken."""
    app = make_app()
    async with app.run_test(size=SIZE):
        assert isinstance(app.screen, NodeScreen)
        assert "fixture.json" in app.sub_title and "lab-node-1" in app.sub_title
        assert "2025-11-25 10:00:00 UTC" in app.sub_title


async def test_jump_to_pods_then_drill_into_a_pod_and_back(
    make_app: Callable[..., PodpathApp],
) -> None:
    """:pods lists pods; enter opens the pod under the cursor; esc returns to the list."""
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await jump(pilot, "pods")
        assert isinstance(app.screen, PodsScreen)
        key = app.screen.table.selected_key
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, PodScreen) and app.screen.pod_key == key
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.screen, PodsScreen)


async def test_home_menu_enter_opens_the_view(make_app: Callable[..., PodpathApp]) -> None:
    """Enter on the Services row of home opens the Services view."""
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("down", "enter")
        await pilot.pause()
        assert isinstance(app.screen, ServicesScreen)


async def test_filter_narrows_and_escape_clears(make_app: Callable[..., PodpathApp]) -> None:
    """`/coredns` keeps one pod; esc clears the filter and shows all pods again."""
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await jump(pilot, "pods")
        screen = app.screen
        assert isinstance(screen, PodsScreen)
        await pilot.press("slash", *"coredns")
        await pilot.pause()
        assert screen.table.row_count == 1
        await pilot.press("escape")
        await pilot.pause()
        assert screen.table.row_count == 5 and screen.needle == ""
        assert isinstance(app.screen, PodsScreen)


async def test_unknown_jump_stays_on_the_prompt(make_app: Callable[..., PodpathApp]) -> None:
    """A jump name that is no view keeps the prompt open; esc closes it."""
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("colon", *"nope", "enter")
        await pilot.pause()
        assert type(app.screen).__name__ == "JumpScreen"
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.screen, NodeScreen)


async def test_help_lists_the_current_screens_keys(make_app: Callable[..., PodpathApp]) -> None:
    """`?` on the pods list shows its Shell and Capture keys and the global ones."""
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await jump(pilot, "pods")
        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        rows = app.screen.query_one(RowTable)
        texts = [rows.row_texts(i)[1] for i in range(rows.row_count)]
        assert (
            "Shell" in texts
            and "Filter" in texts
            and any(t.startswith("jump to a view") for t in texts)
        )


async def _move_to(pilot: object, table: RowTable, key: str) -> None:
    assert table.move_to_key(key), key
    await pilot.pause()  # type: ignore[attr-defined]
    await pilot.press("enter")  # type: ignore[attr-defined]
    await pilot.pause()  # type: ignore[attr-defined]


async def test_netfilter_drill_follow_jump_and_back(make_app: Callable[..., PodpathApp]) -> None:
    """backend -> nat -> KUBE-SERVICES -> enter on a jump -> KUBE-SVC-...; esc goes back with the cursor."""
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await jump(pilot, "ipt")
        screen = app.screen
        assert isinstance(screen, NetfilterScreen)
        await _move_to(pilot, screen.table, "dump:0")
        await _move_to(pilot, screen.table, "table:nat")
        await _move_to(pilot, screen.table, "chain:KUBE-SERVICES")
        assert screen.level.chain == "KUBE-SERVICES"
        await _move_to(pilot, screen.table, "rule:2")
        assert screen.level.chain is not None and screen.level.chain.startswith("KUBE-SVC-")
        await pilot.press("escape")
        await pilot.pause()
        assert screen.level.chain == "KUBE-SERVICES" and screen.table.selected_key == "rule:2"
        await pilot.press("escape", "escape", "escape")
        await pilot.pause()
        assert screen.level.dump is None


async def test_trace_from_the_selected_pod(make_app: Callable[..., PodpathApp]) -> None:
    """`t` on a pod opens Trace from it; a Service VIP gives three branches of 1/3."""
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await jump(pilot, "pods")
        assert isinstance(app.screen, PodsScreen)
        assert app.screen.table.move_to_key(CLIENT)
        await pilot.press("t")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, TraceScreen) and screen.source_spec == CLIENT
        await pilot.press(*"10.96.0.20:80", "enter")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert screen.trace is not None and len(screen.trace.branches) == 3
        assert all(abs(b.probability - 1 / 3) < 1e-6 for b in screen.trace.branches)
        hops = screen.query_one("#hops", RowTable)
        assert hops.row_count > 3


async def test_trace_reply_path_and_binary_and(make_app: Callable[..., PodpathApp]) -> None:
    """`p` switches to the reply path; `a` shows the bitwise AND of the route lookup."""
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        app.start_trace(CLIENT, "10.96.0.20:80")
        await pilot.pause()
        await app.workers.wait_for_complete()
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, TraceScreen)
        await pilot.press("a")
        await pilot.pause()
        detail = str(screen.query_one("#hop-detail").render())
        assert "bit by bit" in detail
        await pilot.press("p")
        await pilot.pause()
        assert "reply path" in str(screen.query_one("#path-heading").render())


async def test_trace_of_nonsense_says_why(make_app: Callable[..., PodpathApp]) -> None:
    """An unresolvable destination is reported on screen, not raised."""
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        app.start_trace(CLIENT, "no-such-thing")
        await pilot.pause()
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert "cannot trace" in str(app.screen.query_one("#trace-status").render())


async def test_service_drill_shows_endpoints_and_chain_walk(
    make_app: Callable[..., PodpathApp],
) -> None:
    """Enter on default/web shows its 3 endpoints and KUBE-SERVICES -> SVC -> SEP rules."""
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await jump(pilot, "svc")
        assert isinstance(app.screen, ServicesScreen)
        key = next(k for k in app.screen.table._cells if k.startswith("default/web:"))
        await _move_to(pilot, app.screen.table, key)
        screen = app.screen
        assert isinstance(screen, ServiceScreen)
        assert screen.query_one("#endpoints", RowTable).row_count == 3
        walk = screen.query_one("#walk", RowTable)
        chains = {walk.row_texts(i)[0] for i in range(walk.row_count)}
        assert "KUBE-SERVICES" in chains and any(c.startswith("KUBE-SEP-") for c in chains)


async def test_pod_tabs_switch_with_arrow_keys(make_app: Callable[..., PodpathApp]) -> None:
    """Right arrow moves from Containers to Interfaces, whose table lists eth0."""
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        app.open_screen("pod", CLIENT)
        await pilot.pause()
        await pilot.press("right")
        await pilot.pause()
        tabs = app.screen.query_one("TabbedContent")
        assert tabs.active == "tab-interfaces"  # type: ignore[attr-defined]
        table = app.screen.query_one("#t-interfaces", RowTable)
        assert any(table.row_texts(i)[0].startswith("eth0@if") for i in range(table.row_count))


class RecordingActions:
    """Actions that record what they were asked to do."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, PodTarget]] = []

    def shell(self, target: PodTarget) -> ActionResult:
        """Record a shell."""
        self.calls.append(("shell", target))
        return ActionResult(True, "shell done")

    def capture(self, target: PodTarget, path: str, count: int, seconds: int) -> ActionResult:
        """Record a capture."""
        self.calls.append((f"capture {path} {count} {seconds}", target))
        return ActionResult(True, "capture done")

    def capture_directory(self) -> str | None:
        """Where relative names would go."""
        return "/captures"


async def test_shell_is_pinned_to_pause_pid_and_start_time(fixed_snapshot: Snapshot) -> None:
    """`s` hands the injected action the pod's pause PID, start time and netns inode."""
    from podpath.tui.source import static_source

    actions = RecordingActions()
    app = create_app(static_source(fixed_snapshot, "test", "t"), actions)
    async with app.run_test(size=SIZE) as pilot:
        app.open_screen("pods")
        await pilot.pause()
        assert isinstance(app.screen, PodsScreen)
        assert app.screen.table.move_to_key(CLIENT)
        await pilot.press("s")
        await pilot.pause()
    pod = next(p for p in fixed_snapshot.pods if f"{p.namespace}/{p.name}" == CLIENT)
    assert actions.calls == [
        ("shell", PodTarget(CLIENT, pod.pause_pid or 0, pod.pause_start_time, pod.netns_inode))
    ]


async def test_capture_asks_for_file_count_and_seconds(
    fixed_snapshot: Snapshot, tmp_path: Path
) -> None:
    """`c` prompts, then hands the file, count and duration to the injected action."""
    from podpath.tui.source import static_source

    actions = RecordingActions()
    app = create_app(static_source(fixed_snapshot, "test", "t"), actions)
    async with app.run_test(size=SIZE) as pilot:
        app.open_screen("pod", CLIENT)
        await pilot.pause()
        await pilot.press("c")
        await pilot.pause()
        prompt = app.screen.query_one("#prompt-input")
        prompt.value = f"{tmp_path}/x.pcap 5 2"  # type: ignore[attr-defined]
        await pilot.press("enter")
        await pilot.pause()
    assert [c[0] for c in actions.calls] == [f"capture {tmp_path}/x.pcap 5 2"]


async def test_capture_on_a_snapshot_is_refused_before_asking_for_a_file(
    make_app: Callable[..., PodpathApp],
) -> None:
    """`c` on a saved snapshot says at once there is no live node; no file prompt opens."""
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        app.open_screen("pod", CLIENT)
        await pilot.pause()
        screen = app.screen
        await pilot.press("c")
        await pilot.pause()
        assert app.screen is screen  # no PromptScreen pushed
        messages = [str(n.message) for n in app._notifications]
        assert messages == [f"no capture for {CLIENT}: this is a snapshot, not a live node"]


async def test_ctrl_c_quits_like_q(make_app: Callable[..., PodpathApp]) -> None:
    """ctrl+c on a list quits the app (as k9s does), not a "press ctrl+q" notice."""
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await jump(pilot, "pods")
        await pilot.press("ctrl+c")
        await pilot.pause()
        assert not app._notifications
    assert app.return_code == 0
    assert app.quitting


async def test_ctrl_c_in_an_input_copies_a_selection_and_quits_without_one(
    make_app: Callable[..., PodpathApp],
) -> None:
    """In Trace's To input ctrl+c copies selected text; with nothing selected it quits."""
    from textual.widgets import Input
    from textual.widgets.input import Selection

    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        app.start_trace(CLIENT)
        await pilot.pause()
        field = app.screen.query_one("#to", Input)
        assert app.focused is field
        field.value = "default/web:80"
        field.selection = Selection(0, len("default"))
        await pilot.press("ctrl+c")
        await pilot.pause()
        assert app.clipboard == "default"
        assert app.is_running and app.return_code is None
        field.selection = Selection.cursor(0)
        await pilot.press("ctrl+c")
        await pilot.pause()
        assert app.quitting
    assert app.return_code == 0


async def test_write_saves_a_loadable_snapshot(
    make_app: Callable[..., PodpathApp], fixed_snapshot: Snapshot, tmp_path: Path
) -> None:
    """`w` writes the current snapshot; it loads back equal."""
    app = make_app()
    out = tmp_path / "saved.json"
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("w")
        await pilot.pause()
        app.screen.query_one("#prompt-input").value = str(out)  # type: ignore[attr-defined]
        await pilot.press("enter")
        await pilot.pause()
    assert load_path(str(out)) == fixed_snapshot


def _with_many_pods(fixed_snapshot: Snapshot, n: int) -> Snapshot:
    base = fixed_snapshot.pods[0]
    extra = tuple(
        dataclasses.replace(
            base, name=f"load-{i:05d}", uid=f"u{i}", ips=(f"10.250.{i // 250}.{i % 250}",)
        )
        for i in range(n)
    )
    return dataclasses.replace(fixed_snapshot, pods=fixed_snapshot.pods + extra)


async def test_refresh_while_a_big_snapshot_loads(fixed_snapshot: Snapshot) -> None:
    """Collecting runs in a worker: the UI answers, a second refresh is dropped, rows are capped."""
    release = threading.Event()
    big = _with_many_pods(fixed_snapshot, 5000)

    def collect(cancel: threading.Event, previous: Snapshot | None, progress: Progress) -> Snapshot:
        release.wait(10)
        return big if previous is None else _with_many_pods(fixed_snapshot, 5001)

    app = create_app(live_source(collect, "/"))
    seen: list[Message] = []
    async with app.run_test(size=SIZE, message_hook=seen.append) as pilot:
        assert "collecting" in app.sub_title
        await jump(pilot, "pods")  # the UI answers while the worker is blocked
        assert isinstance(app.screen, PodsScreen)
        await pilot.press("r")
        await pilot.pause()
        assert any(isinstance(m, PodpathApp.RefreshDropped) for m in seen)
        release.set()
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert any(isinstance(m, PodpathApp.SnapshotReady) and not m.refreshed for m in seen)
        table = app.screen.table
        assert table.row_count == MAX_ROWS + 1 and table._keys[-1] == MORE_KEY
        # A refresh keeps the cursor on the same pod (rows are updated by key).
        table.move_cursor(row=7)
        key = table.selected_key
        await pilot.press("r")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert any(isinstance(m, PodpathApp.SnapshotReady) and m.refreshed for m in seen)
        assert app.screen.table.selected_key == key


async def test_a_failing_collector_is_reported_not_raised(fixed_snapshot: Snapshot) -> None:
    """A collector that raises posts CollectFailed and the app keeps running."""

    def collect(cancel: threading.Event, previous: Snapshot | None, progress: Progress) -> Snapshot:
        raise PermissionError("no CAP_NET_ADMIN")

    app = create_app(live_source(collect, "/"))
    seen: list[Message] = []
    async with app.run_test(size=SIZE, message_hook=seen.append) as pilot:
        await app.workers.wait_for_complete()
        await pilot.pause()
        failed = [m for m in seen if isinstance(m, PodpathApp.CollectFailed)]
        assert failed and "CAP_NET_ADMIN" in failed[0].reason
        assert app.is_running


def _hostile(fixed_snapshot: Snapshot) -> Snapshot:
    pod: Pod = fixed_snapshot.pods[0]
    evil = dataclasses.replace(pod, name="[@click=app.quit]x[/]\x1b]0;pwned\x07\u202e", uid="evil")
    return dataclasses.replace(fixed_snapshot, pods=(evil, *fixed_snapshot.pods[1:]))


async def test_markup_in_a_pod_name_is_literal_and_fires_nothing(fixed_snapshot: Snapshot) -> None:
    """A pod named with an @click action shows literally; clicking it does not quit the app."""
    from podpath.tui.source import static_source

    app = create_app(static_source(_hostile(fixed_snapshot), "test", "t"))
    async with app.run_test(size=SIZE) as pilot:
        await jump(pilot, "pods")
        table = app.screen.query_one("#table", RowTable)
        names = [table.row_texts(i)[0] for i in range(table.row_count)]
        hostile = next(n for n in names if "@click" in n)
        assert hostile == "default/[@click=app.quit]x[/]\\x1b]0;pwned\\x07\\u202e"
        row = names.index(hostile)
        await pilot.click("#table", offset=(4, row + 1))
        await pilot.pause()
        assert app.is_running and app.return_code is None
        svg = app.export_screenshot()
        assert "\x1b" not in svg and "\u202e" not in svg


def _with_big_ruleset(snapshot: Snapshot) -> Snapshot:
    dump = snapshot.iptables[0]
    pad = "".join(f"-A KUBE-PAD -m comment --comment pad-{i} -j RETURN\n" for i in range(60_000))
    text = dump.text.replace("*filter\n", "*filter\n:KUBE-PAD - [0:0]\n" + pad, 1)
    return dataclasses.replace(snapshot, iptables=(dataclasses.replace(dump, text=text),))


async def test_home_parses_a_big_ruleset_in_a_worker(fixed_snapshot: Snapshot) -> None:
    """With megabytes of rules, home appears first and fills in Service counts from a worker."""
    from podpath.tui.source import static_source

    app = create_app(static_source(_with_big_ruleset(fixed_snapshot), "test", "big"))
    seen: list[Message] = []
    async with app.run_test(size=SIZE, message_hook=seen.append) as pilot:
        assert isinstance(app.screen, NodeScreen)
        first = {k: app.screen.table.row_texts(i)[1] for i, k in enumerate(app.screen.table._keys)}
        assert first["go:svc"] == "…"  # the first frame did not wait for the parse
        # The worker starts after the first frame: wait for its message, not for idle.
        for _ in range(200):
            if any(isinstance(m, PodpathApp.ViewsReady) for m in seen):
                break
            await pilot.pause(0.05)
        await pilot.pause()
        table = app.screen.table
        counts = {k: table.row_texts(i)[1] for i, k in enumerate(table._keys)}
        assert counts["go:svc"] == "6" and counts["go:problems"] == "3"


async def test_a_view_with_partial_data_says_why(fixed_snapshot: Snapshot) -> None:
    """A conntrack gap in the snapshot is named on the Conntrack view, with its reason."""
    from podpath.snapshot.model import Gap
    from podpath.tui.source import static_source

    gap = Gap("conntrack table", "permission denied", "permission", "CAP_NET_ADMIN")
    app = create_app(static_source(dataclasses.replace(fixed_snapshot, gaps=(gap,)), "test", "t"))
    async with app.run_test(size=SIZE) as pilot:
        await jump(pilot, "ct")
        note = app.screen.query_one("#gaps")
        assert note.display and "partial: conntrack table: permission denied" in str(note.render())
        await jump(pilot, "pods")
        assert not app.screen.query_one("#gaps").display


async def test_enter_on_a_pod_interface_opens_its_host_peer(
    make_app: Callable[..., PodpathApp],
) -> None:
    """Enter on eth0 in the Interfaces tab opens Links filtered to the host-side veth."""
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        app.open_screen("pod", CLIENT)
        await pilot.pause()
        await pilot.press("right")
        await pilot.pause()
        table = app.screen.query_one("#t-interfaces", RowTable)
        assert table.move_to_key("if:2")
        await pilot.press("enter")
        await pilot.pause()
        screen = app.screen
        assert type(screen).__name__ == "LinksScreen"
        assert screen.needle.startswith("veth") and screen.table.row_count == 1  # type: ignore[attr-defined]


async def test_enter_on_a_cni_config_shows_its_text(make_app: Callable[..., PodpathApp]) -> None:
    """Enter on the active conflist shows the file's text, literally."""
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await jump(pilot, "cni")
        await pilot.press("enter")
        await pilot.pause()
        assert type(app.screen).__name__ == "TextScreen"
        assert '"type": "bridge"' in str(app.screen.query_one("#text-body").render())


async def test_pod_screen_says_where_the_pod_was_found_and_what_cni_recorded(
    make_app: Callable[..., PodpathApp], fixed_snapshot: Snapshot
) -> None:
    """The heading names the sources; a second line shows kindnet's host if, gateway, MTU."""
    first = fixed_snapshot.pods[0]
    pod = dataclasses.replace(
        first,
        source="cri",
        also_from=("kindnet-db",),
        host_interface="knet1a2b3c4d",
        gateways=("10.244.0.0",),
        mtu=1450,
    )
    snap = dataclasses.replace(fixed_snapshot, pods=(pod, *fixed_snapshot.pods[1:]))
    app = make_app(snap)
    async with app.run_test(size=SIZE) as pilot:
        app.push_screen(PodScreen(f"{pod.namespace}/{pod.name}"))
        await pilot.pause()
        heading = str(app.screen.query_one("#heading", Static).render())
        info = str(app.screen.query_one("#podinfo", Static).render())
        assert heading.endswith("· found by cri+kindnet-db")
        assert info.splitlines()[-1] == (
            "CNI recorded host if knet1a2b3c4d, gateway 10.244.0.0, mtu 1450"
        )
        assert app.screen.query_one("#podinfo", Static).size.height == 3


async def test_pod_screen_names_the_pods_own_netfilter_rules(
    make_app: Callable[..., PodpathApp], fixed_snapshot: Snapshot
) -> None:
    """A pod whose namespace has a sidecar's redirect says so under its info, whole, with
    the CNI's line: traces through it do not walk those rules."""
    first = fixed_snapshot.pods[0]
    pod = dataclasses.replace(first, host_interface="knet1a2b3c4d", mtu=1450)
    snap = dataclasses.replace(fixed_snapshot, pods=(pod, *fixed_snapshot.pods[1:]))
    app = make_app(with_sidecar_rules(snap, pod))
    async with app.run_test(size=SIZE) as pilot:
        app.push_screen(PodScreen(f"{pod.namespace}/{pod.name}"))
        await pilot.pause()
        info = app.screen.query_one("#podinfo", Static)
        lines = str(info.render()).splitlines()
        assert lines[1:] == [
            "CNI recorded host if knet1a2b3c4d, mtu 1450",
            f"own netfilter rules: {SIDECAR_SAID} (traces through the pod do not walk them)",
        ]
        # Every line shown whole, each wrapped to the widget's width.
        assert info.size.height == sum(-(-len(line) // info.size.width) for line in lines)


async def test_a_trace_given_both_ends_runs_once_its_screen_is_laid_out(
    make_app: Callable[..., PodpathApp],
) -> None:
    """Trace opened with both ends runs its worker after the screen's first refresh, not
    while the screen is mounted: the two shared the GIL, and the event loop went ~0.1 s
    without a frame on a big node (BENCHMARKS.md figure 5's trace stall)."""
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        screen = TraceScreen(CLIENT, "default/web:80")
        laid_out: list[bool] = []
        run = screen.action_run

        def first_laid_out() -> None:
            laid_out.append(screen.query_one("#trace-status", Static).region.height > 0)
            run()

        screen.action_run = first_laid_out  # type: ignore[method-assign]
        app.push_screen(screen)
        await pilot.pause()
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert laid_out == [True]
        assert screen.trace is not None and screen.trace.branches
