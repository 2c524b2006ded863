"""kube-proxy without a cluster CIDR (EKS's kube-proxy-config): the rules its proxiers then write.

With `clusterCIDR: ""` kube-proxy gets the no-op local detector, and both proxiers
(pkg/proxy/iptables/proxier.go, pkg/proxy/nftables/proxier.go) skip exactly the rules
written `if proxier.localDetector.IsImplemented()`: the ClusterIP's masquerade of
sources outside the cluster CIDR and, for externalTrafficPolicy Local, the "pod traffic"
short-circuit. Everything else, the hairpin masquerade included, is the same.
"""

from __future__ import annotations

import pytest

from podpath.lab.kubeproxy import DEFAULT_CONFIG, EKS_CONFIG, ProxyConfig, restore_input
from podpath.lab.kubeproxy_nft import render
from podpath.lab.names import sep_chain, svc_chain
from podpath.lab.records import LabSpec, ServiceRecord
from podpath.lab.topology import proxy_config

CLUSTER_IPS = {4: "10.96.0.50", 6: "fd00:10:96::50"}
ENDPOINTS = {4: (("172.18.16.2", 80), ("172.18.17.3", 80)), 6: (("fd00:172:18:0:1::2", 80),)}


def _svc(family: int) -> ServiceRecord:
    """A NodePort Service with externalTrafficPolicy Local: every rule a detector writes."""
    name = "default/web-local:http"
    endpoints = ENDPOINTS[family]
    seps = tuple(sep_chain(name, "tcp", _host_port(ip, port)) for ip, port in endpoints)
    return ServiceRecord(
        "default",
        "web-local",
        "http",
        "TCP",
        CLUSTER_IPS[family],
        80,
        30081,
        endpoints,
        svc_chain(name, "tcp"),
        seps,
        external_local=True,
    )


def _host_port(ip: str, port: int) -> str:
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def _iptables(family: int, config: ProxyConfig) -> list[str]:
    local = (ENDPOINTS[family][0][0],)
    return restore_input([_svc(family)], family=family, local_ips=local, config=config).splitlines()


def _nft(family: int, config: ProxyConfig) -> list[str]:
    local = (ENDPOINTS[family][0][0],)
    return render([_svc(family)], (), family, local, config).splitlines()


def test_pod_cidr_is_the_familys_cluster_cidr_or_none() -> None:
    """kubeadm-style: 10.244.0.0/16 and fd00:10:244::/56; EKS: none in either family; a
    clusterCIDR of one family leaves the other proxier without a detector."""
    assert (DEFAULT_CONFIG.pod_cidr(4), DEFAULT_CONFIG.pod_cidr(6)) == (
        "10.244.0.0/16",
        "fd00:10:244::/56",
    )
    assert (EKS_CONFIG.pod_cidr(4), EKS_CONFIG.pod_cidr(6)) == (None, None)
    only4 = ProxyConfig(cluster_cidrs=("10.0.0.0/8",))
    assert (only4.pod_cidr(4), only4.pod_cidr(6)) == ("10.0.0.0/8", None)


def test_the_aws_vpc_lab_runs_eks_kube_proxy_and_the_others_kubeadms() -> None:
    """`--cni aws-vpc` gets EKS's configuration; bridge, calico and ptp the pod-CIDR one."""
    assert proxy_config(LabSpec("x", cni="aws-vpc")) == EKS_CONFIG
    for cni in ("bridge", "calico", "ptp"):
        assert proxy_config(LabSpec("x", cni=cni)) == DEFAULT_CONFIG


@pytest.mark.parametrize("family", [4, 6])
def test_iptables_without_cluster_cidr_drops_only_the_detector_rules(family: int) -> None:
    """iptables: EKS's rules are the default ones less the "cluster IP" `! -s CIDR -j
    KUBE-MARK-MASQ` and the "pod traffic" `-s CIDR` short-circuit, in the same order; the
    hairpin `-s ENDPOINT -j KUBE-MARK-MASQ` stays."""
    cidr = DEFAULT_CONFIG.pod_cidr(family)
    default, eks = _iptables(family, DEFAULT_CONFIG), _iptables(family, EKS_CONFIG)
    dropped = [line for line in default if f"-s {cidr} " in line]
    assert len(dropped) == 2, dropped
    assert any(f"! -s {cidr} -j KUBE-MARK-MASQ" in line for line in dropped)
    assert any('"pod traffic for default/web-local:http' in line for line in dropped)
    assert eks == [line for line in default if line not in dropped]
    svc = _svc(family)
    ip = svc.endpoints[0][0]
    hairpin = (
        f"-A {svc.sep_chains[0]} -m comment --comment {svc.port_ref} -s {ip} -j KUBE-MARK-MASQ"
    )
    assert hairpin in eks


@pytest.mark.parametrize("family", [4, 6])
def test_nft_without_cluster_cidr_drops_only_the_detector_rules(family: int) -> None:
    """nftables: EKS's table is the default one less `saddr != CIDR jump mark-for-masquerade`
    and the "short-circuit pod traffic" rule; the endpoints' hairpin rules stay."""
    cidr = DEFAULT_CONFIG.pod_cidr(family)
    default, eks = _nft(family, DEFAULT_CONFIG), _nft(family, EKS_CONFIG)
    dropped = [line for line in default if f" {cidr} " in line]
    assert len(dropped) == 2, dropped
    assert any(f"saddr != {cidr} jump mark-for-masquerade" in line for line in dropped)
    assert any('comment "short-circuit pod traffic"' in line for line in dropped)
    assert eks == [line for line in default if line not in dropped]
    ip_kw = "ip" if family == 4 else "ip6"
    for ip, _ in ENDPOINTS[family]:
        assert any(line.endswith(f"{ip_kw} saddr {ip} jump mark-for-masquerade") for line in eks)
