"""A real dockerd in a lab node, and pods made on it the way dockershim / cri-dockerd make them.

dockerd runs inside the node's namespaces with its data root on the node's private
tmpfs, without its bridge, iptables rules or userland proxy, on the node's own
containerd: it touches nothing outside the node and dies with it. A pod is what
dockershim's RunPodSandbox made (pkg/kubelet/dockershim/docker_sandbox.go): a
`k8s_POD_<pod>_<ns>_<uid>_<attempt>` container of the pause image with network mode
none, networked by CNI through /proc/<pid>/ns/net; then each app container
`k8s_<name>_<pod>_<ns>_<uid>_<attempt>` on `container:<sandbox id>`, with the
io.kubernetes.* labels kubelet reads back, and its log symlinked under /var/log/pods.
"""

from __future__ import annotations

import http.client
import json
import shutil
import socket
import time
import urllib.parse
from dataclasses import dataclass
from typing import Any

from podpath.lab import cni, images
from podpath.lab.node import node_path, run_in
from podpath.lab.pods import KUBELET_PODS, PodPlan, page
from podpath.lab.records import LabError

SOCKET = "/run/docker.sock"
DATA_ROOT = "/var/lib/docker"
LOG = "/run/dockerd.log"
CONFIG = "/run/docker-daemon.json"
READY_TIMEOUT = 30.0


class _UnixConnection(http.client.HTTPConnection):
    """HTTP over dockerd's unix socket."""

    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self.unix_path)
        self.sock = sock


def api(
    sock: str,
    method: str,
    path: str,
    body: object = None,
    *,
    raw: bytes | None = None,
    timeout: float = 60,
) -> Any:
    """One Docker Engine API call; the decoded JSON answer (None when empty); LabError."""
    conn = _UnixConnection(sock, timeout)
    try:
        headers = {"Content-Type": "application/x-tar" if raw is not None else "application/json"}
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        conn.request(method, path, body=data, headers=headers)
        resp = conn.getresponse()
        text = resp.read()
    except OSError as exc:
        raise LabError(f"dockerd {method} {path}: {exc}") from exc
    finally:
        conn.close()
    if resp.status >= 300:
        raise LabError(f"dockerd {method} {path}: HTTP {resp.status}: {text[:300]!r}")
    if not text.strip():
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text.decode(errors="replace")


def installed() -> bool:
    """Whether Debian's docker.io (dockerd) is installed."""
    return shutil.which("dockerd", path="/usr/bin:/usr/sbin:/bin:/sbin") is not None


def host_socket(init_pid: int) -> str:
    """The node's dockerd socket as this machine reaches it."""
    return str(node_path(init_pid, SOCKET))


def start(init_pid: int) -> str:
    """Start dockerd in the node (on the node's containerd), wait for it, load the images."""
    if not installed():
        raise LabError("dockerd is not installed (apt-get install docker.io)")
    # An empty config: never the machine's /etc/docker/daemon.json.
    node_path(init_pid, CONFIG).write_text("{}\n")
    script = (
        f"mountpoint -q {DATA_ROOT} || {{ mkdir -p {DATA_ROOT} && "
        f"mount -t tmpfs -o mode=0711 podpath-docker {DATA_ROOT}; }} && "
        'setsid dockerd --config-file "$1" --data-root "$2" --exec-root /run/docker '
        '--pidfile /run/docker.pid -H "unix://$3" --bridge=none --iptables=false '
        "--ip6tables=false --ip-masq=false --userland-proxy=false "
        '--containerd=/run/containerd/containerd.sock >>"$4" 2>&1 </dev/null &'
    )
    run_in(init_pid, ["sh", "-c", script, "sh", CONFIG, DATA_ROOT, SOCKET, LOG], timeout=30)
    sock = host_socket(init_pid)
    deadline = time.monotonic() + READY_TIMEOUT
    while True:
        try:
            api(sock, "GET", "/_ping", timeout=2)
            break
        except LabError as exc:
            if time.monotonic() > deadline:
                raise LabError(f"dockerd did not answer: {exc}: {_log_tail(init_pid)}") from exc
            time.sleep(0.1)
    for _, archive in images.docker_images():
        api(sock, "POST", "/images/load?quiet=1", raw=archive, timeout=120)
    return sock


def _log_tail(init_pid: int) -> str:
    try:
        return node_path(init_pid, LOG).read_text(errors="replace").strip()[-600:]
    except OSError:
        return "(no log)"


@dataclass(frozen=True)
class DockerPod:
    """A pod dockershim-style: its sandbox and app container, and where its network is."""

    namespace: str
    name: str
    uid: str
    sandbox_id: str
    container_id: str
    container_name: str
    pause_pid: int  # in the node
    ip: str
    netns_path: str  # dockerd's SandboxKey, e.g. /run/docker/netns/<12 hex>


def _name(container: str, plan: PodPlan, attempt: int) -> str:
    return f"k8s_{container}_{plan.name}_{plan.namespace}_{plan.uid}_{attempt}"


def _pod_labels(plan: PodPlan) -> dict[str, str]:
    return {
        "io.kubernetes.pod.name": plan.name,
        "io.kubernetes.pod.namespace": plan.namespace,
        "io.kubernetes.pod.uid": plan.uid,
    }


def make_pod(init_pid: int, sock: str, conf: dict[str, Any], plan: PodPlan) -> DockerPod:
    """RunPodSandbox + CreateContainer + StartContainer as dockershim did them."""
    cgroup = f"/kubepods/{plan.qos}/pod{plan.uid}"
    sandbox = api(
        sock,
        "POST",
        "/containers/create?name=" + urllib.parse.quote(_name("POD", plan, 0)),
        {
            "Image": images.PAUSE_IMAGE,
            "Hostname": plan.name,
            "Labels": {
                **_pod_labels(plan),
                "io.kubernetes.container.name": "POD",
                "io.kubernetes.docker.type": "podsandbox",
                "annotation.kubernetes.io/config.source": "api",
            },
            "HostConfig": {"NetworkMode": "none", "IpcMode": "shareable", "CgroupParent": cgroup},
        },
    )
    sid = str(sandbox["Id"])
    api(sock, "POST", f"/containers/{sid}/start")
    inspect = api(sock, "GET", f"/containers/{sid}/json")
    pid = int(inspect["State"]["Pid"])
    key = str(inspect["NetworkSettings"]["SandboxKey"])
    # dockershim hands CNI the sandbox's netns as /proc/<pid>/ns/net.
    result = cni.add(
        init_pid,
        conf,
        cni.CniPod(sid, f"/proc/{pid}/ns/net", plan.namespace, plan.name, plan.uid),
    )
    ip = cni.pod_ip(result)
    www = f"{KUBELET_PODS}/{plan.uid}/volumes/kubernetes.io~empty-dir/www"
    node_path(init_pid, www).mkdir(parents=True, exist_ok=True)
    node_path(init_pid, f"{www}/index.html").write_text(page(plan, ip))
    log_dir = f"/var/log/pods/{plan.namespace}_{plan.name}_{plan.uid}"
    log_path = f"{log_dir}/{plan.container_name}/0.log"
    app = api(
        sock,
        "POST",
        "/containers/create?name=" + urllib.parse.quote(_name(plan.container_name, plan, 0)),
        {
            "Image": images.BUSYBOX_IMAGE,
            "Entrypoint": ["/bin/httpd"],
            "Cmd": ["-f", "-v", "-p", "80", "-h", "/www"],
            "Labels": {
                **_pod_labels(plan),
                "io.kubernetes.container.name": plan.container_name,
                "io.kubernetes.docker.type": "container",
                "io.kubernetes.sandbox.id": sid,
                "io.kubernetes.container.logpath": log_path,
                "annotation.io.kubernetes.container.restartCount": "0",
                "annotation.io.kubernetes.container.terminationMessagePath": "/dev/termination-log",
            },
            "HostConfig": {
                "NetworkMode": f"container:{sid}",
                "IpcMode": f"container:{sid}",
                "CgroupParent": cgroup,
                "Binds": [f"{www}:/www:ro"],
            },
        },
    )
    cid = str(app["Id"])
    api(sock, "POST", f"/containers/{cid}/start")
    # kubelet's log path is a symlink to dockerd's json log of the container.
    logs = node_path(init_pid, f"{log_dir}/{plan.container_name}")
    logs.mkdir(parents=True, exist_ok=True)
    (logs / "0.log").symlink_to(f"{DATA_ROOT}/containers/{cid}/{cid}-json.log")
    return DockerPod(
        plan.namespace,
        plan.name,
        plan.uid,
        sid,
        cid,
        plan.container_name,
        pid,
        ip,
        key.replace("/var/run/", "/run/", 1),
    )
