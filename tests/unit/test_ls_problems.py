"""`podpath ls problems`: the analysis's problem list, as text columns and as JSON."""

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


def test_ls_problems_json_lists_severity_subject_and_why() -> None:
    """--json gives one object per problem with stable keys, in the analysis's order."""
    done = _podpath("ls", "problems", "--snapshot", str(FIXTURE), "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {
        "problems": [
            {
                "severity": "warning",
                "subject": "IPAM cbr0 10.244.0.9",
                "why": "reserved for 9e4dab12cd34, which is no pod: a leaked address",
            },
            {
                "severity": "warning",
                "subject": "stale conntrack",
                "why": "1 entry DNAT to an address that is no longer a Service endpoint",
            },
        ]
    }


def test_ls_problems_text_lists_gaps_once_errors_first(tmp_path: Path) -> None:
    """Gaps are part of the list (errors first), not repeated on stderr; escapes stay visible."""
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
    assert lines[0].split() == ["SEVERITY", "SUBJECT", "WHY"]
    assert lines[1].split()[:3] == ["error", "netns", "cni-\\x1b[2J"]
    assert "permission denied (needs CAP_NET_ADMIN)" in done.stdout
    assert "\x1b" not in done.stdout


def test_ls_knows_problems() -> None:
    """`problems` is one of the kinds `podpath ls` offers."""
    done = _podpath("ls", "--help")
    assert "problems" in done.stdout
