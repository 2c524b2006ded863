"""Take a snapshot of a node: every collector, in the order their inputs need.

The slow part of a snapshot is waiting for external tools (`iptables-save` above
all, see docs/performance.md), so netfilter and conntrack are started first on their
own threads and overlap the /proc and netlink scans, which are CPU work in this
process. Before the tools' threads start, a forked child begins parsing containerd's
bundles, the pods step's longest part where Services are many; the pods step parses
them from the other end (collectors/runtime/bundles_ahead.py). On refresh, the previous
snapshot lets the netfilter collector reuse its dumps while the nf_tables generation id
is unchanged, and the pods step the bundles it parsed.
"""

from __future__ import annotations

import ipaddress
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from podpath import progress as progress_types
from podpath.by_identity import ByIdentity
from podpath.collectors.hostroot import CollectorError, HostRoot
from podpath.collectors.proc.namespaces import net_namespace_targets, scan_namespaces
from podpath.collectors.proc.node_facts import collect_node
from podpath.collectors.proc.processes import scan_processes_and_fds, self_namespaces
from podpath.snapshot.model import (
    SCHEMA_VERSION,
    CniState,
    Gap,
    IpsetDump,
    IpvsDump,
    NetNamespace,
    Pod,
    RecentList,
    ServiceLinkEnv,
    Snapshot,
)

if TYPE_CHECKING:
    from concurrent.futures import Future, ThreadPoolExecutor

    from podpath.collectors.conntrack import ConntrackResult
    from podpath.collectors.netfilter import NetfilterResult
    from podpath.collectors.netlink.sock_diag import DiagSocket
    from podpath.collectors.proc.net_sockets import ProcNetFiles
    from podpath.collectors.runtime.bundles_ahead import BundlesAhead
    from podpath.collectors.runtime.cri_state import CriListing
    from podpath.collectors.runtime.environments import Environments
    from podpath.collectors.runtime.pods import BundleMemo

# The collectors of the optional parts, and the thread pool that runs them, are imported
# where they are used: `podpath ls namespaces` must start faster than lsns, and these
# imports are a third of its time.

# Told each step as it starts: (what is being read, steps done, steps in all), and
# again with how many of its items are read where their number is known
# (podpath.progress). A plain callable, like the cancel Event: the CLI prints it, the
# TUI shows it; collectors know neither.
Progress = progress_types.Progress

# The parts a snapshot is made of; `podpath ls KIND` collects only what KIND needs.
# "sockets" needs "netns": they are read by the same namespace scan.
ALL_PARTS = frozenset({"processes", "netns", "sockets", "pods", "cni", "netfilter", "conntrack"})


def take_snapshot(
    host_root: str = "/",
    cancel: threading.Event | None = None,
    previous: Snapshot | None = None,
    *,
    redact_env: bool = True,
    parts: frozenset[str] = ALL_PARTS,
    while_tools_run: Callable[[Snapshot], object] | None = None,
    progress: Progress | None = None,
) -> Snapshot:
    """Collect everything podpath knows about the node under `host_root`.

    Namespaces and node facts are always read; `parts` limits the rest (a partial
    snapshot records which parts were skipped as gaps of kind "skipped").
    `while_tools_run` is given what this process collected while the external tools
    (iptables-save, nft, conntrack) may still run: work on it overlaps their wait. The
    result is made from it by `dataclasses.replace`, so its other fields are the same
    objects. `progress` is told each step as it starts.
    """
    started = time.monotonic()
    taken_at = time.time()
    cancel = cancel or threading.Event()
    steps = _Steps(progress, parts)
    try:
        host = HostRoot(host_root)
    except OSError as exc:
        raise CollectorError(host_root, f"cannot open host root: {exc.strerror}") from None
    same_node = previous is not None and previous.node.host_root == host.path
    memos = _Memos(None)
    kept = _KEPT.get(previous) if same_node and previous is not None else None
    if kept is not None:
        bundles, listings = kept
        # The kept listings' env is shown as that snapshot showed it (redacted or not,
        # as the bundles' memo records).
        memos = _Memos(bundles, listings_before=listings if bundles.redact == redact_env else ())
    with host:
        try:
            snapshot = _collect(
                host, cancel, previous, taken_at, redact_env, parts, steps, memos, while_tools_run
            )
        finally:
            if memos.ahead is not None:
                memos.ahead.stop()
    skipped = tuple(
        Gap(part, "not collected for this command", "skipped") for part in sorted(ALL_PARTS - parts)
    )
    # "needs CAP_X" only where CAP_X is missing; otherwise the reason it was refused.
    from podpath.collectors.proc.denials import checked_gaps, own_facts

    gaps = checked_gaps(snapshot.gaps, snapshot.node.capabilities, *own_facts())
    snapshot = replace(snapshot, duration=time.monotonic() - started, gaps=gaps + skipped)
    if memos.current is not None and not cancel.is_set():
        _KEPT.put(snapshot, (memos.current, memos.listings))
    return snapshot


def _collect(
    host: HostRoot,
    cancel: threading.Event,
    previous: Snapshot | None,
    taken_at: float,
    redact_env: bool,
    parts: frozenset[str],
    steps: _Steps,
    memos: _Memos,
    while_tools_run: Callable[[Snapshot], object] | None,
) -> Snapshot:
    """The snapshot's parts: the tools on their threads, the rest read here meanwhile."""
    if "pods" in parts and memos.previous is None:
        # Forked while this process has one thread: before the tools' threads start.
        from podpath.collectors.runtime.bundles_ahead import BundlesAhead

        memos.ahead = BundlesAhead.start(host, redact_env)
    if not parts & {"netfilter", "conntrack"}:
        return _collect_local(host, cancel, taken_at, redact_env, parts, steps, memos)
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="podpath-tools") as pool:
        netfilter, conntrack = _start_tools(pool, host, previous, cancel, parts)
        snapshot = _collect_local(host, cancel, taken_at, redact_env, parts, steps, memos)
        if while_tools_run is not None:
            while_tools_run(snapshot)
        steps.start(TOOLS_STEP)
        return _with_tools(snapshot, netfilter, conntrack)


# What a snapshot's collection parsed that a refresh may reuse (`previous`): its
# containerd bundles' memo, and the CRI listings its pods were made of (a refresh asks
# the runtime the status of what changed only: cri_state.read_listings). Held only as
# long as the snapshot itself (the TUI's `r` passes the one it shows). Not part of the
# snapshot's data: a snapshot loaded from a file has none, and is collected anew. By
# identity: snapshots compare by value, and two equal ones may come from two nodes.
_KEPT: ByIdentity[Snapshot, tuple[BundleMemo, tuple[CriListing, ...]]] = ByIdentity()


@dataclass
class _Memos:
    """The previous snapshot's memo of containerd bundles and CRI listings, and this
    one's (pods only)."""

    previous: BundleMemo | None
    current: BundleMemo | None = None
    listings_before: tuple[CriListing, ...] = ()
    listings: tuple[CriListing, ...] = ()
    # Without a previous memo, a child parsing the bundles beside the rest.
    ahead: BundlesAhead | None = None

    def reusable(self, envs: Environments) -> BundleMemo | None:
        """The previous snapshot's memo, else the bundles parsed ahead (on both cores)."""
        if self.previous is None and self.ahead is not None:
            self.previous = self.ahead.memo(envs)
        return self.previous


TOOLS_STEP = "netfilter rules and conntrack (iptables-save, nft, conntrack)"


class _Steps:
    """Tells `progress` each step as it starts, numbered out of the steps `parts` needs."""

    def __init__(self, progress: Progress | None, parts: frozenset[str]) -> None:
        self.progress = progress
        self.done = 0
        self.last = ""
        wanted = {
            "node facts": True,
            "processes": True,
            "namespaces": True,
            "network namespaces": "netns" in parts,
            "CNI configs": bool(parts & {"cni", "pods"}),
            "pods": "pods" in parts,
            "IPVS, ipsets, xt_recent": "netfilter" in parts,
            TOOLS_STEP: bool(parts & {"netfilter", "conntrack"}),
        }
        self.total = sum(wanted.values())

    def start(self, what: str) -> None:
        """`what` starts now."""
        if self.progress is not None:
            self.progress(what, self.done, self.total)
        self.last = what
        self.done += 1

    def items(self, size: int) -> progress_types.Items:
        """Counts the items of the step started last (told at most every 0.1 s)."""
        return progress_types.Items(self.progress, self.last, self.done - 1, self.total, size)


def _start_tools(
    pool: ThreadPoolExecutor,
    host: HostRoot,
    previous: Snapshot | None,
    cancel: threading.Event,
    parts: frozenset[str],
) -> tuple[Future[NetfilterResult] | None, Future[ConntrackResult] | None]:
    """Start the external-tool collectors (netfilter, conntrack) on the pool's threads."""
    from pathlib import Path

    from podpath.collectors.commands import CommandRunner
    from podpath.collectors.conntrack import collect_conntrack
    from podpath.collectors.netfilter import collect_netfilter

    runner = CommandRunner(host_root=Path(host.path))
    reusable = previous if previous and previous.node.host_root == host.path else None
    netfilter = (
        pool.submit(collect_netfilter, runner, reusable, cancel) if "netfilter" in parts else None
    )
    conntrack = pool.submit(collect_conntrack, runner, cancel) if "conntrack" in parts else None
    return netfilter, conntrack


def _collect_local(
    host: HostRoot,
    cancel: threading.Event,
    taken_at: float,
    redact_env: bool,
    parts: frozenset[str],
    steps: _Steps,
    memos: _Memos,
) -> Snapshot:
    """Everything read from /proc, runtime state and netlink in this process."""
    gaps: list[Gap] = []
    cri = _start_cri_listing(host, memos.listings_before) if "pods" in parts else None
    steps.start("node facts")
    # Each interface's rp_filter matters to the network parts only.
    node, node_gaps = collect_node(host, cancel, interfaces="netns" in parts)
    gaps += node_gaps
    # Listing namespaces alone needs only each namespace's lowest PID's command line.
    full = bool(parts & {"processes", "pods"})
    # The fd tables (namespaces held by an fd, and who holds each socket) are read in
    # the same pass.
    sockets = "sockets" in parts and "netns" in parts
    steps.start("processes")
    processes, proc_gaps, fd_holders = scan_processes_and_fds(
        host, cancel, full=full, sockets=sockets
    )
    gaps += proc_gaps
    steps.start("namespaces")
    scan = scan_namespaces(host, processes, cancel, fd_holders=fd_holders)
    gaps += scan.gaps
    root_netns = scan.root_netns or 0
    if not root_netns and host.is_slash:
        # PID 1's namespaces can be hidden (a sandbox, a restricted debug pod): our own
        # netns is then the best stand-in for the node's, and the gap says so.
        root_netns = self_namespaces(host).get("net", 0)
        gaps.append(
            Gap(
                "net namespace of PID 1",
                "unreadable; using podpath's own network namespace as the node's root",
                "permission",
                "CAP_SYS_PTRACE",
            )
        )
    elif not root_netns:
        gaps.append(
            Gap(
                "net namespace of PID 1",
                "unreadable: the node's root netns is unknown",
                "permission",
                "CAP_SYS_PTRACE",
            )
        )
    netns: tuple[NetNamespace, ...] = ()
    if "netns" in parts:
        from podpath.collectors.kernel_modules import present
        from podpath.collectors.netlink.netns_netfilter import NEEDED
        from podpath.collectors.netlink.netns_scan import scan_network_namespaces

        steps.start("network namespaces")
        targets = net_namespace_targets(host, scan)
        reader = _socket_reader(host, node.kernel) if sockets else None
        read = steps.items(len(targets)).reached
        # Each pod's own netfilter tables, where reading them loads no module.
        own_rules = present(host, node.kernel, NEEDED)
        netns, netns_gaps = scan_network_namespaces(
            targets, root_netns, cancel, reader, read, own_rules
        )
        gaps += netns_gaps
        from podpath.collectors.netlink.neighbour_tables import read_neighbour_tables

        tables, table_gaps = read_neighbour_tables()
        node = replace(node, neighbour_tables=tables)
        gaps += table_gaps
        from podpath.collectors.bpf_info import name_programs

        netns, bpf_gaps = name_programs(netns)
        gaps += bpf_gaps
        if sockets:
            from podpath.collectors.proc.net_sockets import with_owners

            netns = with_owners(netns, fd_holders.sockets, processes)
    cni = CniState()
    if "cni" in parts or "pods" in parts:
        from podpath.collectors.cni import collect_cni

        steps.start("CNI configs")
        cni, cni_gaps = collect_cni(host, cancel)
        gaps += cni_gaps
    pods: tuple[Pod, ...] = ()
    service_links: tuple[ServiceLinkEnv, ...] | None = None
    if "pods" in parts:
        from podpath.collectors.cni import mark_stale
        from podpath.collectors.runtime.environments import Environments
        from podpath.collectors.runtime.pods import BundleMemo, collect_pods

        steps.start("pods")
        listings, cri_gaps = cri.result() if cri is not None else ((), ())
        gaps += cri_gaps
        envs = Environments(redact=redact_env)
        memos.current = BundleMemo(redact_env)
        pods, pod_gaps = collect_pods(
            host,
            processes,
            root_netns or None,
            cancel,
            namespaces=scan.namespaces,
            allocations=cni.allocations,
            cri=listings,
            envs=envs,
            previous=memos.reusable(envs),
            memo=memos.current,
        )
        gaps += pod_gaps
        from podpath.collectors.runtime.cri_state import kept_for_refresh

        memos.listings = kept_for_refresh(listings, envs.of)
        pods = _with_interface_ips(pods, netns)
        from podpath.collectors.proc.service_links import (
            collect_service_links,
            without_service_link_env,
        )

        service_links, link_gaps = collect_service_links(
            host, pods, processes, cancel, envs.service_links
        )
        pods = without_service_link_env(pods, service_links)
        gaps += link_gaps
        from podpath.collectors.heap import release_freed_heap

        # The untrimmed envs just freed (52 MB at 10k Services) would otherwise stay in
        # this process's RSS under everything collected after them.
        release_freed_heap()
        cni = replace(cni, allocations=mark_stale(cni.allocations, {p.sandbox_id for p in pods}))
    recent: tuple[RecentList, ...] | None = None
    ipvs: IpvsDump | None = None
    ipsets: IpsetDump | None = None
    if "netfilter" in parts:
        steps.start("IPVS, ipsets, xt_recent")
        recent, ipvs, ipsets, state_gaps = _kernel_state(host, cancel)
        gaps += state_gaps
    if cancel.is_set():
        gaps.append(Gap("snapshot", "cancelled before it was complete", "inconsistent"))
    return Snapshot(
        schema_version=SCHEMA_VERSION,
        taken_at=taken_at,
        node=node,
        root_netns=root_netns,
        namespaces=scan.namespaces,
        processes=processes if "processes" in parts else (),
        pods=pods,
        netns=netns,
        cni=cni,
        gaps=tuple(gaps),
        xt_recent=recent,
        ipvs=ipvs,
        ipsets=ipsets,
        service_links=service_links,
    )


def _socket_reader(host: HostRoot, release: str) -> type[DiagSocket] | type[ProcNetFiles]:
    """sock_diag when asking it loads no module, else /proc/net/{tcp,udp}{,6}.

    PODPATH_SOCKETS_READER=procfs reads procfs everywhere (as PODPATH_NFT_READER=nft
    makes nft list every table); nothing forces sock_diag, which could load a module.
    """
    from podpath.collectors.netlink.sock_diag import DiagSocket, handlers_present
    from podpath.collectors.proc.net_sockets import ProcNetFiles

    if os.environ.get("PODPATH_SOCKETS_READER") == "procfs":
        return ProcNetFiles
    return DiagSocket if handlers_present(host, release) else ProcNetFiles


def _kernel_state(
    host: HostRoot, cancel: threading.Event
) -> tuple[tuple[RecentList, ...] | None, IpvsDump | None, IpsetDump | None, list[Gap]]:
    """What some rules consult besides the rules: xt_recent lists, IPVS, ipsets."""
    from pathlib import Path

    from podpath.collectors.commands import CommandRunner
    from podpath.collectors.ipset import collect_ipsets
    from podpath.collectors.proc.ipvs import collect_ipvs
    from podpath.collectors.proc.xt_recent import collect_xt_recent

    recent, recent_gaps = collect_xt_recent(host, cancel)
    ipvs, ipvs_gaps = collect_ipvs(host)
    ipsets, ipset_gaps = collect_ipsets(host, CommandRunner(host_root=Path(host.path)), cancel)
    return recent, ipvs, ipsets, [*recent_gaps, *ipvs_gaps, *ipset_gaps]


def _start_cri_listing(
    host: HostRoot, previous: tuple[CriListing, ...]
) -> Future[tuple[tuple[CriListing, ...], tuple[Gap, ...]]]:
    """Ask the runtime's CRI socket for its pods while /proc is scanned (a child process);
    what `previous` (a refresh's listings) holds unchanged is not asked again."""
    from concurrent.futures import Future
    from pathlib import Path

    from podpath.collectors.commands import CommandRunner
    from podpath.collectors.runtime.cri_state import read_listings
    from podpath.collectors.runtime.pods import containerd_bundles

    fut: Future[tuple[tuple[CriListing, ...], tuple[Gap, ...]]] = Future()
    runner = CommandRunner(host_root=Path(host.path))

    def work() -> None:
        fut.set_running_or_notify_cancel()
        try:
            # Containers whose spec the runtime's files give are asked the plain status.
            fut.set_result(read_listings(host, runner, containerd_bundles(host), previous))
        except BaseException as exc:  # noqa: BLE001 - handed to the waiter, not swallowed
            fut.set_exception(exc)

    threading.Thread(target=work, name="podpath-cri", daemon=True).start()
    return fut


def _with_tools(
    snapshot: Snapshot,
    netfilter: Future[NetfilterResult] | None,
    conntrack: Future[ConntrackResult] | None,
) -> Snapshot:
    """Add the netfilter and conntrack results once their tools have finished."""
    if netfilter is not None:
        nf = netfilter.result()
        snapshot = replace(snapshot, iptables=nf.iptables, nft=nf.nft, gaps=snapshot.gaps + nf.gaps)
    if conntrack is not None:
        ct = conntrack.result()
        snapshot = replace(snapshot, conntrack=ct.dump, gaps=snapshot.gaps + ct.gaps)
    return snapshot


def _link_local(address: str) -> bool:
    """169.254.0.0/16 or fe80::/10."""
    try:
        return ipaddress.ip_address(address).is_link_local
    except ValueError:
        return False


def _with_interface_ips(pods: tuple[Pod, ...], netns: tuple[NetNamespace, ...]) -> tuple[Pod, ...]:
    """Fill each pod's IPs from the global addresses of its netns (the kernel is the truth).

    Not link-local ones, whatever scope the kernel gives them: Kubernetes never takes an
    address of 169.254.0.0/16 or fe80::/10 as a pod's IP (an Endpoints address may not be
    one). The AWS VPC CNI's IPv6 pods hold one on v4if0 (egress-cni's 169.254.172.0/22,
    "scope global"): the same addresses on every node, for SNATed IPv4 egress only.
    """
    by_inode = {ns.inode: ns for ns in netns}
    out = []
    for pod in pods:
        ns = by_inode.get(pod.netns_inode) if pod.netns_inode is not None else None
        if ns is None or pod.host_network:
            out.append(pod)
            continue
        ips = [
            a.address
            for link in ns.links
            if link.name != "lo"
            for a in link.addresses
            if a.scope == "global" and not _link_local(a.address)
        ]
        merged = tuple(dict.fromkeys([*ips, *pod.ips]))
        out.append(replace(pod, ips=merged))
    return tuple(out)
