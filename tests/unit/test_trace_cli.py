"""`podpath trace` on saved snapshots: the JSON contract, the text form, and clean errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from trace_factory import kube_services, two_nodes

from podpath.cli import main
from podpath.safe_text import visible
from podpath.snapshot import codec
from podpath.trace.model import VERDICTS

HOP_KEYS = {
    "route": {"netns", "dst", "table", "matched", "dev", "gateway"},
    "nat": {"from", "to"},
    "netfilter": {"table", "chain", "rule", "backend"},
}
KINDS = {
    "route",
    "link",
    "bridge",
    "neighbour",
    "netfilter",
    "nat",
    "vxlan",
    "conntrack",
    "deliver",
    "drop",
    "leave",
}


@pytest.fixture
def snapshot_files(tmp_path: Path) -> list[str]:
    rules = kube_services("10.96.0.10", 80, ["10.244.0.6", "10.244.1.5", "10.244.1.6"])
    paths = []
    for snap in two_nodes("vxlan", rules, rules):
        path = tmp_path / f"{snap.node.hostname}.json"
        path.write_text(codec.dumps(snap))
        paths.append(str(path))
    return paths


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_json_contract(snapshot_files: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    """--json prints probe and branches with probability, verdict and hops carrying the contract keys."""
    args = ["trace", "--from", "default/a", "--to", "default/web:80", "--json", "--reply"]
    for f in snapshot_files:
        args += ["--snapshot", f]
    code, out, _ = _run(capsys, *args)
    assert code == 0
    data = json.loads(out)
    assert set(data) >= {"probe", "branches"}
    assert abs(sum(b["probability"] for b in data["branches"]) - 1.0) < 1e-9
    for branch in data["branches"]:
        assert branch["verdict"] in VERDICTS
        for hop in branch["hops"] + [h for r in branch["reply"] for h in r["hops"]]:
            assert hop["kind"] in KINDS
            assert HOP_KEYS.get(hop["kind"], set()) <= set(hop)
    kinds = {h["kind"] for b in data["branches"] for h in b["hops"]}
    assert {"route", "netfilter", "nat", "vxlan", "deliver"} <= kinds


def test_text_output_and_explain(
    snapshot_files: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """The text form has one line per hop, branch probabilities, and the binary AND under --explain."""
    code, out, _ = _run(
        capsys,
        "trace",
        "--from",
        "default/a",
        "--to",
        "10.244.1.5:80",
        "--explain",
        "--snapshot",
        snapshot_files[0],
        "--snapshot",
        snapshot_files[1],
    )
    assert code == 0
    assert "branch 1 of 1: p=1.0000  DELIVERED" in out
    assert "AND mask = 00001010.11110100.00000001.00000000 = 10.244.1.0" in out


def test_unknown_source_is_one_sentence_exit_2(
    snapshot_files: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """An unknown pod is a clear one-line error with exit status 2."""
    code, out, err = _run(
        capsys, "trace", "--from", "nope/nope", "--to", "10.0.0.1", "--snapshot", snapshot_files[0]
    )
    assert code == 2 and out == ""
    assert err.startswith("podpath: ") and err.count("\n") == 1


def test_bad_snapshot_file_is_a_clean_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A broken snapshot file is reported, not a traceback."""
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    code, _, err = _run(
        capsys, "trace", "--from", "node", "--to", "10.0.0.1", "--snapshot", str(bad)
    )
    assert code == 2 and "not valid JSON" in err


def test_visible_neutralises_escapes() -> None:
    """Escape sequences from node strings are shown, not sent to the terminal."""
    assert visible("eth0\x1b]0;pwned\x07") == "eth0\\x1b]0;pwned\\x07"
    assert "\x1b" not in visible("\x1b[2J\u202e")


def test_hostile_rule_comment_is_rendered_inert(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A rule comment with terminal escapes and markup is printed with its escapes made visible."""
    extra = (
        '-A KUBE-FORWARD -m comment --comment "\x1b]0;owned\x07[b]x[/b]" -d 10.244.1.5/32 -j DROP'
    )
    rules = kube_services("10.96.0.10", 80, ["10.244.1.5"], extra_filter=extra)
    a, _ = two_nodes("host-gw", rules)
    path = tmp_path / "a.json"
    path.write_text(codec.dumps(a))
    code, out, _ = _run(
        capsys, "trace", "--from", "default/a", "--to", "10.244.1.5:80", "--snapshot", str(path)
    )
    assert code == 0 and "DROPPED" in out
    assert "\x1b" not in out and "\\x1b]0;owned\\x07[b]x[/b]" in out
