"""Pure row builders for the Map screen: the node map's outline as a foldable tree.

The rows come from podpath.draw (the model `podpath draw` turns into SVG) through
its outline: each node's IP stack, and outward from it bridges, veths, pods, the
overlay and the uplink. A trace's branch can be laid on it: each box the packet
passes is marked with the numbers of its steps, in order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from podpath.draw.model import NodeMap
from podpath.draw.outline import OutlineRow
from podpath.draw.path import TracePath
from podpath.tui.rows.model import MAX_ROWS, Cell, Page, Row

MAP_COLUMNS = ("MAP",)
# With a trace laid on the map, its step numbers come first: the order reads down the left.
PATH_COLUMNS = ("STEPS (↩ REPLY)", "MAP", "ON THE PATH")
# A box with more lines right under it than this starts folded (250 pods on one bridge).
FOLD_ABOVE = 24


@dataclass(frozen=True)
class MapLine:
    """One outline row with what the screen needs: its key, parent, and the pod it shows."""

    key: str
    depth: int
    element: str
    text: str
    parent: int | None  # index of the line it hangs under
    below: int  # how many lines hang under it, at any depth
    children: int  # how many lines hang right under it
    pod: str | None = None  # namespace/name, when the line is a pod
    netns: int | None = None
    node: int | None = None  # which loaded snapshot it is on (0: the one the app shows)
    guide: str = ""  # the tree's lines before it: "│  ├─ "


def map_lines(node_map: NodeMap, rows: Sequence[OutlineRow]) -> tuple[MapLine, ...]:
    """The outline's rows with stable keys (element id and occurrence) and their tree shape."""
    seen: dict[str, int] = {}
    parents: list[int | None] = []
    stack: list[int] = []
    for i, r in enumerate(rows):
        while stack and rows[stack[-1]].depth >= r.depth:
            stack.pop()
        parents.append(stack[-1] if stack else None)
        stack.append(i)
    below = [0] * len(rows)
    children = [0] * len(rows)
    for i in range(len(rows)):
        parent = parents[i]
        if parent is not None:
            children[parent] += 1
        while parent is not None:
            below[parent] += 1
            parent = parents[parent]
    last = [True] * len(rows)
    for i in range(len(rows)):
        for j in range(i + 1, len(rows)):
            if rows[j].depth < rows[i].depth:
                break
            if parents[j] == parents[i]:
                last[i] = False
                break
    out = []
    for i, r in enumerate(rows):
        n = seen.get(r.id, 0)
        seen[r.id] = n + 1
        element = node_map.element(r.id)
        pod = element.pod if element is not None else None
        netns = element.netns if element is not None else None
        node = element.node if element is not None else None
        key = f"{r.id}#{n}"
        line = MapLine(key, r.depth, r.id, r.text, parents[i], below[i], children[i], pod, netns)
        out.append(replace(line, node=node, guide=_guide(parents, last, i)))
    return tuple(out)


def _guide(parents: Sequence[int | None], last: Sequence[bool], i: int) -> str:
    """`tree`'s lines before row i: a bar for each ancestor with more below, then its branch."""
    parent = parents[i]
    if parent is None:
        return ""
    bars = []
    ancestor = parent
    while parents[ancestor] is not None:
        bars.append("   " if last[ancestor] else "│  ")
        ancestor = parents[ancestor]  # type: ignore[assignment]
    return "".join(reversed(bars)) + ("└─ " if last[i] else "├─ ")


def initially_folded(lines: Sequence[MapLine]) -> set[str]:
    """Keys of the lines that start folded: those with very many lines right under them."""
    return {line.key for line in lines if line.children > FOLD_ABOVE}


def _steps_cell(steps: list[tuple[int, str, str]]) -> tuple[Cell, Cell]:
    if not steps:
        return Cell(""), Cell("")
    numbers = " ".join(f"↩{n}" if direction == "reply" else str(n) for n, direction, _ in steps)
    texts = "; ".join(f"{n} {text}" for n, _d, text in steps)
    return Cell(numbers, "warning"), Cell(texts)


def map_row(line: MapLine, folded: bool, path: TracePath | None) -> Row:
    """One line as a row: indented text, and the trace's steps on it."""
    text = line.guide + ("▸ " if folded else "") + line.text
    if folded:
        text += f"  (+{line.below} below, enter unfolds)"
    role = "accent" if line.depth == 0 else "primary" if line.pod else ""
    if path is None:
        return Row(line.key, (Cell(text, role),))
    steps = [(s.number, s.direction, s.text) for s in path.steps if s.element == line.element]
    passed = bool(steps) or any(line.element in (s.source, s.target) for s in path.segments)
    if not passed:
        role = "dim"
    elif not steps:
        role = "success"  # the packet passes through without a decision here
    numbers, texts = _steps_cell(steps)
    return Row(line.key, (numbers, Cell(text, role if not steps else "warning"), texts))


def map_page(
    lines: Sequence[MapLine],
    haystacks: Sequence[str],
    needle: str,
    folded: set[str],
    path: TracePath | None,
) -> Page:
    """The lines to show: unfolded ones, or those matching `needle` with every line above them."""
    needle = needle.lower()
    if needle:
        hits = [i for i, hay in enumerate(haystacks) if needle in hay]
        keep: set[int] = set()
        for i in hits:
            j: int | None = i
            while j is not None and j not in keep:
                keep.add(j)
                j = lines[j].parent
        shown = [map_row(lines[i], False, path) for i in sorted(keep)]
        return Page(tuple(shown[:MAX_ROWS]), len(lines), len(hits))
    shown = []
    hidden_under: int | None = None
    for i, line in enumerate(lines):
        if hidden_under is not None and _under(lines, i, hidden_under):
            continue
        hidden_under = None
        is_folded = line.key in folded and line.below > 0
        shown.append(map_row(line, is_folded, path))
        if is_folded:
            hidden_under = i
    return Page(tuple(shown[:MAX_ROWS]), len(lines), len(shown))


def _under(lines: Sequence[MapLine], i: int, ancestor: int) -> bool:
    parent = lines[i].parent
    while parent is not None:
        if parent == ancestor:
            return True
        parent = lines[parent].parent
    return False
