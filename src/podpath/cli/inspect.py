"""`podpath snapshot` and `podpath ls`: read a node (or a snapshot file) and print it."""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING, Any

from podpath.cli import EXIT_OK, CliError, raise_lost_signal

# codec, json, safe_text and the model are imported where they are used: `podpath ls
# namespaces` must start faster than lsns, and Python imports are a fifth of its time.
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence

    from podpath.cli.snapshot_file import Encoded
    from podpath.snapshot.model import Gap, Snapshot
    from podpath.table import Listing

# What each `ls` kind needs collected on a live node (namespaces are always read); a
# kind not listed (problems) needs every part.
_PARTS: dict[str, frozenset[str]] = {
    "namespaces": frozenset(),
    "pods": frozenset({"processes", "netns", "pods", "cni"}),
    "links": frozenset({"netns", "pods"}),
    "routes": frozenset({"netns", "pods"}),
    "rules": frozenset({"netns", "pods"}),
    "neigh": frozenset({"netns", "pods"}),
    "fdb": frozenset({"netns", "pods"}),
    "netconf": frozenset({"netns", "pods"}),
    "tc": frozenset({"netns", "pods"}),
    "iptables": frozenset({"netfilter"}),
    "nft": frozenset({"netfilter"}),
    # pods: in IPVS mode their Service-link variables are the only names (kubelet_env).
    "services": frozenset({"netfilter", "pods"}),
    "sockets": frozenset({"processes", "netns", "sockets", "pods"}),
    "conntrack": frozenset({"conntrack"}),
    "cni": frozenset({"pods", "cni"}),
}


def register(sub: Any) -> None:
    """Register `snapshot` and `ls`."""
    from podpath.table import LISTING_KINDS

    snap = sub.add_parser("snapshot", help="write the node's snapshot as versioned JSON")
    snap.add_argument(
        "--host-root",
        default="/",
        metavar="DIR",
        help="read the node under DIR (e.g. /host in a debug pod)",
    )
    snap.add_argument(
        "-o",
        "--output",
        default="-",
        metavar="FILE",
        help="where to write the snapshot (- for stdout, the default)",
    )
    snap.add_argument(
        "--show-env",
        action="store_true",
        help="keep containers' environment values (redacted by default)",
    )
    snap.add_argument("--indent", type=int, default=None, help="pretty-print with this indent")
    snap.set_defaults(handler=_snapshot)

    ls = sub.add_parser("ls", help="list one kind of object, like lsns/ip do")
    ls.add_argument(
        "kind", choices=LISTING_KINDS, metavar="KIND", help="one of: " + ", ".join(LISTING_KINDS)
    )
    source = ls.add_mutually_exclusive_group()
    source.add_argument("--host-root", default="/", metavar="DIR", help="read the node under DIR")
    source.add_argument(
        "--snapshot",
        action="extend",
        nargs="+",
        default=None,
        metavar="FILE",
        help="read snapshot files instead of the node; with several (--snapshot A B, or "
        "repeated), every node's rows are listed, with a NODE column",
    )
    ls.add_argument("--json", action="store_true", help="print JSON (like lsns -J / ip -j)")
    ls.add_argument(
        "-l",
        "--listening",
        action="store_true",
        help="with `ls sockets`: only listening sockets (TCP LISTEN, unconnected UDP), like ss -l",
    )
    ls.add_argument(
        "-s",
        "--stats",
        action="store_true",
        help="with `ls links`: RX/TX bytes, packets, errors and drops, like ip -s link",
    )
    ls.set_defaults(handler=_ls)


def collect_live(
    host_root: str,
    parts: frozenset[str] | None = None,
    *,
    redact_env: bool = True,
    while_tools_run: Callable[[Snapshot], object] | None = None,
) -> Snapshot:
    """Take a snapshot of the live node, turning a bad host root into a CliError."""
    from podpath.collectors.hostroot import CollectorError
    from podpath.collectors.snapshot import ALL_PARTS, take_snapshot

    if not os.path.isdir(host_root):
        raise CliError(f"host root {host_root!r} is not a directory")
    from podpath.cli.progress import ProgressLine

    try:
        with ProgressLine() as progress:
            return take_snapshot(
                host_root,
                parts=ALL_PARTS if parts is None else parts,
                redact_env=redact_env,
                while_tools_run=while_tools_run,
                progress=progress,
            )
    except CollectorError as exc:
        raise CliError(str(exc)) from None


def load_snapshot(path: str) -> Snapshot:
    """Load a snapshot file ('-' for stdin), turning any problem into a CliError."""
    from podpath.snapshot import codec

    try:
        return codec.load_path(path)
    except codec.SnapshotError as exc:
        raise CliError(str(exc)) from None


def rule_warnings(snapshot: Snapshot) -> list[str]:
    """What the rules say is wrong (e.g. mixed iptables backends), as printable sentences."""
    from podpath.analysis.index import SnapshotIndex

    return list(SnapshotIndex(snapshot).kube_proxy_mode.warnings)


def report_warnings(
    snapshot: Snapshot, warnings: list[str] | None = None, node: str | None = None
) -> None:
    """Warn on stderr about what the rules say is wrong (computed here unless given)."""
    from podpath.safe_text import visible

    where = f"{visible(node)}: " if node else ""
    for warning in rule_warnings(snapshot) if warnings is None else warnings:
        print(f"podpath: {where}warning: {visible(warning)}", file=sys.stderr)


def report_name_notes(snapshot: Snapshot, node: str | None = None) -> None:
    """In IPVS mode, say on stderr which pods' Service-link variables are stale or conflict."""
    from podpath.analysis.index import SnapshotIndex
    from podpath.safe_text import visible

    index = SnapshotIndex(snapshot)
    if index.kube_proxy_mode.mode != "ipvs":
        return  # the rules name every Service: the variables name nothing here
    where = f"{visible(node)}: " if node else ""
    for note in index.service_names.notes():
        print(f"podpath: {where}note: {visible(note)}", file=sys.stderr)


def report_gaps(gaps: tuple[Gap, ...], node: str | None = None) -> None:
    """List what could not be read on stderr (skipped parts are not problems)."""
    real = [g for g in gaps if g.kind != "skipped"]
    if not real:
        return
    from podpath.safe_text import visible
    from podpath.wording import count

    where = f" of {visible(node)}" if node else ""
    print(f"podpath: {count(len(real), 'part')}{where} could not be read:", file=sys.stderr)
    for gap in real:
        # Collectors often name the capability in the reason already: say it once.
        needs = f"(needs {visible(gap.capability)})"
        cap = f" {needs}" if gap.capability and needs not in visible(gap.reason) else ""
        print(f"  {visible(gap.subject)}: {visible(gap.reason)} [{gap.kind}]{cap}", file=sys.stderr)


def _snapshot(args: argparse.Namespace) -> int:
    from podpath.cli.snapshot_file import Encoded
    from podpath.collectors.parallel import run_parts

    # What this process collected is encoded while iptables-save and nft still run.
    ahead: list[Encoded] = []
    snapshot = collect_live(
        args.host_root,
        redact_env=not args.show_env,
        while_tools_run=(lambda local: ahead.append(Encoded(local)))
        if args.indent is None
        else None,
    )

    def part(which: str) -> list[str] | None:
        if which == "write":
            _write_snapshot(snapshot, args.output, args.indent, ahead[0] if ahead else None)
            return None
        return rule_warnings(snapshot)

    # Encoding and writing the file, and indexing every rule for the warnings, are each
    # a few hundred ms at 10k Services: the warnings are found in a forked child
    # meanwhile (run_parts computes them here if that child fails).
    _, warnings = run_parts(part, ["write", "warnings"])
    report_gaps(snapshot.gaps)
    report_warnings(snapshot, warnings)
    return EXIT_OK


def _write_snapshot(
    snapshot: Snapshot, output: str, indent: int | None, ahead: Encoded | None = None
) -> None:
    from podpath.cli.snapshot_file import json_pieces, line_slices, write_pieces
    from podpath.output_file import OutputError, write_chunks
    from podpath.snapshot import codec

    # Pretty-printed files are for reading: one json.dumps is fine for those.
    pieces = (
        json_pieces(snapshot, ahead=ahead)
        if indent is None
        else iter([codec.dumps(snapshot, indent)])
    )
    if output == "-":
        write_pieces(sys.stdout, pieces)
        sys.stdout.flush()
        return
    try:
        # Replaced as a whole (output_file): a signal never leaves half a file, nor one
        # that its killed tools left short (the last chunk checks before the rename).
        write_chunks(output, _until_signalled(text.encode("ascii") for text in line_slices(pieces)))
    except OutputError as exc:
        raise CliError(str(exc)) from None


def _until_signalled(chunks: Iterator[bytes]) -> Iterator[bytes]:
    """`chunks`, then Terminated if a signal arrived meanwhile and its exception was lost."""
    yield from chunks
    raise_lost_signal()


def _ls(args: argparse.Namespace) -> int:
    from podpath.table import render_text

    if args.listening and args.kind != "sockets":
        raise CliError("--listening applies to `podpath ls sockets` only")
    if args.stats and args.kind != "links":
        raise CliError("--stats applies to `podpath ls links` only")
    if args.snapshot:
        snapshots = [load_snapshot(path) for path in args.snapshot]
        one_per_node(args.snapshot, snapshots)
    else:
        snapshots = [collect_live(args.host_root, _PARTS.get(args.kind))]
    results = [(snapshot.node.hostname, _listing_of(snapshot, args)) for snapshot in snapshots]
    result = results[0][1] if len(results) == 1 else with_node_column(results)
    if args.json:
        sys.stdout.write(json_listing(args.kind, result.rows) + "\n")
    else:
        sys.stdout.write(render_text(result) + "\n")
    for snapshot in snapshots:
        node = snapshot.node.hostname if len(snapshots) > 1 else None
        if args.kind not in ("problems", "gaps"):  # those list the gaps themselves
            report_gaps(snapshot.gaps, node)
        if args.kind in ("iptables", "nft", "services"):
            report_warnings(snapshot, node=node)
        if args.kind == "services":
            report_name_notes(snapshot, node)
    return EXIT_OK


def _listing_of(snapshot: Snapshot, args: argparse.Namespace) -> Listing:
    """The listing `args` ask for, of one node's snapshot."""
    if args.kind == "namespaces":
        # The namespaces alone: not the index nor the other kinds' imports (~6 ms of a
        # command that competes with lsns: docs/performance.md, "ls namespaces: only
        # what it lists").
        from podpath.namespace_listing import namespaces

        return namespaces(snapshot)
    from podpath.analysis.index import SnapshotIndex
    from podpath.listing import link_stats, listening_sockets, listing

    index = SnapshotIndex(snapshot)
    if args.listening:
        return listening_sockets(index)
    if args.stats:
        return link_stats(index)
    return listing(index, args.kind)


def with_node_column(listings: list[tuple[str, Listing]]) -> Listing:
    """Several nodes' listings as one, each row led by its node (as kubectl's NODE column)."""
    from podpath.table import Column, Listing

    first = listings[0][1]
    rows = [{"node": node, **row} for node, result in listings for row in result.rows]
    return Listing(rows, (Column("NODE", lambda row: row.get("node")), *first.columns))


def one_per_node(paths: Sequence[str], snapshots: Sequence[Snapshot]) -> None:
    """Refuse two snapshots of one node: a file given twice, or snapshots of two clusters."""
    from podpath.safe_text import visible

    if not paths:  # the live node: one snapshot, of this node
        return
    seen: dict[str, str] = {}
    for path, snapshot in zip(paths, snapshots, strict=True):
        name = snapshot.node.hostname
        first = seen.setdefault(name, path)
        if first is path:
            continue
        if _same_file(first, path):
            raise CliError(f"{visible(path)} is given twice: give one snapshot per node")
        raise CliError(
            f"{visible(first)} and {visible(path)} are both snapshots of node {visible(name)}: "
            "give one snapshot per node (two clusters' snapshots cannot be used together)"
        )


def _same_file(a: str, b: str) -> bool:
    try:
        return a == b or os.path.samefile(a, b)
    except OSError:  # stdin ("-") or a file gone since it was read
        return False


def json_listing(kind: str, rows: list[dict[str, Any]]) -> str:
    """`{kind: rows}` as `json.dumps(..., ensure_ascii=True, indent=2)` writes it, byte for byte.

    ensure_ascii keeps escape sequences in names as \\u001b: the JSON is safe to print.
    With `indent`, the json module encodes in Python, ~20 us a row (36 ms for 1,758
    namespaces on this machine); rows of plain values (the shape of every listing) are
    joined here from C-encoded strings in a fifth of that. Anything else takes json.
    """
    import json

    text = _json_rows(kind, rows)
    return json.dumps({kind: rows}, ensure_ascii=True, indent=2) if text is None else text


def _json_true_false(value: bool) -> str:
    return "true" if value else "false"


def _json_null(_: None) -> str:
    return "null"


def _json_rows(kind: str, rows: list[dict[str, Any]]) -> str | None:
    """The fast path of `json_listing`: None unless every row is a dict of str keys to
    str/int/bool/None values or lists of them (floats and nesting take json's path)."""
    from json.encoder import encode_basestring_ascii as enc

    # Exact types: a bool is not written as an int, an IntEnum not as its name.
    scalar: dict[type, Any] = {
        str: enc,
        int: int.__repr__,
        bool: _json_true_false,
        type(None): _json_null,
    }
    prefixes: dict[str, str] = {}
    out = []
    for row in rows:
        if type(row) is not dict:
            return None
        items = []
        for key, value in row.items():
            prefix = prefixes.get(key)
            if prefix is None:
                if type(key) is not str:
                    return None
                prefix = prefixes[key] = "\n      " + enc(key) + ": "
            write = scalar.get(type(value))
            if write is not None:
                items.append(prefix + write(value))
            elif type(value) is list or type(value) is tuple:
                cells = []
                for item in value:
                    write = scalar.get(type(item))
                    if write is None:
                        return None
                    cells.append(write(item))
                items.append(
                    prefix
                    + ("[\n        " + ",\n        ".join(cells) + "\n      ]" if cells else "[]")
                )
            else:
                return None
        out.append("{" + ",".join(items) + "\n    }" if items else "{}")
    if not out:
        return "{\n  " + enc(kind) + ": []\n}"
    return "{\n  " + enc(kind) + ": [\n    " + ",\n    ".join(out) + "\n  ]\n}"
