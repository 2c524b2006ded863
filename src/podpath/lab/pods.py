"""Pods, made the way kubelet + containerd make them: netns, CNI ADD, pause, app containers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from podpath.lab import cni, runtime
from podpath.lab.names import container_id, netns_name
from podpath.lab.node import node_path, run_in
from podpath.lab.oci import PodMeta, container_spec, sandbox_spec
from podpath.lab.procs import children, nspid
from podpath.lab.records import LabError, PodRecord

DNS_IP = "10.96.0.10"
KUBELET_PODS = "/var/lib/kubelet/pods"


@dataclass(frozen=True)
class PodPlan:
    """A pod to make: identity, what it serves, and its host ports."""

    node: str
    namespace: str
    name: str
    uid: str
    app: str  # "web" or "dns"
    qos: str
    host_ports: tuple[tuple[int, int, str], ...] = ()
    restarts: int = 0  # app container crashes before the running attempt

    @property
    def container_name(self) -> str:
        """Name of the app container."""
        return "coredns" if self.app == "dns" else "web"


def _log_dir(plan: PodPlan) -> str:
    return f"/var/log/pods/{plan.namespace}_{plan.name}_{plan.uid}"


def _www_dir(plan: PodPlan) -> str:
    return f"{KUBELET_PODS}/{plan.uid}/volumes/kubernetes.io~empty-dir/www"


def _etc_files(init_pid: int, plan: PodPlan, ip: str, sandbox_id: str) -> str:
    # containerd keeps a sandbox's hostname, hosts and resolv.conf next to its state.
    base = f"/var/lib/kubelet/pods/{plan.uid}/etc-hosts-dir"
    d = node_path(init_pid, base)
    d.mkdir(parents=True, exist_ok=True)
    (d / "hostname").write_text(plan.name + "\n")
    (d / "hosts").write_text(f"127.0.0.1\tlocalhost\n{ip}\t{plan.name}\n")
    (d / "resolv.conf").write_text(
        f"search {plan.namespace}.svc.cluster.local svc.cluster.local cluster.local\n"
        f"nameserver {DNS_IP}\noptions ndots:5\n"
    )
    del sandbox_id
    return base


def _bind(source: str, dest: str, ro: bool = False) -> dict[str, Any]:
    return {
        "destination": dest,
        "type": "bind",
        "source": source,
        "options": ["rbind", "rprivate", "ro" if ro else "rw"],
    }


# A DNS-like echo on :53, UDP and TCP, IPv4 and IPv6 (one dual-stack socket each),
# naming the pod that answered. busybox's nc has
# no UDP mode, so the kube-dns-like pod runs the node's python3 (its /usr is bound in).
DNS_ECHO = r"""
import os, socket, threading
NAME = os.environ.get("HOSTNAME", "?")
def reply(data):
    return (NAME + ": " + data.decode(errors="replace").strip() + "\n").encode()
def udp():
    s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    s.bind(("::", 53))
    while True:
        data, peer = s.recvfrom(4096)
        s.sendto(reply(data), peer)
def serve(conn):
    with conn:
        conn.settimeout(5)
        try:
            conn.sendall(reply(conn.recv(4096)))
        except OSError:
            pass
t = socket.socket(socket.AF_INET6)
t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
t.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
t.bind(("::", 53))
t.listen(128)
threading.Thread(target=udp, daemon=True).start()
while True:
    c, _ = t.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
"""


def _app_args(plan: PodPlan) -> list[str]:
    if plan.app == "web":
        return ["/bin/httpd", "-f", "-v", "-p", "80", "-h", "/www"]
    return ["/usr/bin/python3", "-u", "-c", DNS_ECHO]


def _app_mounts(plan: PodPlan, etc: str) -> list[dict[str, Any]]:
    mounts = [
        _bind(f"{etc}/hosts", "/etc/hosts"),
        _bind(f"{etc}/hostname", "/etc/hostname"),
        _bind(f"{etc}/resolv.conf", "/etc/resolv.conf"),
    ]
    if plan.app == "web":
        return [_bind(_www_dir(plan), "/www", ro=True), *mounts]
    return [_bind("/usr", "/usr", ro=True), *mounts]


def page(plan: PodPlan, ip: str) -> str:
    """The web page a web pod serves: it names the pod that answered."""
    return f"podpath lab: served by pod {plan.namespace}/{plan.name} on {plan.node} ({ip})\n"


def make_pod(init_pid: int, conf: dict[str, Any], plan: PodPlan) -> PodRecord:
    """Create one pod end to end and return what was built."""
    sandbox_id = container_id()
    ns_name = netns_name()
    netns_path = f"/var/run/netns/{ns_name}"
    run_in(init_pid, ["ip", "netns", "add", ns_name])
    cni_pod = cni.CniPod(
        sandbox_id, netns_path, plan.namespace, plan.name, plan.uid, plan.host_ports
    )
    result = cni.add(init_pid, conf, cni_pod)
    ip = cni.pod_ip(result)
    ips = cni.pod_ips(result)
    meta = PodMeta(plan.namespace, plan.name, plan.uid, sandbox_id, _log_dir(plan), plan.qos)
    node_path(init_pid, f"{meta.log_dir}/{plan.container_name}").mkdir(parents=True)
    pause_pid = runtime.create_and_start(
        init_pid, sandbox_id, sandbox_spec(meta, netns_path, plan.name), runtime.PAUSE_FS, None
    )
    www = node_path(init_pid, _www_dir(plan))
    www.mkdir(parents=True)
    (www / "index.html").write_text(page(plan, ip))
    etc = _etc_files(init_pid, plan, ip, sandbox_id)
    app_id = container_id()
    spec = container_spec(
        meta,
        app_id,
        plan.container_name,
        runtime.BUSYBOX_IMAGE,
        _app_args(plan),
        pause_pid,
        _app_mounts(plan, etc),
    )
    runtime.create_and_start(
        init_pid, app_id, spec, runtime.BUSYBOX_FS, f"{meta.log_dir}/{plan.container_name}/0.log"
    )
    return PodRecord(
        node=plan.node,
        namespace=plan.namespace,
        name=plan.name,
        uid=plan.uid,
        sandbox_id=sandbox_id,
        pause_pid=pause_pid,
        pause_host_pid=host_pid_of(init_pid, pause_pid),
        ip=ip,
        netns_path=f"/run/netns/{ns_name}",
        host_veth=cni.host_veth(result),
        containers=((plan.container_name, app_id),),
        app=plan.app,
        qos=plan.qos,
        ips=ips,
    )


def host_pid_of(init_pid: int, node_pid: int) -> int:
    """Host PID of a process known by its PID in the node (a child of the node's init)."""
    for child in children(init_pid):
        try:
            chain = nspid(child)
        except FileNotFoundError:
            continue
        # NSpid lists the PID from our namespace inward: [here, node, container...].
        if len(chain) > 1 and chain[1] == node_pid:
            return child
    raise LabError(f"process {node_pid} is not a child of the node's init {init_pid}")


def remove_pod(init_pid: int, conf: dict[str, Any], pod: PodRecord, *, full: bool = True) -> None:
    """Tear a pod down as kubelet would: containers, CNI DEL, sandbox, netns.

    With full=False only the network is torn down (CNI DEL, netns): enough when the
    node itself is about to die, which ends every container and mount with it.
    """
    if full:
        for _, cid in pod.containers:
            runtime.remove(init_pid, cid)
    netns = pod.netns_path.replace("/run/netns/", "/var/run/netns/")
    cni.delete(init_pid, conf, cni.CniPod(pod.sandbox_id, netns, pod.namespace, pod.name, pod.uid))
    if full:
        runtime.remove(init_pid, pod.sandbox_id)
        run_in(init_pid, ["rm", "-rf", "--", f"{KUBELET_PODS}/{pod.uid}"])
    run_in(init_pid, ["ip", "netns", "delete", pod.netns_path.rsplit("/", 1)[-1]])


def read_conf(init_pid: int) -> dict[str, Any]:
    """The node's installed conflist."""
    return cni.read_conflist(init_pid)
