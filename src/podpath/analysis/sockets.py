"""Who listens: which sockets of a namespace take a packet, and how `ss` would print them.

The lookup follows the kernel's (net/ipv4/inet_hashtables.c, udp.c, their IPv6
twins) for the first packet of a connection: a TCP SYN goes to a LISTEN socket, a UDP
datagram to a socket bound to its port, the one with the best score winning:

- the bound address must be the packet's destination, or a wildcard of its family
  (0.0.0.0, ::); an exact bind wins over a wildcard;
- an IPv4 packet also reaches IPv6 sockets without IPV6_V6ONLY bound to :: or to the
  v4-mapped form of its destination (::ffff:10.244.0.4); IPv6 packets reach only IPv6
  sockets;
- a socket bound to a device (SO_BINDTODEVICE) takes only packets that arrived on it,
  and wins over an unbound one;
- a connected UDP socket takes only datagrams from its peer.

Sockets with the same best score are a SO_REUSEPORT group: the kernel picks one per
connection by hash, so all of them are returned. What the snapshot cannot tell (a
namespace whose sockets were not read, an IPv6 socket's v6only read from procfs) never
becomes "nothing listens": `receivers` returns None, or counts the socket in.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from podpath.snapshot.model import Container, NetNamespace, Pod, Socket

_WILDCARD = {4: "0.0.0.0", 6: "::"}
# States in which a socket receives new connections (TCP) or datagrams (UDP).
_RECEIVING = {"tcp": frozenset({"LISTEN"}), "udp": frozenset({"UNCONN", "ESTAB"})}


@dataclass(frozen=True)
class Packet:
    """The fields of an arriving packet that pick its socket."""

    proto: str  # tcp | udp
    dst: str
    dport: int
    src: str | None = None
    sport: int | None = None
    iif: int | None = None  # ifindex it arrived on, when known


def receivers(ns: NetNamespace, packet: Packet) -> tuple[Socket, ...] | None:
    """The sockets that would take this packet (several: a SO_REUSEPORT group).

    None when the namespace's sockets are not in the snapshot; () when nothing takes it.
    """
    if ns.sockets is None:
        return None
    version = _version(packet.dst)
    if version is None or packet.proto not in _RECEIVING:
        return None
    best: list[Socket] = []
    top = -1
    for sock in ns.sockets:
        score = _score(sock, packet, version)
        if score > top:
            best, top = [sock], score
        elif score == top and score >= 0:
            best.append(sock)
    return tuple(best) if top >= 0 else ()


def _score(sock: Socket, packet: Packet, version: int) -> int:
    """How well a socket matches (higher wins, like compute_score); -1: not at all."""
    if (
        sock.protocol != packet.proto
        or sock.local_port != packet.dport
        or sock.state not in _RECEIVING[packet.proto]
    ):
        return -1
    score = 0
    if version == 4 and sock.family == 6:
        if sock.v6only:
            return -1
        if sock.local == f"::ffff:{packet.dst}":
            score += 4
        elif sock.local != "::":
            return -1
    elif sock.family != version:
        return -1
    elif _same(sock.local, packet.dst, version):
        score += 4
    elif sock.local != _WILDCARD[version]:
        return -1
    if sock.bound_dev is not None:
        if packet.iif is not None and sock.bound_dev != packet.iif:
            return -1
        score += 2
    if sock.peer is not None:
        # Only connected UDP sockets get here (a TCP one is never LISTEN).
        if packet.src is None or not _same(sock.peer, packet.src, version):
            return -1
        if packet.sport is not None and sock.peer_port != packet.sport:
            return -1
        score += 8
    # The IPv4 lookup of a dual-stack kernel prefers an AF_INET socket (it is hashed first).
    return score * 2 + (1 if sock.family == version else 0)


def _version(address: str) -> int | None:
    try:
        return ipaddress.ip_address(address).version
    except ValueError:
        return None


def _same(a: str, b: str, version: int) -> bool:
    if a == b:
        return True
    if version == 6:
        try:
            return ipaddress.ip_address(a) == ipaddress.ip_address(b)
        except ValueError:
            return False
    return False


def is_listening(sock: Socket) -> bool:
    """A TCP LISTEN socket or an unconnected UDP one: what `ss -l` shows."""
    return sock.state == "LISTEN" or (sock.protocol == "udp" and sock.state == "UNCONN")


def endpoint(
    family: int, address: str, port: int, v6only: bool | None = None, dev: str | None = None
) -> str:
    """A local side as `ss` prints it: 10.0.0.1:80, [fd00::1]:80, *:80 (dual-stack), %dev."""
    if family == 6 and address == "::" and v6only is False:
        host = "*"
    elif family == 6:
        host = f"[{address}]"
    else:
        host = address
    if dev:
        host += f"%{dev}"
    return f"{host}:{port}"


def peer_endpoint(
    family: int, address: str | None, port: int | None, v6only: bool | None = None
) -> str:
    """A remote side as `ss` prints it; unconnected: 0.0.0.0:*, [::]:*, *:* (dual-stack)."""
    if address is None:
        if family == 6 and v6only is False:
            return "*:*"
        return ("0.0.0.0" if family == 4 else "[::]") + ":*"
    host = f"[{address}]" if family == 6 else address
    return f"{host}:{port}"


def local_endpoint(sock: Socket) -> str:
    """A socket's local side as `ss` prints it (see `endpoint`)."""
    return endpoint(sock.family, sock.local, sock.local_port, sock.v6only)


def containers_by_pid(pods: tuple[Pod, ...]) -> dict[int, tuple[Pod, Container]]:
    """Each PID of a pod's containers, with its pod and container."""
    return {pid: (pod, c) for pod in pods for c in pod.containers for pid in c.pids}
