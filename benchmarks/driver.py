"""Runs INSIDE a lab node: times commands and podpath's code in-process, prints JSON.

    python driver.py PHASE 'JSON-ARGS'

Each phase is a fresh process so one phase's memory does not slow the next. The last
line of stdout is the JSON result ({name: [seconds, ...], ...} plus extras).
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import resource
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
BASELINE = str(HERE / "baseline.sh")
Result = dict[str, Any]


def run_timed(argv: Sequence[str], timeout: float = 600) -> tuple[float, int, int]:
    """Run argv to completion (output discarded): (wall seconds, peak RSS KiB, exit code)."""
    wall, kib, rc, _ = run_measured(argv, timeout)
    return wall, kib, rc


def run_measured(argv: Sequence[str], timeout: float = 600) -> tuple[float, int, int, float]:
    """run_timed plus the CPU seconds (user + system) of argv and every child it reaped.

    CPU time moves far less than wall time with the host's load: it is what A/B runs on a
    busy machine can compare. (wait4's peak RSS is the largest process of the tree.)
    """
    started = time.perf_counter()
    proc = subprocess.Popen(
        list(argv), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = started + timeout
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        if time.perf_counter() > deadline:
            proc.kill()
        time.sleep(0.001)
    wall = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    return wall, int(usage.ru_maxrss), proc.returncode, usage.ru_utime + usage.ru_stime


def phase_ab(args: Result) -> Result:
    """Whole processes, alternating their order each round so drift cancels."""
    commands: dict[str, list[str]] = args["commands"]
    names = list(commands)
    out: Result = {n: [] for n in names}
    rss: Result = {n: [] for n in names}
    rcs: Result = {n: [] for n in names}
    cpu: Result = {n: [] for n in names}
    for name in names:  # warm-up: page cache, first import
        run_timed(commands[name])
    for i in range(int(args["repeats"])):
        order = names if i % 2 == 0 else list(reversed(names))
        for name in order:
            wall, kib, rc, seconds = run_measured(commands[name])
            out[name].append(wall)
            rss[name].append(kib)
            rcs[name].append(rc)
            cpu[name].append(seconds)
    return {"wall": out, "maxrss_kib": rss, "rc": rcs, "cpu": cpu}


def phase_syscalls(args: Result) -> Result:
    """System calls of each command and its children (`strace -c -f`): calls and errors.

    Counts do not depend on the machine's load; divided by the processes of the node
    they give the cost per process of each tool.
    """
    import shutil
    import tempfile

    if shutil.which("strace") is None:
        return {"available": False}
    out: Result = {"available": True}
    for name, argv in args["commands"].items():
        with tempfile.NamedTemporaryFile("r", suffix=".strace") as summary:
            subprocess.run(
                ["strace", "-c", "-f", "-o", summary.name, "--", *argv],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                timeout=600,
                check=False,
            )
            out[name] = strace_totals(summary.read())
    return out


def strace_totals(text: str) -> dict[str, Any]:
    """The total calls and errors, and the calls of each syscall, of a `strace -c` table."""
    calls: dict[str, int] = {}
    total = errors = 0
    for line in text.splitlines():
        cells = line.split()
        # "% time  seconds  usecs/call  calls  [errors]  syscall"; errors may be blank.
        if len(cells) not in (5, 6) or not cells[3].isdigit():
            continue
        if cells[-1] == "total":
            total, errors = int(cells[3]), int(cells[4]) if len(cells) == 6 else 0
        else:
            calls[cells[-1]] = int(cells[3])
    return {"total": total, "errors": errors, "calls": calls}


def _timed(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def phase_collectors(args: Result) -> Result:
    """Each collector in-process, alternated with the shell tool for the same facts."""
    from podpath.collectors.cni import collect_cni
    from podpath.collectors.commands import CommandRunner
    from podpath.collectors.conntrack import collect_conntrack
    from podpath.collectors.hostroot import HostRoot
    from podpath.collectors.netfilter import collect_netfilter
    from podpath.collectors.netlink.netns_scan import scan_network_namespaces
    from podpath.collectors.proc.namespaces import net_namespace_targets, scan_namespaces
    from podpath.collectors.proc.processes import scan_processes
    from podpath.collectors.runtime.pods import collect_pods
    from podpath.collectors.snapshot import take_snapshot
    from podpath.conntrack import parse_conntrack
    from podpath.netfilter.iptables_save import parse_ruleset
    from podpath.netfilter.kube_proxy import services
    from podpath.netfilter.kube_proxy_nft import nft_services
    from podpath.netfilter.nft import parse_nft_json

    cancel = threading.Event()
    runner = CommandRunner(host_root=Path("/"))
    times: dict[str, list[float]] = {}
    shell: dict[str, list[float]] = {}
    counts: dict[str, float] = {}

    def add(name: str, seconds: float) -> None:
        times.setdefault(name, []).append(seconds)

    with HostRoot("/") as host:
        for i in range(int(args["repeats"])):
            for part in ("lsns", "netns", "netfilter", "conntrack"):
                shell.setdefault(part, []).append(run_timed(["sh", BASELINE, part])[0])
            t = time.perf_counter()
            procs, _ = scan_processes(host, cancel)
            add("processes (/proc scan)", time.perf_counter() - t)
            t = time.perf_counter()
            scan = scan_namespaces(host, procs, cancel)
            add("namespaces", time.perf_counter() - t)
            root = scan.root_netns or 0
            t = time.perf_counter()
            targets = net_namespace_targets(host, scan)
            netns, _ = scan_network_namespaces(targets, root, cancel)
            add("netns: links+addrs+routes+neigh+fdb", time.perf_counter() - t)
            t = time.perf_counter()
            cni, _ = collect_cni(host, cancel)
            pods, _ = collect_pods(
                host,
                procs,
                root or None,
                cancel,
                namespaces=scan.namespaces,
                allocations=cni.allocations,
                redact=True,
            )
            add("pods (runtime state + CNI)", time.perf_counter() - t)
            t = time.perf_counter()
            nf = collect_netfilter(runner, None, cancel)
            add("netfilter collect (tools)", time.perf_counter() - t)
            text = "".join(d.text for d in nf.iptables)
            gc.collect()
            t = time.perf_counter()
            rulesets = [parse_ruleset(d.text) for d in nf.iptables]
            add("iptables parse", time.perf_counter() - t)
            t = time.perf_counter()
            svcs = [s for r in rulesets for s in services(r)]
            add("kube-proxy Service model", time.perf_counter() - t)
            if nf.nft is not None:
                t = time.perf_counter()
                nft_rs = parse_nft_json(nf.nft.json_text)
                add("nft parse", time.perf_counter() - t)
                t = time.perf_counter()
                nsvcs = nft_services(nft_rs)
                add("nft Service model", time.perf_counter() - t)
                counts["nft services"] = len(nsvcs)
                counts["nft json bytes"] = len(nf.nft.json_text)
            t = time.perf_counter()
            ct = collect_conntrack(runner, cancel)
            add("conntrack collect (tool)", time.perf_counter() - t)
            if ct.dump is not None:
                t = time.perf_counter()
                entries = parse_conntrack(ct.dump.text)
                add("conntrack parse (on demand)", time.perf_counter() - t)
                counts["conntrack entries"] = len(entries)
            t = time.perf_counter()
            take_snapshot()
            add("take_snapshot, in-process, cold", time.perf_counter() - t)
            counts.update(
                {
                    "processes": len(procs),
                    "netns": len(netns),
                    "pods": len(pods),
                    "iptables bytes": len(text),
                    "services": len(svcs),
                    "round": i,
                }
            )
    return {"times": times, "shell": shell, "counts": counts}


def phase_refresh(args: Result) -> Result:
    """take_snapshot(previous=...) on an unchanged node (the TUI's `r`) vs the shell script."""
    from podpath.collectors.snapshot import take_snapshot

    previous = take_snapshot()
    podpath: list[float] = []
    shell: list[float] = []
    for i in range(int(args["repeats"])):
        first_shell = i % 2 == 1
        if first_shell:
            shell.append(run_timed(["sh", BASELINE, "all"])[0])
        t = time.perf_counter()
        previous = take_snapshot(previous=previous)
        podpath.append(time.perf_counter() - t)
        if not first_shell:
            shell.append(run_timed(["sh", BASELINE, "all"])[0])
    return {"podpath": podpath, "shell": shell}


def phase_trace(args: Result) -> Result:
    """A Service trace through the loaded snapshot: cold (new index) and warm (kept index)."""
    from podpath.analysis.index import SnapshotIndex
    from podpath.snapshot.codec import load_path
    from podpath.trace.engine import trace
    from podpath.trace.probe import Probe

    t = time.perf_counter()
    snap = load_path(args["snapshot"])
    load_s = time.perf_counter() - t
    probe = Probe(args["source"], args["destination"], "tcp")
    cold: list[float] = []
    warm: list[float] = []
    branches = 0
    for _ in range(int(args["repeats"])):
        t = time.perf_counter()
        index = SnapshotIndex(snap)
        result = trace([index], probe)
        cold.append(time.perf_counter() - t)
        for _ in range(3):
            t = time.perf_counter()
            result = trace([index], probe)
            warm.append(time.perf_counter() - t)
        branches = len(result.branches)
    return {"cold": cold, "warm": warm, "load": [load_s], "branches": branches}


def phase_trace_cli(args: Result) -> Result:
    """`podpath trace --snapshot --json` end to end, as a user runs it: a snapshot traced
    before (its index read from the default cache, $XDG_CACHE_HOME/podpath/trace-index),
    the first trace of the snapshot (parses it, keeps its index), and `--no-cache` (parses
    it, keeps nothing).

    Wall and CPU (user + system) of each run, the three kinds in a changing order so that
    the host's load drifts over all alike; the default cache is a temporary directory.
    """
    import shutil
    import tempfile

    argv = ["podpath", "trace", "--snapshot", args["snapshot"], "--from", args["source"]]
    argv += ["--to", args["destination"], "--json"]
    kinds = {"cached": argv, "first": argv, "parsed": [*argv, "--no-cache"]}
    runs: dict[str, tuple[list[float], list[float]]] = {k: ([], []) for k in kinds}
    before = os.environ.get("XDG_CACHE_HOME")
    with tempfile.TemporaryDirectory(prefix="podpath-bench-cache-") as home:
        os.environ["XDG_CACHE_HOME"] = home
        try:
            _wall, _kib, rc, _cpu = run_measured(argv)  # keeps the index "cached" reads
            for i in range(int(args["repeats"])):
                order = ["parsed", "first", "cached"]
                for kind in order if i % 2 == 0 else reversed(order):
                    if kind == "first":
                        shutil.rmtree(os.path.join(home, "podpath"), ignore_errors=True)
                    wall, _kib, code, cpu = run_measured(kinds[kind])
                    if code != 0:
                        raise RuntimeError(f"podpath trace ({kind}) exited {code}")
                    runs[kind][0].append(wall)
                    runs[kind][1].append(cpu)
        finally:
            if before is None:
                os.environ.pop("XDG_CACHE_HOME", None)
            else:
                os.environ["XDG_CACHE_HOME"] = before
    out: Result = {"rc": rc}
    for kind, (walls, cpus) in runs.items():
        out[kind], out[f"cpu_{kind}"] = walls, cpus
    return out


def phase_doctor(args: Result) -> Result:
    """`podpath doctor --json --snapshot` on the node's snapshot: wall and CPU, and its coverage."""
    argv = [sys.executable, "-m", "podpath", "doctor", "--json", "--snapshot", args["snapshot"]]
    wall: list[float] = []
    cpu: list[float] = []
    for _ in range(int(args["repeats"])):
        w, _kib, rc, c = run_measured(argv)
        if rc not in (0, 1):  # 1: something critical was found, which is an answer
            raise RuntimeError(f"podpath doctor exited {rc}")
        wall.append(w)
        cpu.append(c)
    done = subprocess.run(argv, capture_output=True, text=True, timeout=600, check=False)
    report = json.loads(done.stdout)
    return {"wall": wall, "cpu": cpu, "coverage": report["coverage"], "summary": report["summary"]}


async def _after_refresh(app: Any) -> None:
    """Wait until the current screen has painted once after now."""
    done = asyncio.Event()
    app.screen.call_after_refresh(done.set)
    await done.wait()


async def _until(ready: Any, timeout: float = 120.0, step: float = 0.005) -> None:
    """Poll every `step` seconds until ready() is true."""
    end = time.perf_counter() + timeout
    while not ready():
        if time.perf_counter() > end:
            raise TimeoutError("the screen never became ready")
        await asyncio.sleep(step)


def _services_rows_shown(app: Any) -> bool:
    from podpath.tui.rows.model import MORE_KEY
    from podpath.tui.screens.base import TableScreen
    from podpath.tui.widgets.table import RowTable

    screen = app.screen
    if not isinstance(screen, TableScreen):
        return False
    table = next(iter(screen.query("#table").results(RowTable)), None)
    return table is not None and table.row_count > 0 and table.selected_key not in (None, MORE_KEY)


async def _key_to_paint(app: Any, key: str, char: str | None, done: Any) -> float:
    """A key sent as the terminal driver sends it, until its effect is painted.

    Pilot's press() and pause() each wait for the process to be CPU-idle in 20 ms steps
    (three waits a key), which is the test harness's time, not the app's.
    """
    from textual import events

    t = time.perf_counter()
    app._driver.send_message(events.Key(key, char))
    await _until(done, step=0.001)
    await _after_refresh(app)
    return time.perf_counter() - t


# Home's menu rows whose counts wait for the parse worker (tui/registry.py).
_COUNTED = ("go:svc", "go:ct", "go:problems")


def _counts_shown(app: Any) -> bool:
    """True when home's table shows the Services, conntrack and problems counts: the
    problems count final, not the fact checks' lower bound shown while the doctor's
    sweep still runs ("N+ checking paths…")."""
    from podpath.tui.registry import CHECKING, PENDING
    from podpath.tui.screens.node import NodeScreen

    screen = app.screen
    if not isinstance(screen, NodeScreen):
        return False
    cells = screen.table._cells
    return all(
        key in cells and cells[key][1].text != PENDING and CHECKING not in cells[key][1].text
        for key in _COUNTED
    )


class _StallMeter:
    """The longest time the event loop went without running a 5 ms timer: how long a
    frame could not be painted (a worker holding the GIL, a blocking call on the loop)."""

    def __init__(self) -> None:
        self.longest = 0.0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start ticking on the running loop."""
        self._task = asyncio.get_running_loop().create_task(self._tick())

    async def _tick(self) -> None:
        last = time.perf_counter()
        while True:
            await asyncio.sleep(0.005)
            now = time.perf_counter()
            self.longest = max(self.longest, now - last - 0.005)
            last = now

    def stop(self) -> float:
        """Stop ticking; the longest stall seen."""
        if self._task is not None:
            self._task.cancel()
        return self.longest


async def _tui_once(path: str, snap: Any, args: Result) -> dict[str, float]:
    """Two views of each TUI figure: what the user sees painted, and Pilot's time to idle.

    Pilot's pause() waits until the whole process stops using CPU, so it also counts the
    background worker that parses Services and conntrack after the first paint.
    """
    from podpath.tui.app import create_app
    from podpath.tui.screens.base import TableScreen
    from podpath.tui.source import static_source

    needle = args["needle"]
    t0 = time.perf_counter()
    cpu0 = time.process_time() + _children_cpu()
    app = create_app(static_source(snap, "file", path))
    out: dict[str, float] = {}
    async with app.run_test(size=(160, 48)) as pilot:
        await _after_refresh(app)
        out["first_paint"] = time.perf_counter() - t0
        stalls = _StallMeter()
        stalls.start()
        # Polled every 5 ms, then painted: the moment home shows all three counts.
        await _until(lambda: _counts_shown(app))
        await _after_refresh(app)
        out["counts_shown"] = time.perf_counter() - t0
        # With the doctor's child (podpath.tui.doctor_ahead), reaped once its findings
        # are read: its CPU (and its own child's) is the app's too.
        out["counts_shown_cpu"] = time.process_time() + _children_cpu() - cpu0
        await _until(lambda: app.loaded is not None and app.loaded.ready.is_set())
        out["views_ready"] = time.perf_counter() - t0
        out["parse_stall"] = stalls.stop()
        await pilot.pause()
        out["first_frame"] = time.perf_counter() - t0
        t = time.perf_counter()
        app.open_screen("svc")
        await _until(lambda: _services_rows_shown(app))
        await _after_refresh(app)
        out["services_rows"] = time.perf_counter() - t
        await pilot.pause()
        await pilot.pause()
        out["services_screen"] = time.perf_counter() - t
        await pilot.press("slash")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, TableScreen)
        typed = [needle[: i + 1] for i in range(len(needle))]
        keys: list[float] = []
        for ch, text in zip(needle, typed, strict=True):
            keys.append(await _key_to_paint(app, ch, ch, lambda t=text: screen.needle == t))
        for text in typed[-2::-1] + [""]:
            keys.append(
                await _key_to_paint(app, "backspace", None, lambda t=text: screen.needle == t)
            )
        out["filter_paint"] = sorted(keys)[len(keys) // 2]
        out["filter_paint_max"] = max(keys)
        pilot_keys: list[float] = []
        for ch in needle:
            t = time.perf_counter()
            await pilot.press(ch)
            await pilot.pause()
            pilot_keys.append(time.perf_counter() - t)
        for _ in needle:
            t = time.perf_counter()
            await pilot.press("backspace")
            await pilot.pause()
            pilot_keys.append(time.perf_counter() - t)
        out["filter_key"] = sorted(pilot_keys)[len(pilot_keys) // 2]
        if "source" in args:  # the profile phase profiles start-up and filtering only
            out["trace_shown"], out["trace_stall"] = await _trace_in_tui(
                app, args["source"], args["destination"]
            )
    return out


def _children_cpu() -> float:
    """User and system CPU of this process's reaped children (and theirs)."""
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime


async def _trace_in_tui(app: Any, source: str, destination: str) -> tuple[float, float]:
    """Trace opened with both ends filled (it runs at once, in a worker): the time until
    its branches are painted, and the longest event-loop stall meanwhile."""
    from podpath.tui.screens.trace import TraceScreen

    def shown() -> bool:
        screen = app.screen
        return isinstance(screen, TraceScreen) and screen.trace is not None

    stalls = _StallMeter()
    stalls.start()
    t = time.perf_counter()
    app.start_trace(source, destination)
    await _until(shown)
    await _after_refresh(app)
    return time.perf_counter() - t, stalls.stop()


def phase_tui(args: Result) -> Result:
    """TUI headless with Pilot on the scale snapshot."""
    from podpath.snapshot.codec import load_path

    snap = load_path(args["snapshot"])
    runs = []
    for _ in range(int(args["repeats"])):
        runs.append(asyncio.run(_tui_once(args["snapshot"], snap, args)))
        # A user's TUI process holds one app. The app moves what it loads out of the
        # cyclic GC's reach (gc.freeze) and is itself cyclic: without this, each repeat
        # ran (and forked its doctor child) beside every earlier app's heap, ~240 MiB
        # each at 10k Services, frozen for good.
        gc.unfreeze()
        gc.collect()
    return {k: [r[k] for r in runs] for k in runs[0]}


def phase_snapfile(args: Result) -> Result:
    """Write the scale snapshot with the CLI; report its size."""
    path = args["snapshot"]
    wall, kib, rc = run_timed(["podpath", "snapshot", "-o", path])
    return {"size": os.path.getsize(path), "wall": wall, "maxrss_kib": kib, "rc": rc}


def phase_profile(args: Result) -> Result:
    """cProfile one target inside the node; the top functions by cumulative time, as text."""
    import cProfile
    import io
    import pstats

    target = args["target"]
    prof = cProfile.Profile()
    if target == "snapshot":
        from podpath.collectors.snapshot import take_snapshot

        prof.runcall(take_snapshot)
    elif target == "services":
        from podpath.analysis.index import SnapshotIndex
        from podpath.snapshot.codec import load_path

        index = SnapshotIndex(load_path(args["snapshot"]))
        prof.runcall(lambda: index.services)
    elif target == "tui":
        from podpath.snapshot.codec import load_path

        snap = load_path(args["snapshot"])
        tui_args = {"needle": "svc-12", **args}
        prof.runcall(lambda: asyncio.run(_tui_once(args["snapshot"], snap, tui_args)))
    elif target == "ls-namespaces":
        from podpath.cli import main as cli_main

        prof.runcall(cli_main, ["ls", "namespaces", "--json"])
    out = io.StringIO()
    pstats.Stats(prof, stream=out).sort_stats("cumulative").print_stats(int(args.get("top", 40)))
    return {"text": out.getvalue()}


PHASES: dict[str, Callable[[Result], Result]] = {
    "ab": phase_ab,
    "syscalls": phase_syscalls,
    "collectors": phase_collectors,
    "refresh": phase_refresh,
    "trace": phase_trace,
    "trace_cli": phase_trace_cli,
    "doctor": phase_doctor,
    "tui": phase_tui,
    "snapfile": phase_snapfile,
    "profile": phase_profile,
}


def main(argv: Sequence[str]) -> int:
    """Run one phase; JSON result on the last stdout line."""
    result = PHASES[argv[0]](json.loads(argv[1]))
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
