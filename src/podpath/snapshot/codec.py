"""Snapshot <-> JSON, with a loader that refuses hostile or broken input.

`json.load` alone is not a safe loader (see docs/reliability.md): deep nesting raises
RecursionError, huge integers ValueError, NaN and duplicate keys are accepted, and
large files cost many times their size in memory. `load_snapshot` bounds size and
depth before parsing, rejects NaN/Infinity and duplicate keys, and checks every
field against the dataclass types, so a bad file gives one clear sentence.

Strings may carry lone surrogates (non-UTF-8 bytes read with surrogateescape);
`ensure_ascii=True` writes them as `\\udcXX` escapes, which load back unchanged.
"""

from __future__ import annotations

import dataclasses
import json
import re
import types
import typing
from functools import cache
from typing import IO, Any, TypeVar

from podpath.snapshot.model import SCHEMA_VERSION, Snapshot

MAX_SNAPSHOT_BYTES = 512 * 1024 * 1024
MAX_DEPTH = 32
MAX_INT_DIGITS = 40

T = TypeVar("T")


class SnapshotError(ValueError):
    """A snapshot file that cannot be used, with a one-sentence reason."""


def to_jsonable(obj: Any) -> Any:
    """Turn a dataclass tree into plain JSON values (dicts, lists, str, numbers)."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, tuple | list):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    return obj


def dumps(snapshot: Snapshot, indent: int | None = None) -> str:
    """Serialise a snapshot to JSON text (ASCII, so any byte survives)."""
    return json.dumps(to_jsonable(snapshot), ensure_ascii=True, indent=indent, allow_nan=False)


def dump(snapshot: Snapshot, fp: IO[str], indent: int | None = None) -> None:
    """Write a snapshot as JSON to a text file."""
    fp.write(dumps(snapshot, indent))


def loads(text: str | bytes) -> Snapshot:
    """Parse and validate a snapshot; raise SnapshotError with a clear reason."""
    if len(text) > MAX_SNAPSHOT_BYTES:
        raise SnapshotError(f"snapshot is larger than {MAX_SNAPSHOT_BYTES // 2**20} MiB")
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise SnapshotError(f"snapshot is not UTF-8 text (byte {exc.start})") from None
    _check_depth(text)
    try:
        raw = json.loads(
            text,
            parse_constant=_reject_constant,
            parse_int=_parse_int,
            object_pairs_hook=_unique_keys,
        )
    except json.JSONDecodeError as exc:
        raise SnapshotError(
            f"snapshot is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    except (RecursionError, MemoryError):
        raise SnapshotError("snapshot is nested too deeply or too large to load") from None
    if not isinstance(raw, dict):
        raise SnapshotError("snapshot is not a JSON object")
    version = raw.get("schema_version")
    if version != SCHEMA_VERSION:
        raise SnapshotError(
            f"snapshot schema version {version!r} is not supported (this podpath reads "
            f"version {SCHEMA_VERSION})"
        )
    return from_jsonable(Snapshot, raw)


def load(fp: IO[bytes]) -> Snapshot:
    """Read a snapshot from a binary file, refusing oversized input before reading it."""
    data = fp.read(MAX_SNAPSHOT_BYTES + 1)
    return loads(data)


def load_path(path: str) -> Snapshot:
    """Read a snapshot file by path; every failure is a SnapshotError."""
    try:
        with open(path, "rb") as fp:
            return load(fp)
    except OSError as exc:
        raise SnapshotError(f"cannot read snapshot {path!r}: {exc.strerror}") from None


def _reject_constant(name: str) -> Any:
    raise SnapshotError(f"snapshot contains {name}, which is not valid JSON data")


def _parse_int(digits: str) -> int:
    if len(digits.lstrip("-")) > MAX_INT_DIGITS:
        raise SnapshotError("snapshot contains an integer too large to be real data")
    return int(digits)


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise SnapshotError(f"snapshot has the key {key!r} twice in one object")
        out[key] = value
    return out


# A JSON string (unrolled-loop form, linear) or one structural bracket.
_JSON_TOKEN = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]')


def _check_depth(text: str) -> None:
    """Refuse nesting deeper than MAX_DEPTH before json.loads can recurse on it."""
    depth = 0
    for match in _JSON_TOKEN.finditer(text):
        ch = match.group()[0]
        if ch in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                raise SnapshotError(f"snapshot is nested deeper than {MAX_DEPTH} levels")
        elif ch in "]}":
            depth -= 1


def from_jsonable(cls: type[T], data: Any, where: str = "snapshot") -> T:
    """Build a dataclass from plain JSON values, checking every field's type."""
    return typing.cast(T, _convert(cls, data, where))


@cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _convert(tp: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        return _convert_dataclass(tp, value, where)
    if origin in (typing.Union, types.UnionType):
        return _convert_union(tp, value, where)
    if origin is tuple:
        return _convert_tuple(tp, value, where)
    if origin is dict:
        return _convert_dict(tp, value, where)
    if tp is Any:
        return value
    return _convert_scalar(tp, value, where)


def _convert_dataclass(cls: type, value: Any, where: str) -> Any:
    if not isinstance(value, dict):
        raise SnapshotError(f"{where}: expected an object, found {_kind(value)}")
    hints = _hints(cls)
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.name in value:
            kwargs[f.name] = _convert(hints[f.name], value[f.name], f"{where}.{f.name}")
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise SnapshotError(f"{where}: missing field {f.name!r}")
    # Unknown keys are ignored: newer writers may add fields (more keys are welcome).
    return cls(**kwargs)


def _convert_union(tp: Any, value: Any, where: str) -> Any:
    args = typing.get_args(tp)
    if value is None:
        if type(None) in args:
            return None
        raise SnapshotError(f"{where}: must not be null")
    errors = []
    for arg in args:
        if arg is type(None):
            continue
        try:
            return _convert(arg, value, where)
        except SnapshotError as exc:
            errors.append(str(exc))
    raise SnapshotError(errors[0] if errors else f"{where}: unexpected value")


def _convert_tuple(tp: Any, value: Any, where: str) -> Any:
    if not isinstance(value, list):
        raise SnapshotError(f"{where}: expected a list, found {_kind(value)}")
    args = typing.get_args(tp)
    if len(args) == 2 and args[1] is Ellipsis:
        return tuple(_convert(args[0], v, f"{where}[{i}]") for i, v in enumerate(value))
    if len(args) != len(value):
        raise SnapshotError(f"{where}: expected {len(args)} items, found {len(value)}")
    return tuple(
        _convert(a, v, f"{where}[{i}]") for i, (a, v) in enumerate(zip(args, value, strict=True))
    )


def _convert_dict(tp: Any, value: Any, where: str) -> Any:
    if not isinstance(value, dict):
        raise SnapshotError(f"{where}: expected an object, found {_kind(value)}")
    key_type, value_type = typing.get_args(tp)
    if key_type is not str:
        raise SnapshotError(f"{where}: only string keys are supported")
    return {k: _convert(value_type, v, f"{where}[{k!r}]") for k, v in value.items()}


def _convert_scalar(tp: Any, value: Any, where: str) -> Any:
    if tp is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is bool or tp is str:
        if isinstance(value, tp):
            return value
    else:
        raise SnapshotError(f"{where}: unsupported field type {tp!r}")
    raise SnapshotError(f"{where}: expected {tp.__name__}, found {_kind(value)}")


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}.get(
        type(value), type(value).__name__
    )
