"""Trace: source and destination with completion, branches with probabilities, hops, reply, AND."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any, ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.content import Content
from textual.suggester import SuggestFromList
from textual.widgets import Header, Input, Select, Static
from textual.worker import Worker

from podpath.conntrack import ConntrackEntry
from podpath.draw.build import MapFilter, build_map
from podpath.draw.path import path_netns, trace_path, trace_title
from podpath.trace.engine import trace
from podpath.trace.model import Branch, Trace
from podpath.trace.observed import flow_entries
from podpath.trace.probe import Probe
from podpath.tui.rows.model import page
from podpath.tui.rows.trace import (
    BRANCH_COLUMNS,
    HOP_COLUMNS,
    branch_rows,
    conntrack_label,
    flow_text,
    hop_detail,
    hop_rows,
    path_doubts,
    path_hops,
)
from podpath.tui.screens.base import BaseScreen, pending_text
from podpath.tui.screens.map import MapScreen
from podpath.tui.state import CONNTRACK, Loaded
from podpath.tui.text import clean, literal_content
from podpath.tui.weak_work import weakly
from podpath.tui.widgets.footer import KeysFooter
from podpath.tui.widgets.keys import KeyInput
from podpath.tui.widgets.table import RowTable
from podpath.wording import count

# What the engine raises for a probe it cannot follow: ProbeError, a ValueError (an
# unknown pod, a bad port or address). Anything else is a bug, reported as one.
TRACE_ERRORS = (ValueError,)
# Pods on a node above which the map of a trace shows only the pods it passes (as
# `podpath trace --svg` does): 250 pods would bury the path's dozen lines.
FOCUS_PODS_ABOVE = 24


@dataclass(frozen=True)
class Outcome:
    """One run of the trace engine: the trace, or why the probe cannot be traced; and
    the conntrack entries of the traced flow, when the table was parsed by then."""

    probe: Probe
    trace: Trace | None
    error: str | None = None
    flows: tuple[ConntrackEntry, ...] | None = None


def run_trace(loaded: Loaded, probe: Probe) -> Outcome:
    """Ask the trace engine (a pure function of the snapshots) for every branch of a probe."""
    try:
        # The indexes are passed so parsed rulesets are reused across traces; the other
        # nodes' snapshots (podpath tui --snapshot A B ...) let the trace cross into them.
        indexes = [loaded.index, *loaded.peer_indexes]
        found = trace(indexes, probe, explain=True, reply=True)
    except TRACE_ERRORS as exc:
        return Outcome(probe, None, str(exc))
    # Found here, not on the event loop: a pass over every entry (~12 ms at 50k).
    flows = tuple(flow_entries(found, loaded.parsed.conntrack())) if loaded.has(CONNTRACK) else None
    return Outcome(probe, found, flows=flows)


def no_reply_reason(branch: Branch) -> str:
    """Why a branch has no way back to show, in a few words."""
    if branch.verdict == "leaves-node":
        # The reply starts on the node the packet went to: its snapshot is needed.
        return "the packet leaves the loaded nodes; load the other node's snapshot too"
    if branch.verdict == "delivered":
        return "the reply could not be followed"
    return f"the packet is not delivered ({branch.verdict})"


class TraceScreen(BaseScreen):
    """Pick a source and destination; see each branch, its hops, and the way back."""

    # Under 30 lines (80x24) the branches and the hop's detail take less room, or no hop
    # of the path itself would be left on screen (tui/styles.py, `-short`).
    VERTICAL_BREAKPOINTS = [(0, "-short"), (30, "-tall")]

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "back", "Back"),
        Binding("ctrl+r", "run", "Run"),
        # From the inputs (where letters and digits are typed) down to the branch list.
        # priority: an Input takes ↓ itself (to scroll); check_action lets a table's
        # ↓ move its cursor as usual.
        Binding("down", "to_branches", "Branches", key_display="↓", priority=True),
        # priority: enter moves the focus (From -> To -> branches -> hops) before the
        # next key is let in (podpath.tui.key_order).
        Binding("enter", "enter", "Next", show=False, priority=True),
        Binding("1", "branch(1)", "Branch N", key_display="1-9"),
        *(Binding(f"{n}", f"branch({n})", f"Branch {n}", show=False) for n in range(2, 10)),
        Binding("p", "reply", "Reply path"),
        Binding("a", "explain", "Binary AND"),
        Binding("m", "map", "On the map"),
        Binding("f", "focus_from", "From"),
    ]

    def __init__(self, source: str = "", destination: str = "", proto: str = "tcp") -> None:
        super().__init__()
        self.source_spec = source
        self.destination_spec = destination
        self.proto = proto
        self.trace: Trace | None = None
        # The traced flow's conntrack entries (found once per trace, by its worker when
        # the table was parsed by then).
        self.flows: tuple[ConntrackEntry, ...] | None = None
        self.show_reply = False
        self.explain = False

    def release(self) -> None:
        """Drop the trace and its flows (see BaseScreen.release)."""
        self.trace, self.flows = None, None

    def compose(self) -> ComposeResult:
        """Inputs, branches, hops, detail of the selected hop."""
        yield Header()
        with Horizontal(id="trace-inputs"):
            yield KeyInput(
                self.source_spec, placeholder="from: pod ns/name, pod IP, node", id="from"
            )
            yield KeyInput(
                self.destination_spec, placeholder="to: ip[:port], ns/pod, ns/svc[:port]", id="to"
            )
            yield Select(
                (("tcp", "tcp"), ("udp", "udp"), ("icmp", "icmp")),
                value=self.proto,
                allow_blank=False,
                id="proto",
            )
        yield Static("Enter a source and a destination, then enter.", id="trace-status")
        yield RowTable(id="branches", classes="third")
        yield Static("", id="path-heading", classes="subheading")
        yield Static("", id="flow")
        # RULE OF is blank on many paths (no netfilter rule decided them): no width then;
        # on a narrow screen none either, as the hop's detail below says whose rule it is.
        yield RowTable(id="hops", fold_empty=True, fold_when_narrow=("RULE OF",))
        yield Static("", id="hop-detail")
        yield KeysFooter()

    def on_mount(self) -> None:
        """Completion over pods, Services and IPs; run at once when both ends are given."""
        loaded = self.loaded
        if loaded is not None:
            # Every loaded node's pods and Services; one suggester serves both inputs.
            suggester = SuggestFromList(loaded.trace_words(), case_sensitive=False)
            self.query_one("#from", Input).suggester = suggester
            self.query_one("#to", Input).suggester = suggester
        self.query_one("#branches", RowTable).set_columns(BRANCH_COLUMNS)
        self.query_one("#hops", RowTable).set_columns(HOP_COLUMNS)
        if self.source_spec and self.destination_spec:
            # After the screen's first frame: its worker shares the GIL with the mount's
            # styling, which then held the event loop ~0.1 s on a big node.
            self.call_after_refresh(self.action_run)
        elif self.source_spec:
            self.set_focus(self.query_one("#to", Input))
        else:
            self.set_focus(self.query_one("#from", Input))

    def on_input_submitted(self, event: Input.Submitted) -> None:
        """Enter in From moves to To; enter in To runs the trace (the binding does it first)."""
        event.stop()
        self._enter_in(event.input.id)

    def action_enter(self) -> None:
        """Enter: From -> To, To runs the trace, a branch shows its hops."""
        focused = self.focused
        self._enter_in(focused.id if focused is not None else None)

    def _enter_in(self, where: str | None) -> None:
        if where == "from":
            self.set_focus(self.query_one("#to", Input))
        elif where == "to":
            self.action_run()
        elif where == "branches":
            self.set_focus(self.query_one("#hops", RowTable))

    def action_focus_from(self) -> None:
        """Edit the source."""
        self.set_focus(self.query_one("#from", Input))

    def action_to_branches(self) -> None:
        """Leave the inputs for the branch list (↓ from From, To or the protocol)."""
        self.set_focus(self.query_one("#branches", RowTable))

    def action_branch(self, number: int) -> None:
        """Pick branch `number` (1-9): its hops are shown and the cursor moves to them."""
        branches = self.query_one("#branches", RowTable)
        if self.trace is None or not 1 <= number <= len(self.trace.branches):
            self.notify(f"there is no branch {number}", severity="warning", timeout=2)
            return
        branches.move_cursor(row=number - 1)
        self.show_branch()
        self.set_focus(self.query_one("#hops", RowTable))

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """↓ to the branches only from an input: in a table it moves the cursor."""
        if action == "to_branches" and not isinstance(self.focused, (Input, Select)):
            return False
        focused_id = self.focused.id if self.focused is not None else None
        if action == "enter" and focused_id not in ("from", "to", "branches"):
            return False
        return super().check_action(action, parameters)

    def action_run(self) -> None:
        """Trace the probe in a thread worker; the branches show when it is done."""
        loaded = self.loaded
        src = self.query_one("#from", Input).value.strip()
        dst = self.query_one("#to", Input).value.strip()
        proto = str(self.query_one("#proto", Select).value)
        status = self.query_one("#trace-status", Static)
        if loaded is None or not src or not dst:
            status.update("Enter a source and a destination.")
            return
        probe = Probe(source=src, destination=dst, proto=proto)
        status.update(literal_content(f"tracing {src} → {dst} ({proto})…"))
        # Keys typed while it runs are this screen's (p, a), not more text for the inputs.
        self.set_focus(self.query_one("#branches", RowTable))
        self.run_worker(
            weakly(partial(run_trace, probe=probe), loaded),
            name="trace",
            group="trace",
            thread=True,
            exclusive=True,
            exit_on_error=False,
        )

    def worker_done(self, worker: Worker[Any]) -> None:
        """A trace finished: show its branches, or why it cannot be traced."""
        if isinstance(worker.result, Outcome):
            self.show_outcome(worker.result)

    def worker_failed(self, worker: Worker[Any]) -> None:
        """The engine failed (a bug, already reported): say so where the branches go."""
        self.trace = None
        self.query_one("#trace-status", Static).update(
            literal_content("the trace failed: see the notification", "bold")
        )
        self.query_one("#branches", RowTable).show(page([]))
        self.query_one("#hops", RowTable).show(page([]))

    def show_outcome(self, outcome: Outcome) -> None:
        """Show a finished trace's branches (the first one selected), or its error."""
        status = self.query_one("#trace-status", Static)
        probe = outcome.probe
        self.trace, self.flows = outcome.trace, outcome.flows
        branches = self.query_one("#branches", RowTable)
        if outcome.trace is None:
            status.update(literal_content(f"cannot trace: {outcome.error}", "bold"))
            branches.show(page([]))
            self.query_one("#hops", RowTable).show(page([]))
            return
        n = len(outcome.trace.branches)
        pick = " · ↑↓ or 1-9 picks one, enter shows its hops" if n > 1 else ""
        status.update(
            literal_content(
                f"{probe.source} → {probe.destination} ({probe.proto}): {count(n, 'branch', 'branches')}{pick}"
            )
        )
        branches.show(page(branch_rows(outcome.trace)))
        branches.move_cursor(row=0, animate=False)
        self.show_branch()

    def selected_branch(self) -> Branch | None:
        """The branch under the cursor."""
        if self.trace is None or not self.trace.branches:
            return None
        key = self.query_one("#branches", RowTable).selected_key or "b:0"
        i = int(key[2:])
        return self.trace.branches[i] if i < len(self.trace.branches) else None

    def show_branch(self) -> None:
        """Show the hops of the selected branch (or its reply path)."""
        branch = self.selected_branch()
        hops_table = self.query_one("#hops", RowTable)
        heading = self.query_one("#path-heading", Static)
        if branch is None:
            hops_table.show(page([]))
            return
        hops = path_hops(branch, self.show_reply)
        which = "reply path (p: forward)" if self.show_reply else "forward path (p: reply)"
        if self.show_reply and not branch.reply:
            which = f"no reply path (p: forward): {no_reply_reason(branch)}"
            heading.update(literal_content(f"{which} · the branch: {branch.reason}"))
        else:
            heading.update(literal_content(f"{which} · {len(hops)} hops · {branch.reason}"))
        self.query_one("#flow", Static).update(literal_content(self.flow_line(branch)))
        hops_table.show(page(hop_rows(hops)))
        self.show_hop()

    def flow_line(self, branch: Branch) -> str:
        """The conntrack entries of the traced flow (the node's now, or the snapshot's)."""
        loaded, result = self.loaded, self.trace
        if loaded is None or result is None:
            return ""
        # A saved snapshot's table is as old as the snapshot: say so, with its time.
        label = conntrack_label(self.state().source.can_refresh, loaded.snapshot.taken_at)
        if not loaded.has(CONNTRACK):
            return f"{label}: {pending_text(loaded, CONNTRACK)}"
        if self.flows is None:  # the table was parsed after the trace ran
            self.flows = tuple(flow_entries(result, loaded.parsed.conntrack()))
        return flow_text(self.flows, branch, label)

    def show_hop(self) -> None:
        """Show what decided the selected hop."""
        branch = self.selected_branch()
        detail = self.query_one("#hop-detail", Static)
        key = self.query_one("#hops", RowTable).selected_key
        if branch is None or key is None:
            detail.update("")
            return
        hops = path_hops(branch, self.show_reply)
        i = int(key[2:])
        text = hop_detail(hops[i], self.explain) if i < len(hops) else ""
        doubts = path_doubts(branch, self.show_reply)
        if doubts:
            text += "\n" + "\n".join(f"uncertain: {doubt}" for doubt in doubts)
        # Cleaned line by line: the newlines are ours, everything else is literal.
        detail.update(Content("\n".join(clean(line) for line in text.split("\n"))))

    def on_row_table_row_highlighted(self, event: RowTable.RowHighlighted) -> None:
        """Moving in branches changes the hop list; moving in hops changes the detail."""
        event.stop()
        if event.table.id == "branches":
            self.show_branch()
        elif event.table.id == "hops":
            self.show_hop()

    def on_row_table_row_selected(self, event: RowTable.RowSelected) -> None:
        """Enter on a branch moves into its hops."""
        event.stop()
        if event.table.id == "branches":
            self.set_focus(self.query_one("#hops", RowTable))

    def action_reply(self) -> None:
        """Toggle between the forward and the reply path."""
        self.show_reply = not self.show_reply
        self.show_branch()

    def action_map(self) -> None:
        """The selected branch and its reply on the node map, each step numbered in order."""
        branch, loaded, result = self.selected_branch(), self.loaded, self.trace
        if branch is None or loaded is None or result is None:
            self.notify("trace something first (ctrl+r)", severity="warning", timeout=2)
            return
        snapshots = [loaded.snapshot, *loaded.peers]
        node_map = build_map(snapshots)
        wanted = None
        if any(len(s.pods) > FOCUS_PODS_ABOVE for s in snapshots):
            # A big node: the pods the packet passes, with every bridge and device around them.
            wanted = MapFilter(netns=path_netns(node_map, branch))
            node_map = build_map(snapshots, wanted)
        number = result.branches.index(branch) + 1
        path = trace_path(node_map, branch, number)
        self.app.push_screen(MapScreen(path=path, title=trace_title(result.probe), wanted=wanted))

    def action_explain(self) -> None:
        """Toggle the binary AND view of route lookups."""
        self.explain = not self.explain
        self.show_hop()

    def reload(self) -> None:
        """A new snapshot: trace again if a trace is shown."""
        if self.trace is not None and self.is_mounted:
            self.action_run()
