"""`podpath ls sockets` on a saved snapshot: ss's columns, the JSON keys, hostile names."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from trace_factory import pod_inode, root_inode, two_nodes

from podpath.cli import main
from podpath.snapshot import codec
from podpath.snapshot.model import Container, Snapshot, Socket, SocketOwner

POD_A, POD_B, ROOT = pod_inode(0, 0), pod_inode(0, 1), root_inode(0)
HOSTILE = "x\x1b[2J[b]y"
OWNER_KEYS = {"pid", "comm", "fd", "pod", "container"}
ROW_KEYS = {
    "netns",
    "netns_label",
    "pod",
    "netid",
    "family",
    "state",
    "recv_q",
    "send_q",
    "local",
    "local_port",
    "peer",
    "peer_port",
    "v6only",
    "bound_dev",
    "inode",
    "uid",
    "owners",
}


def _node() -> Snapshot:
    """node-a with a dual-stack web listener in pod b, a connection and a hostile UDP owner."""
    a, _b = two_nodes()
    web = Socket(POD_B, "tcp", 6, "LISTEN", "::", 80, inode=11, v6only=False, send_q=511)
    web = replace(web, owners=(SocketOwner(501, "nginx", 6), SocketOwner(502, "nginx", 6)))
    conn = Socket(POD_A, "tcp", 4, "ESTAB", "10.244.0.5", 41000, "10.244.0.6", 80, inode=12)
    dns = Socket(ROOT, "udp", 4, "UNCONN", "127.0.0.1", 53, inode=13, bound_dev=1)
    dns = replace(dns, owners=(SocketOwner(900, HOSTILE, 4),))
    tables = {POD_A: (conn,), POD_B: (web,), ROOT: (dns,)}
    netns = tuple(replace(ns, sockets=tables.get(ns.inode)) for ns in a.netns)
    pods = tuple(
        replace(p, containers=(Container("web", "c1", "container", (501, 502)),))
        if p.name == "b"
        else p
        for p in a.pods
    )
    return replace(a, netns=netns, pods=pods)


@pytest.fixture
def snapshot_file(tmp_path: Path) -> str:
    """The node, saved as a snapshot file."""
    path = tmp_path / "node-a.json"
    path.write_text(codec.dumps(_node()))
    return str(path)


def _ls(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["ls", "sockets", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_text_is_ss_shaped_with_pod_and_container(
    snapshot_file: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Columns like ss -tuanp, plus the namespace and the owner's container."""
    code, out, _ = _ls(capsys, "--snapshot", snapshot_file)
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == [
        "NETNS",
        "NETID",
        "STATE",
        "RECV-Q",
        "SEND-Q",
        "LOCAL",
        "PEER",
        "PROCESS",
        "CONTAINER",
    ]
    web = next(line for line in lines if "LISTEN" in line)
    assert web.split()[:7] == ["default/b", "tcp", "LISTEN", "0", "511", "*:80", "*:*"]
    assert '("nginx",pid=501,fd=6),("nginx",pid=502,fd=6)' in web and web.endswith("web")
    conn = next(line for line in lines if "ESTAB" in line)
    assert "10.244.0.5:41000" in conn and "10.244.0.6:80" in conn
    assert "127.0.0.1%lo:53" in out


def test_hostile_owner_name_is_escaped_in_text_and_literal_in_json(
    snapshot_file: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """An owner named with ESC and markup prints as escapes; the JSON keeps it (ASCII-escaped)."""
    _, out, _ = _ls(capsys, "--snapshot", snapshot_file)
    assert "\x1b" not in out and '"x\\x1b[2J[b]y"' in out
    _, out, _ = _ls(capsys, "--snapshot", snapshot_file, "--json")
    assert "\x1b" not in out
    rows = json.loads(out)["sockets"]
    assert {o["comm"] for r in rows for o in r["owners"]} >= {HOSTILE}


def test_json_keys_and_listening_filter(
    snapshot_file: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every row has the stable keys; --listening keeps TCP LISTEN and unconnected UDP only."""
    _, out, _ = _ls(capsys, "--snapshot", snapshot_file, "--json")
    rows = json.loads(out)["sockets"]
    assert len(rows) == 3 and all(set(r) == ROW_KEYS for r in rows)
    assert all(set(o) == OWNER_KEYS for r in rows for o in r["owners"])
    web = next(r for r in rows if r["state"] == "LISTEN")
    assert (web["pod"], web["owners"][0]["container"], web["v6only"]) == ("default/b", "web", False)
    _, out, _ = _ls(capsys, "--snapshot", snapshot_file, "--json", "--listening")
    assert sorted(r["state"] for r in json.loads(out)["sockets"]) == ["LISTEN", "UNCONN"]


def test_listening_with_another_kind_is_one_sentence(
    snapshot_file: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """--listening belongs to `ls sockets`: other kinds exit 2 with one clear sentence."""
    code = main(["ls", "pods", "--snapshot", snapshot_file, "--listening"])
    _, err = capsys.readouterr()
    assert code == 2 and "--listening applies to `podpath ls sockets` only" in err
    assert "Traceback" not in err


def test_snapshot_without_sockets_lists_none(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An older snapshot (no socket tables) loads and lists an empty table, not an error."""
    path = tmp_path / "old.json"
    path.write_text(codec.dumps(two_nodes()[0]))
    code, out, _ = _ls(capsys, "--snapshot", str(path), "--json")
    assert code == 0 and json.loads(out) == {"sockets": []}
