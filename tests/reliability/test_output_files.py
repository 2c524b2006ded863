"""Files podpath writes are whole or absent, and never written through a planted link.

docs/reliability.md row 18: `snapshot -o FILE` truncated FILE and then wrote it, so a
signal in between lost the previous content; and a root tool that opens a path in a
world-writable directory follows whatever symlink was planted there.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from podpath.output_file import OutputError, write_text


def _temp_files(directory: Path) -> list[str]:
    return [p.name for p in directory.iterdir() if p.name.endswith(".podpath-tmp")]


def test_planted_symlink_is_refused_and_its_target_untouched(tmp_path: Path) -> None:
    """A symlink at the output path (to a root-only file) is refused; the file keeps its bytes."""
    secret = tmp_path / "shadow"
    secret.write_text("root:secret\n")
    secret.chmod(0o600)
    link = tmp_path / "snapshot.json"
    link.symlink_to(secret)
    with pytest.raises(OutputError, match="is a symbolic link"):
        write_text(str(link), "{}\n")
    assert secret.read_text() == "root:secret\n"
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    assert link.is_symlink()
    assert _temp_files(tmp_path) == []


def test_dangling_symlink_is_refused_and_nothing_created(tmp_path: Path) -> None:
    """A link to a file that does not exist yet is not followed to create it."""
    link = tmp_path / "out.json"
    link.symlink_to(tmp_path / "created-through-link")
    with pytest.raises(OutputError, match="is a symbolic link"):
        write_text(str(link), "{}\n")
    assert not (tmp_path / "created-through-link").exists()


def test_existing_file_is_replaced_whole_keeping_its_mode(tmp_path: Path) -> None:
    """Replacing swaps in a new inode with the whole text; the permission bits are kept."""
    out = tmp_path / "node.json"
    out.write_text("old\n")
    out.chmod(0o640)
    old_inode = out.stat().st_ino
    written = write_text(str(out), "new\n")
    assert written == str(out)
    assert out.read_text() == "new\n"
    assert out.stat().st_ino != old_inode  # renamed over, never truncated in place
    assert stat.S_IMODE(out.stat().st_mode) == 0o640
    assert _temp_files(tmp_path) == []


def test_new_file_is_private_and_named_absolutely(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A new file is 0600 (snapshots hold command lines), and its absolute path is returned."""
    monkeypatch.chdir(tmp_path)
    written = write_text("rel.json", "{}\n")
    assert written == str(tmp_path / "rel.json")
    assert stat.S_IMODE((tmp_path / "rel.json").stat().st_mode) == 0o600


def test_devices_are_written_in_place_never_replaced() -> None:
    """/dev/null is written to, not renamed over (which would replace the device node)."""
    before = os.stat("/dev/null")
    write_text("/dev/null", "{}\n")
    after = os.stat("/dev/null")
    assert stat.S_ISCHR(after.st_mode)
    assert (after.st_ino, after.st_rdev) == (before.st_ino, before.st_rdev)


def test_fifo_is_written_in_place(tmp_path: Path) -> None:
    """A named pipe gets the text (a reader sees it whole), and stays a pipe."""
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    try:
        write_text(str(fifo), "through the pipe\n")
        assert os.read(reader, 100) == b"through the pipe\n"
    finally:
        os.close(reader)
    assert stat.S_ISFIFO(fifo.stat().st_mode)


def test_missing_directory_is_one_sentence(tmp_path: Path) -> None:
    """A path in a directory that does not exist gives the reason, nothing else."""
    with pytest.raises(OutputError) as info:
        write_text(str(tmp_path / "nope" / "x.json"), "{}\n")
    assert str(info.value) == f"cannot write {tmp_path}/nope/x.json: No such file or directory"


def test_directory_as_output_is_refused(tmp_path: Path) -> None:
    """A directory given as the output file is refused, not replaced."""
    (tmp_path / "d").mkdir()
    with pytest.raises(OutputError, match="is a directory"):
        write_text(str(tmp_path / "d"), "{}\n")
    assert (tmp_path / "d").is_dir()
