"""Everything wrong or missing, each with why."""

from __future__ import annotations

from podpath.analysis.problems import problems
from podpath.tui.rows.model import Row
from podpath.tui.rows.problems import PROBLEM_COLUMNS, problem_rows
from podpath.tui.screens.base import TableScreen
from podpath.tui.state import Loaded


class ProblemsScreen(TableScreen):
    """Everything wrong or missing, each with why."""

    HEADING = "Problems"
    COLUMNS = PROBLEM_COLUMNS

    def build_rows(self, loaded: Loaded) -> list[Row]:
        """All rows of this view."""
        return problem_rows(problems(loaded.parsed))
