"""What is wrong on a node, as data: findings, graded, each with its cause, deciding hop,
evidence and fix, and the paths it decides.

Built by the fact checks (`podpath.analysis.problems`) and the doctor's path sweep
(`podpath.doctor`), shown by `podpath doctor`, `podpath ls problems` and the TUI's
Problems view. A finding's `id` is stable across runs of the same node state (the
check and what it is about), so a script can compare two runs.
"""

from __future__ import annotations

from dataclasses import dataclass

JsonValue = str | int | float | bool | None | list["JsonValue"] | dict[str, "JsonValue"]

# Grades, worst first. critical: something that should connect does not; warning:
# something fails for some, or will soon, or is doubtful; info: a fact of the node the
# doctor cannot judge (an eBPF dataplane, an IPVS scheduler's choice), with the reason.
GRADES = ("critical", "warning", "info")

# The grade as `podpath ls problems` has always called it (its JSON key `severity`).
SEVERITY = {"critical": "error", "warning": "warning", "info": "info"}

# How many affected paths a finding names; the rest are counted.
PATH_EXAMPLES = 5


@dataclass(frozen=True)
class PathRef:
    """A path the doctor traced, in the words `podpath trace --from --to --proto` takes."""

    source: str  # NAMESPACE/POD, a node's hostname, or "outside"
    destination: str  # ADDRESS[:PORT] (or NAMESPACE/NAME:PORT for a Service)
    proto: str
    node: str  # hostname of the node the source is on

    @property
    def text(self) -> str:
        """`default/web-0 -> 10.96.0.10:53/udp`."""
        return f"{self.source} -> {self.destination}/{self.proto}"

    def as_json(self) -> dict[str, JsonValue]:
        """The path as the JSON contract's object."""
        return {
            "from": self.source,
            "to": self.destination,
            "proto": self.proto,
            "node": self.node,
        }


@dataclass(frozen=True)
class Finding:
    """One thing wrong (or worth knowing) on a node, with what decided it and the fix."""

    check: str  # the check that found it: no-listener, ip-forward-off, ...
    grade: str  # one of GRADES
    subject: str  # what it is about: "Service default/web:http", "node node1", ...
    cause: str  # one sentence
    fix: str  # what would fix it
    node: str = ""  # hostname of the node it was found on
    hop: str | None = None  # the deciding hop of the first affected path, as the trace says it
    evidence: tuple[str, ...] = ()  # the rule, route, sysctl, entry that shows it
    paths: tuple[PathRef, ...] = ()  # the first PATH_EXAMPLES affected paths
    affected: int = 0  # how many traced paths it decides, in all
    key: str = ""  # what makes it unique within its check (defaults to the subject)

    @property
    def id(self) -> str:
        """A stable identifier: the check, then what it is about."""
        return f"{self.check}:{self.key or self.subject}"

    @property
    def severity(self) -> str:
        """The grade in the words of `podpath ls problems` (error, warning, info)."""
        return SEVERITY[self.grade]

    def as_json(self) -> dict[str, JsonValue]:
        """The finding as the JSON contract's object (keys are only ever added)."""
        return {
            "id": self.id,
            "check": self.check,
            "grade": self.grade,
            "node": self.node,
            "subject": self.subject,
            "cause": self.cause,
            "hop": self.hop,
            "evidence": list(self.evidence),
            "fix": self.fix,
            "affected": self.affected,
            "paths": [p.as_json() for p in self.paths],
        }


def ordered(findings: list[Finding]) -> tuple[Finding, ...]:
    """Worst first, then by node, check and subject: the same order every run."""
    return tuple(
        sorted(findings, key=lambda f: (GRADES.index(f.grade), f.node, f.check, f.key or f.subject))
    )
