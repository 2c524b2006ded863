"""Sockets and listeners on real lab nodes, against `ss` and real traffic.

`podpath ls sockets` and `podpath snapshot` run inside a node; their listeners are
compared with `ss -H -tulpn` run in each pod's netns (nsenter) in the same node. A
port nothing listens on is traced and then probed for real: the trace's "refused" must
be the kernel's "connection refused". A process with a hostile name listens in a pod
of a private lab: it is named literally in the JSON and escaped in the text.
"""

from __future__ import annotations

import json
import re
import sys
from typing import TYPE_CHECKING, Any

import pytest

from podpath.analysis.index import SnapshotIndex
from podpath.snapshot import codec
from podpath.trace.engine import trace
from podpath.trace.probe import Probe

if TYPE_CHECKING:
    from collections.abc import Callable

    from podpath.lab import Lab, PodRecord

pytestmark = pytest.mark.lab

# ss -p's ("comm",pid=N,fd=M) entries.
_USER = re.compile(r'\("([^"]*)",pid=(\d+),fd=(\d+)\)')
HOSTILE = "ev\x1b[31m[b]il"  # 12 bytes: fits in comm


def _ss_listeners(lab: Lab, pod: PodRecord) -> set[tuple[str, str, str, int]]:
    """(netid, local, comm, pid) of every listening socket ss finds in the pod's netns."""
    argv = ["nsenter", f"--net={pod.netns_path}", "--", "ss", "-H", "-tulpn"]
    out = lab.exec(pod.node, argv).stdout
    found = set()
    for line in out.splitlines():
        if not line.strip():
            continue
        netid, _state, _rq, _sq, local = line.split()[:5]
        for comm, pid, _fd in _USER.findall(line):
            found.add((netid, local, comm, int(pid)))
    return found


@pytest.fixture(scope="module")
def listing(shared_lab: Lab, run_podpath: Any) -> list[dict[str, Any]]:
    """`podpath ls sockets --listening --json` run inside node1."""
    done = run_podpath(shared_lab, "node1", "ls", "sockets", "--listening", "--json")
    assert done.returncode == 0, done.stderr
    rows: list[dict[str, Any]] = json.loads(done.stdout)["sockets"]
    return rows


@pytest.fixture(scope="module")
def node1(shared_lab: Lab, run_podpath: Any) -> SnapshotIndex:
    """A full snapshot of node1, taken by the real CLI inside the node."""
    done = run_podpath(shared_lab, "node1", "snapshot", "-o", "-")
    assert done.returncode == 0, done.stderr
    return SnapshotIndex(codec.loads(done.stdout))


def test_listeners_of_every_pod_equal_ss(shared_lab: Lab, listing: list[dict[str, Any]]) -> None:
    """For each pod on node1: netid, local address as ss writes it, comm and PID, as ss sees them."""
    from podpath.analysis.sockets import endpoint

    for pod in shared_lab.pods_on("node1"):
        ours = {
            (
                r["netid"],
                endpoint(r["family"], r["local"], r["local_port"], r["v6only"]),
                o["comm"],
                o["pid"],
            )
            for r in listing
            if r["pod"] == pod.ref
            for o in r["owners"]
        }
        want = _ss_listeners(shared_lab, pod)
        assert ours == want, pod.ref
        # The lab's apps: busybox httpd on :80, the DNS-like echo on :53 over TCP and UDP.
        ports = {local.rsplit(":", 1)[1] for _n, local, _c, _p in want}
        assert ports == ({"80"} if pod.app == "web" else {"53"}), (pod.ref, want)


def test_listener_owners_are_the_pods_app_container(
    shared_lab: Lab, listing: list[dict[str, Any]]
) -> None:
    """Each pod's listening process belongs to its app container (process -> container)."""
    for pod in shared_lab.pods_on("node1"):
        rows = [r for r in listing if r["pod"] == pod.ref]
        assert rows, pod.ref
        names = {o["container"] for r in rows for o in r["owners"]}
        assert names == {pod.containers[0][0]}, (pod.ref, names)
        assert all(o["pod"] == pod.ref for r in rows for o in r["owners"])


def test_trace_to_a_listener_names_its_process_and_container(
    shared_lab: Lab, node1: SnapshotIndex
) -> None:
    """Pod -> web pod :80 is delivered and names httpd, the PID ss shows, and container web."""
    web = next(p for p in shared_lab.pods_on("node1") if p.app == "web")
    src = next(p for p in shared_lab.pods_on("node1") if p.ref != web.ref)
    (branch,) = trace([node1], Probe(src.ref, f"{web.ip}:80")).branches
    assert branch.verdict == "delivered", branch.reason
    (_netid, _local, comm, pid) = next(iter(_ss_listeners(shared_lab, web)))
    assert f"accepted by {comm} (pid {pid}) in container {web.containers[0][0]}" in branch.reason


def test_port_without_listener_is_refused_and_the_kernel_agrees(
    shared_lab: Lab, node1: SnapshotIndex
) -> None:
    """Pod -> web pod :8080: the trace says refused (RST); a real connection is refused too."""
    web = next(p for p in shared_lab.pods_on("node1") if p.app == "web")
    src = next(p for p in shared_lab.pods_on("node1") if p.ref != web.ref)
    (branch,) = trace([node1], Probe(src.ref, f"{web.ip}:8080")).branches
    assert branch.verdict == "refused", branch.reason
    assert branch.reason == (
        f"delivered to pod {web.ref}, but nothing listens on {web.ip}:8080/tcp"
        " → RST (connection refused)"
    )
    answer = shared_lab.probe(src.ref, web.ip, 8080)
    assert not answer.ok and "refused" in answer.error.lower(), answer
    # ... while port 80 of the same pod answers, as the trace said it would.
    assert shared_lab.probe(src.ref, web.ip, 80).ok


def test_udp_to_a_port_nothing_is_bound_to_is_port_unreachable(
    shared_lab: Lab, node1: SnapshotIndex
) -> None:
    """UDP to a web pod's :53 (nothing bound): ICMP port unreachable; the dns pod's :53 answers."""
    web = next(p for p in shared_lab.pods_on("node1") if p.app == "web")
    dns = next(p for p in shared_lab.pods if p.app == "dns" and p.node == "node1")
    src = next(p for p in shared_lab.pods_on("node1") if p.ref not in (web.ref, dns.ref))
    (branch,) = trace([node1], Probe(src.ref, f"{web.ip}:53", proto="udp")).branches
    assert branch.verdict == "refused" and branch.reason.endswith("ICMP port unreachable")
    (ok,) = trace([node1], Probe(src.ref, f"{dns.ip}:53", proto="udp")).branches
    assert ok.verdict == "delivered" and "received by python3" in ok.reason
    assert shared_lab.probe(src.ref, dns.ip, 53, proto="udp").ok


# The server for the hostile-name test: listens on :7777, renames itself, stays.
_HOSTILE_SERVER = r"""
import socket, sys, time
s = socket.socket(); s.bind(("0.0.0.0", 7777)); s.listen(4)
open("/proc/self/comm", "w").write(sys.argv[1])
time.sleep(3600)
"""


def test_hostile_process_name_is_shown_literally(
    make_lab: Callable[..., Lab], run_podpath: Any
) -> None:
    """A listener named with ESC and markup: literal in --json, escaped in text, named by the trace."""
    lab = make_lab(nodes=1, pods=2, services=2)
    pod, src = lab.pods_on("node1")[:2]
    script = f'exec nsenter --net={pod.netns_path} -- {sys.executable} -c "$0" "$1" </dev/null >/dev/null 2>&1 &'
    lab.exec("node1", ["sh", "-c", script, _HOSTILE_SERVER, HOSTILE])
    for _ in range(50):
        if any(c == HOSTILE for _n, _l, c, _p in _ss_listeners(lab, pod)):
            break
        lab.exec("node1", ["sleep", "0.1"])
    text = run_podpath(lab, "node1", "ls", "sockets", "--listening")
    assert text.returncode == 0, text.stderr
    assert "\x1b" not in text.stdout and "ev\\x1b[31m[b]il" in text.stdout
    done = run_podpath(lab, "node1", "ls", "sockets", "--json")
    rows = json.loads(done.stdout)["sockets"]
    assert any(o["comm"] == HOSTILE for r in rows if r["local_port"] == 7777 for o in r["owners"])
    snap = run_podpath(lab, "node1", "snapshot", "-o", "-")
    index = SnapshotIndex(codec.loads(snap.stdout))
    (branch,) = trace([index], Probe(src.ref, f"{pod.ip}:7777")).branches
    assert branch.verdict == "delivered" and HOSTILE in branch.reason
    out = run_podpath(lab, "node1", "trace", "--from", src.ref, "--to", f"{pod.ip}:7777")
    assert out.returncode == 0 and "\x1b" not in out.stdout and "ev\\x1b[31m[b]il" in out.stdout
