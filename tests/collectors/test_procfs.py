"""The /proc scan survives churn, zombies, kernel threads and missing privileges."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import pytest

from podpath.collectors.hostroot import HostRoot
from podpath.collectors.proc.processes import (
    parse_cmdline,
    parse_ns_link,
    parse_stat,
    pick_cgroup,
    scan_processes,
)

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")


@pytest.fixture
def host() -> Iterator[HostRoot]:
    """The machine's own root."""
    with HostRoot("/") as h:
        yield h


def test_parse_stat_hostile_comm() -> None:
    """comm with spaces, parentheses and invalid UTF-8 is cut at the last ')'."""
    raw = b"42 (a) b (\xff)) S 7 42 42 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 12345 0 0"
    st = parse_stat(raw)
    assert st.comm.encode("utf-8", "surrogateescape") == b"a) b (\xff)"
    assert (st.state, st.ppid, st.start_time) == ("S", 7, 12345)


def test_parse_cmdline_and_ns_link() -> None:
    """cmdline splits on NUL; ns links parse to (type, inode)."""
    assert parse_cmdline(b"sleep\x00100\x00") == ("sleep", "100")
    assert parse_cmdline(b"") == ()
    assert parse_ns_link("net:[4026531840]") == ("net", 4026531840)
    assert parse_ns_link("socket:[12]") == ("socket", 12)
    assert parse_ns_link("garbage") is None


def test_pick_cgroup_prefers_specific_path() -> None:
    """v2 unified path wins; on hybrid hosts a v1 path replaces a bare '/'."""
    assert pick_cgroup(b"0::/kubepods/pod1/abc\n") == "/kubepods/pod1/abc"
    hybrid = b"4:memory:/kubepods/x\n1:name=systemd:/kubepods/x\n0::/\n"
    assert pick_cgroup(hybrid) == "/kubepods/x"


def test_scan_matches_own_process(host: HostRoot) -> None:
    """Our own process is listed with the identity and namespaces /proc shows."""
    procs, _ = scan_processes(host)
    me = next(p for p in procs if p.pid == os.getpid())
    assert me.cmdline[0] == sys.argv[0] or me.cmdline  # python's argv as the kernel sees it
    assert me.start_time == parse_stat(open(f"/proc/{os.getpid()}/stat", "rb").read()).start_time
    assert me.namespaces["net"] == os.stat(f"/proc/{os.getpid()}/ns/net").st_ino
    assert me.uid == os.geteuid()


def test_churn_no_exceptions_and_no_false_gone(host: HostRoot) -> None:
    """Row 1: short-lived processes spawned while scanning 60x: no exception, we never vanish."""
    stop = threading.Event()
    errors: list[BaseException] = []

    def spawner() -> None:
        while not stop.is_set():
            try:
                subprocess.run(["sleep", "0.001"], timeout=5, check=False)
            except BaseException as err:  # noqa: BLE001 - collected and asserted below
                errors.append(err)

    threads = [threading.Thread(target=spawner) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        for _ in range(60):
            procs, gaps = scan_processes(host)
            assert os.getpid() in {p.pid for p in procs}
            assert all(g.kind != "error" for g in gaps), gaps
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert not errors


def test_zombie_listed_with_na_fields(host: HostRoot) -> None:
    """Row 2: a zombie child is listed (state Z, n/a namespaces), not dropped as gone."""
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    try:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            if open(f"/proc/{pid}/stat", "rb").read().split(b") ")[1][:1] == b"Z":
                break
            time.sleep(0.01)
        procs, _ = scan_processes(host)
        zombie = next(p for p in procs if p.pid == pid)
        assert zombie.state == "Z"
        # exit_task_namespaces() dropped its nsproxy: net/mnt/... are n/a; pid and user
        # come from the task's struct pid and cred, which a zombie still has.
        assert "net" not in zombie.namespaces and "mnt" not in zombie.namespaces
        assert zombie.cmdline == ()
    finally:
        os.waitpid(pid, 0)


def test_kernel_threads_listed(host: HostRoot) -> None:
    """Row 2: kernel threads (kthreadd, PID 2 in the initial pid ns) are listed with no cmdline."""
    if not os.path.exists("/proc/2/stat") or b"kthreadd" not in open("/proc/2/stat", "rb").read():
        pytest.skip("not in the initial pid namespace")
    procs, _ = scan_processes(host)
    kthreadd = next(p for p in procs if p.pid == 2)
    assert kthreadd.comm == "kthreadd" and kthreadd.cmdline == () and kthreadd.ppid == 0


def test_cancel_stops_scan(host: HostRoot) -> None:
    """A set cancel Event ends the scan with an explicit gap."""
    cancel = threading.Event()
    cancel.set()
    procs, gaps = scan_processes(host, cancel)
    assert procs == ()
    assert any("cancelled" in g.reason for g in gaps)


_SCAN_SCRIPT = """
import json
from podpath.collectors.hostroot import HostRoot
from podpath.collectors.proc.processes import scan_processes
from podpath.collectors.proc.namespaces import scan_namespaces
h = HostRoot("/")
procs, gaps = scan_processes(h)
scan = scan_namespaces(h, procs)
print(json.dumps({"n": len(procs),
                  "gaps": [[g.subject, g.kind, g.capability] for g in gaps + scan.gaps]}))
"""


def _run_restricted(prefix: list[str]) -> dict[str, object]:
    done = subprocess.run(
        [*prefix, "--", sys.executable, "-c", _SCAN_SCRIPT],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, object] = json.loads(done.stdout)
    return result


@pytest.fixture
def other_users_process() -> Iterator[int]:
    """A process owned by nobody, whose namespaces root without caps cannot read."""
    proc = subprocess.Popen(
        ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "--", "sleep", "60"]
    )
    time.sleep(0.1)
    yield proc.pid
    proc.kill()
    proc.wait(timeout=10)


@needs_root
@pytest.mark.skipif(shutil.which("setpriv") is None, reason="setpriv missing")
def test_unprivileged_scan_names_capability(other_users_process: int) -> None:
    """Row 10: as nobody, the scan completes and its gaps name CAP_SYS_PTRACE."""
    result = _run_restricted(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"])
    assert isinstance(result["n"], int) and result["n"] > 1
    gaps = result["gaps"]
    assert isinstance(gaps, list)
    assert any(g[1] == "permission" and g[2] == "CAP_SYS_PTRACE" for g in gaps), gaps


@needs_root
@pytest.mark.skipif(shutil.which("setpriv") is None, reason="setpriv missing")
def test_root_without_capabilities_names_capability(other_users_process: int) -> None:
    """Row 10: root with an empty bounding set cannot read nobody's namespaces: a named gap."""
    result = _run_restricted(["setpriv", "--bounding-set=-all", "--inh-caps=-all"])
    gaps = result["gaps"]
    assert isinstance(gaps, list)
    assert any(g[1] == "permission" and g[2] == "CAP_SYS_PTRACE" for g in gaps), gaps
