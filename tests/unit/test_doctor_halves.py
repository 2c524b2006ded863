"""The doctor's two halves, the paths judged (what the TUI's child computes) and the
nodes' facts (what the TUI's worker checks), make its findings, whoever computes each."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from podpath.analysis.index import SnapshotIndex
from podpath.analysis.parsed import ParsedSnapshot
from podpath.analysis.problems import problems
from podpath.doctor import diagnose, findings_of, paths_judged
from podpath.snapshot.codec import load_path

DATA = Path(__file__).resolve().parents[2] / "src" / "podpath" / "data"
TUI_FIXTURE = Path(__file__).resolve().parents[1] / "tui" / "fixtures" / "snapshot.json"


@pytest.mark.parametrize(
    "paths",
    [(TUI_FIXTURE,), (DATA / "demo-snapshot.json", DATA / "demo-snapshot-node2.json")],
    ids=["one-node", "two-nodes"],
)
def test_the_judged_paths_and_the_facts_make_the_doctors_findings(paths: tuple[Path, ...]) -> None:
    snaps = [load_path(str(p)) for p in paths]
    expected = diagnose([SnapshotIndex(s) for s in snaps]).findings
    # As the child sends them: pickled.
    judged = pickle.loads(pickle.dumps(paths_judged([SnapshotIndex(s) for s in snaps])))
    facts = [f for s in snaps for f in problems(ParsedSnapshot(SnapshotIndex(s)))]
    assert judged and all(j.trace is None for j in judged)
    assert any(j.causes for j in judged)
    assert findings_of(facts, judged) == expected


def test_each_fact_is_one_finding_beside_the_paths() -> None:
    """Every fact's finding is among the findings, once however often it is given."""
    snap = load_path(str(TUI_FIXTURE))
    judged = paths_judged([SnapshotIndex(snap)])
    facts = problems(ParsedSnapshot(SnapshotIndex(snap)))
    found = findings_of(facts, judged)
    assert any(f.check == "stale-conntrack" for f in facts)
    assert {f.id for f in facts} <= {f.id for f in found}
    assert findings_of([], judged) != found
    assert len(findings_of([*facts, *facts], judged)) == len(found)
