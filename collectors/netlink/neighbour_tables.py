"""The kernel's neighbour tables (ARP's arp_cache, NDP's ndisc_cache): limits and counters.

`ip -s ntable show` reads the same RTM_NEWNEIGHTBL messages. A neighbour table is one
per family for the whole kernel: its entry count and counters are every network
namespace's together, and its gc_thresh1/2/3 are the init namespace's
net.ipv4.neigh.default.* (net.ipv6 for NDP), which no other namespace has in its
procfs (neigh_sysctl_register). The dump answers the same in any namespace
(neightbl_dump_info, net/core/neighbour.c), so it is asked in the collector's own,
with no setns. Asking is read-only.

Each table comes as one message with its name, thresholds, config and stats, followed
by one message per device's parameters (name and NDTA_PARMS only), which are skipped.
Constants are the kernel's uapi values (linux/neighbour.h).
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Iterable

from podpath.collectors.netlink.rtnetlink import RTM_GETNEIGHTBL, RouteSocket
from podpath.collectors.netlink.wire import NetlinkError, attributes, payloads
from podpath.snapshot.model import Gap, NeighbourTable

RTM_NEWNEIGHTBL = 64
NDTA_NAME, NDTA_THRESH1, NDTA_THRESH2, NDTA_THRESH3 = 1, 2, 3, 4
NDTA_CONFIG, NDTA_STATS = 5, 7
_NDTMSG_LEN = 4  # struct ndtmsg: family, two pad fields
# struct ndt_config: key_len, entry_size (u16), then entries, last_flush... (u32).
_CONFIG_ENTRIES = struct.Struct("=HHI")
# struct ndt_stats: eleven u64 counters; forced_gc_runs and table_fulls are the last two.
_STATS = struct.Struct("=11Q")
_U32 = struct.Struct("=I")
_FAMILIES: dict[int, int] = {socket.AF_INET: 4, socket.AF_INET6: 6}


def _u32(data: bytes | None) -> int | None:
    return int(_U32.unpack_from(data)[0]) if data is not None and len(data) >= 4 else None


def decode_neighbour_tables(buffers: Iterable[bytes]) -> list[NeighbourTable]:
    """RTM_NEWNEIGHTBL messages of AF_INET and AF_INET6 -> NeighbourTable objects (a
    table's per-device parameter messages, which carry no thresholds, are skipped).

    A dump that goes on in another datagram in the middle of a table's devices sends
    that table's own message again (neightbl_dump_info starts the table over, skipping
    only the devices sent): one table per family and name is kept, the last read."""
    out: dict[tuple[int, str], NeighbourTable] = {}
    for buf, off, end in payloads(buffers, RTM_NEWNEIGHTBL, _NDTMSG_LEN, "strict"):
        family = _FAMILIES.get(buf[off])
        if family is None:
            continue  # DECnet, ATM's CLIP: no pod network uses them
        a = attributes(buf, off + _NDTMSG_LEN, end, "strict")
        thresholds = [_u32(a.get(kind)) for kind in (NDTA_THRESH1, NDTA_THRESH2, NDTA_THRESH3)]
        config = a.get(NDTA_CONFIG)
        if None in thresholds or config is None or len(config) < _CONFIG_ENTRIES.size:
            continue
        thresh1, thresh2, thresh3 = (t or 0 for t in thresholds)
        stats = a.get(NDTA_STATS)
        counters = _STATS.unpack_from(stats) if stats and len(stats) >= _STATS.size else None
        name = a.get(NDTA_NAME, b"").rstrip(b"\0").decode("ascii", "replace")
        out[(family, name)] = NeighbourTable(
            family=family,
            name=name,
            thresh1=thresh1,
            thresh2=thresh2,
            thresh3=thresh3,
            entries=_CONFIG_ENTRIES.unpack_from(config)[2],
            table_fulls=counters[10] if counters else 0,
            forced_gc_runs=counters[9] if counters else 0,
        )
    return list(out.values())


def read_neighbour_tables() -> tuple[tuple[NeighbourTable, ...] | None, tuple[Gap, ...]]:
    """The kernel's ARP and NDP tables, or None and the gap that says why not."""
    try:
        with RouteSocket() as rs:
            dump = rs.dump_table(RTM_GETNEIGHTBL).checked()
        return tuple(decode_neighbour_tables(dump.buffers)), ()
    except (NetlinkError, OSError) as exc:
        reason = f"RTM_GETNEIGHTBL: {exc}"
        return None, (Gap("neighbour tables", reason, "unavailable"),)
