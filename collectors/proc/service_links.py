"""Service-link variables of each pod container, read from its init process's environ.

In IPVS mode the node holds no Service names (virtual services, ipsets and KUBE-* chains
name none); the one place a node does is the environment kubelet gave each container
(podpath.kubelet_env). One process per container is read, its init (the process whose
parent is outside the container: the runtime's shim), and only the Service-link
variables are kept: everything else in environ, secrets included, is dropped here, before
anything is stored.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Collection, Iterable
from dataclasses import replace

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


# Every variable keep_service_links keeps has "_PORT" or "_SERVICE_HOST" in its name
# (<NAME>_SERVICE_HOST, <NAME>_SERVICE_PORT[_<PORT>], <NAME>_PORT[_<n>_<PROTO>[_<FIELD>]]),
# and no other variable changes what it keeps: these are all it needs to see.
_CANDIDATES = re.compile(rb"(?:^|\0)([^\0=]*(?:_PORT|_SERVICE_HOST)[^\0=]*=[^\0]*)")


def candidates(environ: bytes) -> bytes:
    """The NUL-separated variables of an environ that keep_service_links may keep."""
    return b"\0".join(_CANDIDATES.findall(environ))


def read_environ(
    host: HostRoot, proc: Process, seen: dict[bytes, tuple[str, ...]] | None = None
) -> tuple[str, ...]:
    """The Service-link variables of a process's environ (CollectorError when it cannot tell).

    `seen` remembers the answer for each set of candidate variables: every replica of a
    namespace holds the same set, and with thousands of Services keep_service_links takes
    ~0.24 s for one (26k variables), against ~7 ms to find the candidates: 250 such pods
    took a snapshot 60 s before (BENCHMARKS.md).
    """
    raw = host.proc_read(f"{proc.pid}/environ", limit=MAX_ENVIRON_BYTES)
    again = parse_stat(host.proc_read(f"{proc.pid}/stat"))
    if again.start_time != proc.start_time:
        raise CollectorError(f"/proc/{proc.pid}", "exited and its PID was reused", None)
    key = candidates(raw)
    found = seen.get(key) if seen is not None else None
    if found is None:
        found = keep_service_links(key.decode(errors="surrogateescape").split("\0"))
        if seen is not None:
            seen[key] = found
    return found


def collect_service_links(
    host: HostRoot, pods: Collection[Pod], processes: Iterable[Process], cancel: threading.Event
) -> tuple[tuple[ServiceLinkEnv, ...], list[Gap]]:
    """Each running pod container's Service-link variables, and what could not be read."""
    procs = {p.pid: p for p in processes}
    out: list[ServiceLinkEnv] = []
    first_with: dict[tuple[str, ...], str] = {}  # a set of variables -> who holds it first
    gaps: list[Gap] = []
    seen: dict[bytes, tuple[str, ...]] = {}
    for pod, container in _app_containers(pods):
        if cancel.is_set():
            break
        proc = init_pid(container, procs)
        if proc is None:
            continue  # its processes were not scanned (they exited in between)
        try:
            variables = read_environ(host, proc, seen)
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


def without_service_link_env(
    pods: tuple[Pod, ...], links: Iterable[ServiceLinkEnv]
) -> tuple[Pod, ...]:
    """The pods with each container's env short of the Service-link variables `links` holds.

    The runtime's env of a container repeats every Service-link variable of its namespace:
    with thousands of Services, tens of thousands of variables in every replica (a 10k-
    Service node's snapshot grew from 29 MB to 276 MB with them). service_links keeps each
    distinct set once, with values, so env keeps the container's own variables and
    `service_link_env` says how many were left out.
    """
    names_of = _service_link_names(links)
    if not names_of:
        return pods
    done: dict[tuple[frozenset[str], tuple[str, ...]], tuple[str, ...]] = {}
    return tuple(_trimmed(pod, names_of, done) for pod in pods)


# (namespace, pod, container name, its init's PID): a restarted container's earlier
# attempts have the same name, and only the one whose environ was read is trimmed.
_Holder = tuple[str, str, str, int]


def _service_link_names(links: Iterable[ServiceLinkEnv]) -> dict[_Holder, frozenset[str]]:
    """Each holder's Service-link variable names (same_as resolved)."""
    by_holder: dict[str, frozenset[str]] = {}
    out: dict[_Holder, frozenset[str]] = {}
    for link in links:
        if link.same_as:
            names = by_holder.get(link.same_as, frozenset())
        else:
            names = frozenset(v.partition("=")[0] for v in link.variables)
        by_holder[f"{link.namespace}/{link.pod}/{link.container}"] = names
        if names:
            out[(link.namespace, link.pod, link.container, link.pid)] = names
    return out


def _trimmed(
    pod: Pod,
    names_of: dict[_Holder, frozenset[str]],
    done: dict[tuple[frozenset[str], tuple[str, ...]], tuple[str, ...]],
) -> Pod:
    containers = []
    for container in pod.containers:
        names = next(
            (
                names_of[holder]
                for pid in container.pids
                if (holder := (pod.namespace, pod.name, container.name, pid)) in names_of
            ),
            None,
        )
        if names and container.env:
            # Replicas' env are alike (values redacted): each distinct one is filtered once.
            key = (names, container.env)
            kept = done.get(key)
            if kept is None:
                kept = done[key] = tuple(
                    e for e in container.env if e.partition("=")[0] not in names
                )
            left_out = len(container.env) - len(kept)
            container = replace(container, env=kept, service_link_env=left_out)
        containers.append(container)
    return replace(pod, containers=tuple(containers))
