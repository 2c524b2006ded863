"""`podpath doctor`: every path of the node traced, every failing one explained, graded, fixed."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from podpath.cli import EXIT_FAILURE, EXIT_OK
from podpath.cli.trace import add_sources, load_snapshots


def register(sub: Any) -> None:
    """Register `podpath doctor`."""
    p = sub.add_parser(
        "doctor",
        help="find what is broken: every Service and pod path traced, failures explained and graded",
        description="Trace every Service port from each pod position of the node, from the "
        "node itself and from outside (NodePort, LB), and every pod to every other pod's "
        "address across the loaded snapshots; report each failing or doubtful path once, "
        "with its cause, the hop that decided it, the evidence and the fix, graded "
        "critical, warning or info, with what the node's facts show (conntrack fill, "
        "netfilter backends, leaked IPAM, stale conntrack, sysctls, MTUs). Exit status 1 "
        "when anything is critical, 0 otherwise.",
    )
    add_sources(p, "diagnose")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Handle `podpath doctor`."""
    from podpath.analysis.index import SnapshotIndex
    from podpath.cli.inspect import one_per_node
    from podpath.cli.progress import ProgressLine
    from podpath.doctor import diagnose
    from podpath.doctor.findings import dumps
    from podpath.doctor.render import render_text
    from podpath.progress import Items

    snapshots = load_snapshots(args)
    one_per_node(args.snapshot or [], snapshots)
    with ProgressLine(verb="judging") as progress:
        judged = Items(progress, "Service paths", 0, 1, 0).reached
        report = diagnose([SnapshotIndex(s) for s in snapshots], judged=judged)
    if args.json:
        sys.stdout.write(dumps(report) + "\n")
    else:
        sys.stdout.write(render_text(report))
    return EXIT_FAILURE if report.critical else EXIT_OK
