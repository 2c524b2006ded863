"""The composition root: `podpath screenshot`, `demo`'s fallback, import hygiene (node actions: tests/collectors/test_actions.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from podpath.cli import CliError, main
from podpath.cli import tui as cli_tui
from podpath.tui.app import PodpathApp

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "snapshot.json"


def test_parse_size_accepts_cols_x_rows() -> None:
    """`120x36` is 120 columns by 36 rows."""
    assert cli_tui.parse_size("120x36") == (120, 36)


def test_parse_size_refuses_nonsense() -> None:
    """A malformed size is a clean CLI error."""
    with pytest.raises(CliError):
        cli_tui.parse_size("wide")


def test_screenshot_writes_the_screen_after_keys(tmp_path: Path) -> None:
    """`podpath screenshot --keys : pods enter` writes an SVG of the pods list."""
    out = tmp_path / "pods.svg"
    code = main(
        [
            "screenshot",
            "--snapshot",
            str(FIXTURE),
            "--keys",
            "colon",
            "p",
            "o",
            "d",
            "s",
            "enter",
            "-o",
            str(out),
        ]
    )
    svg = out.read_text()
    assert code == 0 and svg.startswith("<svg") and "web-7d4b9c6f5d-x7k2p" in svg


def test_tui_refuses_a_broken_snapshot_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A truncated snapshot is one clear sentence and exit code 1, not a traceback."""
    bad = tmp_path / "bad.json"
    bad.write_text(FIXTURE.read_text()[:500])
    assert main(["tui", "--snapshot", str(bad)]) == 1
    assert "not valid JSON" in capsys.readouterr().err


def test_bundled_demo_snapshot_loads() -> None:
    """The snapshot shipped in the package loads and holds pods."""
    assert cli_tui.bundled_snapshot().pods


def test_demo_without_a_lab_opens_the_bundled_snapshot_saying_why(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Where the lab cannot run, demo shows the bundled snapshot with the reason on screen."""
    shown: list[PodpathApp] = []
    monkeypatch.setattr(cli_tui, "demo_unavailable", lambda: "the lab needs root")
    monkeypatch.setattr(PodpathApp, "run", lambda self, *a, **k: shown.append(self))
    assert main(["demo"]) == 0
    source = shown[0].source
    assert source.kind == "demo" and source.note is not None and "the lab needs root" in source.note


def test_tui_never_loads_the_collectors() -> None:
    """Importing the whole app (and building it) loads no podpath.collectors module."""
    code = (
        "import sys\n"
        "from podpath.tui.app import create_app\n"
        "from podpath.tui.tour import SHOTS\n"
        "bad = [m for m in sys.modules if m.startswith('podpath.collectors')]\n"
        "assert not bad, bad\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
