"""Service-link variables of each pod container, read from its init process's environ.

In IPVS mode the node holds no Service names (virtual services, ipsets and KUBE-* chains
name none); the one place a node does is the environment kubelet gave each container
(podpath.kubelet_env). One process per container is read, its init (the process whose
parent is outside the container: the runtime's shim), and only the Service-link
variables are kept: everything else in environ, secrets included, is dropped here, before
anything is stored.
"""

from __future__ import annotations

import threading
from collections.abc import Collection, Iterable

from podpath.collectors.hostroot import CollectorError, HostRoot
from podpath.collectors.proc.processes import parse_stat
from podpath.kubelet_env import keep_service_links
from podpath.snapshot.model import Container, Gap, Pod, Process, ServiceLinkEnv

# /proc/PID/environ is at most the exec's argument space (ARG_MAX is a quarter of the stack
# limit; 2 MiB by default); more than 4 MiB is not an environment kubelet made.
MAX_ENVIRON_BYTES = 4 * 2**20


def init_pid(container: Container, procs: dict[int, Process]) -> Process | None:
    """The container's init process: its process whose parent is not in the container."""
    own = set(container.pids)
    inits = [procs[p] for p in container.pids if p in procs and procs[p].ppid not in own]
    return min(inits, key=lambda p: p.pid, default=None)


def _app_containers(pods: Iterable[Pod]) -> Iterable[tuple[Pod, Container]]:
    for pod in pods:
        for container in pod.containers:
            if container.kind == "container" and container.pids:
                yield pod, container


def read_environ(host: HostRoot, proc: Process) -> tuple[str, ...]:
    """The Service-link variables of a process's environ (CollectorError when it cannot tell)."""
    raw = host.proc_read(f"{proc.pid}/environ", limit=MAX_ENVIRON_BYTES)
    again = parse_stat(host.proc_read(f"{proc.pid}/stat"))
    if again.start_time != proc.start_time:
        raise CollectorError(f"/proc/{proc.pid}", "exited and its PID was reused", None)
    return keep_service_links(raw.decode(errors="surrogateescape").split("\0"))


def collect_service_links(
    host: HostRoot, pods: Collection[Pod], processes: Iterable[Process], cancel: threading.Event
) -> tuple[tuple[ServiceLinkEnv, ...], list[Gap]]:
    """Each running pod container's Service-link variables, and what could not be read."""
    procs = {p.pid: p for p in processes}
    out: list[ServiceLinkEnv] = []
    first_with: dict[tuple[str, ...], str] = {}  # a set of variables -> who holds it first
    gaps: list[Gap] = []
    for pod, container in _app_containers(pods):
        if cancel.is_set():
            break
        proc = init_pid(container, procs)
        if proc is None:
            continue  # its processes were not scanned (they exited in between)
        try:
            variables = read_environ(host, proc)
        except CollectorError as err:
            gap = err.to_gap()
            reason = f"{gap.reason} (Service-link variables of {pod.namespace}/{pod.name})"
            gaps.append(Gap(gap.subject, reason, gap.kind, gap.capability))
            continue
        who = f"{pod.namespace}/{pod.name}/{container.name}"
        same_as = first_with.setdefault(variables, who) if variables else who
        out.append(
            ServiceLinkEnv(
                pod.namespace,
                pod.name,
                container.name,
                proc.pid,
                variables if same_as == who else (),
                container.started_at,
                same_as if same_as != who else "",
            )
        )
    return tuple(out), gaps
