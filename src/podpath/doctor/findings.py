"""What the doctor reports: every finding, worst first, and what it covered (the JSON contract).

The findings themselves (`podpath.analysis.findings`) are the fact checks' and the path
sweep's; a report adds how much was looked at, and says whether anything is critical
(`podpath doctor` then exits 1).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from podpath.analysis.findings import GRADES, Finding, JsonValue


@dataclass(frozen=True)
class Coverage:
    """What the doctor looked at: how many paths it judged, and how many traces it ran."""

    nodes: tuple[str, ...]
    pods: int
    classes: int  # pod network positions (equivalence classes) traced from
    service_ports: int
    paths: int  # source -> destination paths judged
    traces: int  # traces run (one per class and Service shape, see podpath.doctor.sweep)
    seconds: float = 0.0

    def as_json(self) -> dict[str, JsonValue]:
        """The coverage as the JSON contract's object."""
        return {
            "nodes": list(self.nodes),
            "pods": self.pods,
            "classes": self.classes,
            "service_ports": self.service_ports,
            "paths": self.paths,
            "traces": self.traces,
            "seconds": round(self.seconds, 3),
        }


@dataclass(frozen=True)
class Report:
    """Every finding of one doctor run, worst first, and what was covered."""

    findings: tuple[Finding, ...]
    coverage: Coverage

    @property
    def critical(self) -> bool:
        """True when anything critical was found (`podpath doctor` then exits 1)."""
        return any(f.grade == "critical" for f in self.findings)

    def counts(self) -> dict[str, int]:
        """Findings per grade, every grade present."""
        return {g: sum(1 for f in self.findings if f.grade == g) for g in GRADES}

    def as_json(self) -> dict[str, JsonValue]:
        """The report as the JSON contract: {"findings": [...], "summary": {...}, "coverage": {...}}."""
        summary: dict[str, JsonValue] = dict(self.counts())
        return {
            "findings": [f.as_json() for f in self.findings],
            "summary": summary,
            "coverage": self.coverage.as_json(),
        }


def dumps(report: Report) -> str:
    """The JSON contract as text (ASCII, so any byte from the node survives)."""
    return json.dumps(report.as_json(), indent=2, ensure_ascii=True)
