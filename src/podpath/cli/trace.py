"""`podpath trace`: follow a packet through the live node or saved snapshots, and explain it."""

from __future__ import annotations

import argparse
import gc
import json
import signal
import sys
import time
from typing import TYPE_CHECKING, Any

from podpath.analysis.index import SnapshotIndex
from podpath.cli import EXIT_OK, CliError, Terminated
from podpath.safe_text import visible
from podpath.snapshot.model import Snapshot
from podpath.snapshot.packed import CorruptCache
from podpath.trace.probe import PROTOCOLS, Probe, ProbeError

if TYPE_CHECKING:
    from podpath.conntrack import ConntrackEntry
    from podpath.trace.model import Trace


def register(sub: Any) -> None:
    """Register `podpath trace`."""
    p = sub.add_parser(
        "trace",
        help="trace a packet hop by hop: routes, bridges, VXLAN, netfilter, NAT, the way back",
        description="Trace a packet from a pod or the node to an address, pod, Service or "
        "NodePort, through the node's real routes, neighbours, bridge FDB, overlay and "
        "netfilter rules, with the probability of each branch kube-proxy's rules create.",
    )
    p.add_argument(
        "--from",
        dest="source",
        required=True,
        metavar="SRC",
        help="NAMESPACE/POD, a pod IP, 'node', a node's hostname or address, or any network "
        "namespace: netns:NAME, its path or inode, or an address only it holds",
    )
    p.add_argument(
        "--to",
        dest="destination",
        required=True,
        metavar="DST[:PORT]",
        help="an address ([V6]:PORT with a port), NAMESPACE/POD, netns:NAME, a Service "
        "NAMESPACE/NAME[:PORT], NODE-ADDRESS:NODEPORT",
    )
    p.add_argument("--proto", choices=PROTOCOLS, default="tcp", help="protocol (default tcp)")
    p.add_argument("--sport", type=int, default=None, help="source port (default: unspecified)")
    family = p.add_mutually_exclusive_group()
    family.add_argument(
        "-4", dest="family", action="store_const", const=4, help="use IPv4 addresses of names"
    )
    family.add_argument(
        "-6", dest="family", action="store_const", const=6, help="use IPv6 addresses of names"
    )
    add_sources(p, "trace")
    p.add_argument(
        "--reply", action="store_true", help="also trace the reply, with conntrack's reverse NAT"
    )
    caching = p.add_mutually_exclusive_group()
    caching.add_argument(
        "--cache",
        default=None,
        metavar="DIR",
        help="with --snapshot: keep each snapshot's parsed rules in DIR and reuse them, "
        "keyed by the file's content (default: $XDG_CACHE_HOME/podpath/trace-index, "
        "else ~/.cache/podpath/trace-index; the 8 most recently used are kept)",
    )
    caching.add_argument(
        "--no-cache",
        action="store_true",
        help="with --snapshot: parse the snapshots and keep nothing",
    )
    p.add_argument("--explain", action="store_true", help="show each route decision's binary AND")
    p.add_argument(
        "--conntrack",
        action="store_true",
        help="beside the trace, the conntrack entries of this flow: which endpoint the kernel "
        "chose, whether NAT was applied (shown in text whenever the node is live; with --snapshot, the "
        "snapshot's table)",
    )
    p.add_argument(
        "--watch",
        nargs="?",
        type=float,
        const=2.0,
        default=None,
        metavar="SECONDS",
        help="live node only: re-read conntrack and the path's rule counters every SECONDS "
        "(default 2), read-only, while you reproduce the problem; Ctrl-C ends",
    )
    p.add_argument("--json", action="store_true", help="print the trace as JSON")
    p.add_argument(
        "--svg",
        default=None,
        metavar="FILE.svg",
        help="also draw the node map with the branch's hops on it (and its reply, with --reply)",
    )
    p.add_argument(
        "--branch",
        type=int,
        default=1,
        metavar="N",
        help="the branch --svg draws (default 1, as numbered in the text form)",
    )
    p.set_defaults(handler=run)


def add_sources(p: argparse.ArgumentParser, verb: str) -> None:
    """--host-root DIR (the live node) or --snapshot FILE... (saved ones), for `verb`."""
    where = p.add_mutually_exclusive_group()
    where.add_argument(
        "--host-root",
        default=None,
        metavar="DIR",
        help="read the live node whose root filesystem is at DIR (default /)",
    )
    where.add_argument(
        "--snapshot",
        action="extend",
        nargs="+",
        default=None,
        metavar="FILE",
        help=f"{verb} saved snapshots instead, one per node (--snapshot A B, or repeated)",
    )


def load_snapshots(args: argparse.Namespace) -> list[Snapshot]:
    """The snapshots a command names with --snapshot, or the live node (--host-root)."""
    if args.snapshot:
        from podpath.snapshot.codec import SnapshotError, load_path

        try:
            return [load_path(path) for path in args.snapshot]
        except SnapshotError as exc:
            raise CliError(str(exc)) from None
    try:
        from podpath.collectors.snapshot import take_snapshot
    except ImportError as exc:
        raise CliError(f"live collection is not available ({exc}); use --snapshot FILE") from None
    from podpath.cli.progress import ProgressLine

    with ProgressLine() as progress:
        return [take_snapshot(host_root=args.host_root or "/", progress=progress)]


class Digests:
    """The SHA-256 of each snapshot file, computed on a thread while the trace engine is imported.

    A digest remembered in the cache directory for an unchanged file is used as it is
    (podpath.trace.file_digests); otherwise the file is hashed: 28-48 MB take 20-35 ms
    and release the GIL, and importing the engine takes longer and needs it, so on two
    cores the hashing costs no wall time.
    """

    def __init__(self, paths: list[str], directory: str) -> None:
        import threading

        from podpath.snapshot.codec import SnapshotError, digest_path
        from podpath.trace.file_digests import memo_of, now_ns, remembered

        self._found: dict[str, bytes | SnapshotError] = {}
        # Memo files to write (name in the directory, contents), written by `memos`'s
        # caller on the main thread: a thread cut short by the process's end must not
        # leave half of one.
        self._memos: list[tuple[str, bytes]] = []

        def work() -> None:
            for path in dict.fromkeys(paths):
                if path == "-":  # stdin is read once, in order
                    continue
                known = remembered(directory, path)
                if known is not None:
                    self._found[path] = known
                    continue
                started = now_ns()
                try:
                    digest = self._found[path] = digest_path(path)
                except SnapshotError as exc:
                    self._found[path] = exc
                    continue
                memo = memo_of(path, digest, started)
                if memo is not None:
                    self._memos.append(memo)

        self._thread = threading.Thread(target=work, name="podpath-digest", daemon=True)
        self._thread.start()

    def of(self, path: str) -> bytes:
        """The file's digest (raises what `digest_path` raised)."""
        from podpath.snapshot.codec import digest_path

        self._thread.join()
        found = self._found.get(path)
        if found is None:
            return digest_path(path)
        if isinstance(found, Exception):
            raise found
        return found

    def remember(self, memo: tuple[str, bytes] | None) -> None:
        """Remember a digest learnt after the thread's (of a file read whole on a miss)."""
        self._thread.join()
        if memo is not None:
            self._memos.append(memo)

    def memos(self) -> dict[str, bytes]:
        """The digests to remember, once every file is hashed: memo file name -> contents."""
        self._thread.join()
        return dict(self._memos)  # of one file's memos, the last learnt


def cached_indexes(
    paths: list[str],
    directory: str,
    misses: list[tuple[str, SnapshotIndex]],
    read: bool = True,
    digests: Digests | None = None,
) -> list[SnapshotIndex]:
    """Each snapshot's index from the cache in `directory`, or parsed (appended to `misses`).

    With `read` False every snapshot is parsed (a cached index was found damaged).
    """
    import hashlib

    from podpath.snapshot.codec import SnapshotError, digest_path, loads, read_path
    from podpath.trace.file_digests import memo_of, now_ns
    from podpath.trace.index_cache import (
        CacheError,
        check_directory,
        key_of,
        key_of_digest,
        lookup_key,
    )

    try:
        check_directory(directory)
    except CacheError as exc:
        raise CliError(str(exc)) from None
    out = []
    for path in paths:
        name = "stdin" if path == "-" else path
        try:
            data = read_path(path) if path == "-" else None  # stdin is read once
            if read:
                # A file is only hashed here; it is read whole (and hashed again, for
                # the key of what is parsed) on a miss.
                if data is not None:
                    key = key_of(data)
                else:
                    key = key_of_digest(digests.of(path) if digests else digest_path(path))
                index = lookup_key(directory, key).index
                if index is not None:
                    out.append(index)
                    continue
            if data is None:
                started = now_ns()
                data = read_path(path)  # its errors name the file already
                digest = hashlib.sha256(data).digest()
                if digests is not None:
                    # A remembered digest that led nowhere (podpath changed, or a memo
                    # gone wrong) is replaced by the digest of what is parsed.
                    digests.remember(memo_of(path, digest, started))
                key = key_of_digest(digest)
            else:
                key = key_of(data)
        except (SnapshotError, CacheError) as exc:
            raise CliError(str(exc)) from None
        try:
            index = SnapshotIndex(loads(data))
        except SnapshotError as exc:
            raise CliError(f"{name}: {exc}") from None
        misses.append((key, index))
        out.append(index)
    if digests is not None:
        remember_digests(directory, digests)
    return out


def remember_digests(directory: str, digests: Digests) -> None:
    """Write the memo of each snapshot file hashed, so that the next trace need not hash it."""
    memos = digests.memos()
    if not memos:
        return  # the usual hit: output_file's imports (secrets, random) were ~4 ms of it
    import os

    from podpath.output_file import OutputError, write_bytes

    for name, data in memos.items():
        try:
            write_bytes(os.path.join(directory, name), data)
        except OutputError:
            return  # a directory we cannot write: the files are hashed each time, as before


# Where a trace on saved snapshots keeps their parsed rules unless told otherwise
# (under $XDG_CACHE_HOME/podpath): the first trace of a 10k-Service snapshot parses it
# (0.6-1.3 s), every later one reads what it needs from here (0.12-0.2 s;
# docs/performance.md, "Every trace of a saved snapshot keeps its index").
DEFAULT_CACHE = "trace-index"


class CacheChoice:
    """Where this trace keeps the snapshots' indexes: a directory the user named, the
    default one, or none (a live node, `--no-cache`, or no private cache directory)."""

    def __init__(self, args: argparse.Namespace) -> None:
        if args.cache is not None and not args.snapshot:
            raise CliError("--cache DIR needs --snapshot FILE (a live node is read afresh)")
        self.named = args.cache is not None
        self.directory: str | None = args.cache
        if not self.named and args.snapshot and not args.no_cache:
            from podpath.safe_files import cache_dir

            self.directory = cache_dir(DEFAULT_CACHE)

    def store(self, misses: list[tuple[str, SnapshotIndex]]) -> None:
        """Keep what the trace parsed, for the next trace of the same files: called once
        the answer is out (pickling a 10k-Service snapshot's index takes ~0.35 s), with
        the indexes as the trace left them (`index_cache.as_traced`).

        A cache the user named that cannot be written is an error; the default one only
        earns a note on stderr: the trace itself is done and right."""
        if self.directory is None or not misses:
            return
        sys.stdout.flush()
        try:
            store_indexes(self.directory, misses)
        except CliError as exc:
            if self.named:
                raise
            print(f"podpath: note: {exc} (--no-cache: keep none)", file=sys.stderr)


def store_indexes(directory: str, misses: list[tuple[str, SnapshotIndex]]) -> None:
    """Keep what the trace parsed, for the next trace of the same files."""
    from podpath.output_file import OutputError, write_chunks
    from podpath.trace.index_cache import cache_path, encode, prune

    for key, index in misses:
        try:
            write_chunks(cache_path(directory, key), encode(key, index))
        except OutputError as exc:
            raise CliError(f"the trace is done, but its cache was not written: {exc}") from None
    if misses:
        prune(directory)


def run(args: argparse.Namespace) -> int:
    """Handle `podpath trace`."""
    cache = CacheChoice(args)
    digests = Digests(args.snapshot, cache.directory) if cache.directory is not None else None
    from podpath.trace.engine import trace
    from podpath.trace.render import render_text, trace_json

    if args.sport is not None and not 0 < args.sport < 65536:
        raise CliError(f"--sport {args.sport} is not a port number (1-65535)")
    if args.sport is not None and args.proto == "icmp":
        raise CliError(f"ICMP has no ports: leave out --sport {args.sport}")
    live = not args.snapshot
    if args.watch is not None and not live:
        raise CliError("--watch re-reads the live node; it cannot watch saved snapshots")
    if args.watch is not None and args.json:
        raise CliError("--watch prints what moved as it happens, as text; leave out --json")
    if args.watch is not None and not 0.2 <= args.watch <= 3600:
        raise CliError(f"--watch {args.watch:g}: give 0.2 to 3600 seconds between readings")
    probe = Probe(args.source, args.destination, args.proto, args.sport, args.family)
    if args.watch is None:
        # One trace, then exit: the snapshot, the rules and the trace are acyclic data
        # freed by reference counting. The cyclic GC's passes over 10^5-10^6 objects
        # were the largest cost after the parse (main() restores it).
        gc.disable()
    misses: list[tuple[str, SnapshotIndex]] = []
    if cache.directory is not None:
        indexes = cached_indexes(args.snapshot, cache.directory, misses, digests=digests)
        snapshots = [index.snapshot for index in indexes]
    else:
        snapshots = load_snapshots(args)
        indexes = [SnapshotIndex(s) for s in snapshots]
    from podpath.cli.inspect import one_per_node

    one_per_node(args.snapshot or [], snapshots)
    try:
        result = trace(indexes, probe, explain=args.explain, reply=args.reply)
    except ProbeError as exc:
        raise CliError(str(exc)) from None
    except CorruptCache:
        # A cached value that does not unpickle: answer from the snapshots, and rewrite.
        misses.clear()
        assert cache.directory is not None  # CorruptCache comes from a cached index only
        indexes = cached_indexes(args.snapshot, cache.directory, misses, read=False)
        snapshots = [index.snapshot for index in indexes]
        try:
            result = trace(indexes, probe, explain=args.explain, reply=args.reply)
        except ProbeError as exc:
            raise CliError(str(exc)) from None
    if misses:
        from podpath.trace.index_cache import as_traced

        # What the output's rendering parses on the indexes below is not kept.
        misses = [(key, as_traced(index)) for key, index in misses]
    if args.svg is not None:
        from podpath.cli.draw import trace_picture

        trace_picture(snapshots, result, args.branch, args.svg)
    # Text shows the kernel's side whenever it is live; JSON only when asked (its contract).
    show = args.conntrack or (live and not args.json)
    entries, where = _flow_entries(result, indexes, live) if show else ([], "")
    if show:
        # Not needed by a trace of a snapshot without --conntrack (it and podpath.conntrack
        # were ~2 ms of its imports).
        from podpath.trace.observed import observed_json, observed_lines
    if args.json:
        doc = trace_json(result)
        if show:
            doc["observed"] = observed_json(result, entries, where)
        print(json.dumps(doc, indent=2, ensure_ascii=True))
    else:
        print(render_text(result, explain=args.explain), end="")
        if show:
            print()
            print("\n".join(visible(x) for x in observed_lines(result, entries, where)))
    cache.store(misses)
    if args.watch is not None:
        _watch(args, probe, result, entries, args.watch)
    return EXIT_OK


def _flow_entries(
    result: Trace, indexes: list[SnapshotIndex], live: bool
) -> tuple[list[ConntrackEntry], str]:
    """The traced flow's entries in the source node's conntrack table, and where they came from."""
    from podpath.trace.observed import flow_entries

    node = str(result.probe.get("node"))
    index = next((i for i in indexes if i.snapshot.node.hostname == node), indexes[0])
    if index.snapshot.conntrack is None:
        return [], f"not read on {index.snapshot.node.hostname}"
    where = "conntrack -L, live" if live else f"the snapshot of {index.snapshot.node.hostname}"
    return flow_entries(result, index.conntrack), where


def _entry_key(e: ConntrackEntry) -> str:
    # An entry is news when new, or in a new state; its timeout ticks on.
    return f"{e.original.src}:{e.original.sport} {e.reply.src}:{e.reply.sport} {e.state}"


def _watch(
    args: argparse.Namespace,
    probe: Probe,
    first: Trace,
    shown: list[ConntrackEntry],
    every: float,
) -> None:
    """Re-read conntrack and the counters (read-only) and print what changed, until Ctrl-C."""
    from podpath.collectors.snapshot import take_snapshot
    from podpath.trace.engine import trace
    from podpath.trace.observed import entry_line, moved, predicted_endpoints

    # What the trace needs to resolve the probe again, and the counters and table; no sockets.
    parts = frozenset({"processes", "netns", "pods", "cni", "netfilter", "conntrack"})
    predicted = predicted_endpoints(first)
    seen = {_entry_key(e) for e in shown}
    new = 0
    reported: dict[str, int] = {}
    print(
        f"\nwatching every {every:g} s (conntrack -L, iptables-save -c, nft; read-only); Ctrl-C ends"
    )
    try:
        while True:
            time.sleep(every)
            fresh = SnapshotIndex(take_snapshot(host_root=args.host_root or "/", parts=parts))
            try:
                again = trace([fresh], probe, reply=args.reply)
            except ProbeError as exc:
                raise CliError(f"the watched flow cannot be traced any more: {exc}") from None
            stamp = time.strftime("%H:%M:%S")
            entries, _ = _flow_entries(again, [fresh], True)
            for e in entries:
                key = _entry_key(e)
                if key not in seen:
                    seen.add(key)
                    new += 1
                    print(visible(f"{stamp} conntrack  {entry_line(e, predicted)}"))
            for m in moved(first, again):
                rule = f"{m.node} {m.where} {m.rule}"
                if reported.get(rule) != m.packets:
                    reported[rule] = m.packets
                    print(visible(f"{stamp} counter    {m.text}"))
            sys.stdout.flush()
    except (KeyboardInterrupt, Terminated) as exc:
        if isinstance(exc, Terminated) and exc.signum != signal.SIGINT:
            raise  # SIGTERM or SIGHUP: stop as every command does
        print(
            f"\nwatched: {new} new conntrack entr{'y' if new == 1 else 'ies'}, "
            f"{len(reported)} rule{'s' if len(reported) != 1 else ''} counted the flow"
        )
