"""`podpath ls netconf` and `ls tc` on a saved snapshot: the kernel's combined values, programs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from trace_factory import root_inode, two_nodes, with_root

from podpath.cli import main
from podpath.snapshot import codec
from podpath.snapshot.model import BpfProgram, NetConf, TcFilter, TcQdisc

ROOT = root_inode(0)
PROG = BpfProgram(id=42, name="cil_from_contai", tag="1a2b3c4d5e6f7a8b", type="sched_cls")


@pytest.fixture
def snapshot_file(tmp_path: Path) -> str:
    """node-a with strict rp_filter on eth0 under loose `all`, proxy_arp on eth0 only, a clsact."""
    node, _ = two_nodes("vxlan")
    root = next(ns for ns in node.netns if ns.inode == ROOT)
    eth0 = next(link for link in root.links if link.name == "eth0")
    netconf = (
        NetConf(
            4,
            -1,
            forwarding=1,
            rp_filter=2,
            proxy_neigh=0,
            accept_local=1,
            route_localnet=0,
            src_valid_mark=0,
        ),
        NetConf(4, -2, forwarding=1, rp_filter=1, proxy_neigh=0),
        NetConf(
            4,
            eth0.ifindex,
            forwarding=0,
            rp_filter=1,
            proxy_neigh=1,
            accept_local=0,
            route_localnet=1,
            src_valid_mark=0,
        ),
        NetConf(6, -1, forwarding=1, proxy_neigh=0),
        NetConf(6, eth0.ifindex, forwarding=0, proxy_neigh=0),
    )
    qdiscs = (TcQdisc(eth0.ifindex, "clsact", "ffff:", "ffff:fff1"),)
    filters = (
        TcFilter(
            eth0.ifindex, "ingress", "bpf", "all", 1, handle="0x1", direct_action=True, program=PROG
        ),
    )
    node = with_root(node, netconf=netconf, qdiscs=qdiscs, tc_filters=filters)
    path = tmp_path / "node-a.json"
    path.write_text(codec.dumps(node))
    return str(path)


def _json(capsys: pytest.CaptureFixture[str], kind: str, path: str) -> list[dict[str, object]]:
    assert main(["ls", kind, "--snapshot", path, "--json"]) == 0
    rows: list[dict[str, object]] = json.loads(capsys.readouterr().out)[kind]
    return rows


def test_netconf_lists_all_default_then_interfaces(
    snapshot_file: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Each family lists conf/all, conf/default, then each interface, named as /proc/sys names them."""
    rows = _json(capsys, "netconf", snapshot_file)
    assert [(r["family"], r["dev_name"]) for r in rows] == [
        (4, "all"),
        (4, "default"),
        (4, "eth0"),
        (6, "all"),
        (6, "eth0"),
    ]
    assert {r["netns_label"] for r in rows} == {"root"}


def test_netconf_effective_values_combine_all_and_interface(
    snapshot_file: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """rp_filter max(all, dev); proxy_arp, accept_local, route_localnet, src_valid_mark all OR
    dev; IPv4 forwarding the dev's, IPv6 all's."""
    rows = {(r["family"], r["dev_name"]): r for r in _json(capsys, "netconf", snapshot_file)}
    eth4, eth6 = rows[(4, "eth0")], rows[(6, "eth0")]
    assert (eth4["rp_filter"], eth4["accept_local"], eth4["effective"]) == (
        1,
        0,
        {
            "forwarding": 0,
            "rp_filter": 2,
            "proxy_neigh": 1,
            "accept_local": 1,
            "route_localnet": 1,
            "src_valid_mark": 0,
        },
    )
    assert eth6["forwarding"] == 0 and eth6["effective"]["forwarding"] == 1  # type: ignore[index]
    # conf/default only seeds new interfaces: nothing is decided with it.
    assert set(rows[(4, "default")]["effective"].values()) == {None}  # type: ignore[attr-defined]
    # An older snapshot (no procfs values): unknown, never guessed.
    assert eth6["effective"]["accept_local"] is None  # type: ignore[index]


def test_netconf_text_names_the_rp_filter_mode(
    snapshot_file: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """The text form has a NETNS column and says the effective rp_filter with its meaning."""
    assert main(["ls", "netconf", "--snapshot", snapshot_file]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:3] == ["NETNS", "FAMILY", "DEV"]
    eth0 = next(line for line in lines if line.split()[1:3] == ["ipv4", "eth0"])
    assert "2 (loose)" in eth0


def test_tc_lists_qdisc_and_filter_with_its_program(
    snapshot_file: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """The clsact qdisc and its ingress bpf filter, with program name, id and tag."""
    rows = [r for r in _json(capsys, "tc", snapshot_file) if r["dev_name"] == "eth0"]
    assert [(r["object"], r["kind"]) for r in rows] == [("qdisc", "clsact"), ("filter", "bpf")]
    flt = rows[1]
    assert (flt["hook"], flt["direct_action"], flt["pref"]) == ("ingress", True, 1)
    assert flt["program"] == {
        "id": 42,
        "name": "cil_from_contai",
        "tag": "1a2b3c4d5e6f7a8b",
        "section": None,
        "type": "sched_cls",
    }
    assert main(["ls", "tc", "--snapshot", snapshot_file]) == 0
    text = capsys.readouterr().out
    assert "cil_from_contai[42] tag 1a2b3c4d5e6f7a8b" in text
    assert text.splitlines()[0].split()[:2] == ["NETNS", "DEV"]
