"""What `podpath doctor` finds: each failing path and fact, graded, with its cause and fix."""

from __future__ import annotations

from textual.content import Content
from textual.widgets import Static

from podpath.analysis.findings import Finding
from podpath.doctor.render import finding_lines
from podpath.tui.rows.model import Page, RowSet, rowset
from podpath.tui.rows.problems import PROBLEM_COLUMNS, problem_rows
from podpath.tui.screens.base import TableScreen
from podpath.tui.state import PROBLEMS, Loaded
from podpath.tui.text import clean
from podpath.tui.widgets.table import RowTable


class ProblemsScreen(TableScreen):
    """The doctor's findings, critical first; the selected one in full below; enter traces it."""

    DEFAULT_CSS = """
    ProblemsScreen #finding {
        height: auto;
        max-height: 14;
        padding: 0 1;
        border-top: solid $primary;
    }
    """
    HEADING = "Problems"
    COLUMNS = PROBLEM_COLUMNS
    PENDING_STAGE = PROBLEMS

    def prepare(self) -> None:
        """The table, then the selected finding's detail under it."""
        super().prepare()
        self.mount(Static("", id="finding"), after=self.table)

    def build_rowset(self, loaded: Loaded) -> RowSet | None:
        """The findings as rows; None while the doctor runs in the parse worker."""
        found = loaded.problems
        if found is None:
            loaded.want(PROBLEMS)
            return None
        return rowset(problem_rows(found))

    def repaint_rows(self) -> Page:
        """Show the rows, and the selected finding in full."""
        shown = super().repaint_rows()
        self.show_finding()
        return shown

    def finding(self, key: str | None) -> Finding | None:
        """The finding of a row."""
        loaded = self.loaded
        found = (loaded.problems if loaded is not None else None) or ()
        i = int(key[2:]) if key is not None and key[2:].isdigit() else -1
        return found[i] if 0 <= i < len(found) else None

    def show_finding(self) -> None:
        """Every part of the selected finding: cause, deciding hop, evidence, fix, paths."""
        finding = self.finding(self.table.selected_key)
        lines = finding_lines(finding) if finding is not None else []
        if finding is not None and any(p.source != "outside" for p in finding.paths):
            lines.append("  enter: trace its first path")
        for detail in self.query("#finding").results(Static):
            # Cleaned line by line: the newlines are ours, everything else is literal.
            detail.update(Content("\n".join(clean(line) for line in lines)))

    def on_row_table_row_highlighted(self, event: RowTable.RowHighlighted) -> None:
        """Moving in the list shows the finding under the cursor."""
        event.stop()
        self.show_finding()

    def open_row(self, key: str, loaded: Loaded) -> None:
        """Enter: trace the finding's first path that starts on a node (a pod or the node)."""
        finding = self.finding(key)
        if finding is None:
            return
        path = next((p for p in finding.paths if p.source != "outside"), None)
        if path is not None:
            self.state().start_trace(path.source, path.destination, path.proto)
            return
        why = (
            "its paths start outside the cluster, where no trace starts"
            if finding.paths
            else "a fact of the node: no path to trace"
        )
        self.notify(clean(f"{finding.subject}: {why}"), markup=False, timeout=4)
