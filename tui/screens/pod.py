"""One pod: containers and namespaces, interfaces, routes, neighbours/FDB, NAT, conntrack."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.content import Content
from textual.widgets import Header, Static, TabbedContent, TabPane
from textual.worker import Worker

from podpath.snapshot.model import Pod
from podpath.tui.rows import nat as pn
from podpath.tui.rows import pod as pr
from podpath.tui.rows.conntrack import CONNTRACK_COLUMNS, conntrack_rows
from podpath.tui.rows.model import Cell, Row, page
from podpath.tui.rows.pod import find_pod
from podpath.tui.screens.base import BaseScreen, pending_text
from podpath.tui.state import CONNTRACK, MENTIONS, SERVICES, Loaded
from podpath.tui.text import clean, literal_content
from podpath.tui.weak_work import weakly
from podpath.tui.widgets.footer import KeysFooter
from podpath.tui.widgets.table import RowTable

Builder = Callable[[Loaded, Pod], list[Row]]

# Tables whose rows need the parsed Services, conntrack or the rule mentions: on a big
# snapshot each waits for that stage of the app's prepare worker instead of parsing on
# the event loop.
NEEDS_VIEWS: dict[str, tuple[str, ...]] = {
    "nat": (SERVICES,),
    "conntrack": (SERVICES, CONNTRACK),
    "natrules": (MENTIONS,),
    "masq": (SERVICES,),
}

# (tab id, label, columns, row builder)
TABS: tuple[tuple[str, str, Callable[[Pod], tuple[str, ...]], Builder], ...] = (
    (
        "containers",
        "Containers",
        lambda p: pr.CONTAINER_COLUMNS,
        lambda ld, p: pr.container_rows(ld.index, p),
    ),
    (
        "interfaces",
        "Interfaces",
        lambda p: pr.INTERFACE_COLUMNS,
        lambda ld, p: pr.interface_rows(ld.index, p),
    ),
    ("routes", "Routes", lambda p: pr.ROUTE_COLUMNS, lambda ld, p: pr.route_rows(ld.index, p)),
    ("rules", "Rules", lambda p: pr.RULE_COLUMNS, lambda ld, p: pr.rule_rows(ld.index, p)),
    (
        "neigh",
        "Neighbours/FDB",
        lambda p: pr.NEIGHBOUR_COLUMNS,
        lambda ld, p: pr.neighbour_rows(ld.index, p),
    ),
    ("nat", "NAT", lambda p: pr.NAT_COLUMNS, lambda ld, p: pr.nat_rows(ld.parsed.services(), p)),
    (
        "conntrack",
        "Conntrack",
        lambda p: CONNTRACK_COLUMNS,
        lambda ld, p: conntrack_rows(ld.parsed.conntrack(), ld.parsed.services(), frozenset(p.ips)),
    ),
)


class PodTabs(TabbedContent):
    """Tabs whose active tab only the keys and clicks on the tabs choose.

    Textual's TabbedContent also switches to a pane when something in it is focused
    (TabPane.Focused). Focus arrives later than the keys: in a burst of `h h h h h`
    each key's focus message came back after the next keys and switched to an older
    tab, so the burst moved one tab and left `l`/`]` working on a hidden table. The
    screen focuses the active tab's table itself; a focus message changes nothing.
    """

    def _on_tab_pane_focused(self, event: TabPane.Focused) -> None:
        event.stop()
        event.prevent_default()  # the base class's handler would switch tabs


class PodScreen(BaseScreen):
    """Everything that decides where one pod's packets go, in tabs."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "back", "Back"),
        Binding("s", "node_action('pod_shell')", "Shell"),
        Binding("c", "node_action('pod_capture')", "Capture"),
        Binding("t", "app.pod_trace", "Trace"),
        Binding("y", "copy", "Copy"),
        # priority: a wide table would otherwise take left/right to scroll sideways.
        Binding("left,h,left_square_bracket", "tab(-1)", "Previous tab", show=False, priority=True),
        Binding("right,l,right_square_bracket", "tab(1)", "Next tab", show=False, priority=True),
    ]

    def __init__(self, pod_key: str, node: int = 0) -> None:
        super().__init__()
        self.pod_key = pod_key
        # Which loaded snapshot the pod is in: 0 the node shown, n the n-th other node
        # (a pod opened from :map with several snapshots loaded).
        self.node = node
        self._built_for: Loaded | None = None
        self._built_stages: frozenset[str] = frozenset()

    @property
    def loaded(self) -> Loaded | None:
        """The snapshot of the pod's node (another node's, for a pod opened from its map)."""
        shown = self.state().loaded
        if shown is None or self.node == 0:
            return shown
        if self.node > len(shown.peers):
            return None
        return shown.node(self.node)

    def node_name(self) -> str:
        """The hostname of the pod's node."""
        loaded = self.loaded
        return loaded.snapshot.node.hostname if loaded is not None else f"node #{self.node}"

    async def action_node_action(self, action: str) -> None:
        """s and c act on this machine: refused for another node's pod, with why."""
        if self.node:
            what = "a shell" if action == "pod_shell" else "a capture"
            self.notify(
                clean(f"{self.pod_key} is on {self.node_name()}: {what} needs podpath there"),
                severity="warning",
                timeout=4,
                markup=False,
            )
            return
        await self.app.run_action(f"app.{action}")

    def compose(self) -> ComposeResult:
        """The pod's header line and one tab per aspect."""
        yield Header()
        yield Static("", id="heading")
        yield Static("", id="podinfo")
        with PodTabs(id="tabs"):
            for tab_id, label, _cols, _build in TABS:
                with TabPane(label, id=f"tab-{tab_id}"):
                    if tab_id == "containers":
                        yield RowTable(id="t-containers", classes="half")
                        yield RowTable(id="t-namespaces")  # the rest of the pane: all 8 types
                    elif tab_id == "nat":
                        yield Static("Services with this pod as an endpoint", classes="subheading")
                        yield RowTable(id="t-nat", classes="third")
                        yield Static(
                            "Rules that mention its IP (every backend, table, chain)",
                            classes="subheading",
                        )
                        yield RowTable(id="t-natrules", classes="third")
                        yield Static(
                            "Masquerade/SNAT that can apply to its traffic (nat POSTROUTING)",
                            classes="subheading",
                        )
                        yield RowTable(id="t-masq")
                    else:
                        yield RowTable(id=f"t-{tab_id}")
        yield KeysFooter()

    def on_mount(self) -> None:
        """Show the pod (another node's views are prepared in a worker first when big)."""
        loaded = self.loaded
        if loaded is not None and self.node and not loaded.ready.is_set():
            if loaded.small:
                loaded.prepare()
            else:
                prepare = weakly(Loaded.prepare, loaded)
                self.run_worker(prepare, thread=True, exit_on_error=False, name="prepare")
        self.reload()
        self.set_focus(self.query_one("#t-containers", RowTable))

    def worker_done(self, worker: Worker[Any]) -> None:
        """Another node's views are parsed: fill the tabs that waited."""
        self.reload()

    def worker_failed(self, worker: Worker[Any]) -> None:
        """Preparing another node's views failed (reported): the tabs say so."""
        loaded = self.loaded
        if loaded is not None:
            loaded.failed = True
            self._built_for = None
            self.reload()

    def release(self) -> None:
        """Drop the snapshot the tabs were built for (see BaseScreen.release)."""
        self._built_for = None

    def selected_pod(self) -> Pod | None:
        """This screen's pod."""
        loaded = self.loaded
        return find_pod(loaded.index, self.pod_key) if loaded else None

    def reload(self) -> None:
        """Fill every tab from the current snapshot."""
        loaded = self.loaded
        if loaded is None or (
            loaded is self._built_for and loaded.done_stages() == self._built_stages
        ):
            return
        self._built_for = loaded
        self._built_stages = loaded.done_stages()
        pod = self.selected_pod()
        heading = self.query_one("#heading", Static)
        if pod is None:
            heading.update(literal_content(f"Pod {self.pod_key} — gone from this snapshot"))
            return
        where = f" on {loaded.snapshot.node.hostname}" if loaded.peers else ""
        heading.update(
            literal_content(f"Pod {self.pod_key}{where} · found by {pr.pod_sources(pod)}")
        )
        netns = "host network" if pod.host_network else (pod.netns_path or pod.netns_inode)
        info = (
            f"netns {netns} · pause pid {pod.pause_pid} · {pod.runtime} sandbox "
            f"{pod.sandbox_id[:13]} · uid {pod.uid}"
        )
        # Each line made literal on its own: a newline inside node text is shown escaped.
        own = pr.own_rules_line(loaded.index, pod)
        lines = [literal_content(line) for line in (info, pr.cni_record(pod), own) if line]
        self.query_one("#podinfo", Static).update(Content("\n").join(lines))
        for tab_id, _label, columns, build in TABS:
            table = self.query_one(f"#t-{tab_id}", RowTable)
            table.set_columns(columns(pod))
            if not self._stages_done(loaded, tab_id):
                continue
            table.show(page(build(loaded, pod)))
        self._fill_nat_extras(loaded, pod)
        ns_table = self.query_one("#t-namespaces", RowTable)
        ns_table.set_columns(pr.namespace_columns(pod))
        ns_table.show(page(pr.namespace_rows(loaded.index, pod)))

    def _fill_nat_extras(self, loaded: Loaded, pod: Pod) -> None:
        """The NAT tab's rule mentions and masquerade (they need the prepared rulesets)."""
        extras: tuple[tuple[str, tuple[str, ...], Callable[[], list[Row]]], ...] = (
            ("#t-natrules", pn.MENTION_COLUMNS, lambda: pn.mention_rows(loaded.ip_mentions(), pod)),
            (
                "#t-masq",
                pn.MASQUERADE_COLUMNS,
                lambda: pn.masquerade_rows(loaded.parsed.rule_dumps(), pod),
            ),
        )
        for selector, columns, build in extras:
            table = self.query_one(selector, RowTable)
            table.set_columns(columns)
            if self._stages_done(loaded, selector[3:]):
                table.show(page(build()))

    def _stages_done(self, loaded: Loaded, table_id: str) -> bool:
        """True when the table's stages are prepared; else it says what it waits for."""
        missing = [s for s in NEEDS_VIEWS.get(table_id, ()) if not loaded.has(s)]
        if missing:
            loaded.want(missing[0])
            text = pending_text(loaded, missing[0])
            table = self.query_one(f"#t-{table_id}", RowTable)
            table.show(page([Row("\x00pending", (Cell(text, "dim"),))]))
        return not missing

    def on_tabbed_content_tab_activated(self, event: TabbedContent.TabActivated) -> None:
        """Focus the first table of the tab shown now (not the event's: keys may have moved on)."""
        self._focus_active_table()

    def _focus_active_table(self) -> None:
        pane = self.query_one(TabbedContent).active_pane
        tables = pane.query(RowTable) if pane is not None else None
        if tables:
            self.set_focus(tables.first())

    def action_tab(self, step: int) -> None:
        """Switch to the previous/next tab (each key of a burst moves one tab)."""
        tabs = self.query_one(TabbedContent)
        ids = [f"tab-{t[0]}" for t in TABS]
        current = ids.index(tabs.active) if tabs.active in ids else 0
        tabs.active = ids[(current + step) % len(ids)]
        self._focus_active_table()

    def on_row_table_row_selected(self, event: RowTable.RowSelected) -> None:
        """Enter on an interface opens its host-side peer in the Links view."""
        event.stop()
        table = event.table
        if not isinstance(table, RowTable) or table.id != "t-interfaces":
            return
        cells = table.selected_cells()
        if len(cells) > 1 and cells[1].text.startswith("↔ "):
            peer = cells[1].text[2:].split("@")[0]
            if self.node:
                # :links shows the root namespace of the node the app shows, not this one.
                self.notify(
                    clean(f"{peer} is in {self.node_name()}'s root namespace"),
                    timeout=3,
                    markup=False,
                )
                return
            self.state().open_screen("links", peer)

    def action_copy(self) -> None:
        """Copy the first cell of the focused table's selected row."""
        focused = self.focused
        if isinstance(focused, RowTable):
            cells = focused.selected_cells()
            if cells:
                self.app.copy_to_clipboard(cells[0].text)
                self.notify(clean(f"copied {cells[0].text}"), markup=False, timeout=2)
