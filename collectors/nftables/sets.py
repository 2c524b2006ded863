"""Sets and maps read over netlink -> the `{"set": ...}` / `{"map": ...}` objects nft prints.

Includes what nft 1.0.6 does to elements before printing them: non-interval sets are
sorted by key value (nft's mergesort over the keys' numeric values; concatenations
compare their raw bytes as one little-endian number, as concat_expr_msort_value
does), interval sets are rebuilt from their start/end pairs into values, prefixes and
ranges, and element comments come from the element's user data. Anything else
(stateful expressions on elements, object maps, open-interval markers) is Unsupported.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

from podpath.collectors.nftables.datatypes import (
    BIG,
    HOST,
    TYPE_INTEGER,
    TYPE_IP6ADDR,
    TYPE_IPADDR,
    TYPE_VERDICT,
    Datatype,
    Unsupported,
    render,
    split_concat,
    verdict_json,
)
from podpath.collectors.nftables.netlink import NlElement, NlSet, string, udata

# Kernel set flags (NFT_SET_*).
SET_ANONYMOUS = 0x1
SET_CONSTANT = 0x2
SET_INTERVAL = 0x4
SET_MAP = 0x8
SET_TIMEOUT = 0x10
SET_EVAL = 0x20
SET_OBJECT = 0x40
SET_CONCAT = 0x80
_KNOWN_FLAGS = 0xFF
NFT_DATA_VERDICT = 0xFFFFFF00
ELEM_INTERVAL_END = 0x1

# libnftnl set user data (NFTNL_UDATA_SET_*) and element user data.
_UD_KEYBYTEORDER, _UD_DATABYTEORDER, _UD_MERGE, _UD_COMMENT = 0, 1, 2, 7
# typeof descriptions (3, 4) do not change what nft 1.0.6 prints: it names the types;
# the data-interval hint (6) must be 0 (maps to single values).
_UD_KEY_TYPEOF, _UD_DATA_TYPEOF, _UD_DATA_INTERVAL = 3, 4, 6
_UD_KNOWN = frozenset(
    {
        _UD_KEYBYTEORDER,
        _UD_DATABYTEORDER,
        _UD_MERGE,
        _UD_COMMENT,
        _UD_KEY_TYPEOF,
        _UD_DATA_TYPEOF,
        _UD_DATA_INTERVAL,
    }
)
_UD_ELEM_COMMENT = 0
# nft's enum byteorder, as stored in the set's user data.
_BYTEORDERS = {1: HOST, 2: BIG}


@dataclass(frozen=True)
class Field:
    """One component of a set key or map data: its type, byte order, and size in bytes."""

    dtype: Datatype
    order: str
    size: int


@dataclass(frozen=True)
class SetInfo:
    """What rules and listings need to know about one set or map."""

    name: str
    flags: int
    key: tuple[Field, ...]
    data: tuple[Field, ...] | None  # None: a set, or a verdict map (see `verdict`)
    verdict: bool
    comment: str | None
    merge: bool

    @property
    def anonymous(self) -> bool:
        """nft's own `{ ... }` sets in rules (__set0, __map1)."""
        return bool(self.flags & SET_ANONYMOUS)

    @property
    def is_map(self) -> bool:
        """A map (data or verdicts), not a plain set."""
        return bool(self.flags & SET_MAP)


def _fields(
    type_id: int, total: int, field_lens: tuple[int, ...], order: str | None
) -> tuple[Field, ...]:
    """The components of a key or data of `total` bytes."""
    types = split_concat(type_id)
    if len(types) == 1:
        dtype = types[0]
        if dtype.bits and (dtype.bits + 7) // 8 != total:
            raise Unsupported(f"{dtype.name} of {total} bytes")
        if dtype.id == TYPE_INTEGER and order is None:
            raise Unsupported("integer set without a byte order")
        return (Field(dtype, order if dtype.id == TYPE_INTEGER and order else dtype.order, total),)
    if field_lens and len(field_lens) != len(types):
        raise Unsupported("concatenation field lengths disagree with its type")
    fields: list[Field] = []
    for i, dtype in enumerate(types):
        if dtype.bits == 0 and not field_lens:
            raise Unsupported("integer in a concatenation")
        size = field_lens[i] if field_lens else (dtype.bits + 7) // 8
        if dtype.bits and (dtype.bits + 7) // 8 != size:
            raise Unsupported(f"{dtype.name} of {size} bytes in a concatenation")
        fields.append(Field(dtype, dtype.order, size))
    if sum((f.size + 3) & ~3 for f in fields) != total:
        raise Unsupported("concatenation length disagrees with its type")
    return tuple(fields)


def set_info(nlset: NlSet) -> SetInfo:
    """Decode a set's types and options; Unsupported for anything printed otherwise."""
    if nlset.flags & ~_KNOWN_FLAGS or nlset.flags & SET_OBJECT:
        raise Unsupported(f"set {nlset.name}: flags {nlset.flags:#x}")
    if nlset.has_exprs:
        raise Unsupported(f"set {nlset.name}: per-element statements")
    ud = udata(nlset.userdata or b"")
    if set(ud) - _UD_KNOWN:
        raise Unsupported(f"set {nlset.name}: user data {sorted(ud)}")
    if any(ud.get(_UD_DATA_INTERVAL, b"\0")):
        raise Unsupported(f"map {nlset.name}: interval data")
    key_order = _order(ud.get(_UD_KEYBYTEORDER))
    key = _fields(nlset.key_type, nlset.key_len, nlset.field_lens, key_order)
    data: tuple[Field, ...] | None = None
    verdict = False
    if nlset.flags & SET_MAP:
        if nlset.data_type == NFT_DATA_VERDICT:
            verdict = True
        elif nlset.data_type is None or nlset.data_len is None:
            raise Unsupported(f"map {nlset.name} without a data type")
        else:
            data = _fields(nlset.data_type, nlset.data_len, (), _order(ud.get(_UD_DATABYTEORDER)))
    comment = ud.get(_UD_COMMENT)
    return SetInfo(
        nlset.name,
        nlset.flags,
        key,
        data,
        verdict,
        string(comment) if comment is not None else None,
        _UD_MERGE in ud,
    )


def _order(raw: bytes | None) -> str | None:
    if raw is None or len(raw) != 4:
        return None
    return _BYTEORDERS.get(struct.unpack("=I", raw)[0])


# ---------------------------------------------------------------- values


def value_json(fields: tuple[Field, ...], raw: bytes) -> Any:
    """A key or data value: one rendered value, or {"concat": [...]}."""
    if len(fields) == 1:
        f = fields[0]
        return render(f.dtype, raw[: f.size], f.order)
    parts = []
    off = 0
    for f in fields:
        parts.append(render(f.dtype, raw[off : off + f.size], f.order))
        off += (f.size + 3) & ~3
    return {"concat": parts}


def sort_value(fields: tuple[Field, ...], raw: bytes) -> int:
    """The number nft sorts elements by (mpz value; concatenations as raw little-endian)."""
    if len(fields) == 1:
        f = fields[0]
        return int.from_bytes(raw[: f.size], f.order)  # type: ignore[arg-type]
    packed = b""
    off = 0
    for f in fields:
        packed += raw[off : off + f.size]
        off += (f.size + 3) & ~3
    return int.from_bytes(packed, "little")


def _element_extras(elem: NlElement, set_name: str) -> dict[str, Any]:
    """The `elem` wrapper's fields besides `val`: only comments are decoded."""
    if elem.extra or elem.timeout is not None or elem.expiration is not None:
        raise Unsupported(f"set {set_name}: element timeouts or statements")
    if elem.key_end is not None:
        raise Unsupported(f"set {set_name}: concatenated ranges")
    extras: dict[str, Any] = {}
    if elem.userdata:
        ud = udata(elem.userdata)
        if set(ud) - {_UD_ELEM_COMMENT}:
            raise Unsupported(f"set {set_name}: element flags in user data")
        if _UD_ELEM_COMMENT in ud:
            extras["comment"] = string(ud[_UD_ELEM_COMMENT])
    return extras


def _wrap(val: Any, extras: dict[str, Any]) -> Any:
    return {"elem": {"val": val, **extras}} if extras else val


def _data_json(info: SetInfo, elem: NlElement) -> Any:
    if info.verdict:
        if elem.verdict is None:
            raise Unsupported(f"map {info.name}: element without a verdict")
        return verdict_json(*elem.verdict)
    if elem.data is None or info.data is None:
        raise Unsupported(f"map {info.name}: element without data")
    return value_json(info.data, elem.data)


def elements_json(info: SetInfo, elements: list[NlElement]) -> list[Any]:
    """The elements as nft lists them: sorted, intervals merged, maps as [key, data]."""
    if info.flags & SET_INTERVAL:
        return _intervals(info, elements)
    keyed: list[tuple[int, Any]] = []
    for elem in elements:
        if elem.flags or elem.key is None:
            raise Unsupported(f"set {info.name}: element flags {elem.flags:#x}")
        key = _wrap(value_json(info.key, elem.key), _element_extras(elem, info.name))
        item = [key, _data_json(info, elem)] if info.is_map else key
        keyed.append((sort_value(info.key, elem.key), item))
    keyed.sort(key=lambda pair: pair[0])
    return [item for _, item in keyed]


def _intervals(info: SetInfo, elements: list[NlElement]) -> list[Any]:
    """Rebuild [start, end) pairs into values, prefixes and ranges (nft's decomposition)."""
    if len(info.key) != 1:
        raise Unsupported(f"set {info.name}: concatenated intervals")
    field = info.key[0]
    if field.dtype.id not in (TYPE_IPADDR, TYPE_IP6ADDR) and field.dtype.name != "inet_service":
        raise Unsupported(f"set {info.name}: intervals of {field.dtype.name}")
    points: list[tuple[int, int, NlElement]] = []
    for elem in elements:
        if elem.key is None or elem.flags & ~ELEM_INTERVAL_END:
            raise Unsupported(f"set {info.name}: element flags {elem.flags:#x}")
        is_end = elem.flags & ELEM_INTERVAL_END
        points.append((int.from_bytes(elem.key[: field.size], "big"), 0 if is_end else 1, elem))
    points.sort(key=lambda p: (p[0], p[1]))
    top = (1 << (8 * field.size)) - 1
    out: list[Any] = []
    start: tuple[int, NlElement] | None = None
    for value, is_start, elem in points:
        if not is_start:
            if start is None:
                if value == 0:
                    continue  # the kernel's marker below an interval that starts at 0
                raise Unsupported(f"set {info.name}: interval end without a start")
            out.append(_interval(info, field, start[0], value - 1, start[1]))
            start = None
        elif start is not None:
            raise Unsupported(f"set {info.name}: interval start without an end")
        else:
            start = (value, elem)
    if start is not None:
        out.append(_interval(info, field, start[0], top, start[1]))
    return out


def _interval(info: SetInfo, field: Field, low: int, high: int, elem: NlElement) -> Any:
    dtype = field.dtype

    def show(v: int) -> Any:
        return render(dtype, v.to_bytes(field.size, "big"), BIG)

    if high < low:
        raise Unsupported(f"set {info.name}: empty interval")
    if low == high:
        key: Any = show(low)
    else:
        span = high - low + 1
        is_prefix = span & (span - 1) == 0 and low % span == 0
        if dtype.id in (TYPE_IPADDR, TYPE_IP6ADDR) and is_prefix:
            plen = 8 * field.size - (span.bit_length() - 1)
            key = {"prefix": {"addr": show(low), "len": plen}}
        elif dtype.id in (TYPE_IPADDR, TYPE_IP6ADDR) or not is_prefix:
            key = {"range": [show(low), show(high)]}
        else:
            raise Unsupported(f"set {info.name}: aligned {dtype.name} range")
    key = _wrap(key, _element_extras(elem, info.name))
    return [key, _data_json(info, elem)] if info.is_map else key


# ---------------------------------------------------------------- the listing object


def set_json(
    family: str, table: str, nlset: NlSet, info: SetInfo, elements: list[NlElement]
) -> dict[str, Any]:
    """The named set or map object of `nft -j list table` (nft 1.0.6's field order)."""
    body: dict[str, Any] = {
        "family": family,
        "name": nlset.name,
        "table": table,
        "type": _type_json(info.key),
        "handle": nlset.handle,
    }
    if info.comment is not None:
        body["comment"] = info.comment
    if info.is_map:
        body["map"] = (
            "verdict" if info.verdict else " . ".join(f.dtype.name for f in info.data or ())
        )
    if not nlset.flags & SET_CONSTANT:
        if nlset.policy:  # NFT_SET_POL_MEMORY; performance (0) is not printed
            if nlset.policy != 1:
                raise Unsupported(f"set {nlset.name}: policy {nlset.policy}")
            body["policy"] = "memory"
        if nlset.size:
            body["size"] = nlset.size
    flags = [
        name
        for bit, name in (
            (SET_CONSTANT, "constant"),
            (SET_INTERVAL, "interval"),
            (SET_TIMEOUT, "timeout"),
        )
        if nlset.flags & bit
    ]
    if flags:
        body["flags"] = flags
    if nlset.timeout:
        body["timeout"] = nlset.timeout // 1000
    if nlset.gc_interval:
        body["gc-interval"] = nlset.gc_interval // 1000
    if info.merge:
        body["auto-merge"] = True
    if elements:
        body["elem"] = elements_json(info, elements)
    return {"map" if info.is_map else "set": body}


def _type_json(fields: tuple[Field, ...]) -> Any:
    names = [f.dtype.name for f in fields]
    if any(f.dtype.id == TYPE_VERDICT for f in fields):
        raise Unsupported("verdict keys")
    return names[0] if len(names) == 1 else names
