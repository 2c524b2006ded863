"""Facts about the node as a whole: names, kernel, forwarding and filtering sysctls, the
conntrack table's fill, our privileges.

Sysctls are read from <root>/proc/sys, i.e. for the network namespace of whoever
mounted that procfs (the host's, in a hostNetwork debug pod). bridge-nf-call-iptables
only exists while br_netfilter is loaded: absent is "not loaded", not an error.
"""

from __future__ import annotations

import os
import threading

from podpath.collectors.hostroot import CollectorError, HostRoot, Vanished
from podpath.snapshot.model import Gap, NodeFacts

# Bit numbers from include/uapi/linux/capability.h.
CAPABILITY_NAMES: tuple[str, ...] = (
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
)


def decode_capabilities(hex_mask: str) -> tuple[str, ...]:
    """A CapEff hex mask -> capability names (unknown bits as CAP_<n>)."""
    mask = int(hex_mask, 16)
    names = []
    bit = 0
    while mask >> bit:
        if mask >> bit & 1:
            names.append(CAPABILITY_NAMES[bit] if bit < len(CAPABILITY_NAMES) else f"CAP_{bit}")
        bit += 1
    return tuple(names)


def own_capabilities(host: HostRoot) -> tuple[str, ...]:
    """Effective capabilities of the collecting process (CapEff of /proc/self/status)."""
    try:
        text = host.proc_read("self/status").decode("ascii", "replace")
    except CollectorError:
        text = ""
    for line in text.splitlines():
        if line.startswith("CapEff:"):
            return decode_capabilities(line.split()[1])
    return ()


def _first_line(host: HostRoot, path: str, gaps: list[Gap], optional: bool = False) -> str | None:
    try:
        return host.read_text(path, limit=4096).strip() or None
    except Vanished:
        if not optional:
            gaps.append(Gap(path, "not present", "unavailable"))
        return None
    except CollectorError as err:
        gaps.append(err.to_gap())
        return None


def _int(value: str | None) -> int | None:
    return int(value) if value is not None and value.lstrip("-").isdigit() else None


def read_rp_filter(host: HostRoot, gaps: list[Gap], interfaces: bool = True) -> dict[str, int]:
    """rp_filter for all, default and (with `interfaces`) every interface of the netns
    procfs reflects: one read each, 11 ms of `podpath ls namespaces` at 250 pods."""
    base = "/proc/sys/net/ipv4/conf"
    out: dict[str, int] = {}
    try:
        names = host.listdir(base) if interfaces else ["all", "default"]
    except CollectorError as err:
        gaps.append(err.to_gap())
        return out
    for name in sorted(names):
        value = _int(_first_line(host, f"{base}/{name}/rp_filter", gaps, optional=True))
        if value is not None:
            out[name] = value
    return out


def collect_node(
    host: HostRoot, cancel: threading.Event | None = None, *, interfaces: bool = True
) -> tuple[NodeFacts, tuple[Gap, ...]]:
    """NodeFacts of the node under `host`, with gaps for what could not be read;
    without `interfaces`, rp_filter holds only "all" and "default"."""
    gaps: list[Gap] = []
    hostname = (
        _first_line(host, "/proc/sys/kernel/hostname", gaps)
        or _first_line(host, "/etc/hostname", gaps)
        or ""
    )
    kernel = _first_line(host, "/proc/sys/kernel/osrelease", gaps) or ""
    facts = NodeFacts(
        hostname=hostname,
        kernel=kernel,
        host_root=host.path,
        boot_id=_first_line(host, "/proc/sys/kernel/random/boot_id", gaps),
        ip_forward=_int(_first_line(host, "/proc/sys/net/ipv4/ip_forward", gaps)),
        bridge_nf_call_iptables=_int(
            _first_line(host, "/proc/sys/net/bridge/bridge-nf-call-iptables", [], optional=True)
        ),
        bridge_nf_call_ip6tables=_int(
            _first_line(host, "/proc/sys/net/bridge/bridge-nf-call-ip6tables", [], optional=True)
        ),
        rp_filter=read_rp_filter(host, gaps, interfaces),
        capabilities=own_capabilities(host),
        euid=os.geteuid(),
        # Both files exist only while nf_conntrack is loaded: absent is not an error.
        # The count is the reader's namespace's; the maximum is the whole kernel's.
        conntrack_count=_int(
            _first_line(host, "/proc/sys/net/netfilter/nf_conntrack_count", gaps, optional=True)
        ),
        conntrack_max=_int(
            _first_line(host, "/proc/sys/net/netfilter/nf_conntrack_max", gaps, optional=True)
        ),
    )
    return facts, tuple(gaps)
