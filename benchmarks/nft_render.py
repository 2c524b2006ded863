"""kube-proxy's nftables mode for the benchmark: the lab's renderer (podpath.lab.kubeproxy_nft).

The synthetic node's `table ip kube-proxy` is exactly what `podpath lab up --proxy-mode
nftables` programs; this module only names it for node_build.py.
"""

from __future__ import annotations

from podpath.lab.kubeproxy_nft import render

__all__ = ["render"]
