"""Views over the parsed netfilter, Service and conntrack data that the screens show.

The parsers (`podpath.netfilter.*`, `podpath.conntrack`) are reached only through
`SnapshotIndex`; this module turns their objects into the small shapes the rows need,
so a change in a parser touches one place. A parser that fails becomes a `Problem`-
worthy note (`ParseNote`) instead of a crash: a hostile dump must not close the app.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from podpath.analysis.index import SnapshotIndex
from podpath.conntrack import ConntrackEntry, ConntrackTuple
from podpath.netfilter.iptables_save import Ruleset
from podpath.netfilter.kube_proxy import Service
from podpath.netfilter.model import Chain, Rule
from podpath.snapshot.model import IptablesDump

T = TypeVar("T")


@dataclass(frozen=True)
class Endpoint:
    """One Service endpoint with the share kube-proxy gives it."""

    ip: str
    port: int | None
    probability: float
    chain: str | None  # KUBE-SEP-... (None in nftables mode)
    local: bool = False
    dnat_rule: str = ""  # the rule that rewrites the destination, verbatim


@dataclass(frozen=True)
class ServiceView:
    """A Service as kube-proxy programmed it."""

    namespace: str
    name: str
    port_name: str
    vip: str
    port: int | None
    protocol: str
    chain: str | None  # KUBE-SVC-...
    endpoints: tuple[Endpoint, ...]
    backend: str
    masquerade: str = "none"  # "all", "none", or "when source not in CIDR"

    @property
    def key(self) -> str:
        """A stable key: namespace/name:port/proto."""
        return (
            f"{self.namespace}/{self.name}:{self.port_name}/{self.vip}:{self.port}/{self.protocol}"
        )


@dataclass(frozen=True)
class Tuple5:
    """One direction of a conntrack entry."""

    src: str
    dst: str
    sport: int | None
    dport: int | None


@dataclass(frozen=True)
class ConntrackView:
    """One conntrack entry."""

    protocol: str
    state: str
    original: Tuple5
    reply: Tuple5
    flags: tuple[str, ...]
    timeout: int | None

    @property
    def dnat(self) -> bool:
        """True when the reply comes from another address than the original destination."""
        return self.reply.src != self.original.dst

    @property
    def snat(self) -> bool:
        """True when the reply goes to another address than the original source."""
        return self.reply.dst != self.original.src


class RulesetView:
    """One iptables dump with its lazily parsed ruleset (rules parse per chain, on demand)."""

    def __init__(self, dump: IptablesDump, ruleset: Ruleset) -> None:
        self.dump = dump
        self.ruleset = ruleset

    @property
    def label(self) -> str:
        """backend/family, e.g. nft/ipv4."""
        return f"{self.dump.backend}/{self.dump.family}"

    @property
    def tables(self) -> tuple[str, ...]:
        """Table names in dump order."""
        return self.ruleset.tables

    def chains(self, table: str) -> tuple[Chain, ...]:
        """A table's chains in dump order."""
        return self.ruleset.chains(table)

    def has_chain(self, table: str, name: str) -> bool:
        """True when the table declares or uses this chain."""
        return self.ruleset.chain(table, name) is not None

    def rules(self, table: str, chain: str) -> tuple[Rule, ...]:
        """A chain's rules (parsed on first access)."""
        return self.ruleset.rules(table, chain)

    def rule_count(self, table: str, chain: str | None = None) -> int:
        """Rules in one chain, or in every chain of a table, without parsing them."""
        names = [chain] if chain is not None else [c.name for c in self.chains(table)]
        return sum(len(self.ruleset.rule_lines(table, n)) for n in names)

    @property
    def total_rules(self) -> int:
        """Rules in every table."""
        return sum(self.rule_count(t) for t in self.tables)


def _safely(notes: list[str], what: str, fn: Callable[[], T], default: T) -> T:  # noqa: UP047
    # A parser bug or a hostile dump must cost one panel, not the app: the note is
    # shown in that panel and on the Problems screen.
    try:
        return fn()
    except ImportError as exc:
        notes.append(f"{what}: parser not available ({exc.name})")
    except (ValueError, KeyError, TypeError, AttributeError, IndexError) as exc:
        notes.append(f"{what}: could not be parsed ({type(exc).__name__}: {exc})")
    return default


_NO_SERVICES: tuple[ServiceView, ...] = ()
_NO_CONNTRACK: tuple[ConntrackView, ...] = ()
_NO_RULESETS: tuple[RulesetView, ...] = ()


class Views:
    """Lazily built, cached views of one snapshot's parsed data."""

    def __init__(self, index: SnapshotIndex) -> None:
        self.index = index
        self.notes: list[str] = []
        self._services: tuple[ServiceView, ...] | None = None
        self._conntrack: tuple[ConntrackView, ...] | None = None
        self._rulesets: tuple[RulesetView, ...] | None = None
        # Home parses in a worker thread while a screen may ask for the same view:
        # the second caller waits for the first parse instead of repeating it.
        self._lock = threading.RLock()

    def services(self) -> tuple[ServiceView, ...]:
        """Every Service kube-proxy programmed."""
        with self._lock:
            if self._services is None:
                self._services = _safely(self.notes, "Services", self._build_services, _NO_SERVICES)
                gc.freeze()  # see podpath.tui.app.settle_heap
        return self._services

    def conntrack(self) -> tuple[ConntrackView, ...]:
        """Every conntrack entry."""
        with self._lock:
            if self._conntrack is None:
                self._conntrack = _safely(
                    self.notes, "conntrack", self._build_conntrack, _NO_CONNTRACK
                )
                gc.freeze()  # see podpath.tui.app.settle_heap
        return self._conntrack

    def rulesets(self) -> tuple[RulesetView, ...]:
        """Every iptables dump, parsed into tables, chains and rules."""
        with self._lock:
            if self._rulesets is None:
                self._rulesets = _safely(self.notes, "iptables", self._build_rulesets, _NO_RULESETS)
        return self._rulesets

    def _build_services(self) -> tuple[ServiceView, ...]:
        local = set(self.index.pods_by_ip)
        return tuple(_service_view(s, local) for s in self.index.services)

    def _build_conntrack(self) -> tuple[ConntrackView, ...]:
        return tuple(_conntrack_view(e) for e in self.index.conntrack)

    def _build_rulesets(self) -> tuple[RulesetView, ...]:
        return tuple(RulesetView(dump, ruleset) for dump, ruleset in self.index.rulesets)


def _service_view(svc: Service, local: set[str]) -> ServiceView:
    endpoints = tuple(
        Endpoint(
            ip=ep.ip,
            port=ep.port,
            probability=ep.probability,
            chain=ep.sep_chain,
            local=ep.local if ep.local is not None else ep.ip in local,
            dnat_rule=ep.dnat_rule_text,
        )
        for ep in svc.endpoints
    )
    return ServiceView(
        namespace=svc.namespace,
        name=svc.name,
        port_name=svc.port_name,
        vip=svc.cluster_ip or "-",
        port=svc.port,
        protocol=svc.protocol.lower(),
        chain=svc.svc_chain,
        endpoints=endpoints,
        backend=svc.backend,
        masquerade=svc.masquerade,
    )


def _tuple5(t: ConntrackTuple) -> Tuple5:
    return Tuple5(src=t.src, dst=t.dst, sport=t.sport, dport=t.dport)


def _conntrack_view(e: ConntrackEntry) -> ConntrackView:
    original = _tuple5(e.original)
    return ConntrackView(
        protocol=e.protocol,
        state=e.state or "",
        original=original,
        # An entry without a reply tuple is shown as its own mirror: no NAT claimed.
        reply=_tuple5(e.reply)
        if e.reply is not None
        else Tuple5(original.dst, original.src, original.dport, original.sport),
        flags=e.status,
        timeout=e.timeout,
    )
