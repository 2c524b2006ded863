"""Pods without an API server: from the runtime's own state, else from fallbacks.

Sources, best first:
0. the CRI socket of the runtime (collectors/runtime/cri_state.py): read-only ListPodSandbox,
   PodSandboxStatus, ListContainers and ContainerStatus calls, as crictl makes them;
   the only source of exited and created containers, attempts and the sandbox image;
1. containerd: bundle `config.json` under /run/containerd/io.containerd.runtime.v2.task/k8s.io/<id>/
   (OCI spec with io.kubernetes.cri.* annotations) and runc's state.json under
   /run/containerd/runc/k8s.io/<id>/ (init PID and start time; its config.labels
   repeat the annotations as "key=value" when the bundle is unreadable);
2. CRI-O: /run/containers/storage/overlay-containers/<id>/userdata/config.json
   (io.kubernetes.cri-o.* annotations) with runc's state under /run/runc/<id>/;
   Docker (dockershim, cri-dockerd): /var/lib/docker/containers/<id>/config.v2.json;
3. fallbacks: cgroup paths of processes (pod UID, container ID, runtime),
   /var/log/pods/<namespace>_<name>_<uid> for names, pause processes
   (comm `pause`, `catatonit -P`) and the first process in a /run/netns/cni-* netns.

kindnet's pod database (collectors/runtime/kindnet_db.py), where present, fills in
the pods these found (by sandbox id, else by network namespace) and adds the pods
it alone knows, with source "kindnet-db".

Everything read from the node is hostile input: JSON errors become gaps, never crashes.
"""

from __future__ import annotations

import json
import os
import re
import stat
import threading
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from podpath.collectors.hostroot import CollectorError, HostRoot, Vanished, read_json_object
from podpath.collectors.runtime.cgroups import parse_cgroup_path
from podpath.collectors.runtime.containerd_daemons import running_daemons
from podpath.collectors.runtime.containerd_meta import container_images
from podpath.collectors.runtime.cri_state import (
    CONTAINERD_CRI_ROOTS,
    CONTAINERD_ROOTS,
    CriListing,
    container_status_file,
    state_from_status_file,
    state_name,
)
from podpath.collectors.runtime.crio_dirs import CRIO_CONTAINERS, crio_dirs
from podpath.collectors.runtime.docker_state import (
    container_ids,
    parse_k8s_name,
    read_config,
    rfc3339_ns,
    state_of,
)
from podpath.collectors.runtime.environments import Environments
from podpath.collectors.runtime.kindnet_db import SOURCE as KINDNET_SOURCE
from podpath.collectors.runtime.kindnet_db import KindnetPod, read_kindnet_db
from podpath.snapshot.model import Container, Gap, IpamAllocation, Namespace, Pod, Process

CONTAINERD_TASKS = "/run/containerd/io.containerd.runtime.v2.task/k8s.io"
CONTAINERD_RUNC = "/run/containerd/runc/k8s.io"
# k3s runs its own containerd with state in /run/k3s/containerd; the runc shim's root
# stays /run/containerd/runc whatever the state dir (the shim's default Root option).
K3S_TASKS = "/run/k3s/containerd/io.containerd.runtime.v2.task/k8s.io"
CONTAINERD_TASK_ROOTS = (CONTAINERD_TASKS, K3S_TASKS)
# containerd 2.x's sandbox-image annotation (io.kubernetes.cri.podsandbox.image-name).
CONTAINERD_SANDBOX_IMAGE = "io.kubernetes.cri.podsandbox.image-name"
CRIO_RUNC = "/run/runc"
POD_LOGS = "/var/log/pods"
_MAX_CONFIG = 4 * 1024 * 1024
_ID = re.compile(r"^[0-9a-f]{64}$")
# OCI namespace type -> lsns/procfs name
_OCI_NS = {
    "network": "net",
    "mount": "mnt",
    "pid": "pid",
    "ipc": "ipc",
    "uts": "uts",
    "user": "user",
    "cgroup": "cgroup",
    "time": "time",
}
_SHARED_ORDER = ("net", "ipc", "uts", "pid", "mnt", "user", "cgroup", "time")


@dataclass
class RuntimeContainer:
    """One container or sandbox as the runtime's state files describe it."""

    id: str
    runtime: str
    kind: str = "container"  # sandbox | container
    sandbox_id: str | None = None
    pod_namespace: str | None = None
    pod_name: str | None = None
    pod_uid: str | None = None
    name: str | None = None
    image: str | None = None
    command: tuple[str, ...] = ()
    env: tuple[str, ...] = ()
    # Service-link variables already left out of `env` (Environments.without_links).
    service_link_env: int = 0
    ns_paths: dict[str, str | None] = field(default_factory=dict)  # type -> path (None: own)
    pid: int | None = None
    start_time: int | None = None
    log_dir: str | None = None
    ips: tuple[str, ...] = ()
    host_network: bool | None = None
    cgroups_path: str | None = None
    source: str = "runtime-state"  # cri | runtime-state
    state: str | None = None
    attempt: int | None = None
    restart_count: int | None = None
    exit_code: int | None = None
    created_at: int | None = None
    started_at: int | None = None
    finished_at: int | None = None
    reason: str | None = None
    image_id: str | None = None
    log_path: str | None = None
    sandbox_image: str | None = None  # sandboxes only
    # What the CNI plugin recorded (kindnet's database), sandboxes only.
    host_interface: str | None = None
    gateways: tuple[str, ...] = ()
    mtu: int | None = None
    also_from: tuple[str, ...] = ()  # other sources that filled in this record


def _strs(value: Any) -> tuple[str, ...]:
    return tuple(str(v) for v in value) if isinstance(value, list) else ()


def _json_obj(text: str) -> dict[str, Any] | None:
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


# -- OCI config and runc state ---------------------------------------------------------------


def parse_oci_config(
    spec: dict[str, Any],
    cid: str,
    runtime: str,
    envs: Environments | None = None,
    *,
    running: bool = False,
) -> RuntimeContainer:
    """A RuntimeContainer from an OCI runtime spec (bundle config.json) with CRI annotations.

    `running`: its init is alive (runc's state and the process scan agree), so an app
    container's Service-link variables are read from this spec and its env is left
    short of them here, as without_service_link_env would leave it.
    """
    ann = spec.get("annotations") if isinstance(spec.get("annotations"), dict) else {}
    assert isinstance(ann, dict)
    ann = {str(k): str(v) for k, v in ann.items()}
    rc = RuntimeContainer(id=cid, runtime=runtime)
    process = spec.get("process") if isinstance(spec.get("process"), dict) else {}
    assert isinstance(process, dict)
    rc.command = _strs(process.get("args"))
    linux = spec.get("linux") if isinstance(spec.get("linux"), dict) else {}
    assert isinstance(linux, dict)
    for ns in linux.get("namespaces") or []:
        if isinstance(ns, dict) and str(ns.get("type")) in _OCI_NS:
            path = ns.get("path")
            rc.ns_paths[_OCI_NS[str(ns["type"])]] = str(path) if path else None
    if isinstance(linux.get("cgroupsPath"), str):
        rc.cgroups_path = linux["cgroupsPath"]
    if "io.kubernetes.cri.container-type" in ann or "io.kubernetes.cri.sandbox-id" in ann:
        _apply_containerd(rc, ann)
    elif "io.kubernetes.cri-o.ContainerType" in ann or "io.kubernetes.cri-o.SandboxID" in ann:
        _apply_crio(rc, ann)
    if rc.kind == "sandbox" and rc.host_network is None:
        # A sandbox without its own network namespace entry runs in the host's.
        rc.host_network = "net" not in rc.ns_paths
    envs = envs or Environments()
    if running and rc.kind == "container":
        rc.env, rc.service_link_env = envs.without_links(process.get("env"), cid)
    else:
        rc.env = envs.of(process.get("env"))
    return rc


def _apply_containerd(rc: RuntimeContainer, ann: dict[str, str]) -> None:
    rc.runtime = "containerd"
    rc.kind = "sandbox" if ann.get("io.kubernetes.cri.container-type") == "sandbox" else "container"
    rc.sandbox_id = ann.get("io.kubernetes.cri.sandbox-id") or (
        rc.id if rc.kind == "sandbox" else None
    )
    rc.pod_name = ann.get("io.kubernetes.cri.sandbox-name")
    rc.pod_namespace = ann.get("io.kubernetes.cri.sandbox-namespace")
    rc.pod_uid = ann.get("io.kubernetes.cri.sandbox-uid")
    rc.name = ann.get("io.kubernetes.cri.container-name") or (
        "POD" if rc.kind == "sandbox" else None
    )
    rc.image = ann.get("io.kubernetes.cri.image-name")
    if rc.kind == "sandbox":
        # containerd 2.x names the pause image on the sandbox's own spec (1.6/1.7 do not:
        # there only CRI knows it), internal/cri/annotations DefaultCRIAnnotations.
        rc.image = rc.sandbox_image = ann.get(CONTAINERD_SANDBOX_IMAGE) or rc.image
    rc.log_dir = ann.get("io.kubernetes.cri.sandbox-log-directory")
    if not rc.pod_uid and rc.kind == "sandbox":
        # Before sandbox-uid (containerd 1.7), the uid is the log directory's last field
        # (/var/log/pods/<namespace>_<name>_<uid>), else the cgroup's pod<uid>.
        tail = os.path.basename(rc.log_dir or "").split("_")
        rc.pod_uid = tail[2] if len(tail) == 3 and tail[2] else None
        if not rc.pod_uid and rc.cgroups_path:
            rc.pod_uid = parse_cgroup_path(rc.cgroups_path).pod_uid


def _apply_crio(rc: RuntimeContainer, ann: dict[str, str]) -> None:
    rc.runtime = "cri-o"
    rc.kind = (
        "sandbox" if ann.get("io.kubernetes.cri-o.ContainerType") == "sandbox" else "container"
    )
    rc.sandbox_id = ann.get("io.kubernetes.cri-o.SandboxID") or (
        rc.id if rc.kind == "sandbox" else None
    )
    meta = _json_obj(ann.get("io.kubernetes.cri-o.Metadata", "")) or {}
    labels = _json_obj(ann.get("io.kubernetes.cri-o.Labels", "")) or {}
    rc.pod_name = (
        ann.get("io.kubernetes.pod.name")
        or str(labels.get("io.kubernetes.pod.name") or "")
        or (str(meta["name"]) if rc.kind == "sandbox" and "name" in meta else None)
    )
    rc.pod_namespace = (
        ann.get("io.kubernetes.pod.namespace")
        or str(labels.get("io.kubernetes.pod.namespace") or "")
        or ann.get("io.kubernetes.cri-o.Namespace")
        or (str(meta["namespace"]) if "namespace" in meta else None)
    )
    rc.pod_uid = (
        ann.get("io.kubernetes.pod.uid")
        or str(labels.get("io.kubernetes.pod.uid") or "")
        or (str(meta["uid"]) if rc.kind == "sandbox" and "uid" in meta else None)
    )
    rc.name = (
        ann.get("io.kubernetes.container.name")
        or str(labels.get("io.kubernetes.container.name") or "")
        or (str(meta["name"]) if "name" in meta else None)
    )
    rc.image = ann.get("io.kubernetes.cri-o.ImageName") or ann.get("io.kubernetes.cri-o.Image")
    if rc.kind == "sandbox":
        # The infra (or spoofed) container's image is the pod's pause image (a real IKS
        # dump names it only in io.kubernetes.cri-o.Image, without ImageName).
        rc.sandbox_image = rc.image
    ips = [v for k, v in sorted(ann.items()) if k.startswith("io.kubernetes.cri-o.IP.")]
    rc.ips = tuple(ips) or _cni_result_ips(ann.get("io.kubernetes.cri-o.CNIResult", ""))
    hn = ann.get("io.kubernetes.cri-o.HostNetwork")
    rc.host_network = None if hn is None else hn == "true"
    log = ann.get("io.kubernetes.cri-o.LogPath", "")
    if log.startswith(POD_LOGS + "/"):
        rc.log_dir = "/".join(log.split("/")[:5])


def _cni_result_ips(text: str) -> tuple[str, ...]:
    result = _json_obj(text) or {}
    out = []
    for ip in result.get("ips") or []:
        if isinstance(ip, dict) and isinstance(ip.get("address"), str):
            out.append(ip["address"].split("/")[0])
    return tuple(out)


def apply_runc_state(rc: RuntimeContainer, state: dict[str, Any]) -> None:
    """Fill the init PID and start time from runc's state.json."""
    pid = state.get("init_process_pid")
    if isinstance(pid, int) and pid > 0:
        rc.pid = pid
    start = state.get("init_process_start")
    try:
        # An int in current runc, a string in docker-era libcontainer.
        rc.start_time = int(start) if start is not None else None
    except (TypeError, ValueError):
        rc.start_time = None


def labels_as_annotations(state: dict[str, Any]) -> dict[str, str]:
    """runc keeps the OCI annotations as "key=value" labels in state.json's config."""
    config = state.get("config")
    labels = config.get("labels") if isinstance(config, dict) else None
    out: dict[str, str] = {}
    for label in labels or []:
        if isinstance(label, str) and "=" in label:
            k, _, v = label.partition("=")
            out[k] = v
    return out


# -- readers -----------------------------------------------------------------------------------


def _list_ids(host: HostRoot, path: str, gaps: list[Gap]) -> list[str]:
    try:
        return sorted(n for n in host.listdir(path) if _ID.match(n))
    except Vanished:
        return []
    except CollectorError as err:
        gaps.append(err.to_gap())
        return []


@dataclass(frozen=True)
class _Parsed:
    """A container as parsed from its bundle, and what proves a later read would be the same."""

    bundle: tuple[int, ...]  # config.json's device, inode, size, mtime and ctime (ns)
    pid: int  # the init's PID and start time, from runc's state
    start_time: int
    record: RuntimeContainer  # a copy nobody changes
    links: tuple[str, ...] | None  # its Service-link variables (Environments.service_links)


@dataclass
class BundleMemo:
    """The containers one snapshot parsed from containerd bundles, for the next refresh.

    A container's runtime spec cannot change after it is created: containerd writes
    config.json once, into the new bundle directory of the task (containerd 1.x
    runtime/v2/bundle.go NewBundle), and a new task starts a new init process. So while
    a container keeps its id, its init keeps its PID and start time, and the file keeps
    its inode, size and times (were it written again, they would change: it is then
    read again), the record parsed from it is the one a fresh read would give: the
    refresh reuses it instead of reading and decoding the spec again (0.9 MB with 26k
    variables a container on the benchmark node, BENCHMARKS.md). Anything else changed
    is read again. Only records whose init was alive are kept; `redact` must match.
    """

    redact: bool
    parsed: dict[tuple[str, str], _Parsed] = field(default_factory=dict)


@dataclass
class _Reading:
    """What read_containerd needs besides the files: processes, and the memos."""

    procs: Mapping[int, Process]
    previous: BundleMemo | None
    memo: BundleMemo | None


def _fingerprint(host: HostRoot, path: str) -> tuple[int, ...] | None:
    try:
        st = host.stat(path)
    except CollectorError:
        return None
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def read_containerd(
    host: HostRoot,
    gaps: list[Gap],
    envs: Environments,
    task_roots: tuple[str, ...] = CONTAINERD_TASK_ROOTS,
    reading: _Reading | None = None,
) -> list[RuntimeContainer]:
    """Containers and sandboxes of containerd's k8s.io namespace, under each state dir."""
    out = []
    # Bundles first, under each state dir; then runc state of a container whose bundle
    # is unreadable still names it (the runc shim's root is shared by all state dirs).
    where = {cid: tasks for tasks in reversed(task_roots) for cid in _list_ids(host, tasks, gaps)}
    for cid in _list_ids(host, CONTAINERD_RUNC, gaps):
        where.setdefault(cid, CONTAINERD_TASKS)
    for cid, tasks in sorted(where.items()):
        rc = _read_containerd_one(host, tasks, cid, gaps, envs, reading)
        if rc is not None:
            out.append(rc)
    return out


def containerd_bundle_keys(host: HostRoot) -> list[tuple[str, str]]:
    """(state dir, container id) of each bundle in the well-known state dirs, for
    `parse_bundle_ahead` (a state dir missing or unreadable lists none: read_containerd
    reports it)."""
    return [(tasks, cid) for tasks in CONTAINERD_TASK_ROOTS for cid in _list_ids(host, tasks, [])]


def parse_bundle_ahead(
    memo: BundleMemo, host: HostRoot, key: tuple[str, str], envs: Environments
) -> None:
    """Put one bundle's record in `memo` as read_containerd would parse it for a running
    init, for read_containerd to reuse as it reuses a refresh's memo.

    Done before the process table is read (podpath.collectors.runtime.bundles_ahead), so
    the record names the init runc's state names, and read_containerd takes it only
    where that init is alive, with the same start time, and config.json is unchanged
    (`_same_container`). Anything unreadable is left out: read_containerd reads it
    itself, and reports it. `envs` is left as it was found, short of this container's
    Service-link variables (the memo's record holds them).
    """
    tasks, cid = key
    state = read_json_object(host, f"{CONTAINERD_RUNC}/{cid}/state.json", [], _MAX_CONFIG)
    if state is None or (init := _runc_init(state)) is None:
        return
    bundle = _fingerprint(host, f"{tasks}/{cid}/config.json")
    spec = read_json_object(host, f"{tasks}/{cid}/config.json", [], _MAX_CONFIG)
    if bundle is None or spec is None or "process" not in spec:
        return
    rc = parse_oci_config(spec, cid, "containerd", envs, running=True)
    apply_runc_state(rc, state)
    links = envs.service_links.pop(cid, None)
    if (rc.pid, rc.start_time) == init and memo.redact == envs.redact:
        memo.parsed[key] = _Parsed(bundle, *init, rc, links)


def containerd_bundles(host: HostRoot) -> frozenset[str]:
    """IDs of the containerd tasks whose runtime spec read_containerd can read (config.json).

    CRI's verbose ContainerStatus carries the same spec (and containerd adds the CRI
    config, which repeats the environment): asked for these too, the 10k-Service
    benchmark node's 250 containers sent 450 MB that was decoded and dropped
    (BENCHMARKS.md). For these the CRI listing asks the plain status only.
    """
    found: set[str] = set()
    for tasks in CONTAINERD_TASK_ROOTS:
        try:
            names = host.listdir(tasks)
        except CollectorError:
            continue  # not this runtime's layout, or unreadable: read_containerd says so
        found.update(
            cid
            for cid in names
            if _ID.match(cid) and _readable_spec(host, f"{tasks}/{cid}/config.json")
        )
    return frozenset(found)


def _readable_spec(host: HostRoot, path: str) -> bool:
    """Whether read_containerd can read this spec: a regular file it may open, in bounds."""
    try:  # opened for reading as it will be (O_NONBLOCK: a FIFO there does not block)
        fd = host.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except CollectorError:
        return False
    try:
        st = os.fstat(fd)
    finally:
        os.close(fd)
    return stat.S_ISREG(st.st_mode) and st.st_size <= _MAX_CONFIG


def _read_containerd_one(
    host: HostRoot,
    tasks: str,
    cid: str,
    gaps: list[Gap],
    envs: Environments,
    reading: _Reading | None = None,
) -> RuntimeContainer | None:
    """One container of a containerd state dir, from its bundle and runc state."""
    state = read_json_object(host, f"{CONTAINERD_RUNC}/{cid}/state.json", gaps, _MAX_CONFIG)
    init = _alive_init(state, reading.procs) if state is not None and reading else None
    bundle = None
    if init is not None and reading is not None:
        # Before the read: a file changed after its stat is read again next time.
        bundle = _fingerprint(host, f"{tasks}/{cid}/config.json")
        same = _same_container(reading.previous, envs, (tasks, cid), bundle, init)
        if same is not None:
            if reading.memo is not None:
                reading.memo.parsed[(tasks, cid)] = same
            if same.links is not None:
                envs.service_links[cid] = same.links
            return replace(same.record, ns_paths=dict(same.record.ns_paths))
    spec = read_json_object(host, f"{tasks}/{cid}/config.json", gaps, _MAX_CONFIG)
    if spec is None and state is not None:
        spec = {"annotations": labels_as_annotations(state)}
        cfg = state.get("config")
        if isinstance(cfg, dict) and isinstance(cfg.get("namespaces"), list):
            spec["linux"] = {
                "namespaces": [
                    {"type": _runc_ns_type(n.get("type")), "path": n.get("path")}
                    for n in cfg["namespaces"]
                    if isinstance(n, dict)
                ]
            }
    if spec is None:
        return None
    from_bundle = "process" in spec
    rc = parse_oci_config(spec, cid, "containerd", envs, running=init is not None)
    if state is not None:
        apply_runc_state(rc, state)
    elif rc.pid is None:
        rc.pid = _read_pidfile(host, f"{tasks}/{cid}/init.pid")
    if from_bundle and bundle is not None and init is not None and reading is not None:
        if reading.memo is not None and rc.pid == init[0] and rc.start_time == init[1]:
            copy = replace(rc, ns_paths=dict(rc.ns_paths))
            links = envs.service_links.get(cid)
            reading.memo.parsed[(tasks, cid)] = _Parsed(bundle, *init, copy, links)
    return rc


def _runc_init(state: dict[str, Any]) -> tuple[int, int] | None:
    """(PID, start time) of the init runc's state names, when it names one."""
    pid, start = state.get("init_process_pid"), state.get("init_process_start")
    if type(pid) is not int or type(start) is not int or pid <= 0:
        return None
    return pid, start


def _alive_init(state: dict[str, Any], procs: Mapping[int, Process]) -> tuple[int, int] | None:
    """(PID, start time) of the init runc's state names, when that very process is alive."""
    init = _runc_init(state)
    if init is None:
        return None
    proc = procs.get(init[0])
    return init if proc is not None and proc.start_time == init[1] else None


def _same_container(
    previous: BundleMemo | None,
    envs: Environments,
    key: tuple[str, str],
    bundle: tuple[int, ...] | None,
    init: tuple[int, int],
) -> _Parsed | None:
    """The previous snapshot's record of this container if it is provably the same one."""
    if previous is None or bundle is None or previous.redact != envs.redact:
        return None
    found = previous.parsed.get(key)
    if found is None or found.bundle != bundle or (found.pid, found.start_time) != init:
        return None
    return found


def _runc_ns_type(value: Any) -> str:
    # libcontainer's config uses "NEWNET", "NEWIPC", ... in state.json
    return {
        "NEWNET": "network",
        "NEWNS": "mount",
        "NEWPID": "pid",
        "NEWIPC": "ipc",
        "NEWUTS": "uts",
        "NEWUSER": "user",
        "NEWCGROUP": "cgroup",
        "NEWTIME": "time",
    }.get(str(value), str(value))


def _read_pidfile(host: HostRoot, path: str) -> int | None:
    try:
        raw = host.read_text(path, limit=64).strip()
    except CollectorError:
        return None
    return int(raw) if raw.isdigit() else None


def read_crio(
    host: HostRoot,
    gaps: list[Gap],
    envs: Environments,
    dirs: tuple[str, ...] = (CRIO_CONTAINERS,),
) -> list[RuntimeContainer]:
    """Containers and sandboxes from CRI-O's state (containers/storage userdata) in `dirs`."""
    out = []
    for where in dirs:
        for cid in _list_ids(host, where, gaps):
            spec = read_json_object(host, f"{where}/{cid}/userdata/config.json", [], _MAX_CONFIG)
            if spec is None:
                continue  # image layers' containers (podman, builds) have no config: not ours
            rc = parse_oci_config(spec, cid, "cri-o", envs)
            if rc.runtime != "cri-o":
                continue
            state = read_json_object(host, f"{CRIO_RUNC}/{cid}/state.json", [], _MAX_CONFIG)
            if state is not None:
                apply_runc_state(rc, state)
            if rc.pid is None:
                rc.pid = _read_pidfile(host, f"{where}/{cid}/userdata/pidfile")
            out.append(rc)
    return out


def read_docker(host: HostRoot, gaps: list[Gap], envs: Environments) -> list[RuntimeContainer]:
    """Sandboxes and containers dockershim or cri-dockerd made, from dockerd's files."""
    out = []
    for cid in container_ids(host, gaps):
        found = read_config(host, cid, gaps)
        if found is not None:
            out.append(docker_container(cid, *found, envs))
    return out


def docker_container(
    cid: str, config: dict[str, Any], hostconfig: dict[str, Any], envs: Environments | None = None
) -> RuntimeContainer:
    """A RuntimeContainer from a Kubernetes-made container's config.v2.json + hostconfig.json."""
    cfg = config.get("Config") if isinstance(config.get("Config"), dict) else {}
    assert isinstance(cfg, dict)
    labels = cfg.get("Labels") if isinstance(cfg.get("Labels"), dict) else {}
    assert isinstance(labels, dict)
    labels = {str(k): str(v) for k, v in labels.items()}
    named = parse_k8s_name(str(config.get("Name", ""))) or {}
    rc = RuntimeContainer(id=cid, runtime="docker")
    sandbox = (
        labels.get("io.kubernetes.docker.type") == "podsandbox" or named.get("container") == "POD"
    )
    rc.kind = "sandbox" if sandbox else "container"
    rc.sandbox_id = cid if sandbox else labels.get("io.kubernetes.sandbox.id")
    rc.pod_name = labels.get("io.kubernetes.pod.name") or named.get("pod")
    rc.pod_namespace = labels.get("io.kubernetes.pod.namespace") or named.get("ns")
    rc.pod_uid = labels.get("io.kubernetes.pod.uid") or named.get("uid")
    rc.name = (
        "POD" if sandbox else (labels.get("io.kubernetes.container.name") or named.get("container"))
    )
    attempt = named.get("attempt")
    rc.attempt = int(attempt) if attempt is not None else None
    restarts = labels.get("annotation.io.kubernetes.container.restartCount")
    rc.restart_count = int(restarts) if restarts and restarts.isdigit() else None
    rc.image = str(cfg.get("Image") or "") or None
    rc.image_id = str(config.get("Image") or "") or None
    if sandbox:
        rc.sandbox_image = rc.image
    path = str(config.get("Path") or "")
    args = config.get("Args") if isinstance(config.get("Args"), list) else []
    rc.command = tuple([path] if path else []) + _strs(args)
    rc.env = (envs or Environments()).of(cfg.get("Env"))
    state = config.get("State") if isinstance(config.get("State"), dict) else {}
    assert isinstance(state, dict)
    rc.state = state_of(state)
    pid = state.get("Pid")
    rc.pid = pid if rc.state == "running" and isinstance(pid, int) and pid > 0 else None
    if sandbox:
        # dockershim's PodSandboxStatus: READY while the sandbox container runs.
        rc.state = "ready" if rc.state == "running" else "notready"
    rc.created_at = rfc3339_ns(config.get("Created"))
    rc.started_at = rfc3339_ns(state.get("StartedAt"))
    rc.finished_at = rfc3339_ns(state.get("FinishedAt"))
    if rc.state == "exited":
        code = state.get("ExitCode")
        rc.exit_code = code if isinstance(code, int) else None
    mode = str(hostconfig.get("NetworkMode") or "")
    if sandbox:
        settings = config.get("NetworkSettings")
        key = settings.get("SandboxKey") if isinstance(settings, dict) else None
        rc.host_network = mode == "host"
        if key and not rc.host_network:
            rc.ns_paths["net"] = str(key)  # /var/run/docker/netns/<12 hex>
        rc.ips = _docker_ips(config)
    elif mode.startswith("container:"):
        rc.ns_paths["net"] = None  # shares the sandbox's: compared through processes
    if isinstance(hostconfig.get("CgroupParent"), str):
        rc.cgroups_path = hostconfig["CgroupParent"]
    log = labels.get("io.kubernetes.container.logpath")
    if log and log.startswith(POD_LOGS + "/"):
        rc.log_path = log
        rc.log_dir = "/".join(log.split("/")[:5])
    return rc


def _docker_ips(config: dict[str, Any]) -> tuple[str, ...]:
    # A CNI-networked sandbox runs with NetworkMode none: Docker knows no IP, CNI does.
    settings = config.get("NetworkSettings")
    networks = settings.get("Networks") if isinstance(settings, dict) else None
    ips = []
    for net in (networks or {}).values():
        if isinstance(net, dict) and net.get("IPAddress"):
            ips.append(str(net["IPAddress"]))
    return tuple(ips)


def read_pod_log_dirs(host: HostRoot) -> dict[str, tuple[str, str, str]]:
    """uid -> (namespace, name, path) from /var/log/pods/<namespace>_<name>_<uid>."""
    try:
        names = host.listdir(POD_LOGS)
    except CollectorError:
        return {}
    out = {}
    for entry in names:
        # namespace and name cannot contain "_" (DNS labels), the uid neither.
        parts = entry.split("_")
        if len(parts) == 3 and all(parts):
            out[parts[2]] = (parts[0], parts[1], f"{POD_LOGS}/{entry}")
    return out


# -- assembly ----------------------------------------------------------------------------------


def is_pause(p: Process) -> bool:
    """A pod's infra process: pause, or catatonit -P (CRI-O/podman's pause)."""
    if p.comm == "pause" or (p.cmdline and os.path.basename(p.cmdline[0]) == "pause"):
        return True
    return p.comm == "catatonit" and "-P" in p.cmdline


def _alive(p: Process | None, start_time: int | None) -> bool:
    return p is not None and (start_time is None or p.start_time == start_time)


def _shared(
    container: Process | None,
    sandbox: Process | None,
    rc: RuntimeContainer,
    sandbox_rc: RuntimeContainer | None,
    pinned: dict[str, int] | None = None,
) -> tuple[str, ...]:
    """Namespace types a container shares with its sandbox (from processes, else from config).

    `pinned`: the sandbox's namespaces held by bind mounts (CRI-O's pinns), by inode, for
    a sandbox with no process of its own (drop_infra_ctr).
    """
    theirs = sandbox.namespaces if sandbox is not None else (pinned or {})
    if container is not None and container.namespaces and theirs:
        return tuple(
            t
            for t in _SHARED_ORDER
            if t in container.namespaces and container.namespaces[t] == theirs.get(t)
        )
    shared = []
    sb_pid = sandbox_rc.pid if sandbox_rc else None
    for t in _SHARED_ORDER:
        path = rc.ns_paths.get(t)
        if not path:
            continue
        if (sb_pid and path == f"/proc/{sb_pid}/ns/{t}") or (
            sandbox_rc is not None and sandbox_rc.ns_paths.get(t) == path
        ):
            shared.append(t)
    return tuple(shared)


@dataclass
class _Ctx:
    host: HostRoot
    procs: dict[int, Process]
    by_container: dict[str, list[int]]
    root_netns: int | None
    alloc_by_container: dict[str, list[str]]
    gaps: list[Gap]
    # The node's own namespaces (PID 1's): a container in one of these shares it with
    # every process of the node, not with its sandbox in particular.
    node_ns: dict[str, int] = field(default_factory=dict)
    # net namespace inode -> its nsfs bind mount (/run/netns/cni-...), from the scan.
    netns_paths: dict[int, str] = field(default_factory=dict)


def _netns_of(ctx: _Ctx, pause: Process | None, path: str | None) -> int | None:
    if pause is not None and "net" in pause.namespaces:
        return pause.namespaces["net"]
    if path:
        try:
            return ctx.host.stat(path).st_ino
        except CollectorError:
            return None
    return None


def _container_model(
    ctx: _Ctx,
    rc: RuntimeContainer,
    sandbox_proc: Process | None,
    sandbox_rc: RuntimeContainer | None,
) -> Container:
    pids = sorted(
        set(ctx.by_container.get(rc.id, []))
        | ({rc.pid} if rc.pid and _alive(ctx.procs.get(rc.pid), rc.start_time) else set())
    )
    init = ctx.procs.get(rc.pid) if rc.pid else None
    if init is None and pids:
        init = ctx.procs.get(pids[0])
    node_wide = _node_wide(ctx, init)
    pinned = _pinned(ctx, sandbox_rc) if sandbox_proc is None and rc.kind != "sandbox" else None
    shared = () if rc.kind == "sandbox" else _shared(init, sandbox_proc, rc, sandbox_rc, pinned)
    return Container(
        name=rc.name or rc.id[:12],
        id=rc.id,
        kind=rc.kind,
        pids=tuple(pids),
        image=rc.image,
        command=rc.command,
        env=rc.env,
        service_link_env=rc.service_link_env,
        shared_namespaces=tuple(t for t in shared if t not in node_wide),
        state=rc.state,
        attempt=rc.attempt,
        restart_count=rc.restart_count,
        exit_code=rc.exit_code,
        created_at=rc.created_at,
        started_at=rc.started_at,
        finished_at=rc.finished_at,
        reason=rc.reason,
        image_id=rc.image_id,
        log_path=rc.log_path,
        node_namespaces=node_wide,
    )


def _pinned(ctx: _Ctx, sandbox_rc: RuntimeContainer | None) -> dict[str, int]:
    """Inodes of a process-less sandbox's namespaces pinned by bind mounts (not /proc paths)."""
    out: dict[str, int] = {}
    for t, path in sandbox_rc.ns_paths.items() if sandbox_rc else ():
        if path and not path.startswith("/proc/"):
            try:
                out[t] = ctx.host.stat(path).st_ino
            except CollectorError:
                continue
    return out


def _node_wide(ctx: _Ctx, proc: Process | None) -> tuple[str, ...]:
    """Namespace types a process shares with the node's PID 1."""
    if proc is None or not ctx.node_ns:
        return ()
    return tuple(
        t
        for t in _SHARED_ORDER
        if t in proc.namespaces and proc.namespaces[t] == ctx.node_ns.get(t)
    )


def _pod_from_runtime(ctx: _Ctx, sandbox_id: str, members: list[RuntimeContainer]) -> Pod:
    sandbox_rc = next((m for m in members if m.kind == "sandbox"), None)
    head = sandbox_rc or members[0]
    pause: Process | None = None
    if (
        sandbox_rc is not None
        and sandbox_rc.pid
        and _alive(ctx.procs.get(sandbox_rc.pid), sandbox_rc.start_time)
    ):
        pause = ctx.procs[sandbox_rc.pid]
    elif ctx.by_container.get(sandbox_id):
        pause = ctx.procs[min(ctx.by_container[sandbox_id])]
    netns_path = sandbox_rc.ns_paths.get("net") if sandbox_rc else None
    if netns_path:
        netns_path = ctx.host.canonical(netns_path)  # /var/run/netns/x -> /run/netns/x
    netns = _netns_of(ctx, pause, netns_path)
    host_network = bool(sandbox_rc and sandbox_rc.host_network) or (
        netns is not None and netns == ctx.root_netns
    )
    ips = head.ips or tuple(ctx.alloc_by_container.get(sandbox_id, ()))
    containers = tuple(
        _container_model(ctx, m, pause, sandbox_rc)
        for m in sorted(
            members, key=lambda m: (m.kind != "sandbox", m.name or "", m.attempt or 0, m.id)
        )
    )
    return Pod(
        namespace=head.pod_namespace or "",
        name=head.pod_name or "",
        uid=head.pod_uid or "",
        sandbox_id=sandbox_id,
        pause_pid=pause.pid if pause else None,
        pause_start_time=pause.start_time if pause else None,
        netns_inode=netns,
        netns_path=netns_path,
        ips=ips,
        host_network=host_network,
        containers=containers,
        runtime=(
            runtime_from_parents(ctx, pause)
            if head.runtime == "unknown" and pause is not None
            else head.runtime
        ),
        source=head.source,
        log_dir=head.log_dir,
        sandbox_image=sandbox_rc.sandbox_image if sandbox_rc else None,
        state=sandbox_rc.state if sandbox_rc else None,
        attempt=sandbox_rc.attempt if sandbox_rc else None,
        created_at=sandbox_rc.created_at if sandbox_rc else None,
        also_from=head.also_from,
        host_interface=head.host_interface,
        gateways=head.gateways,
        mtu=head.mtu,
    )


def _pods_from_cgroups(
    ctx: _Ctx, known_uids: set[str], known_ids: set[str], logs: dict[str, tuple[str, str, str]]
) -> list[Pod]:
    """Pods of processes whose cgroup names a pod the runtime state did not cover."""
    by_pod: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
    runtime_of: dict[str, str] = {}
    for p in ctx.procs.values():
        if not p.cgroup:
            continue
        ref = parse_cgroup_path(p.cgroup)
        if ref.pod_uid is None or ref.pod_uid in known_uids or (ref.container_id in known_ids):
            continue
        by_pod[ref.pod_uid][ref.container_id or ""].append(p.pid)
        if ref.runtime != "unknown":
            runtime_of[ref.pod_uid] = ref.runtime
    pods = []
    for uid, containers in sorted(by_pod.items()):
        pause_cid, pause = _find_pause(ctx, containers)
        ns, name, log_dir = logs.get(uid, ("", "", None))
        netns = pause.namespaces.get("net") if pause else None
        models = []
        for cid, pids in sorted(containers.items()):
            if not cid:
                continue
            init = ctx.procs[min(pids)]
            kind = "sandbox" if cid == pause_cid else "container"
            node_wide = _node_wide(ctx, init)
            shared = (
                ()
                if kind == "sandbox" or pause is None
                else tuple(
                    t
                    for t in _SHARED_ORDER
                    if t in init.namespaces
                    and init.namespaces[t] == pause.namespaces.get(t)
                    and t not in node_wide
                )
            )
            models.append(
                Container(
                    name="POD" if kind == "sandbox" else cid[:12],
                    id=cid,
                    kind=kind,
                    pids=tuple(sorted(pids)),
                    command=init.cmdline,
                    shared_namespaces=shared,
                    node_namespaces=node_wide,
                )
            )
        models = _names_from_log_dir(ctx.host, models, log_dir)
        runtime = runtime_of.get(uid) or (runtime_from_parents(ctx, pause) if pause else "unknown")
        pods.append(
            Pod(
                namespace=ns,
                name=name,
                uid=uid,
                sandbox_id=pause_cid or "",
                pause_pid=pause.pid if pause else None,
                pause_start_time=pause.start_time if pause else None,
                netns_inode=netns,
                netns_path=ctx.netns_paths.get(netns) if netns is not None else None,
                host_network=netns is not None and netns == ctx.root_netns,
                ips=tuple(ctx.alloc_by_container.get(pause_cid or "", ())),
                containers=tuple(models),
                runtime=runtime,
                source="cgroup",
                log_dir=log_dir,
            )
        )
    return pods


# Shim processes that parent a pod's processes, and the runtime each belongs to.
_SHIMS = {
    "containerd-shim": "containerd",
    "containerd-shim-runc-v2": "containerd",
    "containerd-shim-runc-v1": "containerd",
    "conmon": "cri-o",
}


def runtime_from_parents(ctx: _Ctx, proc: Process) -> str:
    """The runtime whose shim parents a process: containerd, cri-o, docker, or unknown.

    dockerd runs its containers under containerd-shim too, in containerd's `moby`
    namespace, which the shim's command line names.
    """
    seen = 0
    parent = ctx.procs.get(proc.ppid)
    while parent is not None and seen < 8:
        base = os.path.basename(parent.cmdline[0]) if parent.cmdline else parent.comm
        runtime = _SHIMS.get(base) or _SHIMS.get(parent.comm)
        if runtime == "containerd" and "moby" in parent.cmdline:
            return "docker"
        if runtime is not None:
            return runtime
        parent = ctx.procs.get(parent.ppid) if parent.ppid != parent.pid else None
        seen += 1
    return "unknown"


def _names_from_log_dir(
    host: HostRoot, models: list[Container], log_dir: str | None
) -> list[Container]:
    """Name a cgroup pod's one app container from its one kubelet log directory."""
    apps = [c for c in models if c.kind == "container"]
    if log_dir is None or len(apps) != 1:
        return models
    try:
        names = [n for n in host.listdir(log_dir) if not n.startswith(".")]
    except CollectorError:
        return models
    if len(names) != 1:
        return models  # several containers: which id is which is not knowable here
    return [replace(c, name=names[0]) if c is apps[0] else c for c in models]


def _find_pause(ctx: _Ctx, containers: dict[str, list[int]]) -> tuple[str | None, Process | None]:
    """The sandbox container of a cgroup-only pod: the one running pause, else the oldest."""
    best: tuple[str | None, Process | None] = (None, None)
    oldest: tuple[int, str, Process] | None = None
    for cid, pids in containers.items():
        if not cid:
            continue
        for pid in pids:
            p = ctx.procs[pid]
            if is_pause(p):
                return cid, p
            if oldest is None or p.start_time < oldest[0]:
                oldest = (p.start_time, cid, p)
    if oldest is not None and len(containers) > 1:
        best = (oldest[1], oldest[2])
    return best


def _pods_from_pause(
    ctx: _Ctx, covered_pids: set[int], covered_netns: set[int], namespaces: tuple[Namespace, ...]
) -> list[Pod]:
    """Last resort: pause processes, and the first process of each /run/netns/cni-* netns."""
    pods = []
    for p in sorted(ctx.procs.values(), key=lambda p: p.pid):
        net = p.namespaces.get("net")
        if p.pid in covered_pids or not is_pause(p) or net in covered_netns:
            continue
        if p.pid == 1 or (net is not None and net == ctx.root_netns):
            continue  # the node's own init (a lab node runs catatonit -P), not a pod
        if net is not None:
            covered_netns.add(net)
        pods.append(_bare_pod(ctx, p, net, None))
    for ns in namespaces:
        if ns.type != "net" or ns.inode in covered_netns or not ns.nsfs:
            continue
        if not os.path.basename(ns.nsfs).startswith("cni-") or ns.pid is None:
            continue
        covered_netns.add(ns.inode)
        holder = ctx.procs.get(ns.pid)
        if holder is not None:
            pods.append(_bare_pod(ctx, holder, ns.inode, ns.nsfs))
    return pods


def _bare_pod(ctx: _Ctx, p: Process, net: int | None, path: str | None) -> Pod:
    ref = parse_cgroup_path(p.cgroup) if p.cgroup else None
    cid = ref.container_id if ref and ref.container_id else ""
    path = path or (ctx.netns_paths.get(net) if net is not None else None)
    name = os.path.basename(path) if path else f"pause-{p.pid}"
    runtime = ref.runtime if ref and ref.runtime != "unknown" else runtime_from_parents(ctx, p)
    return Pod(
        namespace="",
        name=name,
        uid=ref.pod_uid or "" if ref else "",
        sandbox_id=cid,
        pause_pid=p.pid,
        pause_start_time=p.start_time,
        netns_inode=net,
        netns_path=path,
        host_network=net is not None and net == ctx.root_netns,
        ips=tuple(ctx.alloc_by_container.get(cid, ())) if cid else (),
        containers=(
            Container(name="POD", id=cid, kind="sandbox", pids=(p.pid,), command=p.cmdline),
        ),
        runtime=runtime,
        source="pause-process",
    )


def collect_pods(
    host: HostRoot,
    processes: tuple[Process, ...],
    root_netns: int | None,
    cancel: threading.Event | None = None,
    *,
    namespaces: tuple[Namespace, ...] = (),
    allocations: tuple[IpamAllocation, ...] = (),
    redact: bool = True,
    cri: tuple[CriListing, ...] = (),
    envs: Environments | None = None,
    previous: BundleMemo | None = None,
    memo: BundleMemo | None = None,
) -> tuple[tuple[Pod, ...], tuple[Gap, ...]]:
    """Pods from CRI and runtime state (containerd, CRI-O), else cgroups, logs and pause.

    `envs` (made here if not given) keeps each container's Service-link variables from
    the same read of its spec, for collect_service_links. `memo` is given the containers
    parsed from bundles, and `previous` (a refresh's) is used for those provably the
    same (BundleMemo).
    """
    gaps: list[Gap] = []
    procs = {p.pid: p for p in processes}
    by_container: dict[str, list[int]] = defaultdict(list)
    for p in processes:
        if p.cgroup:
            cid = parse_cgroup_path(p.cgroup).container_id
            if cid:
                by_container[cid].append(p.pid)
    alloc: dict[str, list[str]] = defaultdict(list)
    for a in allocations:
        alloc[a.container_id].append(a.ip)
    node_ns = dict(procs[1].namespaces) if 1 in procs else {}
    netns_paths = {
        ns.inode: ns.nsfs for ns in namespaces if ns.type == "net" and ns.nsfs is not None
    }
    ctx = _Ctx(host, procs, by_container, root_netns, alloc, gaps, node_ns, netns_paths)
    # The well-known state dirs, and those of each containerd running (MicroK8s, k0s,
    # --state/--root of its own): a state dir that does not exist is no gap.
    daemons = running_daemons(host, processes, gaps, node_ns.get("mnt"))
    task_roots = tuple(dict.fromkeys([*CONTAINERD_TASK_ROOTS, *(d.tasks() for d in daemons)]))
    cri_roots = tuple(dict.fromkeys([*CONTAINERD_CRI_ROOTS, *(d.cri_root() for d in daemons)]))
    roots = tuple(dict.fromkeys([*CONTAINERD_ROOTS, *(d.root for d in daemons)]))
    envs = envs or Environments(redact=redact)
    reading = _Reading(procs, previous, memo)
    runtime = read_containerd(host, gaps, envs, task_roots, reading)
    if cancel is None or not cancel.is_set():
        crio = crio_dirs(processes, node_ns.get("mnt"))
        runtime += read_crio(host, gaps, envs, dirs=crio)
        runtime += read_docker(host, gaps, envs)
    from_cri = [rc for listing in cri for rc in containers_from_cri(listing, envs)]
    runtime = merge_runtime(from_cri, runtime)
    kindnet: list[RuntimeContainer] = []
    if cancel is None or not cancel.is_set():
        kindnet = [kindnet_sandbox(k) for k in read_kindnet_db(host, gaps)]
    runtime, kindnet_only = merge_records(runtime, kindnet)
    if not from_cri:
        for rc in runtime:
            if rc.runtime == "containerd" and rc.state is None:
                apply_status_file(rc, container_status_file(host, rc.id, cri_roots))
    _fill_images(host, roots, runtime, gaps)
    groups: dict[str, list[RuntimeContainer]] = defaultdict(list)
    for rc in runtime:
        groups[rc.sandbox_id or rc.id].append(rc)
    pods = [_pod_from_runtime(ctx, sid, members) for sid, members in sorted(groups.items())]
    logs = read_pod_log_dirs(host)
    known_uids = {p.uid for p in pods if p.uid}
    known_ids = {c.id for p in pods for c in p.containers}
    pods += _pods_from_cgroups(ctx, known_uids, known_ids, logs)
    covered = {pid for p in pods for c in p.containers for pid in c.pids}
    covered_netns = {p.netns_inode for p in pods if p.netns_inode is not None}
    pods += _pods_from_pause(ctx, covered, covered_netns, namespaces)
    pods = [_fill_names(p, logs) for p in pods]
    pods = _with_kindnet(ctx, pods, kindnet_only)
    pods.sort(key=lambda p: (p.namespace, p.name, p.sandbox_id))
    return tuple(pods), tuple(gaps)


# -- CRI ---------------------------------------------------------------------------------------


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _ns(value: Any) -> int | None:
    """A CRI timestamp (ns since the epoch); 0 means unset."""
    ns = _int(value)
    return ns if ns else None


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _apply_cri_info(rc: RuntimeContainer, info: dict[str, Any], envs: Environments) -> None:
    """Fill PID, command, env and namespaces from a verbose status's runtime spec."""
    pid = _int(info.get("pid"))
    rc.pid = pid if pid and pid > 0 else None
    rc.command = _strs(info.get("args"))
    rc.env = envs.of(info.get("env"))
    for ns in info.get("namespaces") or []:
        if isinstance(ns, dict) and str(ns.get("type")) in _OCI_NS:
            path = ns.get("path")
            rc.ns_paths[_OCI_NS[str(ns["type"])]] = str(path) if path else None
    if isinstance(info.get("cgroups_path"), str):
        rc.cgroups_path = info["cgroups_path"]
    netns = info.get("netns_path")
    if rc.kind == "sandbox" and "net" not in rc.ns_paths and isinstance(netns, str) and netns:
        # containerd 2.x without the sandbox's runtime spec (its task gone, or a sandboxer
        # other than the pause container) still names the netns in its sandbox metadata.
        rc.ns_paths["net"] = netns
    if isinstance(info.get("log_directory"), str) and info["log_directory"]:
        rc.log_dir = info["log_directory"]


def containers_from_cri(
    listing: CriListing, envs: Environments | None = None
) -> list[RuntimeContainer]:
    """Sandboxes and containers of one CRI listing as RuntimeContainers (source "cri")."""
    envs = envs or Environments()
    out: list[RuntimeContainer] = []
    doc = listing.document
    for item in doc.get("sandboxes") or []:
        status, info = _dict(_dict(item).get("status")), _dict(_dict(item).get("info"))
        meta = _dict(status.get("metadata"))
        sid = str(status.get("id") or "")
        if not sid:
            continue
        rc = RuntimeContainer(id=sid, runtime=listing.runtime, kind="sandbox", sandbox_id=sid)
        rc.source = "cri"
        rc.pod_name, rc.pod_namespace = str(meta.get("name", "")), str(meta.get("namespace", ""))
        rc.pod_uid, rc.name = str(meta.get("uid", "")), "POD"
        rc.attempt = _int(meta.get("attempt"))
        rc.state = state_name(status.get("state"))
        rc.created_at = _ns(status.get("created_at"))
        network = _dict(status.get("network"))
        ips = [str(network.get("ip") or "")] + [
            str(_dict(a).get("ip") or "") for a in network.get("additional_ips") or []
        ]
        rc.ips = tuple(ip for ip in ips if ip)
        options = _dict(_dict(_dict(status.get("linux")).get("namespaces")).get("options"))
        rc.host_network = options.get("network") == "NODE"
        image = info.get("image")
        rc.sandbox_image = rc.image = str(image) if image else None
        _apply_cri_info(rc, info, envs)
        out.append(rc)
    for item in doc.get("containers") or []:
        status, info = _dict(_dict(item).get("status")), _dict(_dict(item).get("info"))
        meta = _dict(status.get("metadata"))
        cid = str(status.get("id") or "")
        if not cid:
            continue
        labels, ann = _dict(status.get("labels")), _dict(status.get("annotations"))
        rc = RuntimeContainer(id=cid, runtime=listing.runtime, kind="container")
        rc.source = "cri"
        rc.sandbox_id = str(_dict(item).get("pod_sandbox_id") or info.get("sandbox_id") or "")
        rc.pod_name = labels.get("io.kubernetes.pod.name")
        rc.pod_namespace = labels.get("io.kubernetes.pod.namespace")
        rc.pod_uid = labels.get("io.kubernetes.pod.uid")
        rc.name = str(meta.get("name") or "") or None
        rc.attempt = _int(meta.get("attempt"))
        rc.restart_count = _int(ann.get("io.kubernetes.container.restartCount"))
        rc.state = state_name(status.get("state"))
        rc.created_at = _ns(status.get("created_at"))
        rc.started_at = _ns(status.get("started_at"))
        rc.finished_at = _ns(status.get("finished_at"))
        rc.exit_code = _int(status.get("exit_code")) if rc.state == "exited" else None
        rc.reason = str(status.get("reason") or "") or None
        rc.image = str(_dict(status.get("image")).get("image") or "") or None
        rc.image_id = str(status.get("image_id") or status.get("image_ref") or "") or None
        rc.log_path = str(status.get("log_path") or "") or None
        _apply_cri_info(rc, info, envs)
        out.append(rc)
    return out


def merge_runtime(
    from_cri: list[RuntimeContainer], from_disk: list[RuntimeContainer]
) -> list[RuntimeContainer]:
    """CRI's records first; the runtime's files fill what CRI left out, and add the rest."""
    merged, rest = merge_records(from_cri, from_disk)
    return merged + rest


def merge_records(
    first: list[RuntimeContainer], then: list[RuntimeContainer]
) -> tuple[list[RuntimeContainer], list[RuntimeContainer]]:
    """(`first`, each filled in by the record of `then` with its id; `then`'s other records)."""
    others = {rc.id: rc for rc in then}
    for rc in first:
        other = others.pop(rc.id, None)
        if other is not None:
            _fill(rc, other)
    return first, list(others.values())


def _fill(rc: RuntimeContainer, other: RuntimeContainer) -> None:
    """Fill what `rc` left out from `other`, a record of the same container."""
    rc.pid = rc.pid or other.pid
    rc.start_time = rc.start_time or other.start_time
    rc.command = rc.command or other.command
    if not rc.env:
        rc.env, rc.service_link_env = other.env, other.service_link_env
    rc.ns_paths = rc.ns_paths or other.ns_paths
    rc.cgroups_path = rc.cgroups_path or other.cgroups_path
    rc.log_dir = rc.log_dir or other.log_dir
    rc.pod_uid = rc.pod_uid or other.pod_uid
    rc.pod_name = rc.pod_name or other.pod_name
    rc.pod_namespace = rc.pod_namespace or other.pod_namespace
    rc.ips = rc.ips or other.ips
    rc.sandbox_image = rc.sandbox_image or other.sandbox_image
    rc.image = rc.image or other.image
    rc.host_interface = rc.host_interface or other.host_interface
    rc.gateways = rc.gateways or other.gateways
    rc.mtu = rc.mtu or other.mtu
    if other.source == KINDNET_SOURCE and KINDNET_SOURCE not in rc.also_from:
        # CRI and the runtime's files are two views of one runtime; kindnet is another witness.
        rc.also_from += (KINDNET_SOURCE,)


# Sources that know a pod's sandbox id for certain (the rest are fallbacks).
_RUNTIME_SOURCES = ("cri", "runtime-state", KINDNET_SOURCE)


# -- kindnet's pod database ----------------------------------------------------------------------


def kindnet_sandbox(row: KindnetPod) -> RuntimeContainer:
    """A sandbox record from a row of kindnet's pod database (runtime not known from it)."""
    return RuntimeContainer(
        id=row.sandbox_id,
        runtime="unknown",
        kind="sandbox",
        sandbox_id=row.sandbox_id,
        pod_namespace=row.namespace or None,
        pod_name=row.name or None,
        pod_uid=row.uid or None,
        name="POD",
        ns_paths={"net": row.netns},
        ips=row.ips,
        host_network=False,  # cni-kindnet is only called for pods with a network of their own
        source=KINDNET_SOURCE,
        host_interface=row.host_interface,
        gateways=row.gateways,
        mtu=row.mtu,
    )


def _with_kindnet(ctx: _Ctx, pods: list[Pod], rows: list[RuntimeContainer]) -> list[Pod]:
    """Fallback pods filled in by the kindnet rows of their sandbox or netns; the rest as pods."""
    by_id = {rc.id: rc for rc in rows}
    by_netns: dict[int, RuntimeContainer] = {}
    for rc in rows:
        inode = _netns_of(ctx, None, rc.ns_paths.get("net"))
        if inode is not None:
            by_netns.setdefault(inode, rc)
    out = []
    for pod in pods:
        found = by_id.get(pod.sandbox_id) if pod.sandbox_id else None
        if found is None and pod.netns_inode is not None and pod.source not in _RUNTIME_SOURCES:
            # A fallback pod may not know its sandbox id; its network namespace is the pod.
            found = by_netns.get(pod.netns_inode)
        # A row fills one pod only: by_id holds the rows not used yet.
        if found is None or by_id.pop(found.id, None) is None:
            out.append(pod)
        else:
            out.append(_kindnet_filled(ctx, pod, found))
    for rc in by_id.values():
        pod = _pod_from_runtime(ctx, rc.id, [rc])
        if pod.netns_inode is None:
            ctx.gaps.append(
                Gap(
                    f"kindnet-db pod {pod.namespace}/{pod.name}",
                    f"its netns {pod.netns_path} is gone: a stale row still holding "
                    f"{', '.join(pod.ips) or 'no IP'}",
                    "inconsistent",
                )
            )
        out.append(pod)
    return out


def _kindnet_filled(ctx: _Ctx, pod: Pod, rc: RuntimeContainer) -> Pod:
    """A fallback pod with what kindnet's row knows and the fallback did not."""
    named = not pod.namespace and rc.pod_namespace and rc.pod_name
    path = rc.ns_paths.get("net")
    return replace(
        pod,
        # A fallback's name without a namespace is a placeholder (its netns, pause-PID).
        namespace=rc.pod_namespace or "" if named else pod.namespace,
        name=rc.pod_name or "" if named else pod.name,
        uid=pod.uid or rc.pod_uid or "",
        sandbox_id=pod.sandbox_id or rc.id,
        netns_path=pod.netns_path or (ctx.host.canonical(path) if path else None),
        ips=pod.ips or rc.ips,
        also_from=(*pod.also_from, KINDNET_SOURCE),
        host_interface=rc.host_interface,
        gateways=rc.gateways,
        mtu=rc.mtu,
    )


def _fill_images(
    host: HostRoot, roots: tuple[str, ...], records: list[RuntimeContainer], gaps: list[Gap]
) -> None:
    """Images no other source gave (1.6/1.7 sandboxes read from files) from containerd's store."""
    missing = [rc for rc in records if rc.runtime == "containerd" and rc.image is None]
    if not missing:
        return
    images = container_images(host, roots, (rc.id for rc in missing), gaps)
    for rc in missing:
        rc.image = images.get(rc.id)
        if rc.kind == "sandbox":
            rc.sandbox_image = rc.image


def apply_status_file(rc: RuntimeContainer, status: dict[str, Any] | None) -> None:
    """State, times and exit code from containerd's on-disk CRI status of a container."""
    if status is None or rc.kind == "sandbox":
        return
    rc.state = state_from_status_file(status)
    rc.created_at = _ns(status.get("CreatedAt"))
    rc.started_at = _ns(status.get("StartedAt"))
    rc.finished_at = _ns(status.get("FinishedAt"))
    if rc.state == "exited":
        rc.exit_code = _int(status.get("ExitCode"))
        rc.reason = str(status.get("Reason") or "") or None


def _fill_names(pod: Pod, logs: dict[str, tuple[str, str, str]]) -> Pod:
    """Take names from /var/log/pods when the source did not have them."""
    if pod.uid and pod.uid in logs and (not pod.name or not pod.namespace or not pod.log_dir):
        ns, name, path = logs[pod.uid]
        return replace(
            pod, namespace=pod.namespace or ns, name=pod.name or name, log_dir=pod.log_dir or path
        )
    return pod
