"""The node map as a tree (`:map`), and a trace's branch laid on it (`m` in Trace)."""

from __future__ import annotations

from typing import ClassVar

from textual.binding import Binding, BindingType
from textual.widgets import Static

from podpath.draw.build import MapFilter, build_map
from podpath.draw.outline import outline
from podpath.draw.path import TracePath
from podpath.snapshot.model import Pod
from podpath.tui.rows.map import (
    MAP_COLUMNS,
    PATH_COLUMNS,
    MapLine,
    initially_folded,
    map_lines,
    map_page,
    map_row,
)
from podpath.tui.rows.model import Page, Row
from podpath.tui.rows.pod import pods_by_key
from podpath.tui.screens.base import TableScreen, enter_binding
from podpath.tui.screens.pod import PodScreen
from podpath.tui.state import Loaded
from podpath.tui.text import literal_content


class MapScreen(TableScreen):
    """Pods, veths, bridges, overlay and uplinks, nearest the IP stack first; enter opens a pod."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("t", "app.pod_trace", "Trace"),
        Binding("z", "fold_all", "Fold/unfold all"),
        enter_binding("Open a pod or fold a box"),
    ]
    HEADING = "Node map"
    GAP_WORDS = ("netns", "link", "netlink", "route", "pod")
    COLUMNS = MAP_COLUMNS

    def __init__(
        self,
        needle: str = "",
        path: TracePath | None = None,
        title: str = "",
        wanted: MapFilter | None = None,
    ) -> None:
        super().__init__(needle)
        self.path = path
        self.wanted = wanted  # which pods to draw (a trace on a big node: those it passes)
        self.title_text = title
        self._lines: tuple[MapLine, ...] = ()
        self._haystacks: tuple[str, ...] = ()
        self._folded: set[str] | None = None

    def heading(self) -> str:
        """The map, or the traced branch on it."""
        if self.path is None:
            return self.HEADING
        p = self.path
        return f"branch {p.branch} ({p.verdict}) of {self.title_text}"

    def columns(self) -> tuple[str, ...]:
        """Only the map, unless a trace is laid on it."""
        return PATH_COLUMNS if self.path is not None else MAP_COLUMNS

    def build_rows(self, loaded: Loaded) -> list[Row]:
        """The outline of every loaded node (this one first), folded where it is long."""
        node_map = build_map([loaded.snapshot, *loaded.peers], self.wanted)
        self._lines = map_lines(node_map, outline(node_map))
        self._haystacks = tuple(map_row(line, False, self.path).haystack for line in self._lines)
        if self._folded is None:
            # Folded where a box has very many lines under it, unless a trace runs through.
            self._folded = set() if self.path is not None else initially_folded(self._lines)
        return []

    def shown_page(self) -> Page:
        """The unfolded lines, or the matching ones with the lines above them."""
        folded = self._folded or set()
        return map_page(self._lines, self._haystacks, self.needle, folded, self.path)

    def show_title(self, shown: Page) -> None:
        """As every list, but in lines, counting those shown when some are folded."""
        super().show_title(shown)
        if self.needle:
            return
        if shown.matched < shown.total:
            text = f"{shown.matched:,} of {shown.total:,} lines (z unfolds all)"
        else:
            text = f"{shown.total:,} line{'' if shown.total == 1 else 's'}"
        self.query_one("#count", Static).update(literal_content(text))

    def repaint_rows(self) -> Page:
        """As every list; with a filter, the cursor on a matching line, not the lines above it."""
        shown = super().repaint_rows()
        needle = self.needle.lower()
        if not needle:
            return shown
        at = self.table.selected_key
        matching = [r.key for r in shown.rows if needle in r.haystack]
        if matching and at not in matching:
            # `/name` enter enter must open the pod found, not the node line above it.
            self.table.move_to_key(matching[0])
        return shown

    def _line(self, key: str) -> MapLine | None:
        return next((line for line in self._lines if line.key == key), None)

    def selected_pod(self) -> Pod | None:
        """The pod under the cursor (for t), on whichever loaded node it is."""
        loaded, key = self.loaded, self.table.selected_key
        line = self._line(key) if key is not None else None
        if loaded is None or line is None or line.pod is None:
            return None
        return self._pod_key(loaded.node(line.node or 0), line)[1]

    @staticmethod
    def _pod_key(loaded: Loaded, line: MapLine) -> tuple[str, Pod] | tuple[None, None]:
        for key, pod in pods_by_key(loaded.index).items():
            if f"{pod.namespace}/{pod.name}" == line.pod and pod.netns_inode == line.netns:
                return key, pod
        return None, None

    def open_row(self, key: str, loaded: Loaded) -> None:
        """Enter: a pod opens its screen (another node's too); a line with lines under it folds."""
        line = self._line(key)
        if line is None:
            return
        if line.pod is not None:
            node = line.node or 0
            pod_key, _pod = self._pod_key(loaded.node(node), line)
            if pod_key is not None:
                self.app.push_screen(PodScreen(pod_key, node))
                return
        if line.below and not self.needle:
            folded = self._folded if self._folded is not None else set()
            folded.symmetric_difference_update({key})
            self._folded = folded
            self.repaint_rows()

    def action_fold_all(self) -> None:
        """z: unfold everything; again, fold the long boxes (or every box under the stack)."""
        if self._folded:
            self._folded = set()
        else:
            long_ones = initially_folded(self._lines)
            self._folded = long_ones or {x.key for x in self._lines if x.below and x.depth > 1}
        self.repaint_rows()
