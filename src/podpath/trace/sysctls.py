"""The per-interface IP sysctls the kernel decides with, combined the way it combines them.

include/linux/inetdevice.h: IN_DEV_RPFILTER is max(conf/all, conf/IFACE), IN_DEV_PROXY_ARP
is conf/all OR conf/IFACE, IN_DEV_FORWARD is the interface's own value (writing
conf/all/forwarding copies itself to every interface). IPv6 forwards when
conf/all/forwarding is set or, since Linux 6.17, when the input interface's
force_forwarding is (ip6_forward). Values come from each namespace's netconf
dump; a snapshot without one (older, or a gap) falls back to the node facts read from
/proc/sys for the root namespace, and otherwise answers None: unknown, never guessed.
"""

from __future__ import annotations

from podpath.analysis.ns_tables import ns_tables
from podpath.snapshot.model import Link, NetConf, NetNamespace, NodeFacts

ALL = -1
DEFAULT = -2
RP_FILTER_MODES = {0: "off", 1: "strict", 2: "loose"}


def netconf(ns: NetNamespace, family: int, ifindex: int) -> NetConf | None:
    """The netconf entry of one interface (or ALL / DEFAULT) in one family, if collected."""
    return ns_tables(ns).netconf.get((family, ifindex))


def rp_filter(ns: NetNamespace, link: Link, facts: NodeFacts | None = None) -> int | None:
    """The effective IPv4 rp_filter of a receiving interface: max(all, interface)."""
    dev, every = netconf(ns, 4, link.ifindex), netconf(ns, 4, ALL)
    if dev is not None and every is not None:
        if dev.rp_filter is None or every.rp_filter is None:
            return None
        return max(dev.rp_filter, every.rp_filter)
    if facts is not None and link.name in facts.rp_filter and "all" in facts.rp_filter:
        return max(facts.rp_filter[link.name], facts.rp_filter["all"])
    return None


def proxy_arp(ns: NetNamespace, link: Link) -> bool | None:
    """Whether an interface answers ARP for others (proxy_arp: all OR interface)."""
    dev, every = netconf(ns, 4, link.ifindex), netconf(ns, 4, ALL)
    if dev is None or every is None or dev.proxy_neigh is None or every.proxy_neigh is None:
        return None
    return bool(dev.proxy_neigh or every.proxy_neigh)


def proxy_ndp(ns: NetNamespace, link: Link) -> bool | None:
    """Whether an interface answers neighbour solicitations from its proxy entries."""
    dev, every = netconf(ns, 6, link.ifindex), netconf(ns, 6, ALL)
    if dev is None or every is None or dev.proxy_neigh is None or every.proxy_neigh is None:
        return None
    return bool(dev.proxy_neigh or every.proxy_neigh)


def forwarding(
    ns: NetNamespace, family: int, link: Link, facts: NodeFacts | None = None
) -> bool | None:
    """Whether a packet received on `link` may be forwarded (IPv4: the interface; IPv6:
    conf/all, or the interface's force_forwarding)."""
    if family == 6:
        return _forwarding6(ns, link)
    conf = netconf(ns, 4, link.ifindex)
    if conf is not None and conf.forwarding is not None:
        return bool(conf.forwarding)
    if facts is not None and facts.ip_forward is not None:
        return bool(facts.ip_forward)
    return None


def _forwarding6(ns: NetNamespace, link: Link) -> bool | None:
    """ip6_forward(): conf/all/forwarding, or force_forwarding of the input interface
    (Linux 6.17+; a kernel without the key does not forward when all is 0; unknown
    where the namespace's /proc/sys keys were not read)."""
    every = netconf(ns, 6, ALL)
    if every is None or every.forwarding is None:
        return None
    if every.forwarding:
        return True
    forced = force_forwarding(ns, link)
    if forced is None and every.force_forwarding is None and _conf_keys_read(ns):
        return False  # conf/all has no force_forwarding: the kernel predates it
    return forced


def _conf_keys_read(ns: NetNamespace) -> bool:
    """Whether the namespace's /proc/sys conf keys were read (collectors/netlink/
    netconf_sysctls.py reads IPv4's, which every kernel has, in the same pass as
    IPv6's force_forwarding): a key left unset there is one the kernel lacks."""
    every4 = netconf(ns, 4, ALL)
    return every4 is not None and every4.accept_local is not None


def force_forwarding(ns: NetNamespace, link: Link) -> bool | None:
    """IPv6 force_forwarding of an interface (None: not read, or a kernel without it)."""
    dev = netconf(ns, 6, link.ifindex)
    if dev is None or dev.force_forwarding is None:
        return None
    return bool(dev.force_forwarding)


def has_netconf(ns: NetNamespace) -> bool:
    """True when the namespace's sysctls were collected."""
    return bool(ns.netconf)


def _or_conf(ns: NetNamespace, link: Link, key: str) -> bool | None:
    """An IPv4 sysctl the kernel reads as conf/all OR conf/IFACE (IN_DEV_ORCONF)."""
    dev, every = netconf(ns, 4, link.ifindex), netconf(ns, 4, ALL)
    if dev is None or every is None:
        return None
    mine, theirs = getattr(dev, key), getattr(every, key)
    if mine is None or theirs is None:
        return None
    return bool(mine or theirs)


def src_valid_mark(ns: NetNamespace, link: Link) -> bool | None:
    """Whether the reverse path check of a packet received on `link` uses its mark."""
    return _or_conf(ns, link, "src_valid_mark")


def accept_local(ns: NetNamespace, link: Link) -> bool | None:
    """Whether a packet received on `link` may carry one of this namespace's own addresses."""
    return _or_conf(ns, link, "accept_local")


def route_localnet(ns: NetNamespace, link: Link) -> bool | None:
    """Whether 127/8 may be routed on `link`: a loopback source leaving by it
    (__mkroute_output), a loopback source or destination arriving on it
    (ip_route_input_slow); kube-proxy sets it for NodePorts on localhost, the portmap
    plugin on its bridge for hostPorts."""
    return _or_conf(ns, link, "route_localnet")
