"""Calls to a CRI runtime's socket (runtime.v1.RuntimeService), with messages as dicts.

`channel` carries the calls (gRPC over HTTP/2, pure Python); `wire` does the protobuf.
Each method sends one request and returns the decoded response dict; failures raise
CriError with one sentence. `READ_ONLY` names the calls that never change the node:
the collectors may use only those (docs/reliability.md: a reader never writes).
"""

from __future__ import annotations

from types import TracebackType

from podpath.cri import wire
from podpath.cri.channel import Channel, RpcError

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
        # Run a command in a container (`kubectl exec`), or get the URL of an attach
        # stream on the runtime's streaming server (`kubectl attach`, `debug -it`).
        "ExecSync",
        "Attach",
    )
}
MAX_MESSAGE = 64 * 1024 * 1024


class CriError(Exception):
    """A CRI call failed; the message says which call, on which socket, and why."""

    def __init__(self, message: str, code: str = "UNKNOWN") -> None:
        super().__init__(message)
        # The gRPC status code name (UNAVAILABLE: no runtime answers at the socket).
        self.code = code


class CriClient:
    """One connection to a runtime's CRI socket; use as a context manager."""

    def __init__(self, socket_path: str, *, timeout: float = 30.0, read_only: bool = False):
        self.socket_path = socket_path
        self.timeout = timeout
        self.read_only = read_only
        self._channel = Channel(socket_path, max_message=MAX_MESSAGE, user_agent=_user_agent())

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
        """Close the connection."""
        self._channel.close()

    def _check(self, method: str) -> tuple[str, str]:
        """(request, response) message names of an allowed method, or CriError unsent."""
        if method not in METHODS:
            raise CriError(f"unknown CRI method {method}")
        if self.read_only and method not in READ_ONLY:
            raise CriError(f"CRI {method} changes the node; this client only reads")
        return METHODS[method]

    def _failed(self, method: str, exc: RpcError) -> CriError:
        return CriError(f"CRI {method} on {self.socket_path}: {exc.code}: {exc.detail}", exc.code)

    def call(self, method: str, request: wire.Message | None = None) -> wire.Message:
        """Send one request; the decoded response, or CriError."""
        req_type, resp_type = self._check(method)
        payload = wire.encode(req_type, request or {})
        try:
            raw = self._channel.unary(f"/{SERVICE}/{method}", payload, self.timeout)
        except RpcError as exc:
            raise self._failed(method, exc) from None
        return _decode(method, resp_type, raw)

    def call_many(self, method: str, requests: list[wire.Message]) -> list[wire.Message | None]:
        """Send many requests at once (concurrent streams on one connection); None where NOT_FOUND.

        Between a List and a Status call a container or sandbox may be removed: that
        is the runtime's answer, not an error. `timeout` bounds the whole batch.
        """
        req_type, resp_type = self._check(method)
        payloads = [wire.encode(req_type, r) for r in requests]
        results = self._channel.unary_many(f"/{SERVICE}/{method}", payloads, self.timeout)
        out: list[wire.Message | None] = []
        for raw in results:
            if isinstance(raw, RpcError):
                if raw.code == "NOT_FOUND":
                    out.append(None)
                    continue
                raise self._failed(method, raw)
            out.append(_decode(method, resp_type, raw))
        return out

    def version(self) -> wire.Message:
        """Runtime name and versions (VersionResponse)."""
        return self.call("Version", {"version": "v1"})


def _decode(method: str, resp_type: str, raw: bytes) -> wire.Message:
    try:
        return wire.decode(resp_type, raw)
    except wire.WireError as exc:
        raise CriError(f"CRI {method}: unreadable response: {exc}", "INTERNAL") from None


def _user_agent() -> str:
    from podpath import __version__

    return f"podpath/{__version__}"
