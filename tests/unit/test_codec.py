"""The snapshot codec: lossless round trips and a loader that refuses bad input clearly."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import time
import typing
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from podpath.snapshot import codec
from podpath.snapshot.codec import SnapshotError
from podpath.snapshot.model import (
    SCHEMA_VERSION,
    Address,
    Container,
    Gap,
    Link,
    LinkRef,
    NetNamespace,
    NodeFacts,
    Pod,
    Process,
    Route,
    Snapshot,
)

# Text as the node hands it over: any code point, including lone surrogates that stand
# for non-UTF-8 bytes decoded with surrogateescape, escapes and markup.
node_text = st.text(
    alphabet=st.characters(exclude_categories=["Cs"]) | st.sampled_from(["\udcff", "\udc80"]),
    max_size=20,
)
small_int = st.integers(min_value=0, max_value=2**63)


@st.composite
def snapshots(draw: st.DrawFn) -> Snapshot:
    """Random but well-typed snapshots."""
    inode = draw(small_int)
    link = Link(
        netns=inode,
        ifindex=draw(st.integers(1, 2**31)),
        name=draw(node_text),
        kind=draw(st.none() | node_text),
        mac=draw(st.none() | node_text),
        mtu=draw(st.integers(0, 65535)),
        state=draw(node_text),
        peer=draw(st.none() | st.builds(LinkRef, small_int, small_int)),
        addresses=tuple(
            draw(
                st.lists(
                    st.builds(Address, st.sampled_from([4, 6]), node_text, small_int), max_size=2
                )
            )
        ),
    )
    process = Process(
        pid=draw(small_int),
        start_time=draw(small_int),
        ppid=draw(small_int),
        comm=draw(node_text),
        cmdline=tuple(draw(st.lists(node_text, max_size=3))),
        uid=draw(st.none() | small_int),
        state="S",
        cgroup=draw(st.none() | node_text),
        namespaces=draw(st.dictionaries(node_text, small_int, max_size=3)),
    )
    pod = Pod(
        namespace=draw(node_text),
        name=draw(node_text),
        uid=draw(node_text),
        sandbox_id=draw(node_text),
        pause_pid=draw(st.none() | small_int),
        containers=(Container(name=draw(node_text), id="c", kind="sandbox", pids=(1, 2)),),
    )
    return Snapshot(
        schema_version=SCHEMA_VERSION,
        taken_at=draw(st.floats(allow_nan=False, allow_infinity=False)),
        node=NodeFacts(hostname=draw(node_text), kernel=draw(node_text)),
        root_netns=inode,
        processes=(process,),
        pods=(pod,),
        netns=(
            NetNamespace(
                inode=inode,
                links=(link,),
                routes=(Route(netns=inode, family=4, table=254, type="unicast", dst="0.0.0.0/0"),),
            ),
        ),
        gaps=tuple(draw(st.lists(st.builds(Gap, node_text, node_text), max_size=2))),
    )


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(snapshots())
def test_round_trip_is_lossless(snapshot: Snapshot) -> None:
    """load(dump(s)) == s for any snapshot, hostile and non-UTF-8 text included."""
    assert codec.loads(codec.dumps(snapshot)) == snapshot


def test_dump_is_ascii_even_for_non_utf8_bytes() -> None:
    """Bytes that are not UTF-8 are written as escapes, so saving never fails."""
    raw = b"nginx\xff\x1b[31m".decode("utf-8", "surrogateescape")
    snap = Snapshot(SCHEMA_VERSION, 0.0, NodeFacts(raw, "k"), 1)
    text = codec.dumps(snap)
    assert text.isascii()
    assert (
        codec.loads(text).node.hostname.encode("utf-8", "surrogateescape") == b"nginx\xff\x1b[31m"
    )


def _minimal() -> dict[str, object]:
    loaded: dict[str, object] = json.loads(
        codec.dumps(Snapshot(SCHEMA_VERSION, 1.0, NodeFacts("n", "k"), 1))
    )
    return loaded


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "not valid JSON"),
        ("[1, 2]", "not a JSON object"),
        ('{"schema_version": 999}', "schema version 999"),
        ('{"schema_version": 1, "a": NaN}', "NaN"),
        ('{"schema_version": 1, "schema_version": 1}', "twice"),
        ('{"schema_version": 1, "root_netns": ' + "9" * 5000 + "}", "integer too large"),
        ("[" * 100_000 + "]" * 100_000, "not a JSON object"),
        ('{"schema_version": 1, "x": ' + "[" * 100_000 + "]" * 100_000 + "}", "nested deeper"),
        ('{"schema_version": 1, "taken_at": 1e999}', "too large"),
        (b"\xff\xfe{}", "not UTF-8"),
    ],
)
def test_bad_input_is_refused_with_a_reason(text: str | bytes, reason: str) -> None:
    """Garbage, bombs and unknown versions give one clear sentence, not a traceback."""
    with pytest.raises(SnapshotError, match=reason):
        codec.loads(text)


def test_wrong_field_type_names_the_field() -> None:
    """A field of the wrong type is reported with its path."""
    raw = _minimal()
    raw["node"] = {"hostname": 5, "kernel": "k"}
    with pytest.raises(
        SnapshotError, match=r"snapshot\.node\.hostname: expected a string, found a number"
    ):
        codec.loads(json.dumps(raw))


def test_missing_field_is_reported() -> None:
    """A required field that is absent is named."""
    raw = _minimal()
    del raw["root_netns"]
    with pytest.raises(SnapshotError, match="missing field 'root_netns'"):
        codec.loads(json.dumps(raw))


def test_truncated_snapshots_are_refused() -> None:
    """A snapshot cut at any offset is refused cleanly."""
    full = codec.dumps(Snapshot(SCHEMA_VERSION, 1.0, NodeFacts("node-1", "6.18"), 4026531840))
    for cut in range(0, len(full) - 1, 7):
        with pytest.raises(SnapshotError):
            codec.loads(full[:cut])


def test_oversized_file_is_refused_before_reading_it_all(monkeypatch: pytest.MonkeyPatch) -> None:
    """A file over the size cap is refused without being loaded whole."""
    monkeypatch.setattr(codec, "MAX_SNAPSHOT_BYTES", 4 * 2**20)

    class Endless(io.RawIOBase):
        def readable(self) -> bool:
            return True

        def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
            buffer[:] = b" " * len(buffer)
            return len(buffer)

    started = time.monotonic()
    with pytest.raises(SnapshotError, match="larger than"):
        codec.load(io.BufferedReader(Endless(), buffer_size=2**20))
    assert time.monotonic() - started < 30


def test_unreadable_path_is_a_snapshot_error() -> None:
    """A missing file is one sentence, not an OSError traceback."""
    with pytest.raises(SnapshotError, match="cannot read snapshot"):
        codec.load_path("/nonexistent/podpath.json")


# Every field of every model type, inferred from the dataclasses' annotations, so a
# field added to the model is round-tripped without touching this test. Integers stay
# within what the loader accepts (40 digits); floats are finite, as JSON requires.
_ANY_INT = st.integers(min_value=-(2**63), max_value=2**64)
_FINITE = st.floats(allow_nan=False, allow_infinity=False)


def _deferred(
    strategy_for: Callable[[object], st.SearchStrategy[object]], tp: object
) -> st.SearchStrategy[object]:
    """The strategy for `tp`, built only when drawn (dataclasses refer to each other)."""
    return st.deferred(lambda: strategy_for(tp))


def _whole_snapshots() -> st.SearchStrategy[Snapshot]:
    import dataclasses
    import types
    import typing

    from podpath.snapshot import model

    def strategy_for(tp: object) -> st.SearchStrategy[object]:
        origin = typing.get_origin(tp)
        args = typing.get_args(tp)
        if tp is int:
            return _ANY_INT
        if tp is float:
            return _FINITE
        if tp is str:
            return node_text
        if tp is bool:
            return st.booleans()
        if tp is type(None):
            return st.none()
        if origin in (typing.Union, types.UnionType):
            return st.one_of(*(strategy_for(a) for a in args))
        if origin is tuple:
            return st.lists(strategy_for(args[0]), max_size=2).map(tuple)
        if origin is dict:
            return st.dictionaries(node_text, strategy_for(args[1]), max_size=2)
        assert isinstance(tp, type) and dataclasses.is_dataclass(tp), tp
        hints = typing.get_type_hints(tp, vars(model))
        return st.builds(
            tp, **{f.name: _deferred(strategy_for, hints[f.name]) for f in dataclasses.fields(tp)}
        )

    def current(snap: object) -> Snapshot:
        assert isinstance(snap, Snapshot)
        return dataclasses.replace(snap, schema_version=SCHEMA_VERSION)

    return strategy_for(Snapshot).map(current)


@settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(_whole_snapshots())
def test_round_trip_covers_every_model_type(snapshot: Snapshot) -> None:
    """load(dump(s)) == s with every field of every model type populated at random."""
    assert codec.loads(codec.dumps(snapshot)) == snapshot


def test_digest_path_is_the_sha256_of_what_read_path_reads(tmp_path: Path) -> None:
    """The slice-by-slice digest `trace --cache` keys on equals SHA-256 of the bytes read whole."""
    path = tmp_path / "snap.json"
    path.write_bytes(b"x" * (3 * 1024 * 1024 + 17))
    assert codec.digest_path(str(path)) == hashlib.sha256(codec.read_path(str(path))).digest()
    empty = tmp_path / "empty.json"
    empty.write_bytes(b"")
    assert codec.digest_path(str(empty)) == hashlib.sha256(b"").digest()
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(SnapshotError, match="is a FIFO, not a regular file"):
        codec.digest_path(str(fifo))
    with pytest.raises(SnapshotError, match="No such file"):
        codec.digest_path(str(tmp_path / "missing.json"))


_DEMO = Path(codec.__file__).resolve().parents[1] / "data" / "demo-snapshot.json"


def _strict_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make every list of objects go through the regex reader (the fast path never fits)."""
    monkeypatch.setattr(codec, "_FAST_WORST_RATIO", 10**12)


def _outcome(text: str | bytes) -> object:
    try:
        return codec.loads(text)
    except SnapshotError as exc:
        return str(exc)


def _variants() -> list[str]:
    """The demo snapshot with one thing wrong (or merely unusual) inside its lists of objects."""
    text = _DEMO.read_text()
    replacements = [
        ('"ifindex": 1,', '"ifindex": "1",'),  # a string for an integer
        ('"ifindex": 1,', '"ifindex": true,'),  # a boolean for an integer
        ('"ifindex": 1,', '"ifindex": 1.0,'),  # a fraction for an integer
        ('"ifindex": 1,', '"ifindex": 1' + "0" * 45 + ","),  # an integer too long
        ('"ifindex": 1,', '"ifindex": NaN,'),
        ('"ifindex": 1,', '"ifindex": 1, "ifindex": 1,'),  # a duplicate key
        ('"ifindex": 1,', '"ifindex": 1, "future": [[{"x": 1}]],'),  # an unknown key
        ('"ifindex": 1,', '"ifindex": 1, "future": ' + "[" * 40 + "]" * 40 + ","),
        ('"ifindex": 1,', ""),  # a missing field
        ('"ifindex": 1,', '"ifindex": 1,,'),  # a syntax error
        ('"pid": ', '"pid": -'),  # a negative pid (valid)
        ('"comm": "', '"comm": "\\u00e9\\udcff\\ud83d\\ude00'),  # escapes, lone surrogates
        ('"flags": ["LOOPBACK", ', '"flags": [1, '),  # a number among strings
        ('"flags": ["LOOPBACK", ', '"flags": [true, '),
        ('"flags": ["LOOPBACK", "UP", "LOWER_UP"]', '"flags": "UP"'),  # a string for a list
        ('"kind": null', '"kind": 5'),  # a number for an optional string
        ('"kind": null', '"kind": []'),
        ('"xdp": null', '"xdp": []'),  # a list for an optional object
        ('"xdp": null', '"xdp": {}'),  # an object missing its fields
        ('"group": 0}', '"group": null}'),  # an optional integer left unset
        (', "group": 0}', "}"),  # a field with a default, left out
        ('"held_by": ["process"]', '"held_by": []'),
        (  # a field with a default factory, left out
            '"cgroup": "/", "namespaces": {"mnt": 4026532241, "net": 4026532246, "pid": '
            '4026532244, "uts": 4026532242, "ipc": 4026532243, "user": 4026531837, "cgroup": '
            '4026532245, "time": 4026531834}}',
            '"cgroup": "/"}',
        ),
        ('"uid": 0, "state"', '"uid": false, "state"'),  # a boolean for an integer
        ('"uid": 0, "state"', '"uid": 0.5, "state"'),
        ('"stats": {"rx_packets": 0,', '"stats": {"rx_packets": 0, "rx_packets": 1,'),
    ]
    out = []
    for old, new in replacements:
        assert old in text, old
        out.append(text.replace(old, new, 1))
    return out


def test_fast_lists_load_exactly_as_the_regex_reader(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every variant loads to the same snapshot, or is refused with the same sentence, either way."""
    texts = [_DEMO.read_text(), *_variants()]
    fast = [_outcome(t) for t in texts]
    assert isinstance(fast[0], Snapshot) and any(isinstance(f, str) for f in fast)
    _strict_only(monkeypatch)
    # Compared by repr too: `==` takes True for 1 and 1.0 for 1.
    assert [repr(_outcome(t)) for t in texts] == [repr(f) for f in fast]
    assert [_outcome(t) for t in texts] == fast


def test_fast_lists_are_used(monkeypatch: pytest.MonkeyPatch) -> None:
    """The demo snapshot's lists of objects are parsed by json, not by the regex reader."""
    calls: list[int] = []
    real = codec._JSON.raw_decode

    def counted(text: str, pos: int) -> tuple[object, int]:
        calls.append(pos)
        return real(text, pos)

    monkeypatch.setattr(codec._JSON, "raw_decode", counted)
    assert codec.loads(_DEMO.read_bytes()) == codec.loads(_DEMO.read_text())
    assert len(calls) >= 8  # namespaces, processes, pods, netns... in each of the two loads


def test_the_compiled_checks_decide_every_object_of_a_real_snapshot() -> None:
    """No object of the demo snapshot's lists is left to the regex reader: each one's
    generated check builds it, equal to what the load built."""
    raw = json.loads(_DEMO.read_text())
    loaded = codec.loads(_DEMO.read_text())
    hints = typing.get_type_hints(Snapshot)
    checked = 0
    for name, value in raw.items():
        (item,) = typing.get_args(hints[name])[:1] or (None,)
        if not (isinstance(value, list) and isinstance(item, type)):
            continue
        if not dataclasses.is_dataclass(item):
            continue
        check = codec._compiled_check(item)
        assert [check(v) for v in value] == list(getattr(loaded, name)), name
        checked += len(value)
    assert checked > 40  # namespaces, processes, pods, netns... of a small node


@settings(max_examples=30, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(_whole_snapshots())
def test_fast_and_regex_readers_agree_on_random_snapshots(snapshot: Snapshot) -> None:
    """Random snapshots with every model type load the same with and without the fast path."""
    text = codec.dumps(snapshot)
    fast = codec.loads(text)
    with pytest.MonkeyPatch.context() as patch:
        _strict_only(patch)
        assert codec.loads(text) == fast == snapshot


def test_to_jsonable_turns_every_shape_into_plain_values() -> None:
    """Dataclasses of no, one and several fields, nested in tuples, lists and dicts with
    keys of any type; plain values and anything else (a class itself) kept as they are."""
    import dataclasses

    @dataclasses.dataclass(frozen=True)
    class Empty:
        pass

    @dataclasses.dataclass(frozen=True)
    class One:
        only: object

    @dataclasses.dataclass
    class Many:
        a: object
        b: object = None
        c: object = 1.5

    value = Many(
        (One(Empty()), [One(True)]),
        {1: One("x"), "k": (2, None)},
        Many,
    )
    assert codec.to_jsonable(value) == {
        "a": [{"only": {}}, [{"only": True}]],
        "b": {"1": {"only": "x"}, "k": [2, None]},
        "c": Many,
    }
    assert codec.to_jsonable(Many(One(1))) == {"a": {"only": 1}, "b": None, "c": 1.5}
