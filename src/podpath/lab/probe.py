"""Real traffic inside a lab: from a pod's netns to a pod, Service, VIP or node port."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from podpath.lab.records import LabError

if TYPE_CHECKING:
    from podpath.lab.lab import Lab

_PAGE_RE = re.compile(r"served by pod (\S+/\S+) on (\S+)")
_ECHO_RE = re.compile(r"^([a-z0-9.-]+): ")
PROBE_TIMEOUT = 5
# How long a probe waits for an answer unless told: generous for a lab whose pods answer
# in milliseconds, so a busy machine never turns an answer into a drop. A caller that
# expects a drop may wait less (the kernel drops at once or answers at once here).
DEFAULT_WAIT = 3

# Its failures are one line, as nc's are ("udp: timed out", "udp: Connection refused"
# when an ICMP port unreachable came back), never a traceback in the probe's error.
_UDP_CLIENT = r"""
import socket, sys
s = socket.socket(socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(float(sys.argv[3]))
try:
    s.connect((sys.argv[1], int(sys.argv[2])))  # connected: an ICMP error is told
    s.send(b"podpath probe\n")
    sys.stdout.write(s.recv(4096).decode(errors="replace"))
except TimeoutError:
    sys.exit("udp: timed out")
except OSError as exc:
    sys.exit(f"udp: {exc.strerror or exc}")
"""


@dataclass(frozen=True)
class ProbeResult:
    """What a probe sent, where, and what answered."""

    src: str  # pod ref (namespace/name) or node name
    src_node: str
    dst: str  # as given
    address: str  # IP the traffic was sent to
    port: int
    proto: str
    ok: bool
    answer: str  # what came back (page body or echo), "" on failure
    served_by: str | None  # pod ref that answered, when the answer says
    error: str
    seconds: float
    # The answering pod's address in the family the probe used (its page names its
    # first address, IPv4 on a dual-stack pod, whichever family carried the request).
    served_address: str | None = None

    def shown_answer(self) -> str:
        """The answer to print: a lab page names the address this probe reached the pod at."""
        page = _PAGE_RE.search(self.answer)
        if page is None or self.served_address is None:
            return self.answer
        return (
            f"podpath lab: served by pod {page.group(1)} on {page.group(2)} ({self.served_address})"
        )


@dataclass(frozen=True)
class _Target:
    address: str
    port: int


def _split_port(dst: str) -> tuple[str, int | None]:
    if dst.startswith("["):
        host, _, rest = dst[1:].partition("]")
        return host, int(rest[1:]) if rest[1:].isdigit() else None
    if dst.count(":") == 1:
        host, _, port = dst.partition(":")
        if port.isdigit():
            return host, int(port)
    return dst, None


def _family(address: str, family: int | None) -> bool:
    return family is None or (":" in address) == (family == 6)


def _resolve_dst(lab: Lab, dst: str, port: int | None, proto: str, family: int | None) -> _Target:
    for node in lab.nodes:
        record = next(n for n in lab.record.nodes if n.name == node.name)
        if dst in (node.name, node.address, record.address6):
            address = record.address6 if family == 6 or dst == record.address6 else node.address
            return _Target(address or node.address, port or _web_node_port(lab))
    for pod in lab.pods:
        ips = pod.ips or (pod.ip,)
        if dst in (pod.name, pod.ref, *ips):
            address = dst if dst in ips else next((ip for ip in ips if _family(ip, family)), None)
            if address is None:
                raise LabError(f"pod {pod.ref} has no IPv{family} address")
            return _Target(address, port or (53 if pod.app == "dns" else 80))
    matches = [s for s in lab.services if dst in (s.ref, s.name, s.cluster_ip)]
    matches = [s for s in matches if _family(s.cluster_ip, family) or dst == s.cluster_ip]
    if matches:
        chosen = [s for s in matches if s.protocol.lower() == proto] or matches
        if port is not None:
            chosen = [s for s in chosen if s.port == port] or chosen
        return _Target(chosen[0].cluster_ip, port or chosen[0].port)
    if re.fullmatch(r"\d+\.\d+\.\d+\.\d+|[0-9a-fA-F:]*:[0-9a-fA-F:]*", dst):
        return _Target(dst, port or 80)
    raise LabError(f"probe destination {dst!r} is no pod, Service, node or IP of lab {lab.name!r}")


def _web_node_port(lab: Lab) -> int:
    for svc in lab.services:
        if svc.node_port is not None:
            return svc.node_port
    raise LabError("no Service in this lab has a NodePort")


def _client(target: _Target, proto: str, wait: int) -> list[str]:
    if proto == "icmp":
        # One echo request; busybox ping exits 0 only when the reply came back.
        family = "-6" if ":" in target.address else "-4"
        return ["busybox", "ping", family, "-c", "1", "-W", str(wait), target.address]
    if proto == "udp":
        return [sys.executable, "-c", _UDP_CLIENT, target.address, str(target.port), str(wait)]
    # busybox nc for TCP (HTTP is spoken by hand: the static busybox's wget crashes in
    # glibc's resolver); the server closes the connection after its answer.
    return [
        *("busybox", "timeout", str(wait + 1)),
        *("busybox", "nc", "-w", str(wait), target.address, str(target.port)),
    ]


def _request(target: _Target, proto: str) -> str | None:
    if proto == "icmp":
        return None
    if proto == "tcp" and _is_http(target):
        return f"GET / HTTP/1.0\r\nHost: {target.address}\r\nUser-Agent: podpath-lab\r\n\r\n"
    return "podpath probe\n"


def _is_http(target: _Target) -> bool:
    return target.port in (80, 8080) or target.port >= 30000


def _body(raw: str) -> str:
    """The body of an HTTP response (everything after the blank line), else raw."""
    head, sep, body = raw.replace("\r\n", "\n").partition("\n\n")
    return body if sep and head.startswith("HTTP/") else raw


def run_probe(
    lab: Lab,
    src: str,
    dst: str,
    port: int | None,
    proto: str,
    family: int | None = None,
    wait: int = DEFAULT_WAIT,
) -> ProbeResult:
    """Run one probe; failures to connect are a result (ok=False), not an exception.

    `family` (4 or 6) picks which address a pod, Service or node name stands for;
    `wait` is how many seconds to wait for an answer (1 to PROBE_TIMEOUT).
    """
    proto = proto.lower()
    if proto not in ("tcp", "udp", "icmp"):
        raise LabError(f"probe protocol must be tcp, udp or icmp, not {proto!r}")
    if not 1 <= wait <= PROBE_TIMEOUT:
        raise LabError(f"a probe waits 1 to {PROBE_TIMEOUT} seconds for an answer, not {wait}")
    host, given_port = _split_port(dst)
    if proto == "icmp" and (port or given_port) is not None:
        raise LabError(f"ICMP has no ports: give {host} without a port")
    target = _resolve_dst(lab, host, port or given_port, proto, family)
    if proto == "icmp":
        target = _Target(target.address, 0)
    prefix: list[str] = []
    src_node: str
    src_name: str
    if src in {n.name for n in lab.nodes}:
        src_node, src_name = src, src
    elif ":/" in src and src.split(":", 1)[0] in {n.name for n in lab.nodes}:
        # A namespace of a node that is no pod (one made by hand): NODE:/run/netns/NAME.
        src_node, path = src.split(":", 1)
        src_name = src
        prefix = ["nsenter", f"--net={path}", "--"]
    else:
        pod = lab.pod(src)
        src_node, src_name = pod.node, pod.ref
        prefix = ["nsenter", f"--net={pod.netns_path}", "--"]
    argv = [*prefix, *_client(target, proto, wait)]
    began = time.monotonic()
    try:
        done = lab.exec(
            src_node, argv, input=_request(target, proto), timeout=PROBE_TIMEOUT + 5, check=False
        )
        out, err = _body(done.stdout), done.stderr.strip()
        ok = done.returncode == 0 and bool(out.strip())
    except subprocess.TimeoutExpired:
        ok, out, err = False, "", "timed out"
    served = _served_by(lab, out) if ok and proto != "icmp" else None
    return ProbeResult(
        src_name,
        src_node,
        dst,
        target.address,
        target.port,
        proto,
        ok,
        out.strip(),
        served,
        "" if ok else (err or "no answer"),
        round(time.monotonic() - began, 3),
        _served_address(lab, served, target.address),
    )


def _served_address(lab: Lab, served: str | None, used: str) -> str | None:
    """The answering pod's address of the family the probe used (None: not a pod)."""
    pod = next((p for p in lab.pods if p.ref == served), None)
    if pod is None:
        return None
    return next((ip for ip in pod.ips or (pod.ip,) if (":" in ip) == (":" in used)), None)


def _served_by(lab: Lab, answer: str) -> str | None:
    page = _PAGE_RE.search(answer)
    if page:
        return page.group(1)
    echo = _ECHO_RE.match(answer)
    if echo:
        for pod in lab.pods:
            if pod.name == echo.group(1):
                return pod.ref
    return None
