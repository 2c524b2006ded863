"""Several --snapshot files: `ls` lists every node's rows, and one node twice is refused.

`ls` took one --snapshot and, given two, silently listed the last; trace, tui and
doctor loaded two snapshots of one node (one file given twice, or two clusters) and
then answered from a mix of them.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from podpath.snapshot import codec

DATA = Path(codec.__file__).resolve().parents[1] / "data"
NODE1 = DATA / "demo-snapshot.json"
NODE2 = DATA / "demo-snapshot-node2.json"


def _podpath(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "podpath", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
        check=False,
    )


def _rows(*args: str | Path) -> list[dict[str, object]]:
    out = _podpath("ls", "pods", "--json", *args)
    assert out.returncode == 0, out.stderr
    rows: list[dict[str, object]] = json.loads(out.stdout)["pods"]
    return rows


def test_ls_lists_every_nodes_rows_with_a_node_column() -> None:
    """`ls pods --snapshot A B`: A's rows then B's, each led by its node, in text and JSON."""
    one, two = _rows("--snapshot", NODE1), _rows("--snapshot", NODE2)
    both = _rows("--snapshot", NODE1, NODE2)
    assert both == [{"node": "node1", **r} for r in one] + [{"node": "node2", **r} for r in two]
    assert _rows("--snapshot", NODE1, "--snapshot", NODE2) == both
    text = _podpath("ls", "pods", "--snapshot", NODE1, NODE2).stdout.splitlines()
    assert text[0].split()[:3] == ["NODE", "NAMESPACE", "NAME"]
    names = [(line.split()[0], line.split()[2]) for line in text[1:]]
    assert names == [(str(r["node"]), str(r["name"])) for r in both]


def test_one_snapshot_keeps_its_listing_unchanged() -> None:
    """With one snapshot there is no NODE column (the listing of one node, as before)."""
    out = _podpath("ls", "pods", "--snapshot", NODE1)
    assert out.stdout.split()[0] == "NAMESPACE"
    assert "node" not in _rows("--snapshot", NODE1)[0]


COMMANDS = [
    ["ls", "pods"],
    ["trace", "--from", "node", "--to", "default/web:80"],
    ["doctor"],
    ["tui"],
]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c[0])
def test_one_file_given_twice_is_refused(command: list[str]) -> None:
    """The same file twice: one sentence naming it, exit 2, nothing listed."""
    out = _podpath(*command, "--snapshot", NODE1, NODE1)
    assert (out.returncode, out.stdout) == (2, "")
    assert out.stderr == f"podpath: {NODE1} is given twice: give one snapshot per node\n"


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c[0])
def test_two_snapshots_of_one_node_are_refused(command: list[str], tmp_path: Path) -> None:
    """Two files of node1 (two clusters, say): both named, with the node, exit 2."""
    other = tmp_path / "other-cluster.json"
    shutil.copyfile(NODE1, other)
    out = _podpath(*command, "--snapshot", NODE2, NODE1, other)
    assert (out.returncode, out.stdout) == (2, "")
    assert out.stderr == (
        f"podpath: {NODE1} and {other} are both snapshots of node node1: give one snapshot "
        "per node (two clusters' snapshots cannot be used together)\n"
    )
