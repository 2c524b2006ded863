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
from itertools import filterfalse, islice

from podpath.collectors.hostroot import CollectorError, HostRoot
from podpath.collectors.proc.processes import parse_stat
from podpath.collectors.runtime.environments import REDACTED
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


def candidates(environ: bytes, known: Iterable[bytes] = ()) -> bytes:
    """The NUL-separated variables of an environ that keep_service_links may keep.

    `known` are candidate sets found before: pods of one namespace hold the same block of
    Service-link variables and differ in a few of their own (HOSTNAME), so an environ
    that holds a known block whole, on variable boundaries, and no candidate outside it
    has exactly that block. Finding it is one substring search where the expression
    takes ~7 ms over the 0.9 MB environ of a 10k-Service node (BENCHMARKS.md).
    """
    for key in known:
        if key and _holds_only(environ, key):
            return key
    return b"\0".join(_CANDIDATES.findall(environ))


def _holds_only(environ: bytes, block: bytes) -> bool:
    """Whether `block` is whole variables of `environ` and no candidate lies outside it."""
    at = environ.find(block)
    if at < 0:
        return False
    end = at + len(block)
    if (at and environ[at - 1] != 0) or (end < len(environ) and environ[end] != 0):
        return False
    return _CANDIDATES.search(environ[:at] + environ[end:]) is None


# The candidate blocks tried before the expression runs (one per namespace is typical).
_KNOWN_TRIED = 8


def read_environ(
    host: HostRoot, proc: Process, seen: dict[bytes, tuple[str, ...]]
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
    key = candidates(raw, islice(reversed(seen), _KNOWN_TRIED))
    found = seen.get(key)
    if found is None:
        found = seen[key] = keep_service_links(key.decode(errors="surrogateescape").split("\0"))
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
        if names and container.env:
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
