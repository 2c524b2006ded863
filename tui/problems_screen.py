"""Everything wrong or missing, each with why."""

from __future__ import annotations

from podpath.tui.base_screen import TableScreen
from podpath.tui.node_rows import PROBLEM_COLUMNS, problem_rows, problems
from podpath.tui.rows import Row
from podpath.tui.state import Loaded


class ProblemsScreen(TableScreen):
    """Everything wrong or missing, each with why."""

    HEADING = "Problems"
    COLUMNS = PROBLEM_COLUMNS

    def build_rows(self, loaded: Loaded) -> list[Row]:
        """All rows of this view."""
        return problem_rows(problems(loaded.index, loaded.views))
