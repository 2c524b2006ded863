"""Pods made by the node's real containerd through the CRI v1 API, the way kubelet asks.

kubelet (pkg/kubelet/kuberuntime) sends RunPodSandbox with the pod's metadata, log
directory, DNS config, port mappings and the cgroup parent of its QoS class; then for
each container CreateContainer (metadata with the attempt, image, command, mounts,
log path relative to the log directory) and StartContainer. A restart after a crash
is a new container with attempt + 1; the exited one stays until garbage collection.
"""

from __future__ import annotations

import json
import random
import secrets
from collections.abc import Sequence
from typing import Any

from podpath.cri.client import CriClient, CriError
from podpath.lab import cni, images
from podpath.lab.node import node_path
from podpath.lab.pods import DNS_ECHO, DNS_IP, KUBELET_PODS, PodPlan, page
from podpath.lab.records import LabError, PodRecord, ServiceRecord

CLUSTER_DOMAIN = "cluster.local"
# kubelet's defaults for every container (the runtime's default masked and read-only paths).
_NAMESPACES = {"network": "POD", "pid": "CONTAINER", "ipc": "POD"}
_OOM_SCORE = {"besteffort": 1000, "burstable": 999, "guaranteed": -997}
# default/kubernetes, the API server's Service: kubelet gives it to every pod (the lab
# has no API server, so kube-proxy serves no such ClusterIP here).
MASTER_SERVICE = ServiceRecord(
    "default", "kubernetes", "https", "TCP", "10.96.0.1", 443, None, (), "", ()
)


def cgroup_parent(qos: str, uid: str) -> str:
    """kubelet's cgroupfs-driver pod cgroup: /kubepods[/<qos>]/pod<uid>."""
    if qos == "guaranteed":
        return f"/kubepods/pod{uid}"
    return f"/kubepods/{qos}/pod{uid}"


def log_directory(plan: PodPlan) -> str:
    """/var/log/pods/<namespace>_<name>_<uid>, as kubelet names it."""
    return f"/var/log/pods/{plan.namespace}_{plan.name}_{plan.uid}"


def _pod_labels(plan: PodPlan) -> dict[str, str]:
    return {
        "io.kubernetes.pod.name": plan.name,
        "io.kubernetes.pod.namespace": plan.namespace,
        "io.kubernetes.pod.uid": plan.uid,
        "app": "kube-dns" if plan.app == "dns" else "web",
    }


def sandbox_config(plan: PodPlan) -> dict[str, Any]:
    """The PodSandboxConfig kubelet sends for a pod."""
    return {
        "metadata": {
            "name": plan.name,
            "uid": plan.uid,
            "namespace": plan.namespace,
            "attempt": 0,
        },
        "hostname": plan.name,
        "log_directory": log_directory(plan),
        "dns_config": {
            "servers": [DNS_IP],
            "searches": [
                f"{plan.namespace}.svc.{CLUSTER_DOMAIN}",
                f"svc.{CLUSTER_DOMAIN}",
                CLUSTER_DOMAIN,
            ],
            "options": ["ndots:5"],
        },
        "port_mappings": [
            {"protocol": proto.upper(), "container_port": container, "host_port": host}
            for host, container, proto in plan.host_ports
        ],
        "labels": _pod_labels(plan),
        "annotations": {
            "kubernetes.io/config.source": "api",
            "kubernetes.io/config.seen": "2026-01-01T00:00:00.000000000Z",
        },
        "linux": {
            "cgroup_parent": cgroup_parent(plan.qos, plan.uid),
            "security_context": {"namespace_options": dict(_NAMESPACES)},
        },
    }


def _volume(plan: PodPlan) -> str:
    return f"{KUBELET_PODS}/{plan.uid}/volumes/kubernetes.io~empty-dir/www"


def _etc_hosts(plan: PodPlan) -> str:
    return f"{KUBELET_PODS}/{plan.uid}/etc-hosts"


def _termination_log(plan: PodPlan, name: str, attempt: int) -> str:
    return f"{KUBELET_PODS}/{plan.uid}/containers/{name}/{attempt:08x}"


def _command(plan: PodPlan) -> tuple[list[str], list[str]]:
    if plan.app == "web":
        return ["/bin/httpd"], ["-f", "-v", "-p", "80", "-h", "/www"]
    return ["/usr/bin/python3"], ["-u", "-c", DNS_ECHO]


def _env_name(name: str) -> str:
    """kubelet's makeEnvVariableName: upper case, '-' made '_'."""
    return name.upper().replace("-", "_")


# What exec accepts for arguments and environment together: a quarter of the stack limit,
# 2 MiB with the usual 8 MiB (execve(2), "Limits on size of arguments and environment").
EXEC_ENV_LIMIT = 2 * 2**20


def fitting_service_links(env: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The variables, or none when they would not fit in what exec accepts.

    kubelet does not check: with thousands of Services in one namespace (the benchmark's
    10k) the container fails to start with E2BIG ("argument list too long"), so such
    clusters set `enableServiceLinks: false`, and the lab's pods are made as theirs are.
    """
    # Each "KEY=VALUE\0" and its pointer; 64 KiB left for the command, PATH and the rest.
    size = sum(len(key) + len(value) + 2 + 8 for key, value in env)
    return env if size <= EXEC_ENV_LIMIT - 64 * 2**10 else []


def kubelets_order(env: list[tuple[str, str]], container: str) -> list[tuple[str, str]]:
    """The variables in an order of this container's own, as kubelet sends them.

    makeEnvironmentVariables (pkg/kubelet/kubelet_pods.go) gathers them in a Go map and
    ranges over it, so each container gets them in an order of its own: a snapshot of a
    real node cannot know one container's variables by another's order
    (docs/performance.md, "The pods step"). Seeded by the container's namespace, pod,
    name and attempt, so a lab of the same plan gets the same orders each time.
    """
    shuffled = list(env)
    random.Random(container).shuffle(shuffled)
    return shuffled


def service_link_env(namespace: str, services: Sequence[ServiceRecord]) -> list[tuple[str, str]]:
    """The Service-link variables kubelet sets for a container of a pod in `namespace`.

    kubelet's getServiceEnvVarMap (pkg/kubelet/kubelet_pods.go) takes default/kubernetes
    and every Service of the pod's namespace that exists when the container is created;
    envvars.FromServices (pkg/kubelet/envvars/envvars.go) writes each one's variables.
    `services` holds one record per Service port, in port order (the primary family's).
    """
    ports: dict[str, list[ServiceRecord]] = {}
    for svc in (MASTER_SERVICE, *services):
        if svc.namespace == namespace or svc is MASTER_SERVICE:
            ports.setdefault(svc.name, []).append(svc)
    env: list[tuple[str, str]] = []
    for name, records in ports.items():
        prefix = _env_name(name)
        first = records[0]
        env += [
            (f"{prefix}_SERVICE_HOST", first.cluster_ip),
            (f"{prefix}_SERVICE_PORT", str(first.port)),
        ]
        env += [
            (f"{prefix}_SERVICE_PORT_{_env_name(r.port_name)}", str(r.port))
            for r in records
            if r.port_name
        ]
        for i, r in enumerate(records):
            proto = r.protocol.lower()
            host = f"[{r.cluster_ip}]" if ":" in r.cluster_ip else r.cluster_ip
            url = f"{proto}://{host}:{r.port}"
            if i == 0:
                env.append((f"{prefix}_PORT", url))
            link = f"{prefix}_PORT_{r.port}_{r.protocol.upper()}"
            env += [
                (link, url),
                (f"{link}_PROTO", proto),
                (f"{link}_PORT", str(r.port)),
                (f"{link}_ADDR", r.cluster_ip),
            ]
    return env


def container_config(
    plan: PodPlan, name: str, attempt: int, services: Sequence[ServiceRecord] = ()
) -> dict[str, Any]:
    """The ContainerConfig kubelet sends for the pod's app container (one attempt)."""
    command, args = _command(plan)
    mounts: list[dict[str, Any]] = [
        {"container_path": "/etc/hosts", "host_path": _etc_hosts(plan)},
        {
            "container_path": "/dev/termination-log",
            "host_path": _termination_log(plan, name, attempt),
        },
    ]
    if plan.app == "web":
        mounts.insert(0, {"container_path": "/www", "host_path": _volume(plan), "readonly": True})
    else:
        mounts.insert(0, {"container_path": "/usr", "host_path": "/usr", "readonly": True})
    return {
        "metadata": {"name": name, "attempt": attempt},
        "image": {"image": images.BUSYBOX_IMAGE},
        "command": command,
        "args": args,
        "envs": [
            {"key": key, "value": value.encode()}
            for key, value in kubelets_order(
                fitting_service_links(service_link_env(plan.namespace, services)),
                f"{plan.namespace}/{plan.name}/{name}/{attempt}",
            )
        ],
        "mounts": mounts,
        "labels": {
            "io.kubernetes.container.name": name,
            "io.kubernetes.pod.name": plan.name,
            "io.kubernetes.pod.namespace": plan.namespace,
            "io.kubernetes.pod.uid": plan.uid,
        },
        "annotations": {
            "io.kubernetes.container.hash": secrets.token_hex(4),
            "io.kubernetes.container.restartCount": str(attempt),
            "io.kubernetes.container.terminationMessagePath": "/dev/termination-log",
            "io.kubernetes.container.terminationMessagePolicy": "File",
            "io.kubernetes.pod.terminationGracePeriod": "30",
        },
        "log_path": f"{name}/{attempt}.log",
        "linux": {
            "resources": {
                "cpu_period": 100000,
                "cpu_shares": 2 if plan.qos == "besteffort" else 102,
                "oom_score_adj": _OOM_SCORE.get(plan.qos, 1000),
            },
            "security_context": {"namespace_options": dict(_NAMESPACES)},
        },
    }


def _prepare_volumes(init_pid: int, plan: PodPlan, name: str, attempt: int) -> None:
    """What kubelet writes before a container starts: etc-hosts, volumes, termination log."""
    hosts = node_path(init_pid, _etc_hosts(plan))
    hosts.parent.mkdir(parents=True, exist_ok=True)
    if not hosts.exists():
        hosts.write_text("# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n")
    term = node_path(init_pid, _termination_log(plan, name, attempt))
    term.parent.mkdir(parents=True, exist_ok=True)
    term.touch()
    if plan.app == "web":
        node_path(init_pid, _volume(plan)).mkdir(parents=True, exist_ok=True)


def _cni_result(init_pid: int, sandbox_id: str) -> dict[str, Any]:
    # libcni's result cache, written by containerd's go-cni for the pod's eth0, under
    # the name of the node's network (containerd-net, k8s-pod-network, kindnet, aws-cni).
    network = cni.read_conflist(init_pid).get("name", cni.NETWORK_NAME)
    path = node_path(init_pid, f"{cni.RESULTS_DIR}/{network}-{sandbox_id}-eth0")
    try:
        result: dict[str, Any] = json.loads(path.read_text())["result"]
    except (OSError, ValueError, KeyError) as exc:
        raise LabError(f"no CNI result cached for sandbox {sandbox_id[:12]}: {exc}") from exc
    return result


def start_container(
    cri: CriClient,
    init_pid: int,
    plan: PodPlan,
    sandbox_id: str,
    attempt: int,
    *,
    name: str | None = None,
    start: bool = True,
    services: Sequence[ServiceRecord] = (),
) -> str:
    """CreateContainer (+ StartContainer) of an app container's `attempt`; its id.

    `services` are the Services that exist as it is created: kubelet gives the container
    the Service-link variables of those in its pod's namespace.
    """
    name = name or plan.container_name
    _prepare_volumes(init_pid, plan, name, attempt)
    created = cri.call(
        "CreateContainer",
        {
            "pod_sandbox_id": sandbox_id,
            "config": container_config(plan, name, attempt, services),
            "sandbox_config": sandbox_config(plan),
        },
    )
    cid = str(created["container_id"])
    if start:
        cri.call("StartContainer", {"container_id": cid})
    return cid


def make_pod(
    init_pid: int, socket: str, plan: PodPlan, services: Sequence[ServiceRecord] = ()
) -> PodRecord:
    """Create one pod through CRI end to end (with `services` existing) and return it."""
    try:
        with CriClient(socket, timeout=120) as cri:
            return _make(cri, init_pid, plan, services)
    except CriError as exc:
        raise LabError(f"pod {plan.namespace}/{plan.name}: {exc}") from exc


def _make(
    cri: CriClient, init_pid: int, plan: PodPlan, services: Sequence[ServiceRecord]
) -> PodRecord:
    sandbox_id = str(cri.call("RunPodSandbox", {"config": sandbox_config(plan)})["pod_sandbox_id"])
    status = cri.call("PodSandboxStatus", {"pod_sandbox_id": sandbox_id, "verbose": True})
    info = json.loads(status["info"].get("info", "{}"))
    result = _cni_result(init_pid, sandbox_id)
    # containerd reports the IPv4 address first on a dual-stack pod, as cni.pod_ips does.
    ip = str(status["status"]["network"]["ip"])
    ips = (ip, *(a for a in cni.pod_ips(result) if a != ip))
    if plan.app == "web":
        www = node_path(init_pid, _volume(plan))
        www.mkdir(parents=True, exist_ok=True)
        (www / "index.html").write_text(page(plan, ip))
    containers: list[tuple[str, str]] = []
    for attempt in range(plan.restarts + 1):
        cid = start_container(cri, init_pid, plan, sandbox_id, attempt, services=services)
        if attempt < plan.restarts:
            # A crash, as kubelet then sees it: the container exits, a new attempt starts.
            cri.call("StopContainer", {"container_id": cid, "timeout": 0})
        containers.append((plan.container_name, cid))
    return PodRecord(
        node=plan.node,
        namespace=plan.namespace,
        name=plan.name,
        uid=plan.uid,
        sandbox_id=sandbox_id,
        pause_pid=int(info["pid"]),
        pause_host_pid=0,  # filled in once every pod exists (one walk of the node's tree)
        ip=ip,
        netns_path=_netns_path(info),
        host_veth=cni.host_veth(result),
        containers=tuple(containers),
        app=plan.app,
        qos=plan.qos,
        ips=ips,
    )


def _netns_path(info: dict[str, Any]) -> str:
    for ns in info.get("runtimeSpec", {}).get("linux", {}).get("namespaces", []):
        if ns.get("type") == "network" and ns.get("path"):
            # containerd pins it under /var/run/netns, a symlink to /run/netns.
            return str(ns["path"]).replace("/var/run/netns/", "/run/netns/", 1)
    raise LabError("the sandbox's runtime spec names no network namespace")
