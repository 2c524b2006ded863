"""Pure row builders for the Problems screen (the list comes from podpath.analysis.problems)."""

from __future__ import annotations

from collections.abc import Iterable

from podpath.analysis.problems import Problem
from podpath.tui.rows.model import Cell, Row, cell, row

PROBLEM_COLUMNS = ("SEVERITY", "SUBJECT", "WHY")


def problem_rows(found: Iterable[Problem]) -> list[Row]:
    """One row per problem, in the analysis's order (errors first)."""
    return [
        row(f"p:{i}", Cell(p.severity, p.severity), Cell(p.subject, "accent"), cell(p.why))
        for i, p in enumerate(found)
    ]
