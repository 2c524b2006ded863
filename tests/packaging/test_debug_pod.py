"""The image's podpath in a node debug pod sees what podpath run on the node itself sees.

The pod is the one `kubectl debug node/node1 --profile=sysadmin` creates
(podpath.cli.kubectl.node_debug_pod), made by node1's real containerd through CRI the
way kubelet makes it (debug_pod.py), from the image built from this checkout and
imported with `ctr images import`. Its output comes back the ways kubectl gets it: an
attach through containerd's streaming server (cri_stream.py, what `kubectl debug -i`
and `kubectl podpath` use) and ExecSync (what `kubectl exec` without a terminal uses).
What differs between two collections is taken out, and only that (see _normalised):
the collecting processes themselves, the collection's time, conntrack's countdowns,
neighbour states that age on their own, interface and chain counters, iptables-save's date
comment, and the chroot in front of the node's own iptables-save that a host root runs.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import debug_pod
import pytest
from built_image import BuiltImage
from tmux_pane import tmux, wait_for

from podpath.cli.kubectl import SESSION_ENV, node_debug_pod, snapshot_command, tui_command
from podpath.cri.client import CriClient
from podpath.lab import containerd
from podpath.lab.node import node_env

if TYPE_CHECKING:
    from podpath.lab import Lab

pytestmark = pytest.mark.lab

IMAGE = "podpath:test"
IMAGE_REF = "docker.io/library/podpath:test"  # what containerd names the tag
ONLY_MOUNTED = "pp-only"  # a netns held by nothing but its /run/netns bind mount
STREAM = Path(__file__).with_name("cri_stream.py")
HOST_NAMESPACES = ("net", "pid", "ipc", "uts")  # a host-network pod keeps the node's UTS


@pytest.fixture(scope="module")
def lab(podpath_image: BuiltImage) -> Iterator[Lab]:
    """A 2-node containerd lab with real traffic, the image on node1, a bind-mounted netns."""
    from podpath.lab import LabSpec, down, up

    if not containerd.installed():
        pytest.skip("needs containerd, its runc shim and ctr")
    made = up(LabSpec(f"t{os.getpid()}-dbg", nodes=2, pods=2, services=2, runtime="containerd"))
    try:
        debug_pod.import_image(made.node("node1").init_pid, podpath_image.archive, IMAGE_REF)
        made.exec("node1", ["ip", "netns", "add", ONLY_MOUNTED])
        web = made.service("default/web")[0]
        for pod in made.pods:
            made.probe(pod.ref, web.cluster_ip, web.port)
        _settle(made)
        yield made
    finally:
        down(made.name)


@pytest.fixture
def cri(lab: Lab) -> Iterator[CriClient]:
    """node1's CRI socket, with time for an ExecSync of a whole snapshot."""
    with CriClient(containerd.host_socket(lab.node("node1").init_pid), timeout=300) as client:
        yield client


# Every link-local address of node1 and its pods out of IPv6 duplicate address detection,
# whose end adds local routes and neighbour entries: two collections a few seconds
# apart would otherwise differ by what the kernel did in between, not by how they read.
_TENTATIVE = """
ip -6 addr show tentative
for ns in $(ip netns list | cut -d' ' -f1); do ip -n "$ns" -6 addr show tentative; done
"""


def _settle(lab: Lab, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while lab.exec("node1", ["sh", "-c", _TENTATIVE]).stdout.strip():
        assert time.monotonic() < deadline, "IPv6 addresses still tentative"
        time.sleep(0.5)


def _stream_argv(lab: Lab, url: str) -> list[str]:
    """argv that bridges this terminal (or pipes) to a CRI attach URL, run inside node1."""
    return lab.enter_argv("node1", [sys.executable, str(STREAM), url])


def _exec(cri: CriClient, pod: debug_pod.DebugPod, *cmd: str) -> bytes:
    code, out, err = debug_pod.exec_sync(cri, pod, cmd)
    assert code == 0, err.decode(errors="replace")[-2000:]
    return out


def _namespaces_of(text: str) -> dict[str, str]:
    """{'net': 'net:[4026...]', ...} from `readlink /proc/self/ns/...` lines."""
    return {line.split(":", 1)[0]: line for line in text.split()}


def _assert_in_host_namespaces(lab: Lab, cri: CriClient, pod: debug_pod.DebugPod) -> None:
    """The pod's processes are in node1's network, PID, IPC and UTS namespaces."""
    init = lab.node("node1").init_pid
    node = {t: os.readlink(f"/proc/{init}/ns/{t}") for t in HOST_NAMESPACES}
    links = [f"/proc/self/ns/{t}" for t in HOST_NAMESPACES]
    seen = _namespaces_of(_exec(cri, pod, "readlink", *links).decode())
    assert seen == node, "a pod with hostNetwork, hostPID and hostIPC"


def _node_direct(lab: Lab, *args: str) -> bytes:
    done = lab.exec("node1", [sys.executable, "-m", "podpath", *args], timeout=300)
    return done.stdout.encode("utf-8", "surrogateescape")


# --- normalising two collections of one node ------------------------------------------------

_CT_TIMEOUT = re.compile(r"^(\S+\s+\d+\s+\S+\s+\d+\s+)\d+", re.M)
_SAVE_DATES = re.compile(r"^# (Generated by|Completed on) .*$", re.M)
# iptables-save -c's chain and rule counters (":INPUT ACCEPT [14:1708]", "[9:903] -A
# INPUT ..."): the attach's own packets on the node's loopback move them between the
# two collections.
_CHAIN_COUNTERS = re.compile(r"^(:\S+ \S+) \[\d+:\d+\]$", re.M)
_RULE_COUNTERS = re.compile(r"^\[\d+:\d+\] ", re.M)
_AGEING = frozenset({"REACHABLE", "STALE", "DELAY", "PROBE"})


def _is_reader(cmdline: list[str]) -> bool:
    """podpath collecting (either run), and the debug pod's own command around it."""
    return any(
        a == "podpath" or a.endswith("/podpath") or "exec podpath " in a or a.startswith("podpath.")
        for a in cmdline
    )


def _readers(processes: list[dict[str, Any]]) -> set[int]:
    """PIDs of the collecting processes and everything they started."""
    found = {p["pid"] for p in processes if _is_reader(p["cmdline"])}
    grew = True
    while grew:
        more = {p["pid"] for p in processes if p["ppid"] in found} - found
        found |= more
        grew = bool(more)
    return found


def _namespaces(snap: dict[str, Any], readers: set[int]) -> list[dict[str, Any]]:
    """Namespaces with what holds them counted without the collecting processes."""
    procs = [p for p in snap["processes"] if p["pid"] not in readers]
    out = []
    for ns in snap["namespaces"]:
        holders = sorted(p["pid"] for p in procs if p["namespaces"].get(ns["type"]) == ns["inode"])
        held = [h for h in ns["held_by"] if h != "process"] + (["process"] if holders else [])
        if not held:
            continue  # only the collecting processes were in it
        lowest = next((p for p in procs if holders and p["pid"] == holders[0]), None)
        out.append(
            {
                **{k: ns[k] for k in ("type", "inode", "dev", "netnsid", "nsfs")},
                "held_by": sorted(held),
                "nprocs": len(holders),
                "pid": lowest["pid"] if lowest else None,
                "command": lowest["cmdline"] if lowest else None,
            }
        )
    return out


def _normalised(raw: bytes) -> dict[str, Any]:
    snap: dict[str, Any] = json.loads(raw)
    readers = _readers(snap["processes"])
    snap["namespaces"] = _namespaces(snap, readers)
    snap["processes"] = [
        {k: v for k, v in p.items() if k != "state"}
        for p in snap["processes"]
        if p["pid"] not in readers
    ]
    for pod in snap["pods"]:
        for container in pod["containers"]:
            # The debug pod's own container runs the collecting podpath.
            container["pids"] = [pid for pid in container["pids"] if pid not in readers]
    for key in ("taken_at", "duration"):
        snap.pop(key)
    snap["node"].pop("host_root")
    for netns in snap["netns"]:
        for n in netns["neighbours"]:
            n["state"] = sorted("dynamic" if s in _AGEING else s for s in n["state"])
        for link in netns["links"]:
            # Interface counters move with every packet between the two collections.
            link.pop("stats", None)
    for dump in snap["iptables"]:
        text = _SAVE_DATES.sub("# (date)", dump["text"])
        text = _CHAIN_COUNTERS.sub(r"\g<1> [counters]", text)
        dump["text"] = _RULE_COUNTERS.sub("[counters] ", text)
        # Under a host root the node's own iptables-save runs, chrooted (commands.py).
        if dump["command"][:3] == ["/usr/sbin/chroot", "--", "/host"]:
            dump["command"] = dump["command"][3:]
    if snap["conntrack"]:
        snap["conntrack"]["text"] = _CT_TIMEOUT.sub(r"\g<1>T", snap["conntrack"]["text"])
    return snap


_AGEING_WORD = re.compile(r"\b(" + "|".join(sorted(_AGEING)) + r")\b")


_COUNTED = re.compile(r"\b\d+ (pkts|bytes|errors|dropped)\b")


def _trace_normalised(value: Any, *, counters: bool = False) -> Any:
    """A trace's JSON with what moves between two runs made one word.

    Neighbour states age, and interface counters (on the hops a packet crosses) count
    whatever traffic passed between the two runs, so both are compared by shape only.
    """
    if isinstance(value, dict):
        return {
            k: _trace_normalised(v, counters=counters or k == "counters") for k, v in value.items()
        }
    if isinstance(value, list):
        return [_trace_normalised(v, counters=counters) for v in value]
    if isinstance(value, int) and not isinstance(value, bool) and counters:
        return "N"
    if isinstance(value, str):
        return _COUNTED.sub(r"N \1", _AGEING_WORD.sub("dynamic", value))
    return value


def _diff(a: Any, b: Any, path: str = "") -> list[str]:
    """Where two JSON values differ (readable in a failure message)."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b)):
            out += _diff(a.get(k, "<absent>"), b.get(k, "<absent>"), f"{path}.{k}")
        return out
    if isinstance(a, list) and isinstance(b, list):
        if len(a) == len(b):
            pairs = zip(a, b, strict=True)
            return [d for i, (x, y) in enumerate(pairs) for d in _diff(x, y, f"{path}[{i}]")]
        only_a = [x for x in a if x not in b]
        only_b = [y for y in b if y not in a]
        return [f"{path}: only node-direct {only_a!s:.600} / only in pod {only_b!s:.600}"]
    if isinstance(a, str) and isinstance(b, str) and a != b and "\n" in a + b:
        lines = [(x, y) for x, y in zip(a.splitlines(), b.splitlines(), strict=False) if x != y]
        first = lines[0] if lines else (f"{len(a.splitlines())} lines", f"{len(b.splitlines())}")
        return [f"{path}: first differing line {first[0][:300]!r} != {first[1][:300]!r}"]
    return [] if a == b else [f"{path}: {str(a)[:300]} != {str(b)[:300]}"]


# --- the tests ---------------------------------------------------------------------------


def test_the_pod_runs_in_the_nodes_network_pid_and_ipc_namespaces(lab: Lab, cri: CriClient) -> None:
    """kubelet's translation of the sysadmin pod: host net/pid/ipc, its own mounts, /host."""
    spec = node_debug_pod("node1", IMAGE, snapshot_command(600), stdin=True)
    assert debug_pod.namespace_options(spec) == {"network": "NODE", "pid": "NODE", "ipc": "NODE"}
    init = lab.node("node1").init_pid
    with debug_pod.running(cri, init, spec) as pod:
        _assert_in_host_namespaces(lab, cri, pod)
        mnt = _exec(cri, pod, "readlink", "/proc/self/ns/mnt").decode().strip()
        hostname = _exec(cri, pod, "cat", "/proc/sys/kernel/hostname").decode().strip()
        root = _exec(cri, pod, "stat", "-c", "%i", "/host/run/netns").decode().strip()
    assert mnt != os.readlink(f"/proc/{init}/ns/mnt"), "a mount namespace of its own"
    assert hostname == lab.exec("node1", ["hostname"]).stdout.strip() == "node1"
    assert root == str(os.stat(f"/proc/{init}/root/run/netns").st_ino), "the node's / at /host"


def test_a_pod_without_host_namespaces_sees_another_node(lab: Lab, cri: CriClient) -> None:
    """Without hostNetwork/hostPID the same pod is in namespaces of its own: links differ."""
    spec = node_debug_pod("node1", IMAGE, snapshot_command(600), stdin=True)
    for key in ("hostNetwork", "hostPID", "hostIPC"):
        del spec["spec"][key]
    init = lab.node("node1").init_pid
    node = {t: os.readlink(f"/proc/{init}/ns/{t}") for t in HOST_NAMESPACES}
    ns_links = [f"/proc/self/ns/{t}" for t in HOST_NAMESPACES]
    with debug_pod.running(cri, init, spec) as pod:
        seen = _namespaces_of(_exec(cri, pod, "readlink", *ns_links).decode())
        links = json.loads(
            _exec(cri, pod, "podpath", "ls", "links", "--json", "--host-root", "/host")
        )
    assert all(seen[t] != node[t] for t in HOST_NAMESPACES), seen
    direct = json.loads(_node_direct(lab, "ls", "links", "--json"))
    assert links != direct, "the equality tests below would fail for such a pod"


def test_snapshot_in_the_debug_pod_equals_the_node_direct_one(lab: Lab, cri: CriClient) -> None:
    """Pods, namespaces (the bind-mounted netns too), links, routes, rules, netfilter, conntrack."""
    spec = node_debug_pod("node1", IMAGE, snapshot_command(600), env={SESSION_ENV: "t"}, stdin=True)
    with debug_pod.running(cri, lab.node("node1").init_pid, spec) as pod:
        _assert_in_host_namespaces(lab, cri, pod)
        # kubectl podpath's way: attach, then send the line the pod waits for.
        stream = subprocess.Popen(
            _stream_argv(lab, debug_pod.attach_url(cri, pod, tty=False)),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=node_env(),
        )
        try:
            # The node is read directly meanwhile, with the pod's processes and mounts
            # present in both collections.
            time.sleep(1)
            assert stream.poll() is None, stream.stderr.read() if stream.stderr else ""
            direct = _node_direct(lab, "snapshot", "-o", "-")
            in_pod, err = stream.communicate(b"go\n", timeout=300)
        finally:
            if stream.poll() is None:
                stream.kill()
                stream.wait()
    assert stream.returncode == 0, err.decode()[-2000:]
    a, b = _normalised(direct), _normalised(in_pod)
    assert _diff(a, b) == []
    assert json.loads(in_pod)["node"]["host_root"] == "/host"
    # What the equality is about, so that it cannot hold vacuously.
    mounted = [n for n in b["netns"] if f"/run/netns/{ONLY_MOUNTED}" in n["paths"]]
    assert len(mounted) == 1 and mounted[0]["links"], "the bind-mounted netns and its lo"
    assert {p["name"] for p in b["pods"]} == {p.name for p in lab.pods_on("node1")} | {pod.name}
    assert b["gaps"] == []
    assert b["conntrack"]["text"].strip() and b["iptables"]


@pytest.mark.parametrize("case", ["pod-to-service", "pod-to-pod", "node-to-pod"])
def test_traces_in_the_debug_pod_equal_the_node_direct_ones(
    lab: Lab, cri: CriClient, case: str
) -> None:
    """`podpath trace --host-root /host` in the pod prints what the node-direct trace prints."""
    here = lab.pods_on("node1")
    # A web pod listens on :80; a dns pod does not, and a trace to it is rightly refused.
    web_pod = next(p for p in here if p.app == "web")
    other = next(p for p in here if p is not web_pod)
    web = lab.service("default/web")[0]
    src, dst = {
        "pod-to-service": (here[0].ref, f"{web.cluster_ip}:{web.port}"),
        "pod-to-pod": (other.ref, f"{web_pod.ip}:80"),
        "node-to-pod": ("node", f"{web_pod.ip}:80"),
    }[case]
    args = ["trace", "--from", src, "--to", dst, "--reply", "--json"]
    spec = node_debug_pod("node1", IMAGE, snapshot_command(600), stdin=True)
    with debug_pod.running(cri, lab.node("node1").init_pid, spec) as pod:
        _assert_in_host_namespaces(lab, cri, pod)
        # `kubectl exec` into the debug pod: CRI ExecSync.
        in_pod = _trace_normalised(
            json.loads(_exec(cri, pod, "podpath", *args, "--host-root", "/host"))
        )
        direct = _trace_normalised(json.loads(_node_direct(lab, *args)))
    assert _diff(direct, in_pod) == []
    # Endpoints on node2 leave node1; none is dropped or left uncertain.
    verdicts = {b["verdict"] for b in in_pod["branches"]}
    assert verdicts and verdicts <= {"delivered", "leaves-node"}


def test_tui_works_on_the_debug_pods_terminal(lab: Lab, cri: CriClient) -> None:
    """The TUI on the pod's terminal, attached as kubectl debug -it does: pods, netns; q quits."""
    only = int(lab.exec("node1", ["stat", "-L", "-c", "%i", f"/run/netns/{ONLY_MOUNTED}"]).stdout)
    spec = node_debug_pod("node1", IMAGE, tui_command(), stdin=True, tty=True)
    session = f"ppdbg-{uuid.uuid4().hex[:8]}"
    with debug_pod.running(cri, lab.node("node1").init_pid, spec) as pod:
        _assert_in_host_namespaces(lab, cri, pod)
        argv = _stream_argv(lab, debug_pod.attach_url(cri, pod, tty=True))
        tmux("new-session", "-d", "-s", session, "-x", "160", "-y", "40", *argv)
        try:
            # The TUI started before the attach: the size the attach sends redraws it.
            home = wait_for(session, "VIEW")
            assert "live host /host" in home
            tmux("send-keys", "-t", session, ":")
            wait_for(session, "jump to")
            tmux("send-keys", "-t", session, "pods", "Enter")
            first = lab.pods_on("node1")[0]
            assert first.ip in wait_for(session, first.name)
            tmux("send-keys", "-t", session, ":")
            wait_for(session, "jump to")
            tmux("send-keys", "-t", session, "ns", "Enter")
            # Held by its bind mount alone: listed with no process (TYPE INODE NSID PROCS PID).
            assert re.search(rf"net\s+{only}\s+(\d+|-)\s+0\s+-", wait_for(session, str(only)))
            tmux("send-keys", "-t", session, "q")
            _wait_gone(session)
            assert _exit_status(cri, pod) == ("CONTAINER_EXITED", 0)
        finally:
            subprocess.run(
                ["tmux", "kill-session", "-t", session], capture_output=True, check=False
            )


def _exit_status(cri: CriClient, pod: debug_pod.DebugPod, timeout: float = 20) -> tuple[str, int]:
    """The container's state and exit code once it is no longer running.

    The attach stream ends when the TUI closes its terminal; containerd records the
    exit a moment later, when the shim reports it.
    """
    deadline = time.monotonic() + timeout
    while True:
        status = cri.call("ContainerStatus", {"container_id": pod.container_id})["status"]
        if status["state"] != "CONTAINER_RUNNING" or time.monotonic() > deadline:
            return str(status["state"]), int(status["exit_code"])
        time.sleep(0.2)


def _wait_gone(session: str, timeout: float = 20) -> None:
    """Until the tmux session ends (its command, the attach, ended with the container)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sessions = subprocess.run(
            ["tmux", "list-sessions", "-F", "#S"], capture_output=True, text=True, check=False
        ).stdout.split()
        if session not in sessions:
            return
        time.sleep(0.3)
    raise AssertionError("the TUI did not quit on q")
