"""Service-link variables on real containers: the lab's CRI pods get them as kubelet sets
them, podpath reads them from each container's init process, and the names they give
agree with kube-proxy's own Services (iptables mode, where its rules name every one)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest
from topology_proof import snapshot_text

from podpath.analysis.index import SnapshotIndex
from podpath.analysis.service_names import held_variables
from podpath.kubelet_env import keep_service_links
from podpath.lab.cri_pods import service_link_env
from podpath.snapshot import codec

if TYPE_CHECKING:
    from podpath.lab import Lab

pytestmark = pytest.mark.lab


def _snapshot(lab: Lab, node: str) -> SnapshotIndex:
    return SnapshotIndex(codec.loads(snapshot_text(lab, node)))


def test_collected_variables_are_what_the_lab_gave_each_container(shared_lab: Lab) -> None:
    """Each container's variables: as the lab (kubelet's format) programmed them, and as
    `cat /proc/PID/environ` in the node shows them."""
    if shared_lab.record.spec.runtime != "containerd":
        pytest.skip("Service-link variables are set through CRI (containerd labs)")
    for node in shared_lab.nodes:
        index = _snapshot(shared_lab, node.name)
        links = index.snapshot.service_links
        assert links, "no container's Service-link variables were read"
        running = {
            (p.namespace, p.name)
            for p in index.snapshot.pods
            if any(c.kind == "container" and c.state == "running" for c in p.containers)
        }
        assert {(e.namespace, e.pod) for e in links} >= running
        # Each distinct set is written once; the containers holding it again point to it.
        assert len([e for e in links if not e.same_as]) == len(
            {(e.namespace, v) for e, v in held_variables(links)}
        )
        for env, variables in held_variables(links):
            want = service_link_env(env.namespace, shared_lab.primary_services)
            assert sorted(variables) == sorted(f"{k}={v}" for k, v in want), env.pod
            raw = shared_lab.exec(node.name, ["cat", f"/proc/{env.pid}/environ"]).stdout
            assert sorted(variables) == sorted(keep_service_links(raw.split("\0")))
            # environ holds more than the links (PATH, HOSTNAME...): none of it is kept.
            assert any(v.startswith("PATH=") for v in raw.split("\0"))
            assert not any(v.startswith("PATH=") for v in variables)
            # The container's env keeps its own variables and counts the links left out.
            (pod,) = [p for p in index.snapshot.pods if p.name == env.pod]
            (container,) = [c for c in pod.containers if env.pid in c.pids]
            names = {v.partition("=")[0] for v in variables}
            assert container.service_link_env == len(variables), env.pod
            assert not names & {e.partition("=")[0] for e in container.env}
            assert any(e.startswith("PATH=") for e in container.env)


def test_environment_names_agree_with_kube_proxys_services(shared_lab: Lab) -> None:
    """iptables mode: every served address the variables name is kube-proxy's Service."""
    _assert_names_agree(shared_lab, "iptables")


def test_environment_names_agree_with_kube_proxys_nftables_services(
    make_lab: Callable[..., Lab],
) -> None:
    """nftables mode: the same, against the Services its service-ips map names."""
    lab = make_lab(nodes=1, pods=3, services=4, proxy_mode="nftables")
    _assert_names_agree(lab, "nftables")


def _assert_names_agree(shared_lab: Lab, mode: str) -> None:
    """The env-derived names equal kube-proxy's; only default/kubernetes is unserved."""
    if shared_lab.record.spec.runtime != "containerd":
        pytest.skip("Service-link variables are set through CRI (containerd labs)")
    index = _snapshot(shared_lab, "node1")
    assert index.kube_proxy_mode.mode == mode
    names = index.service_names
    assert names.by_address, "the variables named no served address"
    kube = {
        (s.cluster_ip, s.port, s.protocol.upper()): s
        for s in index.services
        if s.cluster_ip is not None and s.port is not None
    }
    for address, named in names.by_address.items():
        svc = kube[address]
        assert (svc.namespace, svc.name) == (named.link.namespace, named.link.name), address
        assert svc.port_name in (named.link.port_names or ("",)), address
    # Each Service of the pods' namespaces that the lab programmed is named.
    pod_namespaces = {p.namespace for p in shared_lab.pods}
    programmed = {
        (s.cluster_ip, s.port, s.protocol)
        for s in shared_lab.primary_services
        if s.namespace in pod_namespaces
    }
    assert programmed <= set(names.by_address)
    assert names.conflicts == {}
    # default/kubernetes is given to every pod, but the lab has no API server to serve.
    assert {n.link.service for n in names.stale} == {"default/kubernetes"}
