"""The loaded snapshot with its index and parsed views, shared by every screen."""

from __future__ import annotations

import gc
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from textual.worker import Worker

from podpath.analysis.findings import Finding
from podpath.analysis.index import SnapshotIndex
from podpath.analysis.mentions import MentionIndex, mention_index
from podpath.analysis.parsed import ParsedSnapshot
from podpath.doctor import diagnose
from podpath.netfilter.nft import NftRuleset
from podpath.snapshot.model import Snapshot
from podpath.tui.actions import Actions
from podpath.tui.rows.conntrack import conntrack_rows
from podpath.tui.rows.model import Row, RowSet, rowset
from podpath.tui.rows.services import service_rows
from podpath.tui.source import SnapshotSource

# Below this much rule and conntrack text, the views are prepared at once (the first
# frame stays well under 1 s); above it, in a worker thread after the first frame.
INLINE_PREPARE_BYTES = 2_000_000


@dataclass
class Loaded:
    """One snapshot and everything derived from it (built once, cached, shared by screens)."""

    snapshot: Snapshot
    # Other nodes' snapshots, indexed once: a trace may cross into them.
    peers: tuple[Snapshot, ...] = ()
    index: SnapshotIndex = field(init=False)
    peer_indexes: tuple[SnapshotIndex, ...] = field(init=False)
    parsed: ParsedSnapshot = field(init=False)
    # Set once prepare() has parsed the big views: until then screens that need them
    # show "…" instead of parsing on the event loop.
    ready: threading.Event = field(init=False, default_factory=threading.Event)
    # True when preparing the views failed (a bug, reported once): screens stop waiting.
    failed: bool = field(init=False, default=False)
    # What prepare() is doing now, e.g. "Services (2/5)"; "" before it starts.
    step: str = field(init=False, default="")
    _rowsets: dict[str, RowSet] = field(init=False, default_factory=dict)
    _problems: tuple[Finding, ...] | None = field(init=False, default=None)
    _mentions: MentionIndex | None = field(init=False, default=None)
    _lock: threading.RLock = field(init=False, default_factory=threading.RLock)
    _others: dict[int, Loaded] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        self.index = SnapshotIndex(self.snapshot)
        self.parsed = ParsedSnapshot(self.index)
        self.peer_indexes = tuple(SnapshotIndex(p) for p in self.peers)

    @property
    def small(self) -> bool:
        """True when the big views are cheap enough to prepare on the event loop."""
        return raw_size(self.snapshot) <= INLINE_PREPARE_BYTES

    def node(self, number: int) -> Loaded:
        """Loaded snapshot `number` as a Loaded of its own (0: this one; n: peers[n-1]), built once.

        Its views are prepared by whoever shows it (prepare() in a worker when it is big).
        """
        if number == 0:
            return self
        with self._lock:
            found = self._others.get(number)
            if found is None:
                snaps = (self.snapshot, *self.peers)
                others = tuple(s for i, s in enumerate(snaps) if i != number)
                found = self._others[number] = Loaded(snaps[number], others)
            return found

    def rows(self, name: str, build: Callable[[], list[Row]]) -> RowSet:
        """The rows called `name`, built once per snapshot (thread-safe)."""
        with self._lock:
            found = self._rowsets.get(name)
            if found is None:
                found = self._rowsets[name] = rowset(build())
            return found

    def service_rows(self) -> RowSet:
        """Every Service port as a row (the Services screen)."""
        return self.rows("services", lambda: service_rows(self.index, self.parsed.services()))

    def conntrack_rows(self) -> RowSet:
        """Every conntrack entry as a row (the Conntrack screen)."""
        return self.rows(
            "conntrack", lambda: conntrack_rows(self.parsed.conntrack(), self.parsed.services())
        )

    def ip_mentions(self) -> MentionIndex:
        """Rules naming each pod IP (one pass over every rule; built in prepare on big snapshots)."""
        with self._lock:
            if self._mentions is None:
                self._mentions = mention_index(self.parsed.rule_dumps(), self.index.pods_by_ip)
            return self._mentions

    def nft_ruleset(self) -> NftRuleset | None:
        """The native nftables ruleset, parsed once (None when the snapshot has none)."""
        return self.parsed.nft_ruleset()

    @property
    def problems(self) -> tuple[Finding, ...] | None:
        """What `podpath doctor` finds on these snapshots (podpath.doctor), once prepared."""
        return self._problems if self.ready.is_set() else None

    def prepare(self, progress: Callable[[str, int, int], object] | None = None) -> None:
        """Parse the big views and build their rows (call from a worker thread on big snapshots).

        `progress` is told each step as it starts; `step` says the same to the screens.
        """
        if self.ready.is_set():
            return
        steps: tuple[tuple[str, Callable[[], object]], ...] = (
            ("parsing rules and conntrack", self._parse),
            ("Services", self.service_rows),
            ("conntrack entries", self.conntrack_rows),
            ("rules naming each pod", self.ip_mentions),
            ("nftables ruleset", self.nft_ruleset),
        )
        for done, (what, run) in enumerate(steps):
            self.step = f"{what} ({done + 1}/{len(steps)})"
            if progress is not None:
                progress(what, done, len(steps))
            run()
        # The rows live as long as the snapshot: keep the cyclic GC from rescanning
        # them on every collection (see podpath.tui.app.settle_heap).
        gc.freeze()
        self.ready.set()

    def _parse(self) -> None:
        # Parses every view, and traces every path from every pod position.
        indexes = [self.index, *self.peer_indexes]
        self._problems = diagnose(indexes, [self.parsed]).findings
        # The parsed views live as long as the snapshot: keep the cyclic GC from
        # rescanning them while the rows are built (see podpath.tui.app.settle_heap).
        gc.freeze()


def raw_size(snap: Snapshot) -> int:
    """Bytes of rule and conntrack text the parsers would read."""
    size = sum(len(d.text) for d in snap.iptables)
    size += len(snap.nft.json_text) if snap.nft else 0
    return size + (len(snap.conntrack.text) if snap.conntrack else 0)


class AppState(Protocol):
    """What screens may ask of the app (so screens do not import the app module)."""

    loaded: Loaded | None
    source: SnapshotSource
    actions: Actions
    quitting: bool

    def report_failure(self, worker: Worker[Any]) -> None:
        """Tell the user, once, that a worker failed (the one place failures are reported)."""
        ...

    def open_screen(self, name: str, argument: str | None = None) -> None:
        """Open a view of the registry by name (pods, svc, pod, ...), with an optional argument."""
        ...

    def start_trace(self, source: str, destination: str = "", proto: str = "tcp") -> None:
        """Open the Trace screen with a source (and destination, protocol) filled in."""
        ...

    def home_menu(self, loaded: Loaded) -> list[tuple[str, str, str]]:
        """Home's menu from the view registry: (jump name, label, count) per view."""
        ...
