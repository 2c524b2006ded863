"""Calls to a CRI runtime's socket (runtime.v1.RuntimeService), with messages as dicts.

Each method sends one request and returns the decoded response dict; failures raise
CriError with one sentence. `READ_ONLY` names the calls that never change the node:
the collectors may use only those (docs/reliability.md: a reader never writes).
"""

from __future__ import annotations

from types import TracebackType
from typing import Any

from podpath.cri import wire

SERVICE = "runtime.v1.RuntimeService"
READ_ONLY = frozenset(
    {"Version", "ListPodSandbox", "PodSandboxStatus", "ListContainers", "ContainerStatus"}
)
# Methods this client knows: name -> (request message, response message).
METHODS: dict[str, tuple[str, str]] = {
    name: (f"{name}Request", f"{name}Response")
    for name in (
        "Version",
        "RunPodSandbox",
        "StopPodSandbox",
        "RemovePodSandbox",
        "PodSandboxStatus",
        "ListPodSandbox",
        "CreateContainer",
        "StartContainer",
        "StopContainer",
        "RemoveContainer",
        "ListContainers",
        "ContainerStatus",
    )
}
MAX_MESSAGE = 64 * 1024 * 1024


class CriError(Exception):
    """A CRI call failed; the message says which call and why."""


class CriClient:
    """A gRPC channel to one runtime socket; use as a context manager."""

    def __init__(self, socket_path: str, *, timeout: float = 30.0, read_only: bool = False):
        import grpc

        self.socket_path = socket_path
        self.timeout = timeout
        self.read_only = read_only
        self._grpc = grpc
        self._channel = grpc.insecure_channel(
            f"unix://{socket_path}",
            options=[
                ("grpc.max_receive_message_length", MAX_MESSAGE),
                # One socket, no retries behind our back: a dead runtime is a clear error.
                ("grpc.enable_retries", 0),
            ],
        )
        self._stubs: dict[str, Any] = {}

    def __enter__(self) -> CriClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the channel."""
        self._channel.close()

    def call(self, method: str, request: wire.Message | None = None) -> wire.Message:
        """Send one request; the decoded response, or CriError."""
        if method not in METHODS:
            raise CriError(f"unknown CRI method {method}")
        if self.read_only and method not in READ_ONLY:
            raise CriError(f"CRI {method} changes the node; this client only reads")
        req_type, resp_type = METHODS[method]
        stub = self._stubs.get(method)
        if stub is None:
            # No (de)serialisers: grpcio hands bytes through, wire does the protobuf.
            stub = self._channel.unary_unary(f"/{SERVICE}/{method}")
            self._stubs[method] = stub
        payload = wire.encode(req_type, request or {})
        try:
            raw = stub(payload, timeout=self.timeout, wait_for_ready=False)
        except self._grpc.RpcError as exc:
            code = exc.code().name if hasattr(exc, "code") else "UNKNOWN"
            detail = exc.details() if hasattr(exc, "details") else str(exc)
            raise CriError(f"CRI {method} on {self.socket_path}: {code}: {detail}") from exc
        try:
            return wire.decode(resp_type, bytes(raw))
        except wire.WireError as exc:
            raise CriError(f"CRI {method}: unreadable response: {exc}") from exc

    def call_many(self, method: str, requests: list[wire.Message]) -> list[wire.Message | None]:
        """Send many requests at once (pipelined on one channel); None where NOT_FOUND.

        Between a List and a Status call a container or sandbox may be removed: that
        is the runtime's answer, not an error.
        """
        if self.read_only and method not in READ_ONLY:
            raise CriError(f"CRI {method} changes the node; this client only reads")
        req_type, resp_type = METHODS[method]
        stub = self._channel.unary_unary(f"/{SERVICE}/{method}")
        futures = [stub.future(wire.encode(req_type, r), timeout=self.timeout) for r in requests]
        out: list[wire.Message | None] = []
        for fut in futures:
            try:
                raw = fut.result()
            except self._grpc.RpcError as exc:
                if exc.code() == self._grpc.StatusCode.NOT_FOUND:
                    out.append(None)
                    continue
                raise CriError(
                    f"CRI {method} on {self.socket_path}: {exc.code().name}: {exc.details()}"
                ) from exc
            try:
                out.append(wire.decode(resp_type, bytes(raw)))
            except wire.WireError as exc:
                raise CriError(f"CRI {method}: unreadable response: {exc}") from exc
        return out

    def version(self) -> wire.Message:
        """Runtime name and versions (VersionResponse)."""
        return self.call("Version", {"version": "v1"})
