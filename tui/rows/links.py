"""Pure row builders for the Links screen: the root namespace's links as a tree."""

from __future__ import annotations

from podpath.analysis.index import SnapshotIndex
from podpath.listing import address_text
from podpath.snapshot.model import Link, LinkStats
from podpath.tui.rows.model import Cell, Row, cell, join, row
from podpath.tui.rows.pod import link_label

LINK_COLUMNS = (
    "LINK",
    "KIND",
    "MAC",
    "MTU",
    "STATE",
    # `ip -s link`'s counters, per direction: packets/bytes, errors/dropped.
    "RX PKTS/BYTES",
    "RX ERR/DROP",
    "TX PKTS/BYTES",
    "TX ERR/DROP",
    "ADDRESSES / DETAILS",
)


def counter_cells(stats: LinkStats | None) -> tuple[Cell, ...]:
    """RX and TX packets/bytes and errors/dropped; a dim dash each when not collected."""
    if stats is None:
        return (cell(None),) * 4
    out: list[Cell] = []
    for way in ("rx", "tx"):
        packets, size = getattr(stats, f"{way}_packets"), getattr(stats, f"{way}_bytes")
        errors, dropped = getattr(stats, f"{way}_errors"), getattr(stats, f"{way}_dropped")
        out.append(Cell(f"{packets}/{size}", "dim" if not packets else ""))
        out.append(Cell(f"{errors}/{dropped}", "warning" if errors or dropped else "dim"))
    return tuple(out)


def link_rows(index: SnapshotIndex) -> list[Row]:
    """The root namespace's links as a tree: bridges with their ports and pods, then the rest."""
    root = index.root_netns
    if root is None:
        return []
    out = []
    done: set[int] = set()

    def add(link_label_text: str, link: Link, indent: str, detail: str = "") -> None:
        done.add(link.ifindex)
        addrs = join(address_text(a.address, a.prefixlen, a.flags) for a in link.addresses)
        if link.vxlan is not None:
            v = link.vxlan
            addrs = join(x for x in (f"vni {v.vni} port {v.port} local {v.local}", addrs) if x)
        out.append(
            row(
                f"link:{link.ifindex}",
                Cell(indent + link_label_text, "accent" if not indent else ""),
                cell(link.kind, "dim"),
                cell(link.mac, "dim"),
                link.mtu,
                Cell(link.state, "success" if link.state in ("UP", "UNKNOWN") else "warning"),
                *counter_cells(link.stats),
                # What it is for (its pod, its remote VTEPs) first: addresses can be long.
                cell(join(x for x in (detail, addrs) if x)),
            )
        )

    bridges = [link for link in root.links if link.kind == "bridge"]
    for bridge in bridges:
        add(bridge.name, bridge, "")
        ports = index.bridge_ports(bridge)
        for i, port in enumerate(ports):
            branch = "└─ " if i == len(ports) - 1 else "├─ "
            pod = index.pods_by_netns.get(port.peer.netns) if port.peer else None
            detail = f"pod {pod.namespace}/{pod.name}" if pod else ""
            add(link_label(port), port, branch, detail)
    for link in root.links:
        if link.ifindex in done:
            continue
        fdb_remotes = sorted({f.dst for f in root.fdb if f.ifindex == link.ifindex and f.dst})
        detail = ("remotes " + join(fdb_remotes)) if fdb_remotes else ""
        add(link_label(link), link, "", detail)
    return out
