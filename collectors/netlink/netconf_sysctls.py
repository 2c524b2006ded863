"""The interface sysctls netconf does not carry, read from /proc/sys in the namespace.

RTM_GETNETCONF sends forwarding, rp_filter, proxy_arp/proxy_ndp, mc_forwarding and
ignore_routes_with_linkdown only. IPv4's accept_local, route_localnet and src_valid_mark,
which the kernel also consults when it routes a received packet (fib_validate_source,
ip_route_input_slow), and IPv6's force_forwarding (Linux 6.17+: forward what this
interface receives whatever conf/all/forwarding says, ip6_forward), exist only as files
under /proc/sys/net/ipv{4,6}/conf. What those files show depends on the network
namespace of the thread that opens them (the sysctl root looks up
current->nsproxy->net_ns), so they are read by the scanner's thread while it is in the
namespace, as its socket is opened there.
"""

from __future__ import annotations

import dataclasses
import os

from podpath.snapshot.model import Link, NetConf

CONF_DIRS = {4: "/proc/sys/net/ipv4/conf", 6: "/proc/sys/net/ipv6/conf"}
KEYS = {4: ("accept_local", "route_localnet", "src_valid_mark"), 6: ("force_forwarding",)}
_NAMED = {"all": -1, "default": -2}

# family -> conf/DEV name -> key -> value
ConfValues = dict[int, dict[str, dict[str, int]]]


def read_conf(conf_dirs: dict[int, str] | None = None) -> ConfValues:
    """Each family's conf/DEV KEYS of the calling thread's namespace (absent ones skipped)."""
    dirs = CONF_DIRS if conf_dirs is None else conf_dirs
    return {family: _read_family(path, KEYS[family]) for family, path in dirs.items()}


def _read_family(conf_dir: str, keys: tuple[str, ...]) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    try:
        names = os.listdir(conf_dir)
    except OSError:
        return out  # no such family (or no procfs): the fields stay unknown
    for name in names:
        values: dict[str, int] = {}
        for key in keys:
            try:
                with open(os.path.join(conf_dir, name, key), "rb") as f:
                    values[key] = int(f.read().strip())
            except (OSError, ValueError):
                continue  # a device gone meanwhile, or a kernel without the key
        if values:
            out[name] = values
    return out


def merge(netconf: list[NetConf], links: list[Link], conf: ConfValues) -> list[NetConf]:
    """The netconf entries with the procfs values of the same family and device (by name)."""
    by_index = {**_NAMED, **{link.name: link.ifindex for link in links}}
    values = {
        (family, by_index[name]): v
        for family, devs in conf.items()
        for name, v in devs.items()
        if name in by_index
    }
    return [
        dataclasses.replace(c, **values[(c.family, c.ifindex)])
        if (c.family, c.ifindex) in values
        else c
        for c in netconf
    ]
