"""kindnet's node shape: Debian's CNI ptp plugin with host-local IPAM in /run/cni-ipam-state.

kindnetd writes this conflist (kubernetes-sigs/kind images/kindnetd/cmd/kindnetd/cni.go)
and routes every other node's pod CIDR via that node's address; ptp gives each pod a
veth whose host end holds the gateway address, a /32 (/128) host route to the pod,
and the pod a route to the gateway on its link and its default route via it.
"""

from __future__ import annotations

from typing import Any

from podpath.lab.network import host_gw_routes
from podpath.lab.records import LabSpec, NodeRecord

CONFLIST_NAME = "10-kindnet.conflist"
NETWORK_NAME = "kindnet"
IPAM_DATA_DIR = "/run/cni-ipam-state"


def conflist(cidrs: list[str]) -> dict[str, Any]:
    """kindnet's conflist: ptp + host-local (dataDir /run/cni-ipam-state) + portmap."""
    from podpath.lab.cni import default_routes, ipam_ranges

    return {
        "cniVersion": "0.3.1",
        "name": NETWORK_NAME,
        "plugins": [
            {
                "type": "ptp",
                "ipMasq": False,
                "ipam": {
                    "type": "host-local",
                    "dataDir": IPAM_DATA_DIR,
                    "routes": default_routes(cidrs),
                    "ranges": ipam_ranges(cidrs),
                },
                "mtu": 1500,
            },
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ],
    }


def wire(spec: LabSpec, nodes: tuple[NodeRecord, ...]) -> None:
    """kindnetd's routes: each other node's pod CIDRs via its address."""
    del spec
    if len(nodes) > 1:
        host_gw_routes(nodes)
