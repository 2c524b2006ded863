"""The dataclass methods' code kept between runs (podpath.dataclass_code): a class made
from kept code is the class `@dataclass` makes, the cache is used when it can be and
ignored when it cannot, and the podpath command writes it as Python writes bytecode."""

from __future__ import annotations

import dataclasses
import marshal
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from importlib.util import MAGIC_NUMBER
from pathlib import Path
from types import CodeType

import pytest

from podpath import dataclass_code
from podpath.dataclass_code import HEADER, CodeCache, cache_path

DEMO = Path(dataclass_code.__file__).parent / "data" / "demo-snapshot.json"


@pytest.fixture
def through(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[CodeCache], None]]:
    """Make dataclasses compile through a given cache for the test's length."""

    def use(cache: CodeCache) -> None:
        monkeypatch.setattr(dataclasses, "exec", cache.exec, raising=False)

    yield use


def _make_point() -> type:
    @dataclasses.dataclass(frozen=True, order=True)
    class Point:
        """A frozen, ordered class with a default and a factory."""

        x: int
        y: int = 2
        tags: tuple[str, ...] = dataclasses.field(default_factory=tuple)

    return Point


def _behaviour(point: type) -> tuple[object, ...]:
    a, b = point(1), point(1, 3, ("t",))
    try:
        a.x = 5
        frozen = "not frozen"
    except dataclasses.FrozenInstanceError:
        frozen = "frozen"
    return (
        repr(a).split(".")[-1],
        repr(b).split(".")[-1],
        a == point(1),
        a < b,
        hash(a) == hash(point(1)),
        frozen,
        [f.name for f in dataclasses.fields(point)],
    )


def _compiled_into(path: Path, through: Callable[[CodeCache], None]) -> CodeCache:
    """A cache of `path` that has just compiled a class's methods."""
    cache = CodeCache(str(path))
    through(cache)
    _make_point()
    return cache


def test_a_class_from_kept_code_behaves_as_dataclass_makes_it(
    tmp_path: Path, through: Callable[[CodeCache], None]
) -> None:
    """Compiled fresh, then from a saved cache, the class does what the plain one does."""
    plain = _behaviour(_make_point())
    path = str(tmp_path / "cache.marshal")
    first = CodeCache(path)
    through(first)
    assert _behaviour(_make_point()) == plain
    assert first.new > 0  # its texts were compiled here
    first.save(asked=True)

    second = CodeCache(path)
    assert set(second.kept) == set(first.kept)
    through(second)
    assert _behaviour(_make_point()) == plain
    assert second.new == 0  # nothing compiled: every text's code came from the file


SWAPPED_INIT = compile(
    "def __create_fn__(**kw):\n def __init__(self, *a, **k):\n  raise LookupError('kept')\n"
    " return __init__\n",
    "<string>",
    "exec",
)


@pytest.mark.parametrize(
    "swapped", [SWAPPED_INIT, marshal.dumps(SWAPPED_INIT)], ids=["in-use", "as-read"]
)
def test_kept_code_is_what_runs(
    tmp_path: Path, through: Callable[[CodeCache], None], swapped: CodeType | bytes
) -> None:
    """The cache's code is executed, not the text: a kept entry is what the class gets,
    whether it has run already or is still marshalled as the file holds it."""
    cache = _compiled_into(tmp_path / "c.marshal", through)
    init_text = next(t for t in cache.kept if "def __init__(" in t)
    cache.kept[init_text] = swapped
    point = _make_point()
    with pytest.raises(LookupError, match="kept"):
        point(1)


def test_an_entry_that_is_not_code_is_compiled_again(
    tmp_path: Path, through: Callable[[CodeCache], None]
) -> None:
    path = tmp_path / "c.marshal"
    _compiled_into(path, through).save(asked=True)
    held = marshal.loads(path.read_bytes()[len(HEADER) :])
    init_text = next(t for t in held if "def __init__(" in t)
    path.write_bytes(HEADER + marshal.dumps({**held, init_text: marshal.dumps("not code")}))
    cache = CodeCache(str(path))
    through(cache)
    assert _behaviour(_make_point()) == _behaviour(_plain_point())
    assert cache.new == 1


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"not a cache at all",
        b"podpath dataclass code cpython-0 another python\n" + marshal.dumps({}),
        HEADER + b"\xff\x00 truncated",
        HEADER + marshal.dumps(["a list"]),
        HEADER + marshal.dumps({"text": "not code", 3: marshal.dumps(compile("", "", "exec"))}),
        b"podpath dataclass code "
        + MAGIC_NUMBER
        + b"\n"
        + marshal.dumps({"t": compile("", "", "exec")}),
    ],
    ids=[
        "empty",
        "garbage",
        "another-python",
        "truncated",
        "not-a-dict",
        "wrong-types",
        "format-1",
    ],
)
def test_an_unusable_file_is_ignored(
    tmp_path: Path, content: bytes, through: Callable[[CodeCache], None]
) -> None:
    path = tmp_path / "c.marshal"
    path.write_bytes(content)
    cache = CodeCache(str(path))
    assert cache.kept == {}
    through(cache)
    assert _behaviour(_make_point()) == _behaviour(_plain_point())


def _plain_point() -> type:
    saved = dataclasses.__dict__.pop("exec", None)
    try:
        return _make_point()
    finally:
        if saved is not None:
            dataclasses.exec = saved  # type: ignore[attr-defined]


def test_written_only_when_something_was_compiled(
    tmp_path: Path, through: Callable[[CodeCache], None], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "dont_write_bytecode", False)
    path = tmp_path / "c.marshal"
    cache = CodeCache(str(path))
    cache.save()
    assert not path.exists()  # nothing new
    through(cache)
    _make_point()
    cache.save()
    assert path.read_bytes().startswith(HEADER)
    stamp = path.stat().st_mtime_ns
    _compiled_into(path, through).save()
    assert path.stat().st_mtime_ns == stamp  # all kept: not rewritten


def test_dont_write_bytecode_is_honoured_unless_asked(
    tmp_path: Path, through: Callable[[CodeCache], None], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    path = tmp_path / "c.marshal"
    cache = _compiled_into(path, through)
    assert cache.save() is False
    assert not path.exists()
    assert cache.save(asked=True) is True
    assert path.exists()


def test_a_failed_write_leaves_no_part_file(
    tmp_path: Path, through: Callable[[CodeCache], None], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Root writes anywhere: a failing rename stands for a read-only or full disk."""
    monkeypatch.setattr(sys, "dont_write_bytecode", False)
    path = tmp_path / "c.marshal"
    cache = _compiled_into(path, through)

    def refuse(src: str, dst: str) -> None:
        raise OSError(30, "Read-only file system")

    monkeypatch.setattr(os, "replace", refuse)
    assert cache.save() is False
    assert list(tmp_path.iterdir()) == []
    assert cache.new > 0  # still unsaved: a later save tries again


def test_past_the_bound_only_what_was_used_is_kept(
    tmp_path: Path, through: Callable[[CodeCache], None], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "c.marshal"
    stale = {f"# text of a class since changed {n}": compile("", "", "exec") for n in range(5)}
    path.write_bytes(HEADER + marshal.dumps(stale))
    monkeypatch.setattr(dataclass_code, "MOST_ENTRIES", 3)
    cache = _compiled_into(path, through)
    cache.save(asked=True)
    kept = CodeCache(str(path)).kept
    assert kept and not set(kept) & set(stale)
    assert set(kept) == cache.used


def test_the_cache_lives_where_python_puts_bytecode(monkeypatch: pytest.MonkeyPatch) -> None:
    tag = sys.implementation.cache_tag
    monkeypatch.setattr(sys, "pycache_prefix", None)
    assert cache_path("/usr/lib/py/podpath") == (
        f"/usr/lib/py/podpath/__pycache__/dataclass-code.{tag}.marshal"
    )
    monkeypatch.setattr(sys, "pycache_prefix", "/var/cache/pyc")
    assert cache_path("/usr/lib/py/podpath") == (
        f"/var/cache/pyc/usr/lib/py/podpath/dataclass-code.{tag}.marshal"
    )


def _run_podpath(prefix: Path, *words: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(prefix)
    return subprocess.run(
        [sys.executable, "-m", "podpath", *words],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


def _cache_files(prefix: Path) -> list[Path]:
    return sorted(prefix.rglob("dataclass-code.*.marshal"))


@pytest.mark.parametrize(
    "words",
    [
        ("ls", "namespaces", "--json"),  # ends through the interpreter's exit (atexit)
        ("doctor", "--snapshot", str(DEMO), "--json"),  # ends at once, by os._exit
    ],
    ids=["atexit", "exit-at-once"],
)
def test_the_podpath_command_writes_and_then_uses_the_cache(
    tmp_path: Path, words: tuple[str, ...]
) -> None:
    first = _run_podpath(tmp_path, *words)
    assert first.returncode in (0, 1), first.stderr
    files = _cache_files(tmp_path)
    assert len(files) == 1, first.stderr
    held = CodeCache(str(files[0])).kept
    assert any("__init__" in text for text in held)
    stamp = files[0].stat().st_mtime_ns
    second = _run_podpath(tmp_path, *words)
    assert second.returncode == first.returncode
    assert files[0].stat().st_mtime_ns == stamp  # everything came from it: not rewritten
