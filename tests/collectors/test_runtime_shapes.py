"""Every runtime shape a node may have, on real dumps: CRI answers, k3s, CRI-O without infra,
containerd before sandbox-uid, and Docker's dockershim containers."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from runtime_tree import CT, SB, kind_specs, load, write, write_containerd_pod

from podpath.collectors.hostroot import HostRoot
from podpath.collectors.runtime import crio_dirs
from podpath.collectors.runtime.cri_listing import status_key
from podpath.collectors.runtime.cri_state import (
    CriListing,
    _statuses,
    _with_kept,
    kept_for_refresh,
)
from podpath.collectors.runtime.crio_dirs import CRIO_CONTAINERS
from podpath.collectors.runtime.docker_state import parse_k8s_name, rfc3339_ns
from podpath.collectors.runtime.environments import Environments
from podpath.collectors.runtime.pods import (
    K3S_TASKS,
    collect_pods,
    containers_from_cri,
    docker_container,
)
from podpath.snapshot.model import Process

RUNTIME = Path(__file__).resolve().parents[1] / "fixtures" / "realworld" / "runtime"
ROOT_NET = 4026531840
POD_NET = 4026532500
NS_POD = {"net": POD_NET, "ipc": 4026532501, "uts": 4026532502, "pid": 4026532503}


def _load(name: str) -> dict[str, Any]:
    return load(f"runtime/{name}")


def _proc(pid: int, comm: str, cgroup: str, ns: dict[str, int], ppid: int = 1) -> Process:
    return Process(pid, 5000 + pid, ppid, comm, (comm,), 0, "S", cgroup, dict(ns))


def _ns(stamp: str) -> int:
    """crictl prints CRI's nanosecond times as RFC 3339; back to nanoseconds."""
    got = rfc3339_ns(stamp)
    return got if got is not None else 0


def _crictl_to_listing(inspectp: dict[str, Any], inspect: dict[str, Any]) -> dict[str, Any]:
    """The cri_listing document a runtime answering these `crictl inspectp/inspect` gives.

    crictl prints the CRI responses as protobuf JSON (camelCase, RFC 3339 times); the
    listing keeps the proto field names and integers, as podpath.cri.wire decodes them.
    """
    sb, sb_info = inspectp["status"], inspectp["info"]
    ct, ct_info = inspect["status"], inspect["info"]
    return {
        "sandboxes": [
            {
                "status": {
                    "id": sb["id"],
                    "metadata": sb["metadata"],
                    "state": sb["state"],
                    "created_at": _ns(sb["createdAt"]),
                    "network": {"ip": sb["network"]["ip"], "additional_ips": []},
                    "linux": {"namespaces": {"options": sb["linux"]["namespaces"]["options"]}},
                    "labels": sb["labels"],
                },
                "info": {
                    "pid": sb_info["pid"],
                    "image": sb_info["image"],
                    "args": sb_info["runtimeSpec"]["process"]["args"],
                    "namespaces": sb_info["runtimeSpec"]["linux"]["namespaces"],
                },
            }
        ],
        "containers": [
            {
                "pod_sandbox_id": sb["id"],
                "status": {
                    "id": ct["id"],
                    "metadata": ct["metadata"],
                    "state": ct["state"],
                    "created_at": _ns(ct["createdAt"]),
                    "started_at": _ns(ct["startedAt"]),
                    "finished_at": _ns(ct["finishedAt"]),
                    "exit_code": ct["exitCode"],
                    "image": {"image": ct["image"]["image"]},
                    "image_ref": ct["imageRef"],
                    "labels": ct["labels"],
                    "annotations": ct["annotations"],
                    "log_path": ct["logPath"],
                },
                "info": {
                    "pid": ct_info["pid"],
                    "sandbox_id": ct_info["sandboxID"],
                    "args": ct_info["runtimeSpec"]["process"]["args"],
                    "namespaces": ct_info["runtimeSpec"]["linux"]["namespaces"],
                },
            }
        ],
    }


def test_a_refresh_keeps_the_statuses_of_a_kind_node_and_makes_the_same_pod() -> None:
    """kind's containerd answers, kept by a refresh: the List calls' items (id, state,
    creation time, as crictl shows them) find the kept statuses, and the pod made of
    the merged listing is the one the runtime's answers make."""
    inspectp = _load("kind-containerd-crictl-inspectp-coredns-systemd.json")
    inspect = _load("kind-containerd-crictl-inspect-container-coredns.json")
    fresh = CriListing(
        "containerd", "/run/containerd/containerd.sock", _crictl_to_listing(inspectp, inspect)
    )
    (kept,) = kept_for_refresh([fresh], Environments().of)
    sb, ct = inspectp["status"], inspect["status"]
    listed_sandbox = {"id": sb["id"], "state": sb["state"], "created_at": _ns(sb["createdAt"])}
    listed_container = {"id": ct["id"], "state": ct["state"], "created_at": _ns(ct["createdAt"])}
    statuses = _statuses(kept.document)
    assert status_key(listed_sandbox, True) in statuses
    assert status_key(listed_container, True) in statuses
    child = {
        "sandboxes": [{"same": sb["id"]}],
        "containers": [{"same": ct["id"], "pod_sandbox_id": sb["id"]}],
    }
    merged = _with_kept(child, statuses)
    assert merged is not None
    refreshed = containers_from_cri(CriListing(fresh.runtime, fresh.socket, merged))
    assert [vars(c) for c in refreshed] == [vars(c) for c in containers_from_cri(fresh)]
    # The container exited since: its listed state differs, so its status is asked again.
    assert status_key(dict(listed_container, state="CONTAINER_EXITED"), True) not in statuses


def test_cri_answers_of_a_kind_node_make_the_pod() -> None:
    """kind's containerd answers (crictl inspectp/inspect): sandbox image, state, attempt, image id."""
    inspectp = _load("kind-containerd-crictl-inspectp-coredns-systemd.json")
    inspect = _load("kind-containerd-crictl-inspect-container-coredns.json")
    listing = CriListing(
        "containerd", "/run/containerd/containerd.sock", _crictl_to_listing(inspectp, inspect)
    )
    sandbox, app = containers_from_cri(listing)
    assert (sandbox.kind, sandbox.sandbox_image, sandbox.state, sandbox.attempt) == (
        "sandbox",
        inspectp["info"]["image"],
        "ready",
        0,
    )
    assert sandbox.pod_uid == "44e4b37f-504f-4f1c-80f3-4137bfbec5e4" and sandbox.source == "cri"
    assert (app.name, app.state, app.attempt, app.restart_count) == ("coredns", "running", 0, 0)
    assert app.image == "registry.k8s.io/coredns/coredns:v1.10.1"
    assert app.image_id == inspect["status"]["imageRef"]
    assert app.finished_at is None and app.exit_code is None
    assert app.started_at == _ns(inspect["status"]["startedAt"])
    assert app.log_path == inspect["status"]["logPath"]
    with _EmptyRoot() as host:
        procs = (
            _proc(sandbox.pid or 0, "pause", "/", NS_POD),
            _proc(app.pid or 0, "coredns", "/", {**NS_POD, "pid": 4026532600}),
        )
        pods, gaps = collect_pods(host, procs, ROOT_NET, cri=(listing,))
    (pod,) = pods
    assert (pod.source, pod.sandbox_image, pod.state, pod.pause_pid) == (
        "cri",
        inspectp["info"]["image"],
        "ready",
        sandbox.pid,
    )
    assert [c.shared_namespaces for c in pod.containers] == [(), ("net", "ipc", "uts")]


class _EmptyRoot:
    """A host root with nothing in it (no runtime files): only CRI answers."""

    def __enter__(self) -> HostRoot:
        import tempfile

        self._dir = tempfile.TemporaryDirectory()
        self._host = HostRoot(self._dir.name)
        return self._host.__enter__()

    def __exit__(self, *exc: object) -> None:
        self._host.__exit__(None, None, None)
        self._dir.cleanup()


def test_k3s_state_dir(tmp_path: Path) -> None:
    """k3s's containerd keeps bundles under /run/k3s/containerd; runc state stays in /run/containerd."""
    write_containerd_pod(tmp_path, K3S_TASKS, *kind_specs())
    procs = (_proc(1322, "pause", "/", NS_POD), _proc(1478, "coredns", "/", NS_POD))
    with HostRoot(str(tmp_path)) as host:
        pods, gaps = collect_pods(host, procs, ROOT_NET)
    assert gaps == ()
    (pod,) = pods
    assert (pod.name, pod.runtime, pod.pause_pid) == (
        "coredns-5d78c9869d-79bfv",
        "containerd",
        1322,
    )
    assert {c.id: c.pids for c in pod.containers} == {SB: (1322,), CT: (1478,)}


def test_containerd_before_sandbox_uid(tmp_path: Path) -> None:
    """Without io.kubernetes.cri.sandbox-uid the uid comes from the sandbox's log directory."""
    sandbox, _ = kind_specs()
    del sandbox["annotations"]["io.kubernetes.cri.sandbox-uid"]
    write(
        tmp_path, f"/run/containerd/io.containerd.runtime.v2.task/k8s.io/{SB}/config.json", sandbox
    )
    with HostRoot(str(tmp_path)) as host:
        pods, _ = collect_pods(host, (), ROOT_NET)
    assert pods[0].uid == "44e4b37f-504f-4f1c-80f3-4137bfbec5e4"


# CRI-O marks a dropped infra container's spec "io.kubernetes.cri-o.Spoofed" (the dump's
# form, verbatim), and "spoofed.crio.io" since its annotation migration (cri-o/cri-o
# f954a17e server/sandbox_run_linux.go:1298, pkg/annotations/v2/annotations.go:53, 129).
@pytest.mark.parametrize("spoofed", ["io.kubernetes.cri-o.Spoofed", "spoofed.crio.io"])
def test_crio_without_infra_container(tmp_path: Path, spoofed: str) -> None:
    """CRI-O with drop_infra_ctr: no pause process; the pod is its pinned netns and containers."""
    sandbox = copy.deepcopy(_load("falco-crio-pod-info-runtimespec.json")["runtimeSpec"])
    app = _load("falco-crio-container-info-runtimespec.json")["runtimeSpec"]
    assert sandbox["annotations"]["io.kubernetes.cri-o.Spoofed"] == "true"
    sandbox["annotations"][spoofed] = sandbox["annotations"].pop("io.kubernetes.cri-o.Spoofed")
    sid = sandbox["annotations"]["io.kubernetes.cri-o.SandboxID"]
    cid = app["annotations"]["io.kubernetes.cri-o.ContainerID"]
    write(tmp_path, f"{CRIO_CONTAINERS}/{sid}/userdata/config.json", sandbox)
    write(tmp_path, f"{CRIO_CONTAINERS}/{cid}/userdata/config.json", app)
    write(tmp_path, f"{CRIO_CONTAINERS}/{cid}/userdata/pidfile", "1835083")
    # pinns pins the namespaces under /var/run/{net,ipc,uts}ns (files here: only inodes count).
    netns = "/run/netns/dec735d1-0e86-44c1-94e0-a102173334a4"
    for kind in ("netns", "ipcns", "utsns"):
        write(tmp_path, f"/run/{kind}/dec735d1-0e86-44c1-94e0-a102173334a4", "")
    (tmp_path / "var").mkdir(exist_ok=True)
    (tmp_path / "var" / "run").symlink_to("../run")
    inode = {
        t: (tmp_path / f"run/{t}ns/dec735d1-0e86-44c1-94e0-a102173334a4").stat().st_ino
        for t in ("net", "ipc", "uts")
    }
    procs = (
        _proc(
            1835083, "redis-server", f"/kubepods/besteffort/pod1/crio-{cid}", {**inode, "pid": 7}
        ),
    )
    with HostRoot(str(tmp_path)) as host:
        pods, gaps = collect_pods(host, procs, ROOT_NET)
    assert gaps == ()
    (pod,) = pods
    assert pod.pause_pid is None and pod.runtime == "cri-o"
    assert pod.netns_path == netns
    assert pod.netns_inode == (tmp_path / netns.lstrip("/")).stat().st_ino
    app_model = next(c for c in pod.containers if c.kind == "container")
    assert app_model.pids == (1835083,) and "net" in app_model.shared_namespaces
    assert next(c for c in pod.containers if c.kind == "sandbox").pids == ()


# -- Docker (dockershim / cri-dockerd) -------------------------------------------------------
# The real shape is tested against a real dockerd in tests/lab/test_docker_lab.py; these
# pin the pure parts on the forms dockershim's naming.go and Go's time format produce.


def test_dockershim_names_parse() -> None:
    """k8s_<container>_<pod>_<namespace>_<uid>_<attempt>; other names are not pods'."""
    got = parse_k8s_name(
        "/k8s_POD_coredns-5644d7b6d9-c5tbq_kube-system_caf1aa9e-c2ee-4782-ad6d-98736fa15dd2_13"
    )
    assert got == {
        "container": "POD",
        "pod": "coredns-5644d7b6d9-c5tbq",
        "ns": "kube-system",
        "uid": "caf1aa9e-c2ee-4782-ad6d-98736fa15dd2",
        "attempt": "13",
    }
    assert parse_k8s_name("/k8s_web_a_b_c") is None
    assert parse_k8s_name("/registry") is None


def test_go_times_become_nanoseconds() -> None:
    """RFC 3339 with nanoseconds and zones; Go's zero time is no time."""
    assert rfc3339_ns("1970-01-01T00:00:01.000000002Z") == 1_000_000_002
    assert rfc3339_ns("1970-01-01T01:00:01.5+01:00") == 1_500_000_000
    assert rfc3339_ns("0001-01-01T00:00:00Z") is None
    assert rfc3339_ns("yesterday") is None


def test_host_network_docker_sandbox_has_no_netns_of_its_own() -> None:
    """A hostNetwork sandbox (NetworkMode host) is ready, hostNetwork, with no netns path."""
    config = {
        "Name": "/k8s_POD_kube-proxy-qddkg_kube-system_10f7fc16-c6fc-4a84-b1e1-90c0b99f71c1_26",
        "Image": "sha256:da86e6ba6ca197bf6bc5e9d900febd906b133eaa4750e6bed647b0fbe50ed43e",
        "Config": {
            "Image": "k8s.gcr.io/pause:3.1",
            "Labels": {"io.kubernetes.docker.type": "podsandbox"},
        },
        "State": {"Running": True, "Pid": 77, "StartedAt": "2019-10-02T19:01:22.9Z"},
        "NetworkSettings": {"SandboxKey": "/var/run/docker/netns/default"},
    }
    rc = docker_container("a" * 64, config, {"NetworkMode": "host"})
    assert (rc.kind, rc.state, rc.host_network, rc.pid, rc.attempt) == (
        "sandbox",
        "ready",
        True,
        77,
        26,
    )
    assert rc.pod_name == "kube-proxy-qddkg" and rc.sandbox_image == "k8s.gcr.io/pause:3.1"
    assert "net" not in rc.ns_paths


# -- CRI-O under a run root of its own, on a real node's dump --------------------------------
# IBM Cloud IKS runs CRI-O with containers/storage's run root at /var/data/crioruntimestorage;
# core-dump-handler's crictl mock replays what crictl printed on such a node (verbatim).
IKS_MOCK = RUNTIME / "ibm-core-dump-handler-iks-crio-crictl-mock.sh"
IKS_RUNROOT = "/var/data/crioruntimestorage/overlay-containers"


def _crictl_answer(script: Path, command: str) -> dict[str, Any]:
    """The JSON the mock's `crictl COMMAND` branch echoes (between `echo '` and `'`)."""
    text = script.read_text()
    branch = text.split(f'if [ "$cmd" = "{command}" ]', 1)[1]
    body = branch.split("echo '", 1)[1].split("'\nfi", 1)[0]
    answer: dict[str, Any] = json.loads(body)
    return answer


def _iks_node(tmp_path: Path) -> tuple[dict[str, Any], tuple[Process, ...]]:
    """The IKS sandbox's spec and pidfile where CRI-O wrote them, its pinned netns, and
    its pause process; and the conmon that CRI-O starts with the bundle it names."""
    inspectp = _crictl_answer(IKS_MOCK, "inspectp")
    spec = inspectp["runtimeSpec"] if "runtimeSpec" in inspectp else inspectp["info"]["runtimeSpec"]
    sid = inspectp["status"]["id"]
    bundle = f"{IKS_RUNROOT}/{sid}/userdata"
    write(tmp_path, f"{bundle}/config.json", spec)
    write(tmp_path, f"{bundle}/pidfile", str(inspectp["info"]["pid"]))
    (net,) = [n["path"] for n in spec["linux"]["namespaces"] if n["type"] == "network"]
    write(tmp_path, net, "")
    inode = (tmp_path / net.lstrip("/")).stat().st_ino
    uid = inspectp["status"]["metadata"]["uid"].replace("-", "_")
    slice_ = f"/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{uid}.slice"
    pause = Process(
        inspectp["info"]["pid"], 9000, 1, "pause", ("/pause",), 0, "S",
        f"{slice_}/crio-{sid}.scope", {"net": inode, "mnt": 4026532900},
    )  # fmt: skip
    # conmon's flags as CRI-O passes them (cri-o internal/oci/runtime_oci.go; the same
    # form `ps` shows on real nodes): -b is the bundle, the userdata directory.
    conmon = Process(
        38080, 8990, 1, "conmon",
        ("/usr/bin/conmon", "-b", bundle, "-c", sid, "--exit-dir", "/var/run/crio/exits",
         "-p", f"{bundle}/pidfile", "-u", sid, "-s"),
        0, "S", f"{slice_}/crio-conmon-{sid}.scope", {"mnt": 4026531841},
    )  # fmt: skip
    return inspectp, (pause, conmon)


def test_crio_run_root_of_its_own_is_found_from_conmon(tmp_path: Path) -> None:
    """A real IKS CRI-O sandbox under /var/data/crioruntimestorage: found through its
    conmon's bundle, with the name, uid, IP, pause image, pause PID and netns CRI reported."""
    inspectp, procs = _iks_node(tmp_path)
    init = Process(1, 1, 0, "systemd", ("/sbin/init",), 0, "S", "/", {"mnt": 4026531841})
    with HostRoot(str(tmp_path)) as host:
        pods, gaps = collect_pods(host, (init, *procs), ROOT_NET)
    assert gaps == ()
    (pod,) = pods
    status, info = inspectp["status"], inspectp["info"]
    assert (pod.namespace, pod.name, pod.uid) == (
        "default",
        "segfaulter",
        status["metadata"]["uid"],
    )
    assert pod.sandbox_id == status["id"] and pod.runtime == "cri-o"
    assert pod.ips == (status["network"]["ip"],)
    assert (
        pod.sandbox_image == info["image"] == "registry.eu-gb.bluemix.net/armada-master/pause:3.5"
    )
    assert pod.pause_pid == info["pid"]
    assert pod.netns_path == "/var/run/netns/9abac4ae-94a6-4853-b299-e4c1c2c508c0"


def test_crio_run_root_without_conmon_is_not_guessed(tmp_path: Path) -> None:
    """Without a conmon naming it, the IKS run root is not read: the pod is known only
    from its cgroup (no CRI-O annotations), never invented from a guessed directory."""
    _, (pause, _) = _iks_node(tmp_path)
    with HostRoot(str(tmp_path)) as host:
        pods, _ = collect_pods(host, (pause,), ROOT_NET)
    assert all(p.runtime != "cri-o" or p.name != "segfaulter" for p in pods)


def test_conmon_bundles_name_run_roots() -> None:
    """`-b`, `--bundle` and `--bundle=` name `<runroot>/overlay-containers`; /var/run is
    /run; a bundle of another shape names nothing."""
    cid = "a" * 64
    assert crio_dirs.containers_dir(
        f"/var/run/containers/storage/overlay-containers/{cid}/userdata"
    ) == (crio_dirs.CRIO_CONTAINERS)
    assert crio_dirs.bundle_of(("conmon", "--bundle=/x")) == "/x"
    assert crio_dirs.bundle_of(("conmon", "--bundle", "/y")) == "/y"
    assert crio_dirs.containers_dir(f"/srv/overlay-containers/{cid}/rootfs") is None
    assert crio_dirs.containers_dir("/srv/overlay-containers/short/userdata") is None
