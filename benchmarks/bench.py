"""podpath's benchmark: two node shapes in labs, podpath against the shell tools.

    benchmarks/run [--quick] [--json FILE] [--shapes synthetic,holders] [--scale F] ...

Builds each node shape with podpath's lab (runc pods on cni0, kube-proxy rules) and
shapes it (conntrack entries, named netns held by `ip netns exec` processes, sleeping
processes), at 1x, 2x and 4x its size for the growth figures, then measures every
figure BENCHMARKS.md reports inside the node with driver.py, side by side with the
shell tools in the same run, and writes the tables. Labs are always torn down, also
on errors and Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import statistics
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import FrameType
from typing import Any

import node_build
import report
from node_build import NODE
from stats import Figure, Goal, Growth, Stat, stat

from podpath.lab import Lab, LabError, LabSpec, ServiceRecord, down, up

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
DRIVER = str(HERE / "driver.py")
BASELINE = str(HERE / "baseline.sh")
SNAP_PATH = "/run/podpath-bench-snapshot.json"  # the node's private /run
SNAPSHOT_CMD = ["podpath", "snapshot", "-o", "/dev/null"]
SHELL_CMD = ["sh", BASELINE, "all"]
SHELL_NFT_CMD = ["sh", BASELINE, "all-nft"]
LS_NS_CMD = ["podpath", "ls", "namespaces", "--json"]
LSNS_CMD = ["lsns", "-J"]
SHELL_LABEL = "baseline.sh"

# Goals of the issue "faster than the C tools where podpath competes with them".
SNAPSHOT_GOAL = Goal("ratio", 0.3)
RSS_GOAL = Goal("max", 200)
NAMESPACES_GOAL = Goal("ratio", 1.0)
NAMESPACES_HIGH_GOAL = Goal("ratio", 0.6)
TRACE_CLI_GOAL = Goal("max", 0.25)
DOCTOR_GOAL = Goal("max", 2.0)


@dataclass(frozen=True)
class Shape:
    """A node to build: its pods, Services, conntrack entries and processes."""

    key: str
    pods: int
    services: int
    conntrack: int
    sleepers: int  # plain sleeping processes
    holders: int  # named netns on a bridge, each held by an `ip netns exec` process
    procs_high: int  # the node's processes for figure 2b

    def scaled(self, factor: float) -> Shape:
        """The same shape at `factor` times its size (a node keeps at least 3 pods)."""

        def at(n: int, least: int = 0) -> int:
            return max(least, round(n * factor))

        return replace(
            self,
            pods=at(self.pods, min(3, self.pods)),
            services=at(self.services, 2),
            conntrack=at(self.conntrack),
            sleepers=at(self.sleepers),
            holders=at(self.holders),
            procs_high=at(self.procs_high),
        )


# The node BENCHMARKS.md has always measured: many pods, each with a pause process.
SYNTHETIC = Shape(
    "synthetic",
    pods=250,
    services=10_000,
    conntrack=50_000,
    sleepers=1_000,
    holders=0,
    procs_high=5_000,
)
# The node of the independent measurement: 1,000 sleeps, 246 `ip netns exec`
# processes holding 246 named netns (veths on a bridge), a few pods, 10k Services.
HOLDERS = Shape(
    "holders",
    pods=3,
    services=10_000,
    conntrack=50_000,
    sleepers=1_000,
    holders=246,
    procs_high=5_000,
)
SHAPES = {s.key: s for s in (SYNTHETIC, HOLDERS)}
# The quick run's nodes: the same shapes at a fraction of the size.
QUICK_SHAPES = {
    "synthetic": replace(SYNTHETIC.scaled(0.16), sleepers=300, procs_high=1_000),
    "holders": replace(HOLDERS.scaled(0.2), sleepers=300, procs_high=1_000),
}


@dataclass(frozen=True)
class Plan:
    """What to build and measure, and how often to repeat."""

    shapes: tuple[Shape, ...] = (SYNTHETIC, HOLDERS)
    repeats: int = 5
    # Sizes of the growth series, relative to each shape (the largest is the shape).
    growth: tuple[float, ...] = (0.25, 0.5, 1.0)
    nft: bool = True
    tui: bool = True


def _floats(text: str) -> tuple[float, ...]:
    return tuple(float(x) for x in text.split(",") if x.strip())


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    """The command line."""
    p = argparse.ArgumentParser(prog="benchmarks/run", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="small nodes, 2 repeats (< 5 min)")
    p.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    p.add_argument(
        "--md",
        metavar="FILE",
        help="Markdown report (default BENCHMARKS.md; benchmarks/BENCHMARKS-quick.md with --quick)",
    )
    p.add_argument(
        "--shapes",
        default="synthetic,holders",
        help="node shapes to build, comma-separated (synthetic, holders)",
    )
    p.add_argument("--scale", type=float, default=1.0, help="every shape at this size (0.5 ...)")
    p.add_argument(
        "--growth",
        type=_floats,
        default=None,
        metavar="F,F,F",
        help="relative sizes of the growth series (default 0.25,0.5,1; 1 alone: none)",
    )
    p.add_argument("--repeats", type=int, default=None)
    p.add_argument("--no-nft", action="store_true", help="skip the nftables-mode runs")
    p.add_argument("--no-tui", action="store_true", help="skip the TUI figures")
    p.add_argument(
        "--render",
        metavar="JSON",
        help="measure nothing: re-render the report from a --json file of a run",
    )
    return p.parse_args(argv)


def plan_from(args: argparse.Namespace) -> Plan:
    """The plan of a command line: full or quick shapes, scaled, and the knobs given."""
    table = QUICK_SHAPES if args.quick else SHAPES
    keys = [k.strip() for k in args.shapes.split(",") if k.strip()]
    unknown = [k for k in keys if k not in table]
    if unknown or not keys:
        raise SystemExit(f"benchmarks/run: unknown shape(s) {unknown}; known: {sorted(table)}")
    shapes = tuple(table[k].scaled(args.scale) if args.scale != 1.0 else table[k] for k in keys)
    growth = tuple(sorted(set(args.growth or (0.25, 0.5, 1.0)) | {1.0}))
    repeats = args.repeats if args.repeats is not None else (2 if args.quick else 5)
    return Plan(shapes, repeats, growth, nft=not args.no_nft, tui=not args.no_tui)


# --- running things inside the node ----------------------------------------------------


def drive(lab: Lab, phase: str, args: dict[str, Any], timeout: float = 1800) -> dict[str, Any]:
    """Run one driver phase inside the node; its JSON result."""
    done = lab.exec(NODE, [sys.executable, DRIVER, phase, json.dumps(args)], timeout=timeout)
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def ab(lab: Lab, commands: dict[str, list[str]], repeats: int) -> dict[str, Any]:
    """Whole processes alternated inside the node."""
    return drive(lab, "ab", {"commands": commands, "repeats": repeats})


# The 1-minute load average at each step of the run: on a shared machine wall times
# move with it, so the report says how loaded the run was throughout, not only at start.
_LOADS: list[float] = []


def log(msg: str) -> None:
    """Progress on stderr (and a sample of the load average)."""
    _LOADS.append(os.getloadavg()[0])
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def load_during() -> str:
    """The load averages sampled at each step of the run, in words."""
    if not _LOADS:
        return ""
    return (
        f"; 1-minute load average at each of {len(_LOADS)} steps: median "
        f"{statistics.median(_LOADS):.1f}, {min(_LOADS):.1f}-{max(_LOADS):.1f}"
    )


@contextmanager
def lab_up(pods: int, services: int) -> Iterator[Lab]:
    """A one-node lab named bench-<pid>, always torn down."""
    name = f"bench-{os.getpid()}"
    log(f"lab up: {pods} pods, {services} Services")
    lab = up(LabSpec(name=name, nodes=1, pods=pods, services=max(2, services)))
    log(f"lab up in {lab.record.up_seconds:.1f} s")
    try:
        yield lab
    finally:
        log("lab down")
        try:
            down(name)
        except LabError as exc:
            log(f"lab down reported: {exc}")


@dataclass
class Node:
    """A built node: its lab, Services and what was counted in it."""

    lab: Lab
    shape: Shape
    svcs: list[ServiceRecord]
    sizes: dict[str, int] = field(default_factory=dict)


def build(lab: Lab, shape: Shape) -> Node:
    """Shape a fresh lab node: conntrack entries, netns holders, sleeping processes."""
    svcs = node_build.plan(lab, shape.services)
    t = time.monotonic()
    ct = node_build.add_conntrack(lab, svcs, shape.conntrack)
    node_build.add_netns_holders(lab, shape.holders)
    node_build.add_sleepers(lab, shape.sleepers)
    procs = node_build.process_count(lab)
    sizes = {
        "pods": len(lab.pods),
        "service_ports": len(svcs),
        "conntrack": ct,
        "named_netns": node_build.named_netns_count(lab),
        "processes": procs,
    }
    log(
        f"{shape.key} node in {time.monotonic() - t:.1f} s: "
        + ", ".join(f"{k}={v:,}" for k, v in sizes.items())
    )
    return Node(lab, shape, svcs, sizes)


# --- the figures -------------------------------------------------------------------------


def _cpu_note(r: dict[str, Any], a: str, b: str) -> str:
    """The CPU seconds (user + system, children included) of both sides of an A/B run."""
    cpu = r.get("cpu")
    if not cpu:
        return ""
    return (
        f"CPU {report.format_value(stat(cpu[a]).median, 's')} "
        f"vs {report.format_value(stat(cpu[b]).median, 's')}"
    )


def snapshot_figures(node: Node, repeats: int, nft: bool = False) -> list[Figure]:
    """Figure 1 (or 1n) and 6 (or 6n): `podpath snapshot` against the shell script."""
    shell = SHELL_NFT_CMD if nft else SHELL_CMD
    r = ab(node.lab, {"podpath": SNAPSHOT_CMD, "shell": shell}, repeats)
    n = "n" if nft else ""
    mode = ", nftables mode" if nft else ""
    key = node.shape.key
    return [
        Figure(
            f"{key}.snapshot{'_nft' if nft else ''}",
            f"1{n}. `podpath snapshot -o /dev/null` vs shell script{mode}",
            "s",
            stat(r["wall"]["podpath"]),
            stat(r["wall"]["shell"]),
            SHELL_LABEL,
            SNAPSHOT_GOAL,
            note=_cpu_note(r, "podpath", "shell"),
            shape=key,
        ),
        Figure(
            f"{key}.rss{'_nft' if nft else ''}",
            f"6{n}. peak RSS of `podpath snapshot` (largest process of its tree){mode}",
            "MiB",
            stat([k / 1024 for k in r["maxrss_kib"]["podpath"]]),
            stat([k / 1024 for k in r["maxrss_kib"]["shell"]]),
            "largest process of the script",
            RSS_GOAL,
            shape=key,
        ),
    ]


def namespaces_figure(node: Node, repeats: int, procs: int, label: str, goal: Goal) -> Figure:
    """Figure 2 (or 2b): `podpath ls namespaces --json` against `lsns -J`."""
    r = ab(node.lab, {"podpath": LS_NS_CMD, "lsns": LSNS_CMD}, repeats)
    return Figure(
        f"{node.shape.key}.namespaces{'_high' if label else ''}",
        f"2{label}. `podpath ls namespaces --json` vs `lsns -J` ({procs:,} procs)",
        "s",
        stat(r["wall"]["podpath"]),
        stat(r["wall"]["lsns"]),
        "lsns -J",
        goal,
        note=_cpu_note(r, "podpath", "lsns"),
        shape=node.shape.key,
    )


def syscalls_figure(node: Node, procs: int) -> Figure | None:
    """Figure 2s: system calls per process of `ls namespaces` and of `lsns -J` (strace -c)."""
    r = drive(node.lab, "syscalls", {"commands": {"podpath": LS_NS_CMD, "lsns": LSNS_CMD}})
    if not r.get("available"):
        log("strace is not installed: no figure 2s")
        return None
    ours, theirs = r["podpath"], r["lsns"]

    def top(calls: dict[str, int]) -> str:
        best = sorted(calls.items(), key=lambda kv: -kv[1])[:4]
        return ", ".join(f"{name} {count / procs:.1f}" for name, count in best)

    return Figure(
        f"{node.shape.key}.syscalls",
        f"2s. system calls per process, `ls namespaces` vs `lsns -J` ({procs:,} procs)",
        "calls",
        stat([ours["total"] / procs]),
        stat([theirs["total"] / procs]),
        "lsns -J",
        note=f"podpath: {top(ours['calls'])}; lsns: {top(theirs['calls'])}",
        shape=node.shape.key,
    )


_SHELL_FOR = {
    "namespaces": ("lsns", "lsns -J"),
    "netns: links+addrs+routes+neigh+fdb": ("netns", "ip -n loop (named netns)"),
    "netfilter collect (tools)": ("netfilter", "ip(6)tables-save + nft tables"),
    "conntrack collect (tool)": ("conntrack", "conntrack -L"),
}


def collectors(node: Node, repeats: int, prefix: str = "3") -> tuple[list[Figure], dict[str, Any]]:
    """Figure 3: each collector in-process, with the shell tool for the same facts."""
    r = drive(node.lab, "collectors", {"repeats": repeats})
    figs = []
    for name, samples in r["times"].items():
        shell_part = _SHELL_FOR.get(name)
        base = stat(r["shell"][shell_part[0]]) if shell_part else None
        figs.append(
            Figure(
                f"{node.shape.key}.collector.{prefix}.{name}",
                f"{prefix}. in-process: {name}",
                "s",
                stat(samples),
                base,
                shell_part[1] if shell_part else "",
                shape=node.shape.key,
            )
        )
    return figs, r["counts"]


def pick_probe(lab: Lab, svcs: Sequence[ServiceRecord]) -> tuple[str, str]:
    """A web pod as source and a late Service with endpoints as destination."""
    web = next(p for p in lab.pods if p.app == "web")
    svc = [x for x in svcs if x.endpoints and x.name.startswith("svc-")][-1]
    return web.ref, f"{svc.ref}:{svc.port}"


def trace_figures(node: Node, repeats: int, label: str) -> list[Figure]:
    """Figure 4: the Service trace, cold and warm."""
    source, dest = pick_probe(node.lab, node.svcs)
    r = drive(
        node.lab,
        "trace",
        {"snapshot": SNAP_PATH, "source": source, "destination": dest, "repeats": repeats},
    )
    note = f"{source} -> {dest}: {r['branches']} branches"
    key = node.shape.key
    return [
        Figure(
            f"{key}.trace.{label}",
            f"4. Service trace ({label}), kept index",
            "s",
            stat(r["warm"]),
            goal=Goal("max", 0.020),
            note=note,
            shape=key,
        ),
        Figure(
            f"{key}.trace_cold.{label}",
            f"4. Service trace ({label}), first (parses rules)",
            "s",
            stat(r["cold"]),
            shape=key,
        ),
    ]


def trace_cli_figures(node: Node, repeats: int, label: str) -> list[Figure]:
    """Figure 4c: `podpath trace --snapshot --json` to a Service, end to end: a snapshot
    traced before (from the default cache), its first trace, and `--no-cache`."""
    source, dest = pick_probe(node.lab, node.svcs)
    r = drive(
        node.lab,
        "trace_cli",
        {"snapshot": SNAP_PATH, "source": source, "destination": dest, "repeats": repeats},
    )
    key = node.shape.key
    rows = [
        ("cached", "trace_cli", "`trace --snapshot` ({}), a file traced before", TRACE_CLI_GOAL),
        (
            "first",
            "trace_cli_first",
            "`trace --snapshot` ({}), its first trace (keeps its index)",
            None,
        ),
        ("parsed", "trace_cli_parsed", "`trace --snapshot --no-cache` ({})", None),
    ]
    return [
        Figure(
            f"{key}.{name}.{label}",
            f"4c. CLI {title.format(label)}, end to end",
            "s",
            stat(r[kind]),
            goal=goal,
            note=_cpu_of(r[f"cpu_{kind}"]),
            shape=key,
        )
        for kind, name, title, goal in rows
    ]


def _cpu_of(cpu: list[float]) -> str:
    """CPU seconds of a figure's runs (user + system): load distorts them less than wall time."""
    return f"CPU {statistics.median(cpu):.2f} s ({min(cpu):.2f}-{max(cpu):.2f} s)"


def doctor_figure(node: Node, repeats: int) -> Figure:
    """Figure 4d: `podpath doctor --snapshot` judging every path of the node."""
    r = drive(node.lab, "doctor", {"snapshot": SNAP_PATH, "repeats": repeats})
    c = r["coverage"]
    note = (
        f"{c['paths']:,} paths from {c['classes']} pod positions ({c['pods']} pods) and "
        f"{c['service_ports']:,} Service ports in {c['traces']:,} traces; "
        f"CPU {statistics.median(r['cpu']):.2f} s; findings {r['summary']}"
    )
    return Figure(
        f"{node.shape.key}.doctor",
        "4d. `podpath doctor --snapshot` (every Service and pod path judged)",
        "s",
        stat(r["wall"]),
        goal=DOCTOR_GOAL,
        note=note,
        shape=node.shape.key,
    )


# (the driver's sample, the figure's name, its title) of figure 5.
_TUI_ROWS = (
    ("first_paint", "paint", "first frame painted (home, counts still parsing)"),
    ("first_frame", "first", "first frame, Pilot until CPU-idle (incl. background parse)"),
    ("counts_shown", "views", "Services, conntrack, problems counts shown on home"),
    ("views_ready", "views_all", "background parse done (counts, then every screen's rows)"),
    ("parse_stall", "stall", "longest event-loop stall during the background parse"),
    ("filter_paint", "filter", "filter keystroke to repainted table"),
    ("filter_key", "filter_pilot", "filter keystroke, Pilot press + pause (3 idle waits)"),
    ("services_rows", "services_rows", "open Services (after parsing) to rows painted"),
    ("services_screen", "services", "open Services, through Pilot until CPU-idle"),
    ("trace_shown", "trace", "Service trace (in a worker) to branches painted"),
    ("trace_stall", "trace_stall", "longest event-loop stall while that trace runs"),
)
_TUI_GOALS = {
    "paint": Goal("max", 1.0),
    "views": Goal("max", 1.5),
    "stall": Goal("max", 0.100),
    # A keystroke's repaint must feel instant: 50 ms, half the stall allowed elsewhere.
    "filter": Goal("max", 0.050),
    "services_rows": Goal("max", 0.300),
    "trace_stall": Goal("max", 0.100),
}


def tui_figures(node: Node, repeats: int) -> list[Figure]:
    """Figure 5: Pilot timings on the node's snapshot."""
    source, dest = pick_probe(node.lab, node.svcs)
    args = {"snapshot": SNAP_PATH, "needle": "svc-12", "repeats": repeats}
    r = drive(node.lab, "tui", {**args, "source": source, "destination": dest})
    key = node.shape.key
    figs = []
    for sample, name, title in _TUI_ROWS:
        note = ""
        if name == "filter":
            note = f"worst keystroke {max(r['filter_paint_max']) * 1000:.0f} ms"
        elif name == "views":
            note = "the app's process and its doctor child: " + _cpu_of(r["counts_shown_cpu"])
        figs.append(
            Figure(
                f"{key}.tui.{name}",
                f"5. TUI {title}",
                "s",
                stat(r[sample]),
                goal=_TUI_GOALS.get(name),
                note=note,
                shape=key,
            )
        )
    return figs


def refresh_figure(node: Node, repeats: int) -> Figure:
    """Figure 6b: take_snapshot(previous=...) on an unchanged node vs the shell script."""
    r = drive(node.lab, "refresh", {"repeats": repeats})
    return Figure(
        f"{node.shape.key}.refresh",
        "6b. refresh of an unchanged node (TUI `r`) vs shell script",
        "s",
        stat(r["podpath"]),
        stat(r["shell"]),
        SHELL_LABEL,
        Goal("ratio", 0.15),
        shape=node.shape.key,
    )


def snapfile_figure(node: Node) -> Figure:
    """Figure 6: the snapshot file's size (also leaves the file for figures 4 and 5)."""
    r = drive(node.lab, "snapfile", {"snapshot": SNAP_PATH})
    return Figure(
        f"{node.shape.key}.snapshot_size",
        "6. snapshot file size",
        "bytes",
        stat([r["size"]]),
        shape=node.shape.key,
    )


def switch_to_nft(node: Node) -> None:
    """Replace kube-proxy's iptables Service rules with its nftables table."""
    log("nft: removing kube-proxy iptables Service rules, loading table ip kube-proxy")
    node_build.drop_iptables_services(node.lab)
    t = time.monotonic()
    node_build.load_nft(node.lab, node.svcs)
    log(f"nft -f took {time.monotonic() - t:.1f} s")


def measure_node(node: Node, plan: Plan, full: bool) -> list[Figure]:
    """Every figure of one node: the growth set, and everything else on a full-size node."""
    reps = plan.repeats if full else max(2, plan.repeats // 2)
    key = node.shape.key
    procs = node.sizes["processes"]
    log(f"{key}: figures 1 and 6 (snapshot), 2 (ls namespaces)")
    figs = snapshot_figures(node, reps)
    figs.append(namespaces_figure(node, reps * 2, procs, "", NAMESPACES_GOAL))
    figs.append(snapfile_figure(node))
    if full:
        syscalls = syscalls_figure(node, procs)
        figs += [syscalls] if syscalls is not None else []
        log(f"{key}: figure 3 (collectors in-process)")
        cf, counts = collectors(node, max(2, reps // 2))
        figs += cf
        node.sizes.update(
            {f"seen_{k.replace(' ', '_')}": int(v) for k, v in counts.items() if k != "round"}
        )
    log(f"{key}: figure 4 (trace)")
    figs += trace_figures(node, reps, "iptables")
    figs += trace_cli_figures(node, reps, "iptables")
    log(f"{key}: figure 4d (doctor)")
    figs.append(doctor_figure(node, max(2, reps // 2)))
    if plan.tui:
        log(f"{key}: figure 5 (TUI)")
        figs += tui_figures(node, reps if full else 1)
    log(f"{key}: figure 6b (refresh)")
    figs.append(refresh_figure(node, reps))
    if full:
        node_build.add_sleepers(node.lab, node.shape.procs_high - procs)
        high = node_build.process_count(node.lab)
        log(f"{key}: figure 2b (ls namespaces at {high:,} processes)")
        figs.append(namespaces_figure(node, reps * 2, high, "b", NAMESPACES_HIGH_GOAL))
        node.sizes["processes_high"] = high
    if plan.nft:
        switch_to_nft(node)
        log(f"{key}: figures 1n and 6n (snapshot, nftables mode)")
        figs += snapshot_figures(node, reps, nft=True)
        if full:
            cf, _ = collectors(node, 1, prefix="3n")
            figs += [f for f in cf if "nft" in f.key or "netfilter" in f.key]
        snapfile_figure(node)
        figs += trace_figures(node, max(2, reps // 2), "nft")
        figs += trace_cli_figures(node, max(2, reps // 2), "nft")
    return figs


# Figures followed across the growth series (keys without the shape), and their titles.
GROWTH_FIGURES = {
    "snapshot": "1. `podpath snapshot` vs shell script",
    "namespaces": "2. `podpath ls namespaces --json` vs `lsns -J`",
    "rss": "6. peak RSS of `podpath snapshot`",
    "snapshot_size": "6. snapshot file size",
    "trace.iptables": "4. Service trace (iptables), kept index",
    "trace_cold.iptables": "4. Service trace (iptables), first",
    "trace_cli.iptables": "4c. CLI `trace --snapshot` (iptables), a file traced before",
    "trace_cli_first.iptables": "4c. CLI `trace --snapshot` (iptables), its first trace",
    "trace_cli_parsed.iptables": "4c. CLI `trace --snapshot --no-cache` (iptables)",
    "doctor": "4d. `podpath doctor --snapshot`",
    "tui.paint": "5. TUI first frame painted",
    "tui.views": "5. TUI Services, conntrack, problems counts usable",
    "tui.filter": "5. TUI filter keystroke to repainted table",
    "refresh": "6b. refresh of an unchanged node vs shell script",
    "snapshot_nft": "1n. `podpath snapshot` vs shell script, nftables mode",
    "rss_nft": "6n. peak RSS of `podpath snapshot`, nftables mode",
    "trace.nft": "4. Service trace (nft), kept index",
}


def growth_of(shape: Shape, points: dict[float, list[Figure]]) -> list[Growth]:
    """The growth rows of one shape from the figures measured at each of its sizes."""
    scales = sorted(points)
    if len(scales) < 2:
        return []
    out = []
    for name, title in GROWTH_FIGURES.items():
        at = [{f.key: f for f in points[s]}.get(f"{shape.key}.{name}") for s in scales]
        found = [f for f in at if f is not None]
        if len(found) != len(scales):
            continue
        base: tuple[Stat, ...] | None = None
        if all(f.baseline is not None for f in found):
            base = tuple(f.baseline for f in found if f.baseline is not None)
        out.append(
            Growth(
                f"{shape.key}.{name}",
                title,
                found[0].unit,
                shape.key,
                tuple(s / scales[0] for s in scales),
                tuple(f.podpath for f in found),
                base,
                found[0].baseline_label,
            )
        )
    return out


def _unshaped(key: str) -> str:
    """A figure's key without its shape ("holders.snapshot" -> "snapshot")."""
    return key.split(".", 1)[1] if "." in key else key


def measure(plan: Plan) -> tuple[list[Figure], list[Growth], dict[str, int]]:
    """Build every node of the plan and take every figure."""
    figures: list[Figure] = []
    growth: list[Growth] = []
    sizes: dict[str, int] = {}
    for shape in plan.shapes:
        points: dict[float, list[Figure]] = {}
        for scale in plan.growth:
            at = shape.scaled(scale) if scale != 1.0 else shape
            log(f"{shape.key} at {scale:g}x of its size")
            with lab_up(at.pods, at.services) as lab:
                node = build(lab, at)
                figs = measure_node(node, plan, full=scale == 1.0)
            points[scale] = figs
            if scale == 1.0:
                figures += figs
                sizes.update({f"{shape.key}.{k}": v for k, v in node.sizes.items()})
        growth += growth_of(shape, points)
    # Rows of the same figure on each node one under the other, in the figures' order.
    order: dict[str, int] = {}
    for i, f in enumerate(figures):
        order.setdefault(_unshaped(f.key), i)
    figures.sort(key=lambda f: order[_unshaped(f.key)])
    return figures, growth, sizes


def machine() -> str:
    """CPU, cores, memory, kernel, Python, and the load when the run started."""
    cpu = "?"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem = int(Path("/proc/meminfo").read_text().split()[1]) / 1024 / 1024
    load = os.getloadavg()[0]
    return (
        f"{cpu}, {os.cpu_count()} cores, {mem:.0f} GiB, Linux {platform.release()}, "
        f"Python {platform.python_version()}, load average {load:.1f} at start"
    )


def _on_term(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


_QUICK_NOTE = """\
## A quick run

The goals are set for the full nodes (`benchmarks/run`: 250 pods or 246 netns holders,
10k Services, 50k conntrack entries, ~1.3-1.5k and 5k processes). These nodes are a
fraction of that size, where Python's start-up (~0.1 s) is a large share of every
whole-process figure, so the "met?" column shows whether the machinery works, not
whether a goal is met.
"""


def byte_compile() -> None:
    """Compile podpath's modules to bytecode first, as installing a wheel does.

    Measured otherwise, every start of podpath under PYTHONDONTWRITEBYTECODE (set on the
    machine the figures were taken on) compiled the modules it imports from source: 50 ms
    of a 0.3 s CLI trace, 90 ms of doctor, which no installed podpath pays. Likewise the
    dataclasses' methods (~40 ms of the cached trace), which any other machine compiles
    once, on the first run.
    """
    import compileall
    import subprocess

    import podpath

    # Where Python imports it from (an editable install's tree of links): its __pycache__.
    compileall.compile_dir(str(Path(podpath.__file__).parent), quiet=1)
    # And the methods @dataclass generates, which the first run of a command writes
    # where bytecode may be written (podpath.dataclass_code).
    subprocess.run(
        [sys.executable, "-m", "podpath.dataclass_code"], check=True, stdout=subprocess.DEVNULL
    )


def main(argv: Sequence[str]) -> int:
    """Run the benchmark; 0 when it completed (goals missed are reported, not failures)."""
    args = parse_args(argv)
    analysis = HERE / "analysis.md"
    md_path = (
        Path(args.md)
        if args.md
        else (HERE / "BENCHMARKS-quick.md" if args.quick else REPO / "BENCHMARKS.md")
    )
    notes = analysis.read_text() if analysis.exists() else ""
    if args.render:
        info, figures, growth = report.from_json(json.loads(Path(args.render).read_text()))
        md_path.write_text(report.markdown(info, figures, notes, growth))
        print(report.text_table(figures))
        print(report.growth_text(growth))
        return 0
    plan = plan_from(args)
    signal.signal(signal.SIGTERM, _on_term)
    byte_compile()
    info_machine = machine()
    command = "benchmarks/run " + " ".join(argv)
    started = time.monotonic()
    try:
        figures, growth, sizes = measure(plan)
    except KeyboardInterrupt:
        log("interrupted; the lab was torn down")
        return 130
    log(f"done in {time.monotonic() - started:.0f} s")
    info = report.RunInfo(
        info_machine + load_during(), time.strftime("%Y-%m-%d %H:%M:%S %Z"), command.strip(), sizes
    )
    print(report.text_table(figures))
    print(report.growth_text(growth))
    md_path.write_text(report.markdown(info, figures, _QUICK_NOTE if args.quick else notes, growth))
    if args.json:
        Path(args.json).write_text(report.dumps(info, figures, growth) + "\n")
    log(f"wrote {md_path}" + (f" and {args.json}" if args.json else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
