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
from podpath.analysis.problems import problems as fact_checks
from podpath.conntrack import count_entries
from podpath.doctor import diagnose, fact_findings, findings_of
from podpath.doctor.sweep import Judged
from podpath.netfilter.iptables_save import count_rules
from podpath.netfilter.nft import NftRuleset
from podpath.progress import Items
from podpath.snapshot.model import Snapshot
from podpath.trace.engine import prepare_for_traces
from podpath.tui.actions import Actions
from podpath.tui.doctor_ahead import DoctorAhead
from podpath.tui.rows.conntrack import conntrack_rows
from podpath.tui.rows.model import Row, RowSet, rowset
from podpath.tui.rows.services import service_rows
from podpath.tui.rows.trace import completions
from podpath.tui.source import SnapshotSource

# Below this much rule and conntrack text, the views are prepared at once (the first
# frame stays well under 1 s); above it, in a worker thread after the first frame.
INLINE_PREPARE_BYTES = 2_000_000


# The views a big snapshot's worker prepares, in the order it prepares them: first what
# home's counts need (Services, conntrack, problems), then the rows and indexes only a
# screen needs (built for that screen first when it is opened before its turn). The
# problems come in two steps: the node's facts (~0.06 s at 10k Services), so home has a
# first count at once, then the doctor's sweep of every path (~0.9 s), which completes it.
SERVICES = "Services"
CONNTRACK = "conntrack entries"
FACTS = "fact checks"
PROBLEMS = "problems"
SERVICE_ROWS = "Service rows"
CONNTRACK_ROWS = "conntrack rows"
MENTIONS = "rules naming each pod"
TRACE_WORDS = "names a trace completes"
# The doctor needs no conntrack parse (it reads only the stale entries, from the
# listing's text: docs/performance.md) and home counts the entry lines until the parse
# is done, so home's counts wait for the Services and the doctor alone.
STAGES = (
    SERVICES,
    FACTS,
    PROBLEMS,
    CONNTRACK,
    SERVICE_ROWS,
    CONNTRACK_ROWS,
    MENTIONS,
    TRACE_WORDS,
)
# What each stage does, as a screen waiting for it says it.
DOING = {
    SERVICES: "parsing the rules and kube-proxy's Services",
    CONNTRACK: "parsing conntrack",
    FACTS: "checking the node's facts",
    PROBLEMS: "checking paths (podpath doctor)",
    SERVICE_ROWS: "building the Service rows",
    CONNTRACK_ROWS: "building the conntrack rows",
    MENTIONS: "finding the rules that name each pod",
    TRACE_WORDS: "listing the names a trace completes",
}


@dataclass(repr=False)
class Loaded:
    """One snapshot and everything derived from it (built once, cached, shared by screens)."""

    snapshot: Snapshot
    # Other nodes' snapshots, indexed once: a trace may cross into them.
    peers: tuple[Snapshot, ...] = ()
    # The doctor's findings on these snapshots, being computed by a forked child
    # (podpath.tui.doctor_ahead); None: the worker runs the doctor itself.
    ahead: DoctorAhead | None = None
    index: SnapshotIndex = field(init=False)
    peer_indexes: tuple[SnapshotIndex, ...] = field(init=False)
    parsed: ParsedSnapshot = field(init=False)
    # Set once prepare() has done every stage; each stage is told by has() as it is done,
    # so that a screen shows what it needs without waiting for the rest.
    ready: threading.Event = field(init=False, default_factory=threading.Event)
    # True when preparing the views failed (a bug, reported once): screens stop waiting.
    failed: bool = field(init=False, default=False)
    # The stage being prepared now (one of STAGES) and its number; "" before it starts.
    current: str = field(init=False, default="")
    number: int = field(init=False, default=0)
    # How many of the current stage's items are done, where their number is known.
    _items: Items | None = field(init=False, default=None)
    _told: Callable[[str, int, int], object] | None = field(init=False, default=None)
    _done: set[str] = field(init=False, default_factory=set)
    _wanted: list[str] = field(init=False, default_factory=list)
    _rowsets: dict[str, RowSet] = field(init=False, default_factory=dict)
    _facts: tuple[Finding, ...] | None = field(init=False, default=None)
    _problems: tuple[Finding, ...] | None = field(init=False, default=None)
    _mentions: MentionIndex | None = field(init=False, default=None)
    _trace_words: tuple[str, ...] | None = field(init=False, default=None)
    _rule_counts: tuple[int, ...] | None = field(init=False, default=None)
    _conntrack_lines: int | None = field(init=False, default=None)
    _lock: threading.RLock = field(init=False, default_factory=threading.RLock)
    # Guards only _done and _wanted: _lock is held while rows are built (seconds at 10k
    # Services), and the event loop asks has() on every repaint.
    _stage_lock: threading.Lock = field(init=False, default_factory=threading.Lock)
    # Other nodes' snapshots as Loaded of their own (a pod of theirs opened from :map).
    _others: dict[int, Loaded] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        self.index = SnapshotIndex(self.snapshot)
        self.parsed = ParsedSnapshot(self.index)
        self.peer_indexes = tuple(SnapshotIndex(p) for p in self.peers)

    def __repr__(self) -> str:
        # Textual names each worker after the repr of its arguments: the dataclass repr
        # of a 10k-Service snapshot took the event loop 0.5 s to build for each worker.
        node = self.snapshot.node.hostname
        return f"<Loaded {node!r} +{len(self.peers)} peers, {self.step or 'not prepared'}>"

    @property
    def small(self) -> bool:
        """True when the big views are cheap enough to prepare on the event loop."""
        return is_small(self.snapshot)

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

    @property
    def step(self) -> str:
        """What prepare() is doing now, e.g. "Service rows (4/6)"; "" before it starts."""
        return f"{self.current} ({self.how_far()})" if self.current else ""

    def how_far(self) -> str:
        """How far prepare() is: the stage's number out of all, and of its items where
        their number is known, e.g. "4/6" or "5/6, 20,000/50,002"."""
        far = f"{self.number}/{len(STAGES)}"
        items = self._items
        if items is not None and items.what == self.current and items.count:
            far += f", {min(items.count, items.size):,}/{items.size:,}"
        return far

    def has(self, stage: str) -> bool:
        """True once `stage` (one of STAGES) is prepared: asking for it costs nothing."""
        with self._stage_lock:
            return stage in self._done

    def done_stages(self) -> frozenset[str]:
        """The stages prepared so far."""
        with self._stage_lock:
            return frozenset(self._done)

    def want(self, stage: str) -> None:
        """A screen needs `stage` now: the worker prepares it next (after the current one)."""
        with self._stage_lock:
            if stage not in self._done and stage not in self._wanted:
                self._wanted.append(stage)

    def rows(self, name: str, build: Callable[[], list[Row]]) -> RowSet:
        """The rows called `name`, built once per snapshot (thread-safe)."""
        # Rows already built are returned without waiting for the worker, which holds
        # the lock while it builds the next ones.
        built = self._rowsets.get(name)
        if built is not None:
            return built
        with self._lock:
            found = self._rowsets.get(name)
            if found is None:
                found = self._rowsets[name] = rowset(build())
            return found

    def service_rows(self) -> RowSet:
        """Every Service port as a row (the Services screen)."""
        return self.rows(
            "services",
            lambda: service_rows(
                self.index,
                self.parsed.services(),
                self._counting(len(self.parsed.services())).tick,
            ),
        )

    def conntrack_rows(self) -> RowSet:
        """Every conntrack entry as a row (the Conntrack screen)."""
        return self.rows(
            "conntrack",
            lambda: conntrack_rows(
                self.parsed.conntrack(),
                self.parsed.services(),
                tick=self._counting(len(self.parsed.conntrack())).tick,
            ),
        )

    def _counting(self, size: int) -> Items:
        """Counts the current stage's items for how_far() and the worker's progress."""
        items = self._items = Items(self._told, self.current, self.number - 1, len(STAGES), size)
        return items

    def ip_mentions(self) -> MentionIndex:
        """Rules naming each pod IP (one pass over every rule; built in prepare on big snapshots)."""
        if self._mentions is not None:
            return self._mentions
        with self._lock:
            if self._mentions is None:
                self._mentions = mention_index(self.parsed.rule_dumps(), self.index.pods_by_ip)
            return self._mentions

    def trace_words(self) -> tuple[str, ...]:
        """What the Trace screen's inputs complete: every loaded node's pods and pod IPs,
        and the Services (name and ClusterIP) once they are parsed; kept once complete.

        Built by the worker on a big snapshot: at 10k Services the list took the event
        loop ~20 ms each time the Trace screen opened (docs/performance.md)."""
        if self._trace_words is not None:
            return self._trace_words
        indexes = [self.index, *self.peer_indexes]
        pods = [name for index in indexes for name in index.pods_by_name]
        ips = [ip for index in indexes for ip in index.pods_by_ip]
        # Services only once parsed: parsing them here would hold the event loop for
        # most of a second on a big node (the worker parses them first).
        parsed = self.small or self.has(SERVICES)
        services = self.parsed.services() if parsed else ()
        names = [f"{s.namespace}/{s.name}:{s.port}" for s in services]
        names += [f"{s.cluster_ip}:{s.port}" for s in services if s.cluster_ip]
        words = tuple(completions(pods, ips, names))
        if parsed:
            self._trace_words = words
        return words

    def rule_counts(self) -> tuple[int, ...]:
        """The rules of each iptables dump, counted in their text once: home must not wait
        for the rules to be parsed, nor count 16 MB again each time it is repainted (0.1 s)."""
        if self._rule_counts is None:
            self._rule_counts = tuple(count_in_slices(d.text) for d in self.snapshot.iptables)
        return self._rule_counts

    def counted_rules(self) -> tuple[int, ...] | None:
        """`rule_counts`, or None while a big snapshot's worker has not counted them.

        Counting a 16 MB dump is one regular expression call holding the GIL ~0.09 s: on
        the event loop it delayed home's first frame, so the worker counts big dumps.
        """
        if self._rule_counts is None and self.small:
            self.rule_counts()
        return self._rule_counts

    def conntrack_count(self) -> int | None:
        """Home's conntrack count: the parse's once it is done; before, the listing's entry
        lines, counted once without parsing (~10 ms at 50k; by the worker on a big
        snapshot), so home shows it while the doctor still runs. None until counted."""
        if self.has(CONNTRACK):
            return len(self.parsed.conntrack())
        if self._conntrack_lines is None and self.small:
            self._count_conntrack_lines()
        return self._conntrack_lines

    def _count_conntrack_lines(self) -> None:
        dump = self.snapshot.conntrack
        self._conntrack_lines = count_entries(dump.text) if dump is not None else 0

    def rule_count(self) -> int | None:
        """The rules of every iptables dump (home's count); None until counted."""
        counts = self.counted_rules()
        return None if counts is None else sum(counts)

    def iptables_backends(self) -> list[str] | None:
        """The dumps holding at least one rule, as backend/family (home's "iptables" fact);
        None until counted."""
        counts = self.counted_rules()
        if counts is None:
            return None
        dumps = zip(self.snapshot.iptables, counts, strict=True)
        return sorted({f"{d.backend}/{d.family}" for d, n in dumps if n})

    def nft_ruleset(self) -> NftRuleset | None:
        """The native nftables ruleset, parsed once (None when the snapshot has none)."""
        return self.parsed.nft_ruleset()

    @property
    def problems(self) -> tuple[Finding, ...] | None:
        """What `podpath doctor` finds on these snapshots (podpath.doctor), once prepared."""
        return self._problems if self.has(PROBLEMS) else None

    @property
    def fact_problems(self) -> tuple[Finding, ...] | None:
        """What the node's facts show (no path judged yet), once checked: a first part of `problems`."""
        return self._facts if self.has(FACTS) else None

    def prepare(self, progress: Callable[[str, int, int], object] | None = None) -> None:
        """Prepare every stage, home's counts first (call from a worker thread on big snapshots).

        `progress` is told each stage as it starts, which is also when the one before it
        is done; `current` and `how_far()` say the same to the screens.
        """
        if self.ready.is_set():
            return
        self._told = progress
        # The cyclic GC is paused while the views are built: they are acyclic, and each
        # full collection their allocations set off rescans everything parsed so far
        # while holding the GIL (0.1-0.6 s each at 10k Services: frames not painted).
        collecting = gc.isenabled()
        gc.disable()
        try:
            self._prepare_stages(progress)
        finally:
            if collecting:
                gc.enable()
        # The rows live as long as the snapshot: keep the cyclic GC from rescanning
        # them on every collection (see podpath.tui.app.settle_heap).
        gc.freeze()
        self.ready.set()

    def _prepare_stages(self, progress: Callable[[str, int, int], object] | None) -> None:
        """Run every stage, a wanted one first."""
        runs: dict[str, Callable[[], object]] = {
            SERVICES: self._parse_rules,
            CONNTRACK: self._parse_conntrack,
            FACTS: self._check_facts,
            PROBLEMS: self._diagnose,
            SERVICE_ROWS: self.service_rows,
            CONNTRACK_ROWS: self.conntrack_rows,
            MENTIONS: self.ip_mentions,
            TRACE_WORDS: self.trace_words,
        }
        self.rule_counts()  # home's "Netfilter rules" count and "iptables" fact
        self._count_conntrack_lines()  # and its conntrack count
        for done in range(len(STAGES)):
            stage = self._next_stage()
            self.current, self.number = stage, done + 1
            if progress is not None:
                progress(stage, done, len(STAGES))
            runs[stage]()
            with self._stage_lock:
                self._done.add(stage)

    def _next_stage(self) -> str:
        """A stage a screen asked for, else the first not yet done in STAGES order."""
        with self._stage_lock:
            while self._wanted:
                stage = self._wanted.pop(0)
                if stage not in self._done:
                    return stage
            return next(s for s in STAGES if s not in self._done)

    def _parse_rules(self) -> None:
        # kube-proxy's Services (which parses the rules and any nft ruleset), and the
        # facts home shows beside the counts.
        self.parsed.rule_dumps()
        self.parsed.nft_ruleset()
        self.parsed.services()
        self.parsed.kube_proxy_mode()
        self.parsed.dataplane()

    def _parse_conntrack(self) -> None:
        self.parsed.conntrack()

    def _check_facts(self) -> None:
        # The doctor's findings before its sweep: every one of them is among its final ones.
        if self._facts is None:  # checked already where the problems came first
            self._facts = fact_checks(self.parsed)

    def _diagnose(self) -> None:
        if self.ahead is not None:
            # While the child finishes: what the doctor run here left behind for the
            # first trace (0.1 s of it at 10k Services when the doctor ran in a child).
            prepare_for_traces([self.index, *self.peer_indexes])
            paths = self.ahead.take()
            if paths is not None:
                self._problems = self._with_facts(paths)
                return
        # Traces every path from every pod position, on the views parsed above.
        indexes = [self.index, *self.peer_indexes]
        judged = self._counting(0).reached
        self._problems = diagnose(indexes, [self.parsed], judged).findings

    def _with_facts(self, paths: list[Judged]) -> tuple[Finding, ...]:
        """The doctor's findings from the paths the child judged and the nodes' facts,
        checked here node by node (this node's for home's first count already).

        The facts are checked on this app's parsed views: where a screen had the
        conntrack table parsed before them and it could not be parsed, its note is a
        finding here that `podpath doctor`, which never parses the whole table, has not."""
        self._check_facts()
        assert self._facts is not None
        peers = fact_findings([ParsedSnapshot(i) for i in self.peer_indexes])
        return findings_of([*self._facts, *peers], paths)


# Text counted by one regular expression call at a time: the GIL is held for the whole
# of each call (~5 ms a MiB), so a frame waits for one slice at most.
COUNT_SLICE = 1 << 20


def count_in_slices(text: str, size: int = COUNT_SLICE) -> int:
    """`count_rules(text)`, counted a slice of whole lines at a time.

    A rule is one line, matched from its start: every line starts in exactly one slice.
    """
    total, start = 0, 0
    while start < len(text):
        end = text.find("\n", start + size)
        end = len(text) if end < 0 else end + 1
        total += count_rules(text[start:end])
        start = end
    return total


def is_small(snap: Snapshot) -> bool:
    """True when a snapshot's views are cheap enough to prepare on the event loop."""
    return raw_size(snap) <= INLINE_PREPARE_BYTES


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
