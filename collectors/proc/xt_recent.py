"""xt_recent lists of the node's root netns: who kube-proxy's ClientIP affinity pinned where.

kube-proxy's iptables mode implements ClientIP session affinity with `-m recent`: the
endpoint's KUBE-SEP chain records the client (`--set --name KUBE-SEP-X`) and the Service
chain sends a client seen within the timeout back there (`--rcheck --seconds T --reap`).
The kernel shows each list as /proc/net/xt_recent/NAME, one line per source:
`src=10.244.0.5 ttl: 64 last_seen: 4295572820 oldest_pkt: 2 4295572820, ...`
(net/netfilter/xt_recent.c, recent_seq_show). `last_seen` is in jiffies; the age of
an entry needs the current jiffies (/proc/timer_list) and HZ, which the kernel does not
print: it follows from the boot value of jiffies, 2^32 - 300*HZ (INITIAL_JIFFIES), and
the uptime.
"""

from __future__ import annotations

import os
import re
import threading

from podpath.collectors.hostroot import (
    CollectorError,
    HostRoot,
    PermissionDenied,
    Vanished,
    translate,
)
from podpath.snapshot.model import Gap, RecentEntry, RecentList

_LINE = re.compile(r"^src=(?P<src>\S+) ttl: \d+ last_seen: (?P<seen>\d+) oldest_pkt:")
# The first `jiffies:` line follows CPU 0's list of active hrtimers, which grows with the
# node's sleeping processes: 92 KB into the file on a loaded 2-core lab machine.
TIMER_LIST_LIMIT = 16 * 2**20
_JIFFIES = re.compile(rb"^jiffies: (\d+)\n", re.M)
_TIMER_LIST_CHUNK = 64 * 1024
# CONFIG_HZ values the kernel offers.
_HZ_CHOICES = (100, 250, 300, 1000)
_BOOT_JIFFIES_BASE = 1 << 32
MAX_LISTS = 20_000  # one per endpoint of every ClientIP Service


def parse_list(name: str, text: str, now: int | None, hz: int | None) -> RecentList:
    """One /proc/net/xt_recent/NAME file as a RecentList (ages when the clock is known)."""
    entries = []
    for line in text.splitlines():
        found = _LINE.match(line)
        if found is None:
            continue
        seen = int(found["seen"])
        age = (now - seen) / hz if now is not None and hz else None
        entries.append(RecentEntry(found["src"], seen, age))
    return RecentList(name, tuple(entries))


def clock(timer_list: bytes, uptime: str) -> tuple[int | None, int | None]:
    """(jiffies now, HZ) from /proc/timer_list and /proc/uptime; None for what is unknown."""
    found = _JIFFIES.search(timer_list)
    if found is None:
        return None, None
    now = int(found.group(1))
    try:
        seconds = float(uptime.split()[0])
    except (IndexError, ValueError):
        return now, None
    # jiffies = 2^32 - 300*HZ + uptime*HZ: the HZ that explains the clock best.
    hz = min(_HZ_CHOICES, key=lambda h: abs(_BOOT_JIFFIES_BASE + (seconds - 300) * h - now))
    if abs(_BOOT_JIFFIES_BASE + (seconds - 300) * hz - now) > hz * 5:
        return now, None  # no candidate fits: a kernel that counts differently
    return now, hz


def collect_xt_recent(
    host: HostRoot, cancel: threading.Event
) -> tuple[tuple[RecentList, ...] | None, list[Gap]]:
    """Every xt_recent list of the node's root netns (PID 1's), with entry ages.

    None (with a gap) when the lists could not be read: "no pin" would then be a guess.
    The kernel's clock is read only when some list has an entry (an empty list has no
    age to tell), and only as far as it must be.
    """
    gaps: list[Gap] = []
    try:
        names = sorted(host.listdir("/proc/1/net/xt_recent"))[:MAX_LISTS]
    except Vanished:
        return (), []  # no list exists: no -m recent rule was ever loaded in this netns
    except CollectorError as err:
        return None, [err.to_gap()]
    texts: list[tuple[str, str]] = []
    for name in names:
        if cancel.is_set():
            break
        try:
            text = host.proc_read(f"1/net/xt_recent/{name}").decode(errors="surrogateescape")
        except CollectorError as err:
            gaps.append(err.to_gap())
            continue
        texts.append((name, text))
    lists = [parse_list(name, text, None, None) for name, text in texts]
    if any(found.entries for found in lists):
        # Read after the lists: no entry is then newer than the clock.
        now, hz = _kernel_clock(host, gaps)
        lists = [parse_list(name, text, now, hz) for name, text in texts]
    return tuple(lists), gaps


def _kernel_clock(host: HostRoot, gaps: list[Gap]) -> tuple[int | None, int | None]:
    """(jiffies now, HZ), with a gap for what could not be told."""
    now: int | None = None
    hz: int | None = None
    try:
        now, hz = clock(_timer_list_head(host), host.proc_read("uptime").decode())
    except CollectorError as err:
        # timer_list is mode 0400 root: reading it takes a file capability, not ptrace.
        needs = "CAP_DAC_READ_SEARCH" if isinstance(err, PermissionDenied) else err.capability
        reason = f"the kernel clock is unreadable: {err}"
        gaps.append(Gap("xt_recent ages", reason, err.kind, needs))
    if hz is None:
        gaps.append(Gap("xt_recent ages", "jiffies or HZ unknown: pins shown without their age"))
    return now, hz


def _timer_list_head(host: HostRoot) -> bytes:
    """/proc/timer_list up to its first `jiffies:` line (the whole file if it has none).

    The kernel writes the file one CPU at a time, each with every active hrtimer and
    the symbol of its function: 400 KB and ~0.23 s of kernel time on a 2-core lab
    machine with ~3k sleeping processes, more with each CPU. The first `jiffies:` line
    ends CPU 0's part; what follows is never needed.
    """
    fd = host.proc_open("timer_list")
    try:
        head = bytearray()
        while len(head) < TIMER_LIST_LIMIT:
            chunk = os.read(fd, min(_TIMER_LIST_CHUNK, TIMER_LIST_LIMIT - len(head)))
            if not chunk:
                break
            # The line may have begun in the previous chunk: search from its last line.
            start = head.rfind(b"\n") + 1
            head += chunk
            if _JIFFIES.search(head, start):
                break
        return bytes(head)
    except OSError as err:
        raise translate(err, "/proc/timer_list") from err
    finally:
        os.close(fd)
