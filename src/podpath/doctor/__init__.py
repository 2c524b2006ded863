"""The doctor: every path of the loaded nodes traced, every failing one explained, graded, fixed.

One analysis for `podpath doctor`, `podpath ls problems` and the TUI's Problems view.
It sits above the trace engine (it traces), beside the other things only front ends
use (listing, draw): `diagnose(indexes)` sweeps the paths (`sweep`), names each failing
branch's cause (`causes`, `mtu`), adds what a node's facts show without a trace
(`podpath.analysis.problems`), and merges equal causes into one finding each.

Modules, one idea each: classes (pods in one network position), named (what rules
other than kube-proxy's name, which sets pods, endpoints and ports apart), tracer (one
engine for many paths), sweep (which paths, grouped how), causes (why a branch fails),
mtu (MTU along a path), findings (the report), render (its text).
"""

from __future__ import annotations

import gc
import pickle
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace

from podpath.analysis.findings import GRADES, PATH_EXAMPLES, Finding, PathRef, ordered
from podpath.analysis.index import SnapshotIndex
from podpath.analysis.parsed import ParsedSnapshot
from podpath.analysis.problems import problems
from podpath.doctor.causes import Cause
from podpath.doctor.findings import Coverage, Report
from podpath.doctor.sweep import Judged, Sweep, sweep
from podpath.doctor.tracer import Tracer
from podpath.forked import Forked

# A path whose failing branches take at least this share of its connections fails whole.
WHOLE = 0.999
EVIDENCE_LIMIT = 8


def diagnose(
    indexes: Sequence[SnapshotIndex],
    parsed: Sequence[ParsedSnapshot] = (),
    judged: Callable[[int, int], object] | None = None,
) -> Report:
    """Every finding of the loaded nodes; `parsed` may give the first nodes' parsed views;
    `judged` is told how many (source, Service port) paths are judged of how many."""
    started = time.perf_counter()
    views = _parsed_views(indexes, parsed)
    facts = Forked.start(lambda: fact_findings(views), pickle.dumps, pickle.loads)
    try:
        swept, tracer = _swept(indexes, views, judged)
        ok, forked = facts.result() if facts is not None else (False, None)
    finally:
        if facts is not None:
            facts.stop()
    findings = findings_of(
        forked if ok and forked is not None else fact_findings(views), swept.judged
    )
    coverage = Coverage(
        nodes=tuple(i.snapshot.node.hostname for i in indexes),
        pods=sum(len(c.members) for c in swept.classes),
        classes=len(swept.classes),
        service_ports=swept.service_ports,
        paths=swept.paths,
        traces=tracer.runs,
        seconds=time.perf_counter() - started,
    )
    return Report(findings, coverage)


def paths_judged(
    indexes: Sequence[SnapshotIndex], kept: list[object] | None = None
) -> list[Judged]:
    """Every path of the loaded nodes judged, without their traces and without the
    nodes' facts: the doctor's half that a forked child computes for the TUI
    (podpath.tui.doctor_ahead), where the app checks the facts itself; `findings_of`
    joins the two into the doctor's findings.

    `kept`, when given, is handed what the sweep built (views, tracer, sweep): a child
    that leaves with os._exit once its result is written need not free them object by
    object first (~40 ms at 10k Services, on the way to the TUI's problems count)."""
    views = _parsed_views(indexes, ())
    swept, tracer = _swept(indexes, views, None)
    if kept is not None:
        kept.extend((views, swept, tracer))
    # No finding is made of the traces (a few dozen of ~3k judged paths hold one at 10k
    # Services): they are left out of what the child pickles.
    return [j if j.trace is None else replace(j, trace=None) for j in swept.judged]


def findings_of(facts: Iterable[Finding], judged: Iterable[Judged]) -> tuple[Finding, ...]:
    """The doctor's findings from what the nodes' facts show (`podpath.analysis.problems`,
    node by node) and the judged paths: a fact's finding first, each path's causes then
    merged into the finding of the same id."""
    found: dict[str, Finding] = {}
    for finding in facts:
        found.setdefault(finding.id, finding)
    _merge_paths(found, judged)
    return ordered(list(found.values()))


def _parsed_views(
    indexes: Sequence[SnapshotIndex], parsed: Sequence[ParsedSnapshot]
) -> list[ParsedSnapshot]:
    """A parsed view of each node (`parsed` giving the first ones), with what the sweep
    and the facts both read parsed once, before the facts' child is forked (the child
    sees it as it was then)."""
    views = [*parsed, *(ParsedSnapshot(i) for i in indexes[len(parsed) :])]
    for view in views:
        view.parse_all(conntrack=False)
    return views


def _swept(
    indexes: Sequence[SnapshotIndex],
    views: Sequence[ParsedSnapshot],
    judged: Callable[[int, int], object] | None,
) -> tuple[Sweep, Tracer]:
    """Every path swept (`podpath.doctor.sweep`), and the tracer that traced them."""
    tracer = Tracer(indexes)
    with _cyclic_gc_paused():
        return sweep(tracer, views, judged), tracer


def fact_findings(views: Sequence[ParsedSnapshot]) -> list[Finding]:
    """What the nodes' facts show, node by node (`podpath.analysis.problems`): the
    doctor's half that `paths_judged` leaves out (the TUI checks it for its peers).

    Where this process may fork (the CLI's doctor), a child checks them beside the
    sweep, on the second core: the stale-conntrack check alone reads 50k entries'
    text at 10k Services (~0.14 s; docs/performance.md, "The doctor on a saved
    snapshot")."""
    return [finding for view in views for finding in problems(view)]


@contextmanager
def _cyclic_gc_paused() -> Iterator[None]:
    """Pause the cyclic GC while the sweep runs: it allocates hundreds of thousands of
    acyclic hops, flows and verdicts (freed by reference counting), and every collection
    they set off rescans the parsed rules and Services: a third of the sweep at 10k
    Services (1.5-2.3 s with it, 1.1-1.5 s without)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _worse(a: str, b: str) -> str:
    return a if GRADES.index(a) <= GRADES.index(b) else b


def _merge_paths(found: dict[str, Finding], judged: Iterable[Judged]) -> None:
    """One finding per cause: the paths it decides, the worst grade, the first hop."""
    # What else a finding's subject stands for: other destinations sharing its verdict
    # (its subject a Service or address), or other pods (its subject the pod a path
    # starts from). A subject naming a node, rule or policy stands for no other.
    stands_for: dict[str, tuple[str, set[str]]] = {}
    for j in judged:
        for cause, share in j.causes:
            grade = cause.grade if share >= WHOLE else cause.partial_grade
            old = found.get(cause.id)
            if old is None:
                found[cause.id] = _finding(cause, grade, j)
            else:
                found[cause.id] = _add(old, cause, grade, j)
            if cause.about == "destination" and j.like:
                stands_for.setdefault(cause.id, ("", set()))[1].add(j.path.destination)
            elif cause.about == "source":
                stands_for.setdefault(cause.id, ("pod", set()))[1].update(
                    (j.path.source, *j.other_pods)
                )
    for cid, (noun, others) in stands_for.items():
        finding = found[cid]
        others.discard(finding.paths[0].source if noun else "")
        if others:
            found[cid] = _with_subject(finding, f"{finding.subject} {_and_like(noun, others)}")


def _and_like(noun: str, others: set[str]) -> str:
    """`(and 2 like it)`, `(and 1 pod like it)`: what else a finding's subject stands for."""
    n = len(others)
    what = f" {noun}{'s' if n != 1 else ''}" if noun else ""
    return f"(and {n}{what} like it)"


def _finding(cause: Cause, grade: str, j: Judged) -> Finding:
    return Finding(
        cause.check,
        grade,
        cause.subject,
        cause.text,
        cause.fix,
        cause.node or j.path.node,
        cause.hop,
        cause.evidence[:EVIDENCE_LIMIT],
        (j.path,),
        j.weight,
        cause.key,
    )


def _add(old: Finding, cause: Cause, grade: str, j: Judged) -> Finding:
    paths: tuple[PathRef, ...] = old.paths
    if len(paths) < PATH_EXAMPLES and j.path not in paths:
        paths = (*paths, j.path)
    evidence = old.evidence
    if len(evidence) < EVIDENCE_LIMIT:
        # A rule already quoted with its table and chain is not quoted again bare.
        new = [e for e in cause.evidence if not any(x.endswith(e) for x in evidence)]
        evidence = tuple(dict.fromkeys((*evidence, *new)))[:EVIDENCE_LIMIT]
    return Finding(
        old.check,
        _worse(old.grade, grade),
        old.subject,
        old.cause,
        old.fix,
        old.node,
        old.hop or cause.hop,
        evidence,
        paths,
        old.affected + j.weight,
        old.key,
    )


def _with_subject(finding: Finding, subject: str) -> Finding:
    return Finding(
        finding.check,
        finding.grade,
        subject,
        finding.cause,
        finding.fix,
        finding.node,
        finding.hop,
        finding.evidence,
        finding.paths,
        finding.affected,
        finding.key,
    )
