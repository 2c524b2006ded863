"""The netfilter tables of a namespace other than the node's own: which exist, and the
rule count of each nf_tables chain.

A pod's namespace has none unless something wrote them there. A service mesh does:
Istio's istio-init (or its CNI plugin) writes nat ISTIO_OUTPUT, which REDIRECTs the pod's
connections to its sidecar on 15001, and ISTIO_INBOUND for what comes in; Linkerd's
linkerd-init writes PROXY_INIT_OUTPUT. Docker's embedded DNS writes DOCKER_OUTPUT in a
container on a user network. Such rules decide a pod's packets before the node sees
them; the trace must not say where a packet goes as if they were not there.

Read by the namespace scan's opener while it is inside the namespace (`read_here`):
- nf_tables (native and iptables-nft alike): its tables, their chains and each chain's
  rule count, over a NETLINK_NETFILTER socket -- only where nfnetlink and nf_tables are
  in the kernel (`NEEDED`, podpath.collectors.kernel_modules): opening that socket, or
  asking nfnetlink for nf_tables, would otherwise load them, and a read loads nothing.
- legacy iptables: the tables /proc/thread-self/net/ip_tables_names and ip6_tables_names
  list (those files exist only while ip_tables is loaded). Their rules are not counted:
  counting asks the table itself (getsockopt IPT_SO_GET_INFO), which creates a table
  missing from the namespace.
"""

from __future__ import annotations

import os

from podpath.collectors.nftables.netlink import FAMILIES, HOOKS, NftSocket
from podpath.snapshot.model import NetfilterChain, NetfilterTable

# The modules the nf_tables read needs, with their paths in modules.builtin.
NEEDED = {
    "nfnetlink": "kernel/net/netfilter/nfnetlink.ko",
    "nf_tables": "kernel/net/netfilter/nf_tables.ko",
}
_LEGACY = (("ip", "ip_tables_names"), ("ip6", "ip6_tables_names"))
TIMEOUT = 1.0


def read_here() -> tuple[NetfilterTable, ...]:
    """The calling thread's namespace's netfilter tables, for a caller that checked that
    nf_tables is in the kernel (`NEEDED`). Raises OSError when the kernel refuses (it
    needs CAP_NET_ADMIN there) or a dump fails."""
    return (*_nf_tables(), *_legacy_tables())


def _nf_tables() -> list[NetfilterTable]:
    tables = []
    with NftSocket(TIMEOUT) as sock:
        for number, name in sock.table_names():
            family = FAMILIES.get(number, str(number))
            chains = tuple(
                NetfilterChain(
                    chain.name,
                    HOOKS[chain.hooknum]
                    if chain.hooknum is not None and chain.hooknum < len(HOOKS)
                    else None,
                    len(sock.rules(number, name, chain.name)),
                    chain.type,
                )
                for chain in sock.chains(number, name)
            )
            tables.append(NetfilterTable("nft", family, name, chains))
    return tables


def _legacy_tables() -> list[NetfilterTable]:
    found = []
    for family, listing in _LEGACY:
        # os.open and one read: Path.read_text took 130 us a file, here run per namespace.
        try:
            fd = os.open(f"/proc/thread-self/net/{listing}", os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            continue  # ip_tables (ip6_tables) not loaded: no legacy table anywhere
        try:
            text = os.read(fd, 65536).decode("ascii", "replace")
        finally:
            os.close(fd)
        found += [NetfilterTable("legacy", family, name) for name in text.split()]
    return found
