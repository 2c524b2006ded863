"""`w` writes the snapshot to a new file: never over one, never through a planted symlink, and
says where (a bare name goes to podpath's private directory, not the CWD)."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from podpath.snapshot.codec import load_path
from podpath.snapshot.model import Snapshot
from podpath.tui.app import PodpathApp, file_word

SIZE = (120, 36)


async def _write(app: PodpathApp, pilot: object, answer: str | None) -> tuple[str, list[str]]:
    """Press w, answer the prompt (None keeps the default); the default and the notices."""
    await pilot.press("w")  # type: ignore[attr-defined]
    await pilot.pause()  # type: ignore[attr-defined]
    prompt = app.screen.query_one("#prompt-input")
    default = str(prompt.value)  # type: ignore[attr-defined]
    if answer is not None:
        prompt.value = answer  # type: ignore[attr-defined]
    await pilot.press("enter")  # type: ignore[attr-defined]
    await pilot.pause()  # type: ignore[attr-defined]
    return default, [n.message for n in app._notifications]


async def test_a_bare_name_goes_to_the_private_directory_and_is_named_absolutely(
    make_app: Callable[..., PodpathApp],
    fixed_snapshot: Snapshot,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The default name lands in $XDG_STATE_HOME/podpath/snapshots (0600), not in the CWD."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.chdir(tmp_path)
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        default, notices = await _write(app, pilot, None)
    saved = tmp_path / "state" / "podpath" / "snapshots" / default
    assert notices == [f"snapshot written to {saved}"]
    assert load_path(str(saved)) == fixed_snapshot and saved.stat().st_mode & 0o777 == 0o600
    assert not (tmp_path / default).exists()


async def test_w_never_writes_through_a_planted_symlink(
    make_app: Callable[..., PodpathApp], tmp_path: Path
) -> None:
    """A symlink at the typed path (in a sticky shared directory) leaves its target as it was."""
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)
    victim = tmp_path / "victim"
    victim.write_text("keep me")
    (shared / "snap.json").symlink_to(victim)
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        _default, notices = await _write(app, pilot, str(shared / "snap.json"))
    assert victim.read_text() == "keep me"
    assert notices and "already exists" in notices[-1]


async def test_the_default_name_keeps_a_hostile_hostname_out_of_the_path(
    make_app: Callable[..., PodpathApp],
    fixed_snapshot: Snapshot,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A node named `../../etc/cron.d/x` gives a plain file name in the private directory."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    node = dataclasses.replace(fixed_snapshot.node, hostname="../../etc/cron.d/x\x1b[2J")
    app = make_app(dataclasses.replace(fixed_snapshot, node=node))
    async with app.run_test(size=SIZE) as pilot:
        default, _notices = await _write(app, pilot, None)
    assert "/" not in default and "\x1b" not in default and not default.startswith(".")
    assert os.listdir(tmp_path / "state" / "podpath" / "snapshots") == [default]
    assert file_word("..") == "node"
