"""IPVS state of the node's root netns, from /proc: never from ipvsadm.

`ipvsadm` runs `modprobe ip_vs` when the module is not loaded (docs/reliability.md), so
podpath reads the kernel's own listings instead: /proc/net/ip_vs (virtual services, their
scheduler and persistence, real servers with weights and connection counts; addresses
in hex, as ip_vs_info_seq_show prints them) and /proc/net/ip_vs_conn (connections and the
real server each was sent to). Both exist only while ip_vs is loaded: their absence
means IPVS is not in use, which is not a gap.
"""

from __future__ import annotations

from podpath.collectors.hostroot import CollectorError, HostRoot, Vanished
from podpath.snapshot.model import Gap, IpvsDump

MAX_CONN_BYTES = 32 * 1024 * 1024  # ~250k connections


def collect_ipvs(host: HostRoot) -> tuple[IpvsDump | None, list[Gap]]:
    """/proc/net/ip_vs (and ip_vs_conn) of PID 1's netns, verbatim; None without ip_vs."""
    try:
        services = host.proc_read("1/net/ip_vs").decode(errors="surrogateescape")
    except Vanished:
        return None, []  # ip_vs is not loaded: the node does not use IPVS
    except CollectorError as err:
        return None, [err.to_gap()]
    gaps: list[Gap] = []
    conns: str | None = None
    try:
        raw = host.proc_read("1/net/ip_vs_conn", limit=MAX_CONN_BYTES)
        conns = raw.decode(errors="surrogateescape")
        if len(raw) >= MAX_CONN_BYTES:
            gaps.append(Gap("/proc/net/ip_vs_conn", "truncated at 32 MiB", "inconsistent"))
    except CollectorError as err:
        gaps.append(err.to_gap())
    return IpvsDump(services, conns), gaps
