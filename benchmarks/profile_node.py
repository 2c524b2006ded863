"""Profile podpath's slow parts inside a lab node (cProfile), to explain missed goals.

    .venv/bin/python benchmarks/profile_node.py [--pods N] [--services N] [--conntrack N]
        [--holders N] [--sleepers N] TARGET...

TARGETS: snapshot, services, tui, ls-namespaces. Prints each profile (top functions by
cumulative time). The lab is always torn down.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import node_build
from bench import SNAP_PATH, drive, lab_up, log


def main(argv: Sequence[str]) -> int:
    """Build the node, profile each target, print the profiles."""
    p = argparse.ArgumentParser(prog="benchmarks/profile_node.py")
    p.add_argument("--pods", type=int, default=250)
    p.add_argument("--services", type=int, default=10_000)
    p.add_argument("--conntrack", type=int, default=50_000)
    p.add_argument("--holders", type=int, default=0, help="`ip netns exec` netns holders")
    p.add_argument("--sleepers", type=int, default=0, help="sleeping processes")
    p.add_argument("--top", type=int, default=35)
    p.add_argument("targets", nargs="+", choices=["snapshot", "services", "tui", "ls-namespaces"])
    args = p.parse_args(argv)
    with lab_up(args.pods, args.services) as lab:
        node_build.add_conntrack(lab, node_build.plan(lab, args.services), args.conntrack)
        node_build.add_netns_holders(lab, args.holders)
        node_build.add_sleepers(lab, args.sleepers)
        drive(lab, "snapfile", {"snapshot": SNAP_PATH})
        for target in args.targets:
            log(f"profiling {target}")
            r = drive(lab, "profile", {"target": target, "snapshot": SNAP_PATH, "top": args.top})
            print(f"===== {target} =====\n{r['text']}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
