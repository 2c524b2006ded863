"""`podpath trace --snapshot`'s index cache (the default directory, or `--cache DIR`): the
cached path answers exactly as the full parse does.

The snapshots hold kube-proxy's real rulesets (tests/fixtures/realworld): the iptables
proxier's restore input and the nftables proxier's dump, as the real nft lists it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import nft_real
import pytest
from trace_factory import NodeSpec, PodSpec, build_node

from podpath.cli import main
from podpath.snapshot import codec, packed
from podpath.snapshot.model import ConntrackDump, Snapshot
from podpath.snapshot.packed import CorruptCache, FileValue
from podpath.trace import file_digests, index_cache
from podpath.trace.index_pickle import PackedTable, RulesView
from podpath.trace.nft import NftIndex, nft_index

REALWORLD = Path(__file__).resolve().parents[1] / "fixtures" / "realworld"
IPTABLES = REALWORLD / "iptables" / "k8s-proxier-test-overall-rules-restore-input.txt"
NFT = REALWORLD / "nftables" / "k8s-nftables-proxier-test-overall-rules-nft-f-dump.txt"
_PODS = [PodSpec("a", "10.180.0.9"), PodSpec("ep3", "10.180.0.3"), PodSpec("ep4", "10.180.0.4")]
# Services of both dumps: two endpoints, one, session affinity, a NodePort, none.
# `--from default/a --to 172.30.0.44:80`: the probe the cache tests trace.
A_TO_WEB = ("--from", "default/a", "--to", "172.30.0.44:80")
PROBES = [
    ("default/a", "172.30.0.44:80"),
    ("default/a", "ns1/svc1:p80"),
    ("default/a", "172.30.0.45:80"),
    ("default/a", "192.168.0.2:3001"),
    ("default/a", "172.30.0.46:80"),
]


# The restore input holds kube-proxy's own chains; the jumps into them from the base
# chains are what kube-proxy adds with `iptables -I` (pkg/proxy/iptables/proxier.go).
_JUMPS = {
    "filter": [
        '-A INPUT -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
        '-A FORWARD -m comment --comment "kubernetes forwarding rules" -j KUBE-FORWARD',
        '-A FORWARD -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
        '-A OUTPUT -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
    ],
    "nat": [
        '-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
        '-A OUTPUT -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
        '-A POSTROUTING -m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING',
    ],
}


def _iptables_text(text: str) -> str:
    """The restore input as iptables-save shows a node: base-chain jumps first in each table."""
    for table, jumps in _JUMPS.items():
        head = f"*{table}\n"
        assert head in text
        text = text.replace(head, head + "\n".join(jumps) + "\n", 1)
    return text


def _iptables_node(text: str | None = None) -> Snapshot:
    rules = _iptables_text(IPTABLES.read_text() if text is None else text)
    return build_node(NodeSpec(pod_cidr="10.180.0.0/24", pods=_PODS, iptables=rules))


def _nft_node() -> Snapshot:
    text = nft_real.load(nft_real.commands_for(NFT.read_text())[1]).json
    return build_node(NodeSpec(pod_cidr="10.180.0.0/24", pods=_PODS, nft_json=text))


@pytest.fixture(params=["iptables", "nftables"])
def snapshot_file(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    """A real-world ruleset's node, saved as `podpath snapshot` saves it."""
    if not IPTABLES.exists() or not NFT.exists():
        pytest.skip("real-world fixtures missing")
    snap = _iptables_node() if request.param == "iptables" else _nft_node()
    path = tmp_path / "snapshots" / "node.json"
    path.parent.mkdir()
    path.write_text(codec.dumps(snap))
    return path


def _trace(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["trace", *args])
    out, err = capsys.readouterr()
    return code, out, err


def _traced(capsys: pytest.CaptureFixture[str], snap: Path, src: str, dst: str, *extra: str) -> str:
    """The trace's JSON; parsed from the snapshot (--no-cache) unless `extra` names a cache."""
    if "--cache" not in extra and "--no-cache" not in extra:
        extra = (*extra, "--no-cache")
    code, out, err = _trace(
        capsys, "--snapshot", str(snap), "--from", src, "--to", dst, "--json", "--reply", *extra
    )
    assert code == 0, err
    return out


def test_cached_trace_json_equals_the_full_parse(
    snapshot_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every probe's full `trace --json --reply` is the same parsed, cached (miss) and cached (hit)."""
    cache = tmp_path / "cache"
    cache.mkdir()
    for src, dst in PROBES:
        parsed = _traced(capsys, snapshot_file, src, dst)
        hops = [h for b in json.loads(parsed)["branches"] for h in b["hops"]]
        assert any(h["kind"] == "netfilter" for h in hops), (src, dst)
        assert _traced(capsys, snapshot_file, src, dst, "--cache", str(cache)) == parsed
        assert _traced(capsys, snapshot_file, src, dst, "--cache", str(cache)) == parsed
    assert len(list(cache.glob("podpath-index-*"))) == 1


def test_second_trace_reads_the_cache(snapshot_file: Path, tmp_path: Path) -> None:
    """After a trace with --cache, the file's index is found by its content, whole."""
    data = snapshot_file.read_bytes()
    assert index_cache.lookup(str(tmp_path), data).index is None
    code = main(["trace", "--snapshot", str(snapshot_file), *A_TO_WEB, "--cache", str(tmp_path)])
    assert code == 0
    found = index_cache.lookup(str(tmp_path), data).index
    assert found is not None
    assert found.snapshot == codec.loads(data)


def test_a_cache_hit_parses_no_ruleset_again(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The cached index holds what the walk reads: on a hit, the nft ruleset is not parsed
    (its parse was 1.3 s of a cached trace at 10k Services when the trace asked which base
    chains it does not model)."""
    if not NFT.exists():
        pytest.skip("real-world fixtures missing")
    path = tmp_path / "node.json"
    path.write_text(codec.dumps(_nft_node()))
    cache = tmp_path / "cache"
    cache.mkdir()
    parsed = _traced(capsys, path, *PROBES[0], "--cache", str(cache))
    import podpath.netfilter.nft as nft_parser

    def refused(*args: object) -> None:
        raise AssertionError("the nft ruleset was parsed on a cache hit")

    monkeypatch.setattr(nft_parser, "parse_nft", refused)
    assert _traced(capsys, path, *PROBES[0], "--cache", str(cache)) == parsed


def test_changed_snapshot_is_not_answered_from_the_old_cache(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Rewriting the snapshot with other rules in place: the cached trace follows the new rules."""
    if not IPTABLES.exists():
        pytest.skip("real-world fixtures missing")
    snap = tmp_path / "node.json"
    cache = tmp_path / "cache"
    cache.mkdir()
    text = IPTABLES.read_text()
    snap.write_text(codec.dumps(_iptables_node()))
    before = _traced(capsys, snap, "default/a", "172.30.0.44:80", "--cache", str(cache))
    assert '"dst": "10.180.0.5"' in before
    # One of svc4's endpoints moves from 10.180.0.5 to 10.180.0.7: same size, same mtime.
    stat = snap.stat()
    moved = text.replace("10.180.0.5:80", "10.180.0.7:80")
    assert moved != text
    snap.write_text(codec.dumps(_iptables_node(moved)))
    os.utime(snap, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    after = _traced(capsys, snap, "default/a", "172.30.0.44:80", "--cache", str(cache))
    assert after == _traced(capsys, snap, "default/a", "172.30.0.44:80")
    assert '"dst": "10.180.0.7"' in after and '"dst": "10.180.0.5"' not in after


def _default_cache() -> Path:
    return Path(os.environ["XDG_CACHE_HOME"]) / "podpath" / "trace-index"


def test_with_no_cache_nothing_is_written(
    snapshot_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A trace of a snapshot with --no-cache writes nothing: not beside it, not in the cache."""
    before = sorted(os.listdir(snapshot_file.parent))
    _traced(capsys, snapshot_file, "default/a", "172.30.0.44:80", "--no-cache")
    assert sorted(os.listdir(snapshot_file.parent)) == before == ["node.json"]
    assert not _default_cache().exists()


def test_a_snapshot_traced_again_is_read_from_the_default_cache(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without --cache, the first trace of a snapshot keeps its index in the user's cache
    directory ($XDG_CACHE_HOME/podpath/trace-index, private), nothing beside the
    snapshot; the next trace of the file parses no ruleset and answers the same."""
    if not NFT.exists():
        pytest.skip("real-world fixtures missing")
    path = tmp_path / "snapshots" / "node.json"
    path.parent.mkdir()
    path.write_text(codec.dumps(_nft_node()))
    parsed = _traced(capsys, path, *PROBES[0])
    args = ["--snapshot", str(path), "--from", PROBES[0][0], "--to", PROBES[0][1]]
    code, first, err = _trace(capsys, *args, "--json", "--reply")
    assert (code, first, err) == (0, parsed, "")
    assert os.listdir(path.parent) == ["node.json"]
    cache = _default_cache()
    assert oct(cache.stat().st_mode & 0o777) == oct(0o700)
    assert oct(_only_cache_file(cache).stat().st_mode & 0o777) == oct(0o600)
    import podpath.netfilter.nft as nft_parser

    def refused(*args: object) -> None:
        raise AssertionError("the nft ruleset was parsed on a cache hit")

    monkeypatch.setattr(nft_parser, "parse_nft", refused)
    assert _trace(capsys, *args, "--json", "--reply") == (0, parsed, "")


def test_no_private_cache_directory_means_no_cache(
    snapshot_file: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where the default cache directory cannot be made private (here $XDG_CACHE_HOME is
    a file), the trace parses the snapshot and says nothing about it."""
    blocked = snapshot_file.parent / "not-a-directory"
    blocked.write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocked))
    parsed = _traced(capsys, snapshot_file, *PROBES[0])
    args = ["--snapshot", str(snapshot_file), "--from", PROBES[0][0], "--to", PROBES[0][1]]
    assert _trace(capsys, *args, "--json", "--reply") == (0, parsed, "")
    assert sorted(os.listdir(snapshot_file.parent)) == ["node.json", "not-a-directory"]


def _blocked_cache_file(directory: Path, snapshot_file: Path) -> None:
    """Make the index file's path in `directory` a directory: writing it must fail."""
    key = index_cache.key_of(snapshot_file.read_bytes())
    Path(index_cache.cache_path(str(directory), key)).mkdir(parents=True)


def test_a_default_cache_not_written_is_a_note_after_the_answer(
    snapshot_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The default cache failing to be written does not fail the trace: the answer, then
    one note on stderr, exit 0."""
    parsed = _traced(capsys, snapshot_file, *PROBES[0])
    _default_cache().mkdir(mode=0o700, parents=True)
    _blocked_cache_file(_default_cache(), snapshot_file)
    args = ["--snapshot", str(snapshot_file), "--from", PROBES[0][0], "--to", PROBES[0][1]]
    code, out, err = _trace(capsys, *args, "--json", "--reply")
    assert (code, out) == (0, parsed)
    assert err.startswith("podpath: note: the trace is done, but its cache was not written: ")
    assert err.endswith(" (--no-cache: keep none)\n") and err.count("\n") == 1


def test_a_named_cache_not_written_is_an_error_after_the_answer(
    snapshot_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A cache the user named that cannot be written fails the command, once the answer
    is printed (the trace is right; its index is what is missing)."""
    parsed = _traced(capsys, snapshot_file, *PROBES[0])
    cache = tmp_path / "named"
    _blocked_cache_file(cache, snapshot_file)
    args = ["--snapshot", str(snapshot_file), "--from", PROBES[0][0], "--to", PROBES[0][1]]
    code, out, err = _trace(capsys, *args, "--json", "--reply", "--cache", str(cache))
    assert (code, out) == (2, parsed)
    assert err.startswith("podpath: the trace is done, but its cache was not written: ")


def test_what_the_output_parses_is_not_cached(
    snapshot_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The index is kept as the trace left it: `--conntrack` parses the conntrack table
    for the output, after the trace, and that table is not in the cache file."""
    entry = (
        "ipv4     2 tcp      6 86390 ESTABLISHED src=10.180.0.9 dst=172.30.0.44 sport=40000 "
        "dport=80 src=10.180.0.3 dst=10.180.0.9 sport=80 dport=40000 [ASSURED] mark=0 use=1\n"
    )
    snap = replace(codec.loads(snapshot_file.read_text()), conntrack=ConntrackDump(entry))
    snapshot_file.write_text(codec.dumps(snap))
    args = ["--snapshot", str(snapshot_file), "--from", PROBES[0][0], "--to", PROBES[0][1]]
    code, out, err = _trace(capsys, *args, "--conntrack", "--cache", str(tmp_path))
    assert (code, err) == (0, "")
    assert "40000" in out  # the entry was parsed and shown
    _key, index, _nft = index_cache_load(_only_cache_file(tmp_path))
    assert "conntrack" not in vars(index) and "services" not in vars(index)


def _only_cache_file(directory: Path) -> Path:
    (found,) = directory.glob("podpath-index-*")
    return found


def test_a_directory_in_place_of_an_index_file_is_a_miss(
    snapshot_file: Path, tmp_path: Path
) -> None:
    """A directory under an index file's name is not read (it was a crash: fdopen refused
    it before the file's type was checked)."""
    _blocked_cache_file(tmp_path, snapshot_file)
    assert index_cache.lookup(str(tmp_path), snapshot_file.read_bytes()).index is None


def test_cache_others_may_write_is_not_read(snapshot_file: Path, tmp_path: Path) -> None:
    """A cache file writable by group or others is a miss (pickle is not read from it)."""
    main(["trace", "--snapshot", str(snapshot_file), *A_TO_WEB, "--cache", str(tmp_path)])
    path = _only_cache_file(tmp_path)
    assert oct(path.stat().st_mode & 0o777) == oct(0o600)
    path.chmod(0o666)
    assert index_cache.lookup(str(tmp_path), snapshot_file.read_bytes()).index is None


class _Marker:
    """Stands for a callable a crafted cache would name."""

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, ("true",))


def test_cache_naming_other_callables_is_a_miss(
    snapshot_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A cache file that would call anything but podpath's model classes is refused, and the trace still answers."""
    data = snapshot_file.read_bytes()
    key = index_cache.key_of(data)
    path = Path(index_cache.cache_path(str(tmp_path), key))
    path.write_bytes(b"".join(index_cache.file_chunks((key, _Marker(), None))))
    path.chmod(0o600)
    assert index_cache.lookup(str(tmp_path), data).index is None
    parsed = _traced(capsys, snapshot_file, "default/a", "172.30.0.44:80")
    assert (
        _traced(capsys, snapshot_file, "default/a", "172.30.0.44:80", "--cache", str(tmp_path))
        == parsed
    )


def test_corrupt_cache_is_a_miss_and_rewritten(
    snapshot_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A truncated cache file is parsed around and replaced by a whole one."""
    parsed = _traced(capsys, snapshot_file, "default/a", "172.30.0.44:80", "--cache", str(tmp_path))
    path = _only_cache_file(tmp_path)
    path.write_bytes(path.read_bytes()[:1000])
    assert (
        _traced(capsys, snapshot_file, "default/a", "172.30.0.44:80", "--cache", str(tmp_path))
        == parsed
    )
    assert index_cache.lookup(str(tmp_path), snapshot_file.read_bytes()).index is not None


def test_large_values_stay_in_the_file_until_read(
    snapshot_file: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Values written after the pickle (every one here, the threshold lowered) are left
    in the file until read, and the hit answers as the parse does."""
    monkeypatch.setattr(packed, "LARGE_VALUE", 1)
    parsed = _traced(capsys, snapshot_file, "default/a", "172.30.0.44:80")
    cache = str(tmp_path)
    assert _traced(capsys, snapshot_file, "default/a", "172.30.0.44:80", "--cache", cache) == parsed
    index = index_cache.lookup(cache, snapshot_file.read_bytes()).index
    assert index is not None
    assert isinstance(vars(index.snapshot)["_packed_processes"], FileValue)
    nft = index.snapshot.nft
    if nft is not None:
        assert isinstance(vars(nft)["_packed_json_text"], FileValue)
        found = nft_index(index)
        assert found is not None
        chains = found.rules
        assert isinstance(chains, RulesView)
        assert all(isinstance(t.blob, FileValue) for t in chains.store._packed.values())
    assert _traced(capsys, snapshot_file, "default/a", "172.30.0.44:80", "--cache", cache) == parsed


@pytest.mark.parametrize(
    "field, value",
    [("size", 0), ("size", 2**63), ("count", 0), ("count", 2**64 - 1), ("length", 2**40)],
)
def test_a_cache_file_whose_layout_does_not_add_up_is_a_miss(
    snapshot_file: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    field: str,
    value: int,
) -> None:
    """The pickle's size, the count of the values after it or a value's length changed: a
    miss, never a huge read or a value read from the wrong place; the trace still answers."""
    monkeypatch.setattr(packed, "LARGE_VALUE", 1)
    parsed = _traced(capsys, snapshot_file, "default/a", "172.30.0.44:80", "--cache", str(tmp_path))
    path = _only_cache_file(tmp_path)
    data = bytearray(path.read_bytes())
    at = len(b"podpath-index-cache 3\n")
    offset = {"size": at, "count": at + 8, "length": at + 16}[field]
    data[offset : offset + 8] = value.to_bytes(8, "little")
    path.write_bytes(bytes(data))
    path.chmod(0o600)
    assert index_cache.lookup(str(tmp_path), snapshot_file.read_bytes()).index is None
    assert (
        _traced(capsys, snapshot_file, "default/a", "172.30.0.44:80", "--cache", str(tmp_path))
        == parsed
    )


def test_a_cache_file_cut_short_after_it_was_read_is_a_corrupt_cache(
    snapshot_file: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A value left in a file that shrank under the index raises CorruptCache when read
    (which the trace answers by parsing), never a crash."""
    monkeypatch.setattr(packed, "LARGE_VALUE", 1)
    _traced(capsys, snapshot_file, "default/a", "172.30.0.44:80", "--cache", str(tmp_path))
    index = index_cache.lookup(str(tmp_path), snapshot_file.read_bytes()).index
    assert index is not None
    path = _only_cache_file(tmp_path)
    with path.open("r+b") as fp:
        fp.truncate(0)
    with pytest.raises(CorruptCache):
        _ = index.snapshot.processes


def test_a_value_cut_off_beside_the_pickle_is_a_miss(
    snapshot_file: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A cache file cut short after its pickle (in the values beside it) is a miss, and rewritten."""
    monkeypatch.setattr(packed, "LARGE_VALUE", 1)
    parsed = _traced(capsys, snapshot_file, "default/a", "172.30.0.44:80", "--cache", str(tmp_path))
    path = _only_cache_file(tmp_path)
    path.write_bytes(path.read_bytes()[:-10])
    assert index_cache.lookup(str(tmp_path), snapshot_file.read_bytes()).index is None
    assert (
        _traced(capsys, snapshot_file, "default/a", "172.30.0.44:80", "--cache", str(tmp_path))
        == parsed
    )
    assert index_cache.lookup(str(tmp_path), snapshot_file.read_bytes()).index is not None


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--cache", "/nonexistent-podpath-cache"],
            "podpath: cache directory /nonexistent-podpath-cache: No such file or directory\n",
        ),
        (
            ["--cache", "/etc/hostname"],
            "podpath: cache directory /etc/hostname is not a directory\n",
        ),
    ],
)
def test_unusable_cache_directory_is_one_sentence(
    snapshot_file: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    """A cache directory that is missing or a file is refused in one sentence."""
    code, out, err = _trace(
        capsys,
        "--snapshot",
        str(snapshot_file),
        "--from",
        "default/a",
        "--to",
        "172.30.0.44:80",
        *args,
    )
    assert (code, out, err) == (2, "", message)


def test_cache_needs_a_snapshot(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """--cache on the live node is refused before anything is read."""
    code, out, err = _trace(capsys, "--from", "node", "--to", "10.0.0.1", "--cache", str(tmp_path))
    assert (code, out) == (2, "")
    assert err == "podpath: --cache DIR needs --snapshot FILE (a live node is read afresh)\n"


def test_cache_directory_keeps_the_most_recently_used_index_files(
    snapshot_file: Path, tmp_path: Path
) -> None:
    """After a write, only the KEEP newest podpath-index files remain; nothing else is touched."""
    cache = tmp_path / "cache"
    cache.mkdir()
    old = [cache / f"podpath-index-{n:040x}.pickle" for n in range(index_cache.KEEP + 3)]
    for age, path in enumerate(reversed(old)):
        path.write_bytes(b"stale")
        os.utime(path, (1_000_000 + age, 1_000_000 + age))  # old[0] is the newest
    others = [cache / "podpath-index-notes.txt", cache / "snapshot.json", cache / "podpath-index-x"]
    for path in others:
        path.write_text("not an index")
    os.utime(others[0], (1, 1))
    assert main(["trace", "--snapshot", str(snapshot_file), *A_TO_WEB, "--cache", str(cache)]) == 0
    kept = sorted(p.name for p in cache.glob("podpath-index-*.pickle"))
    new = Path(index_cache.cache_path(str(cache), index_cache.key_of(snapshot_file.read_bytes())))
    assert kept == sorted([new.name, *(p.name for p in old[: index_cache.KEEP - 1])])
    assert all(p.read_text() == "not an index" for p in others)


def test_a_hit_counts_as_a_use(snapshot_file: Path, tmp_path: Path) -> None:
    """Reading an index file renews its time, so pruning removes the least recently used."""
    main(["trace", "--snapshot", str(snapshot_file), *A_TO_WEB, "--cache", str(tmp_path)])
    path = _only_cache_file(tmp_path)
    os.utime(path, (1, 1))
    assert index_cache.lookup(str(tmp_path), snapshot_file.read_bytes()).index is not None
    assert path.stat().st_mtime > 1_000_000


def test_prune_leaves_what_is_not_its_own(tmp_path: Path) -> None:
    """Index files of another user, or in a directory it cannot write, are left; the rest pruned."""
    names = [f"podpath-index-{n:040x}.pickle" for n in range(index_cache.KEEP + 4)]
    for age, name in enumerate(names):
        (tmp_path / name).write_bytes(b"x")
        os.utime(tmp_path / name, (1_000_000 - age, 1_000_000 - age))  # names[0] newest
    if os.geteuid() == 0:
        # root may remove anything: files it does not own are what it must leave.
        for name in names[-2:]:
            os.chown(tmp_path / name, 65534, 65534)
        removed = index_cache.prune(str(tmp_path))
        assert sorted(removed) == sorted(names[index_cache.KEEP : -2])
        assert sorted(os.listdir(tmp_path)) == sorted([*names[: index_cache.KEEP], *names[-2:]])
    else:
        tmp_path.chmod(0o500)
        try:
            assert index_cache.prune(str(tmp_path)) == []
        finally:
            tmp_path.chmod(0o700)
        assert sorted(os.listdir(tmp_path)) == sorted(names)


def test_damaged_packed_value_is_answered_from_the_snapshot(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A cache whose outer pickle reads but whose packed nft chains do not: parsed again, same answer."""
    if not NFT.exists():
        pytest.skip("real-world fixtures missing")
    snapshot_file = tmp_path / "node.json"
    snapshot_file.write_text(codec.dumps(_nft_node()))
    parsed = _traced(capsys, snapshot_file, "default/a", "172.30.0.44:80")
    _traced(capsys, snapshot_file, "default/a", "172.30.0.44:80", "--cache", str(tmp_path))
    path = _only_cache_file(tmp_path)
    key = index_cache.key_of(snapshot_file.read_bytes())
    _key, index, nft = index_cache_load(path)
    assert isinstance(nft, NftIndex) and isinstance(nft.rules, RulesView)
    store = nft.rules.store
    store._packed = {
        t: PackedTable.of(dict.fromkeys(table.names, b"not a pickle"))
        for t, table in store._packed.items()
    }
    store._live = {}
    path.write_bytes(b"".join(index_cache.file_chunks((key, index, nft))))
    path.chmod(0o600)
    again = _traced(capsys, snapshot_file, "default/a", "172.30.0.44:80", "--cache", str(tmp_path))
    assert again == parsed
    rewritten = index_cache.lookup(str(tmp_path), snapshot_file.read_bytes()).index
    assert rewritten is not None


def index_cache_load(path: Path) -> tuple[object, ...]:
    """The tuple a cache file holds (read with the cache's own restricted unpickler)."""
    with path.open("rb") as fp:
        found = index_cache.value_in(fp)
    assert isinstance(found, tuple)
    return found


def _digests(directory: Path) -> list[Path]:
    return sorted(directory.glob("podpath-digest-*"))


def _no_hashing(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record every snapshot file hashed (hashing still happens); the list of paths."""
    hashed: list[str] = []
    real = codec.digest_path

    def counted(path: str) -> bytes:
        hashed.append(path)
        return real(path)

    monkeypatch.setattr(codec, "digest_path", counted)
    return hashed


def test_a_remembered_digest_spares_hashing_the_snapshot(
    snapshot_file: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A quiet snapshot's digest is remembered beside its index: the next trace of the
    unchanged file hashes nothing and answers as the full parse does."""
    monkeypatch.setattr(file_digests, "QUIET_NS", 0)
    hashed = _no_hashing(monkeypatch)
    cache = tmp_path / "cache"
    cache.mkdir()
    parsed = _traced(capsys, snapshot_file, *PROBES[0])
    assert _traced(capsys, snapshot_file, *PROBES[0], "--cache", str(cache)) == parsed
    assert hashed == [str(snapshot_file)] and len(_digests(cache)) == 1
    (memo,) = _digests(cache)
    assert memo.read_text().split()[-1] == codec.digest_path(str(snapshot_file)).hex()
    hashed.clear()
    assert _traced(capsys, snapshot_file, *PROBES[0], "--cache", str(cache)) == parsed
    assert hashed == []


def test_a_snapshot_rewritten_in_place_is_hashed_again(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Same size, its mtime put back: its ctime moved, so the remembered digest is not
    used and the trace follows the new rules."""
    if not IPTABLES.exists():
        pytest.skip("real-world fixtures missing")
    monkeypatch.setattr(file_digests, "QUIET_NS", 0)
    snap, cache = tmp_path / "node.json", tmp_path / "cache"
    cache.mkdir()
    text = IPTABLES.read_text()
    snap.write_text(codec.dumps(_iptables_node()))
    before = _traced(capsys, snap, "default/a", "172.30.0.44:80", "--cache", str(cache))
    assert '"dst": "10.180.0.5"' in before and len(_digests(cache)) == 1
    st = snap.stat()
    snap.write_text(codec.dumps(_iptables_node(text.replace("10.180.0.5:80", "10.180.0.7:80"))))
    os.utime(snap, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert snap.stat().st_size == st.st_size
    hashed = _no_hashing(monkeypatch)
    after = _traced(capsys, snap, "default/a", "172.30.0.44:80", "--cache", str(cache))
    assert hashed == [str(snap)]
    assert after == _traced(capsys, snap, "default/a", "172.30.0.44:80")
    assert '"dst": "10.180.0.7"' in after and '"dst": "10.180.0.5"' not in after


def test_a_file_changed_recently_is_not_remembered(
    snapshot_file: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A snapshot written less than QUIET_NS before the trace may still change within the
    clock's tick: its digest is not remembered."""
    monkeypatch.setattr(file_digests, "QUIET_NS", 3600 * 10**9)  # however slow the test
    snapshot_file.write_bytes(snapshot_file.read_bytes())  # written just now
    _traced(capsys, snapshot_file, *PROBES[0], "--cache", str(tmp_path))
    assert _digests(tmp_path) == [] and len(list(tmp_path.glob("podpath-index-*"))) == 1


@pytest.mark.parametrize("damage", ["others may write", "another digest", "garbage"])
def test_a_memo_not_to_be_trusted_means_hashing(
    damage: str,
    snapshot_file: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A memo others may write, one whose digest is not the file's, or one that does not
    parse: the answer is the full parse's, and the memo is made right for the next trace
    (one others may write keeps its mode, podpath.output_file: the file is hashed each time)."""
    monkeypatch.setattr(file_digests, "QUIET_NS", 0)
    parsed = _traced(capsys, snapshot_file, *PROBES[0])
    _traced(capsys, snapshot_file, *PROBES[0], "--cache", str(tmp_path))
    (memo,) = _digests(tmp_path)
    if damage == "others may write":
        memo.chmod(0o666)
    elif damage == "another digest":
        ident, _, _digest = memo.read_text().rstrip("\n").rpartition(" ")
        memo.write_text(f"{ident} {'0' * 64}\n")
    else:
        memo.write_bytes(b"\xff\x00 not a memo")
    assert _traced(capsys, snapshot_file, *PROBES[0], "--cache", str(tmp_path)) == parsed
    (memo,) = _digests(tmp_path)
    assert memo.read_text().split()[-1] == codec.digest_path(str(snapshot_file)).hex()
    hashed = _no_hashing(monkeypatch)
    assert _traced(capsys, snapshot_file, *PROBES[0], "--cache", str(tmp_path)) == parsed
    assert hashed == ([str(snapshot_file)] if damage == "others may write" else [])


def test_digest_memos_are_pruned_with_the_index_files(tmp_path: Path) -> None:
    """Only the KEEP * MEMOS_PER_INDEX most recently used memos are kept."""
    keep = index_cache.KEEP * index_cache.MEMOS_PER_INDEX
    names = [f"podpath-digest-{n:040x}" for n in range(keep + 3)]
    for age, name in enumerate(names):
        (tmp_path / name).write_text("x")
        os.utime(tmp_path / name, (1_000_000 - age, 1_000_000 - age))  # names[0] newest
    (tmp_path / "podpath-digest-notes").write_text("not a memo")
    assert sorted(index_cache.prune(str(tmp_path))) == sorted(names[keep:])
    assert sorted(os.listdir(tmp_path)) == sorted([*names[:keep], "podpath-digest-notes"])


# What a cached trace of a snapshot never needs: the UI, reading a node, the lab, the
# drawing, the conntrack view of --conntrack, and writing files (a hit writes nothing).
NOT_ON_A_HIT = (
    "textual",
    "rich",
    "podpath.tui",
    "podpath.collectors",
    "podpath.lab",
    "podpath.draw",
    "podpath.cli.draw",
    "podpath.trace.observed",
    "podpath.conntrack",
    "podpath.output_file",
    "tempfile",
)


def test_a_cache_hit_imports_only_what_the_trace_needs(
    snapshot_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`python -X importtime -m podpath trace --snapshot F --cache DIR` on a hit (its digest
    remembered) imports none of NOT_ON_A_HIT."""
    monkeypatch.setattr(file_digests, "QUIET_NS", 0)
    argv = ["--snapshot", str(snapshot_file), *A_TO_WEB, "--json", "--cache", str(tmp_path)]
    assert main(["trace", *argv]) == 0
    assert len(_digests(tmp_path)) == 1
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "podpath", "trace", *argv],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    imported = {
        line.rpartition("|")[2].strip()
        for line in done.stderr.splitlines()
        if line.startswith("import time:")
    }
    assert "podpath.trace.engine" in imported and "podpath.trace.file_digests" in imported
    unwanted = {n for n in imported for top in NOT_ON_A_HIT if n == top or n.startswith(top + ".")}
    assert unwanted == set()
