"""Loading a snapshot file costs bounded memory, and special files are refused unopened.

docs/reliability.md row 12: a valid JSON file holding one large array under a key the
model does not know was built whole before "missing field" could be said (26x its size
in memory); a FIFO given as --snapshot blocked forever.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from podpath.snapshot import codec

# Prints the loader's message and how much the peak RSS grew while loading (KiB).
_MEASURE = """
import resource, sys
from podpath.snapshot import codec
path = sys.argv[1]
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    codec.load_path(path)
    message = "loaded"
except codec.SnapshotError as exc:
    message = str(exc)
grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
print(grown)
print(message)
"""


def _load_in_child(path: Path) -> tuple[int, str]:
    """(peak RSS growth in bytes, message) of loading `path` in a fresh interpreter."""
    done = subprocess.run(
        [sys.executable, "-c", _MEASURE, str(path)],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    grown, message = done.stdout.splitlines()
    return int(grown) * 1024, message


def _write_with_array(path: Path, key_prefix: str, item: str, size: int) -> int:
    """A JSON object whose `key_prefix` part is followed by a list of `item`s, about `size` bytes."""
    count = size // (len(item) + 2)
    with path.open("w") as fp:
        fp.write(key_prefix + "[")
        fp.write(", ".join([item] * count))
        fp.write("]}")
    return path.stat().st_size


def test_large_unknown_array_is_refused_in_about_the_files_size(tmp_path: Path) -> None:
    """48 MiB of small objects under an unknown key: refused for the missing field, in ~1x the file."""
    path = tmp_path / "junk.json"
    size = _write_with_array(
        path, '{"schema_version": 1, "junk": ', '{"a": [1, "xy", {}], "b": null}', 48 << 20
    )
    grown, message = _load_in_child(path)
    assert message == f"{path}: snapshot: missing field 'taken_at'"
    # The bytes read, plus little: building the list took 26x the file before.
    assert grown <= 1.25 * size + (16 << 20), (grown, size)


def test_valid_snapshot_too_costly_to_build_is_refused_within_its_budget(tmp_path: Path) -> None:
    """Valid but object-heavy (each 15-byte item becomes a namespace object): refused, memory bounded."""
    path = tmp_path / "heavy.json"
    head = (
        '{"schema_version": 1, "taken_at": 1.0, "node": {"hostname": "n", "kernel": "k"}, '
        '"root_netns": 1, "netns": '
    )
    size = _write_with_array(path, head, '{"inode": 1}', 24 << 20)
    grown, message = _load_in_child(path)
    assert "too large to load" in message, message
    budget = max(codec.LOAD_MEMORY_FLOOR, codec.LOAD_MEMORY_RATIO * size)
    assert grown <= size + budget, (grown, size, budget)


def test_unknown_keys_are_skipped_and_known_ones_kept() -> None:
    """A newer writer's extra keys (any JSON, nested) are ignored; every known field still loads."""
    raw = json.loads(
        codec.dumps(codec.loads(Path(_DEMO).read_bytes())),
    )
    raw["future"] = {"deep": [[{"x": [1, 2.5e3, None, True, "\\u202e"]}], {}], "s": "a\\"}
    raw["node"]["also_new"] = [[[[[]]]]]
    loaded = codec.loads(json.dumps(raw))
    assert loaded == codec.loads(Path(_DEMO).read_bytes())


_DEMO = str(Path(codec.__file__).resolve().parents[1] / "data" / "demo-snapshot.json")


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ('{"schema_version": 1, "x": [1, 2,]}', "not valid JSON"),
        ('{"schema_version": 1, "x": [1 2]}', "not valid JSON"),
        ('{"schema_version": 1, "x": ["a\x01"]}', "not valid JSON"),
        ('{"schema_version": 1, "x": [' + "[" * 40 + "]" * 40 + "]}", "nested deeper"),
        ('{"schema_version": 1, "x": [NaN]}', "not valid JSON"),
        ('{"schema_version": 1, "x": 1, "x": 2}', "twice"),
    ],
)
def test_unknown_values_are_checked_not_built(text: str, reason: str) -> None:
    """What is skipped is still checked: trailing commas, raw controls, bombs, duplicates."""
    with pytest.raises(codec.SnapshotError, match=reason):
        codec.loads(text)


def test_error_message_has_line_and_column_once() -> None:
    """An unterminated string is located by line and column, without "at at"."""
    with pytest.raises(codec.SnapshotError) as info:
        codec.loads('{"schema_version": 1,\n "node": {"hostname": "oops}}')
    message = str(info.value)
    assert "at at" not in message
    assert message == (
        "snapshot is not valid JSON: a string is not terminated or holds a raw control "
        "character (line 2, column 23)"
    )


def _podpath(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "podpath", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        check=False,
    )


@pytest.mark.parametrize("command", [("ls", "pods"), ("trace", "--from", "a", "--to", "b")])
def test_fifo_is_refused_without_blocking(tmp_path: Path, command: tuple[str, ...]) -> None:
    """A FIFO as --snapshot is refused at once (it used to block forever waiting for a writer)."""
    fifo = tmp_path / "snap.fifo"
    os.mkfifo(fifo)
    out = _podpath(*command, "--snapshot", str(fifo))
    assert out.returncode == 2
    assert out.stderr == f"podpath: {fifo}: snapshot is a FIFO, not a regular file\n"


@pytest.mark.parametrize(
    ("path", "kind"), [("/dev/zero", "a character device"), ("/", "a directory")]
)
def test_devices_and_directories_are_refused(path: str, kind: str) -> None:
    """/dev/zero would be read to the size cap; a directory is not a file: both refused by type."""
    out = _podpath("ls", "pods", "--snapshot", path)
    assert out.returncode == 2
    assert out.stderr == f"podpath: {path}: snapshot is {kind}, not a regular file\n"


def test_stdin_is_read_by_trace_as_by_ls() -> None:
    """`--snapshot -` reads stdin for trace as it does for ls."""
    demo = Path(_DEMO).read_text()
    for command in (("ls", "pods"), ("trace", "--from", "node", "--to", "10.96.0.1:443")):
        done = subprocess.run(
            [sys.executable, "-m", "podpath", *command, "--snapshot", "-"],
            input=demo,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout
