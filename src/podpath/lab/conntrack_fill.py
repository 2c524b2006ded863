"""Fill a lab node's conntrack table with real UDP flows from one of its pods.

How the doctor's conntrack-full fault is built without writing any sysctl: the kernel
counts entries per network namespace but compares that count with the one global
nf_conntrack_max (net/netfilter/nf_conntrack_core.c, __nf_conntrack_alloc:
`ct_count = atomic_inc_return(&cnet->count); if (nf_conntrack_max && unlikely(ct_count
> nf_conntrack_max))`), so a node's namespace reaches the machine's maximum on its own
while the machine's namespace keeps its count. Each sendto with a new 5-tuple that the
node routes to itself makes one unreplied UDP entry there, which lives
nf_conntrack_udp_timeout (30 s) unless flushed first.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from podpath.lab.records import LabError

if TYPE_CHECKING:
    from podpath.lab.lab import Lab

COUNT = "/proc/sys/net/netfilter/nf_conntrack_count"
MAX = "/proc/sys/net/netfilter/nf_conntrack_max"
# More than this and a fill stops being a matter of seconds: callers skip instead.
MOST_ENTRIES = 300_000
# Rounds of sending before giving up (entries may be dropped at the veth's backlog).
ROUNDS = 4

# One unconnected socket per source port, one empty datagram per destination port:
# every sendto is a new 5-tuple. Ports wrap onto a new socket after 65535.
_SENDER = r"""
import socket, sys
dst, first, total = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
sent = 0
while sent < total:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("0.0.0.0", 0))
    port = 1 + (first + sent) % 65535
    while sent < total and port <= 65535:
        s.sendto(b"", (dst, port))
        sent += 1
        port += 1
    s.close()
sys.stdout.write(str(sent))
"""


@dataclass(frozen=True)
class Fill:
    """How full a node's conntrack table was made: its own count and the global maximum."""

    node: str
    count: int
    limit: int


def conntrack_max() -> int:
    """The machine's nf_conntrack_max (what every namespace's count is compared with)."""
    try:
        return int(Path(MAX).read_text())
    except (OSError, ValueError) as exc:
        raise LabError(f"cannot read {MAX} (is nf_conntrack loaded?): {exc}") from exc


def entries_for(fraction: float, limit: int) -> int:
    """How many entries put a table of `limit` at `fraction` full."""
    return math.ceil(fraction * limit)


def node_count(lab: Lab, node: str) -> int:
    """nf_conntrack_count as a node's own network namespace sees it."""
    return int(lab.exec(node, ["cat", COUNT]).stdout)


def fill(lab: Lab, pod_ref: str, fraction: float) -> Fill:
    """Send UDP from a pod to its node until the node's table is `fraction` full."""
    pod = lab.pod(pod_ref)
    node = lab.node(pod.node)
    limit = conntrack_max()
    want = entries_for(fraction, limit)
    if want > MOST_ENTRIES:
        raise LabError(
            f"nf_conntrack_max is {limit}: {want} entries would be needed, more than "
            f"{MOST_ENTRIES} (the lab never lowers the machine's maximum)"
        )
    sent = 0
    for _ in range(ROUNDS):
        count = node_count(lab, node.name)
        if count >= want:
            return Fill(node.name, count, limit)
        # A margin for what the veth backlog drops or expires meanwhile.
        missing = want - count + 1000
        argv = ["nsenter", f"--net={pod.netns_path}", "--", sys.executable, "-c", _SENDER]
        done = lab.exec(node.name, [*argv, node.address, str(sent), str(missing)], timeout=120)
        sent += int(done.stdout)
    count = node_count(lab, node.name)
    if count < want:
        raise LabError(f"node {node.name}'s conntrack table reached {count} of {want} entries")
    return Fill(node.name, count, limit)


def flush(lab: Lab, pod_ref: str) -> None:
    """Empty the conntrack tables of a pod's node and of the pod (their namespaces only)."""
    pod = lab.pod(pod_ref)
    lab.exec(pod.node, ["conntrack", "-F"], check=False)
    lab.exec(pod.node, ["nsenter", f"--net={pod.netns_path}", "--", "conntrack", "-F"], check=False)
