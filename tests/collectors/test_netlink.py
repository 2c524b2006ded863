"""The netns scanner against the real kernel, compared with `ip -j` and `bridge -j`.

Every namespace here exists only inside a private `unshare --net --mount --pid` child
(with a tmpfs over its /run), where `netns_lab_driver.py` builds the topology, runs the
scanner and the independent tools, and prints both as JSON.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys
import threading
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from netlink_fakes import Request, ScriptedKernel, done, msg

from podpath.collectors.netlink.netns_scan import (
    NetnsTarget,
    _Opened,
    _read,
    scan_network_namespaces,
)
from podpath.collectors.netlink.rtnetlink import RouteSocket
from podpath.collectors.netlink.rtnetlink_decode import (
    decode_fdb,
    decode_links,
    decode_routes,
)
from podpath.snapshot.model import Gap, Rule
from podpath.trace.routing import describe_rule

DRIVER = Path(__file__).with_name("netns_lab_driver.py")
HOSTILE = ("e\x1b[31mx", "\udcffbad")
TABLES = {"main": 254, "local": 255, "default": 253, "unspec": 0}


def _require_lab() -> None:
    """Fail loudly in CI, skip elsewhere, when root or the tools are missing."""
    missing = [t for t in ("unshare", "ip", "bridge") if shutil.which(t) is None]
    if os.geteuid() != 0 or missing:
        reason = f"needs root and {missing or 'unshare/ip/bridge'}"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)


def run_driver(*args: str) -> Any:
    """Run the driver in a throw-away net+mount+pid namespace and parse its JSON."""
    _require_lab()
    argv = [
        "unshare",
        "--net",
        "--mount",
        "--pid",
        "--fork",
        "--mount-proc",
        "--propagation",
        "private",
        "--",
        sys.executable,
        str(DRIVER),
        *args,
    ]
    res = subprocess.run(argv, capture_output=True, text=True, timeout=240, check=False)
    assert res.returncode == 0, res.stderr[-3000:]
    return json.loads(res.stdout)


@pytest.fixture(scope="module")
def topo() -> Any:
    """The topology run: scan, tools' view, inodes by namespace name."""
    return run_driver("topology")


def _namespaces(topo: Any) -> list[tuple[str, Any, Any]]:
    """(name, tools' view, scanned namespace) for every namespace of the topology."""
    by_inode = {ns["inode"]: ns for ns in topo["scan"]}
    return [(k, topo["tools"][k], by_inode[ino]) for k, ino in topo["inodes"].items()]


def _ifindex(view: Any) -> dict[str, int]:
    return {link["ifname"]: link["ifindex"] for link in view["link"]}


def _name_to_inode(topo: Any, name: str) -> int:
    return int(topo["inodes"]["None" if name == "ppnl-root" else name])


@pytest.mark.lab
def test_topology_scanned_without_gaps(topo: Any) -> None:
    """Every namespace is scanned, nothing is reported missing, and the view was stable."""
    assert topo["stable"], topo["unstable"]
    assert topo["gaps"] == []
    assert sorted(ns["inode"] for ns in topo["scan"]) == sorted(topo["inodes"].values())


@pytest.mark.lab
def test_links_equal_ip_link(topo: Any) -> None:
    """ifindex, name, kind, MAC, MTU, operstate, flags, master, a bridge port's hairpin
    mode, isolation, learning and STP state, a bridge's own br_netfilter switches, and
    the device group equal `ip -j -d link`."""
    for _name, view, ns in _namespaces(topo):
        index = _ifindex(view)
        want = sorted(
            (
                lk["ifindex"],
                lk["ifname"],
                lk.get("linkinfo", {}).get("info_kind"),
                # M-DOWN is ip's own note that the peer is down, not a kernel flag.
                lk.get("address"),
                lk["mtu"],
                lk["operstate"],
                tuple(f for f in lk["flags"] if f != "M-DOWN"),
                index.get(lk["master"]) if "master" in lk else None,
                _slave_flag(lk, "hairpin"),
                _slave_flag(lk, "isolated"),
                _slave_flag(lk, "learning"),
                _port_state(lk),
                _bridge_flag(lk, "nf_call_iptables"),
                _bridge_flag(lk, "nf_call_ip6tables"),
                0 if lk["group"] == "default" else int(lk["group"]),
            )
            for lk in view["link"]
        )
        got = sorted(
            (
                lk["ifindex"],
                lk["name"],
                lk["kind"],
                lk["mac"],
                lk["mtu"],
                lk["state"],
                tuple(lk["flags"]),
                lk["master"],
                lk["hairpin"],
                lk["isolated"],
                lk["learning"],
                lk["port_state"],
                lk["nf_call_iptables"],
                lk["nf_call_ip6tables"],
                lk["group"],
            )
            for lk in ns["links"]
        )
        assert got == want
    groups = {lk["group"] for _n, _v, ns in _namespaces(topo) for lk in ns["links"]}
    assert {0, 7} <= groups  # the driver puts one link in group 7
    hairpins = [lk["hairpin"] for _n, _v, ns in _namespaces(topo) for lk in ns["links"]]
    assert True in hairpins and False in hairpins  # the driver turns it on for one port
    isolated = [lk["isolated"] for _n, _v, ns in _namespaces(topo) for lk in ns["links"]]
    assert True in isolated and False in isolated  # and isolation on for the others
    learning = [lk["learning"] for _n, _v, ns in _namespaces(topo) for lk in ns["links"]]
    assert True in learning and False in learning  # and learning off for one
    states = {lk["port_state"] for _n, _v, ns in _namespaces(topo) for lk in ns["links"]}
    assert {"forwarding", "disabled"} <= states  # and one port disabled
    bridged = [
        (lk["nf_call_iptables"], lk["nf_call_ip6tables"])
        for _n, _v, ns in _namespaces(topo)
        for lk in ns["links"]
        if lk["kind"] == "bridge"
    ]
    assert (True, False) in bridged  # cni0's own IPv4 switch on, IPv6's off


def _bridge_flag(lk: dict[str, Any], name: str) -> bool | None:
    """ip's `nf_call_iptables` or `nf_call_ip6tables` of a bridge (info_data), None for any
    other link."""
    info = lk.get("linkinfo", {})
    if info.get("info_kind") != "bridge":
        return None
    value = info.get("info_data", {}).get(name)
    return None if value is None else bool(value)


def _port_state(lk: dict[str, Any]) -> str | None:
    """ip's STP `state` of a bridge port (info_slave_data), None for any other link."""
    info = lk.get("linkinfo", {})
    if info.get("info_slave_kind") != "bridge":
        return None
    state: str | None = info.get("info_slave_data", {}).get("state")
    return state


def _slave_flag(lk: dict[str, Any], name: str) -> bool | None:
    """ip's `hairpin`, `isolated` or `learning` of a bridge port (info_slave_data), None for
    any other link."""
    info = lk.get("linkinfo", {})
    if info.get("info_slave_kind") != "bridge":
        return None
    value = info.get("info_slave_data", {}).get(name)
    return None if value is None else bool(value)


@pytest.mark.lab
def test_own_netfilter_tables_equal_nft(topo: Any) -> None:
    """Each namespace entered has its own nf_tables tables, chains, hooks and rule counts
    as `nft -j list ruleset` lists them there (one pod's holds a sidecar's redirect, from
    istio/istio's own golden file); the scanning namespace's own are the node's
    collectors' business (None)."""
    found = []
    for name, view, ns in _namespaces(topo):
        if name == "None":
            assert ns["netfilter"] is None
            continue
        items = view["nft"]
        rules: dict[tuple[str, str, str], int] = {}
        for item in items:
            if "rule" in item:
                r = item["rule"]
                key = (r["family"], r["table"], r["chain"])
                rules[key] = rules.get(key, 0) + 1
        want = sorted(
            (
                c["family"],
                c["table"],
                c["name"],
                c.get("hook"),
                c.get("type"),
                rules.get((c["family"], c["table"], c["name"]), 0),
            )
            for c in (item["chain"] for item in items if "chain" in item)
        )
        got = sorted(
            (t["family"], t["name"], c["name"], c["hook"], c["type"], c["rules"])
            for t in ns["netfilter"]
            for c in t["chains"]
        )
        assert got == want, name
        assert {t["name"] for t in ns["netfilter"]} == {
            item["table"]["name"] for item in items if "table" in item
        }
        found += got
    # istio/istio's golden file: 9 rules in ISTIO_OUTPUT, 1 in OUTPUT, 4 in PREROUTING.
    assert ("ip", "nat", "ISTIO_OUTPUT", None, None, 9) in found
    assert ("ip", "nat", "OUTPUT", "output", "nat", 1) in found
    assert ("ip", "nat", "PREROUTING", "prerouting", "nat", 4) in found


@pytest.mark.lab
def test_hostile_interface_names_survive(topo: Any) -> None:
    """An escape sequence and a non-UTF-8 byte in interface names are kept literally."""
    names = {lk["name"] for lk in _namespaces(topo)[0][2]["links"]}
    assert set(HOSTILE) <= names


@pytest.mark.lab
def test_veth_pairs_equal_ip_link_in_both_namespaces(topo: Any) -> None:
    """Each veth's link_index/link_netnsid equal ip's, and its peer is the namespace ip names."""
    scanned = {ns["inode"]: ns for ns in topo["scan"]}
    checked = 0
    for _name, view, ns in _namespaces(topo):
        nsid_names = {e["nsid"]: e["name"] for e in view["nsids"]}
        ours = {lk["ifindex"]: lk for lk in ns["links"]}
        for lk in view["link"]:
            if lk.get("linkinfo", {}).get("info_kind") != "veth":
                continue
            mine = ours[lk["ifindex"]]
            # ip prints a peer in the same namespace by name ("link"), else by index.
            peer_index = lk["link_index"] if "link_index" in lk else _ifindex(view)[lk["link"]]
            assert (mine["link"], mine["link_netnsid"]) == (peer_index, lk.get("link_netnsid"))
            if "link_netnsid" in lk:
                peer_ns = _name_to_inode(topo, nsid_names[lk["link_netnsid"]])
            else:
                peer_ns = ns["inode"]
            assert mine["peer"] == {"netns": peer_ns, "ifindex": peer_index}
            back = {x["ifindex"]: x for x in scanned[peer_ns]["links"]}[peer_index]
            assert back["peer"] == {"netns": ns["inode"], "ifindex": lk["ifindex"]}
            checked += 1
    assert checked >= 14  # 3 pods x 2 ends, two in-pod, two pod-to-pod, ulay, hostile


@pytest.mark.lab
def test_vxlan_details_equal_ip(topo: Any) -> None:
    """VNI, local, port, learning, flags and underlay device equal `ip -d link` info_data."""
    view, ns = topo["tools"]["None"], _namespaces(topo)[0][2]
    index = _ifindex(view)
    lk = next(x for x in view["link"] if x["ifname"] == "flannel.1")
    data = lk["linkinfo"]["info_data"]
    mine = next(x for x in ns["links"] if x["name"] == "flannel.1")["vxlan"]
    assert mine == {
        "vni": data["id"],
        "port": data["port"],
        "local": data.get("local"),
        "group": data.get("group") or data.get("remote"),
        "dev": index[data["link"]],
        "learning": data["learning"],
        "flags": [f for f in ("proxy", "l2miss", "l3miss") if data.get(f)],
    }


# The address flags podpath keeps, as ip's JSON names them.
_ADDRESS_FLAGS = (
    "secondary",
    "nodad",
    "optimistic",
    "dadfailed",
    "deprecated",
    "tentative",
    "noprefixroute",
)


@pytest.mark.lab
def test_addresses_equal_ip_addr(topo: Any) -> None:
    """Addresses attached to each link equal `ip -j addr`, with their flags (the driver
    gives pods nodad addresses, and cni0 one that fails duplicate address detection)."""
    flags: set[str] = set()
    for _name, view, ns in _namespaces(topo):
        want = sorted(
            (
                lk["ifindex"],
                4 if a["family"] == "inet" else 6,
                a["local"],
                a["prefixlen"],
                a["scope"],
                a.get("label"),
                tuple(f for f in _ADDRESS_FLAGS if a.get(f)),
            )
            for lk in view["addr"]
            for a in lk["addr_info"]
        )
        got = sorted(
            (
                lk["ifindex"],
                a["family"],
                a["address"],
                a["prefixlen"],
                a["scope"],
                a["label"],
                tuple(a["flags"]),
            )
            for lk in ns["links"]
            for a in lk["addresses"]
        )
        assert got == want
        flags.update(f for lk in ns["links"] for a in lk["addresses"] for f in a["flags"])
    assert {"nodad", "dadfailed", "tentative"} <= flags


def _cidr(dst: str, family: int) -> str:
    if dst == "default":
        return "0.0.0.0/0" if family == 4 else "::/0"
    if "/" not in dst:
        return f"{dst}/{32 if family == 4 else 128}"
    return dst


def _table(name: str | None) -> int | None:
    if name is None:
        return None
    return TABLES.get(name) or int(name)


@pytest.mark.lab
def test_routes_equal_ip_route_table_all(topo: Any) -> None:
    """Routes of every table, both families, equal `ip -d -j route show table all`."""
    kinds = set()
    for _name, view, ns in _namespaces(topo):
        index = _ifindex(view)
        want = []
        for family, key in ((4, "route4"), (6, "route6")):
            for r in view[key]:
                hops = tuple(
                    (h.get("gateway"), index.get(h.get("dev", "")), h.get("weight", 1))
                    for h in r.get("nexthops", ())
                )
                want.append(
                    (
                        family,
                        _table(r.get("table", "main")),
                        r.get("type", "unicast"),
                        _cidr(r["dst"], family),
                        r.get("gateway"),
                        index.get(r.get("dev", "")),
                        r.get("prefsrc"),
                        r.get("metric"),
                        r["scope"],
                        r["protocol"],
                        tuple(r.get("flags", ())),
                        hops,
                    )
                )
        got = [
            (
                r["family"],
                r["table"],
                r["type"],
                r["dst"],
                r["gateway"],
                r["dev"],
                r["prefsrc"],
                r["metric"],
                r["scope"],
                r["protocol"],
                tuple(r["flags"]),
                tuple((h["gateway"], h["dev"], h["weight"]) for h in r["multipath"]),
            )
            for r in ns["routes"]
        ]
        assert sorted(got, key=repr) == sorted(want, key=repr)
        kinds |= {r["type"] for r in ns["routes"]}
    assert {"unicast", "local", "broadcast", "blackhole", "unreachable", "prohibit"} <= kinds


def _ip_prefix(rule: Any, key: str, family: int) -> str | None:
    value = rule.get(key)
    if value is None or value == "all":
        return None
    return f"{value}/{rule.get(key + 'len', 32 if family == 4 else 128)}"


@pytest.mark.lab
def test_rules_equal_ip_rule(topo: Any) -> None:
    """Policy rules (priority, selectors, fwmark/mask, invert, action, table) equal `ip -j rule`."""
    for _name, view, ns in _namespaces(topo):
        want = []
        for family, key in ((4, "rule4"), (6, "rule6")):
            for r in view[key]:
                mark = int(r["fwmark"], 16) if "fwmark" in r else None
                mask = (
                    int(r["fwmask"], 16)
                    if "fwmask" in r
                    else (0xFFFFFFFF if mark is not None else None)
                )
                action = "goto" if "goto" in r else r.get("action", "lookup")
                want.append(
                    (
                        family,
                        r["priority"],
                        action,
                        _table(r.get("table")),
                        _ip_prefix(r, "src", family),
                        _ip_prefix(r, "dst", family),
                        mark,
                        mask,
                        r.get("iif"),
                        r.get("oif"),
                        "not" in r,
                        r.get("goto"),
                        _ip_rule_options(r),
                    )
                )
        got = [
            (
                r["family"],
                r["priority"],
                r["action"],
                r["table"],
                r["src"],
                r["dst"],
                r["fwmark"],
                r["fwmask"],
                r["iif"],
                r["oif"],
                r["invert"],
                r["goto"],
                _our_rule_options(r),
            )
            for r in ns["rules"]
        ]
        assert sorted(got, key=repr) == sorted(want, key=repr)
    root_rules = _namespaces(topo)[0][2]["rules"]
    assert any(r["fwmark"] == 1 and r["fwmask"] == 0xFF and r["invert"] for r in root_rules)
    pod_rules = _namespaces(topo)[3][2]["rules"]
    assert any(r["suppress_prefixlength"] == 0 for r in pod_rules)
    assert any(r["dport"] == [53, 53] and r["ipproto"] == 17 for r in pod_rules)
    assert {(3 << 16) | 7, 5} <= {r["realms"] for r in pod_rules}


def _span(rule: Any, key: str) -> tuple[int, int] | None:
    if key in rule:
        return (rule[key], rule[key])
    if f"{key}_start" in rule:
        return (rule[f"{key}_start"], rule[f"{key}_end"])
    return None


_IPPROTO = {"tcp": 6, "udp": 17, "ipv6-icmp": 58}


def _ip_rule_options(r: Any) -> tuple[Any, ...]:
    """The selectors beyond addresses, marks and devices, as `ip -j rule` spells them."""
    return (
        int(r["tos"], 16) if "tos" in r else 0,
        _IPPROTO[r["ipproto"]] if "ipproto" in r else None,
        _span(r, "sport"),
        _span(r, "dport"),
        (r["uid_start"], r["uid_end"]) if "uid_start" in r else None,
        r.get("tun_id"),
        "l3mdev" in r,
        r.get("suppress_prefixlen"),
        _group(r["suppress_ifgroup"]) if "suppress_ifgroup" in r else None,
        _realms(r),
    )


def _group(name: str) -> int:
    """A device group as `ip -j` names it: "default" is group 0."""
    return 0 if name == "default" else int(name)


def _realms(r: Any) -> int | None:
    """`ip -j rule`'s flow_from/flow_to as the kernel's FRA_FLOW (from << 16 | to)."""
    if "flow_to" not in r:
        return None
    return int(r.get("flow_from", "0")) << 16 | int(r["flow_to"])


def _our_rule_options(r: Any) -> tuple[Any, ...]:
    """The same selectors from podpath's scan."""
    return (
        r["tos"],
        r["ipproto"],
        tuple(r["sport"]) or None,
        tuple(r["dport"]) or None,
        tuple(r["uidrange"]) or None,
        r["tun_id"],
        r["l3mdev"],
        r["suppress_prefixlength"],
        r["suppress_ifgroup"],
        r["realms"],
    )


@pytest.mark.lab
def test_rules_read_as_ip_rule_prints_them(topo: Any) -> None:
    """describe_rule of every scanned rule is the line `ip rule show` prints, selectors and proto included."""
    seen = 0
    for _name, view, ns in _namespaces(topo):
        for family, key in ((4, "rule4text"), (6, "rule6text")):
            want = [line.replace(":\t", ": ").strip() for line in view[key].splitlines()]
            rules = sorted(
                (Rule(**{**r, **_tuples(r)}) for r in ns["rules"] if r["family"] == family),
                key=lambda r: r.priority,
            )
            assert [describe_rule(r) for r in rules] == want
            seen += len(rules)
    assert seen > 10


def _tuples(r: Any) -> dict[str, Any]:
    return {k: tuple(r[k]) for k in ("sport", "dport", "uidrange")}


@pytest.mark.lab
def test_neighbours_equal_ip_neigh(topo: Any) -> None:
    """Neighbours equal `ip -j neigh` (which hides NOARP and NONE entries)."""
    seen_static = False
    for _name, view, ns in _namespaces(topo):
        index = _ifindex(view)
        want = sorted(
            (index[n["dev"]], n["dst"], n.get("lladdr"), tuple(n["state"])) for n in view["neigh"]
        )
        got = sorted(
            (n["ifindex"], n["dst"], n["lladdr"], tuple(n["state"]))
            for n in ns["neighbours"]
            if set(n["state"]) - {"NOARP", "NONE"} or {"proxy", "extern_learn"} & set(n["flags"])
        )
        assert got == want
        seen_static |= ("02:00:00:00:00:77", ("PERMANENT",)) in [(g[2], g[3]) for g in got]
    assert seen_static


@pytest.mark.lab
def test_fdb_equals_bridge_fdb(topo: Any) -> None:
    """Bridge and VXLAN FDB entries equal `bridge -j fdb`, remote VTEPs included."""
    for _name, view, ns in _namespaces(topo):
        index = _ifindex(view)
        want = sorted(
            (
                index[e["ifname"]],
                e["mac"],
                index.get(e.get("master", "")),
                e.get("vlan"),
                e.get("dst"),
                e.get("state", ""),
                tuple(sorted(e["flags"])),
            )
            for e in view["fdb"]
        )
        got = sorted(
            (
                e["ifindex"],
                e["mac"],
                e["master"],
                e["vlan"],
                e["dst"],
                e["state"][0] if e["state"] else "",
                tuple(sorted(set(e["flags"]) - {"use"})),
            )
            for e in ns["fdb"]
        )
        assert got == want
    root = {(e["mac"], e["dst"]) for e in _namespaces(topo)[0][2]["fdb"]}
    assert {("00:00:00:00:00:00", "192.168.77.2"), ("0a:00:00:00:00:01", "192.168.77.3")} <= root


@pytest.mark.lab
def test_netnsid_as_seen_from_root_equals_list_id(topo: Any) -> None:
    """Each namespace's netnsid equals `ip netns list-id` in the root."""
    ids = {_name_to_inode(topo, e["name"]): e["nsid"] for e in topo["tools"]["None"]["nsids"]}
    for ns in topo["scan"]:
        assert ns["netnsid"] == ids.get(ns["inode"])
    assert len(ids) == 3


@pytest.mark.lab
def test_deleted_or_replaced_namespace_is_a_gap_never_another_namespace() -> None:
    """A deleted netns and a name now leading elsewhere are 'vanished'; the other is never read."""
    out = run_driver("replaced")
    gone, swap, keep = (t["inode"] for t in out["targets"][1:])
    gaps = {g["subject"].split()[1]: g for g in out["gaps"]}
    assert gaps[str(gone)]["kind"] == "vanished"
    assert gaps[str(swap)]["kind"] == "vanished"
    scanned = {ns["inode"] for ns in out["scan"]}
    assert keep in scanned
    assert out["other"] not in scanned and gone not in scanned and swap not in scanned


@pytest.mark.lab
def test_churning_namespaces_scan_without_exceptions() -> None:
    """40 scans while namespaces are deleted and re-created: every target is read or a gap."""
    out = run_driver("churn")
    for run in out["runs"]:
        assert set(run["scanned"]) <= set(run["targets"])
        assert {g["kind"] for g in run["gaps"]} <= {"vanished"}
        assert len(run["scanned"]) + len(run["gaps"]) == len(run["targets"])


@pytest.mark.lab
def test_interrupted_dumps_are_detected_and_labelled() -> None:
    """Under address churn the kernel's NLM_F_DUMP_INTR is seen; scans label it, never raise."""
    out = run_driver("addr-churn")
    assert out["single_flagged"] > 0
    for scan in out["scans"]:
        assert scan["n"] == 2
        assert {g["kind"] for g in scan["gaps"]} <= {"inconsistent"}
        for g in scan["gaps"]:
            assert "addresses" in g["reason"] or "routes" in g["reason"] or "links" in g["reason"]


# --- decoder units on hand-made messages -------------------------------------------------


def _nla(atype: int, payload: bytes) -> bytes:
    raw = struct.pack("=HH", 4 + len(payload), atype) + payload
    return raw + b"\0" * (-len(raw) % 4)


def _msg(mtype: int, body: bytes, flags: int = 2) -> bytes:
    return struct.pack("=IHHII", 16 + len(body), mtype, flags, 1, 0) + body


def test_malformed_dump_is_a_gap_and_the_other_tables_still_read() -> None:
    """A links dump with an overrunning attribute: a gap naming it, no half-read links."""

    def script(n: int, req: Request) -> list[bytes]:
        header = struct.pack("=BxHiII", 0, 1, 5, 0, 0)
        body = header + _nla(3, b"eth0\0")
        if n == 0:  # the first links dump: the name attribute claims more bytes than it has
            body = header + struct.pack("=HH", 64, 3) + b"eth0"
        if req.msg_type != 18:
            return [done(req.seq)]
        return [msg(16, body, seq=req.seq), done(req.seq)]

    st = os.stat("/proc/self/ns/net")
    target = NetnsTarget(st.st_ino, st.st_dev, "/proc/self/ns/net")
    opened = _Opened(target, -1, RouteSocket(transport=ScriptedKernel(script)))
    gaps: list[Gap] = []
    assert _read(opened, "links", 18, 0, partial(decode_links, netns=1), gaps) == []
    assert [(g.kind, g.reason.split(":")[0]) for g in gaps] == [("error", "links dump failed")]
    assert "malformed netlink message" in gaps[0].reason
    assert [
        lk.name for lk in _read(opened, "links", 18, 0, partial(decode_links, netns=1), [])
    ] == ["eth0"]


def test_link_without_linkinfo_has_no_kind_and_keeps_raw_name_bytes() -> None:
    """No IFLA_LINKINFO -> kind None; a non-UTF-8 name survives via surrogateescape."""
    body = (
        struct.pack("=BxHiII", 0, 1, 9, 0x11043, 0)
        + _nla(3, b"\xffx\0")
        + _nla(4, struct.pack("=I", 1400))
    )
    link = decode_links([_msg(16, body)], 7)[0]
    assert link.kind is None and link.mtu == 1400 and link.netns == 7
    assert link.name.encode("utf-8", "surrogateescape") == b"\xffx"
    assert link.flags == ("BROADCAST", "MULTICAST", "UP", "LOWER_UP")  # RUNNING set: no NO-CARRIER


def test_default_route_and_multipath_weights() -> None:
    """A /0 route prints as 0.0.0.0/0; rtnh_hops+1 is the weight; onlink comes from rtm_flags."""
    hop = struct.pack("=HBBi", 16, 0, 2, 4) + _nla(5, bytes([10, 0, 0, 9]))
    body = struct.pack("=BBBBBBBBI", 2, 0, 0, 0, 254, 3, 0, 1, 0x4) + _nla(9, hop)
    route = decode_routes([_msg(24, body)], 1)[0]
    assert route.dst == "0.0.0.0/0" and route.flags == ("onlink",)
    assert route.multipath[0].gateway == "10.0.0.9" and route.multipath[0].weight == 3
    assert (route.table, route.protocol, route.scope, route.type) == (
        254,
        "boot",
        "global",
        "unicast",
    )


def test_fdb_states_follow_bridge_names() -> None:
    """NUD_PERMANENT -> permanent, NUD_NOARP -> static, reachable -> dynamic (no state)."""

    def entry(state: int) -> bytes:
        body = struct.pack("=BxxxiHBB", 7, 3, state, 0x2, 0) + _nla(2, bytes(6))
        return _msg(28, body)

    states = [e.state for e in decode_fdb([entry(0x80) + entry(0x40) + entry(0x02)], 1)]
    assert states == [("permanent",), ("static",), ()]


# --- scanner behaviour that needs no namespace of its own -----------------------------------


def test_cancelled_scan_reads_nothing_and_says_so() -> None:
    """A cancel Event set before the scan: no namespace is read, one gap explains why."""
    cancel = threading.Event()
    cancel.set()
    st = os.stat("/proc/self/ns/net")
    target = NetnsTarget(st.st_ino, st.st_dev, "/proc/self/ns/net")
    scanned, gaps = scan_network_namespaces([target], st.st_ino, cancel)
    assert scanned == ()
    assert [g.subject for g in gaps] == ["netns scan"] and "cancelled" in gaps[0].reason


def test_missing_path_and_wrong_inode_are_vanished_without_entering() -> None:
    """ENOENT and a (dev, inode) that differs from the listed one both give 'vanished'."""
    st = os.stat("/proc/self/ns/net")
    missing = NetnsTarget(1, st.st_dev, "/nonexistent/ppnl-ns")
    other = NetnsTarget(st.st_ino + 1, st.st_dev, "/proc/self/ns/net")
    scanned, gaps = scan_network_namespaces([missing, other], 0)
    assert scanned == ()
    assert [g.kind for g in gaps] == ["vanished", "vanished"]
    assert "another namespace" in gaps[1].reason
