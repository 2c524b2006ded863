"""Service-link variables of each pod container: from its runtime spec, else its init's environ.

In IPVS mode the node holds no Service names (virtual services, ipsets and KUBE-* chains
name none); the one place a node does is the environment kubelet gave each container
(podpath.kubelet_env). The runtime's spec of the container (the OCI bundle's
`process.env`, CRI-O's config, Docker's Config.Env, CRI's verbose info) is that
environment, as given to the container's init by execve (runtime-spec config.md,
"process"), and it is read anyway for the container's env: those variables come from
that one read (collectors/runtime/environments.py). Where no runtime spec gave it, one
process per container is read, its init (the process whose parent is outside the
container: the runtime's shim). Either way only the Service-link variables are kept:
everything else, secrets included, is dropped before anything is stored.

The spec cannot change while the container lives, where environ can: a process may
overwrite its own (nginx and PostgreSQL write their process titles over argv and the
environ after it), so the spec is also the more faithful of the two.
"""

from __future__ import annotations

import threading
from collections.abc import Collection, Iterable, Mapping
from dataclasses import replace
from itertools import filterfalse
from types import MappingProxyType

from podpath.collectors.hostroot import CollectorError, HostRoot
from podpath.collectors.proc.processes import parse_stat
from podpath.collectors.runtime.environments import REDACTED, LinkSets
from podpath.snapshot.model import Container, Gap, Pod, Process, ServiceLinkEnv

# /proc/PID/environ is at most the exec's argument space (ARG_MAX is a quarter of the stack
# limit; 2 MiB by default); more than 4 MiB is not an environment kubelet made.
MAX_ENVIRON_BYTES = 4 * 2**20


_NONE: Mapping[str, tuple[str, ...]] = MappingProxyType({})


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


def read_environ(host: HostRoot, proc: Process, sets: LinkSets) -> tuple[str, ...]:
    """The Service-link variables of a process's environ (CollectorError when it cannot tell)."""
    raw = host.proc_read(f"{proc.pid}/environ", limit=MAX_ENVIRON_BYTES)
    again = parse_stat(host.proc_read(f"{proc.pid}/stat"))
    if again.start_time != proc.start_time:
        raise CollectorError(f"/proc/{proc.pid}", "exited and its PID was reused", None)
    return sets.of_environ(raw)


def collect_service_links(
    host: HostRoot,
    pods: Collection[Pod],
    processes: Iterable[Process],
    cancel: threading.Event,
    given: Mapping[str, tuple[str, ...]] = _NONE,
) -> tuple[tuple[ServiceLinkEnv, ...], list[Gap]]:
    """Each running pod container's Service-link variables, and what could not be read.

    `given`: the variables of each container (by id) whose runtime spec gave its
    environment (Environments.service_links); only the others' environ is read.
    """
    procs = {p.pid: p for p in processes}
    out: list[ServiceLinkEnv] = []
    first_with: dict[tuple[str, ...], str] = {}  # a set of variables -> who holds it first
    # The same, by the tuple's identity: the runtime specs give most containers one of a
    # few tuples (Environments.service_links), and a tuple's hash is not cached: hashing
    # 26.7k variables for each of 250 containers cost 77 ms of every snapshot and refresh
    # (docs/performance.md). The tuple is kept with its holder so that its id stays its own.
    first_by_id: dict[int, tuple[tuple[str, ...], str]] = {}
    gaps: list[Gap] = []
    sets = LinkSets()
    for pod, container in _app_containers(pods):
        if cancel.is_set():
            break
        proc = init_pid(container, procs)
        if proc is None:
            continue  # its processes were not scanned (they exited in between)
        variables = given.get(container.id)
        try:
            if variables is None:
                variables = read_environ(host, proc, sets)
        except CollectorError as err:
            gap = err.to_gap()
            reason = f"{gap.reason} (Service-link variables of {pod.namespace}/{pod.name})"
            gaps.append(Gap(gap.subject, reason, gap.kind, gap.capability))
            continue
        who = f"{pod.namespace}/{pod.name}/{container.name}"
        same_as = _first_holder(variables, who, first_with, first_by_id) if variables else who
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


def _first_holder(
    variables: tuple[str, ...],
    who: str,
    first_with: dict[tuple[str, ...], str],
    first_by_id: dict[int, tuple[tuple[str, ...], str]],
) -> str:
    """Who holds `variables` first (`who` when no one did), asked by identity first."""
    known = first_by_id.get(id(variables))
    if known is not None:
        return known[1]
    holder = first_with.setdefault(variables, who)
    first_by_id[id(variables)] = (variables, holder)
    return holder


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
    redacted: dict[frozenset[str], frozenset[str]] = {}
    return tuple(_trimmed(pod, names_of, redacted) for pod in pods)


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
    redacted: dict[frozenset[str], frozenset[str]],
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
        # A count already there: the runtime's env was read without them (Environments).
        if names and container.env and not container.service_link_env:
            forms = redacted.get(names)
            if forms is None:
                forms = redacted[names] = frozenset(f"{n}={REDACTED}" for n in names)
            kept = _without(container.env, names, forms)
            left_out = len(container.env) - len(kept)
            container = replace(container, env=kept, service_link_env=left_out)
        containers.append(container)
    return replace(pod, containers=tuple(containers))


def _without(env: tuple[str, ...], names: frozenset[str], forms: frozenset[str]) -> tuple[str, ...]:
    """`env` short of the variables named in `names`.

    A redacted env (the default) holds one shared "NAME=<redacted>" string per variable:
    the set of those forms drops the Service-link ones without a Python step per variable
    (26k of them in each of 250 pods on the 10k-Service node), and the few left are
    checked by name (an env kept with its values, --show-env, is all checked so).
    """
    rest = tuple(filterfalse(forms.__contains__, env))
    return tuple(e for e in rest if e.partition("=")[0] not in names)
