"""A snapshot's parsed views, each parsed once, and what the parsers could not read.

A parser bug or a hostile dump must cost one view, not the whole answer: a view that
fails to parse is empty and a note says why. The notes are listed as problems by
`podpath ls problems` and the TUI alike. Views are built lazily and under a lock,
because the TUI parses in a worker thread while a screen may ask for the same view.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar, cast

from podpath.analysis.conntrack import stale_entries, stale_in_listing
from podpath.analysis.dataplane import Dataplane, detect
from podpath.analysis.index import SnapshotIndex
from podpath.analysis.rulesets import RuleDump, rule_dumps
from podpath.conntrack import ConntrackEntry
from podpath.netfilter.kube_proxy import KubeProxyMode, Service
from podpath.netfilter.nft import NftRuleset

T = TypeVar("T")

# What a parser may raise on input it does not understand; anything else is a bug
# and is not hidden here.
PARSE_ERRORS = (ValueError, KeyError, TypeError, AttributeError, IndexError, RecursionError)


class ParsedSnapshot:
    """Lazily parsed, cached views of one snapshot, with notes on what failed to parse."""

    def __init__(self, index: SnapshotIndex) -> None:
        self.index = index
        self.notes: list[str] = []
        self._cache: dict[str, object] = {}
        self._lock = threading.RLock()

    def _once(self, what: str, build: Callable[[], T], default: T) -> T:
        """Build a view once; a parse failure leaves `default` and a note naming `what`."""
        # A view already built is returned without the lock: the TUI's event loop asks
        # for parsed views while its worker holds the lock parsing the next one.
        if what in self._cache:
            return cast(T, self._cache[what])
        with self._lock:
            if what not in self._cache:
                try:
                    self._cache[what] = build()
                except ImportError as exc:
                    self.notes.append(f"{what}: parser not available ({exc.name})")
                    self._cache[what] = default
                except PARSE_ERRORS as exc:
                    self.notes.append(f"{what}: could not be parsed ({type(exc).__name__}: {exc})")
                    self._cache[what] = default
            return cast(T, self._cache[what])

    def rule_dumps(self) -> tuple[RuleDump, ...]:
        """Every iptables dump, split into tables and chains (rules parse on demand)."""
        return self._once("iptables", lambda: rule_dumps(self.index), ())

    def nft_ruleset(self) -> NftRuleset | None:
        """The native nftables ruleset (None when the snapshot has none)."""
        return self._once("nftables", lambda: self.index.nft_ruleset, None)

    def services(self) -> tuple[Service, ...]:
        """Every Service port kube-proxy programmed, from every backend."""
        return self._once("Services", lambda: self.index.services, ())

    def conntrack(self) -> tuple[ConntrackEntry, ...]:
        """Every conntrack entry."""
        return self._once("conntrack", lambda: self.index.conntrack, ())

    def kube_proxy_mode(self) -> KubeProxyMode | None:
        """kube-proxy's mode and backend (None when the rules could not be read)."""
        return self._once("kube-proxy mode", lambda: self.index.kube_proxy_mode, None)

    def dataplane(self) -> Dataplane | None:
        """The node's dataplane: CNI shape, eBPF, kube-proxy (None when it could not be told)."""
        return self._once("dataplane", lambda: detect(self.index), None)

    def stale_conntrack(self) -> tuple[ConntrackEntry, ...]:
        """The conntrack entries that DNAT a Service to an address no longer its endpoint.

        Read from the listing's text without parsing every entry (`stale_in_listing`),
        so the doctor, which needs only these, never parses the whole table."""
        dump = self.index.snapshot.conntrack
        if dump is None:
            return ()
        services = self.services()

        def build() -> tuple[ConntrackEntry, ...]:
            if "conntrack" in self._cache:  # parsed already (the TUI's conntrack screen)
                return tuple(stale_entries(self.conntrack(), services))
            return tuple(stale_in_listing(dump.text, services))

        return self._once("stale conntrack", build, ())

    def parse_all(self, conntrack: bool = True) -> None:
        """Parse every view, so that `notes` names everything that could not be read
        (the conntrack table only when `conntrack`: the doctor reads just its stale entries)."""
        self.rule_dumps()
        self.nft_ruleset()
        self.services()
        if conntrack:
            self.conntrack()
        self.kube_proxy_mode()
        self.dataplane()
