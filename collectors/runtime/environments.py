"""Container environments as a snapshot keeps them: values redacted, each variable made once.

Every replica of a workload carries the same variables, and with Service links on
(kubelet's default) every pod of a namespace carries one set per Service: the 10k-Service
benchmark node gives each of its 250 pods the same ~26k variables (BENCHMARKS.md), each
pod in its own order. Each distinct "NAME=value" is redacted once and the one
"NAME=<redacted>" string is shared by every container that has it. The values are held
only while one snapshot is collected (the Environments of collect_pods), never stored:
the Service-link variables alone are kept, with values, from the same read
(`service_links`), as `collectors/proc/service_links.py` explains.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from itertools import filterfalse, islice
from typing import Any, AnyStr

from podpath.kubelet_env import keep_service_links

REDACTED = "<redacted>"


class _Redacted(dict[Any, str]):
    """ "NAME=value" -> "NAME=<redacted>", made on first sight and shared by name."""

    def __init__(self) -> None:
        super().__init__()
        self._names: dict[str, str] = {}

    def __missing__(self, variable: Any) -> str:
        name = str(variable).partition("=")[0]
        text = self._names.get(name)
        if text is None:
            text = self._names[name] = f"{name}={REDACTED}"
        if type(variable) is str:  # as keys, 1 and True would be one
            self[variable] = text
        return text


class Environments:
    """The env tuples of one snapshot's containers (values redacted unless told not to).

    Each variable is looked up whole: every pod of a namespace repeats the same
    Service-link variables, values and all, so after the first pod a variable costs one
    dict lookup, done by map() without a Python step per variable (26k variables x 250
    pods took 4.6 s in a Python loop; the order of a pod's variables is its own).

    `without_links` also keeps a running container's Service-link variables, with their
    values, in `service_links` (container id -> variables): its runtime spec is the
    environment kubelet gave it, read once instead of again from its init's
    /proc/PID/environ (0.9 MB a container on the benchmark node, BENCHMARKS.md).
    """

    def __init__(self, *, redact: bool = True) -> None:
        self.redact = redact
        self._redacted = _Redacted()
        self._links = LinkSets()
        self.service_links: dict[str, tuple[str, ...]] = {}
        # By the identity of a set's Service-link variables (one tuple per set of
        # candidates, held by _links or by service_links).
        self._dropped: dict[int, _Dropped] = {}
        self._whole: dict[int, bool] = {}

    def of(self, value: Any) -> tuple[str, ...]:
        """The env of a runtime spec's `process.env` (or Docker's Config.Env) list.

        A tuple is an env shown before, kept by a refresh (cri_state.kept_for_refresh,
        where the redaction matches): parsed JSON gives lists only.
        """
        if isinstance(value, tuple):
            return value
        if not isinstance(value, list):
            return ()
        return self._shown(value)

    def without_links(self, value: Any, container_id: str) -> tuple[tuple[str, ...], int]:
        """(env short of its Service-link variables, how many were left out) of a spec's list.

        What without_service_link_env makes of `of(value)` once collect_service_links has
        read the same variables, in one pass instead of three (redact 26k variables, then
        drop them again): for a running app container, whose variables
        collect_service_links then takes from `service_links` (collectors/proc/service_links.py).
        """
        if not isinstance(value, list):
            return (), 0
        try:  # a list of strings (join checks each in C: a generator took 1 s here)
            text = "\0".join(value)
        except TypeError:  # a hand-edited spec's numbers: no environment execve could be given
            return self._shown(value), 0
        found = self._links.of_spec(value, text)
        links = self.service_links[container_id] = found.links
        if not links:
            return self._shown(value), 0
        drop = self._dropped.get(id(links)) or self._drop(links)
        if found.outside is not None and self._all_dropped(found, drop):
            # A known set of candidates, each dropped by its name: the env short of them
            # holds all that may be left, found without a step per variable.
            rest = found.outside
        else:  # the exact strings in C first (nearly all of them), then by name
            rest = list(filterfalse(drop.strings.__contains__, value))
        # Dropped by name, as without_service_link_env drops them.
        rest = [v for v in rest if v.partition("=")[0] not in drop.names]
        return self._shown(rest), len(value) - len(rest)

    def _drop(self, links: tuple[str, ...]) -> _Dropped:
        """What one set drops, made once (26k variables and names on the benchmark node)."""
        names = frozenset(v.partition("=")[0] for v in links)
        found = self._dropped[id(links)] = _Dropped(frozenset(links), names)
        return found

    def _all_dropped(self, found: SpecLinks, drop: _Dropped) -> bool:
        """Whether every candidate of a set is one of the variables dropped (a property of
        the set, which one links tuple stands for)."""
        whole = self._whole.get(id(found.links))
        if whole is None:
            names = drop.names
            whole = self._whole[id(found.links)] = all(
                v.partition("=")[0] in names for v in found.candidates()
            )
        return whole

    def _shown(self, value: list[Any]) -> tuple[str, ...]:
        if not self.redact:
            return tuple(map(str, value))
        return tuple(map(self._redacted.__getitem__, value))


@dataclass(frozen=True)
class _Dropped:
    """The Service-link variables of one set of candidates, and their names."""

    strings: frozenset[str]
    names: frozenset[str]


# Every variable keep_service_links keeps has "_PORT" or "_SERVICE_HOST" in its name
# (<NAME>_SERVICE_HOST, <NAME>_SERVICE_PORT[_<PORT>], <NAME>_PORT[_<n>_<PROTO>[_<FIELD>]]),
# and no other variable changes what it keeps: these are all it needs to see.
_CANDIDATES = re.compile(rb"(?:^|\0)([^\0=]*(?:_PORT|_SERVICE_HOST)[^\0=]*=[^\0]*)")
_CANDIDATES_TEXT = re.compile(_CANDIDATES.pattern.decode())
# One variable that is a candidate (matched at its start).
_CANDIDATE = re.compile(r"[^\0=]*(?:_PORT|_SERVICE_HOST)[^\0=]*=")


def candidates(environ: AnyStr, known: Iterable[AnyStr] = ()) -> AnyStr:
    """The NUL-separated variables of an environ that keep_service_links may keep.

    `known` are candidate sets found before: pods of one namespace hold the same block of
    Service-link variables and differ in a few of their own (HOSTNAME), so an environ
    that holds a known block whole, on variable boundaries, and no candidate outside it
    has exactly that block. Finding it is one substring search where the expression
    takes ~7 ms over the 0.9 MB environ of a 10k-Service node (BENCHMARKS.md).
    `environ` is /proc/PID/environ's bytes, or a spec's env list joined by NULs.
    """
    for key in known:
        if key and _whole_at(environ, key) >= 0:
            return key
    if isinstance(environ, bytes):
        return b"\0".join(_CANDIDATES.findall(environ))
    return "\0".join(_CANDIDATES_TEXT.findall(environ))


def _whole_at(environ: AnyStr, block: AnyStr) -> int:
    """Where `block` is whole variables of `environ` with no candidate outside it, else -1."""
    at = _block_at(environ, block)
    if at < 0:
        return -1
    outside = environ[:at] + environ[at + len(block) :]
    if isinstance(outside, bytes):
        return at if _CANDIDATES.search(outside) is None else -1
    return at if _CANDIDATES_TEXT.search(outside) is None else -1


def _block_at(environ: AnyStr, block: AnyStr) -> int:
    """Where `block` is in `environ` as whole variables (NUL or either end around it), else -1.

    Found by its first variable, then compared whole: `find` with the block itself as
    the needle prepares the whole 0.9 MB block at every call (two-way search), 0.6 ms to
    fail on an environ in another order and 1.4 ms to succeed, where the first variable's
    search and one comparison take ~0.03 ms (docs/performance.md, "The pods step").
    """
    nul = b"\0" if isinstance(environ, bytes) else "\0"
    head = block.partition(nul)[0]
    end = len(environ) - len(block)
    at = environ.find(head)
    while 0 <= at <= end:
        whole = (at == 0 or environ[at - 1 : at] == nul) and (
            at == end or environ[at + len(block) : at + len(block) + 1] == nul
        )
        if whole and environ.startswith(block, at):
            return at
        at = environ.find(head, at + 1)
    return -1


# The candidate blocks or sets tried before the expression runs (one per namespace is typical).
_KNOWN_TRIED = 8
# The variables of a known set looked up before the whole set is taken out of an env's.
_PROBED = 8


@dataclass(frozen=True)
class SpecLinks:
    """The Service-link variables of a spec's env list, as LinkSets found them."""

    links: tuple[str, ...]
    # The candidates they were made of: a block of them joined by NULs, or their set.
    candidate_text_or_set: str | frozenset[str]
    # The env list short of the candidates, in its order, where it was found on the way.
    outside: list[str] | None = None

    def candidates(self) -> Iterable[str]:
        """Each candidate variable."""
        found = self.candidate_text_or_set
        return found.split("\0") if isinstance(found, str) else found


def _one_per_part(env: list[str], text: str) -> bool:
    """Whether `text`, `env` joined by NULs, splits into its variables again: no variable
    holds a NUL (no execve passes such a variable; a hand-made spec may). Asked only
    where the text's parts are used: counting them takes ~0.4 ms over 0.9 MB."""
    return text.count("\0") == len(env) - 1


def _cut(env: list[str], text: str, at: int, variables: int) -> list[str]:
    """`env` short of a block of `variables` variables found whole at `at` of `text` (env
    joined by NULs, no variable holding one): list items i..i+n, cut without a step per
    variable."""
    i = text.count("\0", 0, at)
    return env[:i] + env[i + variables :]


class LinkSets:
    """The Service-link variables of one snapshot's environments, each distinct set made once.

    Every replica of a namespace holds the same set, and with thousands of Services
    keep_service_links takes ~0.13 s for one (26k variables), against ~7 ms to find the
    candidates: 250 such pods took a snapshot 60 s before (BENCHMARKS.md). kubelet gives
    each container its variables in an order of its own (it ranges over Go maps:
    pkg/kubelet/kubelet_pods.go makeEnvironmentVariables), so a set is also known
    whatever its order: keep_service_links' answer does not depend on the order where no
    name is given twice (it keeps a name's last value). A spec's env list is known again
    by its set (`known_in`); an environ's bytes by the first order of each set, as the
    known block the next pods' environs are searched for.
    """

    def __init__(self) -> None:
        self._environs: dict[bytes, tuple[str, ...]] = {}
        # A spec's block of candidates -> (its Service-link variables, how many variables
        # the block holds: counting its NULs again took 0.3 ms a container).
        self._specs: dict[str, tuple[tuple[str, ...], int]] = {}
        self._unordered: dict[frozenset[str], tuple[str, ...]] = {}

    def of_environ(self, raw: bytes) -> tuple[str, ...]:
        """Of a /proc/PID/environ."""
        key = candidates(raw, islice(reversed(self._environs), _KNOWN_TRIED))
        found = self._environs.get(key)
        if found is None:
            found, first = self._of(key.decode(errors="surrogateescape").split("\0"))
            if first:
                self._environs[key] = found
        return found

    def of_spec(self, env: list[str], text: str) -> SpecLinks:
        """Of a runtime spec's env list of strings, and the same joined by NULs: a known
        block of candidates in the same order, else a known set in another, else the
        expression's candidates."""
        for key in islice(reversed(self._specs), _KNOWN_TRIED):
            at = _whole_at(text, key) if key else -1
            if at >= 0 and _one_per_part(env, text):
                links, variables = self._specs[key]
                return SpecLinks(links, key, _cut(env, text, at, variables))
        # By the list, not the text: exact whatever a variable holds (a NUL in one can
        # only make the expression see more candidates outside the set, and none known).
        known = self._known_in(env)
        if known is not None:
            return known
        if not _one_per_part(env, text):
            own = list(filter(_CANDIDATE.match, env))
            return SpecLinks(self._of(own)[0], frozenset(own))
        key = candidates(text)
        found, first = self._of(key.split("\0"))
        if first:
            self._specs[key] = found, key.count("\0") + 1
        return SpecLinks(found, key)

    def _known_in(self, env: list[str]) -> SpecLinks | None:
        """A set of candidates seen before that is exactly `env`'s, in another order.

        kubelet orders each container's variables anew, so the ~26.7k of a container of
        the 10k-Service benchmark node are known again by their set: `env`'s distinct
        strings are put in a set of their own (hashing the strings json made) and a
        known set taken out of it; the known set is all there when as many strings went
        as it holds. Iterating the known set against the fresh one takes
        ~3.5 ms a container where looking each of `env` up in the known set, then
        intersecting them, took ~8-10 ms: the fresh set and its strings are still in
        the cache (docs/performance.md, "The pods step")."""
        distinct: set[str] | None = None
        for known in islice(reversed(self._unordered), _KNOWN_TRIED):
            if len(env) < len(known):
                continue
            if distinct is None:
                distinct = set(env)
            if not all(map(distinct.__contains__, islice(known, _PROBED))):
                continue  # another namespace's set, told by a few of its variables
            held = len(distinct)
            distinct.difference_update(known)  # in place: a copy cost ~1.3 ms
            rest, distinct = distinct, None
            if len(rest) != held - len(known):
                continue  # one of the set is missing
            # `env` short of the set, in its order (a variable given twice stays twice).
            outside = list(filter(rest.__contains__, env))
            if _CANDIDATES_TEXT.search("\0".join(outside)) is None:  # no other candidate
                return SpecLinks(self._unordered[known], known, outside)
        return None

    def _of(self, variables: list[str]) -> tuple[tuple[str, ...], bool]:
        """(Service-link variables of these candidates, whether their set is new)."""
        unordered = frozenset(variables)
        found = self._unordered.get(unordered)
        if found is not None:
            return found, False
        found = keep_service_links(variables)
        names = {v.partition("=")[0] for v in unordered}
        if len(names) == len(unordered):  # no name twice: the order did not matter
            self._unordered[unordered] = found
        return found, True
