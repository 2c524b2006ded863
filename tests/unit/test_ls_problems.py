"""`podpath ls problems`: what `podpath doctor` finds, as text columns and as JSON."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

from podpath.snapshot import codec
from podpath.snapshot.codec import load_path
from podpath.snapshot.model import Gap

FIXTURE = Path(__file__).resolve().parents[1] / "tui" / "fixtures" / "snapshot.json"


def _podpath(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "podpath", *args], capture_output=True, text=True, timeout=120
    )


def test_ls_problems_json_lists_what_the_doctor_finds() -> None:
    """--json: one object per finding, worst first, with the stable keys (severity, subject
    and why first, as before the doctor) and the doctor's (id, grade, hop, evidence, fix...)."""
    done = _podpath("ls", "problems", "--snapshot", str(FIXTURE), "--json")
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)["problems"]
    assert [(p["severity"], p["id"]) for p in found] == [
        ("warning", "ipam-leaked:lab-node-1:cbr0:10.244.0.9"),
        ("warning", "service-no-endpoints:monitoring/prometheus:web"),
        ("warning", "stale-conntrack:lab-node-1"),
    ]
    assert list(found[0])[:3] == ["severity", "subject", "why"]
    fields = "severity subject why fix id check grade node hop evidence affected paths"
    assert set(found[0]) == set(fields.split())
    leak, noep, stale = found
    assert leak["subject"] == "IPAM cbr0 10.244.0.9" and leak["hop"] is None
    assert leak["why"].startswith("10.244.0.9 is reserved for 9e4dab12cd34, which is no pod")
    assert noep["hop"] == "[lab-node-1] netfilter filter/KUBE-SERVICES #1: -> REJECT"
    assert noep["affected"] == 5 and noep["paths"][0].endswith("monitoring/prometheus:9090/tcp")
    assert stale["why"].startswith("1 conntrack entry still DNATs a Service")


def test_ls_problems_text_lists_gaps_once_with_the_fix(tmp_path: Path) -> None:
    """Gaps are findings (not repeated on stderr); escapes stay visible; each line has its fix."""
    snap = load_path(str(FIXTURE))
    gaps = (
        Gap("conntrack table", "permission denied", "permission", "CAP_NET_ADMIN"),
        Gap("netns cni-\x1b[2J", "dump interrupted twice", "inconsistent"),
    )
    path = tmp_path / "gaps.json"
    path.write_text(codec.dumps(dataclasses.replace(snap, gaps=gaps)))
    done = _podpath("ls", "problems", "--snapshot", str(path))
    assert done.returncode == 0 and done.stderr == ""
    lines = done.stdout.splitlines()
    assert lines[0].split() == ["SEVERITY", "SUBJECT", "WHY", "FIX"]
    assert [line.split()[0] for line in lines[1:]] == ["warning"] * 4 + ["info"]
    assert lines[4].split()[:3] == ["warning", "netns", "cni-\\x1b[2J"]
    assert "permission denied (needs CAP_NET_ADMIN)" in lines[5]
    assert lines[5].rstrip().endswith("run podpath with CAP_NET_ADMIN")
    assert "\x1b" not in done.stdout


def test_ls_knows_problems() -> None:
    """`problems` is one of the kinds `podpath ls` offers."""
    done = _podpath("ls", "--help")
    assert "problems" in done.stdout
