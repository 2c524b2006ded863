"""The trace screen beside what the kernel holds: whose rule each netfilter hop took, and
the live conntrack entries of the traced flow next to the predicted branch."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable

import pytest
from sidecar_snapshot import SIDECAR_SAID, with_sidecar_rules
from trace_pilot import traced

from podpath.conntrack import ConntrackEntry
from podpath.snapshot.model import Snapshot
from podpath.trace.model import Trace
from podpath.trace.observed import flow_entries
from podpath.tui.app import PodpathApp, create_app
from podpath.tui.rows.trace import conntrack_label, flow_text
from podpath.tui.screens import trace as trace_screen
from podpath.tui.source import live_source
from podpath.tui.widgets.table import RowTable

SIZE = (160, 48)
CLIENT = "default/client-6f9b8d7c4-qp2ld"


async def test_hops_name_the_rules_owner_and_the_flow_is_shown_from_conntrack(
    make_app: Callable[..., PodpathApp], fixed_snapshot: Snapshot
) -> None:
    """client -> default/web:80: KUBE-SEP hops are the Service's; conntrack holds 3 entries."""
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        screen, result = await traced(pilot, CLIENT, "default/web:80")
        hops = screen.query_one("#hops", RowTable)
        rows = [hops.row_texts(i) for i in range(hops.row_count)]
        # #, KIND, NODE, RULE OF, WHAT HAPPENS
        sep = next(r for r in rows if r[1] == "netfilter" and "KUBE-SEP-" in r[4])
        assert sep[3] == "Service default/web:http"  # kube-proxy's: said in the detail
        assert all(r[3] == "" for r in rows if r[1] in ("route", "link", "bridge"))
        hops.move_cursor(row=rows.index(sep))
        await pilot.pause()
        detail = str(screen.query_one("#hop-detail").render())
        assert "rule of Service default/web:http (kube-proxy)" in detail
        assert "iptables-nft" in detail
        flow = str(screen.query_one("#flow").render())
        # A saved snapshot's table is the snapshot's, at its time, not "now".
        label = conntrack_label(False, fixed_snapshot.taken_at)
        assert label.startswith("conntrack in the snapshot (20") and label.endswith(" UTC)")
        assert flow.startswith(f"{label}, 3 entries: ESTABLISHED 10.244.0.8:51544 → ")
        assert "reply from 10.244.1.5:80 (DNAT to 10.244.1.5:80" in flow
        # The branch under the cursor is marked where the kernel chose its endpoint.
        branch = screen.selected_branch()
        assert branch is not None
        loaded = app.loaded
        assert loaded is not None
        entries = flow_entries(result, loaded.parsed.conntrack())
        assert flow == flow_text(entries, branch, label)
        assert screen.flows == tuple(entries)  # found by the trace's worker
        marked = [b for b in result.branches if "= this branch" in flow_text(entries, b, label)]
        assert 1 <= len(marked) < len(result.branches)


async def test_a_flow_the_kernel_has_not_seen_says_so(
    make_app: Callable[..., PodpathApp], fixed_snapshot: Snapshot
) -> None:
    """client -> kube-dns over tcp: no entry; the line says the prediction is alone."""
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await traced(pilot, CLIENT, "kube-system/kube-dns:53")
        flow = str(app.screen.query_one("#flow").render())
        label = conntrack_label(False, fixed_snapshot.taken_at)
        assert flow == f"{label}: no entry of this flow (the kernel had not seen it)"


async def test_a_live_node_shows_its_conntrack_now(fixed_snapshot: Snapshot) -> None:
    """On a source that collects (a live node), the flow line says "conntrack now"."""
    app = create_app(live_source(lambda cancel, previous, progress: fixed_snapshot, "/"))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await app.workers.wait_for_complete()
        await pilot.pause()
        await traced(pilot, CLIENT, "kube-system/kube-dns:53")
        flow = str(app.screen.query_one("#flow").render())
        assert flow == "conntrack now: no entry of this flow (the kernel has not seen it)"


async def test_the_flow_is_found_once_per_trace(
    make_app: Callable[..., PodpathApp], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The traced flow's entries are looked up once, by the trace's worker, however often
    a branch is picked (a pass over every entry: ~12 ms of the event loop at 50k)."""
    calls: list[str] = []

    def counted(trace: Trace, entries: Iterable[ConntrackEntry]) -> list[ConntrackEntry]:
        calls.append(threading.current_thread().name)
        return flow_entries(trace, entries)

    monkeypatch.setattr(trace_screen, "flow_entries", counted)
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        screen, result = await traced(pilot, CLIENT, "default/web:80")
        assert len(result.branches) > 1
        for number in range(1, len(result.branches) + 1):
            screen.action_branch(number)
            await pilot.pause()
    assert len(calls) == 1 and calls[0] != threading.main_thread().name, calls


async def test_an_uncertain_path_says_why_whole_under_its_hops(
    make_app: Callable[..., PodpathApp], fixed_snapshot: Snapshot
) -> None:
    """The client's namespace has a sidecar's nat rules: every branch is uncertain, and
    its row shows the reason cut to the screen's width; the hop's detail below ends with
    the whole reason, whichever hop is selected."""
    client = next(p for p in fixed_snapshot.pods if f"{p.namespace}/{p.name}" == CLIENT)
    app = make_app(with_sidecar_rules(fixed_snapshot, client))
    async with app.run_test(size=SIZE) as pilot:
        screen, result = await traced(pilot, CLIENT, "default/web:80")
        assert result.branches and all(b.verdict == "uncertain" for b in result.branches)
        hops = screen.query_one("#hops", RowTable)
        for row in (0, hops.row_count - 1):
            hops.move_cursor(row=row)
            await pilot.pause()
            detail = str(screen.query_one("#hop-detail").render()).replace("\n", " ")
            assert detail.endswith(
                f"uncertain: pod {CLIENT}'s own network namespace has netfilter rules at OUTPUT "
                f"({SIDECAR_SAID}): podpath reads only the node's rules, so where they send the "
                "packet is not known"
            ), detail
