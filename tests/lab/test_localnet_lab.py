"""route_localnet: 127.0.0.1 routed out of a node's devices, as a hostPort or a NodePort on
localhost needs.

OUTPUT's DNAT sends a connection to 127.0.0.1 on to a pod; the kernel routes it again with
its loopback source, and refuses that route out of a device that is no loopback unless
route_localnet is set there or on conf/all (__mkroute_output: EINVAL). The lab's portmap
plugin sets it on cni0 only (its hostPorts on localhost work); kube-proxy in iptables mode
sets conf/all for NodePorts on localhost, which the lab's does not, so only endpoints
behind cni0 answer. The trace must say which, and real probes prove it. The sysctls are
written in the lab node's own network namespace only.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from collections.abc import Callable

    from podpath.lab import Lab

pytestmark = pytest.mark.lab


def _branches(lab: Lab, to: str, run_podpath: Any, *more: str) -> list[dict[str, Any]]:
    """The branches of `podpath trace --from node1 --to TO --json`, run live in node1."""
    done = run_podpath(lab, "node1", "trace", "--from", "node1", "--to", to, "--json", *more)
    assert done.returncode == 0, done.stderr
    branches: list[dict[str, Any]] = json.loads(done.stdout)["branches"]
    return branches


def _localnet(lab: Lab, device: str, value: int) -> None:
    lab.exec("node1", ["sysctl", "-qw", f"net.ipv4.conf.{device}.route_localnet={value}"])


def test_a_hostport_on_localhost_needs_route_localnet_on_the_bridge(
    make_lab: Callable[..., Lab], run_podpath: Any
) -> None:
    """node1's first web pod has hostPort 8080: 127.0.0.1:8080 reaches it while cni0 has
    route_localnet (portmap sets it), and not without. Before, the trace delivered both."""
    lab = make_lab(nodes=1, pods=2, services=3)
    web = next(p for p in lab.pods_on("node1") if p.app == "web")
    (branch,) = _branches(lab, "127.0.0.1:8080", run_podpath, "--reply")
    assert branch["verdict"] == "delivered", branch["reason"]
    # The answer, un-SNATed to 127.0.0.1 as it arrives on cni0, is no martian there.
    assert [r["verdict"] for r in branch["reply"]] == ["delivered"], branch["reply"]
    probe = lab.probe("node1", "127.0.0.1", 8080)
    assert probe.ok and probe.served_by == web.ref, probe
    _localnet(lab, "cni0", 0)
    (branch,) = _branches(lab, "127.0.0.1:8080", run_podpath)
    assert branch["verdict"] == "dropped", branch["reason"]
    assert "its source 127.0.0.1 is a loopback address, and cni0 is no loopback" in branch["reason"]
    assert not lab.probe("node1", "127.0.0.1", 8080, wait=1).ok


def test_a_nodeport_on_localhost_reaches_what_route_localnet_lets_it(
    make_lab: Callable[..., Lab], run_podpath: Any
) -> None:
    """conf/all/route_localnet 0: 127.0.0.1:NODEPORT reaches the web pod behind cni0 and
    none of node2's, sent out of flannel.1; with conf/all 1 it reaches every one."""
    lab = make_lab(nodes=2, pods=2, services=3)
    node_port = next(s for s in lab.services if s.node_port is not None).node_port
    here = {p.ip for p in lab.pods_on("node1") if p.app == "web"}
    there = {p.ip for p in lab.pods_on("node2") if p.app == "web"}
    _localnet(lab, "all", 0)
    to = f"127.0.0.1:{node_port}"
    verdicts = {}
    for branch in _branches(lab, to, run_podpath):
        pod = branch["final"]["dst"]  # the endpoint kube-proxy's DNAT chose
        verdicts[pod] = branch["verdict"]
        if pod in there:
            assert "flannel.1 is no loopback device" in branch["reason"], branch["reason"]
    assert verdicts == {**dict.fromkeys(here, "delivered"), **dict.fromkeys(there, "dropped")}
    probes = [lab.probe("node1", "127.0.0.1", node_port, wait=1) for _ in range(10)]
    served = {p.served_by for p in probes if p.ok}
    assert served <= {p.ref for p in lab.pods_on("node1")}, served
    assert any(not p.ok for p in probes)  # each probe picks node2's with p=2/3
    _localnet(lab, "all", 1)
    # Live in node1, the trace sees node1 only: node2's endpoints are left to its network.
    verdicts = {b["final"]["dst"]: b["verdict"] for b in _branches(lab, to, run_podpath)}
    assert verdicts == {**dict.fromkeys(here, "delivered"), **dict.fromkeys(there, "leaves-node")}
    assert all(lab.probe("node1", "127.0.0.1", node_port).ok for _ in range(3))
