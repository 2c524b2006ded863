"""A doctor report as text: each finding with its cause, deciding hop, evidence, fix and paths.

Every string from the node (names, rules, comments) may hold escape sequences;
`visible` makes control characters printable.
"""

from __future__ import annotations

import shlex

from podpath.analysis.findings import Finding
from podpath.doctor.findings import Report
from podpath.safe_text import visible
from podpath.wording import count

_LABELS = ("cause", "decided", "evidence", "fix", "paths", "trace")


def render_text(report: Report) -> str:
    """The report: a header, the findings worst first, a summary line."""
    cov = report.coverage
    nodes = ", ".join(cov.nodes)
    lines = [
        visible(
            f"podpath doctor: {nodes}: {count(cov.paths, 'path')} judged from "
            f"{count(cov.classes, 'pod position')} ({count(cov.pods, 'pod')}) and "
            f"{count(cov.service_ports, 'Service port')}, in {count(cov.traces, 'trace')}"
        )
    ]
    for finding in report.findings:
        lines.append("")
        lines.extend(finding_lines(finding))
    counts = report.counts()
    lines.append("")
    if not report.findings:
        lines.append("no findings: every path judged works")
    lines.append(
        "summary: "
        + ", ".join(f"{n} {g}" for g, n in counts.items())
        + ("; exit status 1 (something is critical)" if report.critical else "")
    )
    return "\n".join(lines) + "\n"


def finding_lines(finding: Finding) -> list[str]:
    """One finding: its grade, check and subject, then one labelled line per part."""
    head = f"{finding.grade.upper():<9} {finding.check}  {finding.subject}"
    if finding.node and finding.node not in finding.subject:
        head += f"  [{finding.node}]"
    out = [visible(head)]
    parts: list[tuple[str, str]] = [("cause", finding.cause)]
    if finding.hop:
        parts.append(("decided", finding.hop))
    parts.extend(("evidence", e) for e in finding.evidence)
    parts.append(("fix", finding.fix))
    if finding.affected:
        shown = "; ".join(p.text for p in finding.paths)
        more = finding.affected - len(finding.paths)
        parts.append(
            ("paths", f"{finding.affected}: {shown}" + (f" (+{more} more)" if more > 0 else ""))
        )
        first = finding.paths[0]
        if first.source != "outside":
            parts.append(("trace", trace_command(finding)))
    width = max(len(label) for label in _LABELS) + 1
    out.extend(visible(f"  {label + ':':<{width}} {text}") for label, text in parts)
    return out


def trace_command(finding: Finding) -> str:
    """The `podpath trace` command line that shows a finding's first path hop by hop."""
    first = finding.paths[0]
    proto = f" --proto {first.proto}" if first.proto != "tcp" else ""
    # Quoted for a shell: `[fd00::a]:53` is a glob pattern there.
    ends = f"--from {shlex.quote(first.source)} --to {shlex.quote(first.destination)}"
    return f"podpath trace {ends}{proto} --reply"
