"""The IPv4 interface sysctls netconf does not carry, read from /proc/sys in the namespace.

RTM_GETNETCONF sends forwarding, rp_filter, proxy_arp, mc_forwarding and
ignore_routes_with_linkdown only; accept_local, route_localnet and src_valid_mark,
which the kernel also consults when it routes a received packet (fib_validate_source,
ip_route_input_slow), exist only as files under /proc/sys/net/ipv4/conf. What those
files show depends on the network namespace of the thread that opens them (the sysctl
root looks up current->nsproxy->net_ns), so they are read by the scanner's thread while
it is in the namespace, as its socket is opened there.
"""

from __future__ import annotations

import dataclasses
import os

from podpath.snapshot.model import Link, NetConf

CONF_DIR = "/proc/sys/net/ipv4/conf"
KEYS = ("accept_local", "route_localnet", "src_valid_mark")
_NAMED = {"all": -1, "default": -2}


def read_conf(conf_dir: str = CONF_DIR) -> dict[str, dict[str, int]]:
    """Each conf/DEV directory's KEYS of the calling thread's namespace (absent ones skipped)."""
    out: dict[str, dict[str, int]] = {}
    try:
        names = os.listdir(conf_dir)
    except OSError:
        return out  # no IPv4 (or no procfs): the fields stay unknown
    for name in names:
        values: dict[str, int] = {}
        for key in KEYS:
            try:
                with open(os.path.join(conf_dir, name, key), "rb") as f:
                    values[key] = int(f.read().strip())
            except (OSError, ValueError):
                continue  # a device gone meanwhile, or a kernel without the key
        if values:
            out[name] = values
    return out


def merge(
    netconf: list[NetConf], links: list[Link], conf: dict[str, dict[str, int]]
) -> list[NetConf]:
    """The IPv4 netconf entries with the procfs values of the same device (matched by name)."""
    by_index = {**_NAMED, **{link.name: link.ifindex for link in links}}
    values = {by_index[name]: v for name, v in conf.items() if name in by_index}
    return [
        dataclasses.replace(c, **values[c.ifindex]) if c.family == 4 and c.ifindex in values else c
        for c in netconf
    ]
