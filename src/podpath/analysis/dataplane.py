"""Which dataplane moves the node's Service traffic: kube-proxy's mode and the netfilter backends.

The mode itself is decided in one place, `podpath.netfilter.kube_proxy.detect_mode`
(from canary chains, kube-proxy's own nft table and the IPVS-mode chains); this module
words it for the front ends.
"""

from __future__ import annotations

from podpath.analysis.index import SnapshotIndex
from podpath.netfilter.kube_proxy import KubeProxyMode


def mode_text(mode: KubeProxyMode | None) -> str:
    """kube-proxy's mode in a few words: `iptables (iptables-nft)`, `ipvs (...)`, `nftables`."""
    if mode is None:
        return "unknown (the rules could not be read)"
    if mode.mode is None:
        hint = f" (kubelet's chains are in {mode.backend})" if mode.backend else ""
        return "not found" + hint
    if mode.backend is None or mode.backend == mode.mode:
        return mode.mode
    return f"{mode.mode} ({mode.backend})"


def iptables_backends(index: SnapshotIndex) -> list[str]:
    """The iptables dumps that hold at least one rule, as backend/family."""
    return sorted({f"{d.backend}/{d.family}" for d in index.snapshot.iptables if "\n-A " in d.text})
