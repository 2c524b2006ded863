"""podpath's benchmark: a synthetic Kubernetes node in a lab, podpath against the shell tools.

    benchmarks/run [--quick] [--json FILE] [--pods N] [--services N] ...

Builds the node with podpath's lab (runc pods on cni0, kube-proxy rules), shapes it
(conntrack entries, sleeping processes, an nftables run), measures every figure
BENCHMARKS.md reports inside the node with driver.py, prints one table and writes it.
The lab is always torn down, also on errors and Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from types import FrameType
from typing import Any

import node_build
import report
from node_build import NODE
from stats import Figure, Goal, stat

from podpath.lab import Lab, LabError, LabSpec, ServiceRecord, down, up

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
DRIVER = str(HERE / "driver.py")
BASELINE = str(HERE / "baseline.sh")
SNAP_PATH = "/run/podpath-bench-snapshot.json"  # the node's private /run
SNAPSHOT_CMD = ["podpath", "snapshot", "-o", "/dev/null"]
SHELL_CMD = ["sh", BASELINE, "all"]
LS_NS_CMD = ["podpath", "ls", "namespaces", "--json"]
LSNS_CMD = ["lsns", "-J"]
SHELL_LABEL = "baseline.sh"


@dataclass(frozen=True)
class Sizes:
    """Every size knob of the synthetic node, and how often to repeat."""

    pods: int = 250
    services: int = 10_000
    conntrack: int = 50_000
    procs: int = 1_000
    procs_high: int = 3_000
    repeats: int = 5
    growth_pods: tuple[int, ...] = (50, 100)
    growth_services: tuple[int, ...] = (1_000, 5_000)
    nft: bool = True


QUICK = Sizes(
    pods=40,
    services=2_000,
    conntrack=10_000,
    procs=300,
    procs_high=1_000,
    repeats=3,
    growth_pods=(),
    growth_services=(500,),
)


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in text.split(",") if x.strip())


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    """The command line."""
    p = argparse.ArgumentParser(prog="benchmarks/run", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="small node, 3 repeats (< 5 min)")
    p.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    p.add_argument(
        "--md",
        metavar="FILE",
        help="Markdown report (default BENCHMARKS.md; benchmarks/BENCHMARKS-quick.md with --quick)",
    )
    for knob in ("pods", "services", "conntrack", "procs", "procs-high", "repeats"):
        p.add_argument(f"--{knob}", type=int, default=None)
    p.add_argument(
        "--growth-pods",
        type=_ints,
        default=None,
        metavar="N,N",
        help="smaller pod counts to measure growth at (a lab each)",
    )
    p.add_argument(
        "--growth-services",
        type=_ints,
        default=None,
        metavar="N,N",
        help="smaller Service counts to measure growth at",
    )
    p.add_argument("--no-nft", action="store_true", help="skip the nftables-mode run")
    p.add_argument(
        "--render",
        metavar="JSON",
        help="measure nothing: re-render the report from a --json file of a run",
    )
    return p.parse_args(argv)


def sizes_from(args: argparse.Namespace) -> Sizes:
    """Defaults (full or quick) overridden by the knobs given."""
    s = QUICK if args.quick else Sizes()
    for field in (
        "pods",
        "services",
        "conntrack",
        "procs",
        "procs_high",
        "repeats",
        "growth_pods",
        "growth_services",
    ):
        value = getattr(args, field)
        if value is not None:
            s = replace(s, **{field: value})
    return replace(s, nft=s.nft and not args.no_nft)


# --- running things inside the node ----------------------------------------------------


def drive(lab: Lab, phase: str, args: dict[str, Any], timeout: float = 1800) -> dict[str, Any]:
    """Run one driver phase inside the node; its JSON result."""
    done = lab.exec(NODE, [sys.executable, DRIVER, phase, json.dumps(args)], timeout=timeout)
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def ab(lab: Lab, commands: dict[str, list[str]], repeats: int) -> dict[str, Any]:
    """Whole processes alternated inside the node."""
    return drive(lab, "ab", {"commands": commands, "repeats": repeats})


def log(msg: str) -> None:
    """Progress on stderr."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


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


# --- the figures -------------------------------------------------------------------------


def growth_point(lab: Lab, repeats: int, label: str) -> list[Figure]:
    """Snapshot vs shell script at one size."""
    r = ab(lab, {"podpath": SNAPSHOT_CMD, "shell": SHELL_CMD}, repeats)
    return [
        Figure(
            f"growth.{label}",
            f"7. growth: snapshot at {label}",
            "s",
            stat(r["wall"]["podpath"]),
            stat(r["wall"]["shell"]),
            SHELL_LABEL,
        )
    ]


def whole_process(lab: Lab, s: Sizes, procs: int) -> list[Figure]:
    """Figures 1, 2 and 6 (the RSS of the snapshot runs of figure 1)."""
    log("figure 1: podpath snapshot vs baseline.sh")
    r = ab(lab, {"podpath": SNAPSHOT_CMD, "shell": SHELL_CMD}, s.repeats)
    log("figure 2: podpath ls namespaces vs lsns -J")
    n = ab(lab, {"podpath": LS_NS_CMD, "lsns": LSNS_CMD}, s.repeats * 2)
    rss = [k / 1024 for k in r["maxrss_kib"]["podpath"]]
    return [
        Figure(
            "snapshot",
            "1. `podpath snapshot -o /dev/null` vs shell script",
            "s",
            stat(r["wall"]["podpath"]),
            stat(r["wall"]["shell"]),
            SHELL_LABEL,
            Goal("ratio", 0.5),
        ),
        Figure(
            "namespaces",
            f"2. `podpath ls namespaces --json` vs `lsns -J` ({procs:,} procs)",
            "s",
            stat(n["wall"]["podpath"]),
            stat(n["wall"]["lsns"]),
            "lsns -J",
            Goal("ratio", 1.0),
        ),
        Figure(
            "rss",
            "6. peak RSS of `podpath snapshot` (largest process of its tree)",
            "MiB",
            stat(rss),
            stat([k / 1024 for k in r["maxrss_kib"]["shell"]]),
            "largest process of the script",
            Goal("max", 300),
        ),
    ]


def namespaces_high(lab: Lab, s: Sizes, procs: int) -> Figure:
    """Figure 2 at many processes."""
    n = ab(lab, {"podpath": LS_NS_CMD, "lsns": LSNS_CMD}, s.repeats * 2)
    return Figure(
        "namespaces_high",
        f"2b. `podpath ls namespaces --json` vs `lsns -J` ({procs:,} procs)",
        "s",
        stat(n["wall"]["podpath"]),
        stat(n["wall"]["lsns"]),
        "lsns -J",
        Goal("ratio", 0.5),
    )


_SHELL_FOR = {
    "namespaces": ("lsns", "lsns -J"),
    "netns: links+addrs+routes+neigh+fdb": ("netns", "ip -n loop (pod netns only)"),
    "netfilter collect (tools)": ("netfilter", "ip(6)tables-save + nft tables"),
    "conntrack collect (tool)": ("conntrack", "conntrack -L"),
}


def collectors(lab: Lab, repeats: int, prefix: str = "3") -> tuple[list[Figure], dict[str, Any]]:
    """Figure 3: each collector in-process, with the shell tool for the same facts."""
    r = drive(lab, "collectors", {"repeats": repeats})
    figs = []
    for name, samples in r["times"].items():
        shell_part = _SHELL_FOR.get(name)
        base = stat(r["shell"][shell_part[0]]) if shell_part else None
        figs.append(
            Figure(
                f"collector.{prefix}.{name}",
                f"{prefix}. in-process: {name}",
                "s",
                stat(samples),
                base,
                shell_part[1] if shell_part else "",
            )
        )
    return figs, r["counts"]


def pick_probe(lab: Lab, svcs: Sequence[ServiceRecord]) -> tuple[str, str]:
    """A web pod as source and a late Service with endpoints as destination."""
    web = next(p for p in lab.pods if p.app == "web")
    svc = [x for x in svcs if x.endpoints and x.name.startswith("svc-")][-1]
    return web.ref, f"{svc.ref}:{svc.port}"


def trace_figure(lab: Lab, s: Sizes, source: str, dest: str, label: str) -> list[Figure]:
    """Figure 4: the Service trace, cold and warm."""
    r = drive(
        lab,
        "trace",
        {"snapshot": SNAP_PATH, "source": source, "destination": dest, "repeats": s.repeats},
    )
    note = f"{source} -> {dest}: {r['branches']} branches"
    return [
        Figure(
            f"trace.{label}",
            f"4. Service trace ({label}), kept index",
            "s",
            stat(r["warm"]),
            goal=Goal("max", 0.020),
            note=note,
        ),
        Figure(
            f"trace_cold.{label}",
            f"4. Service trace ({label}), first (parses rules)",
            "s",
            stat(r["cold"]),
        ),
    ]


def tui_figures(lab: Lab, s: Sizes) -> list[Figure]:
    """Figure 5: Pilot timings on the scale snapshot."""
    r = drive(lab, "tui", {"snapshot": SNAP_PATH, "needle": "svc-12", "repeats": s.repeats})
    return [
        Figure(
            "tui.paint",
            "5. TUI first frame painted (home, counts still parsing)",
            "s",
            stat(r["first_paint"]),
            goal=Goal("max", 1.0),
        ),
        Figure(
            "tui.first",
            "5. TUI first frame, Pilot until CPU-idle (incl. background parse)",
            "s",
            stat(r["first_frame"]),
        ),
        Figure(
            "tui.views",
            "5. TUI background parse done (Services, conntrack, problems)",
            "s",
            stat(r["views_ready"]),
        ),
        Figure(
            "tui.filter",
            "5. TUI filter keystroke to repainted table",
            "s",
            stat(r["filter_paint"]),
            goal=Goal("max", 0.100),
            note=f"worst keystroke {max(r['filter_paint_max']) * 1000:.0f} ms",
        ),
        Figure(
            "tui.filter_pilot",
            "5. TUI filter keystroke, Pilot press + pause (3 idle waits)",
            "s",
            stat(r["filter_key"]),
        ),
        Figure(
            "tui.services_rows",
            "5. TUI open Services (after parsing) to rows painted",
            "s",
            stat(r["services_rows"]),
            goal=Goal("max", 0.300),
        ),
        Figure(
            "tui.services",
            "5. TUI open Services, through Pilot until CPU-idle",
            "s",
            stat(r["services_screen"]),
        ),
    ]


def refresh_figure(lab: Lab, s: Sizes) -> Figure:
    """Figure 6b: take_snapshot(previous=...) on an unchanged node vs the shell script."""
    r = drive(lab, "refresh", {"repeats": s.repeats})
    return Figure(
        "refresh",
        "6b. refresh of an unchanged node (TUI `r`) vs shell script",
        "s",
        stat(r["podpath"]),
        stat(r["shell"]),
        SHELL_LABEL,
        Goal("ratio", 0.15),
    )


def snapfile_figure(lab: Lab) -> Figure:
    """Figure 6: the snapshot file's size (also leaves the file for figures 4 and 5)."""
    r = drive(lab, "snapfile", {"snapshot": SNAP_PATH})
    return Figure("snapshot_size", "6. snapshot file size", "bytes", stat([r["size"]]))


def nft_run(
    lab: Lab, s: Sizes, svcs: Sequence[ServiceRecord], probe: tuple[str, str]
) -> list[Figure]:
    """The same Services in kube-proxy's nftables mode."""
    log("nft run: removing kube-proxy iptables Service rules, loading table ip kube-proxy")
    node_build.drop_iptables_services(lab)
    t = time.monotonic()
    node_build.load_nft(lab, svcs)
    log(f"nft -f took {time.monotonic() - t:.1f} s")
    r = ab(lab, {"podpath": SNAPSHOT_CMD, "shell": ["sh", BASELINE, "all-nft"]}, s.repeats)
    figs = [
        Figure(
            "snapshot_nft",
            "1n. `podpath snapshot` vs shell script, nftables mode",
            "s",
            stat(r["wall"]["podpath"]),
            stat(r["wall"]["shell"]),
            SHELL_LABEL,
            Goal("ratio", 0.5),
        ),
        Figure(
            "rss_nft",
            "6n. peak RSS of `podpath snapshot`, nftables mode",
            "MiB",
            stat([k / 1024 for k in r["maxrss_kib"]["podpath"]]),
            goal=Goal("max", 300),
        ),
    ]
    cf, _ = collectors(lab, 1, prefix="3n")
    figs += [f for f in cf if "nft" in f.key or "netfilter" in f.key]
    snapfile_figure(lab)
    figs += trace_figure(lab, replace(s, repeats=max(2, s.repeats // 2)), *probe, label="nft")
    return figs


def measure(s: Sizes) -> tuple[list[Figure], dict[str, int]]:
    """Build the node(s) and take every figure."""
    figures: list[Figure] = []
    growth: list[Figure] = []
    reps_growth = max(2, s.repeats // 2)
    for pods in (p for p in s.growth_pods if p < s.pods):
        with lab_up(pods, s.services) as lab:
            growth += growth_point(lab, reps_growth, f"{pods} pods, {s.services:,} Services")
    steps = sorted({n for n in s.growth_services if n < s.services} | {s.services})
    with lab_up(s.pods, steps[0]) as lab:
        svcs = node_build.plan(lab, steps[0])
        for i, count in enumerate(steps):
            if i:
                t = time.monotonic()
                svcs = node_build.plan(lab, count)
                node_build.program_iptables(lab, svcs)
                log(f"programmed {count} Services in {time.monotonic() - t:.1f} s")
            growth += growth_point(lab, reps_growth, f"{s.pods} pods, {count:,} Services")
        log(f"adding {s.conntrack} conntrack entries and {s.procs} processes")
        ct = node_build.add_conntrack(lab, svcs, s.conntrack)
        node_build.add_sleepers(lab, s.procs)
        procs = node_build.process_count(lab)
        log(
            f"node: {len(lab.pods)} pods, {len(svcs)} Service ports, {ct} conntrack, "
            f"{procs} processes"
        )
        sizes = {
            "pods": len(lab.pods),
            "service_ports": len(svcs),
            "conntrack": ct,
            "processes": procs,
        }
        figures += whole_process(lab, s, procs)
        figures.append(snapfile_figure(lab))
        log("figure 3: collectors in-process")
        cf, counts = collectors(lab, max(2, s.repeats // 2))
        figures += cf
        sizes.update(
            {f"seen_{k.replace(' ', '_')}": int(v) for k, v in counts.items() if k != "round"}
        )
        probe = pick_probe(lab, svcs)
        log("figure 4: trace")
        figures += trace_figure(lab, s, *probe, label="iptables")
        log("figure 5: TUI")
        figures += tui_figures(lab, s)
        log("figure 6b: refresh")
        figures.append(refresh_figure(lab, s))
        node_build.add_sleepers(lab, s.procs_high - procs)
        high = node_build.process_count(lab)
        log(f"figure 2b: namespaces at {high} processes")
        figures.append(namespaces_high(lab, s, high))
        sizes["processes_high"] = high
        if s.nft:
            figures += nft_run(lab, s, svcs, probe)
    return figures + growth, sizes


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

The goals are set for the full node (`benchmarks/run`: 250 pods, 10k Services, 50k
conntrack entries, 1.5k and 3k processes). This node is a fraction of that size, where
Python's start-up (~0.1 s) is a large share of every whole-process figure, so its
"met?" column shows whether the machinery works, not whether a goal is met.
"""


def main(argv: Sequence[str]) -> int:
    """Run the benchmark; 0 when it completed (goals missed are reported, not failures)."""
    args = parse_args(argv)
    s = sizes_from(args)
    analysis = HERE / "analysis.md"
    md_path = (
        Path(args.md)
        if args.md
        else (HERE / "BENCHMARKS-quick.md" if args.quick else REPO / "BENCHMARKS.md")
    )
    if args.render:
        info, figures = report.from_json(json.loads(Path(args.render).read_text()))
        md_path.write_text(
            report.markdown(info, figures, analysis.read_text() if analysis.exists() else "")
        )
        print(report.text_table(figures))
        return 0
    signal.signal(signal.SIGTERM, _on_term)
    info_machine = machine()
    command = "benchmarks/run " + " ".join(argv)
    started = time.monotonic()
    try:
        figures, sizes = measure(s)
    except KeyboardInterrupt:
        log("interrupted; the lab was torn down")
        return 130
    log(f"done in {time.monotonic() - started:.0f} s")
    info = report.RunInfo(
        info_machine, time.strftime("%Y-%m-%d %H:%M:%S %Z"), command.strip(), sizes
    )
    print(report.text_table(figures))
    md_path.write_text(
        report.markdown(
            info,
            figures,
            _QUICK_NOTE if args.quick else analysis.read_text() if analysis.exists() else "",
        )
    )
    if args.json:
        Path(args.json).write_text(report.dumps(info, figures) + "\n")
    log(f"wrote {md_path}" + (f" and {args.json}" if args.json else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
