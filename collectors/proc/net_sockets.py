"""TCP and UDP sockets from /proc/net/{tcp,udp}{,6}, and who holds each one open.

sock_diag (`collectors.netlink.sock_diag`) is preferred: it is what `ss` reads and it
tells whether a [::] bind also takes IPv4. But on a kernel whose tcp_diag/udp_diag
are modules not loaded yet, asking sock_diag would load them, so these files are read
instead. They are opened by the namespace opener thread while it is inside the
namespace (/proc/thread-self/net is the calling thread's netns); an open file keeps
answering for that namespace (seq_open_net holds a reference), so it is read later on
the calling thread, like the netlink sockets.

Owners are found as `ss -p` finds them: the process scan reads every fd table
(`processes.scan_processes_and_fds(sockets=True)`), and `with_owners` matches each
socket fd's sockfs inode with the socket's.

Format (net/ipv4/tcp_ipv4.c get_tcp4_sock, net/ipv4/udp.c udp4_format_sock): after a
header line, one line per socket: `sl local rem st tx_queue:rx_queue tr:when retrnsmt
uid timeout inode ...`, addresses as the hex of each 32-bit word in host byte order,
ports as hex.
"""

from __future__ import annotations

import _socket
import os
import sys
from dataclasses import replace

from podpath.snapshot.model import NetNamespace, Process, Socket, SocketOwner

# The files, the protocol and the IP version each one lists.
FILES = (("tcp", "tcp", 4), ("tcp6", "tcp", 6), ("udp", "udp", 4), ("udp6", "udp", 6))
# `st` is a TCP state number (include/net/tcp_states.h), named as `ss` prints it; UDP
# uses 07 (TCP_CLOSE) for an unconnected socket, ss's UNCONN; 12 (TCP_NEW_SYN_RECV) is a
# request socket. sock_diag's reader names the same numbers with this table.
STATE_NAMES = {
    1: "ESTAB",
    2: "SYN-SENT",
    3: "SYN-RECV",
    4: "FIN-WAIT-1",
    5: "FIN-WAIT-2",
    6: "TIME-WAIT",
    7: "UNCONN",
    8: "CLOSE-WAIT",
    9: "LAST-ACK",
    10: "LISTEN",
    11: "CLOSING",
    12: "SYN-RECV",
}
_AF = {4: _socket.AF_INET, 6: _socket.AF_INET6}
_MAX_BYTES = 256 * 1024 * 1024  # ~150 bytes a line: about 1.7 million sockets


class ProcNetFiles:
    """The four socket tables of the calling thread's network namespace, opened now."""

    source = "procfs"

    def __init__(self) -> None:
        self.fds: list[tuple[int, str, int]] = []  # (fd, protocol, version)
        try:
            for name, protocol, version in FILES:
                try:
                    fd = os.open(f"/proc/thread-self/net/{name}", os.O_RDONLY | os.O_CLOEXEC)
                except FileNotFoundError:
                    continue  # tcp6/udp6 are absent when IPv6 is disabled
                self.fds.append((fd, protocol, version))
        except OSError:
            self.close()
            raise

    def close(self) -> None:
        """Close the files."""
        while self.fds:
            os.close(self.fds.pop()[0])

    def sockets(self, netns: int) -> list[Socket]:
        """Every socket the four files list (read now, from the namespace they were opened in)."""
        found: list[Socket] = []
        for fd, protocol, version in self.fds:
            found += parse_table(_read_all(fd), netns, protocol, version)
        return found


def _read_all(fd: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    # seq_file files are read in chunks; a short read is not the end.
    while size < _MAX_BYTES and (chunk := os.read(fd, 1 << 20)):
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def parse_table(raw: bytes, netns: int, protocol: str, version: int) -> list[Socket]:
    """The sockets of one /proc/net/{tcp,udp}{,6} file; lines that do not parse are skipped."""
    out: list[Socket] = []
    for line in raw.split(b"\n")[1:]:
        fields = line.split()
        if len(fields) < 10:
            continue
        try:
            local, local_port = _endpoint(fields[1], version)
            peer, peer_port = _endpoint(fields[2], version)
            state = int(fields[3], 16)
            tx, _, rx = fields[4].partition(b":")
            uid, inode = int(fields[7]), int(fields[9])
            send_q, recv_q = int(tx, 16), int(rx, 16)
        except ValueError:
            continue
        unconnected = peer_port == 0 and peer in ("0.0.0.0", "::")
        out.append(
            Socket(
                netns=netns,
                protocol=protocol,
                family=version,
                state=STATE_NAMES.get(state, f"state {state}"),
                local=local,
                local_port=local_port,
                peer=None if unconnected else peer,
                peer_port=None if unconnected else peer_port,
                inode=inode,
                uid=uid,
                recv_q=recv_q,
                send_q=send_q,
            )
        )
    return out


def _endpoint(field: bytes, version: int) -> tuple[str, int]:
    """ "0100007F:0035" -> ("127.0.0.1", 53)."""
    address, sep, port = field.partition(b":")
    if not sep or len(address) != (8 if version == 4 else 32):
        raise ValueError(field)
    # Each 32-bit word is printed as a number in host byte order (%08X of a __be32).
    raw = b"".join(
        int(address[i : i + 8], 16).to_bytes(4, sys.byteorder) for i in range(0, len(address), 8)
    )
    return _socket.inet_ntop(_AF[version], raw), int(port, 16)


def with_owners(
    netns: tuple[NetNamespace, ...],
    socket_fds: tuple[tuple[int, int, int], ...],
    processes: tuple[Process, ...],
) -> tuple[NetNamespace, ...]:
    """Each socket with the processes holding it open, as `ss -p` finds them.

    `socket_fds` are (sockfs inode, pid, fd) from the fd tables of the process scan;
    sockfs inodes are unique across namespaces, so the inode alone finds the socket.
    """
    comm = {p.pid: p.comm for p in processes}
    holders: dict[int, list[SocketOwner]] = {}
    for inode, pid, fd in socket_fds:
        holders.setdefault(inode, []).append(SocketOwner(pid, comm.get(pid, "?"), fd))
    out = []
    for ns in netns:
        if not ns.sockets:
            out.append(ns)
            continue
        sockets = tuple(
            replace(s, owners=tuple(holders[s.inode])) if s.inode in holders else s
            for s in ns.sockets
        )
        out.append(replace(ns, sockets=sockets))
    return tuple(out)
