"""An attach stream of a CRI runtime's streaming server, bridged to this terminal.

kubelet proxies `kubectl attach`/`kubectl debug -it` to the URL a CRI Attach call
returns; the runtime's streaming server (k8s.io/kubelet's cri/streaming, vendored by
containerd) speaks the Kubernetes remotecommand protocol there. This is its WebSocket
form (`v4.channel.k8s.io`, RFC 6455): each binary message starts with a channel byte —
0 stdin, 1 stdout, 2 stderr, 3 the final status, 4 terminal resizes as JSON.

    python cri_stream.py URL

runs inside the node (the server listens on its loopback): stdin goes to the
container, its output comes out here; on a terminal, this one is made raw and its
size sent first. Exits with the container's status (1 on a failure status).
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import select
import socket
import struct
import sys
import termios
import tty
import urllib.parse

STDIN, STDOUT, STDERR, STATUS, RESIZE = range(5)
PROTOCOL = "v4.channel.k8s.io"
_BINARY, _CLOSE, _PING, _PONG = 0x2, 0x8, 0x9, 0xA


def _handshake(url: str) -> socket.socket:
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or "127.0.0.1"
    port = parts.port or 80
    sock = socket.create_connection((host, port), timeout=30)
    key = base64.b64encode(secrets.token_bytes(16)).decode()
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    request = (
        f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
        f"Sec-WebSocket-Protocol: {PROTOCOL}\r\nOrigin: http://{host}:{port}\r\n\r\n"
    )
    sock.sendall(request.encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(1)
        if not chunk:
            raise SystemExit(f"cri_stream: the server closed during the handshake: {head!r}")
        head += chunk
    status = head.split(b"\r\n", 1)[0]
    if b" 101 " not in status:
        raise SystemExit(f"cri_stream: no upgrade: {head.decode(errors='replace')}")
    sock.settimeout(None)
    return sock


def _send(sock: socket.socket, opcode: int, payload: bytes) -> None:
    """One masked frame (a client must mask, RFC 6455 5.3)."""
    mask = secrets.token_bytes(4)
    size = len(payload)
    if size < 126:
        head = struct.pack("!BB", 0x80 | opcode, 0x80 | size)
    elif size < 1 << 16:
        head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, size)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, size)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    sock.sendall(head + mask + masked)


class _Reader:
    """Frames read from the socket as they arrive."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = b""

    def _need(self, n: int) -> bytes | None:
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                return None
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def frame(self) -> tuple[int, bytes] | None:
        """(opcode, payload) of the next frame; None when the connection ends."""
        head = self._need(2)
        if head is None:
            return None
        opcode, size = head[0] & 0x0F, head[1] & 0x7F
        if size == 126:
            ext = self._need(2)
            size = struct.unpack("!H", ext)[0] if ext else 0
        elif size == 127:
            ext = self._need(8)
            size = struct.unpack("!Q", ext)[0] if ext else 0
        mask = self._need(4) if head[1] & 0x80 else b""
        payload = self._need(size) if size else b""
        if payload is None or mask is None:
            return None
        if mask:
            payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        return opcode, payload


def _exit_code(status: bytes) -> int:
    """The container's exit code from the final status (v4: a metav1.Status)."""
    if not status.strip():
        return 0
    doc = json.loads(status)
    if doc.get("status") == "Success":
        return 0
    for cause in doc.get("details", {}).get("causes", []):
        if cause.get("reason") == "ExitCode":
            return int(cause.get("message", 1))
    sys.stderr.write(f"cri_stream: {doc.get('message', status.decode(errors='replace'))}\n")
    return 1


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def bridge(url: str) -> int:
    """Stream stdin to the container and its output here until the stream ends."""
    sock = _handshake(url)
    reader = _Reader(sock)
    on_tty = os.isatty(0)
    saved = termios.tcgetattr(0) if on_tty else None
    if on_tty:
        cols, rows = os.get_terminal_size(0)
        _send(sock, _BINARY, bytes([RESIZE]) + json.dumps({"Width": cols, "Height": rows}).encode())
        tty.setraw(0)
    status = b""
    reading_stdin = True
    try:
        while True:
            watched = [sock.fileno(), 0] if reading_stdin else [sock.fileno()]
            ready, _, _ = select.select(watched, [], [])
            if 0 in ready:
                data = os.read(0, 65536)
                if data:
                    _send(sock, _BINARY, bytes([STDIN]) + data)
                else:
                    reading_stdin = False  # v4 has no half-close: the stream stays open
            if sock.fileno() in ready:
                got = reader.frame()
                if got is None:
                    break
                opcode, payload = got
                if opcode == _CLOSE:
                    break
                if opcode == _PING:
                    _send(sock, _PONG, payload)
                    continue
                if not payload:
                    continue
                channel, data = payload[0], payload[1:]
                if channel in (STDOUT, STDERR):
                    _write_all(channel, data)
                elif channel == STATUS:
                    status += data
    finally:
        if saved is not None:
            termios.tcsetattr(0, termios.TCSADRAIN, saved)
        sock.close()
    return _exit_code(status)


if __name__ == "__main__":
    sys.exit(bridge(sys.argv[1]))
