"""The test suite writes nothing to the user's own podpath state (tests/conftest.py).

62 crash reports of test runs had piled up in ~/.local/state/podpath/crashes: every
test now has XDG_STATE_HOME and XDG_CACHE_HOME of its own, and so do its subprocesses.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def test_each_test_has_its_own_state_and_cache_directories(tmp_path: Path) -> None:
    """XDG_STATE_HOME and XDG_CACHE_HOME are temporary, never the user's."""
    state = Path(os.environ["XDG_STATE_HOME"])
    cache = Path(os.environ["XDG_CACHE_HOME"])
    assert state.parent == cache.parent
    assert state.parent.parent == tmp_path.parent  # pytest's base temporary directory
    assert not state.is_relative_to(Path.home())


def test_a_crash_report_of_a_subprocess_lands_in_the_tests_directory() -> None:
    """A podpath subprocess that writes a crash report writes it under the test's directory."""
    script = (
        "from podpath.crash_report import write_report\n"
        "print(write_report(ValueError('made by a test'), 'testing isolation'))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    report = Path(out.stdout.strip())
    assert report.is_relative_to(Path(os.environ["XDG_STATE_HOME"]) / "podpath" / "crashes")
    assert "made by a test" in report.read_text()
