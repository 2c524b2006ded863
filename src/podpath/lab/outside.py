"""The lab's outside client: a namespace on the underlay that reaches external and LB IPs.

On a real cluster a router (or a cloud load balancer, or MetalLB) sends traffic for a
Service's external IPs and LoadBalancer IPs to a node, where kube-proxy's rules take
it. The lab's `outside` namespace plays that client and its router: its eth0 sits on
the underlay bridge beside the nodes' eth0, with one address inside web-lb's
loadBalancerSourceRanges and one outside them, and a route for each such IP via the
node that should receive it. It is held by a bind mount at /run/netns/outside inside
node1 (so node1's snapshot holds it and `podpath trace --from netns:outside` starts
there); nothing of it is on this machine's own /run, and it goes with node1.
"""

from __future__ import annotations

from collections.abc import Sequence

from podpath.lab.network import UNDERLAY_BRIDGE, UNDERLAY_PREFIX
from podpath.lab.node import node_path, run_in, run_in_net
from podpath.lab.plan import LOCAL_EXTERNAL_IP, OUTSIDE_ALLOWED, OUTSIDE_REFUSED
from podpath.lab.records import NodeRecord, ServiceRecord

OUTSIDE_NETNS = "outside"


def routes(svcs: Sequence[ServiceRecord], nodes: Sequence[NodeRecord]) -> dict[str, str]:
    """Each external and LoadBalancer IP -> the node address the outside router sends it to.

    Every IP goes to node1, except web-local's external IP, which goes to the last
    node: a node without a local endpoint, where externalTrafficPolicy Local drops it.
    """
    out: dict[str, str] = {}
    for svc in svcs:
        for ip in (*svc.external_ips, *svc.lb_ips):
            node = nodes[-1] if ip == LOCAL_EXTERNAL_IP else nodes[0]
            out[ip] = node.address
    return out


def make_outside(
    underlay_pid: int, nodes: Sequence[NodeRecord], svcs: Sequence[ServiceRecord]
) -> None:
    """Create the outside namespace in node1's /run/netns, wired to the underlay bridge."""
    holder = nodes[0]
    run_in(holder.init_pid, ["ip", "netns", "add", OUTSIDE_NETNS])
    # iproute2 opens a netns argument holding a '/' as a path: the underlay (this
    # machine's mount namespace) reaches node1's bind mount through /proc.
    netns_file = node_path(holder.init_pid, f"/run/netns/{OUTSIDE_NETNS}")
    port = f"veth-{OUTSIDE_NETNS}"
    run_in_net(
        underlay_pid,
        ["ip", "-batch", "-"],
        input=(
            f"link add {port} type veth peer name eth0 netns {netns_file}\n"
            f"link set {port} master {UNDERLAY_BRIDGE} up\n"
        ),
    )
    script = (
        "link set lo up\n"
        f"addr add {OUTSIDE_ALLOWED}/{UNDERLAY_PREFIX} dev eth0\n"
        f"addr add {OUTSIDE_REFUSED}/{UNDERLAY_PREFIX} dev eth0\n"
        "link set eth0 up\n"
    )
    script += "".join(
        f"route add {ip}/32 via {via} dev eth0\n" for ip, via in routes(svcs, nodes).items()
    )
    run_in(holder.init_pid, ["ip", "-n", OUTSIDE_NETNS, "-batch", "-"], input=script)
