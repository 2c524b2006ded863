"""kindnet's pod database: the pods its CNI plugin (cni-kindnet) networked on this node.

cni-kindnet keeps one row per pod sandbox in /var/lib/cni-kindnet/cni.db, an SQLite
database in WAL mode (kubernetes-sigs/kindnet@57aff7ece2f69da64b4551683c4de996689d9b81,
cmd/cni-kindnet/main.go: `dbDir`, `dbFile`, `podsTable`; rows written by netconf.go
`writeNetworkConfigWithoutIPs` and `ipInsert`). Columns of `pods`:
container_id is the sandbox id (CNI_CONTAINERID); name, namespace, uid come from
K8S_POD_* in CNI_ARGS ("" when the runtime passed none); netns is CNI_NETNS;
ip_address_v4/v6 the pod's addresses; ip_gateway_v4/v6 the first address of the
node's pod range of that family; interface_name the host side of the pod's veth
("knet" + 8 hex); interface_mtu the MTU of the node's default-route interface (0 when
it could not tell).

Read-only, always, and never a change beside the file: SQLite's own read-only mode
still creates the -wal and -shm of a WAL database that has none (found by experiment
with SQLite 3.40), so a database without a -wal (no writer is using it: the last
connection deletes it) is opened `immutable`, which reads the one file and nothing
else, and checked unchanged afterwards; with a -wal beside it (a writer is at work, or
died) it is opened `readonly_shm`, which reads the -wal through the existing -shm
without writing either. A locked, corrupt or unknown database is a Gap, never a pod.
"""

from __future__ import annotations

import ipaddress
import os
import re
import sqlite3
import stat
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from podpath.collectors.hostroot import CollectorError, HostRoot, Vanished
from podpath.snapshot.model import Gap

KINDNET_DIR = "/var/lib/cni-kindnet"
KINDNET_DB = f"{KINDNET_DIR}/cni.db"
SOURCE = "kindnet-db"
COLUMNS = (
    "container_id",
    "name",
    "namespace",
    "uid",
    "netns",
    "ip_address_v4",
    "ip_address_v6",
    "ip_gateway_v4",
    "ip_gateway_v6",
    "interface_name",
    "interface_mtu",
)
_MAGIC = b"SQLite format 3\x00"
_WAL_VERSION = 2  # header bytes 18/19 (file format read/write version): 2 means WAL
_BUSY_TIMEOUT = 0.5  # seconds; cni-kindnet's own writers wait 1 s (`_busy_timeout=1000`)
_MAX_ROWS = 65536  # a node has at most a few hundred pods
_ID = re.compile(r"^[0-9a-f]{64}$")
# A Linux interface name: at most IFNAMSIZ-1 bytes, no "/", ":" or whitespace.
_IFNAME = re.compile(r"^[^/:\s]{1,15}$")
_MAX_TEXT = 253  # a DNS subdomain, the longest Kubernetes name


@dataclass(frozen=True)
class KindnetPod:
    """One row of cni-kindnet's `pods` table, checked."""

    sandbox_id: str
    name: str
    namespace: str
    uid: str
    netns: str
    ips: tuple[str, ...]  # IPv4 first, as cni-kindnet returns them
    gateways: tuple[str, ...]
    host_interface: str
    mtu: int | None


class _Unreadable(Exception):
    """The database cannot be read; the message is the Gap's reason."""

    def __init__(self, reason: str, kind: str = "error") -> None:
        super().__init__(reason)
        self.kind = kind


def read_kindnet_db(host: HostRoot, gaps: list[Gap]) -> list[KindnetPod]:
    """The pods in kindnet's database; [] where there is none, a Gap where it is unreadable."""
    try:
        return _read(host, gaps)
    except Vanished:
        return []  # no kindnet on this node (or the file went away while we looked)
    except CollectorError as err:
        gaps.append(err.to_gap())
    except _Unreadable as err:
        gaps.append(Gap(KINDNET_DB, str(err), err.kind))
    return []


def _read(host: HostRoot, gaps: list[Gap]) -> list[KindnetPod]:
    for _attempt in range(2):
        before = _state(host)
        path = os.path.join(host.real_path(KINDNET_DIR), os.path.basename(KINDNET_DB))
        rows = _query(path, _uri_params(before))
        # An immutable read trusts the file not to change: prove it did not.
        if not _immutable(before) or _state(host) == before:
            return [pod for row in rows if (pod := _checked(row, gaps)) is not None]
    raise _Unreadable("changed twice while being read (cni-kindnet is busy); read it again")


def _state(host: HostRoot) -> tuple[int, int, int, bool, bool]:
    """(inode, size, mtime, WAL mode, -wal present) of the database, after checking its header."""
    st = host.stat(KINDNET_DB, follow=False)
    if not stat.S_ISREG(st.st_mode):
        raise _Unreadable("is not a regular file")
    if st.st_size == 0:
        # cni-kindnet has just created it; SQLite would delete a -wal beside an empty file.
        raise _Unreadable("is empty (cni-kindnet is creating it)")
    header = host.read_bytes(KINDNET_DB, limit=100)
    if len(header) < 100 or not header.startswith(_MAGIC):
        raise _Unreadable("is not an SQLite database")
    wal = header[18] == _WAL_VERSION
    try:
        host.stat(KINDNET_DB + "-wal", follow=False)
        has_wal = True
    except Vanished:
        has_wal = False
    return st.st_ino, st.st_size, st.st_mtime_ns, wal, has_wal


def _immutable(state: tuple[int, int, int, bool, bool]) -> bool:
    return state[3] and not state[4]


def _uri_params(state: tuple[int, int, int, bool, bool]) -> str:
    if _immutable(state):
        return "mode=ro&immutable=1"
    if state[3]:
        return "mode=ro&readonly_shm=1"
    return "mode=ro"  # a rollback-journal database: shared locks only, no file created


def _query(path: str, params: str) -> list[tuple[Any, ...]]:
    uri = f"file:{quote(os.fsencode(path))}?{params}"
    try:
        con = sqlite3.connect(uri, uri=True, timeout=_BUSY_TIMEOUT, isolation_level=None)
    except sqlite3.Error as err:
        raise _unreadable(err) from err
    try:
        # Text that is not UTF-8 is kept (and shown escaped), not a decode error.
        con.text_factory = lambda b: b.decode("utf-8", "surrogateescape")
        con.execute("PRAGMA query_only = ON")
        kind = con.execute("SELECT type FROM sqlite_master WHERE name = 'pods'").fetchone()
        if kind is None or kind[0] != "table":
            raise _Unreadable("has no pods table: not a cni-kindnet database podpath knows")
        have = {r[1] for r in con.execute("PRAGMA table_info(pods)")}
        missing = [c for c in COLUMNS if c not in have]
        if missing:
            raise _Unreadable(
                f"has a pods table without {', '.join(missing)}: "
                "a cni-kindnet version podpath does not know"
            )
        return con.execute(
            f"SELECT {', '.join(COLUMNS)} FROM pods ORDER BY container_id LIMIT {_MAX_ROWS}"
        ).fetchall()
    except sqlite3.Error as err:
        raise _unreadable(err) from err
    finally:
        con.close()


def _unreadable(err: sqlite3.Error) -> _Unreadable:
    """One sentence for an SQLite error, by its result code."""
    code = str(getattr(err, "sqlite_errorname", ""))
    if code.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")):
        return _Unreadable(
            "is locked by a writer (cni-kindnet is adding or deleting a pod); read it again",
            "timeout",
        )
    if code.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB")):
        return _Unreadable(f"is corrupt (SQLite: {err})")
    if code.startswith("SQLITE_CANTOPEN"):
        return _Unreadable(
            f"cannot be opened read-only (SQLite: {err}; a -wal with no -shm to read it by?)"
        )
    return _Unreadable(f"cannot be read (SQLite: {err})")


def _text(value: Any, column: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str) or len(value) > _MAX_TEXT:
        raise ValueError(f"{column} is not a name")
    return value


def _ip(value: Any, column: str, version: int) -> str | None:
    if value is None or value == "":
        return None
    try:
        ip = ipaddress.ip_address(value) if isinstance(value, str) else None
    except ValueError:
        ip = None
    if ip is None or ip.version != version:
        raise ValueError(f"{column} is not an IPv{version} address")
    return str(ip)


def _checked(row: tuple[Any, ...], gaps: list[Gap]) -> KindnetPod | None:
    """A row as a KindnetPod, or a Gap saying what is wrong with it."""
    cid = row[0]
    subject = f"{KINDNET_DB}: pods row {cid!r}"
    try:
        if not isinstance(cid, str) or not _ID.match(cid):
            raise ValueError("container_id is not a sandbox id (64 hex digits)")
        netns, ifname, mtu = row[4], row[9], row[10]
        if not isinstance(netns, str) or not netns.startswith("/"):
            raise ValueError("netns is not an absolute path")
        if not isinstance(ifname, str) or not _IFNAME.match(ifname):
            raise ValueError("interface_name is not an interface name")
        if mtu is not None and (not isinstance(mtu, int) or not 0 <= mtu <= 65535):
            raise ValueError("interface_mtu is not an MTU")
        ips = (_ip(row[5], "ip_address_v4", 4), _ip(row[6], "ip_address_v6", 6))
        gws = (_ip(row[7], "ip_gateway_v4", 4), _ip(row[8], "ip_gateway_v6", 6))
        return KindnetPod(
            sandbox_id=cid,
            name=_text(row[1], "name"),
            namespace=_text(row[2], "namespace"),
            uid=_text(row[3], "uid"),
            netns=netns,
            ips=tuple(ip for ip in ips if ip),
            gateways=tuple(gw for gw in gws if gw),
            host_interface=ifname,
            mtu=mtu or None,  # 0: cni-kindnet could not read the default route's MTU
        )
    except ValueError as err:
        gaps.append(Gap(subject, f"{err}; row left out", "error"))
        return None
