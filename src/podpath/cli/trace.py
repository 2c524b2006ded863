"""`podpath trace`: follow a packet through the live node or saved snapshots, and explain it."""

from __future__ import annotations

import argparse
from typing import Any

from podpath.cli import EXIT_OK, CliError
from podpath.snapshot.model import Snapshot
from podpath.trace.probe import PROTOCOLS, Probe, ProbeError


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
    p.add_argument("--explain", action="store_true", help="show each route decision's binary AND")
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
    return [take_snapshot(host_root=args.host_root or "/")]


def run(args: argparse.Namespace) -> int:
    """Handle `podpath trace`."""
    from podpath.trace.engine import trace
    from podpath.trace.render import dumps, render_text

    if args.sport is not None and not 0 < args.sport < 65536:
        raise CliError(f"--sport {args.sport} is not a port number (1-65535)")
    snapshots = load_snapshots(args)
    probe = Probe(args.source, args.destination, args.proto, args.sport, args.family)
    try:
        result = trace(snapshots, probe, explain=args.explain, reply=args.reply)
    except ProbeError as exc:
        raise CliError(str(exc)) from None
    if args.svg is not None:
        from podpath.cli.draw import trace_picture

        trace_picture(snapshots, result, args.branch, args.svg)
    if args.json:
        print(dumps(result))
    else:
        print(render_text(result, explain=args.explain), end="")
    return EXIT_OK
