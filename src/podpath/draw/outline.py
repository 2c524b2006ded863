"""A node map as an indented tree, for a terminal: each node's IP stack, and outward from it.

The same graph the SVG draws, walked breadth-first from each node's IP stack, so a
pod sits under its veth, the veth under its bridge, the bridge under the stack, and
what leaves the node (uplink, network, tunnel to another node) under the stack too.
`podpath draw` prints it when no file is asked for; a keyboard-driven list of the
same rows is what a terminal map view can show.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from podpath.draw.model import Connection, Element, NodeMap, stack_id

# Children are listed in this order: the way out first, then bridges, then pods.
_ORDER = {
    k: i
    for i, k in enumerate(
        ("network", "vtep", "uplink", "vxlan", "device", "bridge", "veth", "pod", "netns", "stack")
    )
}


@dataclass(frozen=True)
class OutlineRow:
    """One line of the outline: its depth, the element (or group) it shows, and its text."""

    depth: int
    id: str
    text: str


def element_text(element: Element) -> str:
    """One element as one line: its kind, title, details, and interfaces."""
    named = element.kind in ("network", "vtep", "stack")  # their titles say what they are
    parts = [element.title if named else f"{element.kind} {element.title}", *element.lines]
    parts.extend(port.text for port in element.ports)
    return "  ".join(parts)


def _edge_text(connection: Connection | None) -> str:
    if connection is None or not connection.labels:
        return ""
    return "  [" + "; ".join(connection.labels) + "]"


def outline(node_map: NodeMap) -> tuple[OutlineRow, ...]:
    """Every node of the map as rows: node, IP stack, then what hangs off it, nearest first."""
    neighbours: dict[str, list[tuple[str, Connection]]] = defaultdict(list)
    for c in node_map.connections:
        neighbours[c.source].append((c.target, c))
        neighbours[c.target].append((c.source, c))
    rows: list[OutlineRow] = []
    for group in node_map.groups:
        if group.kind != "node" or group.node is None:
            continue
        rows.append(OutlineRow(0, group.id, "  ".join((f"node {group.title}", *group.lines))))
        stack = stack_id(group.node)
        if node_map.element(stack) is None:
            continue
        children = _tree(node_map, neighbours, stack, group.node)
        _emit(node_map, children, stack, None, 1, rows)
        placed = {stack} | {child for kids in children.values() for child, _c in kids}
        for element in node_map.elements:
            if element.node == group.node and element.id not in placed:
                rows.append(OutlineRow(1, element.id, element_text(element)))
    rows.extend(OutlineRow(0, "note", note) for note in node_map.notes)
    return tuple(rows)


def _tree(
    node_map: NodeMap,
    neighbours: dict[str, list[tuple[str, Connection]]],
    root: str,
    node: int,
) -> dict[str, list[tuple[str, Connection]]]:
    """Breadth-first spanning tree from the stack: each element under its nearest neighbour."""
    children: dict[str, list[tuple[str, Connection]]] = defaultdict(list)
    seen = {root}
    level = [root]
    while level:
        following = []
        for current in level:
            element = node_map.element(current)
            if element is None or (element.node is None and current != root):
                continue  # shared elements (networks) are leaves: other nodes hang off them
            found = []
            for other, connection in neighbours[current]:
                target = node_map.element(other)
                if target is None or other in seen:
                    continue
                if target.node is not None and target.node != node:
                    children[current].append((other, connection))  # another node: a leaf
                    continue
                found.append((_ORDER.get(target.kind, 99), target.title, other, connection))
            for _o, _t, other, connection in sorted(found):
                if other not in seen:
                    seen.add(other)
                    children[current].append((other, connection))
                    following.append(other)
        level = following
    return children


def _emit(
    node_map: NodeMap,
    children: dict[str, list[tuple[str, Connection]]],
    current: str,
    via: Connection | None,
    depth: int,
    rows: list[OutlineRow],
) -> None:
    element = node_map.element(current)
    assert element is not None
    if via is not None and element.node is not None and rows and depth > 1:
        parent_node = node_map.element(via.source if via.target == current else via.target)
        if parent_node is not None and parent_node.node != element.node:
            host = node_map.hostnames[element.node]
            rows.append(
                OutlineRow(
                    depth,
                    current,
                    f"{via.kind} to node {host}: {element_text(element)}{_edge_text(via)}",
                )
            )
            return
    rows.append(OutlineRow(depth, current, element_text(element) + _edge_text(via)))
    if element.node is None:
        others = sorted(
            {
                node_map.hostnames[e.node]
                for other, _c in _all_neighbours(node_map, current)
                if (e := node_map.element(other)) is not None and e.node is not None
            }
        )
        if len(others) > 1:
            # A network joins the nodes on it; a VTEP no snapshot owns is the far end of
            # several nodes' tunnels, and "joins" under it read as if it linked them.
            verb = "tunnels to it from " if element.kind == "vtep" else "joins "
            rows.append(OutlineRow(depth + 1, current, verb + ", ".join(others)))
    for child, connection in children.get(current, []):
        _emit(node_map, children, child, connection, depth + 1, rows)


def _all_neighbours(node_map: NodeMap, element: str) -> list[tuple[str, Connection]]:
    out = []
    for c in node_map.connections:
        if c.source == element:
            out.append((c.target, c))
        elif c.target == element:
            out.append((c.source, c))
    return out
