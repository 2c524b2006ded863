"""A snapshot whose first pod has a clsact with an eBPF filter and its own rp_filter."""

from __future__ import annotations

import dataclasses

from podpath.snapshot.model import BpfProgram, NetConf, Snapshot, TcFilter, TcQdisc

PROG = BpfProgram(id=42, name="cil_from_contai", tag="1a2b3c4d5e6f7a8b")


def with_tc_and_netconf(snap: Snapshot) -> tuple[Snapshot, str]:
    """The first pod's netns gets a clsact with an ingress bpf filter, and strict rp_filter."""
    pod = snap.pods[0]
    netns = []
    for ns in snap.netns:
        if ns.inode == pod.netns_inode:
            eth0 = next(link for link in ns.links if link.name != "lo")
            ns = dataclasses.replace(
                ns,
                netconf=(NetConf(4, -1, 0, 2, 0), NetConf(4, eth0.ifindex, 0, 1, 0)),
                qdiscs=(TcQdisc(eth0.ifindex, "clsact", "ffff:", "ingress"),),
                tc_filters=(
                    TcFilter(
                        eth0.ifindex,
                        "ingress",
                        "bpf",
                        "all",
                        1,
                        handle="0x1",
                        direct_action=True,
                        program=PROG,
                    ),
                ),
            )
        netns.append(ns)
    return dataclasses.replace(snap, netns=tuple(netns)), f"{pod.namespace}/{pod.name}"
