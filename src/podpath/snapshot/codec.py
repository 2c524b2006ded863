"""Snapshot <-> JSON, with a loader that refuses hostile or broken input in bounded memory.

`json.load` alone is not a safe loader (see docs/reliability.md): deep nesting raises
RecursionError, huge integers ValueError, NaN and duplicate keys are accepted, and it
builds everything before anything can be checked -- a 200 MB file holding one large
array under an unknown key took 5.2 GB and 39 s before "missing field" could be said.

So the loader reads the file's bytes once, against the model's types: each field is
built straight into its dataclass as it is read, a value of the wrong type is refused
where it stands, and the value of a key the model does not know (a newer writer's
field, or junk) is skipped with one regular-expression match that checks its strings
and brackets without building anything. What is built is charged to a memory budget
(`MAX_LOAD_MEMORY`, and a few times the file's size), so a file that is valid but
would not fit is refused with a sentence, not by the kernel's OOM killer. Only regular
files are read: a FIFO or a device given as a snapshot is refused without opening it.

Strings may carry lone surrogates (non-UTF-8 bytes read with surrogateescape);
`ensure_ascii=True` writes them as `\\udcXX` escapes, which load back unchanged.
"""

from __future__ import annotations

import codecs
import dataclasses
import errno
import json
import math
import operator
import os
import re
import stat
import sys
import types
import typing
from collections.abc import Callable
from functools import cache
from typing import IO, Any

from podpath.dataclass_code import exec_kept
from podpath.snapshot.model import SCHEMA_VERSION, IptablesDump, Snapshot

# json's own string scanner (C): unescapes and checks one string; typeshed omits it.
_scanstring: Callable[[str, int, bool], tuple[str, int]] = json.decoder.scanstring  # type: ignore[attr-defined]

MAX_SNAPSHOT_BYTES = 512 * 1024 * 1024
# What a load may hold at once: the file's bytes plus everything built from them.
MAX_LOAD_MEMORY = 1024 * 1024 * 1024
# Built objects may also take at most this many times the file's size (or the floor):
# real snapshots are mostly long strings and come out near 1x.
LOAD_MEMORY_RATIO = 8
LOAD_MEMORY_FLOOR = 64 * 1024 * 1024
MAX_DEPTH = 32
MAX_INT_DIGITS = 40
# How deep the model's own objects nest (snapshot.netns[].links[].addresses[]); the
# rest of MAX_DEPTH is what the value of an unknown key may use.
_MODEL_DEPTH = 8
_UTF8_CHUNK = 16 * 1024 * 1024
_DIGEST_SLICE = 1024 * 1024
# Strings longer than this are decoded from a memoryview, not from a copied slice.
_LONG_STRING = 4096


class SnapshotError(ValueError):
    """A snapshot file that cannot be used, with a one-sentence reason."""


# Values that are their own JSON: returned as they are without a call of to_jsonable.
_PLAIN = frozenset({str, int, float, bool, type(None)})


def to_jsonable(obj: Any) -> Any:
    """Turn a dataclass tree into plain JSON values (dicts, lists, str, numbers).

    A snapshot of the synthetic node holds ~18k dataclass objects and ~300k values
    beside its tools' output: asking `dataclasses.fields` and `is_dataclass` of each and
    calling this again for each str or number was 0.4 s of `podpath snapshot`'s main
    thread (docs/performance.md, "Encoding a snapshot"). Each class's field names are
    found once, and plain values are taken as they are.
    """
    fields = _fields_of(type(obj))
    if fields is not None:
        names, values_of = fields
        values = [v if type(v) in _PLAIN else to_jsonable(v) for v in values_of(obj)]
        return dict(zip(names, values, strict=True))
    if isinstance(obj, tuple | list):
        return [v if type(v) in _PLAIN else to_jsonable(v) for v in obj]
    if isinstance(obj, dict):
        return {str(k): v if type(v) in _PLAIN else to_jsonable(v) for k, v in obj.items()}
    return obj


_Fields = tuple[tuple[str, ...], Callable[[Any], tuple[Any, ...]]]
# Per type: a dataclass's fields (`_fields_of`), or None for any other type.
_FIELDS: dict[type, _Fields | None] = {}


def _fields_of(kind: type) -> _Fields | None:
    """A dataclass's field names, in order, and what reads their values as a tuple (in C);
    None for any other type."""
    try:
        return _FIELDS[kind]
    except KeyError:
        pass
    found: _Fields | None = None
    if dataclasses.is_dataclass(kind):
        names = tuple(f.name for f in dataclasses.fields(kind))
        if len(names) == 1:  # attrgetter of one name gives the value, not a tuple of it
            found = names, lambda obj: (getattr(obj, names[0]),)
        else:
            found = names, operator.attrgetter(*names) if names else lambda _obj: ()
    _FIELDS[kind] = found
    return found


def dumps(snapshot: Snapshot, indent: int | None = None) -> str:
    """Serialise a snapshot to JSON text (ASCII, so any byte survives)."""
    return json.dumps(to_jsonable(snapshot), ensure_ascii=True, indent=indent, allow_nan=False)


def dump(snapshot: Snapshot, fp: IO[str], indent: int | None = None) -> None:
    """Write a snapshot as JSON to a text file."""
    fp.write(dumps(snapshot, indent))


# --- reading the file -------------------------------------------------------------------


def load_path(path: str) -> Snapshot:
    """Read a snapshot file by path ('-' is stdin); every failure is a SnapshotError naming it."""
    data = read_path(path)
    try:
        return loads(data)
    except SnapshotError as exc:
        raise SnapshotError(f"{'stdin' if path == '-' else path}: {exc}") from None


def read_path(path: str) -> bytes:
    """The bytes of a snapshot file by path ('-' is stdin), refused as `load_path` refuses."""
    name = "stdin" if path == "-" else path
    try:
        return _read_capped(sys.stdin.buffer) if path == "-" else _read_regular_file(path)
    except SnapshotError as exc:
        raise SnapshotError(f"{name}: {exc}") from None
    except OSError as exc:
        raise SnapshotError(f"cannot read snapshot {name}: {exc.strerror or exc}") from None


def digest_path(path: str) -> bytes:
    """SHA-256 of a snapshot file's bytes, refused as `read_path` refuses, read in slices.

    What `trace --cache` keys on: read whole, the 28 MB of a 10k-Service snapshot were
    another 15-25 ms of copying into fresh memory for a cache hit that never parses it.
    """
    # Imported here: loading OpenSSL for it was 3-4 ms of every command's start (`ls
    # namespaces` among them), and only `trace --cache` digests a file.
    import hashlib

    try:
        before = os.stat(path)
        _check_regular(before)
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
        try:
            st = os.fstat(fd)
            _check_regular(st)
            if (st.st_dev, st.st_ino) != (before.st_dev, before.st_ino):
                raise OSError(errno.ESTALE, "the file was replaced while it was being opened")
            digest = hashlib.sha256()
            buffer = bytearray(_DIGEST_SLICE)
            view = memoryview(buffer)
            total = 0
            while count := os.readv(fd, [buffer]):
                total += count
                if total > MAX_SNAPSHOT_BYTES:
                    raise SnapshotError(_too_large())
                digest.update(view[:count])
            return digest.digest()
        finally:
            os.close(fd)
    except SnapshotError as exc:
        raise SnapshotError(f"{path}: {exc}") from None
    except OSError as exc:
        raise SnapshotError(f"cannot read snapshot {path}: {exc.strerror or exc}") from None


def _read_regular_file(path: str) -> bytes:
    """The bytes of a regular file, refusing FIFOs, devices and oversized files unread.

    Opening a FIFO blocks until a writer comes, and opening some devices acts (a
    watchdog starts counting, a tape rewinds): the type is checked before the open,
    and again on the opened file in case the path was swapped in between.
    """
    before = os.stat(path)
    _check_regular(before)
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    with os.fdopen(fd, "rb") as fp:
        st = os.fstat(fd)
        _check_regular(st)
        if (st.st_dev, st.st_ino) != (before.st_dev, before.st_ino):
            raise OSError(errno.ESTALE, "the file was replaced while it was being opened")
        return _read_capped(fp)


def _check_regular(st: os.stat_result) -> None:
    if stat.S_ISREG(st.st_mode):
        if st.st_size > MAX_SNAPSHOT_BYTES:
            raise SnapshotError(_too_large())
        return
    kinds = {
        stat.S_ISDIR: "a directory",
        stat.S_ISFIFO: "a FIFO",
        stat.S_ISCHR: "a character device",
        stat.S_ISBLK: "a block device",
        stat.S_ISSOCK: "a socket",
    }
    kind = next((name for test, name in kinds.items() if test(st.st_mode)), "not a file")
    raise SnapshotError(f"snapshot is {kind}, not a regular file")


def _too_large() -> str:
    return f"snapshot is larger than {MAX_SNAPSHOT_BYTES // 2**20} MiB"


def _read_capped(fp: IO[bytes]) -> bytes:
    data = fp.read(MAX_SNAPSHOT_BYTES + 1)
    if len(data) > MAX_SNAPSHOT_BYTES:
        raise SnapshotError(_too_large())
    return data


def load(fp: IO[bytes]) -> Snapshot:
    """Read a snapshot from a binary stream, refusing oversized input before reading it all."""
    try:
        data = _read_capped(fp)
    except OSError as exc:
        raise SnapshotError(f"cannot read snapshot: {exc.strerror or exc}") from None
    return loads(data)


def loads(text: str | bytes) -> Snapshot:
    """Parse and validate a snapshot; raise SnapshotError with a clear reason."""
    data = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text
    if len(data) > MAX_SNAPSHOT_BYTES:
        raise SnapshotError(_too_large())
    _check_utf8(data)
    decoder = _Decoder(data)
    try:
        return decoder.snapshot()
    except _Bad as bad:
        raise SnapshotError(bad.sentence(data)) from None
    except IndexError:
        raise SnapshotError(_syntax_sentence(data, len(data), "the text ends early")) from None


def _check_utf8(data: bytes) -> None:
    """Refuse bytes that are not UTF-8, a chunk at a time (no copy of the whole text)."""
    if data.isascii():
        return
    decoder = codecs.getincrementaldecoder("utf-8")()
    view = memoryview(data)
    for start in range(0, len(data), _UTF8_CHUNK):
        chunk = view[start : start + _UTF8_CHUNK]
        try:
            decoder.decode(chunk, final=start + _UTF8_CHUNK >= len(data))
        except UnicodeDecodeError as exc:
            raise SnapshotError(f"snapshot is not UTF-8 text (byte {start + exc.start})") from None


# --- errors -----------------------------------------------------------------------------


class _Bad(Exception):
    """A refusal found while decoding: a syntax error at a byte, or a field of the wrong kind."""

    def __init__(self, reason: str, pos: int | None = None, *, whole: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.pos = pos  # set for syntax errors: reported as a line and column
        self.whole = whole  # the reason is a sentence about the whole file
        self.path: list[str | int] = []  # field names and indexes, innermost first

    def at(self, step: str | int) -> _Bad:
        """Record that the error lies under `step` (a field name, list index or dict key)."""
        self.path.append(step)
        return self

    def sentence(self, data: bytes) -> str:
        """The one sentence the user sees."""
        if self.pos is not None:
            return _syntax_sentence(data, self.pos, self.reason)
        if self.whole:
            return self.reason
        where = "snapshot" + "".join(
            f"[{step}]"
            if isinstance(step, int)
            else f".{step}"
            if _FIELD_NAME.fullmatch(step)
            else f"[{step!r}]"
            for step in reversed(self.path)
        )
        return f"{where}: {self.reason}"


_FIELD_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _syntax_sentence(data: bytes, pos: int, reason: str) -> str:
    line = data.count(b"\n", 0, pos) + 1
    column = pos - (data.rfind(b"\n", 0, pos) + 1) + 1
    return f"snapshot is not valid JSON: {reason} (line {line}, column {column})"


def _found(data: bytes, pos: int) -> str:
    """What the value at `pos` is, for "expected X, found Y"."""
    if pos >= len(data):
        return "the end of the text"
    return _KINDS.get(data[pos], "something else")


_KINDS = {
    ord('"'): "a string",
    ord("{"): "an object",
    ord("["): "a list",
    ord("t"): "a boolean",
    ord("f"): "a boolean",
    ord("n"): "null",
    **{ord(c): "a number" for c in "-0123456789"},
}


def _expected(what: str, data: bytes, pos: int) -> _Bad:
    """A wrong-kind error, or the syntax error it really is when no value starts at `pos`."""
    found = _found(data, pos)
    if found == "something else":
        return _no_value(data, pos)
    return _Bad(f"expected {what}, found {found}")


def _no_value(data: bytes, pos: int) -> _Bad:
    for constant in (b"NaN", b"Infinity", b"-Infinity"):
        if data.startswith(constant, pos):
            return _Bad(
                f"snapshot contains {constant.decode()}, which is not valid JSON data", whole=True
            )
    return _Bad("expected a value", pos)


# --- the grammar, as byte patterns ------------------------------------------------------

_WS_BYTES = b" \t\n\r"
_WS = re.compile(rb"[ \t\n\r]*+")


def _ws(data: bytes, pos: int) -> int:
    """The position after the whitespace at `pos`."""
    if pos < len(data) and data[pos] in _WS_BYTES:
        match = _WS.match(data, pos)
        assert match is not None  # a possessive `*`: it always matches
        return match.end()
    return pos


_STRING = re.compile(rb'"(?:[^"\\\x00-\x1f]++|\\(?:["\\/bfnrt]|u[0-9a-fA-F]{4}))*+"')
_SIMPLE_STRING = re.compile(rb'"([^"\\\x00-\x1f]*+)"')
_NON_ASCII = re.compile(rb"[\x80-\xff]")
# \uXXXX escapes of characters beyond Latin-1, and of a surrogate pair's first half.
_WIDE_ESCAPE = re.compile(rb"\\u(?:0[1-9a-fA-F]|[1-9a-fA-F])")
_ASTRAL = re.compile(rb"\\u[dD][89abAB]")
_KEY = re.compile(rb'"([A-Za-z_][A-Za-z0-9_]*+)"[ \t\n\r]*+:[ \t\n\r]*+')
_COLON = re.compile(rb"[ \t\n\r]*+:[ \t\n\r]*+")
# After a value: the separator or closing bracket, and the whitespace after it.
_AFTER = re.compile(rb"[ \t\n\r]*+([,\]}])[ \t\n\r]*+")
_NUMBER = re.compile(rb"(-?(?:0|[1-9][0-9]*+))(\.[0-9]++)?+([eE][-+]?+[0-9]++)?+")
# No capturing groups: inside the possessive repeats of `_nested`, a capturing group
# makes Python 3.11's `re` raise SystemError ("The span of capturing group is wrong").
_SCALAR = re.compile(
    rb"-?+(?:0|[1-9][0-9]*+)(?:\.[0-9]++)?+(?:[eE][-+]?+[0-9]++)?+|true|false|null"
)


def _nested(levels: int) -> re.Pattern[bytes]:
    """A list or object up to `levels` deep, matched (not built) in one pass of `re`.

    Strings, numbers and literals are checked exactly, and so are commas: one between
    elements, none leading or trailing. To keep the pattern linear in `levels` (each
    level holds one copy of the one below), lists and objects share one rule, so a key
    is optional in both and `[...}` is not told from `[...]`; the value of an unknown
    key is checked that far, never parsed. Possessive repeats never backtrack.
    """
    ws = rb"[ \t\n\r]*+"
    scalar = rb"(?:" + _STRING.pattern + rb"|" + _SCALAR.pattern + rb")"
    key = rb"(?:" + _STRING.pattern + ws + rb":" + ws + rb")?+"
    # After an element: a comma not followed by a closing bracket, or the bracket.
    after = ws + rb"(?:," + ws + rb"(?![\]}])|(?=[\]}]))"
    element = scalar
    for _ in range(levels):
        element = (
            rb"(?:" + scalar + rb"|[\[{]" + ws + rb"(?:" + key + element + after + rb")*+[\]}])"
        )
    return re.compile(rb"[\[{]" + ws + rb"(?:" + key + element + after + rb")*+[\]}]")


@cache
def _unknown_value() -> re.Pattern[bytes]:
    """The pattern that skips an unknown key's list or object (compiled on first need)."""
    return _nested(MAX_DEPTH - _MODEL_DEPTH - 1)


# --- the decoder ------------------------------------------------------------------------

# A reader takes the decoder and the position of a value's first byte, and returns the
# value built and the position just after it.
Reader = Callable[["_Decoder", int], tuple[Any, int]]


class _Decoder:
    """One load: the bytes, and the memory budget what is built is charged to."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.view = memoryview(data)
        self.ascii = data.isascii()  # what podpath writes (ensure_ascii): see `text`
        self.limit = min(
            MAX_LOAD_MEMORY - len(data), max(LOAD_MEMORY_FLOOR, LOAD_MEMORY_RATIO * len(data))
        )
        self.spent = 0
        self._text: str | None = None

    @property
    def text(self) -> str:
        """The whole document as str, decoded once on first need (ASCII documents only).

        Strings with escapes are unescaped by json's C scanner straight from it: the
        regular expression that checked them first, and the copy of each string's bytes,
        took 0.2 s of a 16 MB iptables dump's 0.25 s (the scanner checks the same things).
        """
        if self._text is None:
            self.charge(49 + len(self.data))
            self._text = str(self.view, "ascii")
        return self._text

    def charge(self, nbytes: int) -> None:
        """Count `nbytes` more as built; refuse the load once over budget."""
        self.spent += nbytes
        if self.spent > self.limit:
            raise _Bad(
                f"snapshot is too large to load: it would take more than "
                f"{self.limit // 2**20} MiB of memory",
                whole=True,
            )

    def snapshot(self) -> Snapshot:
        """The whole document: one Snapshot object and nothing after it."""
        data = self.data
        pos = _ws(data, 0)
        if pos >= len(data) or data[pos] != ord("{"):
            if pos < len(data) and data[pos] in b'"[-0123456789tfn':
                raise _Bad("snapshot is not a JSON object", whole=True)
            raise _no_value(data, pos)
        _check_version(data, pos)
        try:
            snapshot, pos = _reader(Snapshot)(self, pos)
        except _Bad as bad:
            if bad.pos is None:
                _check_version(data, pos, everywhere=True)
            raise
        pos = _ws(data, pos)
        if pos != len(data):
            raise _Bad("extra data after the snapshot", pos)
        return typing.cast(Snapshot, snapshot)


def _check_version(data: bytes, pos: int, everywhere: bool = False) -> None:
    """Refuse another schema version before its fields are judged by this one's rules.

    The writer puts `schema_version` first, which is all that is looked at up front;
    when a field turned out wrong, the other top-level keys are searched too.
    """
    pos = _ws(data, pos + 1)
    while True:
        key = _KEY.match(data, pos)
        if key is None:
            return
        value = key.end()
        if key.group(1) == b"schema_version":
            try:
                found = data[value : _skip(data, value)]
            except (_Bad, IndexError):
                return
            if found != str(SCHEMA_VERSION).encode():
                shown = found[:40].decode("utf-8", "replace") + ("..." if len(found) > 40 else "")
                raise _Bad(
                    f"snapshot schema version {shown} is not supported "
                    f"(this podpath reads version {SCHEMA_VERSION})",
                    whole=True,
                )
            return
        if not everywhere:
            return
        try:
            end = _skip(data, value)
        except _Bad:
            return
        after = _AFTER.match(data, end)
        if after is None or after.group(1) != b",":
            return
        pos = after.end()


def _skip(data: bytes, pos: int) -> int:
    """The end of the value at `pos`, which is checked but not built."""
    first = data[pos]
    if first == ord('"'):
        match = _STRING.match(data, pos)
        if match is None:
            raise _Bad("a string is not terminated or holds a raw control character", pos)
        return match.end()
    if first in b"[{":
        match = _unknown_value().match(data, pos)
        if match is None:
            raise _Bad(
                f"a list or object is unbalanced or nested deeper than {MAX_DEPTH} levels", pos
            )
        return match.end()
    match = _SCALAR.match(data, pos)
    if match is None:
        raise _no_value(data, pos)
    return match.end()


def _after(data: bytes, pos: int, closer: int) -> tuple[bool, int]:
    """After a value inside a list or object: (True, next) after a comma, (False, end) at `closer`."""
    match = _AFTER.match(data, pos)
    if match is None or match.group(1)[0] not in (ord(","), closer):
        raise _Bad(f"expected ',' or '{chr(closer)}'", _ws(data, pos))
    return match.group(1)[0] == ord(","), match.end()


def _string(d: _Decoder, pos: int) -> tuple[str, int]:
    data = d.data
    simple = _SIMPLE_STRING.match(data, pos)
    if simple is not None:
        end = simple.end()
        size = end - pos - 2
        if size <= _LONG_STRING:
            raw = simple.group(1)
            d.charge(49 + (size if raw.isascii() else 4 * size))
            return raw.decode("utf-8"), end
        # A long string: sized before it is built, decoded without a copy of its bytes.
        wide = _NON_ASCII.search(data, pos + 1, end - 1) is not None
        d.charge(49 + (4 * size if wide else size))
        return str(d.view[pos + 1 : end - 1], "utf-8"), end
    if data[pos] != ord('"'):
        raise _expected("a string", data, pos)
    if d.ascii:
        return _escaped_string(d, pos)
    match = _STRING.match(data, pos)
    if match is None:
        raise _Bad("a string is not terminated or holds a raw control character", pos)
    end = match.end()
    # Escapes: the body (with its closing quote) is decoded, then unescaped by json's
    # own scanner. Both copies are charged: a str takes 1, 2 or 4 bytes a character,
    # whichever its widest character needs (PEP 393).
    size = end - pos
    d.charge(98 + size + _width(data, pos, end) * size)
    try:
        value, _ = _scanstring(str(d.view[pos + 1 : end], "utf-8"), 0, True)
    except ValueError as exc:  # JSONDecodeError: _STRING already checked what it checks
        raise _Bad(f"a string is not valid ({exc.args[0]})", pos) from None
    return value, end


def _escaped_string(d: _Decoder, pos: int) -> tuple[str, int]:
    """A string with escapes in an ASCII document, unescaped and checked by json's scanner.

    In ASCII text a character is a byte, so the scanner's end is the byte position. The
    value is charged once built: it is never longer than the file, and a file's worth
    is well inside the budget (`LOAD_MEMORY_FLOOR`, `LOAD_MEMORY_RATIO`).
    """
    try:
        value, end = _scanstring(d.text, pos + 1, True)
    except ValueError as exc:  # JSONDecodeError
        reason = str(getattr(exc, "msg", exc.args[0]))
        if reason.startswith(("Unterminated", "Invalid control")):
            raise _Bad("a string is not terminated or holds a raw control character", pos) from None
        raise _Bad(f"a string is not valid ({reason})", pos) from None
    d.charge(98 + len(value) * (1 if value.isascii() else 4))
    return value, end


def _width(data: bytes, start: int, end: int) -> int:
    """Bytes per character of the str a JSON string's bytes decode to, at most."""
    if _NON_ASCII.search(data, start, end) is not None or _ASTRAL.search(data, start, end):
        return 4
    return 2 if _WIDE_ESCAPE.search(data, start, end) is not None else 1


def _int(d: _Decoder, pos: int) -> tuple[int, int]:
    data = d.data
    match = _NUMBER.match(data, pos)
    if match is None:
        raise _expected("an integer", data, pos)
    if match.lastindex != 1:
        raise _Bad("expected an integer, found a number with a fraction or exponent")
    digits = match.group(1)
    if len(digits) - digits.startswith(b"-") > MAX_INT_DIGITS:
        raise _Bad("an integer too large to be real data")
    d.charge(32)
    return int(digits), match.end()


def _float(d: _Decoder, pos: int) -> tuple[float, int]:
    data = d.data
    match = _NUMBER.match(data, pos)
    if match is None:
        raise _expected("a number", data, pos)
    if match.end() - pos > MAX_INT_DIGITS + 32:
        raise _Bad("a number too long to be real data")
    value = float(match.group())
    if not math.isfinite(value):
        raise _Bad("a number too large to be real data")
    d.charge(24)
    return value, match.end()


def _bool(d: _Decoder, pos: int) -> tuple[bool, int]:
    data = d.data
    if data.startswith(b"true", pos):
        return True, pos + 4
    if data.startswith(b"false", pos):
        return False, pos + 5
    raise _expected("a boolean", data, pos)


# --- one table of types, two ways to read a value -----------------------------------
#
# Each type of the model is looked up once (`_kind`) and gets both ways of reading its
# values, built side by side from the same fields and rules:
#
# - `read` walks the document's bytes with regular expressions: strict, bounded in
#   memory as it goes, and able to say where a value is wrong. 0.32 s for the 2.7 MB of
#   network namespaces (14.6k objects) of a node at 10k Services.
# - `check` takes what json's C scanner built from the same bytes and returns the very
#   value `read` would, or raises `_Undecided` wherever it could not be sure `read`
#   would agree (another type, NaN, a number too long, a duplicate key): 0.15 s there.
#
# Lists of model objects in an ASCII document are parsed by json from a slice no longer
# than the memory budget has room for, then checked; anything undecided (an object with
# a key the model does not know among it), or a list longer than the slice, goes to
# `read`, which builds it or refuses it with its own sentence. What is loaded, and every
# refusal, is the same either way (tests/unit/test_codec.py compares both on mutated
# snapshots).

Check = Callable[[Any], Any]


class _Undecided(Exception):
    """The json path cannot decide this value as `read` would: `read` decides."""


@dataclasses.dataclass(frozen=True, eq=False)
class _Kind:
    """How values of one model type are read: from the bytes, or from json's parse."""

    read: Reader
    check: Check


# Lists of a few objects that each hold a tool's whole output are read in place: json's
# parse is no faster for a few long strings, and a big dump (15 MB at 10k Services) never
# fits the budget below, so json's attempt would read the dump once more for nothing
# (0.08 s of a 29 MB snapshot's 0.4 s load, when a match found the list's end first).
_DOCUMENTS = frozenset({IptablesDump})
# json builds at most ~20x a list's bytes (small objects); it is given only as many
# bytes as fit in what is left of the budget this many times over.
_FAST_WORST_RATIO = 24
# What the model objects built keep, charged to the budget (measured: 4-6x the bytes).
_FAST_KEPT_RATIO = 6
_INT_LIMIT = 10**MAX_INT_DIGITS
_FLOAT_TEXT = MAX_INT_DIGITS + 32


def _reader(tp: Any) -> Reader:
    """The strict reader of values of type `tp`."""
    return _kind(tp).read


@cache
def _kind(tp: Any) -> _Kind:
    """Both readers of values of type `tp` (built once per type)."""
    if tp in _SCALARS:
        return _SCALARS[tp]
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        return _object_kind(tp)
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        return _union_kind(args)
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
        kind = _tuple_kind(_kind(args[0]))
        if dataclasses.is_dataclass(args[0]) and args[0] not in _DOCUMENTS:
            return _Kind(_json_first(kind), kind.check)
        return kind
    if origin is dict and args[0] is str:
        return _dict_kind(_kind(args[1]))
    raise TypeError(f"the snapshot codec cannot read fields of type {tp!r}")


def _check_str(value: Any) -> str:
    if value.__class__ is not str:
        raise _Undecided
    return value


def _check_bool(value: Any) -> bool:
    if value.__class__ is not bool:
        raise _Undecided
    return value


def _check_int(value: Any) -> int:
    if value.__class__ is not int or not -_INT_LIMIT < value < _INT_LIMIT:
        raise _Undecided  # `read` takes at most MAX_INT_DIGITS digits
    return value


def _check_float(value: Any) -> float:
    if value.__class__ is float and math.isfinite(value):
        return value
    # An integer is a number too; its text may be as long as a float's.
    if value.__class__ is int and -(10 ** (_FLOAT_TEXT - 1)) < value < 10**_FLOAT_TEXT:
        return float(value)
    raise _Undecided


_SCALARS: dict[Any, _Kind] = {
    str: _Kind(_string, _check_str),
    int: _Kind(_int, _check_int),
    float: _Kind(_float, _check_float),
    bool: _Kind(_bool, _check_bool),
}


def _union_kind(args: tuple[Any, ...]) -> _Kind:
    optional = type(None) in args
    choices = [_kind(a) for a in args if a is not type(None)]

    def read(d: _Decoder, pos: int) -> tuple[Any, int]:
        if optional and d.data.startswith(b"null", pos):
            return None, pos + 4
        if len(choices) == 1:
            return choices[0].read(d, pos)
        first: _Bad | None = None
        for choice in choices:
            try:
                return choice.read(d, pos)
            except _Bad as bad:
                if bad.pos is not None:
                    raise
                first = first or bad
        assert first is not None
        raise first

    def check(value: Any) -> Any:
        if value is None and optional:
            return None
        for choice in choices:
            try:
                return choice.check(value)
            except _Undecided:
                continue
        raise _Undecided

    return _Kind(read, check)


def _tuple_kind(item: _Kind) -> _Kind:
    read_item, check_item = item.read, item.check

    def read(d: _Decoder, pos: int) -> tuple[tuple[Any, ...], int]:
        data = d.data
        if data[pos] != ord("["):
            raise _expected("a list", data, pos)
        pos = _ws(data, pos + 1)
        if data[pos] == ord("]"):
            return (), pos + 1
        items: list[Any] = []
        more = True
        while more:
            try:
                value, pos = read_item(d, pos)
            except _Bad as bad:
                raise bad.at(len(items)) from None
            items.append(value)
            more, pos = _after(data, pos, ord("]"))
        d.charge(56 + 8 * len(items))
        return tuple(items), pos

    def check(value: Any) -> tuple[Any, ...]:
        if value.__class__ is not list:
            raise _Undecided
        return tuple([check_item(v) for v in value])

    return _Kind(read, check)


def _key(d: _Decoder, pos: int) -> tuple[str, int]:
    """An object key that is not a plain name (escapes, any character), and its colon."""
    data = d.data
    if data[pos] != ord('"'):
        raise _Bad("expected a key in double quotes", pos)
    key, pos = _string(d, pos)
    colon = _COLON.match(data, pos)
    if colon is None:
        raise _Bad("expected ':' after a key", pos)
    return key, colon.end()


def _dict_kind(item: _Kind) -> _Kind:
    read_value, check_value = item.read, item.check

    def read(d: _Decoder, pos: int) -> tuple[dict[str, Any], int]:
        data = d.data
        if data[pos] != ord("{"):
            raise _expected("an object", data, pos)
        pos = _ws(data, pos + 1)
        out: dict[str, Any] = {}
        if data[pos] == ord("}"):
            return out, pos + 1
        more = True
        while more:
            key, pos = _key(d, pos)
            if key in out:
                raise _Bad(f"the key {key!r} appears twice in one object")
            try:
                out[key], pos = read_value(d, pos)
            except _Bad as bad:
                raise bad.at(key) from None
            more, pos = _after(data, pos, ord("}"))
        d.charge(sys.getsizeof(out))
        return out, pos

    def check(value: Any) -> dict[str, Any]:
        if value.__class__ is not dict:
            raise _Undecided
        return {k: check_value(v) for k, v in value.items()}

    return _Kind(read, check)


def _object_kind(cls: type) -> _Kind:
    fields = dataclasses.fields(cls)
    required = frozenset(
        f.name
        for f in fields
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    )
    # Each field's name and reader by its key's bytes (so plain keys are never decoded).
    by_key: dict[bytes, tuple[str, Reader]] = {}
    # An instance and its __dict__ with every field set.
    cost = 64 + sys.getsizeof(dict.fromkeys(f.name for f in fields))

    def known() -> None:
        # Built on first use: the model's types refer to each other.
        hints = typing.get_type_hints(cls)
        kinds = {f.name: _kind(hints[f.name]) for f in fields}
        by_key.update({name.encode(): (name, k.read) for name, k in kinds.items()})

    def read(d: _Decoder, pos: int) -> tuple[Any, int]:
        if not by_key:
            known()
        data = d.data
        if data[pos] != ord("{"):
            raise _expected("an object", data, pos)
        pos = _ws(data, pos + 1)
        kwargs: dict[str, Any] = {}
        unknown: set[bytes] = set()
        more = data[pos] != ord("}")
        if not more:
            pos += 1
        while more:
            plain = _KEY.match(data, pos)
            if plain is not None:
                key, pos = plain.group(1), plain.end()
            else:
                text, pos = _key(d, pos)
                key = text.encode("utf-8", "surrogatepass")
            field = by_key.get(key)
            if field is None:
                if key in unknown:
                    raise _Bad(f"the key {_show_key(key)!r} appears twice in one object")
                unknown.add(key)
                pos = _skip(data, pos)
            else:
                name, read_value = field
                if name in kwargs:
                    raise _Bad(f"the key {name!r} appears twice in one object")
                try:
                    kwargs[name], pos = read_value(d, pos)
                except _Bad as bad:
                    raise bad.at(name) from None
            more, pos = _after(data, pos, ord("}"))
        missing = required.difference(kwargs)
        if missing:
            name = next(f.name for f in fields if f.name in missing)
            raise _Bad(f"missing field {name!r}")
        d.charge(cost)
        return cls(**kwargs), pos

    def check(value: Any) -> Any:
        # Generated on first use, as `known` is built (and for the same reason).
        return _compiled_check(cls)(value)

    return _Kind(read, check)


_MISSING = object()
# Each model class's compiled `check`, and the classes whose check is being generated (a
# class that holds itself, directly or not, calls its own check through its kind's).
_COMPILED: dict[type, Check] = {}
_COMPILING: set[type] = set()
# Field types whose values are tested in place, by the test's code.
_INLINE_TESTS = {
    str: "{v}.__class__ is not str",
    bool: "{v}.__class__ is not bool",
    int: "{v}.__class__ is not int or not -_IL < {v} < _IL",
}


def _compiled_check(cls: type) -> Check:
    """`check` for one model class as straight-line code generated from its fields, once.

    Through a dict of per-field checks, each value cost a call and each object a dict
    comprehension: 0.13 s of the 0.5 s load of a 10k-Service snapshot's network
    namespaces alone. The generated function tests each scalar in place and decides
    exactly as `read` would: `_Undecided` for a value `read` might not take, every field
    the model knows (a key it does not know is left out, as `read` skips it), each
    default for a field left out, and the instance built by the class itself."""
    found = _COMPILED.get(cls)
    if found is not None:
        return found
    _COMPILING.add(cls)
    try:
        found = _COMPILED[cls] = _generate_check(cls)
    finally:
        _COMPILING.discard(cls)
    return found


def _generate_check(cls: type) -> Check:
    """The text of `cls`'s check, compiled (see _compiled_check)."""
    hints = typing.get_type_hints(cls)
    env: dict[str, Any] = {"_U": _Undecided, "_M": _MISSING, "_cls": cls, "_IL": _INT_LIMIT}
    lines = ["def check(value):", " if value.__class__ is not dict:", "  raise _U"]
    # Keys the model knows, counted: an object with any other key goes to `read`, which
    # skips its value only after checking its depth (the json path has no such check).
    lines += [" get = value.get", " known = 0"]
    fields = dataclasses.fields(cls)
    for i, f in enumerate(fields):
        var = f"a{i}"
        lines += [f" {var} = get({f.name!r}, _M)", f" if {var} is _M:"]
        if f.default is not dataclasses.MISSING:
            env[f"D{i}"] = f.default
            lines.append(f"  {var} = D{i}")
        elif f.default_factory is not dataclasses.MISSING:
            env[f"D{i}"] = f.default_factory
            lines.append(f"  {var} = D{i}()")
        else:
            lines.append("  raise _U")  # `read` names the missing field
        lines += [" else:", "  known += 1"]
        lines += _check_lines(hints[f.name], var, "  ", env)
    lines += [" if known != len(value):", "  raise _U"]
    lines.append(" return _cls(" + ", ".join(f"a{i}" for i in range(len(fields))) + ")")
    return typing.cast(Check, _defined("\n".join(lines), env, "check"))


def _defined(text: str, env: dict[str, Any], name: str) -> Any:
    """What `text` defines as `name`, run in `env`: its code compiled once for all runs
    where podpath keeps the dataclasses' code (`podpath.dataclass_code`), as compiling
    the model's 37 checks took 15 ms."""
    exec_kept(text, env)
    return env[name]


def compile_checks() -> None:
    """Generate the check of every model class a snapshot holds (for `compile_all`)."""
    _compiled_check(Snapshot)


def _check_lines(tp: Any, var: str, ind: str, env: dict[str, Any]) -> list[str]:
    """Code, indented by `ind`, that checks `var` as a value of type `tp` and leaves the
    value built in it (a tuple for a list, a model object for a dict)."""
    test = _INLINE_TESTS.get(tp)
    if test is not None:
        return [f"{ind}if {test.format(v=var)}:", f"{ind} raise _U"]
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType) and len(args) == 2 and type(None) in args:
        (choice,) = (a for a in args if a is not type(None))
        return [f"{ind}if {var} is not None:", *_check_lines(choice, var, ind + " ", env)]
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
        item = f"x{len(ind)}"
        head = [f"{ind}if {var}.__class__ is not list:", f"{ind} raise _U"]
        if args[0] in _INLINE_TESTS:
            body = _check_lines(args[0], item, ind + " ", env)
            return [*head, f"{ind}for {item} in {var}:", *body, f"{ind}{var} = tuple({var})"]
        each = _called(args[0], env)
        return [*head, f"{ind}{var} = tuple([{each}({item}) for {item} in {var}])"]
    return [f"{ind}{var} = {_called(tp, env)}({var})"]


def _called(tp: Any, env: dict[str, Any]) -> str:
    """The name, in `env`, of the check generated code calls for values of type `tp`."""
    name = f"K{len(env)}"
    is_model = dataclasses.is_dataclass(tp) and isinstance(tp, type)
    env[name] = _compiled_check(tp) if is_model and tp not in _COMPILING else _kind(tp).check
    return name


def _show_key(key: bytes) -> str:
    return key.decode("utf-8", "backslashreplace")


def _refuse_constant(_text: str) -> Any:
    raise _Undecided  # NaN, Infinity: `read` names them


def _checked_float(text: str) -> float:
    if len(text) > _FLOAT_TEXT:
        raise _Undecided
    return float(text)


def _unique_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    found = dict(pairs)
    if len(found) != len(pairs):
        raise _Undecided  # a duplicate key: `read` refuses it by name
    return found


_JSON = json.JSONDecoder(
    object_pairs_hook=_unique_pairs, parse_float=_checked_float, parse_constant=_refuse_constant
)


def _json_first(kind: _Kind) -> Reader:
    """A reader of a list of model objects that takes json's parse when `check` decides it."""

    def read(d: _Decoder, pos: int) -> tuple[Any, int]:
        if not d.ascii or d.data[pos] != ord("["):
            return kind.read(d, pos)
        # json parses at most the bytes the budget has room for (a list longer than
        # that fails to parse, and `read` builds it as it goes, stopping at the budget).
        # The slice's copy costs ~1 ms a MB; matching the list's end first with the
        # pattern that skips unknown values cost 25 ns a byte (0.1-0.17 s of a 31 MB
        # snapshot's load). Depth needs no match: `check` takes no object with a key
        # the model does not know, and the model's own fields nest a few levels.
        room = min((d.limit - d.spent) // _FAST_WORST_RATIO, len(d.data) - pos)
        try:
            value, size = _JSON.raw_decode(d.text[pos : pos + room], 0)
            built = kind.check(value)
        except (_Undecided, ValueError, RecursionError):
            return kind.read(d, pos)
        d.charge(_FAST_KEPT_RATIO * size)
        return built, pos + size

    return read
