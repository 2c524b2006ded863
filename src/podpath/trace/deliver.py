"""The last step of a path: the packet is delivered to a namespace, and a socket takes it, or none.

A TCP SYN that no listening socket takes is answered with a RST (connection refused),
a UDP datagram with ICMP port unreachable: the branch's verdict is then "refused",
not "delivered" -- the classic Service targetPort mismatch. A delivered packet names
the process(es) and container(s) whose socket takes it. When the snapshot cannot
tell (no socket table for that namespace: an older snapshot, a gap; IPVS mode with no
IPVS state, where a virtual service could take the packet before any socket), the
packet is delivered with "listeners unknown", never refused.
"""

from __future__ import annotations

from podpath.analysis.index import SnapshotIndex
from podpath.analysis.sockets import Packet as SocketLookup
from podpath.analysis.sockets import local_endpoint, receivers
from podpath.snapshot.model import Container, Link, Pod, Socket
from podpath.trace.model import Hop, JsonValue, Packet
from podpath.trace.probe import hostport

# What the kernel sends back when no socket takes the first packet.
_REFUSAL = {"tcp": "RST (connection refused)", "udp": "ICMP port unreachable"}


def deliver(
    index: SnapshotIndex, netns: int, where: str, p: Packet, iif: Link | None
) -> tuple[str, str, Hop]:
    """(verdict, reason, hop) of packet `p` delivered in `netns` (see the module doc).

    `where` names the namespace ("pod default/web-0"); `iif` is the device it arrived on.
    """
    node = index.snapshot.node.hostname
    pod = index.pods_by_netns.get(netns)
    data: dict[str, JsonValue] = {
        "netns": netns,
        "pod": f"{pod.namespace}/{pod.name}" if pod else None,
        "node": node,
        "address": p.dst,
        "port": p.dport,
    }
    text = f"delivered to {where}: {p.proto} {hostport(p.dst, p.dport)}"
    reason = f"delivered to {where} ({hostport(p.dst, p.dport)})"
    found, unknown = _lookup(index, netns, p, iif)
    details: tuple[str, ...] = ()
    if unknown is not None:
        details = (f"listeners unknown: {unknown}",)
        data["listening"] = None
        data["listeners"] = None
    elif found is not None:
        by_pid = index.containers_by_pid
        owners = [_owners(by_pid, sock) for sock in found]
        data["listening"] = bool(found)
        data["listeners"] = [_listener_json(s, o) for s, o in zip(found, owners, strict=True)]
        if not found:
            refusal = (
                f"nothing listens on {hostport(p.dst, p.dport)}/{p.proto} → {_REFUSAL[p.proto]}"
            )
            hop = Hop("deliver", node, f"{text}, but {refusal}", (), (), data)
            return "refused", f"delivered to {where}, but {refusal}", hop
        details = tuple(
            _listener_text(s, o, data["pod"]) for s, o in zip(found, owners, strict=True)
        )
        if len(found) > 1:
            details += (f"a SO_REUSEPORT group of {len(found)}: the kernel picks one by hash",)
        reason += ", " + _taken_by(p.proto, found, owners, data["pod"])
    return "delivered", reason, Hop("deliver", node, text, details, (), data)


def _lookup(
    index: SnapshotIndex, netns: int, p: Packet, iif: Link | None
) -> tuple[tuple[Socket, ...] | None, str | None]:
    """(sockets that take the packet, or None when not asked) and why it is unknown."""
    if p.direction != "original" or p.proto not in _REFUSAL or p.dport is None:
        return None, None  # a reply goes to the client's own socket; ICMP to the kernel
    ns = index.netns_by_inode.get(netns)
    if ns is None or ns.sockets is None:
        return None, "this snapshot has no socket table for the namespace"
    if (
        netns == index.snapshot.root_netns
        and index.snapshot.ipvs is None
        and index.kube_proxy_mode.mode == "ipvs"
    ):
        # With the IPVS state read the engine has already let IPVS take what it takes.
        return None, "kube-proxy runs in IPVS mode and the snapshot has no IPVS state"
    lookup = SocketLookup(p.proto, p.dst, p.dport, p.src, p.sport, iif.ifindex if iif else None)
    found = receivers(ns, lookup)
    if found is None:
        return None, "the namespace's sockets cannot answer for this address"
    return found, None


def _owners(by_pid: dict[int, tuple[Pod, Container]], sock: Socket) -> list[dict[str, JsonValue]]:
    """Each process holding the socket, with its pod and container when it is in one."""
    out: list[dict[str, JsonValue]] = []
    for owner in sock.owners:
        pod, container = by_pid.get(owner.pid, (None, None))
        out.append(
            {
                "pid": owner.pid,
                "comm": owner.comm,
                "fd": owner.fd,
                "pod": f"{pod.namespace}/{pod.name}" if pod else None,
                "container": container.name if container else None,
            }
        )
    return out


def _listener_json(sock: Socket, owners: list[dict[str, JsonValue]]) -> dict[str, JsonValue]:
    return {
        "protocol": sock.protocol,
        "local": sock.local,
        "local_port": sock.local_port,
        "state": sock.state,
        "inode": sock.inode,
        "owners": list[JsonValue](owners),
    }


def _who(owner: dict[str, JsonValue], pod: JsonValue) -> str:
    """ "httpd (pid 42) in container web", naming the owner's pod when it is another one
    (a hostNetwork pod's process listening in the node's namespace)."""
    where = f" in container {owner['container']}" if owner["container"] else ""
    if owner["container"] and owner["pod"] != pod:
        where += f" of pod {owner['pod']}"
    return f"{owner['comm']} (pid {owner['pid']}){where}"


def _listener_text(sock: Socket, owners: list[dict[str, JsonValue]], pod: JsonValue) -> str:
    # A kernel socket (a VXLAN port) has no process; nor has one whose holder was unreadable.
    who = ", ".join(_who(o, pod) for o in owners)
    who = who or "no process (a kernel socket, or an unreadable one)"
    return f"{sock.protocol} socket {local_endpoint(sock)} ({sock.state}) held by {who}"


def _taken_by(
    proto: str, found: tuple[Socket, ...], owners: list[list[dict[str, JsonValue]]], pod: JsonValue
) -> str:
    names = list(dict.fromkeys(_who(o, pod) for held in owners for o in held))
    if not names:
        return f"taken by the kernel socket on {local_endpoint(found[0])}"
    return ("accepted by " if proto == "tcp" else "received by ") + ", ".join(names)
