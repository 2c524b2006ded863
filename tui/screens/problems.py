"""What `podpath doctor` finds: each failing path and fact, graded, with its cause and fix."""

from __future__ import annotations

from podpath.tui.rows.model import RowSet, rowset
from podpath.tui.rows.problems import PROBLEM_COLUMNS, problem_rows
from podpath.tui.screens.base import TableScreen
from podpath.tui.state import Loaded


class ProblemsScreen(TableScreen):
    """The doctor's findings, critical first."""

    HEADING = "Problems"
    COLUMNS = PROBLEM_COLUMNS

    def build_rowset(self, loaded: Loaded) -> RowSet | None:
        """The findings as rows; None while the doctor runs in the parse worker."""
        found = loaded.problems
        return None if found is None else rowset(problem_rows(found))
