"""`podpath draw` and `trace --svg` on real lab nodes, checked against `ip -j` and `bridge -j`.

Snapshots are taken by `podpath snapshot` inside each node; the map drawn from both
must hold every pod IP and host veth the kernel lists, the VXLAN device's remote VTEP
must join the two nodes, and a Service trace must cross the veths the kernel pairs.
"""

from __future__ import annotations

import json
import shutil
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from topology_proof import snapshot_text

from podpath.cli import main
from podpath.draw.build import build_map
from podpath.draw.path import trace_path
from podpath.snapshot import codec
from podpath.trace.engine import trace
from podpath.trace.probe import Probe

if TYPE_CHECKING:
    from podpath.lab import Lab

pytestmark = pytest.mark.lab

SVG = "{http://www.w3.org/2000/svg}"
NODES = ("node1", "node2")


def _texts(svg: str) -> set[str]:
    """Every text of a well-formed SVG."""
    root = ET.fromstring(svg.encode())
    return {"".join(t.itertext()).strip() for t in root.iter(f"{SVG}text")}


def _snapshots(lab: Lab, directory: Path) -> list[str]:
    """`podpath snapshot` inside each node, saved as files."""
    paths = []
    for node in NODES:
        path = directory / f"{node}.json"
        path.write_text(snapshot_text(lab, node))
        paths.append(str(path))
    return paths


def _host_veths(lab: Lab, node: str) -> set[str]:
    """`NAME@ifPEER` of every veth in the node's root netns, as `ip -j link` lists them."""
    done = lab.exec(node, ["ip", "-j", "link", "show", "type", "veth"])
    out = set()
    for link in json.loads(done.stdout):
        if "link_netnsid" in link:  # its peer is in another namespace: a pod's
            out.add(f"{link['ifname']}@if{link['link_index']}")
    return out


def _require_dot() -> None:
    if shutil.which("dot") is None:
        pytest.skip("Graphviz's dot is missing")


def test_live_two_node_map_matches_the_kernel(shared_lab: Lab, tmp_path: Path) -> None:
    """The map of both VXLAN nodes holds every pod IP and host veth, and joins the VTEPs."""
    _require_dot()
    files = _snapshots(shared_lab, tmp_path)
    out = tmp_path / "map.svg"
    assert main(["draw", "--snapshot", files[0], "--snapshot", files[1], "-o", str(out)]) == 0
    words = _texts(out.read_text())
    for node in NODES:
        for pod in shared_lab.pods_on(node):
            assert pod.ref in words and pod.ip in words
        assert _host_veths(shared_lab, node) <= words
        assert {"cni0", "flannel.1"} <= words
    m = build_map([codec.load_path(f) for f in files])
    tunnel = next(c for c in m.connections if c.kind == "tunnel")
    ends = [m.element(tunnel.source), m.element(tunnel.target)]
    assert {e.node for e in ends if e is not None} == {0, 1}
    # The remote VTEP the kernel's FDB names is node2's own address.
    fdb = json.loads(
        shared_lab.exec("node1", ["bridge", "-j", "fdb", "show", "dev", "flannel.1"]).stdout
    )
    remotes = {e["dst"] for e in fdb if "dst" in e}
    node2 = next(n for n in shared_lab.nodes if n.name == "node2")
    assert node2.address in remotes


def test_draw_runs_inside_a_node_on_its_live_state(shared_lab: Lab, run_podpath: Any) -> None:
    """`podpath draw -o -` inside node1 collects the node itself and prints its SVG."""
    _require_dot()
    done = run_podpath(shared_lab, "node1", "draw", "-o", "-")
    assert done.returncode == 0, done.stderr
    words = _texts(done.stdout)
    assert {p.ref for p in shared_lab.pods_on("node1")} <= words
    assert _host_veths(shared_lab, "node1") <= words
    text = run_podpath(shared_lab, "node1", "draw")
    assert text.returncode == 0 and text.stdout.startswith("node node1")


def _service_trace(
    lab: Lab, run_podpath: Any, tmp_path: Path, check: Callable[[str], None]
) -> None:
    """Trace a node1 pod to default/web on both snapshots, draw every branch, check each."""
    web = lab.service("default/web")[0]
    client = lab.pods_on("node1")[0]
    lab.probe(client.ref, web.cluster_ip, web.port)  # warm neighbours and FDBs
    files = _snapshots(lab, tmp_path)
    snaps = [codec.load_path(f) for f in files]
    result = trace(snaps, Probe(client.ref, f"{web.cluster_ip}:{web.port}"), reply=True)
    m = build_map(snaps)
    for number, branch in enumerate(result.branches, 1):
        assert branch.verdict == "delivered", branch.reason
        path = trace_path(m, branch, number)
        assert path.unplaced == ()
        assert all(seg.connection is not None for seg in path.segments)
        # The first veth crossed is the client's own, as the lab (and the kernel) paired it.
        first = next(s for s in path.steps if s.kind == "link")
        element = m.element(first.element)
        assert element is not None and element.name == client.host_veth
        out = tmp_path / f"b{number}.svg"
        argv = ["trace", "--snapshot", files[0], "--snapshot", files[1], "--from", client.ref]
        argv += ["--to", f"{web.cluster_ip}:{web.port}", "--reply", "--svg", str(out)]
        assert main([*argv, "--branch", str(number)]) == 0
        check(out.read_text())


def test_service_trace_on_the_vxlan_lab_draws_every_branch(
    shared_lab: Lab, run_podpath: Any, tmp_path: Path
) -> None:
    """Each branch of a Service trace is drawn; DNAT is on node1's stack, un-DNAT on the reply."""
    _require_dot()

    def check(svg: str) -> None:
        words = " ".join(_texts(svg))
        assert "DNAT" in words and "conntrack un-DNAT" in words

    _service_trace(shared_lab, run_podpath, tmp_path, check)


def test_host_gw_lab_trace_leaves_by_the_uplink(
    make_lab: Callable[..., Lab], run_podpath: Any, tmp_path: Path
) -> None:
    """Routed between nodes (host-gw): a remote branch leaves by eth0 toward node2's address."""
    _require_dot()
    lab = make_lab(nodes=2, pods=2, services=2, overlay="host-gw")
    node2 = next(n for n in lab.nodes if n.name == "node2")
    seen: list[str] = []

    def check(svg: str) -> None:
        words = " ".join(_texts(svg))
        assert "VXLAN" not in words
        if f"toward {node2.address}" in words:
            seen.append(svg)

    _service_trace(lab, run_podpath, tmp_path, check)
    assert seen, "no branch crossed to node2"
