"""kindnet's pod database: read from kindnet's real schema, read-only, and merged into pods."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from kindnet_db_writer import SCHEMA, add_pod, create, listing

from podpath.collectors.hostroot import HostRoot
from podpath.collectors.runtime.kindnet_db import (
    KINDNET_DB,
    KINDNET_DIR,
    KindnetPod,
    read_kindnet_db,
)
from podpath.collectors.runtime.pods import collect_pods
from podpath.snapshot.model import Gap, Namespace, Process

SB = "3eff2d8d3a4f3d3c0d1c4d4737c21b397bf7cbf77fd8a0fe370f6a59129cd535"
SB2 = "9f1c7a0e6b2d4c3a8e5f1b7d9c0a2e4f6b8d0c2e4a6b8d0f2c4e6a8b0d2f4c6e"
ROOT_NET = 4026531840
ROW = {
    "container_id": SB,
    "name": "coredns-5d78c9869d-79bfv",
    "namespace": "kube-system",
    "uid": "44e4b37f-504f-4f1c-80f3-4137bfbec5e4",
    "netns": "/var/run/netns/cni-c8f12417-13bc-a776-937a-0d987bcf8a2a",
    "interface_name": "knet1a2b3c4d",
    "mtu": 1500,
    "v4": "10.244.0.3",
    "gw4": "10.244.0.0",
    "v6": "fd00:10:244::3",
    "gw6": "fd00:10:244::",
}


@pytest.fixture
def root(tmp_path: Path) -> Iterator[Path]:
    """A node root with kindnet's database directory."""
    (tmp_path / KINDNET_DIR.lstrip("/")).mkdir(parents=True)
    yield tmp_path


def _db(root: Path) -> Path:
    return root / KINDNET_DB.lstrip("/")


def _write(root: Path, *rows: dict[str, object], schema: str | None = None) -> None:
    con = create(_db(root), schema)
    for row in rows:
        add_pod(con, row)
    con.close()


def _read(root: Path) -> tuple[list[KindnetPod], list[Gap]]:
    gaps: list[Gap] = []
    with HostRoot(str(root)) as host:
        return list(read_kindnet_db(host, gaps)), gaps


def test_schema_fixture_is_kindnets_three_tables() -> None:
    """The fixture holds cni-kindnet's pods, portmap_entries and ipam_ranges statements."""
    text = SCHEMA.read_text()
    assert text.count("CREATE TABLE IF NOT EXISTS") == 3
    assert "interface_name TEXT NOT NULL,      -- Name of the network interface" in text


def test_row_as_cni_kindnet_writes_it(root: Path) -> None:
    """Every column of a row kindnet wrote: names, uid, netns, both families, gateways, MTU."""
    _write(root, ROW)
    (pod,), gaps = _read(root)
    assert gaps == []
    assert pod == KindnetPod(
        sandbox_id=SB,
        name="coredns-5d78c9869d-79bfv",
        namespace="kube-system",
        uid="44e4b37f-504f-4f1c-80f3-4137bfbec5e4",
        netns="/var/run/netns/cni-c8f12417-13bc-a776-937a-0d987bcf8a2a",
        ips=("10.244.0.3", "fd00:10:244::3"),
        gateways=("10.244.0.0", "fd00:10:244::"),
        host_interface="knet1a2b3c4d",
        mtu=1500,
    )


def test_no_database_is_no_pod_and_no_gap(tmp_path: Path) -> None:
    """A node without kindnet: nothing to say."""
    assert _read(tmp_path) == ([], [])


def test_database_reached_through_host_root_symlinks(tmp_path: Path) -> None:
    """/var/lib -> /data/lib (absolute, as on some images) resolves inside the node's root."""
    (tmp_path / "data/lib/cni-kindnet").mkdir(parents=True)
    (tmp_path / "var").mkdir()
    (tmp_path / "var/lib").symlink_to("/data/lib")
    con = create(tmp_path / "data/lib/cni-kindnet/cni.db")  # followed naively: the host's /data
    add_pod(con, ROW)
    con.close()
    for use_openat2 in (True, False):
        gaps: list[Gap] = []
        with HostRoot(str(tmp_path), use_openat2=use_openat2) as host:
            (pod,) = read_kindnet_db(host, gaps)
        assert pod.sandbox_id == SB and gaps == []


def test_locked_database_is_a_gap(root: Path) -> None:
    """A writer holding the lock (rollback journal, BEGIN EXCLUSIVE): one sentence, no pod."""
    con = sqlite3.connect(_db(root), isolation_level=None)
    con.executescript(SCHEMA.read_text())
    con.execute("BEGIN EXCLUSIVE")
    add_pod(con, ROW)
    try:
        pods, gaps = _read(root)
    finally:
        con.execute("ROLLBACK")
        con.close()
    assert pods == []
    assert [(g.subject, g.kind) for g in gaps] == [(KINDNET_DB, "timeout")]
    assert gaps[0].reason.startswith("is locked by a writer")


def test_wal_writer_in_exclusive_mode_is_a_gap_and_nothing_is_created(root: Path) -> None:
    """A WAL writer in exclusive locking mode keeps no -shm: a gap, and no file made for it."""
    _write(root)
    con = sqlite3.connect(_db(root), isolation_level=None)
    con.execute("PRAGMA locking_mode=EXCLUSIVE")
    add_pod(con, ROW)
    try:
        before = listing(_db(root).parent)
        pods, gaps = _read(root)
        assert listing(_db(root).parent) == before
    finally:
        con.close()
    assert pods == [] and len(gaps) == 1 and gaps[0].subject == KINDNET_DB


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"\x00" * 4096, "is not an SQLite database"),
        (b"SQLite format 3\x00" + b"\xff" * 8192, "is corrupt"),
        (b"", "is empty"),
    ],
)
def test_corrupt_file_is_a_gap(root: Path, content: bytes, reason: str) -> None:
    """Garbage, a mangled header, an empty file: one sentence each, never a traceback."""
    _db(root).write_bytes(content)
    pods, gaps = _read(root)
    assert pods == [] and len(gaps) == 1 and gaps[0].reason.startswith(reason), gaps


def test_truncated_database_is_a_gap(root: Path) -> None:
    """A database cut short (half its pages gone) is a gap, not a partial list."""
    _write(root, ROW)
    data = _db(root).read_bytes()
    _db(root).write_bytes(data[: len(data) // 2])
    pods, gaps = _read(root)
    assert pods == [] and len(gaps) == 1 and gaps[0].subject == KINDNET_DB


def test_schema_of_another_version_is_a_gap(root: Path) -> None:
    """A pods table without interface_mtu (not a version podpath knows): a gap, no pod."""
    schema = SCHEMA.read_text().replace(
        "\tinterface_mtu INTEGER,             -- Interface mtu\n", ""
    )
    assert "interface_mtu" not in schema
    con = create(_db(root), schema)
    con.execute(
        "INSERT INTO pods (container_id, netns, interface_name) VALUES (?, ?, ?)",
        (SB, ROW["netns"], ROW["interface_name"]),
    )
    con.close()
    pods, gaps = _read(root)
    assert pods == []
    assert [g.reason for g in gaps] == [
        "has a pods table without interface_mtu: a cni-kindnet version podpath does not know"
    ]


def test_bad_row_is_left_out_with_a_gap(root: Path) -> None:
    """A row whose IPv4 column holds an IPv6 address is left out; the good row stays."""
    bad = {**ROW, "container_id": SB2, "v4": "fd00::9", "v6": None, "interface_name": "knetbad"}
    _write(root, ROW)
    con = sqlite3.connect(_db(root), isolation_level=None)
    # ipInsert keeps families apart; a hand-edited or foreign row need not.
    con.execute(
        "INSERT INTO pods (container_id, netns, interface_name, ip_address_v4) VALUES (?, ?, ?, ?)",
        (bad["container_id"], bad["netns"], bad["interface_name"], bad["v4"]),
    )
    con.close()
    pods, gaps = _read(root)
    assert [p.sandbox_id for p in pods] == [SB]
    assert [g.reason for g in gaps] == ["ip_address_v4 is not an IPv4 address; row left out"]


def _crash_writer(db: Path) -> None:
    """A cni-kindnet killed after its commit: the -wal and -shm stay, unchecked-pointed."""
    code = (
        "import os, sqlite3, sys; sys.path.insert(0, sys.argv[2]);"
        "from kindnet_db_writer import add_pod; import json;"
        "c = sqlite3.connect(sys.argv[1], isolation_level=None);"
        "add_pod(c, json.loads(sys.argv[3])); os._exit(0)"
    )
    import json

    row = {**ROW, "container_id": SB2, "interface_name": "knet99", "v4": "10.244.0.9", "v6": None}
    subprocess.run(
        [sys.executable, "-c", code, str(db), str(Path(__file__).parents[1]), json.dumps(row)],
        check=True,
    )


@pytest.mark.parametrize("writer", ["closed", "open", "crashed"])
def test_read_changes_nothing_in_the_directory(root: Path, writer: str) -> None:
    """Listing and mtimes unchanged: no -wal/-shm made, none written, WAL content still read."""
    _write(root, ROW)
    con = None
    if writer == "open":
        con = create(_db(root))
        add_pod(
            con,
            {
                **ROW,
                "container_id": SB2,
                "interface_name": "knet99",
                "v4": "10.244.0.9",
                "v6": None,
            },
        )
    elif writer == "crashed":
        _crash_writer(_db(root))
    expect_wal = writer != "closed"
    assert (_db(root).parent / "cni.db-wal").exists() == expect_wal
    before = listing(_db(root).parent)
    try:
        pods, gaps = _read(root)
    finally:
        after = listing(_db(root).parent)
        if con is not None:
            con.close()
    assert after == before and gaps == []
    # What is only in the -wal is read too.
    assert sorted(p.sandbox_id for p in pods) == sorted([SB, SB2] if expect_wal else [SB])


# -- merged into pods --------------------------------------------------------------------------


def _proc(
    pid: int, comm: str, cmd: tuple[str, ...], ns: dict[str, int], cgroup: str = "/"
) -> Process:
    return Process(pid, 10, 1, comm, cmd, 0, "S", cgroup=cgroup, namespaces=dict(ns))


def test_row_fills_a_pause_fallback_pod_by_netns(root: Path) -> None:
    """A pause process no runtime state names gets kindnet's name, IPs and host interface."""
    netns = root / "run/netns/cni-c8f12417-13bc-a776-937a-0d987bcf8a2a"
    netns.parent.mkdir(parents=True)
    netns.touch()  # a stand-in for the nsfs mount: what matters is its inode
    inode = netns.stat().st_ino
    _write(root, {**ROW, "netns": "/run/netns/" + netns.name})
    procs = (
        _proc(1, "catatonit", ("catatonit", "-P"), {"net": ROOT_NET}),
        _proc(40, "pause", ("/pause",), {"net": inode}),
    )
    scan = (
        Namespace("net", inode, 2, 1, 40, 0, "root", "/pause", nsfs="/run/netns/" + netns.name),
    )
    with HostRoot(str(root)) as host:
        pods, gaps = collect_pods(host, procs, ROOT_NET, namespaces=scan)
    (pod,) = pods
    assert gaps == ()
    assert (pod.namespace, pod.name, pod.uid) == ("kube-system", ROW["name"], ROW["uid"])
    assert (pod.source, pod.also_from, pod.pause_pid) == ("pause-process", ("kindnet-db",), 40)
    assert pod.ips == ("10.244.0.3", "fd00:10:244::3") and pod.sandbox_id == SB
    assert (pod.host_interface, pod.gateways, pod.mtu) == (
        "knet1a2b3c4d",
        ("10.244.0.0", "fd00:10:244::"),
        1500,
    )


def test_row_no_other_source_knows_is_a_pod_of_its_own(root: Path) -> None:
    """A row alone makes a kindnet-db pod; its netns gone, a gap says it is a stale row."""
    _write(root, ROW)
    with HostRoot(str(root)) as host:
        pods, gaps = collect_pods(host, (), ROOT_NET)
    (pod,) = pods
    assert (pod.source, pod.runtime, pod.also_from) == ("kindnet-db", "unknown", ())
    assert (pod.namespace, pod.name, pod.sandbox_id) == ("kube-system", ROW["name"], SB)
    assert pod.netns_inode is None and pod.pause_pid is None
    assert [(g.kind, g.reason) for g in gaps] == [
        (
            "inconsistent",
            f"its netns {ROW['netns']} is gone: a stale row still holding "
            "10.244.0.3, fd00:10:244::3",
        )
    ]


def test_database_is_not_opened_when_cancelled(root: Path) -> None:
    """A cancelled collection does not start the database read."""
    import threading

    _write(root, ROW)
    cancel = threading.Event()
    cancel.set()
    with HostRoot(str(root)) as host:
        pods, _ = collect_pods(host, (), ROOT_NET, cancel)
    assert pods == ()
    assert os.path.exists(_db(root))
