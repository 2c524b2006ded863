"""`podpath ls rules|routes|links` on a saved snapshot: families, table names, VXLAN columns."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from trace_factory import root_inode, two_nodes, with_root

from podpath.cli import main
from podpath.snapshot import codec
from podpath.snapshot.model import Address, Route, Rule

ROOT = root_inode(0)
# What `ip rule` and `ip -6 rule` print on any node: the same three rules, one list each.
RULES = tuple(
    Rule(ROOT, family, priority, "lookup", table)
    for family in (4, 6)
    for priority, table in ((0, 255), (32766, 254), (32767, 253))
)


@pytest.fixture
def snapshot_file(tmp_path: Path) -> str:
    """node-a of a flannel VXLAN pair, with both families' default rules and a table 100 route."""
    node, _ = two_nodes("vxlan")
    routes = next(ns.routes for ns in node.netns if ns.inode == ROOT)
    extra = Route(ROOT, 4, 100, "unicast", "10.9.0.0/16", gateway="192.168.0.1", dev=2)
    node = with_root(node, rules=RULES, routes=(*routes, extra))
    path = tmp_path / "node-a.json"
    path.write_text(codec.dumps(node))
    return str(path)


def _ls(capsys: pytest.CaptureFixture[str], *args: str) -> list[list[str]]:
    assert main(["ls", *args]) == 0
    return [line.split() for line in capsys.readouterr().out.splitlines()]


def test_rules_have_a_family_and_tables_by_name(
    snapshot_file: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """IPv4 and IPv6 rules differ by FAMILY; tables read local/main/default as in `ip rule`."""
    lines = _ls(capsys, "rules", "--snapshot", snapshot_file)
    header = lines[0]
    assert header[:3] == ["NETNS", "FAMILY", "PRIO"] and header[-1] == "RULE"
    shown = sorted((line[1], line[2], line[-1]) for line in lines[1:])
    assert shown == sorted(
        (fam, prio, table)
        for fam in ("ipv4", "ipv6")
        for prio, table in (("0", "local"), ("32766", "main"), ("32767", "default"))
    )
    assert len(set(map(tuple, lines[1:]))) == len(lines) - 1  # no row looks doubled


def test_routes_name_main_and_keep_other_tables_numbered(
    snapshot_file: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """`main` for 254, `100` stays 100; JSON keeps the number and adds the name."""
    lines = _ls(capsys, "routes", "--snapshot", snapshot_file)
    col = lines[0].index("TABLE")
    tables = {line[col] for line in lines[1:]}
    assert {"main", "local", "100"} == tables
    assert lines[0][1] == "FAMILY" and {line[1] for line in lines[1:]} == {"ipv4"}
    main(["ls", "routes", "--snapshot", snapshot_file, "--json"])
    rows = json.loads(capsys.readouterr().out)["routes"]
    pairs = {(r["table"], r["table_name"]) for r in rows}
    assert {(254, "main"), (255, "local"), (100, "100")} == pairs


def test_links_show_vxlan_like_ip_d_link(
    snapshot_file: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """flannel.1: VNI 1, local 192.168.0.2, the FDB's remote VTEP, port 8472, over eth0, nolearning."""
    lines = _ls(capsys, "links", "--snapshot", snapshot_file)
    header = lines[0]
    assert header[-6:] == ["VNI", "LOCAL", "REMOTE", "DSTPORT", "UNDERLAY", "OPTIONS"]
    flannel = next(line for line in lines if "flannel.1" in line)
    assert flannel[-6:] == ["1", "192.168.0.2", "192.168.0.3", "8472", "eth0", "nolearning"]
    veth = next(line for line in lines[1:] if "veth" in " ".join(line))
    assert "8472" not in veth


def test_links_options_name_a_bridge_s_own_br_netfilter_switch(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A bridge whose own nf_call_iptables is on says so in OPTIONS (ip -d link prints it
    always, podpath when on); one with both off says nothing."""
    node, _ = two_nodes("vxlan")
    root = next(ns for ns in node.netns if ns.inode == ROOT)
    links = tuple(
        replace(lk, nf_call_iptables=True, nf_call_ip6tables=False) if lk.name == "cni0" else lk
        for lk in root.links
    )
    for changed, options in ((node, "-"), (with_root(node, links=links), "nf_call_iptables")):
        path = tmp_path / "node.json"
        path.write_text(codec.dumps(changed))
        lines = _ls(capsys, "links", "--snapshot", str(path))
        assert next(line for line in lines if line[2] == "cni0")[-1] == options


def test_links_options_name_a_port_that_does_not_forward(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A bridge port held by STP (or disabled) says its state in OPTIONS; a forwarding one
    says nothing of it."""
    node, _ = two_nodes("vxlan")
    root = next(ns for ns in node.netns if ns.inode == ROOT)
    ports = [lk.name for lk in root.links if lk.master is not None and lk.kind == "veth"]
    links = tuple(
        replace(lk, port_state="listening" if lk.name == ports[0] else "forwarding")
        if lk.name in ports
        else lk
        for lk in root.links
    )
    path = tmp_path / "node.json"
    path.write_text(codec.dumps(with_root(node, links=links)))
    lines = _ls(capsys, "links", "--snapshot", str(path))
    shown = {line[2].split("@")[0]: line[-1] for line in lines[1:] if line[0] == "root"}
    assert shown[ports[0]] == "state:listening"
    assert all("state:" not in shown[p] for p in ports[1:]), shown


def test_links_addresses_say_one_the_kernel_does_not_use(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An address that failed duplicate address detection, or is still being checked,
    says so after it (as `ip addr` does); a usable one, an optimistic one, nothing."""
    node, _ = two_nodes("vxlan")
    root = next(ns for ns in node.netns if ns.inode == ROOT)
    extra = (
        Address(6, "fd00::2", 64, flags=("dadfailed", "tentative")),
        Address(6, "fd00::3", 64, flags=("tentative",)),
        Address(6, "fd00::4", 64, flags=("tentative", "optimistic")),
        Address(6, "fd00::5", 64, flags=("nodad",)),
    )
    links = tuple(
        replace(lk, addresses=(*lk.addresses, *extra)) if lk.name == "cni0" else lk
        for lk in root.links
    )
    path = tmp_path / "node.json"
    path.write_text(codec.dumps(with_root(node, links=links)))
    lines = _ls(capsys, "links", "--snapshot", str(path))
    cni0 = " ".join(next(line for line in lines if line[2] == "cni0"))
    assert "fd00::2/64(dadfailed)" in cni0 and "fd00::3/64(tentative)" in cni0
    assert "fd00::4/64," in cni0 + "," and "fd00::5/64" in cni0
    assert "fd00::4/64(" not in cni0 and "fd00::5/64(" not in cni0


def test_rules_text_keeps_not_and_every_selector(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`not`, ipproto/dport and suppress_prefixlength read as `ip rule` prints them."""
    node, _ = two_nodes("vxlan")
    extra = (
        Rule(ROOT, 4, 80, "lookup", 254, suppress_prefixlength=0),
        Rule(ROOT, 4, 90, "lookup", 100, ipproto=17, dport=(53, 53)),
        Rule(ROOT, 4, 1025, "lookup", 254, dst="172.18.0.0/16", invert=True),
    )
    path = tmp_path / "node.json"
    path.write_text(codec.dumps(with_root(node, rules=RULES[:3] + extra)))
    assert main(["ls", "rules", "--snapshot", str(path)]) == 0
    text = capsys.readouterr().out
    assert "1025 not from all to 172.18.0.0/16 lookup main\n" in text
    assert "  90 from all ipproto udp dport 53 lookup 100\n" in text
    assert "  80 from all lookup main suppress_prefixlength 0\n" in text
    main(["ls", "rules", "--snapshot", str(path), "--json"])
    rows = json.loads(capsys.readouterr().out)["rules"]
    inverted = next(r for r in rows if r["priority"] == 1025)
    assert (inverted["invert"], inverted["text"]) == (
        True,
        "not from all to 172.18.0.0/16 lookup main",
    )


def test_links_stats_columns_and_stats_only_for_links(
    snapshot_file: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """`ls links -s` adds ip -s link's counters; `-s` with another kind is one clear sentence."""
    lines = _ls(capsys, "links", "-s", "--snapshot", snapshot_file)
    assert lines[0][-8:] == [
        "RX-BYTES",
        "RX-PKTS",
        "RX-ERR",
        "RX-DROP",
        "TX-BYTES",
        "TX-PKTS",
        "TX-ERR",
        "TX-DROP",
    ]
    assert main(["ls", "rules", "-s", "--snapshot", snapshot_file]) != 0
    assert capsys.readouterr().err.strip() == "podpath: --stats applies to `podpath ls links` only"
