"""`podpath ls links` VXLAN columns and bridge port options on a flannel VXLAN lab node,
against `ip -d -j link`."""

from __future__ import annotations

import json
from typing import Any

import pytest

from podpath.lab import Lab

pytestmark = pytest.mark.lab

VXLAN_HEADERS = ["VNI", "LOCAL", "REMOTE", "DSTPORT", "UNDERLAY", "OPTIONS"]


def _json(lab: Lab, node: str, *argv: str) -> Any:
    return json.loads(lab.exec(node, list(argv)).stdout)


def _ip_vxlans(lab: Lab, node: str) -> dict[str, dict[str, Any]]:
    """Each VXLAN device of the node's root namespace as ip sees it, remotes from `bridge fdb`."""
    links = _json(lab, node, "ip", "-d", "-j", "link", "show")
    out = {}
    for lk in links:
        if lk.get("linkinfo", {}).get("info_kind") != "vxlan":
            continue
        data = lk["linkinfo"]["info_data"]
        fdb = _json(lab, node, "bridge", "-j", "fdb", "show", "dev", lk["ifname"])
        words = ["nolearning"] if not data["learning"] else []
        words += [w for w in ("proxy", "l2miss", "l3miss") if data.get(w)]
        out[lk["ifname"]] = {
            "VNI": str(data["id"]),
            "LOCAL": data.get("local") or data.get("local6") or "-",
            "REMOTE": ",".join(dict.fromkeys(e["dst"] for e in fdb if e.get("dst"))) or "-",
            "DSTPORT": str(data["port"]),
            "UNDERLAY": data["link"],  # ip names the underlay device
            "OPTIONS": ",".join(words) or "-",
        }
    return out


def test_vxlan_columns_equal_ip_d_link(shared_lab: Lab, run_podpath: Any) -> None:
    """flannel.1's VNI, local, remotes, port, underlay and nolearning read as ip and bridge say."""
    for node in shared_lab.nodes:
        want = _ip_vxlans(shared_lab, node.name)
        assert "flannel.1" in want, want  # the lab's flannel VTEP is there to compare
        done = run_podpath(shared_lab, node.name, "ls", "links")
        assert done.returncode == 0, done.stderr
        header, *lines = (line.split() for line in done.stdout.splitlines())
        assert header[-len(VXLAN_HEADERS) :] == VXLAN_HEADERS
        shown = {}
        for line in lines:
            if line[0] == "root" and line[2] in want:
                shown[line[2]] = dict(zip(VXLAN_HEADERS, line[-len(VXLAN_HEADERS) :], strict=True))
        assert shown == want, node.name
        # The other node's underlay address is flannel.1's remote VTEP.
        others = {n.address for n in shared_lab.nodes if n.name != node.name}
        assert set(shown["flannel.1"]["REMOTE"].split(",")) == others


def test_vxlan_json_equals_ip_d_link(shared_lab: Lab, run_podpath: Any) -> None:
    """ls links --json: each VXLAN device's fields are ip -d -j link's info_data."""
    node = shared_lab.nodes[0].name
    links = _json(shared_lab, node, "ip", "-d", "-j", "link", "show")
    done = run_podpath(shared_lab, node, "ls", "links", "--json")
    assert done.returncode == 0, done.stderr
    rows = {r["name"]: r for r in json.loads(done.stdout)["links"] if r["netns_label"] == "root"}
    checked = 0
    for lk in links:
        if lk.get("linkinfo", {}).get("info_kind") != "vxlan":
            continue
        data = lk["linkinfo"]["info_data"]
        mine = rows[lk["ifname"]]
        assert mine["vxlan"]["vni"] == data["id"]
        assert mine["vxlan"]["port"] == data["port"]
        assert mine["vxlan"]["local"] == data.get("local")
        assert mine["vxlan"]["learning"] == data["learning"]
        # ip names the underlay in info_data; the snapshot keeps its ifindex, and its name.
        underlay = next(x["ifindex"] for x in links if x["ifname"] == data["link"])
        assert (mine["vxlan"]["dev"], mine["vxlan_dev_name"]) == (underlay, data["link"])
        checked += 1
    assert checked >= 1


def test_bridge_port_options_equal_ip_d_link(shared_lab: Lab, run_podpath: Any) -> None:
    """Each bridge port's OPTIONS: hairpin and isolated when on, nolearning when learning is
    off, its STP state when not forwarding, as ip's info_slave_data says (the lab's bridge
    CNI turns hairpin mode on); each bridge's: its own nf_call_iptables and
    nf_call_ip6tables when on (info_data)."""
    node = shared_lab.nodes[0].name
    want = {}
    for lk in _json(shared_lab, node, "ip", "-d", "-j", "link", "show"):
        info = lk.get("linkinfo", {})
        if info.get("info_kind") == "bridge":
            calls = [w for w in ("nf_call_iptables", "nf_call_ip6tables") if info["info_data"][w]]
            want[lk["ifname"]] = ",".join(calls) or "-"
        if info.get("info_slave_kind") != "bridge":
            continue
        port = info["info_slave_data"]
        words = [w for w in ("hairpin", "isolated") if port.get(w)]
        words += ["nolearning"] if not port["learning"] else []
        words += [f"state:{port['state']}"] if port["state"] != "forwarding" else []
        want[lk["ifname"]] = ",".join(words) or "-"
    assert want and "hairpin" in want.values(), want
    done = run_podpath(shared_lab, node, "ls", "links")
    assert done.returncode == 0, done.stderr
    shown = {
        line[2].split("@")[0]: line[-1]
        for line in (row.split() for row in done.stdout.splitlines()[1:])
        if line[0] == "root" and line[2].split("@")[0] in want
    }
    assert shown == want
