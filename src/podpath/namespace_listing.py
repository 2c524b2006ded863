"""`podpath ls namespaces`: every namespace, lsns -J's keys plus netnsid, nsfs and holders.

It needs the snapshot's namespaces and nothing else: not the index and the parsers the
other kinds import (`podpath.listing`), ~6 ms of a command that competes with lsns
(docs/performance.md, "ls namespaces: only what it lists").
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from podpath.table import Column, Listing, key

if TYPE_CHECKING:
    from podpath.snapshot.model import Snapshot


def namespaces(snapshot: Snapshot) -> Listing:
    """Every namespace, lsns -J keys plus netnsid/nsfs and how it is held."""
    rows = [
        {
            "inode": ns.inode,
            "type": ns.type,
            "nprocs": ns.nprocs,
            "pid": ns.pid,
            "user": ns.user,
            "uid": ns.uid,
            "command": ns.command,
            "netnsid": ns.netnsid,
            "nsfs": ns.nsfs,
            "held_by": list(ns.held_by),
            "holder_fds": [{"pid": h.pid, "fd": h.fd} for h in ns.holder_fds],
        }
        for ns in snapshot.namespaces
    ]
    cols = (
        Column("NS", key("inode"), True),
        Column("TYPE", key("type")),
        Column("NPROCS", key("nprocs"), True),
        Column("PID", key("pid"), True),
        Column("USER", key("user")),
        Column("NETNSID", key("netnsid"), True),
        Column("NSFS", key("nsfs")),
        Column("COMMAND", key("command")),
    )
    return Listing(rows, cols)
