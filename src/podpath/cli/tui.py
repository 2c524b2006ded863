"""`podpath tui`, `podpath demo`, `podpath screenshot`: the composition root of the TUI.

This module is the only place that joins the Textual app (podpath.tui) with the
node readers (podpath.collectors) and the lab: the app gets a `SnapshotSource` and an
`Actions` implementation from here and never reads the node itself. Heavy imports
happen inside the handlers so `podpath --help` stays fast.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shlex
import shutil
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from podpath.cli import EXIT_FAILURE, EXIT_OK, CliError
from podpath.safe_text import visible

if TYPE_CHECKING:
    from collections.abc import Callable

    from podpath.collectors.actions import Pin
    from podpath.snapshot.model import Snapshot
    from podpath.tui.actions import ActionResult, PodTarget
    from podpath.tui.app import PodpathApp
    from podpath.tui.source import SnapshotSource

DEMO_LAB = "podpath-demo"
DEMO_SNAPSHOT = "demo-snapshot.json"


def register(sub: Any) -> None:
    """Register `tui`, `demo` and `screenshot`."""
    p = sub.add_parser("tui", help="open the explorer (the default command)")
    source = p.add_mutually_exclusive_group()
    source.add_argument(
        "--host-root",
        default=None,
        metavar="DIR",
        help="the node's root filesystem (/ on a node, /host in a debug pod)",
    )
    source.add_argument(
        "--snapshot",
        nargs="+",
        action="extend",
        metavar="FILE",
        help="open saved snapshots instead of the live node: the first (or --node) is "
        "shown, the others are on :map and traces cross into them (--snapshot A B, or "
        "repeated; e.g. DIR/*.json from kubectl podpath snapshot)",
    )
    p.add_argument("--node", help="with several snapshots: the node to show (its hostname)")
    # Set by `podpath demo` when it runs the TUI inside a lab node: labels the title.
    p.add_argument("--lab-node", default=None, help=argparse.SUPPRESS)
    p.set_defaults(handler=_tui)

    p = sub.add_parser(
        "demo", help="build a lab node and open the explorer on it (torn down on exit)"
    )
    p.add_argument("--name", default=DEMO_LAB, help=f"lab name (default {DEMO_LAB!r})")
    p.add_argument("--bundled", action="store_true", help="skip the lab: open the bundled snapshot")
    p.add_argument(
        "--cni",
        default="bridge",
        choices=("bridge", "calico", "ptp", "aws-vpc"),
        help="the lab's pod network (default bridge; see `podpath lab up --help`)",
    )
    p.add_argument(
        "--ip-family", default="ipv4", choices=("ipv4", "ipv6", "dual"), help="pod address families"
    )
    p.add_argument(
        "--policy",
        default="",
        choices=("kube-router",),
        help="enforce NetworkPolicies with this engine's real rules (see `podpath lab up --help`)",
    )
    p.set_defaults(handler=_demo)

    p = sub.add_parser("screenshot", help="save an SVG of a screen after a key sequence")
    p.add_argument(
        "--snapshot", metavar="FILE", help="snapshot to show (default: the bundled demo)"
    )
    p.add_argument(
        "--keys",
        nargs="*",
        default=[],
        metavar="KEY",
        help="keys to press first, e.g. --keys colon p o d s enter down enter",
    )
    p.add_argument("--size", default="120x36", help="terminal size COLSxROWS (default 120x36)")
    p.add_argument("--title", default=None, help="title of the SVG window")
    p.add_argument(
        "--all",
        action="store_true",
        help="write one SVG per main screen (podpath.tui.tour) into the -o directory",
    )
    p.add_argument("-o", "--output", required=True, metavar="FILE.svg|DIR")
    p.set_defaults(handler=_screenshot)

    p = sub.add_parser(
        "tour", help="drive the explorer through its main screens by itself (for recordings)"
    )
    p.add_argument(
        "--snapshot", metavar="FILE", help="snapshot to show (default: the bundled demo)"
    )
    p.add_argument(
        "--delay", type=float, default=2.0, help="seconds to stay on each screen (default 2)"
    )
    p.add_argument(
        "--record",
        metavar="FILE.cast",
        help="record the tour with asciinema into FILE.cast, and animate it as FILE.svg (svg-term)",
    )
    p.set_defaults(handler=_tour)


# --- sources -------------------------------------------------------------------------------


def bundled_snapshot() -> Snapshot:
    """The demo snapshot shipped inside the package (recorded from the lab)."""
    from podpath.snapshot.codec import SnapshotError, loads

    try:
        data = resources.files("podpath").joinpath("data", DEMO_SNAPSHOT).read_bytes()
        return loads(data)
    except (OSError, SnapshotError) as exc:
        raise CliError(f"the bundled demo snapshot cannot be read: {exc}", EXIT_FAILURE) from None


def file_source(path: str) -> SnapshotSource:
    """A source for a snapshot file (loaded here, so a bad file is one clear error)."""
    return files_source([path])


def files_source(paths: list[str], node: str | None = None) -> SnapshotSource:
    """A source showing one of several nodes' snapshot files, the others its trace peers."""
    from podpath.snapshot.codec import SnapshotError, load_path
    from podpath.tui.source import static_source

    try:
        loaded = [(path, load_path(path)) for path in paths]
    except SnapshotError as exc:
        raise CliError(str(exc), EXIT_FAILURE) from None
    from podpath.cli.inspect import one_per_node

    one_per_node(paths, [snap for _, snap in loaded])
    names = [snap.node.hostname for _, snap in loaded]
    if node is None:
        shown = 0
    elif node in names:
        shown = names.index(node)
    else:
        raise CliError(f"--node {node}: no snapshot of that node (nodes: {', '.join(names)})")
    path, snapshot = loaded[shown]
    peers = tuple(snap for i, (_, snap) in enumerate(loaded) if i != shown)
    return static_source(snapshot, "snapshot", path, peers=peers)


def live_source(host_root: str, lab_node: str | None = None) -> SnapshotSource:
    """A source that collects the node in the app's worker thread (r re-collects)."""
    from podpath.tui.source import live_source as make

    def collect(
        cancel: threading.Event,
        previous: Snapshot | None,
        progress: Callable[[str, int, int], object],
    ) -> Snapshot:
        from podpath.collectors.hostroot import CollectorError
        from podpath.collectors.snapshot import take_snapshot
        from podpath.tui.source import CollectError

        try:
            return take_snapshot(host_root, cancel=cancel, previous=previous, progress=progress)
        except CollectorError as exc:
            # The collector's own refusal, worded for the user: not a bug to report.
            raise CollectError(str(exc)) from exc

    if lab_node is not None:
        return make(collect, lab_node, kind="lab")
    return make(collect, host_root)


# --- actions: shell and capture, pinned by PID + start time + netns inode ------------------


@dataclass
class NodeActions:
    """`s` and `c` on a live node, done by podpath.collectors.actions (nsenter, tcpdump)."""

    host_root: str = "/"
    # Where relative capture names go; podpath's private state directory unless given.
    capture_dir: str | None = None

    def capture_directory(self) -> str:
        """The directory a capture file name without a directory goes to."""
        if self.capture_dir is None:
            from podpath.collectors.actions import default_capture_dir

            self.capture_dir = default_capture_dir()
        return self.capture_dir

    def shell(self, target: PodTarget) -> ActionResult:
        """An interactive shell in the pod's network namespace (the node's filesystem)."""
        from podpath.collectors.actions import ActionRefused, run_shell
        from podpath.tui.actions import ActionResult

        sys.stdout.write(
            f"podpath: shell in the network namespace of {visible(target.pod)}; exit to return\n"
        )
        sys.stdout.flush()
        try:
            code = run_shell(self.host_root, _pin(target))
        except ActionRefused as exc:
            return ActionResult(False, f"refused: {target.pod}: {exc}")
        return ActionResult(True, f"shell in {target.pod} exited ({code})")

    def capture(self, target: PodTarget, path: str, count: int, seconds: int) -> ActionResult:
        """tcpdump on the pod's interface into a new pcap file, at most `count` packets or `seconds`."""
        from podpath.collectors.actions import ActionRefused, new_capture_file, run_capture
        from podpath.tui.actions import ActionResult

        try:
            out = new_capture_file(path, self.capture_directory())
        except ActionRefused as exc:
            return ActionResult(False, f"no capture of {target.pod}: {exc}")
        sys.stdout.write(
            f"podpath: capturing on {visible(target.pod)} {visible(target.interface)} for up to "
            f"{seconds}s or {count} packets into {visible(out.path)} (ctrl-c stops)\n"
        )
        sys.stdout.flush()
        try:
            done = run_capture(self.host_root, _pin(target), target.interface, out, count, seconds)
        except ActionRefused as exc:
            out.discard()
            return ActionResult(False, f"refused: {target.pod}: {exc}")
        if done.returncode not in (0, -signal.SIGINT) or done.size == 0:
            out.discard()  # removed only if nothing was written
            kept = f"; {done.size:,} bytes in {out.path}" if done.size else "; nothing written"
            return ActionResult(False, f"tcpdump exited {done.returncode}{kept}")
        out.close()
        return ActionResult(
            True, f"capture of {target.pod} written to {out.path} ({done.size:,} bytes)"
        )


def _pin(target: PodTarget) -> Pin:
    from podpath.collectors.actions import Pin

    return Pin(target.pid, target.start_time, target.netns_inode)


# --- handlers ------------------------------------------------------------------------------


def build_app(source: SnapshotSource, live: bool = False, host_root: str = "/") -> PodpathApp:
    """The app for a source (the one factory, with node actions when the source is live)."""
    from podpath.tui.app import create_app

    return create_app(source, NodeActions(host_root) if live else None)


def run_app(app: PodpathApp) -> int:
    """Run the app; its exit status (1 after an unexpected error, told in one sentence)."""
    app.run()
    return EXIT_FAILURE if app.return_code else EXIT_OK


def _tui(args: argparse.Namespace) -> int:
    if args.snapshot:
        return run_app(build_app(files_source(args.snapshot, args.node)))
    if args.node:
        raise CliError("--node picks one of several --snapshot files")
    if sys.platform != "linux":
        raise CliError(
            "the live view reads Linux namespaces; use --snapshot FILE (or podpath demo)"
        )
    host_root = args.host_root or "/"
    return run_app(build_app(live_source(host_root, args.lab_node), live=True, host_root=host_root))


def demo_unavailable() -> str | None:
    """Why the lab cannot run here (not Linux, not root, tools missing), or None."""
    if sys.platform != "linux":
        return f"the lab needs Linux (this is {sys.platform})"
    from podpath.lab import missing_requirements

    return missing_requirements()


def _bundled(reason: str) -> int:
    from podpath.tui.source import static_source

    note = f"demo: a snapshot recorded from the lab, because {reason}"
    return run_app(build_app(static_source(bundled_snapshot(), "demo", "bundled snapshot", note)))


def _demo(args: argparse.Namespace) -> int:
    if args.bundled:
        return _bundled("--bundled was given")
    reason = demo_unavailable()
    if reason is not None:
        return _bundled(reason)
    from podpath.lab import LabError, LabSpec, running_lab

    try:
        spec = LabSpec(
            args.name,
            nodes=2,
            pods=4,
            services=3,
            cni=args.cni,
            ip_family=args.ip_family,
            policy=args.policy,
        )
        with running_lab(spec) as lab:
            _send_traffic(lab)
            lab.interactive("node1", tui_in_node_argv(f"{args.name}/node1"))
    except LabError as exc:
        return _bundled(f"the lab did not come up ({exc})")
    return EXIT_OK


def _send_traffic(lab: Any) -> None:
    """Real connections from node1's pods to the Services, so conntrack has entries to show."""
    web = lab.service("default/web")[0]
    dns = lab.service("kube-system/kube-dns")[0]
    for pod in lab.pods_on("node1"):
        lab.probe(pod.ref, web.cluster_ip, web.port)
        lab.probe(pod.ref, dns.cluster_ip, dns.port, proto="udp")


def tui_in_node_argv(label: str) -> list[str]:
    """argv that runs this podpath's TUI inside a lab node, with this terminal's type.

    The lab gives node commands a minimal environment; without TERM, Textual cannot
    read the keyboard, so the terminal's own settings are passed on explicitly. An
    inherited COLUMNS/LINES is dropped: Textual prefers it to the pty's size, and an
    exported COLUMNS=80 LINES=24 pinned the TUI at 80x24 in a 200x50 tmux pane.
    """
    env = [
        f"{k}={os.environ[k]}" for k in ("TERM", "COLORTERM", "LANG", "LC_ALL") if k in os.environ
    ]
    if not any(e.startswith("TERM=") for e in env):
        env.append("TERM=xterm-256color")
    unset = ["-u", "COLUMNS", "-u", "LINES"]
    return ["env", *unset, *env, sys.executable, "-m", "podpath", "tui", "--lab-node", label]


def parse_size(text: str) -> tuple[int, int]:
    """`120x36` -> (120, 36)."""
    try:
        cols, rows = (int(v) for v in text.lower().split("x", 1))
    except ValueError:
        raise CliError(f"--size must look like 120x36, not {text!r}") from None
    if not (20 <= cols <= 500 and 8 <= rows <= 200):
        raise CliError("--size must be between 20x8 and 500x200")
    return cols, rows


async def render_svg(
    app: PodpathApp, keys: list[str], size: tuple[int, int], title: str | None
) -> str:
    """Run the app headless at a size, press keys, and return the screen as SVG."""
    from podpath.tui.tour import press_and_settle

    async with app.run_test(size=size) as pilot:
        await pilot.pause()
        await press_and_settle(pilot, keys)
        await pilot.pause(0.2)
        return app.export_screenshot(title=title)


def _screenshot(args: argparse.Namespace) -> int:
    from podpath.tui.source import static_source

    size = parse_size(args.size)
    if args.snapshot:
        source = file_source(args.snapshot)
    else:
        source = static_source(bundled_snapshot(), "demo", "bundled snapshot")
    if args.all:
        from podpath.tui.tour import SHOTS

        out = Path(args.output)
        out.mkdir(parents=True, exist_ok=True)
        for name, keys in SHOTS.items():
            svg = asyncio.run(render_svg(build_app(source), list(keys), size, f"podpath — {name}"))
            _write(out / f"{name}.svg", svg)
        return EXIT_OK
    svg = asyncio.run(render_svg(build_app(source), list(args.keys), size, args.title))
    _write(Path(args.output), svg)
    return EXIT_OK


async def drive_tour(pilot: Any, delay: float) -> None:
    """Show each screen of the tour at a readable pace, then quit."""
    from podpath.tui.tour import SHOTS, TOUR

    app = pilot.app
    await asyncio.sleep(delay)
    for name in TOUR:
        for key in SHOTS[name]:
            await pilot.press(key)
            await asyncio.sleep(0.06)  # typing speed a viewer can follow
        await asyncio.sleep(delay)
        app.open_screen("node")
        await pilot.pause()
    app.exit()


def _tour(args: argparse.Namespace) -> int:
    from podpath.tui.source import static_source

    if args.record:
        if shutil.which("asciinema") is None:
            raise CliError(
                "recording needs asciinema (Debian: apt install asciinema)", EXIT_FAILURE
            )
        inner = [sys.executable, "-m", "podpath", "tour", "--delay", str(args.delay)]
        if args.snapshot:
            inner += ["--snapshot", args.snapshot]
        # asciinema takes one command string; shlex.join quotes every argument.
        argv = [
            "asciinema",
            "rec",
            "--overwrite",
            "--cols",
            "120",
            "--rows",
            "36",
            "-c",
            shlex.join(inner),
            "--",
            args.record,
        ]
        code = subprocess.run(argv, check=False).returncode
        if code != 0:
            return code
        from podpath.cli.draw import animate_cast, animation_path

        animate_cast(Path(args.record), animation_path(Path(args.record)))
        return EXIT_OK
    source = (
        file_source(args.snapshot)
        if args.snapshot
        else static_source(bundled_snapshot(), "demo", "bundled snapshot")
    )

    async def auto_pilot(pilot: Any) -> None:
        await drive_tour(pilot, args.delay)

    build_app(source).run(auto_pilot=auto_pilot)
    return EXIT_OK


def _write(path: Path, svg: str) -> None:
    from podpath.output_file import OutputError, write_bytes

    try:
        write_bytes(str(path), svg.encode("utf-8"))
    except OutputError as exc:
        raise CliError(str(exc), EXIT_FAILURE) from None
