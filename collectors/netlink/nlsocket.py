"""The netlink socket every reader uses: requests, and only the kernel's answers to them.

A socket stays in the network namespace it was created in, so whoever opened it (see
`netns_scan`) can hand it to any thread and its requests read that namespace.

What this base checks on every reply, whatever the protocol (rtnetlink, nf_tables):
- the sender is the kernel: the socket is connected to port id 0, so the kernel
  itself refuses any process's datagram to our port id (a process with
  CAP_NET_ADMIN may otherwise unicast to any port id);
- the message carries our port id and the sequence number of the request in flight;
  others are late answers to an abandoned request and are skipped;
- framing, strictly (`wire.split_messages`), and a datagram cut short by the receive
  buffer (MSG_TRUNC) is an error, not a shorter answer;
- NLMSG_ERROR and a dump's NLMSG_DONE with a negative code raise `NetlinkError`,
  with the kernel's extended-ack text when it gave one;
- NLM_F_DUMP_INTR on any part of a dump (the kernel's table changed while it was
  being dumped: 96 of 300 dumps under address churn, docs/reliability.md row 6;
  pyroute2 0.9.7 does not check it): the dump is read to its end and taken again,
  up to `attempts` times, then returned marked inconsistent, for the caller to
  record a gap (rtnetlink) or refuse (nf_tables, `Dump.checked`).
"""

from __future__ import annotations

import _socket
import errno
import itertools
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol, Self

from podpath.collectors.netlink.wire import (
    NLM_F_DUMP,
    NLM_F_DUMP_INTR,
    NLM_F_REQUEST,
    NLMSG_DONE,
    NLMSG_ERROR,
    NLMSG_MIN_TYPE,
    DumpInconsistent,
    NetlinkError,
    error_code,
    error_reply,
    message,
    refusal,
    split_messages,
)

MAX_ATTEMPTS = 3
TIMEOUT = 5.0
# A dump part is <= 32 KiB; one link message with many VFs can be larger.
RECV_BUFFER = 256 * 1024
# Answers to a batch of requests queue in the socket's receive buffer (~200 KiB by
# default); batches stay far below it so no answer is dropped (ENOBUFS).
BATCH = 64

SOL_NETLINK = 270
NETLINK_CAP_ACK = 10
NETLINK_EXT_ACK = 11


if TYPE_CHECKING:  # a Protocol class costs a millisecond to create: types only

    class Transport(Protocol):
        """What the base needs of a socket: the kernel's, or a scripted one in tests."""

        def send(self, data: bytes, /) -> int: ...
        def recv_into(self, buffer: memoryview, nbytes: int, flags: int, /) -> int: ...
        def getsockname(self) -> Any: ...
        def close(self) -> None: ...


class Dump(NamedTuple):
    """What one dump returned: its datagrams, the answers in them, and whether every
    attempt was flagged interrupted. (A tuple: thousands are made per table listing.)"""

    buffers: tuple[bytes, ...]
    # (datagram, type, payload offset, end) of each answer, in order.
    messages: tuple[tuple[bytes, int, int, int], ...] = ()
    inconsistent: bool = False
    attempts: int = 1

    def checked(self) -> Dump:
        """This dump; raises DumpInconsistent when the table kept changing."""
        if self.inconsistent:
            raise DumpInconsistent(self.attempts)
        return self


class Reply(NamedTuple):
    """The kernel's one answer to a request that is not a dump."""

    buffer: bytes
    msg_type: int
    offset: int  # of the payload
    end: int


_local = threading.local()


def _recv_view() -> memoryview:
    # One receive buffer per thread, not per socket: allocating (zeroing) a large buffer
    # for each of 250 sockets cost 0.3 s, more than all the dumps together.
    view: memoryview | None = getattr(_local, "view", None)
    if view is None:
        view = memoryview(bytearray(RECV_BUFFER))
        _local.view = view
    return view


def _open(protocol: int, timeout: float) -> Any:
    # The C socket type that socket.socket wraps: nothing here needs the wrapper, and
    # `import socket` builds enums of every AF_/SOCK_/MSG_ constant, ~9 ms of
    # `podpath ls namespaces` (which asks netnsids through this class).
    sock = _socket.socket(_socket.AF_NETLINK, _socket.SOCK_RAW | _socket.SOCK_CLOEXEC, protocol)
    try:
        sock.settimeout(timeout)
        sock.bind((0, 0))
        # Connected to the kernel (port id 0), the socket accepts datagrams from the
        # kernel only: the kernel refuses (ECONNREFUSED) any process's unicast to our
        # port id (netlink_getsockbyportid), so no forged answer is ever queued.
        sock.connect((0, 0))
        try:
            # Ask for the kernel's reason with an error, without the request echoed.
            sock.setsockopt(SOL_NETLINK, NETLINK_EXT_ACK, 1)
            sock.setsockopt(SOL_NETLINK, NETLINK_CAP_ACK, 1)
        except OSError:
            pass  # kernels before 4.12: plain error codes, which is all they have
    except OSError:
        sock.close()
        raise
    return sock


class NetlinkSocket:
    """A netlink socket of the calling thread's network namespace (see the module doc)."""

    def __init__(
        self, protocol: int, timeout: float = TIMEOUT, transport: Transport | None = None
    ) -> None:
        self.transport: Transport = _open(protocol, timeout) if transport is None else transport
        self.portid = int(self.transport.getsockname()[0])
        self._seq = itertools.count(1)

    def close(self) -> None:
        """Close the socket."""
        self.transport.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def next_seq(self) -> int:
        """A fresh sequence number for a request."""
        return next(self._seq) & 0xFFFFFFFF

    def receive(self) -> bytes:
        """The next datagram from the kernel (the only sender a connected socket hears)."""
        view = _recv_view()
        # MSG_TRUNC makes netlink return the datagram's full length even when it did
        # not fit: a cut datagram is detected, not decoded short.
        n = self.transport.recv_into(view, 0, _socket.MSG_TRUNC)
        if n > len(view):
            raise NetlinkError(errno.EMSGSIZE, "netlink message larger than the receive buffer")
        return bytes(view[:n])

    def dump(self, msg_type: int, payload: bytes, attempts: int = MAX_ATTEMPTS) -> Dump:
        """Dump a table (a request with NLM_F_DUMP); again while the kernel flags it interrupted."""
        attempt = 1
        parts, found, interrupted = self._dump_once(msg_type, payload)
        while interrupted and attempt < attempts:
            attempt += 1
            parts, found, interrupted = self._dump_once(msg_type, payload)
        return Dump(tuple(parts), tuple(found), interrupted, attempt)

    def _dump_once(
        self, msg_type: int, payload: bytes
    ) -> tuple[list[bytes], list[tuple[bytes, int, int, int]], bool]:
        seq = self.next_seq()
        self.transport.send(message(msg_type, NLM_F_REQUEST | NLM_F_DUMP, seq, payload))
        portid = self.portid
        parts: list[bytes] = []
        found: list[tuple[bytes, int, int, int]] = []
        interrupted = False
        while True:
            buf: bytes | None = None
            try:
                buf = self.receive()
                listed = split_messages(buf, "strict")
            except NetlinkError:  # a truncated or malformed part (MalformedMessage)
                self._drain(seq, buf)  # the socket must be able to serve the next request
                raise
            answers = len(found)
            for mtype, flags, mseq, pid, off, end in listed:
                if mseq != seq or pid != portid:
                    continue  # a late answer to an abandoned request
                if flags & NLM_F_DUMP_INTR:
                    interrupted = True
                if mtype >= NLMSG_MIN_TYPE:
                    found.append((buf, mtype, off, end))
                elif mtype == NLMSG_DONE or mtype == NLMSG_ERROR:
                    if error_code(buf, off, end) < 0:
                        raise refusal(buf, off, end, mtype, flags)  # nothing follows it
                    if len(found) > answers:
                        parts.append(buf)
                    return parts, found, interrupted
            if len(found) > answers:
                parts.append(buf)

    def _drain(self, seq: int, buf: bytes | None) -> None:
        """Read what is left of dump `seq` (from `buf` on) up to its end, best effort."""
        while True:
            if buf is not None:
                for mtype, _flags, mseq, _pid, _off, _end in split_messages(buf, "lenient"):
                    if mseq == seq and mtype in (NLMSG_DONE, NLMSG_ERROR):
                        return
            try:
                buf = self.receive()
            except NetlinkError:
                buf = None  # a truncated part: its successors still come
            except OSError:
                return  # timed out: the error being raised is what the caller hears

    def call(self, msg_type: int, payload: bytes) -> Reply:
        """One request that is not a dump; the kernel's answer, or its error raised."""
        (answer,) = self.calls([(msg_type, payload)])
        if isinstance(answer, NetlinkError):
            raise answer
        return answer

    def calls(self, requests: Sequence[tuple[int, bytes]]) -> list[Reply | NetlinkError]:
        """Requests that are not dumps, sent in batches; each one's answer or error, in order."""
        answers: list[Reply | NetlinkError] = []
        for start in range(0, len(requests), BATCH):
            answers += self._batch(requests[start : start + BATCH])
        return answers

    def _batch(self, requests: Sequence[tuple[int, bytes]]) -> list[Reply | NetlinkError]:
        pending: dict[int, int] = {}
        out = bytearray()
        for index, (msg_type, payload) in enumerate(requests):
            seq = self.next_seq()
            pending[seq] = index
            out += message(msg_type, NLM_F_REQUEST, seq, payload)
        self.transport.send(bytes(out))
        answers: list[Reply | NetlinkError | None] = [None] * len(requests)
        portid = self.portid
        while pending:
            buf = self.receive()
            for mtype, flags, mseq, pid, off, end in split_messages(buf, "strict"):
                slot = pending.pop(mseq, None) if pid == portid else None
                if slot is None:
                    continue
                if mtype == NLMSG_ERROR:
                    answers[slot] = error_reply(buf, off, end, mtype, flags) or NetlinkError(
                        errno.ENOMSG, "the kernel acknowledged the request without an answer"
                    )
                else:
                    answers[slot] = Reply(buf, mtype, off, end)
        return [a for a in answers if a is not None]
