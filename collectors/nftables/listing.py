"""One native nftables table read over netlink, as the JSON `nft -j list table` prints.

The document has nft 1.0.6's shape and order: the table, its named sets and maps (in
the kernel's order), its chains, then each chain's rules. Anything the decoders cannot
reproduce exactly makes the whole table Unsupported, with the reason, so the
collector runs `nft -j list table` for that table instead (a wrong picture is worse
than a slow one). So does a change of the ruleset generation during the read.
"""

from __future__ import annotations

import copy
import functools
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, BinaryIO

from podpath.collectors.netlink.wire import NetlinkError
from podpath.collectors.nftables.datatypes import Unsupported
from podpath.collectors.nftables.delinearize import Delinearizer, rule_comment
from podpath.collectors.nftables.netlink import (
    FAMILY_NUMBERS,
    HOOKS,
    NftSocket,
    NlChain,
    NlRule,
    NlSet,
)
from podpath.collectors.nftables.sets import (
    SET_ANONYMOUS,
    SetInfo,
    elements_json,
    set_info,
    set_json,
)
from podpath.collectors.parallel import part_count, run_parts, split

# Below this many chains a run is not worth a forked decoder (kube-proxy has ~3.6 per
# Service port).
_CHAINS_PER_PART = 2000

_CHAIN_TYPES = frozenset({"filter", "nat", "route"})
_CHAIN_F_BASE = 0x1
_POLICIES = {0: "drop", 1: "accept"}


_OPEN = '{"nftables": ['
_SEPARATOR = ", "
_CLOSE = "]}"


@dataclass(frozen=True)
class Listing:
    """A table's `{"nftables": [...]}` document (no metainfo), or why it is not decoded.

    The document is kept as its items' texts (`items`), never joined by the reader
    process: at 10k Services they are 30 MB, and a joined copy and its encoded copy
    for stdout were two more (185 MiB peak, the largest process of the snapshot's tree).
    """

    family: str
    name: str
    items: tuple[str, ...] | None
    reason: str | None = None
    rules: int = 0

    @property
    def json_text(self) -> str | None:
        """The document as one text (None when not decoded)."""
        if self.items is None:
            return None
        return _OPEN + _SEPARATOR.join(self.items) + _CLOSE

    def write(self, out: BinaryIO) -> None:
        """The document, written an item at a time (a decoded listing only)."""
        assert self.items is not None
        out.write(_OPEN.encode())
        for n, item in enumerate(self.items):
            out.write((_SEPARATOR + item if n else item).encode())
        out.write(_CLOSE.encode())


def _checked(name: str) -> str:
    """A name as nft prints it; names that are not UTF-8 are left to nft."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise Unsupported("a name that is not UTF-8") from exc
    return name


class _Prefetch:
    """Dumps run ahead of the decoder on a socket of their own, on a thread of their own.

    The kernel does a dump's work inside send/recv, which release the GIL: on a
    second core the next chains' rules and the anonymous sets' elements are read
    while this thread decodes (each GETSETELEM walks the table's set list, so 9k sets
    cost the kernel seconds). Results come back in request order; an error is raised
    in the consumer.
    """

    def __init__(self, sock: NftSocket, calls: list[Callable[[NftSocket], Any]]) -> None:
        self.sock = sock
        self.calls = calls
        self.results: list[Any] = []
        self.error: BaseException | None = None
        self.done = 0
        self.stop = False
        self.cond = threading.Condition()
        self.thread = threading.Thread(target=self._run, name="nft-netlink", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            for call in self.calls:
                if self.stop:
                    return
                result = call(self.sock)
                with self.cond:
                    self.results.append(result)
                    self.done += 1
                    self.cond.notify_all()
        except (Unsupported, OSError) as exc:  # NetlinkError is an OSError
            with self.cond:
                self.error = exc
                self.cond.notify_all()

    def get(self, index: int) -> Any:
        """The result of call `index`, waiting for it."""
        with self.cond:
            while self.done <= index:
                if self.error is not None:
                    raise self.error
                self.cond.wait()
            return self.results[index]

    def close(self) -> None:
        """Stop after the dump in progress, wait for the thread, close the socket."""
        self.stop = True
        self.thread.join()
        self.sock.close()


class _TableReader:
    """Reads one table; every method may raise Unsupported or NetlinkError."""

    def __init__(self, sock: NftSocket, family: str, name: str) -> None:
        self.sock = sock
        self.family = family
        self.fnum = FAMILY_NUMBERS[family]
        self.name = _checked(name)
        self.infos: dict[str, SetInfo] = {}
        self.raw_sets: dict[str, NlSet] = {}
        self.anon: dict[str, list[Any]] = {}
        self.anon_index: dict[str, int] = {}
        self.anon_fetch: _Prefetch | None = None

    def read(self, threads: bool = True) -> tuple[list[str], int]:
        """The document's items (the table, its named sets, its chains, their rules) and
        how many rules."""
        table = self.sock.table(self.fnum, self.name)
        if table.flags:
            raise Unsupported(f"table flags {table.flags:#x}")
        if self.sock.has_objects(self.fnum, self.name):
            raise Unsupported("stateful objects (named counters, quotas...)")
        if self.sock.has_flowtables(self.fnum, self.name):
            raise Unsupported("flowtables")
        for nlset in self.sock.sets(self.fnum, self.name):
            self.raw_sets[nlset.name] = nlset
        chains = self.sock.chains(self.fnum, self.name)
        parts = [
            json.dumps(
                {"table": {"family": self.family, "name": self.name, "handle": table.handle}}
            )
        ]
        for nlset in self.raw_sets.values():
            if not nlset.flags & SET_ANONYMOUS:  # anonymous sets are shown inline in rules
                parts.append(json.dumps(self._set_object(nlset)))
        parts.extend(json.dumps(self._chain(c)) for c in chains)
        # Runs of chains are fetched and decoded on every core (parallel.run_parts forks
        # while this process has one thread), each with sockets of its own. The runs
        # are contiguous, so their texts join in order.
        runs = self._balanced_runs(chains)
        count = 0
        for items, done, reason in run_parts(
            functools.partial(self._rules_part, threads), self._with_anon_sets(runs)
        ):
            if reason is not None:
                raise Unsupported(reason)
            parts.extend(items)
            count += done
        return parts, count

    def _balanced_runs(self, chains: list[NlChain]) -> list[list[NlChain]]:
        """`chains` cut into one run per core, of about equal cost.

        A run's cost is its rules (~20 us each to fetch and decode, so ~40 us a
        kube-proxy chain) plus its share of the anonymous sets, whose elements cost
        more the later the set: the kernel finds a set by name by walking the
        table's set list (9,000 sets: 0.05 s for the first 1,000, 1.8 s for the last
        5,000). Cutting by chain count left the last run with most of that walk.
        """
        parts = part_count(len(chains), _CHAINS_PER_PART)
        anon = sum(1 for s in self.raw_sets.values() if s.flags & SET_ANONYMOUS)
        per_chain = anon / max(1, len(chains))  # anonymous sets per chain
        # Relative to one chain's own cost (calibrated on 10k kube-proxy Services so the
        # runs finish together): ~25 ns of list walk per set position
        # ahead of each of its `per_chain` sets, against ~40 us of rules.
        walk = per_chain * 25e-9 / 40e-6
        indexed = list(enumerate(chains))
        runs = split(indexed, parts, lambda ic: 1.0 + walk * ic[0] * per_chain)
        return [[c for _, c in run] for run in runs]

    def _with_anon_sets(self, runs: list[list[NlChain]]) -> list[tuple[list[str], list[NlChain]]]:
        """Each run of chains with the anonymous sets to fetch ahead for it.

        The kernel lists anonymous sets in the order their rules were added, so a run
        of chains gets the same share of that list; a set outside its share is
        fetched when a rule needs it (never missed, only not fetched ahead).
        """
        anon = [n for n, s in self.raw_sets.items() if s.flags & SET_ANONYMOUS]
        total = sum(len(r) for r in runs) or 1
        out = []
        start = 0
        for run in runs:
            end = start + len(run)
            out.append((anon[start * len(anon) // total : end * len(anon) // total], run))
            start = end
        return out

    def _rules_part(
        self, threads: bool, part: tuple[list[str], list[NlChain]]
    ) -> tuple[list[str], int, str | None]:
        """The rules of a run of chains as JSON items: (items, rules, None), or the reason
        they cannot be printed exactly as ([], 0, reason).

        Runs on a reader of its own (sockets, anonymous-set cache): parts may run on
        threads of one process when forking is not safe.
        """
        anon, chains = part
        reader = copy.copy(self)
        reader.sock, reader.anon, reader.anon_fetch = NftSocket(), {}, None
        reader.anon_index = {n: i for i, n in enumerate(anon)}
        fnum, tname = self.fnum, self.name
        rules_fetch: _Prefetch | None = None
        try:
            if threads and chains:
                rules_fetch = _Prefetch(
                    NftSocket(),
                    [
                        functools.partial(NftSocket.rules, family=fnum, table=tname, chain=c.name)
                        for c in chains
                    ],
                )
            if threads and anon:
                reader.anon_fetch = _Prefetch(
                    NftSocket(),
                    [
                        functools.partial(NftSocket.elements, family=fnum, table=tname, set_name=n)
                        for n in anon
                    ],
                )
            items, count = reader._rules_json(chains, rules_fetch)
            return items, count, None
        except (Unsupported, NetlinkError) as exc:
            return [], 0, str(exc) if isinstance(exc, Unsupported) else f"netlink: {exc}"
        finally:
            for fetch in (rules_fetch, reader.anon_fetch):
                if fetch is not None:
                    fetch.close()
            reader.sock.close()

    def _rules_json(
        self, chains: list[NlChain], rules_fetch: _Prefetch | None
    ) -> tuple[list[str], int]:
        """Each chain's rules as the text of their JSON items, and how many rules."""
        delin = Delinearizer(self.fnum, self._info, self._anon_elements)
        parts = []
        count = 0
        for i, chain in enumerate(chains):
            rules = (
                rules_fetch.get(i)
                if rules_fetch is not None
                else self.sock.rules(self.fnum, self.name, chain.name)
            )
            if not rules:
                continue
            objects = []
            for rule in rules:
                try:
                    objects.append(self._rule(delin, chain.name, rule))
                except Unsupported as exc:
                    raise Unsupported(f"chain {chain.name}, rule {rule.handle}: {exc}") from exc
            # One encoder call per chain, brackets dropped: the items join the document.
            parts.append(json.dumps(objects)[1:-1])
            count += len(rules)
        return parts, count

    def _rule(self, delin: Delinearizer, chain: str, rule: NlRule) -> dict[str, Any]:
        if rule.extra:
            raise Unsupported(f"rule attributes {rule.extra}")
        stmts = delin.statements(rule.exprs)
        if not stmts:
            raise Unsupported("a rule without statements")
        body: dict[str, Any] = {
            "family": self.family,
            "table": self.name,
            "chain": _checked(chain),
            "handle": rule.handle,
        }
        comment = rule_comment(rule.userdata)
        if comment is not None:
            body["comment"] = comment
        body["expr"] = stmts
        return {"rule": body}

    def _info(self, set_name: str) -> SetInfo:
        info = self.infos.get(set_name)
        if info is None:
            nlset = self.raw_sets.get(set_name)
            if nlset is None:
                raise Unsupported(f"a rule refers to set {set_name}, which is not listed")
            info = set_info(nlset)
            self.infos[set_name] = info
        return info

    def _anon_elements(self, info: SetInfo) -> list[Any]:
        found = self.anon.get(info.name)
        if found is None:
            index = self.anon_index.get(info.name)
            if self.anon_fetch is not None and index is not None:
                elements = self.anon_fetch.get(index)
            else:
                elements = self.sock.elements(self.fnum, self.name, info.name)
            found = elements_json(info, elements)
            self.anon[info.name] = found
        return found

    def _set_object(self, nlset: NlSet) -> dict[str, Any]:
        info = self._info(nlset.name)
        _checked(nlset.name)
        elements = self.sock.elements(self.fnum, self.name, nlset.name)
        return set_json(self.family, self.name, nlset, info, elements)

    def _chain(self, chain: NlChain) -> dict[str, Any]:
        body: dict[str, Any] = {
            "family": self.family,
            "table": self.name,
            "name": _checked(chain.name),
            "handle": chain.handle,
        }
        if chain.flags & ~_CHAIN_F_BASE:
            raise Unsupported(f"chain {chain.name}: flags {chain.flags:#x}")
        if chain.hooknum is None:
            return {"chain": body}
        if chain.devices or chain.type not in _CHAIN_TYPES or chain.hooknum >= len(HOOKS):
            raise Unsupported(f"chain {chain.name}: hook form")
        if chain.hooknum == 5 and self.family != "inet":
            raise Unsupported(f"chain {chain.name}: ingress hook")
        policy = _POLICIES.get(1 if chain.policy is None else chain.policy)
        if policy is None:
            raise Unsupported(f"chain {chain.name}: policy {chain.policy}")
        body.update(
            {
                "type": chain.type,
                "hook": HOOKS[chain.hooknum],
                "prio": chain.priority or 0,
                "policy": policy,
            }
        )
        return {"chain": body}


def list_table(family: str, name: str, sock: NftSocket | None = None) -> Listing:
    """Read one table over netlink; a Listing with json_text, or None and the reason.

    The generation id is read before and after: a ruleset that changed meanwhile may
    have been read half old, half new, so that read does not count.
    """
    if family not in ("ip", "ip6", "inet"):
        return Listing(family, name, None, f"family {family} is read by nft")
    own = sock is None
    s = NftSocket() if sock is None else sock
    try:
        before = s.generation()
        try:
            items, count = _TableReader(s, family, name).read()
        except Unsupported as exc:
            return Listing(family, name, None, str(exc))
        if s.generation() != before:
            return Listing(family, name, None, "the ruleset changed during the read")
        return Listing(family, name, tuple(items), None, count)
    except OSError as exc:  # NetlinkError, a timeout: nft lists the table instead
        return Listing(family, name, None, f"netlink: {exc}")
    finally:
        if own:
            s.close()


# Exit status of `python -m podpath.collectors.nftables.listing` for a table it does not read
# (the reason on stderr): the caller lists that table with nft instead.
EXIT_NOT_READ = 3


def main(argv: list[str] | None = None) -> int:
    """`python -m podpath.collectors.nftables.listing FAMILY NAME`: the table's document.

    The collector runs this in a child process: the read is seconds of CPU at 10k
    Services, which then overlaps the collector's own work on another core, and its
    memory (~200 MB at 72k rules) goes back to the system when it exits.
    """
    import gc
    import sys

    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        sys.stderr.write("usage: python -m podpath.collectors.nftables.listing FAMILY NAME\n")
        return 2
    # Tens of thousands of small acyclic objects, freed by reference counting: the
    # cycle collector's passes over them would only cost time.
    gc.disable()
    listing = list_table(args[0], args[1])
    if listing.items is None:
        sys.stderr.write(f"{listing.reason}\n")
        return EXIT_NOT_READ
    sys.stdout.flush()
    listing.write(sys.stdout.buffer)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
