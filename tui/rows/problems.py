"""Pure row builders for the Problems screen (the findings come from podpath.doctor)."""

from __future__ import annotations

from collections.abc import Iterable

from podpath.analysis.findings import Finding
from podpath.tui.rows.model import Cell, Row, cell, row

PROBLEM_COLUMNS = ("GRADE", "SUBJECT", "CAUSE", "FIX")
# How each grade is drawn (a role the table styles).
GRADE_ROLES = {"critical": "error", "warning": "warning", "info": "primary"}


def problem_rows(found: Iterable[Finding]) -> list[Row]:
    """One row per finding, in the doctor's order (critical first)."""
    return [
        row(
            f"p:{i}",
            Cell(f.grade, GRADE_ROLES[f.grade]),
            Cell(f.subject, "accent"),
            cell(f.cause),
            cell(f.fix),
        )
        for i, f in enumerate(found)
    ]
