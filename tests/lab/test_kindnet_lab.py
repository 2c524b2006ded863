"""kindnet's pod database on a real lab node: rows for its real pods, compared with CRI and ip.

The database is written inside the node (its /var/lib/cni-kindnet is private) with
cni-kindnet's own schema and statements (tests/kindnet_db_writer.py), holding what
cni-kindnet would have recorded for the node's pods: their CRI metadata, netns and IP,
and the host veth and MTU `ip -j link` shows. One more row is for a network namespace
made by hand that no runtime knows, and one for a namespace that is gone.
"""

from __future__ import annotations

import ipaddress
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from podpath.lab import Lab

pytestmark = pytest.mark.lab

WRITER = str(Path(__file__).parents[1] / "kindnet_db_writer.py")
DB = "/var/lib/cni-kindnet/cni.db"
ONLY_ID = "a" * 64
STALE_ID = "b" * 64
ONLY_NETNS = "kindnet-only"


def _ip_j(lab: Lab, node: str, *args: str) -> list[dict[str, Any]]:
    out = lab.exec(node, ["ip", "-j", *args])
    rows: list[dict[str, Any]] = json.loads(out.stdout)
    return rows


def _cri_rows(lab: Lab, node: str, gateway: str) -> list[dict[str, Any]]:
    """A cni-kindnet row per CRI sandbox: CRI's metadata and netns, ip's host veth and MTU."""
    rows = []
    with lab.cri(node) as cri:
        for item in cri.call("ListPodSandbox")["items"]:
            resp = cri.call("PodSandboxStatus", {"pod_sandbox_id": item["id"], "verbose": True})
            st, info = resp["status"], json.loads(resp["info"]["info"])
            netns = next(
                n["path"]
                for n in info["runtimeSpec"]["linux"]["namespaces"]
                if n["type"] == "network"
            )
            (eth0,) = _ip_j(lab, node, "-n", netns.rsplit("/", 1)[-1], "link", "show", "eth0")
            (peer,) = [
                link for link in _ip_j(lab, node, "link") if link["ifindex"] == eth0["link_index"]
            ]
            rows.append(
                {
                    "container_id": st["id"],
                    "name": st["metadata"]["name"],
                    "namespace": st["metadata"]["namespace"],
                    "uid": st["metadata"]["uid"],
                    "netns": netns,
                    "interface_name": peer["ifname"],
                    "mtu": peer["mtu"],
                    "v4": st["network"]["ip"],
                    "gw4": gateway,
                }
            )
    return rows


def _make_only_pod(lab: Lab, node: str, v4: str, v6: str) -> str:
    """A pod network namespace with a veth, as cni-kindnet builds one, that no runtime knows."""
    for argv in (
        ["ip", "netns", "add", ONLY_NETNS],
        ["ip", "link", "add", "knetdeadbeef", "type", "veth", "peer", "eth0", "netns", ONLY_NETNS],
        ["ip", "-n", ONLY_NETNS, "addr", "add", f"{v4}/32", "dev", "eth0"],
        ["ip", "-n", ONLY_NETNS, "addr", "add", f"{v6}/128", "dev", "eth0", "nodad"],
        ["ip", "-n", ONLY_NETNS, "link", "set", "eth0", "up"],
        ["ip", "link", "set", "knetdeadbeef", "up"],
    ):
        lab.exec(node, argv)
    return f"/run/netns/{ONLY_NETNS}"


def _run_with_db(
    lab: Lab, node: str, rows: list[dict[str, Any]], *args: str, keep_open: bool
) -> dict[str, Any]:
    """Write the database in the node, run podpath ARGS there, with the directory's listings."""
    lab.exec(node, ["rm", "-f", DB, f"{DB}-wal", f"{DB}-shm"])
    argv = [sys.executable, WRITER, DB, *(["--keep-open"] if keep_open else [])]
    argv += ["--run", sys.executable, "-m", "podpath", *args]
    done = lab.exec(node, argv, input=json.dumps(rows), check=False, timeout=180)
    assert done.returncode == 0, done.stderr
    report: dict[str, Any] = json.loads(done.stdout)
    return report


def test_kindnet_rows_merge_into_the_nodes_real_pods(make_lab: Any) -> None:
    """CRI pods gain kindnet's host veth, gateway and MTU; pods only kindnet knows are listed.

    Checked with the database closed and with a writer holding it open (WAL), and
    the database's directory is unchanged by podpath's read both times.
    """
    lab: Lab = make_lab(nodes=1, pods=2, services=2)
    node = lab.nodes[0]
    net = ipaddress.ip_network(node.pod_cidr)
    gateway = str(net.network_address)  # ipInsert: the pod range, masked
    rows = _cri_rows(lab, node.name, gateway)
    assert len(rows) == 2
    only_v4, only_v6 = str(net.network_address + 250), "fd00:10:244::fa"
    only_netns = _make_only_pod(lab, node.name, only_v4, only_v6)
    only = {
        "container_id": ONLY_ID,
        "name": "only-kindnet",
        "namespace": "default",
        "uid": "6b1f7e8a-5c2d-4e3f-9a0b-1c2d3e4f5a6b",
        "netns": only_netns,
        "interface_name": "knetdeadbeef",
        "mtu": 1500,
        "v4": only_v4,
        "gw4": gateway,
        "v6": only_v6,
        "gw6": "fd00:10:244::",
    }
    stale = {**only, "container_id": STALE_ID, "name": "gone", "netns": "/run/netns/cni-gone"}
    stale.update(v4=str(net.network_address + 251), v6=None, interface_name="knet00000000")
    for keep_open in (False, True):
        report = _run_with_db(
            lab, node.name, [*rows, only, stale], "ls", "pods", "--json", keep_open=keep_open
        )
        # Read-only: nothing made, nothing written beside the database, writer open or not.
        assert report["after"] == report["before"]
        assert ("cni.db-wal" in report["before"]) == keep_open
        got = {p["sandbox_id"]: p for p in json.loads(report["stdout"])["pods"]}
        assert set(got) == {r["container_id"] for r in rows} | {ONLY_ID, STALE_ID}
        for row in rows:
            pod = got[row["container_id"]]
            assert (pod["source"], pod["also_from"], pod["runtime"]) == (
                "cri",
                ["kindnet-db"],
                "containerd",
            )
            assert (pod["namespace"], pod["name"], pod["uid"]) == (
                row["namespace"],
                row["name"],
                row["uid"],
            )
            assert pod["ips"] == [row["v4"]] and pod["netns"]["path"] == row["netns"].replace(
                "/var/run/", "/run/"
            )
            assert (pod["host_interface"], pod["mtu"], pod["gateways"]) == (
                row["interface_name"],
                row["mtu"],
                [gateway],
            )
            # What podpath itself resolved from the pod's eth0 is the veth kindnet recorded.
            assert [i["peer"]["name"] for i in pod["interfaces"]] == [row["interface_name"]]
        pod = got[ONLY_ID]
        assert (pod["source"], pod["also_from"], pod["runtime"]) == ("kindnet-db", [], "unknown")
        assert (pod["namespace"], pod["name"], pod["pause_pid"]) == (
            "default",
            "only-kindnet",
            None,
        )
        assert pod["ips"] == [only_v4, only_v6] and pod["netns"]["path"] == only_netns
        inode = lab.exec(node.name, ["stat", "-L", "-c", "%i", only_netns]).stdout.strip()
        assert pod["netns"]["inode"] == int(inode)
        (eth0,) = pod["interfaces"]
        (seen,) = _ip_j(lab, node.name, "-n", ONLY_NETNS, "addr", "show", "eth0")
        assert sorted(eth0["addresses"]) == sorted(
            f"{a['local']}/{a['prefixlen']}" for a in seen["addr_info"]
        )
        assert eth0["peer"]["name"] == "knetdeadbeef"
        assert got[STALE_ID]["netns"]["inode"] is None
        assert "a stale row still holding" in report["stderr"]
    # The table says where each pod was found.
    report = _run_with_db(lab, node.name, [*rows, only, stale], "ls", "pods", keep_open=False)
    header, *lines = report["stdout"].splitlines()
    assert header.split()[-1] == "SOURCE"
    assert sorted(line.split()[-1] for line in lines if line.strip()) == [
        "cri+kindnet-db",
        "cri+kindnet-db",
        "kindnet-db",
        "kindnet-db",
    ]
