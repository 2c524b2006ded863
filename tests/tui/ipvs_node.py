"""A node in kube-proxy's IPVS mode, made from real dumps (tests/fixtures/realworld)."""

from __future__ import annotations

import sys
from pathlib import Path

from podpath.netfilter.ipvs import parse_ipvs
from podpath.snapshot.model import Snapshot

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))
from trace_factory import NodeSpec, PodSpec, build_node, ipvs_mode  # noqa: E402

REALWORLD = Path(__file__).resolve().parents[1] / "fixtures" / "realworld"
# kube-router's toolbox listing: five virtual services, rr, persistence with a mask,
# 45 active connections; its real servers are an apiserver, coredns and etcd.
KUBE_ROUTER = "kube-router-toolbox-ipvsadm-persistent-mask.txt"
# prometheus/procfs's /proc/net/ip_vs: hex, wlc and sh, Tunnel/Route, IPv6, a fwmark.
PROC_HEX = "procfs-proc-net-ip_vs-hex-tunnel-route-fwm.txt"
DNS_POD = "kube-system/coredns-7d8f9c6b5-x2v9q"


def listing(name: str) -> str:
    """A real IPVS listing of the fixtures."""
    return (REALWORLD / "ipvs" / name).read_text()


def ipvs_node(ip_vs: str | None = None, *, ipvs: bool = True) -> Snapshot:
    """node-a in IPVS mode: coredns at the listing's 10.2.0.2, the node at 10.10.3.2 (its apiserver).

    The virtual services' addresses are on kube-ipvs0 with local routes, as kube-proxy
    puts them; the iptables rules are IPVS mode's (a real `iptables -t nat -nL`).
    """
    text = listing(KUBE_ROUTER) if ip_vs is None else ip_vs
    rules = (
        REALWORLD / "iptables" / "k8s-ipvs-mode-iptables-t-nat-nL-loadbalancer.txt"
    ).read_text()
    name, namespace = DNS_POD.split("/")[1], DNS_POD.split("/")[0]
    snap = build_node(
        NodeSpec(
            address="10.10.3.2",
            gateway="10.10.3.1",
            pod_cidr="10.2.0.0/24",
            pods=[PodSpec(name, "10.2.0.2", namespace), PodSpec("web-5c9d7-abcde", "10.2.0.3")],
            iptables=rules,
        )
    )
    vips = sorted({s.address for s in parse_ipvs(text) if s.address and ":" not in s.address})
    return ipvs_mode(snap, text, vips, ipvs=ipvs)
