"""The CRI transport: gRPC framing, trailers and every failure, against an h2 server on a unix socket.

Cases a real containerd produces on cue (NOT_FOUND, UNIMPLEMENTED, a stopped or dead
runtime, 250 pods pipelined) are tested against it in tests/lab/test_cri_channel_lab.py.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import h2.errors
import pytest
from grpc_fakes import GRPC_HEADERS, FakeGrpcServer, Request, grpc_frame

from podpath.cri import wire
from podpath.cri.channel import Channel, RpcError, frame, unframe
from podpath.cri.client import CriClient, CriError

PATH = "/runtime.v1.RuntimeService/Version"
Serve = Callable[..., FakeGrpcServer]


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Serve]:
    """serve(answer, **options): a FakeGrpcServer on tmp_path/grpc.sock, stopped after the test."""
    servers: list[FakeGrpcServer] = []

    def start(
        answer: Callable[[FakeGrpcServer, Request], None], **options: object
    ) -> FakeGrpcServer:
        server = FakeGrpcServer(tmp_path / "grpc.sock", answer, **options)  # type: ignore[arg-type]
        servers.append(server.__enter__())
        return server

    try:
        yield start
    finally:
        for server in servers:
            server.__exit__(None, None, None)


def _echo(server: FakeGrpcServer, request: Request) -> None:
    server.ok(request.stream_id, b"echo:" + request.message)


def _call(server: FakeGrpcServer, message: bytes = b"hi", timeout: float = 5) -> bytes:
    channel = Channel(str(server.path))
    try:
        return channel.unary(PATH, message, timeout)
    finally:
        channel.close()


def _error(server: FakeGrpcServer, timeout: float = 5) -> RpcError:
    with pytest.raises(RpcError) as caught:
        _call(server, timeout=timeout)
    return caught.value


# -- framing and headers -------------------------------------------------------------------


def test_frame_is_flag_length_message() -> None:
    """A message goes out behind a 0 flag and its big-endian length; unframe takes it back."""
    assert frame(b"abc") == b"\x00\x00\x00\x00\x03abc"
    assert unframe(frame(b"abc")) == b"abc"
    assert unframe(frame(b"")) == b""


def test_request_is_a_grpc_post_with_the_message(serve: Serve) -> None:
    """POST to the method's path, gRPC content type, te: trailers, a timeout; the answer returns."""
    server = serve(_echo)
    assert _call(server, b"\x0a\x02v1", timeout=7) == b"echo:\x0a\x02v1"
    (request,) = server.requests
    h = request.headers
    assert (h[":method"], h[":scheme"], h[":path"]) == ("POST", "http", PATH)
    assert (h["content-type"], h["te"]) == ("application/grpc", "trailers")
    assert h["grpc-timeout"].endswith("m") and 6000 < int(h["grpc-timeout"][:-1]) <= 7000
    assert h["user-agent"].startswith("podpath")
    assert request.body == b"\x00\x00\x00\x00\x04\x0a\x02v1"


def test_no_thread_is_left_behind(serve: Serve) -> None:
    """The client starts no thread (the collectors fork): the same threads before and after."""
    server = serve(_echo)
    before = set(threading.enumerate())
    channel = Channel(str(server.path))
    assert channel.unary_many(PATH, [b"a", b"b"], 5) == [b"echo:a", b"echo:b"]
    assert set(threading.enumerate()) == before
    channel.close()


# -- statuses ------------------------------------------------------------------------------


def test_trailers_only_status_with_percent_encoded_message(serve: Serve) -> None:
    """A trailers-only NOT_FOUND: the code's name and the message, percent-decoded as UTF-8."""
    server = serve(lambda s, r: s.status(r.stream_id, 5, "sandbox %22x%C3%A9%22 not found: 100%25"))
    err = _error(server)
    assert (err.code, err.detail) == ("NOT_FOUND", 'sandbox "xé" not found: 100%')


def test_status_in_trailers_after_headers(serve: Serve) -> None:
    """Headers, no message, then trailers with grpc-status 13: INTERNAL with its message."""
    server = serve(
        lambda s, r: s.reply(
            r.stream_id, GRPC_HEADERS, trailers=[("grpc-status", "13"), ("grpc-message", "boom")]
        )
    )
    err = _error(server)
    assert (err.code, err.detail) == ("INTERNAL", "boom")


def test_unknown_status_number_is_named_with_its_number(serve: Serve) -> None:
    """A status beyond the 17 codes is UNKNOWN and keeps its number."""
    server = serve(lambda s, r: s.status(r.stream_id, 42))
    err = _error(server)
    assert err.code == "UNKNOWN (grpc-status 42)" and err.detail == "(no message)"


def test_missing_grpc_status_is_internal(serve: Serve) -> None:
    """A stream that ends after its message without trailers has no status: INTERNAL."""
    server = serve(lambda s, r: s.reply(r.stream_id, GRPC_HEADERS, grpc_frame(b"x")))
    err = _error(server)
    assert (err.code, err.detail) == ("INTERNAL", "the response ended without a grpc-status")


def test_unreadable_grpc_status_is_internal(serve: Serve) -> None:
    """grpc-status must be a number."""
    server = serve(lambda s, r: s.reply(r.stream_id, [*GRPC_HEADERS, ("grpc-status", "ok")]))
    assert _error(server).code == "INTERNAL"


@pytest.mark.parametrize(
    ("http", "code"),
    [
        ("503", "UNAVAILABLE"),
        ("404", "UNIMPLEMENTED"),
        ("403", "PERMISSION_DENIED"),
        ("500", "UNKNOWN"),
    ],
)
def test_http_error_without_grpc_status_maps_to_a_code(serve: Serve, http: str, code: str) -> None:
    """A non-200 answer with no grpc-status: the HTTP-to-gRPC mapping, naming the HTTP status."""
    server = serve(lambda s, r: s.reply(r.stream_id, [(":status", http)], b"<html>", None))
    err = _error(server)
    assert (err.code, err.detail) == (code, f"HTTP status {http} instead of 200")


def test_non_grpc_content_type_is_refused(serve: Serve) -> None:
    """200 with text/html is not a gRPC response: UNKNOWN naming the content type."""
    server = serve(
        lambda s, r: s.reply(r.stream_id, [(":status", "200"), ("content-type", "text/html")], b"x")
    )
    err = _error(server)
    assert (err.code, err.detail) == ("UNKNOWN", "not a gRPC response (content-type text/html)")


# -- bodies --------------------------------------------------------------------------------


def _body(body: bytes) -> Callable[[FakeGrpcServer, Request], None]:
    return lambda s, r: s.reply(r.stream_id, GRPC_HEADERS, body, [("grpc-status", "0")])


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (b"", "the response had no message"),
        (grpc_frame(b"x", flag=1), "the response message is compressed (flag 1)"),
        (grpc_frame(b"abc", length=10), "the response message is cut short"),
        (grpc_frame(b"a") + grpc_frame(b"b"), "the response has more than one message"),
    ],
    ids=["no-message", "compressed", "cut-short", "two-messages"],
)
def test_malformed_body_is_internal(serve: Serve, body: bytes, detail: str) -> None:
    """A unary OK response must carry exactly one uncompressed, whole message."""
    err = _error(serve(_body(body)))
    assert (err.code, err.detail) == ("INTERNAL", detail)


def test_message_over_the_limit_is_refused_and_the_connection_kept(serve: Serve) -> None:
    """Over max_message: RESOURCE_EXHAUSTED, the stream cancelled, the next call on the same connection.

    The response is larger than our 4 MiB stream window, so the server is still sending
    when the client reads the length and cancels.
    """
    big = b"x" * 6_000_000

    def answer(s: FakeGrpcServer, r: Request) -> None:
        s.ok(r.stream_id, big if r.message == b"big" else b"small")

    server = serve(answer)
    channel = Channel(str(server.path), max_message=100_000)
    with pytest.raises(RpcError) as caught:
        channel.unary(PATH, b"big", 5)
    assert caught.value.code == "RESOURCE_EXHAUSTED"
    assert caught.value.detail == "the response message is 6000000 bytes, over the limit of 100000"
    assert channel.unary(PATH, b"again", 5) == b"small"
    channel.close()
    assert server.connections == 1 and server.resets == [server.requests[0].stream_id]


def test_large_messages_cross_the_flow_control_windows(serve: Serve) -> None:
    """A 1 MB request (server window 64 KiB) and a 9 MB response (over our 4 MiB stream window)."""
    request = os.urandom(1_000_000)
    response = os.urandom(9_000_000)

    def answer(s: FakeGrpcServer, r: Request) -> None:
        assert r.message == request
        s.ok(r.stream_id, response)

    server = serve(answer)
    assert _call(server, request, timeout=30) == response


# -- many calls on one connection ----------------------------------------------------------


def test_calls_are_pipelined_on_one_connection(serve: Serve) -> None:
    """300 calls: 100 (MAX_STREAMS) reach the server before it answers any, on one connection."""
    server = serve(_echo, hold=100)
    channel = Channel(str(server.path))
    messages = [b"%d" % i for i in range(300)]
    got = channel.unary_many(PATH, messages, 10)
    channel.close()
    assert got == [b"echo:" + m for m in messages]
    assert server.connections == 1 and server.max_open == 100


def test_the_servers_stream_limit_is_kept(serve: Serve) -> None:
    """With SETTINGS_MAX_CONCURRENT_STREAMS 7 no more than 7 calls are open; all 280 finish."""
    server = serve(_echo, hold=7, settings={h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: 7})
    channel = Channel(str(server.path))
    got = channel.unary_many(PATH, [b"%d" % i for i in range(280)], 10)
    channel.close()
    assert got == [b"echo:%d" % i for i in range(280)]
    assert server.max_open == 7


def test_each_call_of_a_batch_has_its_own_outcome(serve: Serve) -> None:
    """A status for one call of a batch is that call's outcome; the others succeed, in order."""

    def answer(s: FakeGrpcServer, r: Request) -> None:
        if r.message == b"gone":
            s.status(r.stream_id, 5, "not found")
        else:
            _echo(s, r)

    server = serve(answer)
    channel = Channel(str(server.path))
    got = channel.unary_many(PATH, [b"a", b"gone", b"c"], 5)
    channel.close()
    assert got[0] == b"echo:a" and got[2] == b"echo:c"
    assert isinstance(got[1], RpcError) and got[1].code == "NOT_FOUND"


# -- failures of the connection ------------------------------------------------------------


def test_missing_socket(tmp_path: Path) -> None:
    """No file at the path: UNAVAILABLE, no such socket."""
    with pytest.raises(RpcError) as caught:
        Channel(str(tmp_path / "none.sock")).unary(PATH, b"", 2)
    assert (caught.value.code, caught.value.detail) == ("UNAVAILABLE", "no such socket")


def test_refused_socket(tmp_path: Path) -> None:
    """A socket file nobody listens on (a runtime that died): UNAVAILABLE, connection refused."""
    path = tmp_path / "dead.sock"
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(path))
    with pytest.raises(RpcError) as caught:
        Channel(str(path)).unary(PATH, b"", 2)
    assert caught.value.code == "UNAVAILABLE"
    assert caught.value.detail == "connection refused (nothing is listening)"


def test_long_socket_path_is_reached(serve: Serve, tmp_path: Path) -> None:
    """A path longer than sun_path's 107 bytes (a deep --host-root) still connects."""
    server = serve(_echo)
    deep = tmp_path / ("d" * 100) / ("e" * 100)
    deep.mkdir(parents=True)
    (deep / "link.sock").symlink_to(server.path)
    path = str(deep / "link.sock")
    assert len(path) > 107
    channel = Channel(path)
    assert channel.unary(PATH, b"x", 5) == b"echo:x"
    channel.close()


def test_silent_server_is_a_deadline(serve: Serve) -> None:
    """A server that never answers: DEADLINE_EXCEEDED once the timeout has passed, not before."""
    server = serve(lambda s, r: None)
    started = time.monotonic()
    err = _error(server, timeout=0.5)
    assert (err.code, err.detail) == ("DEADLINE_EXCEEDED", "no answer within 0.5 s")
    assert 0.5 <= time.monotonic() - started < 5


def test_stopped_listener_is_a_deadline(tmp_path: Path) -> None:
    """Connected but no HTTP/2 settings ever come (a frozen runtime): DEADLINE_EXCEEDED."""
    path = tmp_path / "frozen.sock"
    with socket.socket(socket.AF_UNIX) as listener:
        listener.bind(str(path))
        listener.listen(1)  # the kernel accepts the connection; nobody reads it
        with pytest.raises(RpcError) as caught:
            Channel(str(path)).unary(PATH, b"", 0.3)
    assert caught.value.code == "DEADLINE_EXCEEDED"


def _raw_server_error(path: Path, reply: bytes) -> RpcError:
    """The client's error against a socket that reads the request, sends `reply`, and closes."""
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(path))
    listener.listen(1)

    def answer() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.recv(1024)  # read first: closing on unread data would be a reset instead
            conn.sendall(reply)

    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    try:
        with pytest.raises(RpcError) as caught:
            Channel(str(path)).unary(PATH, b"", 3)
    finally:
        thread.join(5)
        listener.close()
    return caught.value


def test_server_closing_before_settings(tmp_path: Path) -> None:
    """A socket that accepts and closes at once (not a gRPC server): UNAVAILABLE, said so."""
    err = _raw_server_error(tmp_path / "closer.sock", b"")
    assert (err.code, err.detail) == (
        "UNAVAILABLE",
        "no HTTP/2 settings came (the runtime closed the connection)",
    )


def test_server_closing_mid_call(serve: Serve) -> None:
    """The socket closed while a call waits: UNAVAILABLE for that call."""
    server = serve(lambda s, r: None, close_after_answer=True)
    err = _error(server)
    assert (err.code, err.detail) == ("UNAVAILABLE", "the runtime closed the connection")


def test_goaway_fails_unfinished_calls(serve: Serve) -> None:
    """GOAWAY before the answer: UNAVAILABLE naming the GOAWAY's error code."""
    server = serve(lambda s, r: s.goaway(h2.errors.ErrorCodes.ENHANCE_YOUR_CALM))
    err = _error(server)
    assert err.code == "UNAVAILABLE"
    assert err.detail == "the runtime closed the connection (GOAWAY ENHANCE_YOUR_CALM)"


@pytest.mark.parametrize(
    ("reset", "code"),
    [
        (h2.errors.ErrorCodes.REFUSED_STREAM, "UNAVAILABLE"),
        (h2.errors.ErrorCodes.CANCEL, "CANCELLED"),
        (h2.errors.ErrorCodes.INTERNAL_ERROR, "INTERNAL"),
    ],
)
def test_stream_reset_maps_to_a_code(serve: Serve, reset: h2.errors.ErrorCodes, code: str) -> None:
    """RST_STREAM: its error code as gRPC maps it, and named in the sentence."""
    server = serve(lambda s, r: s.reset(r.stream_id, reset))
    err = _error(server)
    assert (err.code, err.detail) == (code, f"the runtime reset the stream ({reset.name})")


def test_not_an_http2_server(tmp_path: Path) -> None:
    """An HTTP/1.1 answer to the preface: UNAVAILABLE, one sentence, no h2 exception."""
    reply = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n"
    err = _raw_server_error(tmp_path / "http1.sock", reply)
    assert (err.code, err.detail) == (
        "UNAVAILABLE",
        "not an HTTP/2 server (it did not open with SETTINGS)",
    )


def test_closed_idle_connection_is_reopened(serve: Serve) -> None:
    """The server drops the connection between calls: the next call opens a new one."""
    server = serve(_echo, close_after_answer=True)
    channel = Channel(str(server.path))
    assert channel.unary(PATH, b"1", 5) == b"echo:1"
    deadline = time.monotonic() + 5
    while not server.closed and time.monotonic() < deadline:
        time.sleep(0.01)
    assert channel.unary(PATH, b"2", 5) == b"echo:2"
    channel.close()
    assert server.connections == 2


# -- the CRI client on top -----------------------------------------------------------------


def test_cri_client_maps_not_found_to_none_and_names_other_errors(serve: Serve) -> None:
    """call_many: NOT_FOUND is None (removed meanwhile); any other status is one CriError sentence."""

    def answer(s: FakeGrpcServer, r: Request) -> None:
        if b"gone" in r.message:
            s.status(r.stream_id, 5, "not found")
        elif b"bad" in r.message:
            s.status(r.stream_id, 13, "disk on fire")
        else:
            s.ok(r.stream_id, wire.encode("ContainerStatusResponse", {"status": {"id": "c1"}}))

    server = serve(answer)
    with CriClient(str(server.path), read_only=True) as cri:
        got = cri.call_many("ContainerStatus", [{"container_id": "ok"}, {"container_id": "gone"}])
        assert got[1] is None and got[0] is not None and got[0]["status"]["id"] == "c1"
        with pytest.raises(CriError) as caught:
            cri.call_many("ContainerStatus", [{"container_id": "bad"}])
    assert str(caught.value) == (f"CRI ContainerStatus on {server.path}: INTERNAL: disk on fire")
    assert caught.value.code == "INTERNAL"
    assert server.requests[0].headers[":path"] == "/runtime.v1.RuntimeService/ContainerStatus"


def test_cri_client_unknown_method_is_refused_unsent(serve: Serve) -> None:
    """A method the client does not know is refused before anything is sent."""
    server = serve(_echo)
    with CriClient(str(server.path)) as cri:
        with pytest.raises(CriError, match="unknown CRI method Exec"):
            cri.call("Exec")
        with pytest.raises(CriError, match="unknown CRI method Exec"):
            cri.call_many("Exec", [{}])
    assert server.requests == []
