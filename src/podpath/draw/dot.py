"""A node map (and a trace path on it) as Graphviz DOT, for `dot -Tsvg` to lay out and draw.

Every string from the node goes into an HTML-like label through `label_text`: control
characters made visible (podpath.safe_text), characters XML cannot hold shown as
escapes, `&<>"` as entities, and backslashes doubled, because Graphviz expands `\\N`,
`\\G`, `\\L` and their kin even inside HTML-like labels. Ids come from the model,
which builds them from numbers and fixed words only. The picture reads from the
pods out to the network (top to bottom; left to right when big nodes lay pods out
in columns); every second node is mirrored so two nodes face each other across the
network they share.
"""

from __future__ import annotations

import html
import math
import re
from collections import defaultdict
from collections.abc import Iterable

from podpath.draw.model import Connection, Element, Group, NodeMap, safe_id
from podpath.draw.path import PathStep, TracePath, path_elements
from podpath.safe_text import visible

# Characters XML 1.0 cannot hold at all (visible() already shows C0/C1 controls).
_NOT_XML = re.compile("[\ufffe\uffff]")
FONT = "Helvetica,Arial,sans-serif"
ORIGINAL = "#c0392b"  # the packet's way there
REPLY = "#1f6fb2"  # the way back
STEP_FILL = {"original": "#fbe3e0", "reply": "#dfeaf6"}

# kind -> (shape, fill colour, style)
ELEMENT_STYLE: dict[str, tuple[str, str, str]] = {
    "pod": ("box", "#e8f1fb", "rounded,filled"),
    "netns": ("box", "#f2f2f2", "rounded,filled,dashed"),
    "veth": ("box", "#f4f4f4", "filled"),
    "bridge": ("box", "#e3f4e1", "filled"),
    "stack": ("box", "#fff6d6", "rounded,filled"),
    "vxlan": ("box", "#efe5f7", "filled"),
    "device": ("box", "#f4f4f4", "filled"),
    "uplink": ("box", "#fde9d4", "filled"),
    "network": ("ellipse", "#ffffff", "filled"),
    "vtep": ("box", "#ffffff", "dashed"),
}
GROUP_STYLE: dict[str, tuple[str, str]] = {
    "node": ("rounded", "#555555"),
    "root": ("rounded,dashed", "#999999"),
    "namespace": ("rounded,dashed", "#7a9cc6"),
}
CONNECTION_STYLE: dict[str, str] = {
    "veth-pair": "solid",
    "bridge-port": "solid",
    "bridge-stack": "solid",
    "route": "solid",
    "host-network": "dotted",
    "underlay": "dotted",
    "wire": "solid",
    "tunnel": "dashed",
}


def shown(value: object) -> str:
    """Text from a node as the picture shows it: controls and non-XML characters made visible."""
    return _NOT_XML.sub(lambda m: f"\\u{ord(m.group()):04x}", visible(value))


def label_text(value: object) -> str:
    """Text from a node, made safe to sit inside a Graphviz HTML-like label."""
    return html.escape(shown(value).replace("\\", "\\\\"), quote=True)


def _q(identifier: str) -> str:
    """A DOT id in quotes; model ids never need escaping, and anything else is refused."""
    if not safe_id(identifier):
        raise ValueError(f"unsafe id in a node map: {identifier!r}")
    return f'"{identifier}"'


def _row(text: str, *, bold: bool = False, size: int | None = None, extra: str = "") -> str:
    body = label_text(text)
    if bold:
        body = f"<B>{body}</B>"
    if size is not None:
        body = f'<FONT POINT-SIZE="{size}">{body}</FONT>'
    return f'<TR><TD ALIGN="LEFT" BALIGN="LEFT"{extra}>{body}</TD></TR>'


def _step_row(step: PathStep) -> str:
    colour = ORIGINAL if step.direction == "original" else REPLY
    body = f'<FONT COLOR="{colour}"><B>{step.number}</B>&#160;{label_text(step.text)}</FONT>'
    return (
        f'<TR><TD ALIGN="LEFT" BGCOLOR="{STEP_FILL[step.direction]}">'
        f'<FONT POINT-SIZE="9">{body}</FONT></TD></TR>'
    )


def _table(rows: Iterable[str]) -> str:
    return (
        '<<TABLE BORDER="0" CELLBORDER="0" CELLSPACING="0" CELLPADDING="1">'
        + "".join(rows)
        + "</TABLE>>"
    )


def element_label(element: Element, steps: Iterable[PathStep] = ()) -> str:
    """An element's HTML-like label: title, lines, its interfaces, then the path's steps."""
    rows = [_row(element.title, bold=True)]
    rows.extend(_row(line, size=9) for line in element.lines)
    for port in element.ports:
        rows.append(
            f'<TR><TD ALIGN="LEFT" PORT="{port.id}" BORDER="1" SIDES="T">'
            f'<FONT POINT-SIZE="9">{label_text(port.text)}</FONT></TD></TR>'
        )
    rows.extend(_step_row(s) for s in steps)
    return _table(rows)


def _attrs(**attrs: str) -> str:
    """DOT attributes; values are either HTML-like labels (<...>) or safe plain words."""
    parts = []
    for key, value in attrs.items():
        if value.startswith("<"):
            parts.append(f"{key}={value}")
        else:
            parts.append(f'{key}="{value}"')
    return "[" + ", ".join(parts) + "]"


def stagger(node_map: NodeMap) -> dict[str, int]:
    """Rank offsets that lay pods with folded veths out in columns instead of one tall one.

    A pod joined straight to its bridge is a leaf; giving its edge lengths 1..k (as
    Graphviz's own `unflatten -l` does) spreads n pods over about sqrt(n/3) columns.
    """
    leaves: dict[str, list[str]] = defaultdict(list)
    for c in node_map.connections:
        source = node_map.element(c.source)
        if source is not None and source.kind == "pod" and c.kind in ("bridge-port", "route"):
            leaves[c.target].append(c.id)
    out: dict[str, int] = {}
    for ids in leaves.values():
        columns = max(1, round(math.sqrt(len(ids) / 3)))
        for n, cid in enumerate(ids):
            out[cid] = 1 + n % columns
    return out


class _Writer:
    def __init__(self, node_map: NodeMap, path: TracePath | None, title: str | None) -> None:
        self.map = node_map
        self.path = path
        self.title = title
        self.steps = path_elements(path) if path else {}
        self.minlen = stagger(node_map)
        # Top to bottom reads like the textbook picture (pods above, the wire below);
        # pods laid out in columns need left to right, or namespaces line up side by side.
        self.direction = "LR" if self.minlen else "TB"
        self.lines: list[str] = []

    def mirrored(self, connection: Connection) -> bool:
        """Odd-numbered nodes face the even ones: their connections are drawn reversed."""
        for end in (connection.source, connection.target):
            element = self.map.element(end)
            if element is not None and element.node is not None:
                return element.node % 2 == 1
        return False

    def element(self, element: Element, indent: str) -> None:
        shape, fill, style = ELEMENT_STYLE.get(element.kind, ("box", "#ffffff", "filled"))
        steps = self.steps.get(element.id, [])
        attrs = {
            "id": element.id,
            "class": f"element {element.kind}" + (" on-path" if steps else ""),
            "shape": shape,
            "style": style,
            "fillcolor": fill,
            "label": element_label(element, steps),
        }
        if steps:
            attrs["color"] = ORIGINAL if steps[0].direction == "original" else REPLY
            attrs["penwidth"] = "2.5"
        self.lines.append(f"{indent}{_q(element.id)} {_attrs(**attrs)};")

    def group(self, group: Group, children: dict[str | None, list[Group]], indent: str) -> None:
        style, colour = GROUP_STYLE.get(group.kind, ("rounded", "#999999"))
        rows = [_row(group.title, bold=True)]
        rows.extend(_row(line, size=9) for line in group.lines)
        self.lines.append(f"{indent}subgraph {_q('cluster_' + group.id)} {{")
        inner = indent + "  "
        self.lines.append(f'{inner}id="{group.id}"; class="group {group.kind}";')
        self.lines.append(f'{inner}style="{style}"; color="{colour}"; label={_table(rows)};')
        for sub in children.get(group.id, []):
            self.group(sub, children, inner)
        for element in self.map.elements:
            if element.group == group.id:
                self.element(element, inner)
        self.lines.append(f"{indent}}}")

    def connection(
        self, connection: Connection, used: dict[str, list[tuple[int, str, bool]]]
    ) -> None:
        source, target = connection.source, connection.target
        flipped = self.mirrored(connection)
        src_port = ""
        if connection.source_port and not flipped:
            # From the pod's interface row, the last of its box: on the side facing its
            # node. A mirrored node faces the other way: the line meets the box's edge.
            side = "s" if self.direction == "TB" else "e"
            src_port = f":{_q(connection.source_port)}:{side}"
        tail, head = f"{_q(source)}{src_port}", _q(target)
        if flipped:
            tail, head = head, tail
        labels = [_row(text, size=8) for text in connection.labels]
        attrs = {
            "id": connection.id,
            "class": f"connection {connection.kind}",
            "dir": "none",
            "style": CONNECTION_STYLE.get(connection.kind, "solid"),
        }
        crossings = used.get(connection.id, [])
        if crossings:
            # Arrows point the way the packet went, in the drawn (possibly mirrored) direction.
            forward = any(f != flipped for _n, _d, f in crossings)
            backward = any(f == flipped for _n, _d, f in crossings)
            directions = {d for _n, d, _f in crossings}
            attrs["class"] += " on-path"
            attrs["dir"] = "both" if forward and backward else ("forward" if forward else "back")
            attrs["color"] = ":".join(
                c for d, c in (("original", ORIGINAL), ("reply", REPLY)) if d in directions
            )
            attrs["penwidth"] = "2.5"
            numbers = ", ".join(str(n) for n, _d, _f in crossings)
            labels.append(
                f'<TR><TD><FONT POINT-SIZE="9" COLOR="{attrs["color"].split(":")[0]}"><B>{numbers}</B></FONT></TD></TR>'
            )
        if connection.kind == "tunnel":
            attrs["constraint"] = "false"
        if self.minlen.get(connection.id, 1) > 1:
            attrs["minlen"] = str(self.minlen[connection.id])
        if labels:
            attrs["label"] = _table(labels)
        self.lines.append(f"  {tail} -> {head} {_attrs(**attrs)};")

    def write(self) -> str:
        self.lines = [
            "digraph podpath {",
            f'  graph [rankdir="{self.direction}", newrank="true", nodesep="0.15", ranksep="0.35", fontname="{FONT}", fontsize="11"];',
            f'  node [fontname="{FONT}", fontsize="11", margin="0.08,0.04"];',
            f'  edge [fontname="{FONT}", fontsize="9", color="#666666", arrowsize="0.7"];',
        ]
        heading = [self.title] if self.title else []
        if self.path is not None:
            heading.append(
                f"branch {self.path.branch}: {self.path.verdict.upper()}: {self.path.reason}"
            )
            heading.extend(f"not on the map: {text}" for text in self.path.unplaced)
        heading.extend(self.map.notes)
        if heading:
            rows = [_row(heading[0], bold=True)] + [_row(h, size=9) for h in heading[1:]]
            self.lines.append(f'  labelloc="t"; labeljust="l"; label={_table(rows)};')
        children: dict[str | None, list[Group]] = defaultdict(list)
        for group in self.map.groups:
            children[group.parent].append(group)
        for group in children.get(None, []):
            self.group(group, children, "  ")
        for element in self.map.elements:
            if element.group is None:
                self.element(element, "  ")
        used: dict[str, list[tuple[int, str, bool]]] = defaultdict(list)
        loose = []
        if self.path is not None:
            for seg in self.path.segments:
                if seg.connection is None:
                    loose.append(seg)
                    continue
                drawn = next(c for c in self.map.connections if c.id == seg.connection)
                used[seg.connection].append((seg.number, seg.direction, seg.source == drawn.source))
        for connection in self.map.connections:
            self.connection(connection, used)
        for seg in loose:
            colour = ORIGINAL if seg.direction == "original" else REPLY
            attrs = {
                "id": f"jump.{seg.number}",
                "class": "jump on-path",
                "style": "dashed",
                "color": colour,
                "penwidth": "2",
                "constraint": "false",
                "label": _table(
                    [
                        f'<TR><TD><FONT POINT-SIZE="9" COLOR="{colour}"><B>{seg.number}</B></FONT></TD></TR>'
                    ]
                ),
            }
            self.lines.append(f"  {_q(seg.source)} -> {_q(seg.target)} {_attrs(**attrs)};")
        self.lines.append("}")
        return "\n".join(self.lines) + "\n"


def to_dot(node_map: NodeMap, path: TracePath | None = None, title: str | None = None) -> str:
    """The map as DOT text; with a path, its elements and connections drawn in colour, numbered."""
    return _Writer(node_map, path, title).write()
