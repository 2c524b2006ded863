"""`podpath ls services` and the TUI's Services screens show one affinity, from podpath.analysis."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from podpath.analysis.affinity import affinity_pins, affinity_text
from podpath.analysis.index import SnapshotIndex
from podpath.listing import services as list_services
from podpath.snapshot.codec import load_path
from podpath.snapshot.model import RecentEntry, RecentList
from podpath.tui.rows.services import service_fact_rows, service_rows

DEMO = Path(__file__).resolve().parents[2] / "src" / "podpath" / "data" / "demo-snapshot.json"


def test_the_cli_and_the_tui_word_a_services_pins_alike() -> None:
    """Two clients in web-sticky's xt_recent list: both front ends say `ClientIP 10800s, 2 pinned`."""
    demo = load_path(str(DEMO))
    sticky = next(s for s in SnapshotIndex(demo).services if s.name == "web-sticky")
    chain = sticky.endpoints[0].sep_chain
    entries = tuple(RecentEntry(c, 1, 5.0) for c in ("10.244.0.8", "10.244.0.9"))
    index = SnapshotIndex(replace(demo, xt_recent=(RecentList(chain, entries),)))
    sticky = next(s for s in index.services if s.name == "web-sticky")
    assert [p.client for p in affinity_pins(index, sticky)] == ["10.244.0.8", "10.244.0.9"]
    assert service_rows(index, [sticky])[0].cells[4].text == "ClientIP 10800s, 2 pinned"
    facts = {r.cells[0].text: r.cells[1].text for r in service_fact_rows(index, sticky)}
    assert facts["affinity"] == "ClientIP 10800s, 2 pinned"
    listing = list_services(index)
    (listed,) = [r for r in listing.rows if r["name"] == "web-sticky"]
    (column,) = [c for c in listing.columns if c.header == "AFFINITY"]
    assert column.cell(listed) == "ClientIP 10800s, 2 pinned"
    assert [p["client"] for p in listed["pins"]] == ["10.244.0.8", "10.244.0.9"]


def test_affinity_wording_without_pins_or_affinity() -> None:
    """No pins: just the timeout; no affinity: nothing."""
    assert affinity_text(10800, 0) == "ClientIP 10800s"
    assert affinity_text(None, 3) == ""
