"""Interface counters in `ls links -s`, against `ip -s -j link` read just before and after."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from podpath.lab import Lab

pytestmark = pytest.mark.lab

FIELDS = ("bytes", "packets", "errors", "dropped")


def _kernel(lab: Lab) -> dict[str, dict[str, int]]:
    links = json.loads(lab.exec("node1", ["ip", "-s", "-j", "link", "show"]).stdout)
    return {
        link["ifname"]: {
            f"{way}_{field}": link["stats64"][way][field]
            for way in ("rx", "tx")
            for field in FIELDS
        }
        for link in links
    }


def test_ls_links_stats_lie_between_two_ip_s_link_reads(shared_lab: Lab, run_podpath: Any) -> None:
    """Every root link's RX/TX bytes, packets, errors, drops in `ls links -s` (text and JSON) are
    between `ip -s -j link` read before and after: counters only grow."""
    src, dst = shared_lab.pods_on("node1")[0], shared_lab.pods_on("node2")[0]
    assert shared_lab.probe(src.ref, dst.ip, 80).ok  # traffic, so the counters are not all 0
    before = _kernel(shared_lab)
    text = run_podpath(shared_lab, "node1", "ls", "links", "-s")
    done = run_podpath(shared_lab, "node1", "ls", "links", "-s", "--json")
    after = _kernel(shared_lab)
    assert text.returncode == 0 and done.returncode == 0, text.stderr + done.stderr
    rows = [r for r in json.loads(done.stdout)["links"] if r["netns_label"] == "root"]
    assert {r["name"] for r in rows} == set(before)
    lines = [line.split() for line in text.stdout.splitlines()]
    header = lines[0]
    assert header[4:] == [
        f"{way}-{label}" for way in ("RX", "TX") for label in ("BYTES", "PKTS", "ERR", "DROP")
    ]
    shown = {line[2]: line for line in lines[1:] if line[0] == "root"}
    moving = 0
    for row in rows:
        name = row["name"]
        for i, key in enumerate(f"{w}_{f}" for w in ("rx", "tx") for f in FIELDS):
            assert before[name][key] <= row["stats"][key] <= after[name][key], (name, key)
            assert before[name][key] <= int(shown[name][4 + i]) <= after[name][key], (name, key)
        moving += row["stats"]["rx_packets"] > 0
    assert moving >= 3  # eth0, the bridge, the veths carried the probe


def test_trace_hops_carry_the_crossed_devices_counters(shared_lab: Lab, run_podpath: Any) -> None:
    """A live trace's veth hops name the host ends' counters, between two `ip -s -j link` reads."""
    src, dst = shared_lab.pods_on("node1")[0], shared_lab.pods_on("node1")[1]
    assert shared_lab.probe(src.ref, dst.ip, 80).ok
    before = _kernel(shared_lab)
    done = run_podpath(
        shared_lab, "node1", "trace", "--from", src.ref, "--to", f"{dst.ip}:80", "--json"
    )
    after = _kernel(shared_lab)
    assert done.returncode == 0, done.stderr
    (branch,) = json.loads(done.stdout)["branches"]
    seen = 0
    for hop in branch["hops"]:
        for name, c in hop.get("counters", {}).items():
            if not name.startswith("veth"):  # pods' eth0s are not in the root's `ip link`
                continue
            key = f"{c['direction']}_"
            for field in FIELDS:
                assert before[name][key + field] <= c[field] <= after[name][key + field], (
                    name,
                    field,
                )
            assert f"{name} {c['direction']} {c['packets']} pkts" in " ".join(hop["details"])
            seen += 1
    assert seen >= 2  # into the bridge from src, out of it to dst
