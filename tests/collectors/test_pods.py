"""Pods from runtime state trees (shapes copied from real dumps), cgroups and fallbacks."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from podpath.collectors.hostroot import HostRoot
from podpath.collectors.runtime.cgroups import CgroupRef, parse_cgroup_path
from podpath.collectors.runtime.crio_dirs import CRIO_CONTAINERS
from podpath.collectors.runtime.pods import (
    CONTAINERD_RUNC,
    CONTAINERD_TASKS,
    collect_pods,
    containerd_bundles,
    is_pause,
)
from podpath.snapshot.model import IpamAllocation, Namespace, Process

REAL = Path(__file__).resolve().parents[1] / "fixtures" / "realworld"
RUNTIME = REAL / "runtime"

ROOT_NET = 4026531840
POD_NET = 4026532500
SB = "3eff2d8d3a4f3d3c0d1c4d4737c21b397bf7cbf77fd8a0fe370f6a59129cd535"
CT = "f3a240d625b1e97b859e29f81360fd79538021c46eaafb325dc0fa195c8e4b6a"
POD_SLICE = (
    "/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-burstable.slice/"
    "kubelet-kubepods-burstable-pod44e4b37f_504f_4f1c_80f3_4137bfbec5e4.slice"
)
NS_POD = {
    "net": POD_NET,
    "ipc": 4026532501,
    "uts": 4026532502,
    "pid": 4026532503,
    "mnt": 4026532504,
}


def _load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((RUNTIME / name).read_text())
    return data


def _spec(blob: dict[str, Any]) -> dict[str, Any]:
    """The OCI runtime spec inside a crictl inspect / CRI info blob."""
    info = blob.get("info", blob)
    spec: dict[str, Any] = info["runtimeSpec"]
    return spec


def _write(root: Path, path: str, data: object) -> None:
    target = root / path.lstrip("/")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(data) if not isinstance(data, str) else data)


def _proc(
    pid: int, start: int, comm: str, cmd: tuple[str, ...], cgroup: str, ns: dict[str, int]
) -> Process:
    return Process(
        pid=pid,
        start_time=start,
        ppid=1,
        comm=comm,
        cmdline=cmd,
        uid=0,
        state="S",
        cgroup=cgroup,
        namespaces=dict(ns),
    )


@pytest.fixture
def containerd_root(tmp_path: Path) -> Iterator[HostRoot]:
    """A host root with containerd's bundle + runc state for the kind coredns pod."""
    sandbox = _spec(_load("kind-containerd-crictl-inspectp-coredns-systemd.json"))
    container = _spec(_load("kind-containerd-crictl-inspect-container-coredns.json"))
    container["process"]["env"] = ["PATH=/bin", "DB_PASSWORD=hunter2"]
    _write(tmp_path, f"{CONTAINERD_TASKS}/{SB}/config.json", sandbox)
    _write(tmp_path, f"{CONTAINERD_TASKS}/{CT}/config.json", container)
    _write(
        tmp_path,
        f"{CONTAINERD_RUNC}/{SB}/state.json",
        {"id": SB, "init_process_pid": 1322, "init_process_start": 5000},
    )
    _write(
        tmp_path,
        f"{CONTAINERD_RUNC}/{CT}/state.json",
        {"id": CT, "init_process_pid": 1478, "init_process_start": 5100},
    )
    with HostRoot(str(tmp_path)) as host:
        yield host


def _coredns_processes(pause_start: int = 5000) -> tuple[Process, ...]:
    return (
        _proc(
            1322,
            pause_start,
            "pause",
            ("/pause",),
            f"{POD_SLICE}/cri-containerd-{SB}.scope",
            NS_POD,
        ),
        _proc(
            1478,
            5100,
            "coredns",
            ("/coredns", "-conf", "/etc/coredns/Corefile"),
            f"{POD_SLICE}/cri-containerd-{CT}.scope",
            {**NS_POD, "pid": 4026532600, "mnt": 4026532601},
        ),
    )


def test_containerd_pod_from_runtime_state(containerd_root: HostRoot) -> None:
    """The coredns pod: names, uid, sandbox, pause PID, netns path, containers and PIDs."""
    pods, gaps = collect_pods(containerd_root, _coredns_processes(), ROOT_NET)
    assert gaps == ()
    (pod,) = pods
    assert (pod.namespace, pod.name, pod.uid) == (
        "kube-system",
        "coredns-5d78c9869d-79bfv",
        "44e4b37f-504f-4f1c-80f3-4137bfbec5e4",
    )
    assert pod.sandbox_id == SB and pod.pause_pid == 1322 and pod.pause_start_time == 5000
    assert pod.netns_inode == POD_NET
    assert pod.netns_path == "/var/run/netns/cni-c8f12417-13bc-a776-937a-0d987bcf8a2a"
    assert not pod.host_network and pod.runtime == "containerd" and pod.source == "runtime-state"
    assert pod.log_dir == (
        "/var/log/pods/kube-system_coredns-5d78c9869d-79bfv_44e4b37f-504f-4f1c-80f3-4137bfbec5e4"
    )
    sandbox, app = pod.containers
    assert (sandbox.kind, sandbox.pids) == ("sandbox", (1322,))
    assert (app.name, app.id, app.pids, app.image) == (
        "coredns",
        CT,
        (1478,),
        "registry.k8s.io/coredns/coredns:v1.10.1",
    )
    assert app.shared_namespaces == ("net", "ipc", "uts")


def test_env_redacted_by_default(containerd_root: HostRoot) -> None:
    """OCI env values are replaced by <redacted>; opting out keeps them."""
    pods, _ = collect_pods(containerd_root, _coredns_processes(), ROOT_NET)
    app = pods[0].containers[1]
    assert app.env == ("PATH=<redacted>", "DB_PASSWORD=<redacted>")
    pods, _ = collect_pods(containerd_root, _coredns_processes(), ROOT_NET, redact=False)
    assert "DB_PASSWORD=hunter2" in pods[0].containers[1].env


def test_bundles_whose_spec_will_be_read(tmp_path: Path) -> None:
    """The containers CRI is asked the plain status of: a readable regular config.json
    within bounds; not a FIFO (never waited on), an oversized spec, a bundle without one."""
    tasks = tmp_path / CONTAINERD_TASKS.lstrip("/")
    ok, fifo, big, empty = ("a" * 64, "b" * 64, "c" * 64, "d" * 64)
    for cid in (ok, fifo, big, empty, "not-an-id"):
        (tasks / cid).mkdir(parents=True)
    (tasks / ok / "config.json").write_text("{}")
    (tasks / "not-an-id" / "config.json").write_text("{}")
    os.mkfifo(tasks / fifo / "config.json")
    with open(tasks / big / "config.json", "wb") as f:
        f.truncate(5 * 2**20)
    with HostRoot(str(tmp_path)) as host:
        assert containerd_bundles(host) == {ok}


def test_reused_pause_pid_not_trusted(containerd_root: HostRoot) -> None:
    """A PID whose start time differs from runc's record is another process (row 3)."""
    pods, _ = collect_pods(containerd_root, (_coredns_processes(pause_start=9999)[1],), ROOT_NET)
    assert pods[0].pause_pid is None


def test_shared_namespaces_from_config_without_processes(containerd_root: HostRoot) -> None:
    """With no live processes, sharing comes from the OCI paths (/proc/<sandbox pid>/ns/*)."""
    pods, _ = collect_pods(containerd_root, (), ROOT_NET)
    app = pods[0].containers[1]
    assert app.pids == () and app.shared_namespaces == ("net", "ipc", "uts")


def test_ips_from_host_local_allocation(containerd_root: HostRoot) -> None:
    """host-local's container-id -> IP file gives a containerd pod its IP."""
    alloc = (IpamAllocation("containerd-net", "10.244.0.3", SB, "eth0"),)
    pods, _ = collect_pods(containerd_root, _coredns_processes(), ROOT_NET, allocations=alloc)
    assert pods[0].ips == ("10.244.0.3",)


def test_runc_state_only_uses_labels(tmp_path: Path) -> None:
    """With no readable bundle, runc's state.json labels carry the annotations."""
    sandbox = _spec(_load("kind-containerd-crictl-inspectp-coredns-systemd.json"))
    labels = [f"{k}={v}" for k, v in sandbox["annotations"].items()] + ["bundle=/x"]
    _write(
        tmp_path,
        f"{CONTAINERD_RUNC}/{SB}/state.json",
        {
            "init_process_pid": 1322,
            "init_process_start": 5000,
            "config": {
                "labels": labels,
                "namespaces": [{"type": "NEWNET", "path": "/var/run/netns/cni-abc"}],
            },
        },
    )
    with HostRoot(str(tmp_path)) as host:
        pods, _ = collect_pods(host, _coredns_processes()[:1], ROOT_NET)
    assert pods[0].name == "coredns-5d78c9869d-79bfv" and pods[0].pause_pid == 1322
    assert pods[0].netns_path == "/var/run/netns/cni-abc"


def test_host_network_sandbox(tmp_path: Path) -> None:
    """A sandbox without a network namespace entry, in the root netns, is hostNetwork."""
    sandbox = _spec(_load("kind-containerd-crictl-inspectp-coredns-systemd.json"))
    sandbox["linux"]["namespaces"] = [
        n for n in sandbox["linux"]["namespaces"] if n["type"] != "network"
    ]
    _write(tmp_path, f"{CONTAINERD_TASKS}/{SB}/config.json", sandbox)
    procs = (
        _proc(
            1322,
            5000,
            "pause",
            ("/pause",),
            f"{POD_SLICE}/cri-containerd-{SB}.scope",
            {**NS_POD, "net": ROOT_NET},
        ),
    )
    with HostRoot(str(tmp_path)) as host:
        pods, _ = collect_pods(host, procs, ROOT_NET)
    assert pods[0].host_network and pods[0].netns_inode == ROOT_NET


def test_crio_pod_from_userdata(tmp_path: Path) -> None:
    """CRI-O's userdata config.json: metadata, IP annotation, netns path, container."""
    sandbox = _spec(_load("falco-crio-pod-info-runtimespec.json"))
    container = _spec(_load("falco-crio-container-info-runtimespec.json"))
    sid = sandbox["annotations"]["io.kubernetes.cri-o.SandboxID"]
    cid = container["annotations"]["io.kubernetes.cri-o.ContainerID"]
    _write(tmp_path, f"{CRIO_CONTAINERS}/{sid}/userdata/config.json", sandbox)
    _write(tmp_path, f"{CRIO_CONTAINERS}/{cid}/userdata/config.json", container)
    _write(tmp_path, f"{CRIO_CONTAINERS}/{cid}/userdata/pidfile", "1835083")
    procs = (
        _proc(
            1835083,
            7,
            "redis-server",
            ("redis-server",),
            f"/kubepods/besteffort/pod1/crio-{cid}",
            NS_POD,
        ),
    )
    with HostRoot(str(tmp_path)) as host:
        pods, gaps = collect_pods(host, procs, ROOT_NET)
    assert gaps == ()
    (pod,) = pods
    assert (pod.namespace, pod.name, pod.uid) == (
        "redhat.test.crio",
        "podsandbox1",
        "redhat-test-crio",
    )
    assert pod.runtime == "cri-o" and pod.ips == ("10.244.0.3",)
    assert pod.netns_path == "/var/run/netns/dec735d1-0e86-44c1-94e0-a102173334a4"
    assert not pod.host_network
    app = next(c for c in pod.containers if c.kind == "container")
    assert app.id == cid and app.pids == (1835083,)


def test_cgroup_fallback_with_log_dir(tmp_path: Path) -> None:
    """No runtime state: pods come from cgroups, names from /var/log/pods."""
    uid = "44e4b37f-504f-4f1c-80f3-4137bfbec5e4"
    (tmp_path / "var/log/pods" / f"kube-system_coredns-x_{uid}").mkdir(parents=True)
    with HostRoot(str(tmp_path)) as host:
        pods, _ = collect_pods(host, _coredns_processes(), ROOT_NET)
    (pod,) = pods
    assert (pod.namespace, pod.name, pod.uid, pod.source) == (
        "kube-system",
        "coredns-x",
        uid,
        "cgroup",
    )
    assert pod.sandbox_id == SB and pod.pause_pid == 1322 and pod.netns_inode == POD_NET
    app = next(c for c in pod.containers if c.kind == "container")
    assert app.id == CT and app.shared_namespaces == ("net", "ipc", "uts")


def test_pause_fallback(tmp_path: Path) -> None:
    """No runtime state and no pod cgroups: a pause process still makes a pod."""
    procs = (
        _proc(1, 1, "catatonit", ("catatonit", "-P"), "/", {"net": ROOT_NET}),
        _proc(40, 10, "catatonit", ("catatonit", "-P"), "/", NS_POD),
        _proc(41, 11, "nginx", ("nginx",), "/", NS_POD),
    )
    with HostRoot(str(tmp_path)) as host:
        pods, _ = collect_pods(host, procs, ROOT_NET)
    (pod,) = pods
    assert pod.pause_pid == 40 and pod.source == "pause-process" and pod.netns_inode == POD_NET


NODE_NS = {"net": ROOT_NET, "user": 4026531837, "cgroup": 4026531835, "time": 4026531834}


def _netns_scan(inode: int, path: str, pid: int) -> tuple[Namespace, ...]:
    return (Namespace("net", inode, 4, 1, pid, 0, "root", "/pause", nsfs=path),)


def test_fallback_pods_keep_netns_path_runtime_and_names(tmp_path: Path) -> None:
    """Without runtime state: the scan's cni- netns path, the shim's runtime, the log dir's name."""
    uid = "44e4b37f-504f-4f1c-80f3-4137bfbec5e4"
    (tmp_path / "var/log/pods" / f"kube-system_coredns-x_{uid}" / "coredns").mkdir(parents=True)
    shim = _proc(
        900,
        1,
        "containerd-shim",
        ("/usr/bin/containerd-shim-runc-v2", "-namespace", "k8s.io"),
        "/",
        NODE_NS,
    )
    pause, app = _coredns_processes()
    pause = Process(
        **{**pause.__dict__, "ppid": 900, "cgroup": f"/kubepods/burstable/pod{uid}/{SB}"}
    )
    app = Process(**{**app.__dict__, "ppid": 900, "cgroup": f"/kubepods/burstable/pod{uid}/{CT}"})
    init = _proc(1, 1, "systemd", ("/sbin/init",), "/", NODE_NS)
    path = "/run/netns/cni-c8f12417-13bc-a776-937a-0d987bcf8a2a"
    with HostRoot(str(tmp_path)) as host:
        pods, _ = collect_pods(
            host, (init, shim, pause, app), ROOT_NET, namespaces=_netns_scan(POD_NET, path, 1322)
        )
    (pod,) = pods
    assert (pod.source, pod.runtime, pod.netns_path) == ("cgroup", "containerd", path)
    assert [c.name for c in pod.containers] == ["POD", "coredns"]


def test_pause_fallback_pod_keeps_netns_path_and_its_name_is_traceable(tmp_path: Path) -> None:
    """A pause-only pod is named after its cni- netns, and trace --from accepts that name."""
    from podpath.analysis.index import SnapshotIndex
    from podpath.snapshot.model import SCHEMA_VERSION, NodeFacts, Snapshot
    from podpath.trace.probe import resolve_source

    path = "/run/netns/cni-5f1e0c37-2f4c-4b6e-8d1d-0a4d3c2b1a00"
    procs = (
        _proc(1, 1, "catatonit", ("catatonit", "-P"), "/", NODE_NS),
        _proc(40, 10, "conmon", ("/usr/bin/conmon",), "/", NODE_NS),
        Process(**{**_proc(41, 11, "pause", ("/pause",), "/", NS_POD).__dict__, "ppid": 40}),
    )
    with HostRoot(str(tmp_path)) as host:
        pods, _ = collect_pods(host, procs, ROOT_NET, namespaces=_netns_scan(POD_NET, path, 41))
    (pod,) = pods
    assert (pod.source, pod.runtime, pod.netns_path) == ("pause-process", "cri-o", path)
    assert pod.name == os.path.basename(path) and pod.namespace == ""
    snap = Snapshot(SCHEMA_VERSION, 0.0, NodeFacts("n", "k"), ROOT_NET, pods=pods)
    source = resolve_source([SnapshotIndex(snap)], pod.name)
    assert source.netns == POD_NET


def test_node_wide_namespaces_are_not_shared_with_the_sandbox(
    containerd_root: HostRoot,
) -> None:
    """user/cgroup/time held by every process of the node are node_namespaces, not shared."""
    pause, app = _coredns_processes()
    pause = Process(**{**pause.__dict__, "namespaces": {**NS_POD, **_node_only()}})
    app = Process(**{**app.__dict__, "namespaces": {**app.namespaces, **_node_only()}})
    init = _proc(1, 1, "systemd", ("/sbin/init",), "/", NODE_NS)
    pods, _ = collect_pods(containerd_root, (init, pause, app), ROOT_NET)
    sandbox, container = pods[0].containers
    assert container.shared_namespaces == ("net", "ipc", "uts")
    assert container.node_namespaces == ("user", "cgroup", "time")
    assert sandbox.node_namespaces == ("user", "cgroup", "time")


def _node_only() -> dict[str, int]:
    return {k: v for k, v in NODE_NS.items() if k != "net"}


def test_hostile_runtime_state_is_a_gap(tmp_path: Path) -> None:
    """Garbage config.json/state.json become gaps, never exceptions."""
    _write(tmp_path, f"{CONTAINERD_TASKS}/{SB}/config.json", "{not json")
    _write(tmp_path, f"{CONTAINERD_RUNC}/{SB}/state.json", "[1, 2")
    _write(
        tmp_path,
        f"{CONTAINERD_TASKS}/{CT}/config.json",
        json.dumps(
            {
                "annotations": {
                    "io.kubernetes.cri.sandbox-name": "\x1b]0;pwn\x07[b]x",
                    "io.kubernetes.cri.container-type": "sandbox",
                },
                "linux": {"namespaces": "nope"},
                "process": [],
            }
        ),
    )
    with HostRoot(str(tmp_path)) as host:
        pods, gaps = collect_pods(host, (), ROOT_NET)
    assert len(gaps) == 2 and all(g.kind == "error" for g in gaps)
    assert [p.name for p in pods] == ["\x1b]0;pwn\x07[b]x"]


def test_is_pause() -> None:
    """pause and catatonit -P are infra processes; catatonit without -P is not."""
    assert is_pause(_proc(1, 1, "pause", ("/pause",), "/", {}))
    assert is_pause(_proc(1, 1, "catatonit", ("/usr/bin/catatonit", "-P"), "/", {}))
    assert not is_pause(_proc(1, 1, "catatonit", ("catatonit", "--", "sh"), "/", {}))


# Expected (pod uid, container id prefix, runtime) per line of cgroup-paths.tsv, in order.
_U = {
    "a": "10d16a28-60ff-475f-a631-510d9792219f",
    "b": "56ff41ec-02dd-45eb-8871-6fdef3ca7a24",
    "c": "5931aa75-4603-4e65-b552-7c71cf55cfb5",
    "d": "a5d8fdd1-1369-469e-8a7d-2c1047529435",
    "e": "06a0b8ac-1ec4-4058-982d-3a175e1f0458",
    "f": "d76e26fba3bf2bfd215eb29011d55250",
    "g": "068e8fa0-9213-11e7-a01f-507b9d4141fa",
    "h": "01042b28-179d-446a-954a-7266557e12cd",
    "i": "ac04f3f2-1f2c-11e9-b015-1ebee232acfa",
    "j": "63b3ebfc-2890-11e9-8154-16bf8ef8d9dc",
    "k": "bd12dd3393227d950605a2444b13c27a",
    "l": "506a980e-4d84-43bf-9c8f-c8811e541ce2",
    "m": "87c52d60-fefd-45a9-a420-895256fc03b5",
    "n": "44e4b37f-504f-4f1c-80f3-4137bfbec5e4",
}
CGROUP_EXPECTED: list[tuple[str | None, str | None, str]] = [
    (_U["a"], "178ec18073cc", "containerd"),
    (None, "178ec18073cc", "containerd"),
    (_U["b"], "e6a8a39d36db", "containerd"),
    (_U["c"], None, "unknown"),
    (None, None, "unknown"),
    (_U["d"], "9192cb33411f", "containerd"),
    (_U["e"], "9f168f96353b", "containerd"),
    (_U["f"], "40af7cdcbe50", "unknown"),
    (None, None, "unknown"),  # rootfs .mount: not a container
    (_U["g"], "81e5c2990803", "cri-o"),
    (_U["g"], "81e5c2990803", "cri-o"),
    (_U["g"], None, "unknown"),  # .mount
    (_U["g"], None, "unknown"),  # conmon
    (_U["g"], None, "unknown"),  # truncated id
    (None, None, "unknown"),  # systemd-coredump slice
    (_U["h"], "22f44d2a5177", "unknown"),
    (None, "dd479c33249f", "docker"),
    (_U["i"], "605439acbd4f", "unknown"),
    (_U["j"], "73bfe475650d", "cri-o"),
    (_U["j"], "17d8c9eacc62", "cri-o"),
    (None, "7951fb549ab9", "docker"),
    (None, "7951fb549ab9", "docker"),
    (_U["k"], "d52db56a9c80", "containerd"),
    (_U["l"], None, "unknown"),
    (_U["m"], "a126df15fba5", "containerd"),
    (_U["n"], None, "unknown"),
    (_U["n"], "3eff2d8d3a4f", "containerd"),
    (None, "1f04600dc694", "cri-o"),
    (None, "63060edc2d3a", "containerd"),
    (None, "1", "docker"),
    (None, "72e5a5ff5eef", "docker"),
    (None, None, "unknown"),  # docker overlay .mount
]


def _tsv_paths() -> list[str]:
    lines = (REAL / "cgroup" / "cgroup-paths.tsv").read_text().splitlines()
    return [line.split("\t")[0] for line in lines if line and not line.startswith("#")]


def test_every_cgroup_fixture_line_parses() -> None:
    """Every path of cgroup-paths.tsv gives the right pod uid, container id and runtime."""
    paths = _tsv_paths()
    assert len(paths) == len(CGROUP_EXPECTED)
    for path, (uid, cid, runtime) in zip(paths, CGROUP_EXPECTED, strict=True):
        ref = parse_cgroup_path(path)
        got = (ref.pod_uid, ref.container_id[:12] if ref.container_id else None, ref.runtime)
        assert got == (uid, cid, runtime), path


def test_cgroup_qos() -> None:
    """QoS class comes from the path; a pod without a QoS directory is guaranteed."""
    assert (
        parse_cgroup_path("/kubepods/burstable/pod01042b28-179d-446a-954a-7266557e12cd").qos
        == "burstable"
    )
    assert (
        parse_cgroup_path("/kubepods/pod068e8fa0-9213-11e7-a01f-507b9d4141fa").qos == "guaranteed"
    )
    assert parse_cgroup_path("/") == CgroupRef()


_LAB_SCRIPT = """
import json, dataclasses
from podpath.collectors.hostroot import HostRoot
from podpath.collectors.proc.processes import scan_processes
from podpath.collectors.proc.namespaces import scan_namespaces
from podpath.collectors.cni import collect_cni
from podpath.collectors.runtime.cri_state import read_listings
from podpath.collectors.runtime.pods import collect_pods
h = HostRoot("/")
listings, cri_gaps = read_listings(h)
procs, _ = scan_processes(h)
scan = scan_namespaces(h, procs)
cni, _ = collect_cni(h)
pods, gaps = collect_pods(h, procs, scan.root_netns, namespaces=scan.namespaces,
                          allocations=cni.allocations, cri=listings)
gaps = list(cri_gaps) + list(gaps)
print(json.dumps({"pods": [dataclasses.asdict(p) for p in pods],
                  "gaps": [dataclasses.asdict(g) for g in gaps]}))
"""


@pytest.mark.lab
def test_pods_equal_lab_record(shared_lab: Any) -> None:
    """Pods collected inside each lab node equal the lab's record (names, ids, pause, IP, netns).

    Through CRI, the exited first attempt of the lab's crashed container is listed too.
    """
    import sys

    for node in shared_lab.record.nodes:
        done = shared_lab.exec(
            node.name, [sys.executable, "-c", _LAB_SCRIPT], timeout=120, check=False
        )
        assert done.returncode == 0, done.stderr
        result = json.loads(done.stdout)
        assert result["gaps"] == []
        got = {p["uid"]: p for p in result["pods"]}
        wanted = [p for p in shared_lab.record.pods if p.node == node.name]
        assert wanted and set(got) == {w.uid for w in wanted}
        for want in wanted:
            pod = got[want.uid]
            assert (pod["namespace"], pod["name"], pod["sandbox_id"]) == (
                want.namespace,
                want.name,
                want.sandbox_id,
            )
            assert pod["pause_pid"] == want.pause_pid
            assert pod["ips"] == [want.ip]
            assert pod["netns_path"] == want.netns_path
            assert not pod["host_network"]
            assert {cid for _, cid in want.containers} <= {c["id"] for c in pod["containers"]}
            assert pod["source"] == "cri" and pod["sandbox_image"] == "registry.k8s.io/pause:3.9"


def test_real_paths_never_crash_on_this_host() -> None:
    """Collecting on this machine (no runtime) returns data or gaps, no exception."""
    from podpath.collectors.proc.processes import scan_processes

    with HostRoot("/") as host:
        procs, _ = scan_processes(host)
        pods, gaps = collect_pods(host, procs, None)
    assert isinstance(pods, tuple) and isinstance(gaps, tuple)
    assert os.getpid() not in {p.pause_pid for p in pods}


def test_kindnet_row_fills_the_runtime_pod_of_its_sandbox(
    tmp_path: Path, containerd_root: HostRoot
) -> None:
    """kindnet's row adds host interface, gateway and MTU; the runtime's facts stay first."""
    from kindnet_db_writer import add_pod, create

    db = tmp_path / "var/lib/cni-kindnet/cni.db"
    db.parent.mkdir(parents=True)
    con = create(db)
    add_pod(
        con,
        {
            "container_id": SB,
            "name": "other-name",  # the runtime's own name wins
            "namespace": "kube-system",
            "uid": "44e4b37f-504f-4f1c-80f3-4137bfbec5e4",
            "netns": "/var/run/netns/cni-c8f12417-13bc-a776-937a-0d987bcf8a2a",
            "interface_name": "knet0a1b2c3d",
            "mtu": 1450,
            "v4": "10.244.0.3",
            "gw4": "10.244.0.0",
        },
    )
    con.close()
    pods, gaps = collect_pods(containerd_root, _coredns_processes(), ROOT_NET)
    assert gaps == ()
    (pod,) = pods
    assert (pod.name, pod.source, pod.also_from) == (
        "coredns-5d78c9869d-79bfv",
        "runtime-state",
        ("kindnet-db",),
    )
    assert (pod.host_interface, pod.gateways, pod.mtu) == ("knet0a1b2c3d", ("10.244.0.0",), 1450)
    assert pod.ips == ("10.244.0.3",) and pod.pause_pid == 1322


def test_pod_ips_leave_out_link_local_interface_addresses() -> None:
    """An AWS VPC CNI IPv6 pod: eth0's /128 is its IP (as CRI says); v4if0's egress-cni
    address (169.254.172.0/22, scope global in the kernel, on every node alike) and eth0's
    fe80:: address are not, nor are they added when CRI named none."""
    from podpath.collectors.snapshot import _with_interface_ips
    from podpath.snapshot.model import Address, Link, NetNamespace, Pod

    def link(index: int, name: str, *addresses: Address) -> Link:
        return Link(POD_NET, index, name, "veth", None, 1500, "UP", addresses=addresses)

    ns = NetNamespace(
        POD_NET,
        links=(
            Link(
                POD_NET,
                1,
                "lo",
                None,
                None,
                65536,
                "UNKNOWN",
                addresses=(Address(4, "127.0.0.1", 8, "host"),),
            ),
            link(
                2,
                "eth0",
                Address(6, "fd00:172:18:0:1::3", 128),
                Address(6, "fe80::7ca2:36ff:fead:ffe3", 64, "link"),
            ),
            link(3, "v4if0", Address(4, "169.254.172.2", 22)),
        ),
    )
    pod = Pod("default", "web", "u1", SB, None, netns_inode=POD_NET)
    for ips in ((), ("fd00:172:18:0:1::3",)):
        (got,) = _with_interface_ips((replace(pod, ips=ips),), (ns,))
        assert got.ips == ("fd00:172:18:0:1::3",)
    # A global address of the pod's own is still added (the kernel is the truth).
    extra = replace(ns, links=(*ns.links, link(4, "net1", Address(4, "10.9.0.7", 24))))
    (got,) = _with_interface_ips((pod,), (extra,))
    assert got.ips == ("fd00:172:18:0:1::3", "10.9.0.7")
