"""Collect netfilter rules from every backend present: legacy, nft-compat and native nft.

No single tool shows the truth (docs/reliability.md): `iptables-nft-save` omits legacy rules
and native nft tables, `iptables-legacy-save` shows only legacy, and `nft -j list
ruleset` on iptables-nft rules is huge and slow (14 s and 778 MB at 100k rules). So:

- legacy, per family, only when /proc/net/ip{,6}_tables_names lists tables (running
  it otherwise may load the ip_tables module), always re-read: it is fast (0.3 s);
- nft-compat, per family, with `ip{,6}tables-nft-save`, reused while the nf_tables
  generation id is unchanged (every nft and iptables-nft commit bumps it);
- native nft: the table names from the kernel (one NFT_MSG_GETTABLE netlink dump; `nft
  list tables` fetches every rule first and took 18-24 s at 100k iptables-nft rules),
  falling back to `nft -j list tables` when netlink is refused; then `nft -j list table
  FAMILY NAME` for each table iptables-nft does not own, started together with the
  iptables-nft-save runs, and `nft -j list flowtables` (6 ms) for nft's metainfo. iptables-nft owns the ip/ip6 tables named filter,
  nat, mangle, raw and security (the only tables it creates; nft 1.0.6 has no other
  marker), and iptables-nft-save already shows those with their comments intact.
  Known limit: a native table with one of those names is read by iptables-nft-save,
  which may mis-read native expressions (1.8.9 prints `ip saddr @set drop` as `-j DROP`).
"""

from __future__ import annotations

import json
import os
import re
import threading
from concurrent.futures import Future
from dataclasses import dataclass, replace
from pathlib import Path

from podpath.collectors.commands import CommandResult, CommandRunner, is_safe_nft_name
from podpath.collectors.nftables.netlink import FAMILIES, NftSocket
from podpath.snapshot.model import Gap, IptablesDump, NftDump, Snapshot

# Tables iptables-nft creates, by nft family: these are dumped by ip(6)tables-nft-save.
COMPAT_TABLES: dict[str, frozenset[str]] = {
    "ip": frozenset({"filter", "nat", "mangle", "raw", "security"}),
    "ip6": frozenset({"filter", "nat", "mangle", "raw", "security"}),
}

# Native tables of these families are read over netlink (nftables.listing), others by nft.
NETLINK_FAMILIES = frozenset({"ip", "ip6", "inet"})

_NETLINK_READER = "podpath.collectors.nftables.listing"
# The netlink reader's bound, in multiples of the runner's. nft, its fallback, asks the
# kernel for the same sets' elements, the seconds of kernel time both pay at 10k
# Services (benchmarks/analysis.md, "nftables mode"): a reader killed at the runner's
# 20 s under heavy load had nft pay them all again. The reader has the time the two
# had together, and one that runs out of it is a gap, not a second read.
READER_BOUND_FACTOR = 2.0
# nftables.listing's exit status for a table it leaves to nft (kept here: importing the
# reader would load its decoders into every snapshot process).
EXIT_NOT_READ = 3

_FAMILIES = (("ipv4", "iptables", "ip_tables_names"), ("ipv6", "ip6tables", "ip6_tables_names"))
_LIST_TABLES = ("-j", "--", "list", "tables")
# Prints only nft's metainfo and flowtables, without fetching rules: 6 ms where `list
# tables` takes seconds at scale. Used for the metainfo when the kernel named the tables.
_LIST_FLOWTABLES = ("-j", "--", "list", "flowtables")
_LIST_RULESET = ("-j", "--", "list", "ruleset")

_NFT_ENVELOPE = re.compile(r'\A\s*\{\s*"nftables"\s*:\s*\[(.*)\]\s*\}\s*\Z', re.S)
_METAINFO = re.compile(r'\A\s*\{\s*"metainfo"\s*:\s*\{[^{}]*\}\s*\}\s*,?\s*', re.S)
# The same, matched at an offset (`\A` only ever matches at the start of the string).
_METAINFO_AT = re.compile(_METAINFO.pattern.removeprefix("\\A"), re.S)


@dataclass(frozen=True)
class NetfilterResult:
    """Everything collect_netfilter learned: dumps, the native ruleset, gaps, reuse."""

    iptables: tuple[IptablesDump, ...]
    nft: NftDump | None
    gaps: tuple[Gap, ...]
    # The nf_tables generation id read before the dumps (None when unreadable).
    generation: int | None
    # True when the nft-backed dumps were taken over from the previous snapshot.
    reused: bool = False


# With each rule's packet and byte counters (`-c`): which branch real traffic has been
# taking. Read-only like the plain save; never with -t (legacy -t creates the table).
SAVE_ARGS = ("-c",)


def nft_generation(timeout: float = 1.0) -> int | None:
    """The nf_tables ruleset generation id of this network namespace, or None.

    One NFT_MSG_GETGEN request on a NETLINK_NETFILTER socket (9 us). It needs
    CAP_NET_ADMIN (nfnetlink checks it for every message); None when refused.
    """
    try:
        with NftSocket(timeout) as sock:
            return sock.generation()
    except OSError:
        return None


def nft_table_names(timeout: float = 1.0) -> tuple[tuple[str, str], ...] | None:
    """(family, name) of every nf_tables table of this netns, from the kernel; None if refused.

    One NFT_MSG_GETTABLE dump (well under 1 ms). `nft list tables` answers the same
    question, but nft 1.0.6 first fetches and decodes every rule: 0.7 s at 20k
    iptables-nft rules and 18-24 s at 100k, which made it the slowest part of a snapshot.
    """
    try:
        with NftSocket(timeout) as sock:
            return with_family_keywords(sock.table_names())
    except OSError:  # refused (EPERM), malformed, or changing on every attempt
        return None


def with_family_keywords(tables: list[tuple[int, str]]) -> tuple[tuple[str, str], ...] | None:
    """(NFPROTO number, name) pairs as (nft's family keyword, name); None for an unknown family."""
    named: list[tuple[str, str]] = []
    for number, name in tables:
        family = FAMILIES.get(number)
        if family is None:
            return None  # a family nft has no keyword for: let nft answer instead
        named.append((family, name))
    return tuple(named)


def collect_netfilter(
    runner: CommandRunner,
    previous: Snapshot | None = None,
    cancel: threading.Event | None = None,
    proc_net: Path = Path("/proc/net"),
) -> NetfilterResult:
    """Dump every iptables backend present and the native nft tables, reusing what is unchanged.

    The nft-backed dumps of `previous` are reused (the same objects) when the nf_tables
    generation id equals the one they were taken at; legacy tables have no generation
    id and are always re-read. `proc_net` is the collecting process's own /proc/net:
    the commands run in its network namespace too.
    """
    ev = cancel if cancel is not None else threading.Event()
    gen_before = nft_generation()
    reusable = _reusable(previous, runner, gen_before)
    nft_side: _NftSide | None = None
    if reusable is None:
        # iptables-nft-save is the slow one (6 s at 100k rules): start it first.
        nft_side = _start_nft_side(runner, ev)
    legacy_dumps, gaps = _collect_legacy(runner, ev, proc_net)
    if reusable is not None:
        compat, kept = reusable
        return NetfilterResult(compat + legacy_dumps, kept, tuple(gaps), gen_before, reused=True)
    assert nft_side is not None
    compat_dumps, nft, nft_gaps = _finish_nft_side(nft_side, runner, ev)
    gaps.extend(nft_gaps)
    # Stamp a generation only on a complete nft-side read during which nothing changed;
    # otherwise leave None so the next refresh reads everything again.
    generation = gen_before if not nft_gaps and nft_generation() == gen_before else None
    if generation is not None:
        compat_dumps = tuple(_stamp(d, generation) for d in compat_dumps)
        if nft is not None:
            nft = NftDump(nft.json_text, generation)
    return NetfilterResult(compat_dumps + legacy_dumps, nft, tuple(gaps), generation)


def _reusable(
    previous: Snapshot | None, runner: CommandRunner, generation: int | None
) -> tuple[tuple[IptablesDump, ...], NftDump] | None:
    """The previous snapshot's nft-side dumps when they are still current, else None."""
    if previous is None or generation is None or previous.nft is None:
        return None
    if previous.nft.generation != generation:
        return None
    if os.path.realpath(previous.node.host_root) != os.path.realpath(runner.host_root):
        return None
    compat = tuple(d for d in previous.iptables if d.backend == "nft")
    if any(d.generation != generation for d in compat):
        return None
    return compat, previous.nft


def _stamp(dump: IptablesDump, generation: int) -> IptablesDump:
    return IptablesDump(dump.backend, dump.family, dump.command, dump.text, generation)


@dataclass(frozen=True)
class _NftSide:
    """The nft-backed commands in flight."""

    compat: tuple[tuple[str, Future[CommandResult]], ...]  # (family, iptables-nft-save run)
    # `nft -j list flowtables` when the kernel listed the tables, else `nft -j list tables`.
    listing: Future[CommandResult]
    # The kernel's table list (None: refused, so nft's listing is used).
    kernel_tables: tuple[tuple[str, str], ...] | None
    # Started at once, for each native table: its netlink read (nftables.listing, in a child
    # process) or its `nft -j list table` run.
    native: tuple[tuple[tuple[str, str], Future[CommandResult]], ...]


def netlink_reader_enabled() -> bool:
    """Whether native tables are read over netlink (PODPATH_NFT_READER=nft turns it off)."""
    return os.environ.get("PODPATH_NFT_READER", "netlink") != "nft"


def _start_table_read(
    runner: CommandRunner, family: str, name: str, cancel: threading.Event
) -> Future[CommandResult]:
    """Read a native table over netlink where the reader handles its family, else by nft."""
    if family in NETLINK_FAMILIES and netlink_reader_enabled():
        bound = runner.timeout * READER_BOUND_FACTOR
        return runner.submit_module(_NETLINK_READER, (family, name), cancel, bound)
    return runner.submit("nft", ("-j", "--", "list", "table", family, name), cancel)


def _start_nft_side(runner: CommandRunner, cancel: threading.Event) -> _NftSide:
    compat = tuple(
        (family, runner.submit(f"{tool}-nft-save", SAVE_ARGS, cancel))
        for family, tool, _ in _FAMILIES
    )
    kernel = nft_table_names()
    if kernel is None:
        return _NftSide(compat, runner.submit("nft", _LIST_TABLES, cancel), None, ())
    listing = runner.submit("nft", _LIST_FLOWTABLES, cancel)
    native = _native_of(kernel)
    running: tuple[tuple[tuple[str, str], Future[CommandResult]], ...] = ()
    if all(is_safe_nft_name(name) for _, name in native):
        # Every tool runs at once: the whole read costs about the slowest one.
        running = tuple(((f, n), _start_table_read(runner, f, n, cancel)) for f, n in native)
    return _NftSide(compat, listing, kernel, running)


def _finish_nft_side(
    side: _NftSide, runner: CommandRunner, cancel: threading.Event
) -> tuple[tuple[IptablesDump, ...], NftDump | None, list[Gap]]:
    gaps: list[Gap] = []
    nft, nft_gaps = _native_ruleset(side, runner, cancel)
    gaps.extend(nft_gaps)
    dumps: list[IptablesDump] = []
    for family, fut in side.compat:
        result = fut.result()
        gaps.extend(result.warnings)
        if result.gap is not None:
            gaps.append(result.gap)
            continue
        dumps.append(IptablesDump("nft", family, result.argv, result.stdout))
    return tuple(dumps), nft, gaps


def _collect_legacy(
    runner: CommandRunner, cancel: threading.Event, proc_net: Path
) -> tuple[tuple[IptablesDump, ...], list[Gap]]:
    """Run legacy save for each family whose ip*_tables_names lists tables (in parallel)."""
    gaps: list[Gap] = []
    running: list[tuple[str, Future[CommandResult]]] = []
    for family, tool, names_file in _FAMILIES:
        path = proc_net / names_file
        try:
            names = path.read_text(errors="surrogateescape").split()
        except FileNotFoundError:
            continue  # x_tables for this family is not loaded: no legacy rules can exist
        except PermissionError:
            gaps.append(
                Gap(str(path), "permission denied", "permission", capability="CAP_DAC_READ_SEARCH")
            )
            continue
        except OSError as exc:
            gaps.append(Gap(str(path), f"unreadable: {exc.strerror}", "error"))
            continue
        if names:
            running.append((family, runner.submit(f"{tool}-legacy-save", SAVE_ARGS, cancel)))
    dumps: list[IptablesDump] = []
    for family, fut in running:
        result = fut.result()
        gaps.extend(result.warnings)
        if result.gap is not None:
            gaps.append(result.gap)
        else:
            dumps.append(IptablesDump("legacy", family, result.argv, result.stdout))
    return tuple(dumps), gaps


def _native_ruleset(
    side: _NftSide, runner: CommandRunner, cancel: threading.Event
) -> tuple[NftDump | None, list[Gap]]:
    """Dump the native nft tables (named by the kernel or by nft), as one nft JSON document."""
    documents = _native_documents(side, runner, cancel)  # waits for all: no stray children
    listed = side.listing.result()
    gaps = list(listed.warnings)
    if listed.gap is not None:
        return None, [*gaps, listed.gap]
    if side.kernel_tables is None:
        try:
            tables = native_tables(listed.stdout)
        except ValueError as exc:
            return None, [*gaps, Gap("nft -j list tables", f"unexpected output: {exc}", "error")]
    else:
        tables = _native_of(side.kernel_tables)
    if any(not is_safe_nft_name(name) for _, name in tables):
        # A name nft would re-parse cannot be passed on its command line; read it all.
        result = runner.run("nft", _LIST_RULESET, cancel)
        gaps.extend(result.warnings)
        if result.gap is not None:
            return None, [*gaps, result.gap]
        return NftDump(result.stdout), gaps
    if side.kernel_tables is None:
        running = [
            ((f, n), runner.submit("nft", ("-j", "--", "list", "table", f, n), cancel))
            for f, n in tables
        ]
        documents = [fut.result() for _, fut in running]
    try:
        parts = [_metainfo_document(listed.stdout)]
    except ValueError as exc:
        # A tool that printed something else than nft's JSON (another version, a wrapper).
        subject = " ".join(("nft", *listed.argv[1:]))
        return None, [*gaps, Gap(subject, f"unexpected output: {exc}", "error")]
    for run in documents:
        gaps.extend(run.warnings)
        if run.gap is not None:
            gaps.append(run.gap)
        else:
            parts.append(run.stdout)
    try:
        return NftDump(merge_nft_documents(parts)), gaps
    except ValueError as exc:
        return None, [*gaps, Gap("nft -j list table", f"unexpected output: {exc}", "error")]


def _native_documents(
    side: _NftSide, runner: CommandRunner, cancel: threading.Event
) -> list[CommandResult]:
    """Each started native table read: nft's run, or the netlink reader's (same output).

    A table the netlink reader does not reproduce exactly as nft prints it (or a
    ruleset that changed during the read) is listed by nft instead: a slow picture
    is better than a wrong one. A reader that failed otherwise is worth a warning.
    One that ran out of its bound is not listed again (READER_BOUND_FACTOR).
    """
    out: list[CommandResult] = []
    for (family, name), fut in side.native:
        result = fut.result()
        if result.program != "python" or result.ok:
            out.append(result)
            continue
        if result.timed_out:
            out.append(_reader_timed_out(result, family, name))
            continue
        fallback = runner.run("nft", ("-j", "--", "list", "table", family, name), cancel)
        if result.returncode != EXIT_NOT_READ and not result.cancelled:
            why = result.gap.reason if result.gap is not None else "failed"
            note = Gap(f"nft table {family} {name} over netlink", f"{why}; listed by nft instead")
            fallback = replace(fallback, warnings=(note, *fallback.warnings))
        out.append(fallback)
    return out


def _reader_timed_out(result: CommandResult, family: str, name: str) -> CommandResult:
    """The reader's run, its gap saying which table ran out of time and why nft was not run."""
    why = result.gap.reason if result.gap is not None else "timed out"
    gap = Gap(
        f"nft table {family} {name} over netlink",
        f"{why}; not listed by nft, which reads the same sets from the kernel",
        "timeout",
    )
    return replace(result, gap=gap)


def _native_of(tables: tuple[tuple[str, str], ...]) -> tuple[tuple[str, str], ...]:
    """The tables not owned by iptables-nft (see COMPAT_TABLES), in order."""
    return tuple((f, n) for f, n in tables if n not in COMPAT_TABLES.get(f, frozenset()))


def native_tables(list_tables_json: str) -> tuple[tuple[str, str], ...]:
    """(family, name) of every table in `nft -j list tables` output not owned by iptables-nft."""
    doc = json.loads(list_tables_json)
    items = doc.get("nftables") if isinstance(doc, dict) else None
    if not isinstance(items, list):
        raise ValueError("no nftables array")
    found: list[tuple[str, str]] = []
    for item in items:
        table = item.get("table") if isinstance(item, dict) else None
        if not isinstance(table, dict):
            continue
        family, name = table.get("family"), table.get("name")
        if not isinstance(family, str) or not isinstance(name, str):
            continue
        found.append((family, name))
    return _native_of(tuple(found))


def _metainfo_document(list_tables_json: str) -> str:
    """`{"nftables": [METAINFO]}` taken from a `nft -j list tables` document."""
    body = _envelope_body(list_tables_json)
    meta = _METAINFO.match(body)
    return '{"nftables": [' + (meta.group(0).rstrip().rstrip(",") if meta else "") + "]}"


def merge_nft_documents(documents: list[str]) -> str:
    """Splice several `nft -j` documents into one, keeping only the first metainfo.

    Done on the text: the native kube-proxy table alone is 33 MB at 10k Services and
    json.loads of it takes 1-2.6 s, which the collector must not pay. A last document
    as the netlink reader writes it (the large one) is copied once, by one replace of
    its opening; any other shape is joined from its body's offsets (`_joined`), which
    copies each body twice, a slice and the join: 60 MB more at the peak of a snapshot
    in nftables mode where the table was spliced that way.
    """
    if len(documents) == 1:
        return documents[0]
    spliced = _spliced_into_last(documents)
    return spliced if spliced is not None else _joined(documents)


# How the netlink reader (nftables.listing) opens and closes its document: nothing
# else, no whitespace, no metainfo, its items joined by ", ".
_READER_OPEN = '{"nftables": ['
_READER_CLOSE = "]}"


def _spliced_into_last(documents: list[str]) -> str | None:
    """`_joined(documents)` when the last one is in the reader's exact shape, else None.

    The documents before it are joined as usual (nft's metainfo: small), and their
    body is put in front of the last document's items with one `str.replace` of its
    opening: the last body is copied once, into the result.
    """
    last = documents[-1]
    body_start, body_end = len(_READER_OPEN), len(last) - len(_READER_CLOSE)
    if not (
        body_start < body_end
        and last.startswith(_READER_OPEN)
        and last.endswith(_READER_CLOSE)
        and not last[body_start].isspace()
        and not last[body_end - 1].isspace()
        and last[body_end - 1] != ","
        and _METAINFO_AT.match(last, body_start, body_end) is None
    ):
        return None
    head = _joined(documents[:-1])
    if head == _READER_OPEN + _READER_CLOSE:
        return last  # nothing in front: the last body alone, as _joined writes it
    return last.replace(_READER_OPEN, head[: -len(_READER_CLOSE)] + ", ", 1)


def _joined(documents: list[str]) -> str:
    """The documents' bodies, each located by its offsets, joined into one document."""
    pieces = ['{"nftables": [']
    for i, doc in enumerate(documents):
        match = _NFT_ENVELOPE.match(doc)
        if match is None:
            raise ValueError("not an nft -j document")
        start, end = match.span(1)
        meta = _METAINFO_AT.match(doc, start, end)
        if i > 0 and meta is not None:
            start = meta.end()
        # What body.strip().rstrip(",") kept, as offsets.
        while start < end and doc[start].isspace():
            start += 1
        while end > start and doc[end - 1].isspace():
            end -= 1
        while end > start and doc[end - 1] == ",":
            end -= 1
        if start < end:
            if len(pieces) > 1:
                pieces.append(", ")
            pieces.append(doc[start:end])
    pieces.append("]}")
    return "".join(pieces)


def _envelope_body(document: str) -> str:
    match = _NFT_ENVELOPE.match(document)
    if match is None:
        raise ValueError("not an nft -j document")
    return match.group(1)
