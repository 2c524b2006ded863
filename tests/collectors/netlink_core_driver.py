"""Runs INSIDE a private `unshare --net` child (see test_netlink_core.py).

Provokes, on real NETLINK_ROUTE sockets of a namespace that holds only `lo`, each
case the netlink core must handle, and prints what happened as one JSON document.
Everything here only reads, except the forged datagram, which goes from one socket of
this throw-away namespace to another.
"""

from __future__ import annotations

import json
import socket
import struct
import sys
import threading
from typing import Any

from podpath.collectors.netlink import nlsocket
from podpath.collectors.netlink.rtnetlink import RTM_GETADDR, RTM_GETLINK, RouteSocket
from podpath.collectors.netlink.rtnetlink_decode import decode_links
from podpath.collectors.netlink.wire import NetlinkError

NETLINK_GET_STRICT_CHK = 12
_IFINFOMSG = struct.Struct("=BxHiII")


def _names(sock: RouteSocket) -> list[str]:
    return [link.name for link in decode_links(sock.dump_table(RTM_GETLINK).buffers, 1)]


def _error(call: Any) -> NetlinkError:
    try:
        call()
    except NetlinkError as exc:
        return exc
    raise AssertionError("no error")


def _peek(sock: RouteSocket) -> bytes:
    """The datagram waiting in the socket, left there."""
    raw: Any = sock.transport
    data: bytes = raw.recv(65536, socket.MSG_PEEK | socket.MSG_DONTWAIT)
    return data


def _strict(sock: RouteSocket) -> None:
    """Make the kernel validate request headers (and explain refusals): iproute2's -strict."""
    raw: Any = sock.transport
    raw.setsockopt(nlsocket.SOL_NETLINK, NETLINK_GET_STRICT_CHK, 1)


def case_late() -> dict[str, Any]:
    """An answer to a request nobody waits for is queued first; the dump must skip it."""
    with RouteSocket() as sock:
        seq = sock.next_seq()  # this request is abandoned: its answer stays queued
        sock.transport.send(
            struct.pack("=IHHII", 32, RTM_GETLINK, 1, seq, 0) + _IFINFOMSG.pack(0, 0, 1, 0, 0)
        )
        queued = struct.unpack_from("=IHHII", _peek(sock))[3] == seq
        return {"dumped": _names(sock), "late_was_queued": queued}


def _forged_newlink(seq: int, portid: int) -> bytes:
    body = _IFINFOMSG.pack(0, 1, 99, 0, 0) + struct.pack("=HH", 11, 3) + b"forged\0\0"
    return struct.pack("=IHHII", 16 + len(body), 16, 2, seq, portid) + body


def case_forged() -> dict[str, Any]:
    """A root process sends a NEWLINK with the right seq and port id to our socket, and
    to a plain (unconnected) one."""
    with (
        RouteSocket() as sock,
        socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0) as plain,
        socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0) as other,
    ):
        plain.bind((0, 0))
        plain.settimeout(5)
        other.bind((0, 0))
        seq = sock.next_seq() + 1  # the dump below takes the next number
        try:
            other.sendto(_forged_newlink(seq, sock.portid), (sock.portid, 0))
            refused = False
        except ConnectionRefusedError:
            refused = True
        plain_port = plain.getsockname()[0]
        other.sendto(_forged_newlink(1, plain_port), (plain_port, 0))
        reached = b"forged" in plain.recv(65536)
        return {"refused": refused, "dumped": _names(sock), "unconnected_gets_it": reached}


def case_enodev() -> dict[str, Any]:
    """GETLINK for an ifindex that does not exist."""
    with RouteSocket() as sock:
        err = _error(lambda: sock.call(RTM_GETLINK, _IFINFOMSG.pack(0, 0, 999, 0, 0)))
        return {"errno": err.errno, "ack": err.ack_message}


def case_extack() -> dict[str, Any]:
    """GETLINK whose header strict checking refuses (ifi_flags set)."""
    with RouteSocket() as sock:
        _strict(sock)
        err = _error(lambda: sock.call(RTM_GETLINK, _IFINFOMSG.pack(0, 0, 1, 1, 0)))
        return {"errno": err.errno, "ack": err.ack_message}


def case_dump_extack() -> dict[str, Any]:
    """An address dump whose header strict checking refuses (prefix length set)."""
    with RouteSocket() as sock:
        _strict(sock)
        header = struct.pack("=BBBBI", socket.AF_INET, 5, 0, 0, 0)
        err = _error(lambda: sock.dump(RTM_GETADDR, header))
        return {"errno": err.errno, "ack": err.ack_message, "next": _names(sock)}


def case_truncated() -> dict[str, Any]:
    """A receive buffer smaller than the first dump part, then a normal one."""
    out: dict[str, Any] = {}
    with RouteSocket() as sock:

        def small_buffer() -> None:
            # A fresh thread gets a fresh receive buffer, of the size set here.
            out["errno"] = _error(lambda: sock.dump_table(RTM_GETLINK)).errno

        nlsocket.RECV_BUFFER, size = 64, nlsocket.RECV_BUFFER
        thread = threading.Thread(target=small_buffer)
        thread.start()
        thread.join()
        nlsocket.RECV_BUFFER = size
        out["next"] = _names(sock)
    return out


def main() -> None:
    """Run every case; print {case: result}."""
    cases = {
        "late": case_late,
        "forged": case_forged,
        "enodev": case_enodev,
        "extack": case_extack,
        "dump_extack": case_dump_extack,
        "truncated": case_truncated,
    }
    sys.stdout.write(json.dumps({name: run() for name, run in cases.items()}))


if __name__ == "__main__":
    main()
