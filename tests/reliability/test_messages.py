"""Errors are one clear sentence that names the file, the port, the capability -- once."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from podpath.snapshot import codec
from podpath.snapshot.model import SCHEMA_VERSION, Gap, NodeFacts, Snapshot

DEMO = Path(codec.__file__).resolve().parents[1] / "data" / "demo-snapshot.json"


def _podpath(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "podpath", *args],
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
        check=False,
    )


def test_trace_names_the_snapshot_file_it_could_not_read(tmp_path: Path) -> None:
    """A broken file given to trace is named, with line and column, in one sentence."""
    bad = tmp_path / "node2.json"
    bad.write_text('{"schema_version": 1,\n "node": {"hostname": "n2')
    out = _podpath(
        "trace", "--snapshot", str(DEMO), "--snapshot", str(bad), "--from", "a", "--to", "b"
    )
    assert out.returncode == 2
    assert out.stderr == (
        f"podpath: {bad}: snapshot is not valid JSON: a string is not terminated or holds a "
        "raw control character (line 2, column 23)\n"
    )


def test_missing_snapshot_file_is_named() -> None:
    """A file that does not exist is named with the system's reason."""
    out = _podpath("trace", "--snapshot", "/nonexistent/n1.json", "--from", "a", "--to", "b")
    assert out.returncode == 2
    assert out.stderr == (
        "podpath: cannot read snapshot /nonexistent/n1.json: No such file or directory\n"
    )


def test_a_port_out_of_range_is_blamed_not_the_service() -> None:
    """`--to default/web:99999`: the port is not a port; the Service exists."""
    out = _podpath("trace", "--snapshot", str(DEMO), "--from", "node", "--to", "default/web:99999")
    assert out.returncode == 2
    assert out.stderr == "podpath: '99999' is not a port number (1-65535)\n"


def test_a_port_the_service_lacks_lists_the_ports_it_has() -> None:
    """A valid port the Service does not serve: its ports are listed."""
    out = _podpath("trace", "--snapshot", str(DEMO), "--from", "node", "--to", "default/web:8443")
    assert out.returncode == 2
    assert out.stderr == (
        "podpath: Service default/web has no tcp port '8443' (its ports: 80 (http))\n"
    )


def test_gap_lines_name_the_capability_once(tmp_path: Path) -> None:
    """A reason that already says "(needs CAP_X)" is not followed by a second "(needs CAP_X)"."""
    snapshot = Snapshot(
        SCHEMA_VERSION,
        0.0,
        NodeFacts("n", "k"),
        1,
        gaps=(
            Gap(
                "/proc/*/fd",
                "3 processes: permission denied (needs CAP_SYS_PTRACE)",
                "permission",
                "CAP_SYS_PTRACE",
            ),
            Gap("conntrack -L -o extended", "you must be root", "permission", "CAP_NET_ADMIN"),
        ),
    )
    path = tmp_path / "gaps.json"
    path.write_text(codec.dumps(snapshot))
    out = _podpath("ls", "pods", "--snapshot", str(path))
    assert out.returncode == 0
    assert out.stderr.splitlines()[1:] == [
        "  /proc/*/fd: 3 processes: permission denied (needs CAP_SYS_PTRACE) [permission]",
        "  conntrack -L -o extended: you must be root [permission] (needs CAP_NET_ADMIN)",
    ]


def test_control_characters_in_a_file_name_are_shown_not_sent(tmp_path: Path) -> None:
    """An error quoting a hostile file name makes its ESC visible instead of printing it."""
    name = tmp_path / "x\x1b]2;PWNED\x07.json"
    out = _podpath("ls", "pods", "--snapshot", str(name))
    assert out.returncode == 2
    assert "\x1b" not in out.stderr and "\x07" not in out.stderr
    assert "x\\x1b]2;PWNED\\x07.json" in out.stderr


def test_an_unexpected_error_is_one_sentence_and_a_report_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A bug in a command prints one inert sentence naming a private report, exit 1."""
    import podpath.listing
    from podpath.cli import main

    def broken(*_: object) -> None:
        raise ValueError("no row for pod \x1b]2;PWNED\x07")

    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.setattr(podpath.listing, "listing", broken)
    assert main(["ls", "pods", "--snapshot", str(DEMO)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "\x1b" not in err
    head, _, report = err.strip().partition("; details in ")
    assert head == (
        "podpath: ls failed unexpectedly (ValueError: no row for pod \\x1b]2;PWNED\\x07)"
    )
    text = Path(report).read_text()
    assert "Traceback" in text and "ValueError" in text
    assert Path(report).parent == tmp_path / "state" / "podpath" / "crashes"
