"""Netlink on the wire: message framing, attribute walking, error replies (linux/netlink.h).

Every netlink reader of podpath (rtnetlink dumps, netnsid lookups, nf_tables) walks
bytes with these functions, so one rule decides what a malformed message does: the
caller says how strict to be. "strict" raises `MalformedMessage` (a message that
does not parse is never turned into a confident answer: the dump becomes a gap, or
the nft table is listed by nft instead); "lenient" stops at the malformed part and
keeps what came before, for what must survive a bad optional part (an error reply's
extended-ack text). Attribute types the reader does not know are skipped in both
modes: the kernel adds attributes over time, and that is not malformation.
"""

from __future__ import annotations

import errno
import os
import struct
from collections.abc import Iterable, Iterator
from typing import Literal

Strictness = Literal["strict", "lenient"]

NLMSG_ERROR = 2
NLMSG_DONE = 3
NLMSG_MIN_TYPE = 0x10  # types below are the protocol's own control messages
NLM_F_REQUEST = 0x1
NLM_F_DUMP_INTR = 0x10
NLM_F_DUMP = 0x300  # NLM_F_ROOT | NLM_F_MATCH
# Flags of an NLMSG_ERROR (or a dump's NLMSG_DONE): the echoed request is cut to its
# header, and extended-ack attributes follow.
NLM_F_CAPPED = 0x100
NLM_F_ACK_TLVS = 0x200
NLMSGERR_ATTR_MSG = 1

NLA_TYPE_MASK = 0x3FFF  # strips NLA_F_NESTED and NLA_F_NET_BYTEORDER

HEADER = struct.Struct("=IHHII")  # struct nlmsghdr: len, type, flags, seq, pid
HEADER_LEN = HEADER.size
_NLA = struct.Struct("=HH")
_I32 = struct.Struct("=i")
_U32 = struct.Struct("=I")


class NetlinkError(OSError):
    """The kernel refused a request (errno), or its answer was unusable.

    `ack_message` is the kernel's own explanation when it sent an extended ack
    (e.g. "Invalid values in header for get link request").
    """

    def __init__(self, code: int, text: str | None = None, ack_message: str | None = None):
        super().__init__(code, text or os.strerror(code))
        self.ack_message = ack_message

    def __str__(self) -> str:
        base = str(self.strerror)
        return f"{base} ({self.ack_message})" if self.ack_message else base


class MalformedMessage(NetlinkError):
    """A message or attribute whose lengths do not fit the bytes that carry it."""

    def __init__(self, what: str) -> None:
        super().__init__(errno.EBADMSG, f"malformed netlink message: {what}")


class DumpInconsistent(NetlinkError):
    """The kernel flagged every attempt of a dump NLM_F_DUMP_INTR: the table kept changing."""

    def __init__(self, attempts: int) -> None:
        super().__init__(
            errno.EAGAIN, f"changed during every one of {attempts} dumps (NLM_F_DUMP_INTR)"
        )
        self.attempts = attempts


def message(msg_type: int, flags: int, seq: int, payload: bytes) -> bytes:
    """One netlink message: the header, then the payload."""
    return HEADER.pack(HEADER_LEN + len(payload), msg_type, flags, seq, 0) + payload


def attribute(kind: int, value: bytes) -> bytes:
    """One attribute, padded to 4 bytes."""
    raw = _NLA.pack(4 + len(value), kind) + value
    return raw + b"\0" * (-len(raw) & 3)


def split_messages(buf: bytes, strictness: Strictness) -> list[tuple[int, int, int, int, int, int]]:
    """(type, flags, seq, pid, payload offset, end) of every message of one datagram.

    A list, not a generator: a datagram holds one message or a few hundred, and
    building the list costs less than resuming a generator for each.
    """
    found: list[tuple[int, int, int, int, int, int]] = []
    unpack = HEADER.unpack_from
    off = 0
    size = len(buf)
    while off + HEADER_LEN <= size:
        length, mtype, flags, seq, pid = unpack(buf, off)
        if length < HEADER_LEN or off + length > size:
            if strictness == "strict":
                raise MalformedMessage(f"message length {length} at {off} of a {size}-byte read")
            return found
        found.append((mtype, flags, seq, pid, off + HEADER_LEN, off + length))
        off += (length + 3) & ~3
    if off < size and strictness == "strict":
        raise MalformedMessage(f"{size - off} stray bytes after the last message")
    return found


def payloads(
    buffers: Iterable[bytes], msg_type: int, header_len: int, strictness: Strictness
) -> Iterator[tuple[bytes, int, int]]:
    """(buffer, payload offset, end) of every message of `msg_type` in a dump's datagrams.

    `header_len` is the family's fixed header (ifinfomsg, nfgenmsg...): a message too
    short to hold it is malformed (strict) or skipped (lenient).
    """
    for buf in buffers:
        for mtype, _flags, _seq, _pid, off, end in split_messages(buf, strictness):
            if mtype != msg_type:
                continue
            if off + header_len > end:
                if strictness == "strict":
                    raise MalformedMessage(f"a type {mtype} message without its family header")
                continue
            yield buf, off, end


def attributes(buf: bytes, off: int, end: int, strictness: Strictness) -> dict[int, bytes]:
    """{attribute type: payload} of the attributes in buf[off:end] (a repeated type: last wins)."""
    found: dict[int, bytes] = {}
    unpack = _NLA.unpack_from
    while off + 4 <= end:
        alen, atype = unpack(buf, off)
        if alen < 4 or off + alen > end:
            if strictness == "strict":
                raise MalformedMessage(f"attribute length {alen} at {off} overruns {end}")
            break
        found[atype & NLA_TYPE_MASK] = buf[off + 4 : off + alen]
        off += (alen + 3) & ~3
    return found


def nested(data: bytes, strictness: Strictness) -> dict[int, bytes]:
    """The attributes of a nested attribute's whole payload (see `attributes`)."""
    return attributes(data, 0, len(data), strictness)


def attribute_list(data: bytes, strictness: Strictness) -> list[bytes]:
    """The payloads of a nested list (e.g. NFTA_LIST_ELEM ...), in order, repeats kept."""
    out: list[bytes] = []
    off = 0
    end = len(data)
    unpack = _NLA.unpack_from
    while off + 4 <= end:
        alen, _atype = unpack(data, off)
        if alen < 4 or off + alen > end:
            if strictness == "strict":
                raise MalformedMessage(f"list entry length {alen} at {off} overruns {end}")
            break
        out.append(data[off + 4 : off + alen])
        off += (alen + 3) & ~3
    return out


def cstr(data: bytes) -> str:
    """A NUL-terminated kernel string, decoded so any byte survives (surrogateescape)."""
    return data.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")


def error_code(buf: bytes, off: int, end: int) -> int:
    """The code (0 or a negative errno) of an NLMSG_ERROR or NLMSG_DONE payload."""
    if off + 4 > end:
        return 0  # a bare NLMSG_DONE (older kernels send no code)
    return int(_I32.unpack_from(buf, off)[0])


def error_reply(buf: bytes, off: int, end: int, mtype: int, flags: int) -> NetlinkError | None:
    """The error an NLMSG_ERROR or NLMSG_DONE payload carries; None for an ack or a clean end."""
    if error_code(buf, off, end) >= 0:
        return None
    return refusal(buf, off, end, mtype, flags)


def refusal(buf: bytes, off: int, end: int, mtype: int, flags: int) -> NetlinkError:
    """The NetlinkError of an NLMSG_ERROR or NLMSG_DONE payload whose code is negative.

    With NETLINK_EXT_ACK the kernel appends attributes after the echoed request (an
    NLMSG_ERROR) or right after the code (a dump's NLMSG_DONE); their text is kept.
    They are walked leniently: a bad optional part must not hide the errno.
    """
    code = error_code(buf, off, end)
    text: str | None = None
    if flags & NLM_F_ACK_TLVS:
        tlvs = off + 4
        if mtype == NLMSG_ERROR:
            echoed = _U32.unpack_from(buf, tlvs)[0] if tlvs + 4 <= end else HEADER_LEN
            tlvs += HEADER_LEN if flags & NLM_F_CAPPED else (echoed + 3) & ~3
        raw = attributes(buf, tlvs, end, "lenient").get(NLMSGERR_ATTR_MSG)
        text = cstr(raw) if raw else None
    return NetlinkError(-code, None, text)
