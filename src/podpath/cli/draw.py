"""`podpath draw`: a map of the node (or several) as SVG, DOT or an indented outline.

The map is built by podpath.draw; Graphviz's `dot` lays it out and draws the SVG. It
is an external program like the collectors' tools but reads nothing of the node, so
it runs here, with an argument list, a timeout and stdin/stdout pipes, never a shell.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from podpath.cli import EXIT_FAILURE, EXIT_OK, CliError, raise_lost_signal
from podpath.cli.trace import add_sources, load_snapshots

if TYPE_CHECKING:
    from podpath.snapshot.model import Snapshot
    from podpath.trace.model import Trace

DOT_TIMEOUT = 120.0  # seconds; 250 pods lay out in about one
DOT_FORMATS = (".dot", ".gv")
FOCUS_ABOVE = 24  # pods on a node above which `trace --svg` draws only the pods on the path


def register(sub: Any) -> None:
    """Register `podpath draw`."""
    p = sub.add_parser(
        "draw",
        help="draw the node's map: pods, veths, bridges, overlay, uplinks (SVG for docs)",
        description="Draw a map of the node: each pod with its IPs, containers and eth0@ifN, "
        "its host veth, the bridge or routed links, the node's IP stack, the overlay device "
        "with its remote VTEPs, the uplink and its network; with several snapshots, the nodes "
        "joined by the network they share. Without -o, print the map as an indented outline.",
    )
    add_sources(p, "draw")
    add_map_options(p)
    p.add_argument(
        "-o",
        "--output",
        default=None,
        metavar="FILE.svg|FILE.dot|-",
        help="write SVG (or Graphviz DOT for .dot/.gv; - is SVG on stdout)",
    )
    p.add_argument("--title", default=None, help="a heading for the picture")
    p.set_defaults(handler=run)


def add_map_options(p: argparse.ArgumentParser) -> None:
    """The options that choose which pods a map shows (shared with `trace --svg`)."""
    p.add_argument(
        "-n",
        "--namespace",
        action="append",
        default=[],
        metavar="NS",
        help="only pods of this Kubernetes namespace (repeatable)",
    )
    p.add_argument(
        "--pod",
        action="append",
        default=[],
        metavar="PATTERN",
        help="only pods whose NAMESPACE/NAME or NAME matches this shell pattern (repeatable)",
    )
    p.add_argument(
        "--fold-veths",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="draw host veths inside their pods' boxes (default: on nodes with over 12 pods)",
    )


def run_dot(dot_text: str) -> str:
    """Graphviz lays the DOT out and returns SVG; a missing or failing dot is one sentence."""
    dot = shutil.which("dot")
    if dot is None:
        raise CliError(
            "drawing needs Graphviz's dot (Debian: apt install graphviz); "
            "-o FILE.dot writes the graph without it",
            EXIT_FAILURE,
        )
    try:
        done = subprocess.run(
            [dot, "-Tsvg"],
            input=dot_text.encode("utf-8", "surrogateescape"),
            capture_output=True,
            timeout=DOT_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise CliError(
            f"Graphviz took over {DOT_TIMEOUT:.0f} s to lay the map out; "
            "draw fewer pods with --namespace or --pod",
            EXIT_FAILURE,
        ) from None
    except OSError as exc:
        raise CliError(f"Graphviz's dot could not run: {exc.strerror}", EXIT_FAILURE) from None
    if done.returncode != 0:
        first = done.stderr.decode("utf-8", "replace").strip().splitlines()[:1]
        why = first[0] if first else f"exit status {done.returncode}"
        raise CliError(f"Graphviz's dot failed: {why}", EXIT_FAILURE)
    return done.stdout.decode("utf-8", "replace")


def write_picture(dot_text: str, output: str) -> None:
    """Write DOT (for .dot/.gv) or SVG drawn by dot to a file, or SVG to stdout for '-'."""
    if output == "-":
        sys.stdout.write(run_dot(dot_text))
        return
    text = dot_text if Path(output).suffix.lower() in DOT_FORMATS else run_dot(dot_text)
    _write(output, text)


def _write(output: str | Path, text: str) -> None:
    """Replace `output` with `text` as a whole (output_file), or say why not."""
    from podpath.output_file import OutputError, write_bytes

    raise_lost_signal()  # not a picture of what killed tools left
    try:
        write_bytes(str(output), text.encode("utf-8"))
    except OutputError as exc:
        # A path that cannot be written is bad input, exit 2 as `snapshot -o` says it.
        raise CliError(str(exc)) from None


def run(args: argparse.Namespace) -> int:
    """Handle `podpath draw`."""
    from podpath.draw.build import MapFilter, build_map
    from podpath.draw.dot import to_dot
    from podpath.draw.outline import outline
    from podpath.safe_text import visible

    snapshots = load_snapshots(args)
    wanted = MapFilter(tuple(args.namespace), tuple(args.pod))
    node_map = build_map(snapshots, wanted, args.fold_veths)
    if wanted.active and not any(e.kind == "pod" for e in node_map.elements):
        raise CliError("no pod matches --namespace/--pod on any node")
    if args.output is None:
        for row in outline(node_map):
            print("  " * row.depth + visible(row.text))
        return EXIT_OK
    write_picture(to_dot(node_map, title=args.title), args.output)
    return EXIT_OK


def trace_picture(snapshots: list[Snapshot], result: Trace, branch: int, output: str) -> None:
    """`trace --svg`: the map with one branch (and its first reply) drawn on it."""
    from podpath.draw.build import MapFilter, build_map
    from podpath.draw.dot import to_dot
    from podpath.draw.path import path_netns, trace_path, trace_title

    if output == "-":
        raise CliError("--svg needs a file name: stdout carries the trace itself")
    if not 1 <= branch <= len(result.branches):
        from podpath.wording import count

        raise CliError(
            f"--branch {branch}: the trace has {count(len(result.branches), 'branch', 'branches')}"
        )
    chosen = result.branches[branch - 1]
    node_map = build_map(snapshots)
    if any(len(s.pods) > FOCUS_ABOVE for s in snapshots):
        # A big node: the pods the packet passes, with every bridge and device around them.
        node_map = build_map(snapshots, MapFilter(netns=path_netns(node_map, chosen)))
    path = trace_path(node_map, chosen, branch)
    write_picture(to_dot(node_map, path, trace_title(result.probe)), output)


SVG_TERM_TIMEOUT = 600.0  # seconds; the 100 s tour converts in about 20


def svg_term() -> str | None:
    """svg-term (npm's svg-term-cli) on PATH or beside this Python (where ./run installs it)."""
    beside = os.path.dirname(sys.executable)
    return shutil.which("svg-term") or shutil.which("svg-term", path=beside)


def animate_cast(cast: Path, output: Path) -> None:
    """Turn an asciinema recording into an animated SVG with svg-term."""
    from podpath.draw.cast import CastError, coalesce, preserve_spaces

    program = svg_term()
    if program is None:
        raise CliError(
            f"{cast} is recorded; the animated SVG needs svg-term "
            "(npm install -g svg-term-cli@2.1.1, or ./run setup)",
            EXIT_FAILURE,
        )
    try:
        frames = coalesce(cast.read_text(encoding="utf-8"))
    except OSError as exc:
        raise CliError(f"cannot read {cast}: {exc.strerror}", EXIT_FAILURE) from None
    except (CastError, UnicodeDecodeError) as exc:
        raise CliError(f"{cast}: {exc}", EXIT_FAILURE) from None
    with tempfile.TemporaryDirectory(prefix="podpath-cast-") as tmp:
        joined, drawn = Path(tmp) / "tour.cast", Path(tmp) / "tour.svg"
        joined.write_text(frames, encoding="utf-8")
        # --no-optimize: svg-term's optimiser drops the white-space rule that keeps columns.
        argv = [program, "--in", str(joined), "--out", str(drawn), "--window", "--no-optimize"]
        try:
            done = subprocess.run(argv, capture_output=True, timeout=SVG_TERM_TIMEOUT, check=False)
        except subprocess.TimeoutExpired:
            raise CliError(f"svg-term took over {SVG_TERM_TIMEOUT:.0f} s", EXIT_FAILURE) from None
        except OSError as exc:
            raise CliError(f"svg-term could not run: {exc.strerror}", EXIT_FAILURE) from None
        if done.returncode != 0 or not drawn.exists():
            lines = done.stderr.decode("utf-8", "replace").strip().splitlines()
            why = lines[-1] if lines else f"exit status {done.returncode}"
            raise CliError(f"svg-term failed: {why}", EXIT_FAILURE)
        try:
            svg = preserve_spaces(drawn.read_text(encoding="utf-8"))
        except CastError as exc:
            raise CliError(f"svg-term: {exc}", EXIT_FAILURE) from None
    _write(output, svg)


def animation_path(cast: Path) -> Path:
    """Where a recording's animation goes: tour.cast -> tour.svg."""
    return (
        cast.with_suffix(".svg") if cast.suffix == ".cast" else cast.with_name(cast.name + ".svg")
    )
