"""Draw the README's pictures from the bundled demo snapshots: the map, a trace on it, the tour.

    screenshots/draw_pictures.py           map.svg and trace-map.svg (needs Graphviz)
    screenshots/draw_pictures.py --tour    ... and tour.cast + tour.svg (asciinema, svg-term)

record_demo.py runs it after recording the demo; it can run alone on what is bundled.
"""

from __future__ import annotations

import argparse
import sys
from importlib import resources
from pathlib import Path

from podpath.cli import main as podpath
from podpath.snapshot.codec import loads
from podpath.trace.engine import trace
from podpath.trace.probe import Probe

HERE = Path(__file__).resolve().parent
DATA = resources.files("podpath").joinpath("data")
NAMES = ("demo-snapshot.json", "demo-snapshot-node2.json")


def snapshot_args() -> list[str]:
    """--snapshot FILE for each bundled demo snapshot."""
    return [a for name in NAMES for a in ("--snapshot", str(DATA.joinpath(name)))]


def cross_node_probe() -> tuple[Probe, int]:
    """A Service trace from node1's DNS pod, and the first branch that lands on node2."""
    snaps = [loads(DATA.joinpath(name).read_bytes()) for name in NAMES]
    dns = next(p for p in snaps[0].pods if p.namespace == "kube-system")
    probe = Probe(f"{dns.namespace}/{dns.name}", "default/web:80")
    result = trace(snaps, probe, reply=True)
    for number, branch in enumerate(result.branches, 1):
        if any(h.kind == "leave" for h in branch.hops):
            return probe, number
    raise SystemExit("no branch of the demo trace leaves node1")


def main(argv: list[str]) -> int:
    """Draw map.svg and trace-map.svg (and the tour's animation with --tour)."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tour", action="store_true", help="also record and animate the tour")
    args = parser.parse_args(argv)
    code = podpath(
        [
            "draw",
            *snapshot_args(),
            "--title",
            "the bundled demo: two lab nodes joined by a flannel-style VXLAN",
            "-o",
            str(HERE / "map.svg"),
        ]
    )
    if code:
        return code
    probe, branch = cross_node_probe()
    code = podpath(
        ["trace", *snapshot_args(), "--from", probe.source, "--to", probe.destination]
        + ["--reply", "--branch", str(branch), "--svg", str(HERE / "trace-map.svg")]
    )
    if code:
        return code
    print("drew", HERE / "map.svg", "and", HERE / "trace-map.svg")
    if args.tour:
        code = podpath(["tour", "--record", str(HERE / "tour.cast")])
        print("recorded", HERE / "tour.cast", "and", HERE / "tour.svg")
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
