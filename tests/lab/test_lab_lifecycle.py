"""Labs come up, refuse duplicates, persist their record, and leave nothing behind."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from podpath.lab import Lab, LabError, LabSpec, down, load, status, up
from podpath.lab import state as lab_state
from podpath.lab.records import ServiceRecord

pytestmark = pytest.mark.lab


def test_second_up_with_a_live_name_fails_clearly(shared_lab: Lab) -> None:
    """up() with the name of a live lab raises LabError saying it is already up."""
    with pytest.raises(LabError, match="already up"):
        up(LabSpec(shared_lab.name))
    assert shared_lab.alive()


def test_load_returns_the_persisted_record(shared_lab: Lab) -> None:
    """load(name) in this process reads back exactly the record up() built."""
    assert load(shared_lab.name).record == shared_lab.record


def test_status_lists_the_lab_as_up(shared_lab: Lab) -> None:
    """status() lists the shared lab, alive, with its pod count."""
    mine = [s for s in status() if s.name == shared_lab.name]
    assert len(mine) == 1 and mine[0].alive and mine[0].pods == len(shared_lab.pods)


def test_cli_probe_from_another_process(shared_lab: Lab) -> None:
    """`podpath lab probe` in a fresh process reaches web through its Service name."""
    src = shared_lab.pods_on("node2")[0].name
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "podpath",
            "lab",
            "probe",
            "--name",
            shared_lab.name,
            src,
            "default/web",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0 and "served by pod default/web-" in done.stdout, done.stderr


def test_cli_exec_runs_inside_the_node(shared_lab: Lab) -> None:
    """`podpath lab exec NODE -- hostname` prints the node's hostname."""
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "podpath",
            "lab",
            "exec",
            "--name",
            shared_lab.name,
            "node2",
            "--",
            "hostname",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (done.returncode, done.stdout.strip()) == (0, "node2"), done.stderr


def _host_mounts() -> str:
    return Path("/proc/self/mountinfo").read_text()


def test_host_gw_lab_crosses_nodes_and_down_leaves_nothing(make_lab: Callable[..., Lab]) -> None:
    """A host-gw lab routes pod to pod across nodes; after down no process, cgroup or state is left."""
    lab = make_lab(nodes=2, pods=1, services=2, overlay="host-gw")
    src, dst = lab.pods_on("node1")[0], lab.pods_on("node2")[0]
    result = lab.probe(src.name, dst.ip)
    assert result.ok and result.served_by == dst.ref, result
    route = lab.exec("node1", ["ip", "route", "show", dst.ip.rsplit(".", 1)[0] + ".0/24"]).stdout
    assert f"via {lab.node('node2').address} dev eth0" in route
    pids = [n.init_pid for n in lab.record.nodes] + [p.pause_host_pid for p in lab.pods]
    pids += [n.containerd_pid for n in lab.record.nodes if n.containerd_pid]
    pids.append(lab.record.underlay_pid)
    cgroup_dirs = list(lab.record.cgroup_dirs)
    down(lab.name)
    assert [pid for pid in pids if _running(pid)] == []
    assert [d for d in cgroup_dirs if os.path.exists(d)] == []
    assert [d for d in cgroup_dirs if os.path.exists(os.path.dirname(d))] == []
    assert not lab_state.lab_dir(lab.name).exists()
    assert f"podpath-{lab.nodes[0].name}" not in _host_mounts()


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state not in ("Z", "X")


def test_down_of_an_unknown_lab_fails_clearly() -> None:
    """down() of a name with no lab raises LabError naming it."""
    with pytest.raises(LabError, match="no lab named 'nope-"):
        down(f"nope-{os.getpid()}")


def test_invalid_spec_is_refused_before_anything_is_built() -> None:
    """A bad name or overlay raises LabError and creates no state."""
    with pytest.raises(LabError, match="invalid lab name"):
        up(LabSpec("Bad Name!"))
    with pytest.raises(LabError, match="--overlay"):
        up(LabSpec(f"x{os.getpid()}", overlay="bgp"))
    assert not lab_state.lab_dir(f"x{os.getpid()}").exists()


@pytest.mark.parametrize("runtime", ["containerd", "runc-imitation"])
def test_failed_up_tears_down_what_it_built(monkeypatch: pytest.MonkeyPatch, runtime: str) -> None:
    """When a pod fails half way through up(), the nodes, daemons, cgroups and state go."""
    from podpath.lab import cri_pods
    from podpath.lab import lab as lab_module
    from podpath.lab import pods as pods_module

    started: list[tuple[int, list[str]]] = []
    real_start = lab_module.start_node  # type: ignore[attr-defined]
    real_make, real_cri_make = pods_module.make_pod, cri_pods.make_pod

    def spy_start(lab: str, node: str, log: Path) -> tuple[int, int, list[str]]:
        pid, start, dirs = real_start(lab, node, log)
        started.append((pid, dirs))
        return pid, start, dirs

    def failing_make(init_pid: int, conf: dict[str, object], plan: pods_module.PodPlan) -> object:
        if plan.app == "web":
            raise LabError("injected failure")
        return real_make(init_pid, conf, plan)

    def failing_cri_make(
        init_pid: int,
        socket: str,
        plan: pods_module.PodPlan,
        services: Sequence[ServiceRecord] = (),
    ) -> object:
        if plan.app == "web":
            raise LabError("injected failure")
        return real_cri_make(init_pid, socket, plan, services)

    monkeypatch.setattr(lab_module, "start_node", spy_start)
    monkeypatch.setattr(pods_module, "make_pod", failing_make)
    monkeypatch.setattr(cri_pods, "make_pod", failing_cri_make)
    name = f"t{os.getpid()}-fail"
    with pytest.raises(LabError, match="injected failure"):
        up(LabSpec(name, pods=2, services=2, runtime=runtime))
    assert started, "the node was never started"
    for pid, dirs in started:
        assert not _running(pid)
        # A cgroup directory can only be removed once no process is left in it:
        # containerd, its shims and the pause processes all ran below these.
        assert [d for d in dirs if os.path.exists(d)] == []
    assert not lab_state.lab_dir(name).exists()


def test_ctrl_c_during_up_leaves_nothing() -> None:
    """SIGINT to `podpath lab up` half way through: exit 130, no process, cgroup, mount or state."""
    import signal
    import time

    from podpath.lab.cgroups import hierarchies

    name = f"t{os.getpid()}-sigint"
    proc = subprocess.Popen(
        [sys.executable, "-m", "podpath", "lab", "up", "--name", name, "--pods", "40"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        # Interrupt once the node exists and pods are being made (40 pods: `up` then
        # takes seconds, so the signal lands half way even on a fast machine).
        while not list(lab_state.lab_dir(name).glob("*")) and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)
        proc.send_signal(signal.SIGINT)
        _out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        _safe_cleanup(name)
    assert proc.returncode == 130, err
    assert not lab_state.lab_dir(name).exists()
    # Zombies are dead already (their parent, PID 1 once `up` exited, reaps them).
    left = [
        (p.name, _read(p / "cmdline"))
        for p in Path("/proc").iterdir()
        if p.name.isdigit()
        and f"podpath-lab-{name}" in _read(p / "cgroup")
        and _running(int(p.name))
    ]
    assert left == []
    dirs = [
        Path(h.mountpoint + h.own_path.rstrip("/")) / f"podpath-lab-{name}" for h in hierarchies()
    ]
    assert [d for d in dirs if d.exists()] == []
    assert name not in _host_mounts()


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def _safe_cleanup(name: str) -> None:
    # Only if the test failed half way: never leave a lab behind.
    if lab_state.lab_dir(name).exists():
        try:
            down(name)
        except LabError:
            pass


def _ns_holders(inodes: set[int], before: int) -> list[str]:
    """Processes started before tick `before` still holding any of these namespace inodes,
    or host mounts of them.

    A freed namespace's inode is reused: on a machine where other labs come and go, a
    process started after `lab down` began may sit in a new namespace with an old inode
    number (seen: another session's `busybox ping`); it cannot be one the lab left.
    """
    from podpath.lab import procs

    held = []
    for p in Path("/proc").iterdir():
        if not p.name.isdigit() or not _running(int(p.name)):
            continue
        began = procs.start_time(int(p.name))
        if began is None or began >= before:
            continue
        for kind in ("net", "mnt"):
            try:
                if os.stat(p / "ns" / kind).st_ino in inodes:
                    what = _read(p / "cmdline").replace("\0", " ").strip()
                    held.append(f"pid {p.name} ({kind}) {what[:120]}")
            except OSError:
                continue
    for line in _host_mounts().splitlines():
        if " - nsfs " in line and any(f"[{ino}]" in line for ino in inodes):
            held.append(line)
    return held


@pytest.mark.parametrize("ledger", ["kept", "process lines garbled"])
def test_down_of_a_lab_whose_record_is_corrupt_leaves_nothing(
    make_lab: Callable[..., Lab], ledger: str
) -> None:
    """`podpath lab down` of a lab whose lab.json is garbage ends every process of it (from
    its ledger, or from its cgroups when the ledger's process lines are garbled too), and
    no netns, mount, cgroup or state of it is left; it says the record was unreadable."""
    lab = make_lab(nodes=2, pods=2, services=2)
    record = lab.record
    pids = {n.init_pid for n in record.nodes} | {p.pause_host_pid for p in lab.pods}
    pids |= {n.containerd_pid for n in record.nodes if n.containerd_pid}
    pids.add(record.underlay_pid)
    inodes = {
        os.stat(f"/proc/{n.init_pid}/ns/{kind}").st_ino
        for n in record.nodes
        for kind in ("net", "mnt")
    }
    inodes |= {os.stat(f"/proc/{p.pause_host_pid}/ns/net").st_ino for p in lab.pods}
    inodes.add(os.stat(f"/proc/{record.underlay_pid}/ns/net").st_ino)
    d = lab_state.lab_dir(lab.name)
    (d / "lab.json").write_bytes(b'{"spec": \xff\x00 not json')
    if ledger != "kept":
        path = d / lab_state.LEDGER_FILE
        lines = path.read_text().splitlines()
        path.write_text(
            "".join(
                (line.replace('"pid"', '"p\x00id"') if '"process"' in line else line) + "\n"
                for line in lines
            )
        )
        assert lab_state.ledger(lab.name).processes == ()
    # Now, in clock ticks since boot (the unit of a process's start time).
    down_began = int(float(Path("/proc/uptime").read_text().split()[0]) * os.sysconf("SC_CLK_TCK"))
    done = subprocess.run(
        [sys.executable, "-m", "podpath", "lab", "down", "--name", lab.name],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "lab state is unreadable" in done.stderr
    assert [pid for pid in pids if _running(pid)] == []
    assert _ns_holders(inodes, down_began) == []
    assert [c for c in record.cgroup_dirs if os.path.exists(c)] == []
    assert not d.exists()


def test_down_spares_a_process_whose_pid_was_reused(make_lab: Callable[..., Lab]) -> None:
    """A ledger entry whose PID now names another process (another start time) is not
    killed by `lab down`; the lab's own processes are."""
    lab = make_lab(nodes=1, pods=1, services=2)
    other = subprocess.Popen(["sleep", "300"])
    try:
        from podpath.lab import procs

        start = procs.start_time(other.pid)
        assert start is not None
        lab_state.note_started(lab.name, "reused", other.pid, start - 1)
        down(lab.name)
        assert other.poll() is None and _running(other.pid)
        assert not _running(lab.nodes[0].init_pid)
    finally:
        other.kill()
        other.wait()
