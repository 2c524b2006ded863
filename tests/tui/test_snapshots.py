"""SVG snapshots of the main screens on the fixed snapshot (Textual pinned, keys from the tour).

Update only after looking at the SVGs: `pytest tests/tui/test_snapshots.py --snapshot-update`,
then open tests/tui/__snapshots__/ (rsvg-convert FILE.svg -o FILE.png to view).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from test_rows import _cri_pod
from textual.pilot import Pilot

from podpath.analysis.index import SnapshotIndex
from podpath.tui.app import PodpathApp
from podpath.tui.tour import SHOTS, press_and_settle

SIZE = (120, 36)
MAIN = (
    "node",
    "pods",
    "pod-containers",
    "pod-interfaces",
    "pod-routes",
    "pod-rules",
    "pod-neighbours",
    "pod-nat",
    "pod-conntrack",
    "services",
    "service",
    "netfilter-chains",
    "netfilter-rules",
    "trace",
    "trace-and",
    "trace-reply",
    "trace-map-view",
    "map-view",
    "namespaces",
    "routes",
    "netconf",
    "tc",
    "problems",
    "help",
)


@pytest.mark.parametrize("name", MAIN)
def test_screen_looks_as_approved(
    name: str, snap_compare: Callable[..., bool], make_app: Callable[..., PodpathApp]
) -> None:
    """The screen reached by the tour's keys renders exactly as the approved SVG."""

    async def keys(pilot: Pilot[None]) -> None:
        await press_and_settle(pilot, SHOTS[name])

    assert snap_compare(make_app(), run_before=keys, terminal_size=SIZE)


def test_pod_containers_with_runtime_facts_look_as_approved(
    snap_compare: Callable[..., bool],
    make_app: Callable[..., PodpathApp],
    index: SnapshotIndex,
) -> None:
    """The containers tab with containerd's facts: a restarted container, an OOM-killed one."""
    cri = _cri_pod(index, "default/web-7d4b9c6f5d-m9q4z")  # the pod the tour opens

    async def keys(pilot: Pilot[None]) -> None:
        await press_and_settle(pilot, SHOTS["pod-containers"])

    assert snap_compare(make_app(cri.snapshot), run_before=keys, terminal_size=(160, 36))


def test_trace_at_80x24_looks_as_approved(
    snap_compare: Callable[..., bool], make_app: Callable[..., PodpathApp]
) -> None:
    """The trace on the classic 80x24 terminal: branches, hops and the detail all on screen."""

    async def keys(pilot: Pilot[None]) -> None:
        await press_and_settle(pilot, SHOTS["trace"])

    assert snap_compare(make_app(), run_before=keys, terminal_size=(80, 24))
