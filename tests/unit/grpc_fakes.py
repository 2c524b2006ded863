"""A gRPC-shaped HTTP/2 server on a unix socket, for the cases a real runtime will not produce on cue.

`FakeGrpcServer` is h2's server side in a thread of its own, listening on a real unix
socket: the client under test connects, negotiates and sends as it would to containerd.
Each complete request is handed to an `Answer`, which replies through the server's
helpers (`ok`, `status`, `reply`) or misbehaves on purpose (resets, GOAWAY, a closed
socket). Replies are queued and sent as the client's flow-control windows allow.
"""

from __future__ import annotations

import select
import socket
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.settings


@dataclass
class Request:
    """One request as the server received it: its stream, headers and body."""

    stream_id: int
    headers: dict[str, str]
    body: bytes

    @property
    def message(self) -> bytes:
        """The body's one gRPC message, its 5-byte prefix checked."""
        flag, length = struct.unpack_from(">BI", self.body)
        assert flag == 0 and len(self.body) == 5 + length, self.body[:16]
        return self.body[5:]


def grpc_frame(message: bytes, flag: int = 0, length: int | None = None) -> bytes:
    """A gRPC length-prefixed message (flag and length can be made wrong on purpose)."""
    return struct.pack(">BI", flag, len(message) if length is None else length) + message


GRPC_HEADERS = [(":status", "200"), ("content-type", "application/grpc")]


@dataclass
class _Outgoing:
    body: bytes
    trailers: list[tuple[str, str]] | None
    sent: int = 0


@dataclass
class FakeGrpcServer:
    """h2's server side on a unix socket at `path`, answering each request with `answer`."""

    path: Path
    answer: Callable[[FakeGrpcServer, Request], None]
    # Answer only once this many requests are waiting (proves the client pipelines).
    hold: int = 1
    settings: dict[h2.settings.SettingCodes, int] = field(default_factory=dict)
    requests: list[Request] = field(default_factory=list)
    max_open: int = 0
    connections: int = 0
    closed: int = 0
    resets: list[int] = field(default_factory=list)
    conn: h2.connection.H2Connection | None = None
    close_after_answer: bool = False
    _out: dict[int, _Outgoing] = field(default_factory=dict)
    # What went wrong in the server's thread (an answer's failed assert), raised on exit.
    errors: list[BaseException] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _listener: socket.socket | None = None

    def __enter__(self) -> FakeGrpcServer:
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._listener.bind(str(self.path))
        self._listener.listen(4)
        self._listener.settimeout(0.05)
        self._thread = threading.Thread(target=self._serve, name="fake-grpc", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        assert self._thread is not None and self._listener is not None
        self._thread.join(timeout=10)
        self._listener.close()
        if self.errors:
            raise self.errors[0]

    # -- replies, for answers --------------------------------------------------------------

    def reply(
        self,
        stream_id: int,
        headers: list[tuple[str, str]],
        body: bytes = b"",
        trailers: list[tuple[str, str]] | None = None,
    ) -> None:
        """Send headers, then `body` as flow control allows, then `trailers` (or end)."""
        assert self.conn is not None
        end_now = not body and trailers is None
        self.conn.send_headers(stream_id, headers, end_stream=end_now)
        if not end_now:
            self._out[stream_id] = _Outgoing(body, trailers)

    def ok(self, stream_id: int, message: bytes) -> None:
        """A successful unary response: headers, one message, grpc-status 0."""
        self.reply(stream_id, GRPC_HEADERS, grpc_frame(message), [("grpc-status", "0")])

    def status(self, stream_id: int, code: int, message: str = "") -> None:
        """A trailers-only response: the status in the only HEADERS frame."""
        self.reply(
            stream_id, [*GRPC_HEADERS, ("grpc-status", str(code)), ("grpc-message", message)]
        )

    def reset(self, stream_id: int, code: h2.errors.ErrorCodes) -> None:
        """RST_STREAM with `code`."""
        assert self.conn is not None
        self.conn.reset_stream(stream_id, code)

    def goaway(self, code: h2.errors.ErrorCodes) -> None:
        """GOAWAY with `code`: the connection is over."""
        assert self.conn is not None
        self.conn.close_connection(code)

    # -- the server ------------------------------------------------------------------------

    def _serve(self) -> None:
        assert self._listener is not None
        while not self._stop.is_set():
            try:
                sock, _ = self._listener.accept()
            except TimeoutError:
                continue
            self.connections += 1
            with sock:
                try:
                    self._connection(sock)
                except BaseException as exc:  # noqa: BLE001 - raised again in __exit__
                    self.errors.append(exc)
            self.closed += 1

    def _connection(self, sock: socket.socket) -> None:
        # Blocking sends (the client reads whenever it can); reads polled, to see _stop.
        poller = select.poll()
        poller.register(sock, select.POLLIN)
        conn = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=False, header_encoding="utf-8")
        )
        conn.local_settings = h2.settings.Settings(client=False, initial_values=self.settings)
        conn.initiate_connection()
        self.conn, self._out = conn, {}
        bodies: dict[int, bytearray] = {}
        heads: dict[int, dict[str, str]] = {}
        waiting: list[Request] = []
        open_streams: set[int] = set()
        sock.sendall(conn.data_to_send())
        while not self._stop.is_set():
            if not poller.poll(50):
                continue
            try:
                data = sock.recv(65536)
            except OSError:
                return
            if not data:
                return
            for event in conn.receive_data(data):
                if isinstance(event, h2.events.RequestReceived):
                    sid = event.stream_id
                    heads[sid] = {str(k): str(v) for k, v in event.headers or []}
                    bodies[sid] = bytearray()
                    open_streams.add(sid)
                    self.max_open = max(self.max_open, len(open_streams))
                elif isinstance(event, h2.events.DataReceived):
                    bodies[event.stream_id] += event.data or b""
                    conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                elif isinstance(event, h2.events.StreamEnded):
                    sid = event.stream_id
                    waiting.append(Request(sid, heads.pop(sid), bytes(bodies.pop(sid))))
                elif isinstance(event, h2.events.StreamReset):
                    self.resets.append(event.stream_id)
                    open_streams.discard(event.stream_id)
                    self._out.pop(event.stream_id, None)
            if len(waiting) >= self.hold:
                for request in waiting:
                    self.requests.append(request)
                    self.answer(self, request)
                    if not self._out.get(request.stream_id):
                        open_streams.discard(request.stream_id)
                waiting = []
                if self.close_after_answer:
                    self._pump(conn)
                    sock.sendall(conn.data_to_send())
                    return
            for sid in self._pump(conn):
                open_streams.discard(sid)
            try:
                sock.sendall(conn.data_to_send())
            except OSError:
                return

    def _pump(self, conn: h2.connection.H2Connection) -> list[int]:
        """Send queued bodies as the client's windows allow; the streams finished."""
        done = []
        for sid, out in list(self._out.items()):
            while out.sent < len(out.body):
                room = min(conn.local_flow_control_window(sid), conn.max_outbound_frame_size)
                if room <= 0:
                    break
                chunk = out.body[out.sent : out.sent + room]
                out.sent += len(chunk)
                conn.send_data(sid, chunk)
            if out.sent == len(out.body):
                if out.trailers is not None:
                    conn.send_headers(sid, out.trailers, end_stream=True)
                else:
                    conn.end_stream(sid)
                del self._out[sid]
                done.append(sid)
        return done
