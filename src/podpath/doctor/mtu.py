"""MTU along a traced path: where a full-size packet stops fitting, and what the kernel does then.

The packet starts as large as the MTU of the device it is sent from (a pod's eth0).
On the way:
- crossing a veth, or bridged from one port to another, a frame longer than the
  receiving device's MTU is dropped without a word (is_skb_forwardable in
  net/core/dev.c; br_dev_queue_push_xmit): connections hang on the first full-size
  packet while small probes pass;
- routed out of a device with a smaller MTU, the kernel fragments it or, with DF set
  (every TCP packet), answers ICMP "fragmentation needed", and the sender lowers its
  path MTU: this works unless something drops that ICMP;
- encapsulated (VXLAN adds 50 bytes over IPv4, 70 over IPv6), the outer packet must fit
  the underlay device, or it is fragmented (or dropped, with df set on the device).
"""

from __future__ import annotations

from podpath.analysis.index import SnapshotIndex
from podpath.doctor.causes import Aim, Cause, hop_text
from podpath.snapshot.model import Link
from podpath.trace.model import Branch, Hop

VXLAN_OVERHEAD = {4: 50, 6: 70}
IPIP_OVERHEAD = 20  # one outer IPv4 header
_TUNNEL = {"vxlan": "VXLAN", "ipip": "IP-in-IP"}


def path_mtu_cause(branch: Branch, aim: Aim, indexes: list[SnapshotIndex]) -> Cause | None:
    """The first MTU mismatch on a branch (or on its reply), or None."""
    found = _walk(branch.hops, indexes, aim)
    if found is not None:
        return found
    for reply in branch.reply:
        found = _walk(reply.hops, indexes, aim, way="the reply: ")
        if found is not None:
            return found
    return None


def _walk(
    hops: tuple[Hop, ...], indexes: list[SnapshotIndex], aim: Aim, way: str = ""
) -> Cause | None:
    by_name = {index.snapshot.node.hostname: index for index in indexes}
    if not hops or hops[0].kind != "route" or hops[0].data.get("iif") is not None:
        return None  # not sent from a namespace of a snapshot: its size is not known
    first = by_name.get(hops[0].node)
    # A pod sized by its own eth0 should fit its whole path; a node's own traffic
    # routinely narrows into pod networks, and path MTU discovery is made for that.
    from_pod = first is not None and hops[0].data.get("netns") in first.pods_by_netns
    size: int | None = None
    origin = ""
    current: Link | None = None
    sending = True  # still in the sender's namespace: its last route sets the size
    # (outer size, tunnel device, its hop): a VXLAN or IP-in-IP device's encapsulation
    pending_outer: tuple[int, Link, Hop] | None = None
    for hop in hops:
        index = by_name.get(hop.node)
        if index is None:
            return None
        data = hop.data
        if hop.kind != "route":
            sending = sending and hop.kind in ("netfilter", "nat", "conntrack")
        if hop.kind == "route":
            dev = _named(index, data.get("netns"), data.get("dev"))
            if dev is None:
                continue
            if sending:
                # A local sender sizes its packets by the route it finally uses (TCP's
                # MSS, the socket's path MTU), rerouted after OUTPUT's DNAT included.
                size, origin, current = dev.mtu, _device(index, dev), dev
                continue
            if pending_outer is not None:
                outer, vx, vx_hop = pending_outer
                pending_outer = None
                if outer > dev.mtu:
                    return _cause(
                        "warning",
                        index,
                        f"{way}{_TUNNEL[vx_hop.kind]} packets of {outer} bytes ({vx.name}'s MTU "
                        f"{vx.mtu} plus the encapsulation) exceed {dev.name}'s MTU {dev.mtu}: the "
                        "underlay "
                        "fragments or drops them",
                        f"lower {vx.name}'s MTU (and the pods') to {dev.mtu - (outer - vx.mtu)}, or "
                        f"raise {dev.name}'s",
                        vx_hop,
                        (f"{vx.name} mtu {vx.mtu}", f"{dev.name} mtu {dev.mtu}"),
                        f"{hop.node}:{vx.name}->{dev.name}",
                    )
                continue
            if size is not None and dev.mtu < size and not from_pod:
                size, origin = dev.mtu, dev.name  # fragmented, or sized by PMTU discovery
            elif size is not None and dev.mtu < size:
                return _cause(
                    "warning",
                    index,
                    f"{way}packets of up to {size} bytes from {origin} are routed out of "
                    f"{_device(index, dev)} (MTU {dev.mtu}): they need path MTU discovery (ICMP "
                    "fragmentation needed), and hang where that ICMP is dropped",
                    f"give {origin} the path's MTU ({dev.mtu}): the CNI config's mtu",
                    hop,
                    (f"{origin} mtu {size}", f"{_device(index, dev)} mtu {dev.mtu}"),
                    f"{hop.node}:{origin}->{dev.name}",
                )
            current = dev
        elif hop.kind == "link" and size is not None:
            dst = _named(index, data.get("to_netns"), data.get("to"))
            src = _named(index, data.get("from_netns"), data.get("from"))
            if dst is not None and src is not None and dst.mtu < size:
                return _l2(index, way, size, origin, src, dst, hop, "veth")
            current = dst or current
        elif hop.kind == "bridge" and size is not None and current is not None:
            if data.get("local"):
                continue
            port = _named(index, current.netns, data.get("port"))
            if port is not None and port.mtu < size:
                return _l2(
                    index, way, size, origin, current, port, hop, f"bridge {data.get('bridge')}"
                )
            current = port or current
        elif hop.kind in ("vxlan", "ipip") and size is not None and not data.get("decap"):
            device = _named(index, current.netns if current else None, data.get("dev"))
            if device is not None:
                family = 6 if ":" in str(data.get("remote") or "") else 4
                overhead = VXLAN_OVERHEAD[family] if hop.kind == "vxlan" else IPIP_OVERHEAD
                pending_outer = (min(size, device.mtu) + overhead, device, hop)
    return None


def _device(index: SnapshotIndex, dev: Link) -> str:
    """A device as a finding names it: a pod's (`pod default/web-0's eth0`) or a node's
    (`node node1's eth0`), both namespaces having an eth0 as often as not."""
    pod = index.pods_by_netns.get(dev.netns)
    if pod is not None:
        return f"pod {pod.namespace}/{pod.name}'s {dev.name}"
    if dev.netns == index.snapshot.root_netns:
        return f"node {index.snapshot.node.hostname}'s {dev.name}"
    return dev.name


def _named(index: SnapshotIndex, netns: object, name: object) -> Link | None:
    if not isinstance(netns, int) or not isinstance(name, str):
        return None
    return index.link_by_name(netns, name)


def _l2(
    index: SnapshotIndex,
    way: str,
    size: int,
    origin: str,
    src: Link,
    dst: Link,
    hop: Hop,
    across: str,
) -> Cause:
    return _cause(
        "critical",
        index,
        f"{way}frames of up to {size} bytes from {origin} cross {across} {src.name} -> "
        f"{dst.name}, whose MTU is {dst.mtu}: the kernel drops the longer ones without a word "
        "(small requests work, full-size packets hang)",
        f"give every device of the path the same MTU ({dst.mtu}, the CNI config's mtu): "
        f"ip link set {src.name} mtu {dst.mtu}, and fix what set it",
        hop,
        (f"{src.name} mtu {src.mtu}", f"{dst.name} mtu {dst.mtu}"),
        f"{hop.node}:{src.name}->{dst.name}",
    )


def _cause(
    grade: str,
    index: SnapshotIndex,
    text: str,
    fix: str,
    hop: Hop,
    evidence: tuple[str, ...],
    key: str,
) -> Cause:
    return Cause(
        "mtu-mismatch",
        grade,
        f"node {index.snapshot.node.hostname}",
        text,
        fix,
        hop_text(hop),
        evidence,
        key=key,
        partial_grade=grade,
    )
