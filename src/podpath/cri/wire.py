"""Protocol Buffers wire format for the CRI messages in api.proto, as plain dicts.

The schema is read from the trimmed api.proto next to this file (the upstream field
names, types and numbers), so the .proto is the one source of truth. A message is a
dict keyed by field name; enums are their value names ("CONTAINER_EXITED"). Decoding
follows proto3: an absent scalar is its default (0, "", False, the first enum name),
an absent message is an empty dict, unknown fields are skipped — a runtime newer
than this file adds fields, never breaks the reader.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

Message = dict[str, Any]

_VARINT_TYPES = {"int32", "int64", "uint32", "uint64", "bool"}
_SCALARS = _VARINT_TYPES | {"string", "bytes"}
_FIELD = re.compile(
    r"^(?P<label>repeated\s+)?(?P<type>map<\s*\w+\s*,\s*\w+\s*>|\w+)\s+(?P<name>\w+)\s*=\s*(?P<num>\d+)"
)
_ENUM_VALUE = re.compile(r"^(\w+)\s*=\s*(\d+)")
# Bounds for input that did not come from a runtime we trust.
_MAX_DEPTH = 32


class WireError(ValueError):
    """Bytes that are not a valid encoding of the expected message."""


@dataclass(frozen=True)
class Field:
    """One field of a message: name, number, type and whether it repeats."""

    name: str
    number: int
    type: str  # a scalar, a message name, an enum name, or "map"
    repeated: bool = False


@dataclass(frozen=True)
class Schema:
    """Every message and enum of api.proto."""

    messages: dict[str, dict[int, Field]]
    enums: dict[str, dict[int, str]]

    def by_name(self, message: str) -> dict[str, Field]:
        """A message's fields by name."""
        return {f.name: f for f in self.messages[message].values()}


def parse_proto(text: str) -> Schema:
    """The messages and enums of a flat proto3 file (no nesting, no oneof)."""
    messages: dict[str, dict[int, Field]] = {}
    enums: dict[str, dict[int, str]] = {}
    kind = name = ""
    for raw in text.splitlines():
        line = raw.split("//", 1)[0].strip()
        if not line or line.startswith(("syntax", "package", "option")):
            continue
        head = re.match(r"^(message|enum)\s+(\w+)\s*\{\s*(\}?)", line)
        if head:
            kind, name = head[1], head[2]
            if kind == "message":
                messages[name] = {}
            else:
                enums[name] = {}
            if head[3]:
                kind = ""
            continue
        if line == "}":
            kind = ""
            continue
        if kind == "enum":
            value = _ENUM_VALUE.match(line)
            if value:
                enums[name][int(value[2])] = value[1]
        elif kind == "message":
            field = _FIELD.match(line)
            if field is None:
                raise WireError(f"unreadable field in message {name}: {line!r}")
            ftype = "map" if field["type"].startswith("map") else field["type"]
            number = int(field["num"])
            messages[name][number] = Field(
                field["name"], number, ftype, repeated=bool(field["label"]) or ftype == "map"
            )
    return Schema(messages, enums)


@cache
def schema() -> Schema:
    """The schema of the CRI subset podpath speaks (api.proto, read once)."""
    text = resources.files("podpath.cri").joinpath("api.proto").read_text(encoding="utf-8")
    return parse_proto(text)


# -- encoding --------------------------------------------------------------------------------


def _varint(value: int) -> bytes:
    if value < 0:
        value += 1 << 64  # int32/int64 negatives are 10-byte two's complement varints
    out = bytearray()
    while True:
        low = value & 0x7F
        value >>= 7
        if value:
            out.append(low | 0x80)
        else:
            out.append(low)
            return bytes(out)


def _key(number: int, wire_type: int) -> bytes:
    return _varint(number << 3 | wire_type)


def _enum_number(s: Schema, enum: str, value: object) -> int:
    if isinstance(value, int):
        return value
    for number, label in s.enums[enum].items():
        if label == value:
            return number
    raise WireError(f"{value!r} is not a value of enum {enum}")


def _encode_one(s: Schema, field: Field, value: Any) -> bytes:
    if field.type in _VARINT_TYPES:
        return _key(field.number, 0) + _varint(int(value))
    if field.type in s.enums:
        return _key(field.number, 0) + _varint(_enum_number(s, field.type, value))
    if field.type == "string":
        data = str(value).encode("utf-8", "surrogateescape")
    elif field.type == "bytes":
        data = bytes(value)
    else:
        data = encode(field.type, value, s)
    return _key(field.number, 2) + _varint(len(data)) + data


def encode(message: str, value: Message, s: Schema | None = None) -> bytes:
    """Serialise a dict as `message`; unknown keys are an error, None means absent."""
    s = s or schema()
    fields = s.by_name(message)
    out = bytearray()
    for key, item in value.items():
        if item is None:
            continue
        if key not in fields:
            raise WireError(f"{message} has no field {key!r}")
        field = fields[key]
        if field.type == "map":
            for k, v in dict(item).items():
                entry = _key(1, 2) + _len(str(k)) + _key(2, 2) + _len(str(v))
                out += _key(field.number, 2) + _varint(len(entry)) + entry
        elif field.repeated:
            for one in item:
                out += _encode_one(s, field, one)
        else:
            out += _encode_one(s, field, item)
    return bytes(out)


def _len(text: str) -> bytes:
    data = text.encode("utf-8", "surrogateescape")
    return _varint(len(data)) + data


# -- decoding --------------------------------------------------------------------------------


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    if pos < len(data) and data[pos] < 0x80:
        return data[pos], pos + 1  # most keys and small lengths: one byte
    result = shift = 0
    while True:
        if pos >= len(data) or shift > 63:
            raise WireError("truncated or overlong varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def _fields(data: bytes) -> list[tuple[int, int, int | bytes]]:
    """(field number, wire type, value) of every field, in order."""
    out: list[tuple[int, int, int | bytes]] = []
    pos = 0
    while pos < len(data):
        key, pos = _read_varint(data, pos)
        number, wire_type = key >> 3, key & 7
        if wire_type == 0:
            value, pos = _read_varint(data, pos)
            out.append((number, 0, value))
        elif wire_type == 2:
            size, pos = _read_varint(data, pos)
            if pos + size > len(data):
                raise WireError("length-delimited field runs past the end")
            out.append((number, 2, data[pos : pos + size]))
            pos += size
        elif wire_type == 1:
            pos += 8
        elif wire_type == 5:
            pos += 4
        else:
            raise WireError(f"unsupported wire type {wire_type}")
        if pos > len(data):
            raise WireError("fixed-width field runs past the end")
    return out


def _signed(value: int, ftype: str) -> int:
    if ftype in ("int32", "int64") and value >= 1 << 63:
        return value - (1 << 64)
    return value


def _default(s: Schema, field: Field) -> Any:
    if field.type == "map":
        return {}
    if field.repeated:
        return []
    if field.type in ("string",):
        return ""
    if field.type == "bytes":
        return b""
    if field.type == "bool":
        return False
    if field.type in _VARINT_TYPES:
        return 0
    if field.type in s.enums:
        return s.enums[field.type].get(0, 0)
    return {}


def _decode_scalar(s: Schema, field: Field, wire_type: int, raw: int | bytes, depth: int) -> Any:
    if field.type in _VARINT_TYPES or field.type in s.enums:
        if wire_type != 0 or not isinstance(raw, int):
            raise WireError(f"field {field.name} is not a varint")
        if field.type == "bool":
            return bool(raw)
        if field.type in s.enums:
            return s.enums[field.type].get(raw, raw)
        return _signed(raw, field.type)
    if wire_type != 2 or not isinstance(raw, bytes):
        raise WireError(f"field {field.name} is not length-delimited")
    if field.type == "string":
        return raw.decode("utf-8", "surrogateescape")
    if field.type == "bytes":
        return raw
    return _decode(s, field.type, raw, depth + 1)


# (schema id, message) -> (immutable defaults, names of fields whose default is a new
# list, names whose default is a new dict): decoding builds thousands of messages.
_TEMPLATES: dict[tuple[int, str], tuple[Message, tuple[str, ...], tuple[str, ...]]] = {}


def _template(s: Schema, message: str) -> tuple[Message, tuple[str, ...], tuple[str, ...]]:
    key = (id(s), message)
    found = _TEMPLATES.get(key)
    if found is None:
        fields = s.messages[message].values()
        lists = tuple(f.name for f in fields if f.repeated and f.type != "map")
        dicts = tuple(
            f.name for f in fields if f.type == "map" or (not f.repeated and f.type in s.messages)
        )
        fixed = {f.name: _default(s, f) for f in fields if f.name not in lists + dicts}
        found = _TEMPLATES[key] = (fixed, lists, dicts)
    return found


def _decode(s: Schema, message: str, data: bytes, depth: int) -> Message:
    if depth > _MAX_DEPTH:
        raise WireError("messages nested too deeply")
    fields = s.messages[message]
    fixed, lists, dicts = _template(s, message)
    out: Message = dict(fixed)
    for name in lists:
        out[name] = []
    for name in dicts:
        out[name] = {}
    for number, wire_type, raw in _fields(data):
        field = fields.get(number)
        if field is None:
            continue
        if field.type == "map":
            if not isinstance(raw, bytes):
                raise WireError(f"map {field.name} entry is not length-delimited")
            entry = {n: v for n, _, v in _fields(raw)}
            k, v = entry.get(1, b""), entry.get(2, b"")
            if not isinstance(k, bytes) or not isinstance(v, bytes):
                raise WireError(f"map {field.name} entry is not a string pair")
            out[field.name][k.decode("utf-8", "surrogateescape")] = v.decode(
                "utf-8", "surrogateescape"
            )
        elif field.repeated:
            if wire_type == 2 and isinstance(raw, bytes) and field.type in _VARINT_TYPES:
                pos = 0  # packed repeated scalars
                while pos < len(raw):
                    value, pos = _read_varint(raw, pos)
                    out[field.name].append(_signed(value, field.type))
            else:
                out[field.name].append(_decode_scalar(s, field, wire_type, raw, depth))
        else:
            out[field.name] = _decode_scalar(s, field, wire_type, raw, depth)
    return out


def decode(message: str, data: bytes, s: Schema | None = None) -> Message:
    """Parse bytes as `message` into a dict with every field (defaults filled in)."""
    return _decode(s or schema(), message, data, 0)
