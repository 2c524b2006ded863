"""Decoding RTM_NEWNEIGHTBL: a table's own message, not its per-device ones, of IPv4 and IPv6 only.

The real kernel's answer is compared with `ip -s ntable show` in
tests/collectors/test_kernel_state_lab.py; here, the message shapes it does not send on
cue (another family, a table message without its stats), and a dump long enough that
the kernel repeats each table's message.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import struct
import subprocess
import sys

import pytest
from netlink_fakes import msg, nla

from podpath.collectors.netlink.neighbour_tables import (
    NDTA_CONFIG,
    NDTA_NAME,
    NDTA_STATS,
    NDTA_THRESH1,
    NDTA_THRESH2,
    NDTA_THRESH3,
    RTM_NEWNEIGHTBL,
    decode_neighbour_tables,
)
from podpath.snapshot.model import NeighbourTable

NDTA_PARMS = 6


def _table(family: int, name: bytes, entries: int, stats: tuple[int, ...] | None) -> bytes:
    body = struct.pack("=BxH", family, 0) + nla(NDTA_NAME, name + b"\0")
    body += nla(NDTA_THRESH1, struct.pack("=I", 128))
    body += nla(NDTA_THRESH2, struct.pack("=I", 512))
    body += nla(NDTA_THRESH3, struct.pack("=I", 1024))
    body += nla(NDTA_CONFIG, struct.pack("=HHIIIIIII", 4, 336, entries, 0, 0, 0, 7, 0, 0))
    if stats is not None:
        body += nla(NDTA_STATS, struct.pack("=11Q", *stats))
    return msg(RTM_NEWNEIGHTBL, body, seq=1)


def _parms(family: int, name: bytes) -> bytes:
    """A per-device message: the table's name and one device's parameters, no thresholds."""
    body = struct.pack("=BxH", family, 0) + nla(NDTA_NAME, name + b"\0")
    return msg(
        RTM_NEWNEIGHTBL, body + nla(NDTA_PARMS | 0x8000, nla(1, struct.pack("=I", 2))), seq=1
    )


def test_tables_are_read_and_device_parameters_and_other_families_skipped() -> None:
    """One datagram as the kernel sends it: each table, then its devices' parameters."""
    stats = (16, 12, 0, 0, 2297, 1, 0, 0, 42, 7, 3)  # ... forced_gc_runs, table_fulls
    datagram = (
        _table(socket.AF_INET, b"arp_cache", 900, stats)
        + _parms(socket.AF_INET, b"arp_cache")
        + _table(socket.AF_INET6, b"ndisc_cache", 209, None)
        + _table(12, b"dn_neigh_cache", 1, stats)  # DECnet
    )
    assert decode_neighbour_tables([datagram]) == [
        NeighbourTable(4, "arp_cache", 128, 512, 1024, 900, table_fulls=3, forced_gc_runs=7),
        NeighbourTable(6, "ndisc_cache", 128, 512, 1024, 209),
    ]


def test_a_dump_over_many_datagrams_is_one_table_per_family() -> None:
    """With hundreds of devices the dump spans datagrams, and the kernel sends a table's
    own message again in each (neightbl_dump_info starts the table over): `ip ntable show`
    lists each table several times, podpath once, with the same thresholds. Run in a
    private network namespace of 250 veth pairs."""
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("needs root and unshare")
        pytest.skip("needs root and unshare")
    script = (
        "for i in $(seq 1 250); do ip link add va$i type veth peer name vb$i; done; "
        f'{sys.executable} -c "{_READ}"; ip -j ntable show'
    )
    done = subprocess.run(
        ["unshare", "--net", "sh", "-c", script], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    ours, theirs = done.stdout.splitlines()[:2]
    tables = json.loads(ours)
    listed = [t for t in json.loads(theirs) if "thresh1" in t]
    assert sorted(t["name"] for t in tables) == ["arp_cache", "ndisc_cache"]
    assert len(listed) > len(tables), "the kernel's dump repeats each table's message"
    for t in tables:
        same = {
            (x["thresh1"], x["thresh2"], x["thresh3"]) for x in listed if x["name"] == t["name"]
        }
        assert same == {(t["thresh1"], t["thresh2"], t["thresh3"])}


# Prints the tables podpath reads, as JSON on one line.
_READ = (
    "import json; "
    "from podpath.collectors.netlink.neighbour_tables import read_neighbour_tables; "
    "tables, gaps = read_neighbour_tables(); assert not gaps, gaps; "
    "print(json.dumps([dict(name=t.name, thresh1=t.thresh1, thresh2=t.thresh2, "
    "thresh3=t.thresh3) for t in tables]))"
)
