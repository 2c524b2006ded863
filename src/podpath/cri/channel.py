"""Unary gRPC calls over HTTP/2 on a unix socket, in pure Python (h2 speaks the HTTP/2).

gRPC over HTTP/2 (grpc/grpc doc/PROTOCOL-HTTP2.md): a call is one stream, a POST to
`/package.Service/Method` with `content-type: application/grpc` and `te: trailers`;
the request and the response are each one message behind a 5-byte prefix (a
compressed flag, then the length, big-endian); the call's status is in the trailers
(`grpc-status`, a percent-encoded `grpc-message`), or in the response headers alone
when the server answers without a message (a "trailers-only" response). Many calls
share one connection as concurrent streams.

No thread is started: one socket, polled against a deadline, so the caller may fork at
any time (collectors/parallel.py). Every failure is an RpcError with a gRPC status code
name and one sentence; nothing of h2 or of the socket escapes.
"""

from __future__ import annotations

import os
import select
import socket
import struct
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from urllib.parse import unquote

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings

# gRPC status codes by number (grpc/grpc doc/statuscodes.md).
CODES = (
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
)
# A response that is not gRPC: its HTTP status as a gRPC code (doc/http-grpc-status-mapping.md).
_HTTP_CODES = {
    400: "INTERNAL",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "UNIMPLEMENTED",
    429: "UNAVAILABLE",
    502: "UNAVAILABLE",
    503: "UNAVAILABLE",
    504: "UNAVAILABLE",
}
# RST_STREAM error codes as gRPC codes (PROTOCOL-HTTP2.md, "Errors").
_RESET_CODES = {
    h2.errors.ErrorCodes.REFUSED_STREAM: "UNAVAILABLE",
    h2.errors.ErrorCodes.CANCEL: "CANCELLED",
    h2.errors.ErrorCodes.ENHANCE_YOUR_CALM: "RESOURCE_EXHAUSTED",
    h2.errors.ErrorCodes.INADEQUATE_SECURITY: "PERMISSION_DENIED",
}
DEFAULT_MAX_MESSAGE = 64 * 1024 * 1024
# Calls in flight on the connection at once (fewer if the server's
# SETTINGS_MAX_CONCURRENT_STREAMS says so); the rest wait for a free stream.
MAX_STREAMS = 100
# Receive windows, per stream and for the connection: wide enough that a runtime
# answering a hundred status calls at once never waits for a WINDOW_UPDATE.
_STREAM_WINDOW = 4 * 1024 * 1024
_CONNECTION_WINDOW = 64 * 1024 * 1024
_READ_SIZE = 256 * 1024
_CLOSED = "the runtime closed the connection"
# sun_path is 108 bytes with its NUL; a longer path is reached through /proc/self/fd.
_SUN_PATH_MAX = 107


class RpcError(Exception):
    """A call ended without a response: a gRPC status code name and why."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail


@dataclass
class _Call:
    """One unary call: its request body, and what has come back on its stream."""

    path: str
    body: bytes
    stream_id: int = 0
    sent: int = 0
    grpc_status: int | None = None
    grpc_message: str = ""
    # The body as it arrived, joined once at the end: a bytearray grown by += copies a
    # 1.8 MB verbose ContainerStatus ~8 times over (its 1/8 overallocation), and with 250
    # of them that was seconds of copying and page faults in the listing child.
    chunks: list[bytes] = field(default_factory=list)
    received: int = 0
    outcome: bytes | RpcError | None = None


def frame(message: bytes) -> bytes:
    """A message as gRPC sends it: flag 0 (not compressed), 4-byte length, the bytes."""
    return struct.pack(">BI", 0, len(message)) + message


def unframe(data: bytes | bytearray, max_message: int = DEFAULT_MAX_MESSAGE) -> bytes:
    """The one message of a unary response body; RpcError if it is not exactly one."""
    if len(data) < 5:
        raise RpcError("INTERNAL", "the response had no message")
    flag, length = struct.unpack_from(">BI", data)
    if flag != 0:
        # No grpc-accept-encoding was sent, so the server may not compress.
        raise RpcError("INTERNAL", f"the response message is compressed (flag {flag})")
    if length > max_message:
        raise RpcError("RESOURCE_EXHAUSTED", _too_large(length, max_message))
    if len(data) < 5 + length:
        raise RpcError("INTERNAL", "the response message is cut short")
    if len(data) > 5 + length:
        raise RpcError("INTERNAL", "the response has more than one message")
    return bytes(memoryview(data)[5:])


def _too_large(length: int, max_message: int) -> str:
    return f"the response message is {length} bytes, over the limit of {max_message}"


def _status_name(number: int) -> str:
    return CODES[number] if 0 <= number < len(CODES) else f"UNKNOWN (grpc-status {number})"


def _timeout_header(seconds: float) -> bytes:
    # At most 8 digits (PROTOCOL-HTTP2.md): milliseconds cover 27 hours.
    return b"%dm" % min(99_999_999, max(1, int(seconds * 1000)))


class Channel:
    """One HTTP/2 connection to a gRPC server's unix socket, opened on first use."""

    def __init__(
        self,
        socket_path: str,
        *,
        max_message: int = DEFAULT_MAX_MESSAGE,
        authority: str = "localhost",
        user_agent: str = "podpath",
    ) -> None:
        self.socket_path = socket_path
        self.max_message = max_message
        self._authority = authority.encode()
        self._user_agent = user_agent.encode()
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._conn: h2.connection.H2Connection | None = None
        self._poll: select.poll | None = None
        self._out = bytearray()
        # The server's first bytes, until they are known to open with a SETTINGS frame.
        self._first: bytearray | None = None
        self._writable = True

    def close(self) -> None:
        """Close the connection (the next call opens a new one)."""
        if self._sock is not None:
            self._sock.close()
        self._sock = self._conn = self._poll = None
        self._out.clear()
        self._first = None
        self._writable = True

    def unary(self, path: str, message: bytes, timeout: float) -> bytes:
        """One call: the response message, or RpcError."""
        (result,) = self.unary_many(path, [message], timeout)
        if isinstance(result, RpcError):
            raise result
        return result

    def unary_many(
        self, path: str, messages: list[bytes], timeout: float
    ) -> list[bytes | RpcError]:
        """Many calls of one method as concurrent streams: each one's response or RpcError.

        `timeout` bounds them all together, as many calls started at once with one
        timeout each would be.
        """
        if not messages:
            return []
        calls = [_Call(path, frame(m)) for m in messages]
        deadline = time.monotonic() + timeout
        with self._lock:
            try:
                self._run(calls, deadline, timeout)
            except RpcError as exc:
                # The connection failed: every call it had not finished fails with it.
                self.close()
                for call in calls:
                    if call.outcome is None:
                        call.outcome = exc
            except h2.exceptions.H2Error as exc:
                self.close()
                error = RpcError("INTERNAL", f"HTTP/2 protocol error: {exc}")
                for call in calls:
                    if call.outcome is None:
                        call.outcome = error
        results: list[bytes | RpcError] = []
        for call in calls:
            assert call.outcome is not None  # _run returns only once every call has one
            results.append(call.outcome)
        return results

    # -- the connection ------------------------------------------------------------------

    def _connect(self, deadline: float, timeout: float) -> h2.connection.H2Connection:
        """The open connection, or a new one once the server's SETTINGS have arrived."""
        if self._conn is not None and self._still_open():
            return self._conn
        self.close()
        self._sock = self._open_socket(deadline, timeout)
        self._sock.setblocking(False)
        self._poll = select.poll()
        self._poll.register(self._sock, select.POLLIN)
        # Our own headers are fixed, lower-case and valid: checking them again on every
        # call was two thirds of sending 500 requests. What the server sends is checked.
        conn = h2.connection.H2Connection(
            h2.config.H2Configuration(
                client_side=True,
                header_encoding=None,
                validate_outbound_headers=False,
                normalize_outbound_headers=False,
            )
        )
        conn.initiate_connection()
        conn.update_settings(
            {
                h2.settings.SettingCodes.ENABLE_PUSH: 0,
                h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: _STREAM_WINDOW,
            }
        )
        conn.increment_flow_control_window(_CONNECTION_WINDOW - 65_535)
        self._conn, self._first = conn, bytearray()
        # As gRPC clients do, wait for the server's SETTINGS: they carry its stream limit,
        # and a socket that is not an HTTP/2 server is told apart here.
        while True:
            try:
                events = self._exchange(deadline, timeout)
            except h2.exceptions.H2Error as exc:
                raise RpcError("UNAVAILABLE", f"not an HTTP/2 server ({exc})") from None
            except RpcError as exc:
                if exc.code != "UNAVAILABLE" or exc.detail.startswith("not an HTTP/2"):
                    raise
                raise RpcError("UNAVAILABLE", f"no HTTP/2 settings came ({exc.detail})") from None
            for event in events:
                if isinstance(event, h2.events.RemoteSettingsChanged):
                    return conn
                if isinstance(event, h2.events.ConnectionTerminated):
                    raise RpcError("UNAVAILABLE", _goaway(event))

    def _still_open(self) -> bool:
        """Whether the idle connection can carry calls: not closed or sent away meanwhile."""
        assert self._conn is not None and self._sock is not None and self._poll is not None
        if not self._poll.poll(0):
            return True
        try:
            data = self._sock.recv(_READ_SIZE)
            events = self._conn.receive_data(data) if data else None
        except (BlockingIOError, InterruptedError):
            return True
        except (OSError, h2.exceptions.H2Error):
            return False
        # Reconnecting is safe here: no call is in flight between two batches.
        return events is not None and not any(
            isinstance(e, h2.events.ConnectionTerminated) for e in events
        )

    def _open_socket(self, deadline: float, timeout: float) -> socket.socket:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        path = self.socket_path
        held = -1
        try:
            if len(os.fsencode(path)) > _SUN_PATH_MAX:
                held = os.open(path, os.O_PATH | os.O_CLOEXEC)
                path = f"/proc/self/fd/{held}"
            sock.settimeout(max(0.001, deadline - time.monotonic()))
            sock.connect(path)
        except FileNotFoundError:
            sock.close()
            raise RpcError("UNAVAILABLE", "no such socket") from None
        except ConnectionRefusedError:
            sock.close()
            raise RpcError("UNAVAILABLE", "connection refused (nothing is listening)") from None
        except TimeoutError:
            sock.close()
            raise RpcError("DEADLINE_EXCEEDED", f"no connection within {timeout:g} s") from None
        except OSError as exc:
            sock.close()
            raise RpcError("UNAVAILABLE", f"cannot connect: {exc.strerror or exc}") from None
        finally:
            if held >= 0:
                os.close(held)
        return sock

    def _exchange(self, deadline: float, timeout: float) -> list[h2.events.Event]:
        """Send what h2 has queued, wait for the socket, and feed what arrived to h2."""
        assert self._conn is not None and self._sock is not None and self._poll is not None
        pending = self._conn.data_to_send()
        if self._writable:
            self._out += pending
        self._poll.modify(self._sock, select.POLLIN | (select.POLLOUT if self._out else 0))
        left = deadline - time.monotonic()
        ready = self._poll.poll(max(0, int(left * 1000) + 1)) if left > 0 else []
        if not ready:
            raise RpcError("DEADLINE_EXCEEDED", f"no answer within {timeout:g} s")
        mask = ready[0][1]
        events: list[h2.events.Event] = []
        # Read before writing: a server that answered and closed has its answer queued
        # here, while a write would already fail (ECONNRESET, EPIPE).
        if mask & (select.POLLIN | select.POLLHUP | select.POLLERR):
            try:
                data = self._sock.recv(_READ_SIZE)
            except (BlockingIOError, InterruptedError):
                data = None
            except OSError as exc:
                raise RpcError("UNAVAILABLE", f"connection lost: {exc.strerror or exc}") from None
            if data == b"":
                raise RpcError("UNAVAILABLE", _CLOSED)
            if data and self._first is not None:
                data = self._preface(data)
            if data:
                events = self._conn.receive_data(data)
        if mask & select.POLLOUT and self._out:
            try:
                sent = self._sock.send(self._out)
            except (BlockingIOError, InterruptedError):
                sent = 0  # the poll raced a full buffer: the next round tries again
            except OSError:
                # The server is gone for writing; read what it sent until it closes.
                self._writable = False
                sent = len(self._out)
            del self._out[:sent]
        return events

    def _preface(self, data: bytes) -> bytes:
        """Hold the first bytes until they show the server's preface, a SETTINGS frame.

        h2 would wait for a whole frame of whatever length the first bytes claim, so an
        HTTP/1 answer ("HTTP/1.1 400", a 4.7 MB frame) would look like a silent server.
        """
        assert self._first is not None
        self._first += data
        if len(self._first) < 9:
            return b""
        # RFC 9113 3.4: frame type 0x4 (SETTINGS) on stream 0, a multiple of 6 bytes long.
        length = int.from_bytes(self._first[:3], "big")
        stream = int.from_bytes(self._first[5:9], "big") & 0x7FFF_FFFF
        if self._first[3] != 0x4 or stream != 0 or length % 6 or length > 16_384:
            raise RpcError("UNAVAILABLE", "not an HTTP/2 server (it did not open with SETTINGS)")
        data, self._first = bytes(self._first), None
        return data

    # -- the calls -----------------------------------------------------------------------

    def _run(self, calls: list[_Call], deadline: float, timeout: float) -> None:
        conn = self._connect(deadline, timeout)
        waiting = deque(calls)
        active: dict[int, _Call] = {}
        sending: dict[int, _Call] = {}
        while waiting or active:
            limit = min(MAX_STREAMS, conn.remote_settings.max_concurrent_streams)
            # `active` holds exactly the streams h2 counts as open (the others ended or
            # were reset); h2's own count walks every stream, 70 ms per 500 calls.
            while waiting and len(active) < limit:
                call = waiting.popleft()
                call.stream_id = conn.get_next_available_stream_id()
                conn.send_headers(call.stream_id, self._headers(call.path, deadline))
                active[call.stream_id] = sending[call.stream_id] = call
            for stream_id in list(sending):
                if self._send_body(conn, sending[stream_id]):
                    del sending[stream_id]
            for event in self._exchange(deadline, timeout):
                self._handle(conn, event, active)
            for stream_id in [s for s in sending if s not in active]:
                del sending[stream_id]

    def _headers(self, path: str, deadline: float) -> list[tuple[bytes, bytes]]:
        return [
            (b":method", b"POST"),
            (b":scheme", b"http"),
            (b":path", path.encode()),
            (b":authority", self._authority),
            (b"content-type", b"application/grpc"),
            (b"te", b"trailers"),
            (b"grpc-timeout", _timeout_header(deadline - time.monotonic())),
            (b"user-agent", self._user_agent),
        ]

    def _send_body(self, conn: h2.connection.H2Connection, call: _Call) -> bool:
        """Send as much of the request as flow control allows; True once all is sent."""
        while call.sent < len(call.body):
            room = min(conn.local_flow_control_window(call.stream_id), conn.max_outbound_frame_size)
            if room <= 0:
                return False
            chunk = call.body[call.sent : call.sent + room]
            call.sent += len(chunk)
            conn.send_data(call.stream_id, chunk, end_stream=call.sent == len(call.body))
        return True

    def _handle(
        self, conn: h2.connection.H2Connection, event: h2.events.Event, active: dict[int, _Call]
    ) -> None:
        """Apply one h2 event to the call whose stream it concerns."""
        if isinstance(event, h2.events.ConnectionTerminated):
            raise RpcError("UNAVAILABLE", _goaway(event))
        stream_id = getattr(event, "stream_id", None)
        if isinstance(event, h2.events.DataReceived) and stream_id:
            # Handed back at once: the call keeps what it needs, bounded by max_message.
            conn.acknowledge_received_data(event.flow_controlled_length, stream_id)
        call = active.get(stream_id) if stream_id else None
        if call is None:
            return  # a stream already given up (reset by us); h2 has kept its accounts
        failure: RpcError | None = None
        if isinstance(event, h2.events.ResponseReceived):
            failure = self._response_headers(call, event.headers)
        elif isinstance(event, h2.events.DataReceived):
            if event.data:
                call.chunks.append(event.data)
                call.received += len(event.data)
            failure = self._check_size(call)
        elif isinstance(event, h2.events.TrailersReceived):
            failure = self._trailers(call, event.headers)
        elif isinstance(event, h2.events.StreamEnded):
            del active[call.stream_id]
            call.outcome = self._outcome(call)
            if call.sent < len(call.body):
                _reset(conn, call.stream_id)  # answered before the request was all sent
            return
        elif isinstance(event, h2.events.StreamReset):
            del active[call.stream_id]
            code = _RESET_CODES.get(event.error_code, "INTERNAL")  # type: ignore[call-overload]
            name = getattr(event.error_code, "name", event.error_code)
            call.outcome = RpcError(code, f"the runtime reset the stream ({name})")
            return
        if failure is not None:
            del active[call.stream_id]
            call.outcome = failure
            _reset(conn, call.stream_id)

    def _response_headers(self, call: _Call, headers: list[tuple[bytes, bytes]]) -> RpcError | None:
        fields = dict(headers)
        if b"grpc-status" in fields:
            return self._trailers(call, headers)  # trailers-only: the status, no message
        status = fields.get(b":status", b"")
        if status != b"200":
            code = _HTTP_CODES.get(int(status) if status.isdigit() else 0, "UNKNOWN")
            return RpcError(code, f"HTTP status {status.decode('latin-1')} instead of 200")
        kind = fields.get(b"content-type", b"")
        if not kind.startswith(b"application/grpc"):
            shown = kind.decode("latin-1") or "none"
            return RpcError("UNKNOWN", f"not a gRPC response (content-type {shown})")
        return None

    def _trailers(self, call: _Call, headers: list[tuple[bytes, bytes]]) -> RpcError | None:
        fields = dict(headers)
        raw = fields.get(b"grpc-status", b"")
        if not raw.isdigit():
            return RpcError("INTERNAL", f"unreadable grpc-status {raw.decode('latin-1')!r}")
        call.grpc_status = int(raw)
        message = fields.get(b"grpc-message", b"").decode("latin-1")
        call.grpc_message = unquote(message, encoding="utf-8", errors="replace")
        return None

    def _check_size(self, call: _Call) -> RpcError | None:
        if call.received >= 5:
            head = call.chunks[0] if len(call.chunks[0]) >= 5 else b"".join(call.chunks)[:5]
            (length,) = struct.unpack_from(">I", head, 1)
            if length > self.max_message:
                return RpcError("RESOURCE_EXHAUSTED", _too_large(length, self.max_message))
            if call.received > 5 + length:
                return RpcError("INTERNAL", "the response has more than one message")
        return None

    def _outcome(self, call: _Call) -> bytes | RpcError:
        if call.grpc_status is None:
            return RpcError("INTERNAL", "the response ended without a grpc-status")
        if call.grpc_status != 0:
            detail = call.grpc_message or "(no message)"
            return RpcError(_status_name(call.grpc_status), detail)
        try:
            return unframe(b"".join(call.chunks), self.max_message)
        except RpcError as exc:
            return exc


def _reset(conn: h2.connection.H2Connection, stream_id: int) -> None:
    """Give up a stream (RST_STREAM CANCEL), unless both sides have closed it already."""
    try:
        conn.reset_stream(stream_id, h2.errors.ErrorCodes.CANCEL)
    except h2.exceptions.StreamClosedError:
        return  # its END_STREAM came in the same read: nothing is left to cancel


def _goaway(event: h2.events.ConnectionTerminated) -> str:
    name = getattr(event.error_code, "name", event.error_code)
    return f"{_CLOSED} (GOAWAY {name})"
