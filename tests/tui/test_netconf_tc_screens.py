"""`:netconf` and `:tc`: the sysctls and traffic control of `podpath ls netconf|tc`, in the TUI."""

from __future__ import annotations

from netconf_tc_snapshot import with_tc_and_netconf
from textual.pilot import Pilot

from podpath.snapshot.model import Snapshot
from podpath.tui import registry
from podpath.tui.app import PodpathApp, create_app
from podpath.tui.screens.netconf import NetconfScreen
from podpath.tui.screens.pod import PodScreen
from podpath.tui.screens.tc import TcScreen
from podpath.tui.source import static_source
from podpath.tui.tour import press_and_settle

SIZE = (120, 36)


def _app(snap: Snapshot) -> PodpathApp:
    return create_app(static_source(snap, "snapshot", "tc.json"))


async def _open(pilot: Pilot[None], name: str) -> None:
    await press_and_settle(pilot, ("colon", *name, "enter"))


async def test_tc_view_lists_the_program_and_enter_opens_the_pod(fixed_snapshot: Snapshot) -> None:
    """:tc shows the qdisc and the filter with its program; enter on it opens the pod's screen."""
    snap, pod_ref = with_tc_and_netconf(fixed_snapshot)
    app = _app(snap)
    async with app.run_test(size=SIZE) as pilot:
        assert app.loaded is not None
        view = registry.find("tc")
        assert view is not None and registry.count_text(view, app.loaded) == "1 filter"
        await _open(pilot, "tc")
        screen = app.screen
        assert isinstance(screen, TcScreen)
        rows = [screen.table.row_texts(i) for i in range(screen.table.row_count)]
        assert [r[0].strip() for r in rows] == [pod_ref, pod_ref]
        assert "cil_from_contai[42] tag 1a2b3c4d5e6f7a8b" in rows[1][-1]
        screen.table.move_cursor(row=1)
        await press_and_settle(pilot, ("enter",))
        assert isinstance(app.screen, PodScreen)


async def test_netconf_view_shows_the_effective_rp_filter(fixed_snapshot: Snapshot) -> None:
    """:netconf (or :sysctl) lists all and the interface; the interface's effective rp_filter is
    max(all, dev) = 2 (loose)."""
    snap, pod_ref = with_tc_and_netconf(fixed_snapshot)
    app = _app(snap)
    async with app.run_test(size=SIZE) as pilot:
        await _open(pilot, "sysctl")
        screen = app.screen
        assert isinstance(screen, NetconfScreen)
        rows = [screen.table.row_texts(i) for i in range(screen.table.row_count)]
        assert [(r[0].strip(), r[2].strip()) for r in rows] == [(pod_ref, "all"), (pod_ref, "eth0")]
        assert rows[1][-3].strip() == "2 (loose)"  # EFF-RPF, before EFF-PROXY and FORCE_FWD
