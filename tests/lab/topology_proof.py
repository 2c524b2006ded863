"""The proofs every lab topology gets: the trace against `ip route get`, real traffic and conntrack.

Snapshots are taken by `podpath snapshot` inside each node. Every route hop the engine
decides is asked again of the kernel in the same namespace (`ip -j route get`, with
`from`/`iif`/`mark` as the hop had them); its type, device, gateway and the source the
kernel picks must agree. Service traces are compared with where real connections land
and with the reply tuple of the real conntrack entry.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import pytest

from podpath.analysis.index import SnapshotIndex
from podpath.snapshot import codec
from podpath.trace.engine import trace
from podpath.trace.model import Branch, Hop
from podpath.trace.probe import Probe

if TYPE_CHECKING:
    from podpath.lab import Lab, LabSpec, PodRecord, ServiceRecord

RUN_ID = f"t{os.getpid()}"


@contextmanager
def module_lab(spec: LabSpec) -> Iterator[Lab]:
    """A lab for one test module, torn down whatever happens (atexit as a last resort)."""
    import atexit

    from podpath.lab import LabError, down, running_lab, state

    def _down() -> None:
        if state.lab_dir(spec.name).exists():
            try:
                down(spec.name)
            except LabError as exc:
                sys.stderr.write(f"lab {spec.name} teardown: {exc}\n")

    atexit.register(_down)
    with running_lab(spec) as lab:
        yield lab


def topology_fixtures(
    suffix: str, *, names: tuple[str, str] = ("lab", "indexes"), **spec: Any
) -> tuple[Callable[[], Iterator[Lab]], Callable[..., dict[str, SnapshotIndex]]]:
    """A module's `lab` (built from LabSpec(f"{RUN_ID}-{suffix}", **spec)) and its `indexes`.

    Assign both in the test module: `lab, indexes = topology_fixtures("ptp", cni="ptp")`;
    a second lab in the same module takes other fixture names:
    `lab6, indexes6 = topology_fixtures("aws6", names=("lab6", "indexes6"), ...)`.
    """
    lab_name, indexes_name = names

    @pytest.fixture(scope="module", name=lab_name)
    def lab_fixture() -> Iterator[Lab]:
        from podpath.lab import LabSpec

        with module_lab(LabSpec(f"{RUN_ID}-{suffix}", **spec)) as built:
            yield built

    @pytest.fixture(scope="module", name=indexes_name)
    def indexes_fixture(request: pytest.FixtureRequest) -> dict[str, SnapshotIndex]:
        return snapshots(request.getfixturevalue(lab_name))

    return lab_fixture, indexes_fixture


def snapshot_text(lab: Lab, node: str) -> str:
    """`podpath snapshot -o -` run inside the node: the snapshot's JSON."""
    argv = [sys.executable, "-m", "podpath", "snapshot", "-o", "-"]
    done = lab.exec(node, argv, timeout=180, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


def snapshots(lab: Lab) -> dict[str, SnapshotIndex]:
    """A snapshot of every node, taken by the real CLI inside the node."""
    return {
        node.name: SnapshotIndex(codec.loads(snapshot_text(lab, node.name))) for node in lab.nodes
    }


def ordered(indexes: dict[str, SnapshotIndex]) -> list[SnapshotIndex]:
    """The snapshots in node order (node1 first: the trace starts there)."""
    return [indexes[n] for n in sorted(indexes)]


def family_ip(pod: PodRecord, family: int) -> str:
    """A pod's address of one family."""
    return next(ip for ip in (pod.ips or (pod.ip,)) if (":" in ip) == (family == 6))


def hostport(ip: str, port: int) -> str:
    """[v6]:port or v4:port."""
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def web_pods(lab: Lab, node: str) -> list[PodRecord]:
    """The pods of a node that serve HTTP on :80."""
    return [p for p in lab.pods_on(node) if p.app == "web"]


def service(lab: Lab, ref: str, family: int) -> ServiceRecord:
    """The port record of a Service in one family."""
    return next(s for s in lab.service(ref) if (":" in s.cluster_ip) == (family == 6))


def netns_path(index: SnapshotIndex, inode: int) -> str | None:
    """How to enter a namespace inside the node: None for the node's own."""
    if inode == index.snapshot.root_netns:
        return None
    pod = index.pods_by_netns.get(inode)
    if pod is not None and pod.netns_path:
        return pod.netns_path
    ns = index.netns_by_inode.get(inode)
    if ns is not None and ns.paths:
        return ns.paths[0]
    raise AssertionError(f"no path to enter netns {inode}")


def kernel_route(lab: Lab, node: str, index: SnapshotIndex, hop: Hop) -> dict[str, Any]:
    """`ip -j route get` for the same question the hop answered, in the same namespace."""
    d = hop.data
    argv = ["ip", "-j", "route", "get", str(d["dst"])]
    if d.get("iif"):
        argv += ["from", str(d["src"]), "iif", str(d["iif"])]
    elif d.get("src") and d.get("type") != "local":
        argv += ["from", str(d["src"])]
    if d.get("mark"):
        argv += ["mark", str(d["mark"])]
    # The flow's protocol and ports, which rules with ipproto/sport/dport select on.
    if d.get("proto") in ("tcp", "udp"):
        argv += ["ipproto", str(d["proto"])]
        argv += [w for k in ("sport", "dport") if d.get(k) for w in (k, str(d[k]))]
    path = netns_path(index, int(str(d["netns"])))
    if path is not None:
        argv = ["nsenter", f"--net={path}", "--", *argv]
    done = lab.exec(node, argv, check=False)
    # The kernel's errors for what the engine calls none, a forwarding refusal, rp_filter.
    for text, kind in (
        ("Network is unreachable", "none"),
        ("No route to host", "no-forward"),
        ("Invalid cross-device link", "rp_filter"),
        ("Invalid argument", "blackhole"),
    ):
        if done.returncode != 0 and text in done.stderr:
            return {"type": kind}
    assert done.returncode == 0, f"{argv}: {done.stderr}"
    (route,) = json.loads(done.stdout)
    return dict(route)


def assert_routes_equal_kernel(
    lab: Lab, indexes: dict[str, SnapshotIndex], branches: Sequence[Branch]
) -> int:
    """Every route hop of every branch (replies included) equals the kernel; returns how many."""
    by_host = {ix.snapshot.node.hostname: n for n, ix in indexes.items()}
    checked = 0
    for branch in [*branches, *(r for b in branches for r in b.reply)]:
        hops = list(branch.hops)
        for i, hop in enumerate(hops):
            if hop.kind != "route":
                continue
            node = by_host[hop.node]
            kernel = kernel_route(lab, node, indexes[node], hop)
            want = kernel.get("type", "unicast")
            after = hops[i + 1] if i + 1 < len(hops) else None
            if want in ("no-forward", "rp_filter"):
                by = "sysctl" if want == "no-forward" else "rp_filter"
                assert after is not None and after.kind == "drop", (hop.text, kernel)
                assert after.data["by"] == by, (hop.text, after.text, kernel)
            else:
                assert hop.data["type"] == want, (hop.text, kernel)
            if want == "unicast":
                assert hop.data["dev"] == kernel.get("dev"), (hop.text, kernel)
                assert hop.data["gateway"] == kernel.get("gateway"), (hop.text, kernel)
                if hop.data.get("chosen_src") and kernel.get("prefsrc"):
                    assert hop.data["chosen_src"] == kernel["prefsrc"], (hop.text, kernel)
            checked += 1
    return checked


def assert_pod_to_pod(
    lab: Lab, indexes: dict[str, SnapshotIndex], src: PodRecord, dst: PodRecord, family: int
) -> Branch:
    """The trace delivers src -> dst:80 to dst (routes as the kernel's), and real traffic agrees."""
    ip = family_ip(dst, family)
    result = trace(ordered(indexes), Probe(src.ref, hostport(ip, 80)))
    (branch,) = result.branches
    assert (branch.outcome or branch.verdict) == "delivered", branch.reason
    deliver = branch.hops[-1]
    assert (deliver.kind, deliver.data["pod"]) == ("deliver", dst.ref)
    assert assert_routes_equal_kernel(lab, indexes, result.branches) >= 2
    answer = lab.probe(src.ref, ip, 80)
    assert answer.ok, answer.error
    assert answer.served_by == dst.ref
    return branch


def assert_service(
    lab: Lab, indexes: dict[str, SnapshotIndex], src: PodRecord, family: int
) -> None:
    """The web Service: the endpoints with 1/n each; real connections land only on them, on all
    of them; the real conntrack entry's reply tuple is one the traced reply predicts."""
    web = service(lab, "default/web", family)
    result = trace(ordered(indexes), Probe(src.ref, hostport(web.cluster_ip, web.port)), reply=True)
    got = {(b.packet.dst, b.packet.dport): b.probability for b in result.branches}
    assert set(got) == set(web.endpoints)
    assert all(abs(p - 1 / len(web.endpoints)) < 1e-6 for p in got.values())
    for b in result.branches:
        assert (b.outcome or b.verdict) == "delivered", b.reason
        (reply,) = b.reply
        assert (reply.outcome or reply.verdict) == "delivered", reply.reason
        src_ip = family_ip(src, family)
        assert (reply.packet.src, reply.packet.sport, reply.packet.dst) == (
            web.cluster_ip,
            web.port,
            src_ip,
        )
    assert assert_routes_equal_kernel(lab, indexes, result.branches) >= len(web.endpoints)
    pods_by_ip = {ip: p.ref for p in lab.pods for ip in (p.ips or (p.ip,))}
    want = {pods_by_ip[b.packet.dst] for b in result.branches}
    seen: set[str] = set()
    for _ in range(80):
        answer = lab.probe(src.ref, web.cluster_ip, web.port)
        assert answer.ok, answer.error
        assert answer.served_by in want, (answer.served_by, want)
        seen.add(str(answer.served_by))
        if seen == want:
            break
    assert seen == want
    _assert_conntrack(lab, src, web, family, result.branches)


def _assert_conntrack(
    lab: Lab, src: PodRecord, web: ServiceRecord, family: int, branches: Sequence[Branch]
) -> None:
    from podpath.conntrack import parse_conntrack

    predicted = {(b.packet.dst, b.packet.dport, b.packet.src) for b in branches}
    src_ip = family_ip(src, family)
    argv = ["conntrack", "-L", "-f", "ipv6" if family == 6 else "ipv4", "-p", "tcp"]
    argv += ["--orig-dst", web.cluster_ip, "--orig-src", src_ip]
    done = lab.exec(src.node, argv, check=False)
    entries = parse_conntrack(done.stdout)
    assert entries, done.stderr
    for e in entries:
        assert (e.reply.src, e.reply.sport, e.reply.dst) in predicted, (e, predicted)
