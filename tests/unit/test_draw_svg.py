"""`podpath draw` and `trace --svg` through Graphviz's real `dot`: the SVG, hostile names, the path."""

from __future__ import annotations

import shutil
import xml.etree.ElementTree as ET
from importlib import resources
from pathlib import Path

import pytest
from trace_factory import NodeSpec, PodSpec, build_node, kube_services, two_nodes

from podpath.cli import main
from podpath.cli.draw import run_dot
from podpath.draw.build import build_map
from podpath.draw.dot import shown, to_dot
from podpath.draw.path import path_elements, trace_path
from podpath.snapshot import codec
from podpath.snapshot.model import Snapshot
from podpath.trace.engine import trace
from podpath.trace.probe import Probe

SVG = "{http://www.w3.org/2000/svg}"
DEMO = resources.files("podpath").joinpath("data")

needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is missing")


def parse(svg: str) -> ET.Element:
    """The SVG as an XML tree (fails the test when it is not well-formed XML)."""
    return ET.fromstring(svg.encode("utf-8"))


def groups(root: ET.Element) -> dict[str, ET.Element]:
    """Every <g> with an id, by id."""
    return {g.attrib["id"]: g for g in root.iter(f"{SVG}g") if "id" in g.attrib}


def texts(element: ET.Element) -> list[str]:
    """The text of every <text> under an element, in document order."""
    return ["".join(t.itertext()).strip() for t in element.iter(f"{SVG}text")]


def classes(element: ET.Element) -> set[str]:
    """The element's CSS classes."""
    return set(element.attrib.get("class", "").split())


def save(tmp_path: Path, *snaps: Snapshot) -> list[str]:
    """Write snapshots as files; return their paths."""
    out = []
    for i, snap in enumerate(snaps):
        path = tmp_path / f"node{i}.json"
        path.write_text(codec.dumps(snap))
        out.append(str(path))
    return out


def demo_files() -> list[str]:
    """Paths of the two bundled demo snapshots."""
    return [str(DEMO.joinpath(n)) for n in ("demo-snapshot.json", "demo-snapshot-node2.json")]


@needs_dot
def test_demo_map_svg_holds_every_pod_ip_veth_and_bridge(tmp_path: Path) -> None:
    """`podpath draw` on the bundled 2-node lab: an SVG with every pod, IP, veth, bridge, VTEP link."""
    out = tmp_path / "map.svg"
    args = ["draw", *(a for f in demo_files() for a in ("--snapshot", f)), "-o", str(out)]
    assert main(args) == 0
    root = parse(out.read_text())
    by_id = groups(root)
    words = set(texts(root))
    snaps = [codec.load_path(f) for f in demo_files()]
    for snap in snaps:
        assert snap.node.hostname in words
        for pod in snap.pods:
            assert f"{pod.namespace}/{pod.name}" in words
            assert all(ip in words for ip in pod.ips)
        root_ns = next(ns for ns in snap.netns if ns.inode == snap.root_netns)
        for link in root_ns.links:
            if link.kind == "veth" and link.peer is not None:
                assert f"{link.name}@if{link.peer.ifindex}" in words
            if link.kind in ("bridge", "vxlan"):
                assert link.name in words
    m = build_map(snaps)
    for c in m.connections:
        assert "edge" in classes(by_id[c.id]) and c.kind in classes(by_id[c.id])
    for e in m.elements:
        assert e.kind in classes(by_id[e.id])
    tunnel = next(c for c in m.connections if c.kind == "tunnel")
    assert {tunnel.source, tunnel.target} == {
        e.id for e in m.elements if e.kind == "vxlan" and e.title == "flannel.1"
    }


HOSTILE = [
    'evil"] -> x [label="pwned"]',
    "<svg onload=alert(1)>&amp;",
    "\\N\\G\\L\\E",
    "\x1b]0;owned\x07\x1b[31mred",
    "bidi\u202eexe.txt",
    "nonchar\ufffe\uffff",
    "bad\udcffbyte",
    "]]><!-- -->",
]


@needs_dot
@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_pod_and_interface_names_appear_escaped(name: str) -> None:
    """A pod and a veth named to inject DOT, SVG or terminal codes show literally, made visible."""
    snap = build_node(NodeSpec(pods=[PodSpec(name[:40], "10.244.0.5", "ns" + name[:10])]))
    root = next(ns for ns in snap.netns if ns.inode == snap.root_netns)
    links = tuple(
        link.__class__(**{**link.__dict__, "name": name}) if link.kind == "veth" else link
        for link in root.links
    )
    netns = tuple(
        ns.__class__(**{**ns.__dict__, "links": links}) if ns.inode == snap.root_netns else ns
        for ns in snap.netns
    )
    snap = snap.__class__(**{**snap.__dict__, "netns": netns})
    svg = run_dot(to_dot(build_map([snap]), title=name))
    tree = parse(svg)
    words = texts(tree)
    assert shown(f"ns{name[:10]}/{name[:40]}") in words
    assert f"{shown(name)}@if2" in words
    assert shown(name) in words  # the title
    assert not list(tree.iter(f"{SVG}script")) and "onload" not in tree.attrib
    assert all("\x1b" not in w and "\u202e" not in w for w in words)
    assert "pwned" not in {g.attrib.get("id") for g in tree.iter(f"{SVG}g")}


@needs_dot
def test_trace_svg_highlights_the_hops_in_order(tmp_path: Path) -> None:
    """trace --svg: numbered steps on the pod, veth, bridge, stack (DNAT), flannel, eth0, node-b."""
    rules = kube_services("10.96.0.10", 80, ["10.244.1.5"])
    a, b = two_nodes("vxlan", rules, rules)
    files = save(tmp_path, a, b)
    out = tmp_path / "trace.svg"
    args = ["trace", "--snapshot", files[0], "--snapshot", files[1]]
    args += ["--from", "default/a", "--to", "10.96.0.10:80", "--reply", "--svg", str(out)]
    assert main(args) == 0
    tree = parse(out.read_text())
    by_id = groups(tree)
    m = build_map([a, b])
    result = trace([a, b], Probe("default/a", "10.96.0.10:80"), reply=True)
    path = trace_path(m, result.branches[0])
    assert [s.number for s in path.steps] == list(range(1, len(path.steps) + 1))
    kinds = [(s.kind, m.element(s.element).title) for s in path.steps]  # type: ignore[union-attr]
    expected = [
        ("route", "default/a"),
        ("link", "veth0000@if2"),
        ("bridge", "cni0"),
        ("nat", "IP stack"),
        ("route", "IP stack"),
        ("vxlan", "flannel.1"),
        ("route", "IP stack"),
        ("leave", "eth0"),
        ("vxlan", "flannel.1"),
        ("route", "IP stack"),
        ("bridge", "cni0"),
        ("link", "default/c"),
    ]
    assert kinds[: len(expected)] == expected
    assert path.steps[3].text == "DNAT 10.96.0.10:80 → 10.244.1.5:8080"
    assert [s.direction for s in path.steps].count("reply") > 0
    assert any(s.kind == "conntrack" and s.direction == "reply" for s in path.steps)
    # Each step's number and caption are written, in order, inside its element's box.
    for element, steps in path_elements(path).items():
        box = texts(by_id[element])
        assert "on-path" in classes(by_id[element])
        found = [box.index(str(s.number)) for s in steps]
        assert found == sorted(found)
        assert all(s.text in box for s in steps)
    # Every segment follows a drawn connection, highlighted and labelled with its number.
    for seg in path.segments:
        assert seg.connection is not None
        edge = by_id[seg.connection]
        assert "on-path" in classes(edge)
        assert any(str(seg.number) in t.split(", ") for t in texts(edge))
    crossed = {seg.connection for seg in path.segments}
    for c in m.connections:
        assert ("on-path" in classes(by_id[c.id])) == (c.id in crossed)


@needs_dot
def test_demo_trace_through_a_service_to_the_other_node(tmp_path: Path) -> None:
    """The bundled lab: coredns -> default/web lands on node2 via flannel.1; the reply is un-DNATed."""
    snaps = [codec.load_path(f) for f in demo_files()]
    probe = Probe("kube-system/coredns-82zgz2nfh7-2s989", "default/web:80")
    result = trace(snaps, probe, reply=True)
    number = next(i for i, br in enumerate(result.branches, 1) if "10.244.1." in br.reason)
    out = tmp_path / "t.svg"
    args = ["trace", *(a for f in demo_files() for a in ("--snapshot", f))]
    args += ["--from", probe.source, "--to", probe.destination, "--reply"]
    args += ["--svg", str(out), "--branch", str(number)]
    assert main(args) == 0
    words = " ".join(texts(parse(out.read_text())))
    assert "DNAT 10.96.0.100:80 → 10.244.1." in words
    assert "VXLAN encapsulate VNI 1 → VTEP 172.18.0.3" in words
    assert "VXLAN decapsulate VNI 1" in words
    assert "conntrack un-DNAT 10.244.1." in words
    assert f"branch {number}: DELIVERED" in words


@needs_dot
def test_trace_svg_of_a_big_node_draws_only_the_pods_on_the_path(tmp_path: Path) -> None:
    """Above 24 pods a node keeps the pods the packet passes; a note says how many were left out."""
    pods = [PodSpec(f"p{i}", f"10.244.0.{i + 2}") for i in range(30)]
    files = save(tmp_path, build_node(NodeSpec(pods=pods)))
    out = tmp_path / "t.svg"
    args = ["trace", "--snapshot", files[0], "--from", "default/p0", "--to", "default/p1:80"]
    assert main([*args, "--svg", str(out)]) == 0
    words = texts(parse(out.read_text()))
    assert "default/p0" in words and "default/p1" in words and "default/p2" not in words
    assert "node-a: 28 pods left out by the filter" in words


def test_draw_without_output_prints_the_outline(capsys: pytest.CaptureFixture[str]) -> None:
    """No -o: the indented outline on stdout, names made visible."""
    assert main(["draw", "--snapshot", demo_files()[0]]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("node node1")
    assert any(line.strip().startswith("bridge cni0") for line in out)


def test_draw_writes_dot_without_graphviz(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """-o FILE.dot needs no Graphviz; -o FILE.svg without dot is one sentence, exit 1."""
    monkeypatch.setenv("PATH", str(tmp_path))
    dot_file = tmp_path / "m.dot"
    assert main(["draw", "--snapshot", demo_files()[0], "-o", str(dot_file)]) == 0
    assert dot_file.read_text().startswith("digraph podpath {")
    assert main(["draw", "--snapshot", demo_files()[0], "-o", str(tmp_path / "m.svg")]) == 1


def test_draw_errors_are_one_sentence(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """No matching pod, a bad --branch, --svg to stdout, an unwritable file: exit != 0, one line."""
    demo = demo_files()[0]
    cases = [
        (["draw", "--snapshot", demo, "--namespace", "nope"], "no pod matches"),
        (
            ["trace", "--snapshot", demo, "--from", "node", "--to", "10.244.0.2:80"]
            + ["--svg", str(tmp_path / "x.svg"), "--branch", "7"],
            "--branch 7",
        ),
        (
            ["trace", "--snapshot", demo, "--from", "node", "--to", "10.244.0.2:80", "--svg", "-"],
            "--svg needs a file name",
        ),
        (["draw", "--snapshot", demo, "-o", str(tmp_path / "no" / "m.dot")], "cannot write"),
    ]
    for argv, message in cases:
        assert main(argv) != 0
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0], err


@needs_dot
def test_dot_failure_is_reported_not_raised(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A dot that fails (here a stand-in exiting 1 with a message) is reported in one sentence."""
    fake = tmp_path / "dot"
    fake.write_text("#!/bin/sh\necho 'Error: syntax error in line 1' >&2\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    from podpath.cli import CliError

    with pytest.raises(CliError, match="Graphviz's dot failed: Error: syntax error in line 1"):
        run_dot("digraph {}")
