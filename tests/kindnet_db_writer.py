"""Writes a pod database as cni-kindnet does: its schema verbatim, its own statements.

kubernetes-sigs/kindnet@57aff7ece2f69da64b4551683c4de996689d9b81 cmd/cni-kindnet:
main.go `start()` (busy timeout 1 s, foreign keys, WAL, then the tables, whose
statements are tests/fixtures/realworld/kindnet/cni-kindnet-schema.sql) and netconf.go
`writeNetworkConfigWithoutIPs` (INSERT) then `ipInsert` (one UPDATE per family).

As a script (run inside a lab node):
`python kindnet_db_writer.py DB [--keep-open] [--run CMD...]` reads rows as JSON from
stdin and writes them; with --run it then runs CMD, its connection still open with
--keep-open (so the -wal and -shm stay beside the database), and prints
{"before": listing, "after": listing, "stdout": CMD's output, "stderr": ...}.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

SCHEMA = Path(__file__).parent / "fixtures" / "realworld" / "kindnet" / "cni-kindnet-schema.sql"
# netconf.go writeNetworkConfigWithoutIPs and ipInsert, statement for statement.
_INSERT = """
		INSERT INTO pods (
			container_id, name, namespace, uid, netns,
			interface_name,	interface_mtu
		) VALUES (?, ?, ?, ?, ?, ?, ?)
		"""
_SET_V4 = """
		UPDATE pods
		SET ip_address_v4 = ?, ip_gateway_v4 = ?
		WHERE container_id = ?
	"""
_SET_V6 = """
		UPDATE pods
		SET ip_address_v6 = ?, ip_gateway_v6 = ?
		WHERE container_id = ?
"""


def create(path: str | Path, schema: str | None = None) -> sqlite3.Connection:
    """Open (creating) the database as cni-kindnet's start() does; the caller closes it."""
    con = sqlite3.connect(str(path), timeout=1.0, isolation_level=None)
    con.execute("PRAGMA foreign_keys = ON;")
    con.execute("PRAGMA journal_mode=WAL;")
    con.executescript(SCHEMA.read_text() if schema is None else schema)
    return con


def add_pod(con: sqlite3.Connection, row: dict[str, Any]) -> None:
    """One pod, as cmdAdd records it: the row first, then each family's address."""
    con.execute(
        _INSERT,
        (
            row["container_id"],
            row.get("name", ""),
            row.get("namespace", ""),
            row.get("uid", ""),
            row["netns"],
            row["interface_name"],
            row.get("mtu", 1500),
        ),
    )
    if row.get("v4"):
        con.execute(_SET_V4, (row["v4"], row["gw4"], row["container_id"]))
    if row.get("v6"):
        con.execute(_SET_V6, (row["v6"], row["gw6"], row["container_id"]))


def listing(directory: str | Path) -> dict[str, int]:
    """name -> mtime (ns) of every file in a directory, and the directory's own."""
    out = {".": os.stat(directory).st_mtime_ns}
    for name in sorted(os.listdir(directory)):
        out[name] = os.stat(os.path.join(directory, name)).st_mtime_ns
    return out


def main(argv: list[str]) -> int:
    """Write stdin's rows to argv[0]; then run the command after --run, writer open or closed."""
    path = Path(argv[0])
    path.parent.mkdir(parents=True, exist_ok=True)
    con = create(path)
    for row in json.loads(sys.stdin.read()):
        add_pod(con, row)
    if "--keep-open" not in argv:
        con.close()
    if "--run" not in argv:
        con.close()
        return 0
    cmd = argv[argv.index("--run") + 1 :]
    before = listing(path.parent)
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    after = listing(path.parent)
    con.close()
    report = {"before": before, "after": after, "stdout": done.stdout, "stderr": done.stderr}
    json.dump(report, sys.stdout)
    return done.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
