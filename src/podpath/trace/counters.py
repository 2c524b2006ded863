"""Interface counters (`ip -s link`) on the trace hops where the packet crosses a device.

A `link` hop sends on one end of a veth (its TX counters) and receives on the other (RX);
a `leave` hop sends on the node's device. The counters are the snapshot's: they say how
much the device had carried when it was taken, not what this packet did.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace

from podpath.analysis.index import SnapshotIndex
from podpath.snapshot.model import LinkStats
from podpath.trace.model import Branch, Hop, JsonValue


def describe_counters(name: str, way: str, stats: LinkStats) -> str:
    """One direction of a device's counters, e.g. `veth1 rx 35 pkts 2860 bytes, 0 errors, 0 dropped`."""
    packets, size, errors, dropped = (
        getattr(stats, f"{way}_{field}") for field in ("packets", "bytes", "errors", "dropped")
    )
    return f"{name} {way} {packets} pkts {size} bytes, {errors} errors, {dropped} dropped"


def _crossed(hop: Hop) -> list[tuple[object, object, str]]:
    """(netns, device name, rx|tx) of each device the hop crosses."""
    d = hop.data
    if hop.kind == "link":
        return [(d.get("from_netns"), d.get("from"), "tx"), (d.get("to_netns"), d.get("to"), "rx")]
    if hop.kind == "leave":
        return [(d.get("netns"), d.get("dev"), "tx")]
    return []


def _with_counters(hop: Hop, index: SnapshotIndex | None) -> Hop:
    if index is None:
        return hop
    lines: list[str] = []
    data: dict[str, JsonValue] = {}
    for netns, name, way in _crossed(hop):
        if not isinstance(netns, int) or not isinstance(name, str):
            continue
        link = index.link_by_name(netns, name)
        if link is None or link.stats is None:
            continue
        lines.append(describe_counters(name, way, link.stats))
        data[name] = {
            "direction": way,
            **{
                f: getattr(link.stats, f"{way}_{f}")
                for f in ("packets", "bytes", "errors", "dropped")
            },
        }
    if not lines:
        return hop
    detail = "counters at snapshot time: " + "; ".join(lines)
    return replace(hop, details=(*hop.details, detail), data={**hop.data, "counters": data})


def with_counters(branch: Branch, indexes: Sequence[SnapshotIndex]) -> Branch:
    """The branch (and its replies) with each crossed device's counters on its hop."""
    by_host: Mapping[str, SnapshotIndex] = {ix.snapshot.node.hostname: ix for ix in indexes}
    hops = tuple(_with_counters(h, by_host.get(h.node)) for h in branch.hops)
    replies = tuple(with_counters(r, indexes) for r in branch.reply)
    return replace(branch, hops=hops, reply=replies)
