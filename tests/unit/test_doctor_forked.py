"""The doctor checks the node's facts in a forked child beside its sweep: the report is
the one it makes in one process, and a child that fails has the facts checked here."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

FIXTURE = Path(__file__).resolve().parents[1] / "tui" / "fixtures" / "snapshot.json"

# Run in a fresh interpreter: the child is forked only by a single-threaded process.
_SCRIPT = """
import dataclasses, os, sys
import podpath.doctor as doctor
from podpath.analysis.index import SnapshotIndex
from podpath.snapshot.codec import load_path

snap = load_path(sys.argv[1])
parent = os.getpid()
started = []
real_start, real_facts = doctor.Forked.start, doctor.fact_findings

def counted_start(*args, **kwargs):
    child = real_start(*args, **kwargs)
    started.append(child is not None)
    return child

def report():
    found = doctor.diagnose([SnapshotIndex(snap)])
    return found.findings, dataclasses.replace(found.coverage, seconds=0.0)

doctor.Forked.start = counted_start
forked = report()
assert started == [True], started

doctor.Forked.start = lambda *args, **kwargs: None
alone = report()

def fails_in_the_child(views):
    if os.getpid() != parent:
        raise RuntimeError("a child that cannot check the facts")
    return real_facts(views)

doctor.Forked.start, doctor.fact_findings = counted_start, fails_in_the_child
recovered = report()

checks = sorted(f.check for f in alone[0])
assert "stale-conntrack" in checks and "ipam-leaked" in checks, checks
assert forked == alone == recovered
print("ok")
"""


def test_the_facts_checked_in_a_child_give_the_same_report() -> None:
    done = subprocess.run(
        [sys.executable, "-c", _SCRIPT, str(FIXTURE)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, "ok\n", "")
