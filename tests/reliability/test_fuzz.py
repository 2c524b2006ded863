"""Snapshot fuzzing: 2,200 mutants, no traceback, memory bounded.

docs/reliability.md row 12. Every mutant of the bundled snapshots either loads or is
refused with a SnapshotError; every one that loads goes through what `podpath ls` and
`podpath trace` do with it (the index, every listing as text and JSON, a trace with
its reply and explanation), where only a ProbeError -- a sentence for the user -- may
come out. Run in-process, in one worker: the point is the count, not the startup.
"""

from __future__ import annotations

import json
import random
import resource
import traceback
from pathlib import Path
from typing import Any

from snapshot_mutants import byte_mutant, tree_mutant

from podpath.analysis.index import SnapshotIndex
from podpath.cli.inspect import json_listing
from podpath.listing import kinds, listing
from podpath.snapshot import codec
from podpath.snapshot.model import Snapshot
from podpath.table import render_text
from podpath.trace.engine import trace
from podpath.trace.probe import Probe, ProbeError
from podpath.trace.render import dumps as trace_json
from podpath.trace.render import render_text as trace_text

DATA = Path(codec.__file__).resolve().parents[1] / "data"
BASES = (DATA / "demo-snapshot.json", DATA / "demo-snapshot-node2.json")
BYTE_MUTANTS = 1200
TREE_MUTANTS = 1000
SEED = 18


def _use(snapshot: Snapshot) -> None:
    """What `ls KIND` (every kind, text and JSON) and `trace --reply --explain` do."""
    index = SnapshotIndex(snapshot)
    for kind in kinds():
        result = listing(index, kind)
        render_text(result)
        json_listing(kind, result.rows)
    source = next((f"{p.namespace}/{p.name}" for p in snapshot.pods), "node")
    for probe in (Probe(source, "default/web:80", "tcp"), Probe("node", "10.244.1.3:80", "udp")):
        try:
            traced = trace([index], probe, explain=True, reply=True)
        except ProbeError:
            continue
        trace_text(traced, explain=True)
        trace_json(traced)


def _small(tree: Any, items: int, chars: int) -> Any:
    """The same shape with at most `items` in a list and `chars` in a string.

    Mutants cost what the file costs to load and list: small files of every type keep
    two thousand of them cheap.
    """
    if isinstance(tree, dict):
        return {k: _small(v, items, chars) for k, v in tree.items()}
    if isinstance(tree, list):
        return [_small(v, items, chars) for v in tree[:items]]
    if isinstance(tree, str):
        return tree[:chars]
    return tree


def _failure(kind: str, number: int, exc: BaseException) -> str:
    where = "".join(traceback.format_exception(exc)[-3:])
    return f"{kind} mutant {number}: {exc!r}\n{where}"


def test_mutants_load_or_are_refused_and_never_crash_what_reads_them() -> None:
    """2,200 mutants: SnapshotError or a snapshot every listing and trace handle; RSS bounded."""
    rng = random.Random(SEED)
    full = [json.loads(path.read_bytes()) for path in BASES]
    # Byte mutants test the loader: two of everything will do. Tree mutants test what
    # reads a snapshot: enough pods, namespaces and rules for listings and traces.
    bases = [json.dumps(_small(tree, 2, 2000), indent=1).encode() for tree in full]
    trees: list[dict[str, Any]] = [_small(tree, 4, 20_000) for tree in full]
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    failures: list[str] = []
    counts = {"refused": 0, "loaded": 0}
    for number in range(BYTE_MUTANTS + TREE_MUTANTS):
        if number < BYTE_MUTANTS:
            kind, data = "byte", byte_mutant(rng.choice(bases), rng)
        else:
            kind, data = "tree", tree_mutant(rng.choice(trees), rng)
        try:
            snapshot = codec.loads(data)
        except codec.SnapshotError:
            counts["refused"] += 1
            continue
        except Exception as exc:  # noqa: BLE001 - every other exception is the finding
            failures.append(_failure(kind, number, exc))
            continue
        counts["loaded"] += 1
        try:
            _use(snapshot)
        except Exception as exc:  # noqa: BLE001 - every exception here is the finding
            failures.append(_failure(kind, number, exc))
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert failures == [], f"{len(failures)} of {BYTE_MUTANTS + TREE_MUTANTS}:\n" + "\n".join(
        failures[:5]
    )
    # Enough of both kinds of outcome for the run to mean something.
    assert counts["refused"] >= 1000 and counts["loaded"] >= 300, counts
    assert grown_mib < 256, grown_mib
