"""Every topology with both runtimes and both kube-proxy modes: pods, Services, traces.

The topology modules prove each `--cni` in depth with containerd (pods made through
CRI, so containerd finds the calico and aws-cni plugins in its one bin_dir) and
kube-proxy's iptables mode. Here each `--cni` is built with the three other pairs of
runtime (containerd, or the runc imitation that calls the CNI plugins itself) and
proxy mode (iptables, or nftables with IPv6 Services in `table ip6 kube-proxy`). The
runtime decides who calls the plugins of the same conflist, the proxy mode who programs
the Services; so each pair gets, on one node, the proofs that involve them: the pods'
shape and their addresses in every family, the web Service traced to where real
connections land (and to conntrack's reply tuple), and a Service without endpoints
refused by the trace and the kernel alike.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from topology_proof import RUN_ID, assert_service, module_lab, snapshots

from podpath.analysis.dataplane import detect
from podpath.lab.plan import pod_ip
from podpath.trace.engine import trace
from podpath.trace.probe import Probe

if TYPE_CHECKING:
    from podpath.analysis.index import SnapshotIndex
    from podpath.lab import Lab

pytestmark = pytest.mark.lab

# --cni -> (its families, the dataplane podpath detects on the node).
TOPOLOGIES = {
    "bridge": ("dual", "bridge"),
    "calico": ("dual", "calico"),
    "ptp": ("dual", "kindnet/ptp"),
    "aws-vpc": ("ipv4", "aws-vpc-cni"),
}


# (runtime, proxy mode) pairs the topology modules do not build.
PAIRS = [("containerd", "nftables"), ("runc-imitation", "iptables"), ("runc-imitation", "nftables")]


@pytest.mark.parametrize(("runtime", "proxy_mode"), PAIRS)
@pytest.mark.parametrize("cni", sorted(TOPOLOGIES))
def test_topology_with_runtime_and_proxy_mode(cni: str, runtime: str, proxy_mode: str) -> None:
    """One node of `cni` made by `runtime`, its Services by kube-proxy in `proxy_mode`."""
    from podpath.lab import LabSpec

    family_name, plane = TOPOLOGIES[cni]
    spec = LabSpec(
        f"{RUN_ID}-{cni}-{runtime[:4]}-{proxy_mode[:3]}",
        nodes=1,
        pods=3,
        services=4,
        cni=cni,
        ip_family=family_name,
        runtime=runtime,
        proxy_mode=proxy_mode,
    )
    with module_lab(spec) as lab:
        assert lab.record.spec.runtime == runtime
        if runtime == "containerd":
            with lab.cri("node1") as cri:
                sandboxes = cri.call("ListPodSandbox")["items"]
            assert len(sandboxes) == len(lab.pods), sandboxes
        index = snapshots(lab)["node1"]
        assert detect(index).cni == plane
        mode = index.kube_proxy_mode
        assert mode.mode == proxy_mode, mode
        if proxy_mode == "nftables":
            tables = {f"{fam} {name}" for fam, name in index.nft_tables}
            want = {"ip kube-proxy"} | ({"ip6 kube-proxy"} if 6 in spec.families else set())
            assert want <= tables, tables
        for pod in lab.pods:
            assert all(pod_ip(pod, f) for f in spec.families), pod.ips
        # From the kube-dns pod: the web Service's endpoints are the other pods.
        (src,) = [p for p in lab.pods if p.app == "dns"]
        for family in spec.families:
            assert_service(lab, {"node1": index}, src, family)
            _assert_no_endpoints_refused(lab, index, src.ref, family)


def _assert_no_endpoints_refused(lab: Lab, index: SnapshotIndex, src: str, family: int) -> None:
    """noep: the trace ends at kube-proxy's reject, and a real connection is refused."""
    noep = next(s for s in lab.service("default/noep") if (":" in s.cluster_ip) == (family == 6))
    (branch,) = trace([index], Probe(src, "default/noep:http", family=family)).branches
    assert branch.verdict == "dropped" and "reject" in branch.reason.lower(), branch.reason
    assert branch.packet.dst == noep.cluster_ip, branch.packet
    answer = lab.probe(src, noep.cluster_ip, noep.port)
    assert not answer.ok and "refused" in answer.error, answer
