"""A real eBPF classifier on a pod's host veth: detected, named, and the trace stops there.

The lab compiles a pass-through program (llc) named like Cilium's from-container and
attaches it as Cilium does (clsact ingress, direct-action, on the host end of the pod's
veth). podpath cannot run it: the trace must end at it, naming the very program `tc`
reports, while real traffic still flows (the program passes everything).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import TYPE_CHECKING

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
