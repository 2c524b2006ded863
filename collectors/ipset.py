"""The node's ipsets, as `ipset save` prints them (read-only; never when ip_set is absent).

kube-proxy's IPVS mode keeps its ClusterIPs, NodePorts and LoadBalancer source ranges in
ipsets (KUBE-CLUSTER-IP, KUBE-NODE-PORT-TCP, KUBE-LOAD-BALANCER-SOURCE-CIDR...) that its
few iptables rules match with `-m set`; Calico's and kube-router's policies do too.
`ipset save` only lists, but asking the kernel's ipset subsystem for anything makes
nfnetlink load the ip_set module when it is missing; podpath runs it only when
/sys/module/ip_set shows that ip_set is already in the kernel.
"""

from __future__ import annotations

import threading

from podpath.collectors.commands import CommandRunner
from podpath.collectors.hostroot import HostRoot
from podpath.snapshot.model import Gap, IpsetDump

SAVE_ARGS = ("save",)


def collect_ipsets(
    host: HostRoot, runner: CommandRunner, cancel: threading.Event | None = None
) -> tuple[IpsetDump | None, list[Gap]]:
    """`ipset save` of the collector's netns; None when ip_set or the tool is absent."""
    if not host.exists("/sys/module/ip_set"):
        return None, []  # no ip_set in this kernel: nothing can use a set
    if runner.which("ipset") is None:
        return None, [Gap("ipset", "ipset is not installed: sets are unknown", "missing-tool")]
    result = runner.run("ipset", SAVE_ARGS, cancel)
    gaps = list(result.warnings)
    if result.gap is not None:
        return None, [*gaps, result.gap]
    return IpsetDump(result.stdout, ("ipset", *SAVE_ARGS)), gaps
