"""podpath's own directories on the machine it runs on (`podpath.safe_files`): the state
directory (crash reports, captures, snapshots written from the TUI) and the cache
directory (`trace --snapshot`'s indexes), both private to the user."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from podpath.safe_files import cache_dir, state_dir


@pytest.mark.parametrize(
    ("variable", "made", "part"),
    [("XDG_STATE_HOME", state_dir, "captures"), ("XDG_CACHE_HOME", cache_dir, "trace-index")],
)
def test_each_directory_is_made_private_under_its_xdg_variable(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    variable: str,
    made: Callable[[str], str | None],
    part: str,
) -> None:
    """$XDG_STATE_HOME/podpath/PARTS (captures, crash reports: never the CWD) and
    $XDG_CACHE_HOME/podpath/PARTS, made 0700 where missing."""
    monkeypatch.setenv(variable, str(tmp_path / "xdg"))
    found = made(part)
    assert found == str(tmp_path / "xdg" / "podpath" / part)
    assert oct(os.stat(found).st_mode & 0o777) == oct(0o700)
    assert made(part) == found  # made once, found again


def test_cache_dir_defaults_to_the_home_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Unset or relative, $XDG_CACHE_HOME is ~/.cache (the XDG base directory spec)."""
    monkeypatch.setenv("HOME", str(tmp_path))
    for value in ("", "relative/cache"):
        monkeypatch.setenv("XDG_CACHE_HOME", value)
        assert cache_dir("x") == str(tmp_path / ".cache" / "podpath" / "x")


def test_a_cache_dir_others_can_use_is_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A directory others may write, or a file in the way, gives no cache directory (a
    temporary one would never be found again), where the state directory falls back to
    a fresh private one."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    shared = tmp_path / "podpath" / "shared"
    shared.mkdir(parents=True)
    shared.chmod(0o777)
    assert cache_dir("shared") is None
    (tmp_path / "podpath" / "file").write_text("")
    assert cache_dir("file") is None
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    fallback = state_dir("shared")
    assert not fallback.startswith(str(tmp_path)) and os.path.isdir(fallback)
    assert oct(os.stat(fallback).st_mode & 0o777) == oct(0o700)
    os.rmdir(fallback)
