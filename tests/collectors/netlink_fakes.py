"""Crafted netlink answers, for the cases a real kernel cannot be made to produce on cue.

`ScriptedKernel` stands where the netlink core's socket would be: each request it is
sent is answered by a script with datagrams built here, which are then received in
order exactly as the kernel's would be (their full length when asked with MSG_TRUNC).
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

MSG_TRUNC = 0x20
PORTID = 4242


def nla(atype: int, payload: bytes) -> bytes:
    """One attribute, padded."""
    raw = struct.pack("=HH", 4 + len(payload), atype) + payload
    return raw + b"\0" * (-len(raw) % 4)


def msg(mtype: int, body: bytes, *, seq: int, flags: int = 0x2, pid: int = PORTID) -> bytes:
    """One message, padded to 4 bytes (a datagram is one or more of these)."""
    raw = struct.pack("=IHHII", 16 + len(body), mtype, flags, seq, pid) + body
    return raw + b"\0" * (-len(raw) % 4)


def done(seq: int, code: int = 0, *, flags: int = 0x2, tail: bytes = b"") -> bytes:
    """NLMSG_DONE with its code (and, with NLM_F_ACK_TLVS, extended-ack attributes)."""
    return msg(3, struct.pack("=i", code) + tail, seq=seq, flags=flags)


def error(seq: int, code: int, *, flags: int = 0, tail: bytes = b"", echoed: bytes = b"") -> bytes:
    """NLMSG_ERROR: the code, the echoed request header (+ payload), then ack attributes."""
    header = struct.pack("=IHHII", 16 + len(echoed), 18, 1, seq, PORTID)
    return msg(2, struct.pack("=i", code) + header + echoed + tail, seq=seq, flags=flags)


@dataclass(frozen=True)
class Request:
    """What the socket sent: one message."""

    msg_type: int
    flags: int
    seq: int
    payload: bytes


# A script: the n-th request (0-based) -> the datagrams it is answered with.
Script = Callable[[int, Request], list[bytes]]


@dataclass
class ScriptedKernel:
    """A Transport answering each request by `script`; datagrams are read in order."""

    script: Script
    portid: int = PORTID
    sent: list[Request] = field(default_factory=list)
    queue: list[bytes] = field(default_factory=list)
    closed: bool = False

    def send(self, data: bytes, /) -> int:
        """Record each message of `data` and queue the script's answers to it."""
        off = 0
        while off + 16 <= len(data):
            length, mtype, flags, seq, _pid = struct.unpack_from("=IHHII", data, off)
            request = Request(mtype, flags, seq, data[off + 16 : off + length])
            self.queue += self.script(len(self.sent), request)
            self.sent.append(request)
            off += (length + 3) & ~3
        return len(data)

    def recv_into(self, buffer: memoryview, nbytes: int, flags: int, /) -> int:
        """The next queued datagram, cut to the buffer; its full length with MSG_TRUNC."""
        if not self.queue:
            raise TimeoutError("timed out")  # what a silent kernel looks like
        data = self.queue.pop(0)
        n = min(nbytes or len(buffer), len(data))
        buffer[:n] = data[:n]
        return len(data) if flags & MSG_TRUNC else n

    def getsockname(self) -> Any:
        """(port id, groups), as for a bound netlink socket."""
        return (self.portid, 0)

    def close(self) -> None:
        """Remember being closed."""
        self.closed = True
