"""The interface sysctls netconf does not carry, read from /proc/sys in the namespace.

RTM_GETNETCONF sends forwarding, rp_filter, proxy_arp/proxy_ndp, mc_forwarding and
ignore_routes_with_linkdown only. IPv4's accept_local, route_localnet and src_valid_mark,
which the kernel also consults when it routes a received packet (fib_validate_source,
ip_route_input_slow), and IPv6's force_forwarding (Linux 6.17+: forward what this
interface receives whatever conf/all/forwarding says, ip6_forward), exist only as files
under /proc/sys/net/ipv{4,6}/conf. What those files show depends on the network
namespace of the thread that opens them (the sysctl root looks up
current->nsproxy->net_ns), so they are read by the scanner's thread while it is in the
namespace, as its socket is opened there. So is the namespace's ip_local_port_range,
where a connecting socket that binds no port takes its source port from (each new
namespace starts at 32768-60999, whatever the node's own is: inet_init_net).
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


PORT_RANGE = "/proc/sys/net/ipv4/ip_local_port_range"


def read_port_range(path: str = PORT_RANGE) -> tuple[int, ...]:
    """The calling thread's namespace's ip_local_port_range as (low, high); () when it
    cannot be read or is not two ports in order."""
    try:
        fd = os.open(path, _FILE)
    except OSError:
        return ()
    try:
        words = os.read(fd, _MAX_VALUE).split()
    except OSError:
        return ()
    finally:
        os.close(fd)
    try:
        low, high = (int(w) for w in words)
    except ValueError:  # not two integers
        return ()
    return (low, high) if 0 < low <= high <= 65535 else ()


def read_conf(conf_dirs: dict[int, str] | None = None) -> ConfValues:
    """Each family's conf/DEV KEYS of the calling thread's namespace (absent ones skipped)."""
    dirs = CONF_DIRS if conf_dirs is None else conf_dirs
    return {family: _read_family(path, KEYS[family]) for family, path in dirs.items()}


# Opened relative to a directory's fd, by os.open and one os.read: a namespace's conf
# tree is ~4 files a device (the root namespace of a 250-pod node: ~1,000), and
# builtins.open of a full /proc/sys path cost ~60 us a file (a buffered file object:
# fstat, ioctl, two reads; the path walked again) against ~10 us: 0.32 s of a
# 251-namespace scan, now ~0.13 s (docs/performance.md, "Interface sysctls").
_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
_FILE = os.O_RDONLY | os.O_CLOEXEC
# A sysctl file holds one integer and a newline; procfs hands it over in one read.
_MAX_VALUE = 4096


def _read_family(conf_dir: str, keys: tuple[str, ...]) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    try:
        top = os.open(conf_dir, _DIR)
    except OSError:
        return out  # no such family (or no procfs): the fields stay unknown
    try:
        names = os.listdir(top)
        # Every conf/DEV directory holds the same files as conf/all (the kernel
        # registers one table for all, default and each device: devinet_sysctl_register,
        # addrconf_sysctl_register): a key all lacks (force_forwarding before 6.17) is
        # not looked for under each device.
        present = _values(top, "all", keys)
        if "all" in names:
            keys = tuple(key for key in keys if key in present)
            if not keys:
                return out
        for name in names:
            values = present if name == "all" else _values(top, name, keys)
            if values:
                out[name] = values
    except OSError:
        pass  # the family's directory became unreadable: what was read is kept
    finally:
        os.close(top)
    return out


def _values(top: int, name: str, keys: tuple[str, ...]) -> dict[str, int]:
    """conf/NAME's values of `keys` (a device gone meanwhile, or a key absent: skipped)."""
    values: dict[str, int] = {}
    try:
        device = os.open(name, _DIR, dir_fd=top)
    except OSError:
        return values
    try:
        for key in keys:
            try:
                fd = os.open(key, _FILE, dir_fd=device)
            except OSError:
                continue
            try:
                values[key] = int(os.read(fd, _MAX_VALUE))
            except (OSError, ValueError):
                continue
            finally:
                os.close(fd)
    finally:
        os.close(device)
    return values


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
