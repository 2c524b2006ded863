"""The compiled methods `@dataclass` generates, kept between runs like Python's own .pyc.

`@dataclass` writes each class's `__init__`, `__repr__`, `__eq__`, `__setattr__`... as
source text and compiles it with `exec` every time the module is imported: ~400
methods and 30-45 ms of every `podpath` command's start, most of `podpath.snapshot.model`'s
import (docs/performance.md, "Start-up: the dataclasses' methods"). The text of a
method is all its compiled code depends on, so the code compiled once from a text is
kept, keyed by that text, in a marshal file beside podpath's own bytecode, and `exec`
runs the kept code instead of compiling the text again. The snapshot codec's checks,
generated from the model's fields, are kept the same way (`exec_kept`).

Only where the text is compiled changes: what runs is what `exec(text, ...)` would
have compiled (the same flags: none, as `dataclasses` has no `__future__` imports).
The file is written the way Python writes bytecode: not at all under
`PYTHONDONTWRITEBYTECODE`, under `PYTHONPYCACHEPREFIX` when set, atomically, and
silently skipped where the folder is read-only; one that cannot be read, or was
written by another Python, is not used.
"""

from __future__ import annotations

import atexit
import builtins
import dataclasses
import marshal
import os
import sys
from importlib._bootstrap_external import MAGIC_NUMBER
from types import CodeType
from typing import Any

# Entries kept at most: past this, a save keeps only what this process used, so texts of
# classes since changed do not pile up (a podpath command uses ~400, the TUI ~900).
MOST_ENTRIES = 4000
# Written first in the file (2: each text's code marshalled on its own, see `_read`):
# code objects are read only by a Python of the same bytecode,
# told by the magic number that begins its .pyc files (an image is built by another
# build of the same Python: image/build).
HEADER = b"podpath dataclass code 2 " + MAGIC_NUMBER + b"\n"


class CodeCache:
    """Code compiled from `@dataclass`'s texts, loaded from and saved to one file."""

    def __init__(self, path: str | None) -> None:
        self.path = path
        # A text's code as read from the file (bytes) until it is first used.
        self.kept: dict[str, CodeType | bytes] = _read(path) if path else {}
        self.used: set[str] = set()
        self.new = 0

    def exec(self, source: Any, globals: Any = None, locals: Any = None, **options: Any) -> None:
        """`exec`, with a text's code compiled once for all runs."""
        if type(source) is str:
            self.used.add(source)
            source = self._code(source)
        builtins.exec(source, globals, locals, **options)

    def _code(self, text: str) -> CodeType:
        """The code compiled from `text`: kept, or compiled now and kept."""
        kept = self.kept.get(text)
        code = _loaded(kept) if isinstance(kept, bytes) else kept
        if code is None:
            code = compile(text, "<string>", "exec", dont_inherit=True)
            self.new += 1
        self.kept[text] = code
        return code

    def save(self, *, asked: bool = False) -> bool:
        """Write the file if this process compiled a text it did not hold (atomically);
        under PYTHONDONTWRITEBYTECODE only when `asked`, as `compileall` writes anyway.
        True when the file holds everything this process compiled."""
        if self.path is None:
            return False
        if not self.new:
            return True
        if sys.dont_write_bytecode and not asked:
            return False
        kept = self.kept
        if len(kept) > MOST_ENTRIES:
            kept = {text: code for text, code in kept.items() if text in self.used}
        part = f"{self.path}.{os.getpid()}.tmp"
        try:
            os.makedirs(os.path.dirname(self.path), exist_ok=True)
            with open(part, "wb") as out:
                out.write(HEADER + marshal.dumps({t: _marshalled(c) for t, c in kept.items()}))
            os.replace(part, self.path)
        except OSError:
            _remove_quietly(part)  # a read-only install, a full disk: compiled again next time
            return False
        self.new = 0
        return True


def _read(path: str) -> dict[str, CodeType | bytes]:
    """The kept code in `path`, each text's still marshalled; nothing when the file is
    absent, unreadable or another Python's.

    A command uses a third of the ~1,300 texts the file holds: unmarshalling every code
    object was 4-5 ms of each start, the texts with their code as bytes 0.5 ms, and the
    ~400 used then ~1.3 ms (docs/performance.md, "Start-up: the dataclasses' methods").
    """
    try:
        with open(path, "rb") as file:
            data = file.read()
    except OSError:
        return {}
    if not data.startswith(HEADER):
        return {}
    try:
        kept = marshal.loads(data[len(HEADER) :])
    except (EOFError, ValueError, TypeError):
        return {}
    if not isinstance(kept, dict):
        return {}
    return {t: c for t, c in kept.items() if type(t) is str and type(c) is bytes}


def _loaded(data: bytes) -> CodeType | None:
    """The code object marshalled in `data`, or None if it holds anything else."""
    try:
        code = marshal.loads(data)
    except (EOFError, ValueError, TypeError):
        return None
    return code if type(code) is CodeType else None


def _marshalled(code: CodeType | bytes) -> bytes:
    return code if type(code) is bytes else marshal.dumps(code)


def _remove_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def cache_path(package_dir: str) -> str:
    """Where the cache of the package in `package_dir` lives: its `__pycache__`, or the
    same folder under `sys.pycache_prefix`, as Python places bytecode."""
    name = f"dataclass-code.{sys.implementation.cache_tag}.marshal"
    prefix = sys.pycache_prefix
    if prefix:
        return os.path.join(prefix, os.path.abspath(package_dir).lstrip(os.sep), name)
    return os.path.join(package_dir, "__pycache__", name)


# podpath's own folder, as it is imported (an editable install's tree of links too).
_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
_installed: CodeCache | None = None


def install() -> None:
    """Compile `@dataclass`'s methods through the cache from now on (once per process;
    the podpath command does it as it starts, and saves the cache as it ends)."""
    global _installed
    if _installed is not None or getattr(dataclasses, "exec", builtins.exec) is not builtins.exec:
        return  # already ours, or someone else's: leave theirs alone
    cache = CodeCache(cache_path(_PACKAGE_DIR))
    # `dataclasses` calls the name `exec`, found in its module's globals before builtins.
    dataclasses.exec = cache.exec  # type: ignore[attr-defined]
    _installed = cache
    atexit.register(save)


def exec_kept(text: str, namespace: dict[str, Any]) -> None:
    """`exec(text, namespace)` for podpath's own generated code (the snapshot codec's
    checks): through the cache once installed, so that it too is compiled once for all
    runs, else compiled now."""
    if _installed is not None:
        _installed.exec(text, namespace)
    else:
        builtins.exec(text, namespace)


def save() -> None:
    """Write what this process compiled, if anything (before the process ends)."""
    if _installed is not None:
        _installed.save()


def compile_all() -> int:
    """Import every podpath module, so that the cache holds every dataclass's methods,
    and write it: what an install or an image build runs after `compileall`, for a
    start that compiles nothing where the folder is read-only (image/build)."""
    import importlib
    import pkgutil

    install()
    assert _installed is not None
    for module in pkgutil.walk_packages([_PACKAGE_DIR], "podpath."):
        if not module.name.endswith("__main__"):
            importlib.import_module(module.name)
    from podpath.snapshot.codec import compile_checks

    compile_checks()
    if not _installed.save(asked=True):
        sys.stderr.write(f"podpath: cannot write {_installed.path}\n")
        return 1
    sys.stdout.write(f"{len(_installed.kept)} dataclass methods compiled in {_installed.path}\n")
    return 0


if __name__ == "__main__":
    # Run as `python -m`: the module the rest of podpath imports is another copy.
    from podpath.dataclass_code import compile_all as _compile_all

    sys.exit(_compile_all())
