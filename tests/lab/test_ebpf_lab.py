"""A real eBPF classifier on a pod's host veth: detected, named, and the trace stops there.

The lab compiles a pass-through program (llc) named like Cilium's from-container and
attaches it as Cilium does (clsact ingress, direct-action, on the host end of the pod's
veth). podpath cannot run it: the trace must end at it, naming the very program `tc`
reports, while real traffic still flows (the program passes everything).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest
from topology_proof import RUN_ID, module_lab, ordered, snapshots, web_pods

from podpath.analysis.dataplane import detect
from podpath.lab.bpf import MOUNT_BPFFS, compile_program, llc
from podpath.lab.node import node_path
from podpath.trace.engine import trace
from podpath.trace.probe import Probe

if TYPE_CHECKING:
    from podpath.lab import Lab

pytestmark = pytest.mark.lab


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    """One Calico node whose first web pod's host veth carries a real eBPF classifier."""
    from podpath.lab import LabSpec

    if llc() is None:
        pytest.fail("llc (Debian's llvm) is needed to compile the eBPF program")
    spec = LabSpec(f"{RUN_ID}-ebpf", nodes=1, pods=3, services=2, cni="calico")
    with module_lab(spec) as built:
        pod = web_pods(built, "node1")[0]
        obj = compile_program(
            node_path(built.node("node1").init_pid, "/run/bpf_lxc.o"),
            "cil_from_container",
            "from-container",
        )
        del obj
        built.exec("node1", MOUNT_BPFFS)
        built.exec("node1", ["tc", "qdisc", "add", "dev", pod.host_veth, "clsact"])
        tc_filter = ["tc", "filter", "add", "dev", pod.host_veth, "ingress", "bpf", "da"]
        built.exec("node1", [*tc_filter, "obj", "/run/bpf_lxc.o", "sec", "from-container"])
        yield built


def test_program_is_detected_and_named_like_tc_says(lab: Lab) -> None:
    """The snapshot holds the classifier with the id, tag and name `tc -j filter show` prints."""
    pod = web_pods(lab, "node1")[0]
    index = snapshots(lab)["node1"]
    shown = json.loads(
        lab.exec("node1", ["tc", "-j", "filter", "show", "dev", pod.host_veth, "ingress"]).stdout
    )
    prog = next(f["options"]["prog"] for f in shown if "options" in f)
    plane = detect(index)
    assert plane.ebpf
    (found,) = plane.programs
    assert found.interface == pod.host_veth and found.hook == "tc ingress"
    assert found.program is not None
    assert (found.program.id, found.program.tag, found.program.name) == (
        prog["id"],
        prog["tag"],
        prog["name"],
    )


def test_trace_from_the_pod_stops_at_the_program(lab: Lab) -> None:
    """From that pod the trace ends at an ebpf hop naming the program; real traffic still flows."""
    src, dst = web_pods(lab, "node1")[:2]
    index = snapshots(lab)
    result = trace(ordered(index), Probe(src.ref, f"{dst.ip}:80"))
    (branch,) = result.branches
    assert branch.verdict == "uncertain" and branch.outcome is None
    hop = branch.hops[-1]
    assert hop.kind == "ebpf" and hop.data["dev"] == src.host_veth
    assert hop.data["program_name"] == "cil_from_contai"
    assert hop.data["section"] == "bpf_lxc.o:[from-container]"
    assert lab.probe(src.ref, dst.ip, 80).ok


def test_trace_from_another_pod_is_not_affected(lab: Lab) -> None:
    """A pod without a program on its veth is traced as before, to delivery."""
    src, dst = web_pods(lab, "node1")[1], web_pods(lab, "node1")[0]
    result = trace(ordered(snapshots(lab)), Probe(src.ref, f"{dst.ip}:80"))
    (branch,) = result.branches
    # The reverse direction does not meet the ingress program: it is on the other veth's ingress.
    assert branch.verdict == "delivered", branch.reason


def _ls_live(lab: Lab, kind: str) -> list[dict[str, Any]]:
    """`podpath ls KIND --json` run by the real CLI on the live node."""
    done = lab.exec("node1", [sys.executable, "-m", "podpath", "ls", kind, "--json"], timeout=180)
    rows: list[dict[str, Any]] = json.loads(done.stdout)[kind]
    return rows


EGRESS_FILTER = "egress pref 7 bpf da obj /run/bpf_lxc.o sec from-container"


@pytest.fixture
def egress_program(lab: Lab) -> Iterator[str]:
    """A second classifier, on the egress of the same veth (the direction back into the pod)."""
    pod = web_pods(lab, "node1")[0]
    lab.exec(
        "node1",
        ["tc", "filter", "add", "dev", pod.host_veth, *EGRESS_FILTER.split()],
    )
    try:
        yield pod.host_veth
    finally:
        lab.exec(
            "node1",
            ["tc", "filter", "del", "dev", pod.host_veth, "egress", "pref", "7"],
            check=False,
        )


def _tc_json(lab: Lab, *args: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = json.loads(lab.exec("node1", ["tc", "-j", *args]).stdout)
    return out


def test_ls_tc_equals_tc_qdisc_and_filter_show(lab: Lab, egress_program: str) -> None:
    """`ls tc` lists the node's qdiscs as `tc -j qdisc show`, and each direction's filter with
    the program id, name and tag `tc -j filter show dev X ingress|egress` prints."""
    rows = [r for r in _ls_live(lab, "tc") if r["netns_label"] == "root"]
    qdiscs = sorted(
        (r["dev_name"], r["kind"], r["handle"], r["parent"]) for r in rows if r["object"] == "qdisc"
    )
    want = sorted(
        (
            q["dev"],
            q["kind"],
            q["handle"],
            "root" if q.get("root") else ("ingress" if q["parent"] == "ffff:fff1" else q["parent"]),
        )
        for q in _tc_json(lab, "qdisc", "show")
    )
    assert qdiscs == want
    dev = egress_program
    for hook in ("ingress", "egress"):
        shown = [f for f in _tc_json(lab, "filter", "show", "dev", dev, hook) if "options" in f]
        mine = [
            r
            for r in rows
            if r["object"] == "filter" and r["dev_name"] == dev and r["hook"] == hook
        ]
        assert [
            (r["kind"], r["pref"], r["protocol"], r["handle"], r["direct_action"]) for r in mine
        ] == [
            (
                f["kind"],
                f["pref"],
                f["protocol"],
                f["options"]["handle"],
                bool(f["options"].get("direct-action")),
            )
            for f in shown
        ]
        assert [(r["program"]["id"], r["program"]["name"], r["program"]["tag"]) for r in mine] == [
            (f["options"]["prog"]["id"], f["options"]["prog"]["name"], f["options"]["prog"]["tag"])
            for f in shown
        ]
        assert len(mine) == 1


_IPV4_KEYS = (
    "forwarding",
    "rp_filter",
    "proxy_arp",
    "mc_forwarding",
    "ignore_routes_with_linkdown",
    "accept_local",
    "route_localnet",
    "src_valid_mark",
)
# IPv6 has no mc_forwarding sysctl (netconf alone carries it).
_IPV6_KEYS = ("forwarding", "proxy_ndp", "ignore_routes_with_linkdown", "force_forwarding")
_ROW_KEYS = {"proxy_arp": "proxy_neigh", "proxy_ndp": "proxy_neigh"}


def _proc_sys(lab: Lab, netns: str | None, family: int) -> dict[str, dict[str, int]]:
    """/proc/sys/net/ipv{4,6}/conf/*/KEY read inside one namespace of the node."""
    keys = _IPV4_KEYS if family == 4 else _IPV6_KEYS
    script = (
        f"cd /proc/sys/net/ipv{family}/conf && for d in *; do for k in {' '.join(keys)}; "
        'do printf "%s %s %s\\n" "$d" "$k" "$(cat "$d/$k")"; done; done'
    )
    argv = ["sh", "-c", script]
    if netns is not None:
        argv = ["nsenter", f"--net={netns}", "--", *argv]
    out: dict[str, dict[str, int]] = {}
    for line in lab.exec("node1", argv).stdout.splitlines():
        dev, key, value = line.split()
        out.setdefault(dev, {})[_ROW_KEYS.get(key, key)] = int(value)
    return out


@pytest.fixture
def sysctls_set(lab: Lab) -> Iterator[str]:
    """conf/all/rp_filter 2 (loose) and the pod's host veth 1 (strict); proxy_arp and
    route_localnet on that veth, accept_local on all."""
    dev = web_pods(lab, "node1")[0].host_veth
    keys = (
        "all/rp_filter",
        f"{dev}/rp_filter",
        f"{dev}/proxy_arp",
        f"{dev}/route_localnet",
        "all/accept_local",
    )
    old = {
        k: lab.exec("node1", ["cat", f"/proc/sys/net/ipv4/conf/{k}"]).stdout.strip() for k in keys
    }
    for key, value in zip(keys, ("2", "1", "1", "1", "1"), strict=True):
        lab.exec("node1", ["sysctl", "-qw", f"net.ipv4.conf.{key.replace('/', '.')}={value}"])
    try:
        yield dev
    finally:
        for key, value in old.items():
            lab.exec(
                "node1",
                ["sysctl", "-qw", f"net.ipv4.conf.{key.replace('/', '.')}={value}"],
                check=False,
            )


def test_ls_netconf_equals_proc_sys_in_every_namespace(lab: Lab, sysctls_set: str) -> None:
    """Every row of `ls netconf` (all, default, each device; both families; the node and each
    pod) equals /proc/sys/net/ipv*/conf read in that netns; effective rp_filter is max(all, dev)."""
    rows = _ls_live(lab, "netconf")
    pods = {p.ref: p.netns_path for p in lab.pods_on("node1")}
    labels = {r["netns_label"] for r in rows}
    assert labels == {"root", *pods}
    for label in labels:
        for family in (4, 6):
            proc = _proc_sys(lab, pods.get(label), family)
            mine = {
                r["dev_name"]: {k: r[k] for k in proc[r["dev_name"]]}
                for r in rows
                if r["netns_label"] == label and r["family"] == family
            }
            assert mine == proc, (label, family)
    veth = next(
        r
        for r in rows
        if r["netns_label"] == "root" and r["family"] == 4 and r["dev_name"] == sysctls_set
    )
    assert (veth["rp_filter"], veth["proxy_neigh"]) == (1, 1)
    assert veth["effective"]["rp_filter"] == 2 and veth["effective"]["proxy_neigh"] == 1
    assert (veth["route_localnet"], veth["accept_local"]) == (1, 0)
    assert veth["effective"]["route_localnet"] == 1 and veth["effective"]["accept_local"] == 1
