"""A node debug pod made by a lab node's containerd through CRI, the way kubelet makes it.

kubelet (pkg/kubelet/kuberuntime) turns the pod `kubectl debug node/N --profile=sysadmin`
creates (podpath.cli.kubectl.node_debug_pod) into CRI v1 calls, and so does this:

- RunPodSandbox: the pod's metadata and labels, its log directory, its QoS cgroup
  (BestEffort: no resources asked), namespace_options from hostNetwork, hostPID and
  hostIPC (NODE, else POD network and IPC and CONTAINER PID), privileged when a
  container is; a host-network pod gets no hostname of its own and the node's DNS
  settings (dnsPolicy ClusterFirst falls back to the host's resolv.conf there);
- CreateContainer: image, command, env, stdin and tty as the spec says; the hostPath
  volumes as mounts (mountPropagation None is PROPAGATION_PRIVATE), then kubelet's
  etc-hosts and termination-log files; privileged, with the pod's namespace options;
  the log path `NAME/ATTEMPT.log` under the pod's log directory;
- StartContainer; `kubectl debug -it` then attaches through the runtime's streaming
  server (CRI Attach, see cri_stream.py); ExecSync runs a command in it.

The image is imported into the node's containerd with `ctr -n k8s.io images import`,
as a registry pull leaves it. A projected service-account token, which the API server
adds to the pod, is left out: podpath reads nothing of it.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from podpath.cri.client import CriClient
from podpath.lab import containerd, images
from podpath.lab.cri_pods import cgroup_parent
from podpath.lab.node import node_path

NAMESPACE = "default"
KUBELET_PODS = "/var/lib/kubelet/pods"


@dataclass(frozen=True)
class DebugPod:
    """A running debug pod: its sandbox and its one container."""

    name: str
    uid: str
    sandbox_id: str
    container_id: str


def import_image(init_pid: int, archive: Path, ref: str) -> None:
    """Import an image archive into the node's containerd (k8s.io), as a pull would leave it."""
    containerd.import_images(init_pid, (images.BuiltImage(ref, archive),))


def namespace_options(spec: dict[str, Any]) -> dict[str, str]:
    """The CRI NamespaceOption kubelet derives from hostNetwork, hostPID and hostIPC."""
    pod = spec["spec"]
    return {
        "network": "NODE" if pod.get("hostNetwork") else "POD",
        "pid": "NODE" if pod.get("hostPID") else "CONTAINER",
        "ipc": "NODE" if pod.get("hostIPC") else "POD",
    }


def _privileged(spec: dict[str, Any]) -> bool:
    return any(c.get("securityContext", {}).get("privileged") for c in spec["spec"]["containers"])


def _node_dns(init_pid: int) -> dict[str, list[str]]:
    """The node's resolv.conf as a DNSConfig (kubelet's host DNS for host-network pods)."""
    servers: list[str] = []
    searches: list[str] = []
    options: list[str] = []
    for line in node_path(init_pid, "/etc/resolv.conf").read_text().splitlines():
        words = line.split()
        if words[:1] == ["nameserver"]:
            servers += words[1:2]
        elif words[:1] in (["search"], ["domain"]):
            searches = words[1:]
        elif words[:1] == ["options"]:
            options += words[1:]
    return {"servers": servers, "searches": searches, "options": options}


def _labels(spec: dict[str, Any], name: str, uid: str) -> dict[str, str]:
    return {
        **spec["metadata"].get("labels", {}),
        "io.kubernetes.pod.name": name,
        "io.kubernetes.pod.namespace": NAMESPACE,
        "io.kubernetes.pod.uid": uid,
    }


def sandbox_config(spec: dict[str, Any], name: str, uid: str, init_pid: int) -> dict[str, Any]:
    """The PodSandboxConfig kubelet sends for the pod."""
    config: dict[str, Any] = {
        "metadata": {"name": name, "uid": uid, "namespace": NAMESPACE, "attempt": 0},
        "log_directory": f"/var/log/pods/{NAMESPACE}_{name}_{uid}",
        "labels": _labels(spec, name, uid),
        "annotations": {"kubernetes.io/config.source": "api"},
        "linux": {
            "cgroup_parent": cgroup_parent("besteffort", uid),
            "security_context": {
                "namespace_options": namespace_options(spec),
                "privileged": _privileged(spec),
            },
        },
    }
    if spec["spec"].get("hostNetwork"):
        config["dns_config"] = _node_dns(init_pid)
    else:
        config["hostname"] = name
    return config


def _mounts(spec: dict[str, Any], container: dict[str, Any], uid: str) -> list[dict[str, Any]]:
    paths = {v["name"]: v["hostPath"]["path"] for v in spec["spec"].get("volumes", [])}
    mounts: list[dict[str, Any]] = []
    for mount in container.get("volumeMounts", []):
        if mount.get("mountPropagation") not in (None, "None"):
            raise NotImplementedError("only mountPropagation None is made here")
        mounts.append(
            {
                "container_path": mount["mountPath"],
                "host_path": paths[mount["name"]],
                "readonly": bool(mount.get("readOnly")),
                "propagation": "PROPAGATION_PRIVATE",
            }
        )
    mounts.append({"container_path": "/etc/hosts", "host_path": f"{KUBELET_PODS}/{uid}/etc-hosts"})
    mounts.append(
        {
            "container_path": "/dev/termination-log",
            "host_path": f"{KUBELET_PODS}/{uid}/containers/{container['name']}/00000000",
        }
    )
    return mounts


def container_config(spec: dict[str, Any], uid: str) -> dict[str, Any]:
    """The ContainerConfig kubelet sends for the pod's one container (attempt 0)."""
    (container,) = spec["spec"]["containers"]
    name = spec["metadata"]["name"]
    return {
        "metadata": {"name": container["name"], "attempt": 0},
        "image": {"image": container["image"]},
        # A pod's `command` replaces the image's entrypoint; `args` its cmd.
        "command": container.get("command", []),
        "args": container.get("args", []),
        "envs": [
            {"key": e["name"], "value": e["value"].encode()} for e in container.get("env", [])
        ],
        "mounts": _mounts(spec, container, uid),
        "labels": {
            "io.kubernetes.container.name": container["name"],
            "io.kubernetes.pod.name": name,
            "io.kubernetes.pod.namespace": NAMESPACE,
            "io.kubernetes.pod.uid": uid,
        },
        "annotations": {
            "io.kubernetes.container.hash": secrets.token_hex(4),
            "io.kubernetes.container.restartCount": "0",
            "io.kubernetes.container.terminationMessagePath": "/dev/termination-log",
            "io.kubernetes.container.terminationMessagePolicy": container.get(
                "terminationMessagePolicy", "File"
            ),
        },
        "log_path": f"{container['name']}/0.log",
        "stdin": bool(container.get("stdin")),
        "stdin_once": bool(container.get("stdinOnce")),
        "tty": bool(container.get("tty")),
        "linux": {
            "resources": {"cpu_period": 100000, "cpu_shares": 2, "oom_score_adj": 1000},
            "security_context": {
                "privileged": bool(container.get("securityContext", {}).get("privileged")),
                "namespace_options": namespace_options(spec),
            },
        },
    }


def _kubelet_files(init_pid: int, spec: dict[str, Any], uid: str) -> None:
    """What kubelet writes before the container starts: etc-hosts and the termination log."""
    (container,) = spec["spec"]["containers"]
    pod_dir = node_path(init_pid, f"{KUBELET_PODS}/{uid}")
    hosts = pod_dir / "etc-hosts"
    hosts.parent.mkdir(parents=True, exist_ok=True)
    # A host-network pod's managed hosts file is the node's own (kubelet's ensureHostsFile).
    node_hosts = node_path(init_pid, "/etc/hosts")
    own = node_hosts.read_text() if node_hosts.exists() else "127.0.0.1\tlocalhost\n"
    hosts.write_text("# Kubernetes-managed hosts file (host network).\n" + own)
    term = pod_dir / "containers" / container["name"] / "00000000"
    term.parent.mkdir(parents=True, exist_ok=True)
    term.touch()


@contextmanager
def running(cri: CriClient, init_pid: int, spec: dict[str, Any]) -> Iterator[DebugPod]:
    """The pod made and started through CRI; stopped and removed afterwards, even on failure."""
    uid = str(uuid.uuid4())
    name = spec["metadata"]["name"].replace("-xxxxx", f"-{secrets.token_hex(3)[:5]}")
    sandbox = sandbox_config(spec, name, uid, init_pid)
    _kubelet_files(init_pid, spec, uid)
    sandbox_id = str(cri.call("RunPodSandbox", {"config": sandbox})["pod_sandbox_id"])
    try:
        created = cri.call(
            "CreateContainer",
            {
                "pod_sandbox_id": sandbox_id,
                "config": container_config(spec, uid),
                "sandbox_config": sandbox,
            },
        )
        cid = str(created["container_id"])
        cri.call("StartContainer", {"container_id": cid})
        yield DebugPod(name, uid, sandbox_id, cid)
    finally:
        # kubelet's pod deletion: stop kills the containers, remove drops them.
        cri.call("StopPodSandbox", {"pod_sandbox_id": sandbox_id})
        cri.call("RemovePodSandbox", {"pod_sandbox_id": sandbox_id})


def exec_sync(
    cri: CriClient, pod: DebugPod, cmd: Sequence[str], timeout: int = 300
) -> tuple[int, bytes, bytes]:
    """Run cmd in the pod's container (CRI ExecSync): exit code, stdout, stderr."""
    done = cri.call(
        "ExecSync", {"container_id": pod.container_id, "cmd": list(cmd), "timeout": timeout}
    )
    return int(done["exit_code"]), bytes(done["stdout"]), bytes(done["stderr"])


def attach_url(cri: CriClient, pod: DebugPod, *, tty: bool) -> str:
    """The streaming server's URL of an attach to the container (what kubectl debug -i does)."""
    done = cri.call(
        "Attach",
        {
            "container_id": pod.container_id,
            "stdin": True,
            "stdout": True,
            "stderr": not tty,
            "tty": tty,
        },
    )
    return str(done["url"])
