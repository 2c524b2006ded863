"""CNI: the configuration the runtime would pick, its plugin chain, IPAM state.

containerd and CRI-O use libcni's ConfFiles: files in /etc/cni/net.d ending in
.conf, .conflist or .json, sorted by name; the first one that loads is the network.
host-local IPAM keeps one file per reserved IP under
<dataDir>/<network>/<ip> (default dataDir /var/lib/cni/networks) holding the
container ID and, since CNI 0.4, a second line with the interface name;
`last_reserved_ip.N` and `lock` are bookkeeping.
"""

from __future__ import annotations

import ipaddress
import json
import threading
from dataclasses import dataclass
from typing import Any

from podpath.collectors.hostroot import CollectorError, HostRoot, Vanished
from podpath.snapshot.model import CniConfig, CniState, Gap, IpamAllocation

CONFIG_DIR = "/etc/cni/net.d"
HOST_LOCAL_DIR = "/var/lib/cni/networks"
CONFIG_EXTENSIONS = (".conf", ".conflist", ".json")
_MAX_CONFIG = 1024 * 1024


@dataclass(frozen=True)
class IpamRange:
    """One IPAM range of a plugin in a config's chain."""

    plugin: str  # the plugin type that carries the ipam block
    ipam_type: str
    subnet: str | None
    range_start: str | None = None
    range_end: str | None = None
    gateway: str | None = None
    data_dir: str | None = None  # host-local dataDir override


def _load(text: str) -> Any:
    return json.loads(text)


def _plugins_of(doc: dict[str, Any], conflist: bool) -> list[dict[str, Any]]:
    if conflist:
        plugins = doc.get("plugins")
        if not isinstance(plugins, list) or not plugins:
            raise ValueError('a .conflist needs a non-empty "plugins" list')
        if not all(isinstance(p, dict) and isinstance(p.get("type"), str) for p in plugins):
            raise ValueError('every plugin needs a string "type"')
        return plugins
    if not isinstance(doc.get("type"), str):
        raise ValueError('a single-plugin config needs a string "type"')
    return [doc]


def parse_cni_config(path: str, text: str) -> CniConfig:
    """Parse one CNI config file; an invalid one carries `error` instead of raising."""
    conflist = path.endswith(".conflist")
    try:
        doc = _load(text)
        if not isinstance(doc, dict):
            raise ValueError("not a JSON object")
        if not isinstance(doc.get("name"), str) or not doc["name"]:
            raise ValueError('missing network "name"')
        plugins = _plugins_of(doc, conflist)
    except (ValueError, RecursionError) as err:
        return CniConfig(path=path, text=text, error=_one_line(err))
    version = doc.get("cniVersion")
    return CniConfig(
        path=path,
        text=text,
        name=doc["name"],
        cni_version=version if isinstance(version, str) else None,
        plugins=tuple(str(p["type"]) for p in plugins),
    )


def _one_line(err: BaseException) -> str:
    return str(err).splitlines()[0] if str(err) else type(err).__name__


def ipam_ranges(config: CniConfig) -> tuple[IpamRange, ...]:
    """The IPAM ranges of a valid config (pure: parsed from the config's text)."""
    if config.error:
        return ()
    doc = _load(config.text)
    plugins = _plugins_of(doc, config.path.endswith(".conflist"))
    out: list[IpamRange] = []
    for plugin in plugins:
        ipam = plugin.get("ipam")
        if not isinstance(ipam, dict):
            continue
        kind = str(ipam.get("type", ""))
        data_dir = ipam.get("dataDir") if isinstance(ipam.get("dataDir"), str) else None
        if isinstance(ipam.get("subnet"), str):
            out.append(
                IpamRange(
                    str(plugin["type"]),
                    kind,
                    ipam["subnet"],
                    _s(ipam, "rangeStart"),
                    _s(ipam, "rangeEnd"),
                    _s(ipam, "gateway"),
                    data_dir,
                )
            )
        for rangeset in ipam.get("ranges") or []:
            for r in rangeset if isinstance(rangeset, list) else []:
                if isinstance(r, dict):
                    out.append(
                        IpamRange(
                            str(plugin["type"]),
                            kind,
                            _s(r, "subnet"),
                            _s(r, "rangeStart"),
                            _s(r, "rangeEnd"),
                            _s(r, "gateway"),
                            data_dir,
                        )
                    )
        if not any(o.plugin == plugin["type"] for o in out):
            out.append(IpamRange(str(plugin["type"]), kind, None, data_dir=data_dir))
    return tuple(out)


def _s(d: dict[str, Any], key: str) -> str | None:
    v = d.get(key)
    return v if isinstance(v, str) else None


def read_configs(host: HostRoot, config_dir: str, gaps: list[Gap]) -> tuple[CniConfig, ...]:
    """Every candidate config file in lexical order (libcni's ConfFiles order)."""
    try:
        names = sorted(n for n in host.listdir(config_dir) if n.endswith(CONFIG_EXTENSIONS))
    except Vanished:
        return ()
    except CollectorError as err:
        gaps.append(err.to_gap())
        return ()
    out = []
    for name in names:
        path = f"{config_dir.rstrip('/')}/{name}"
        try:
            text = host.read_text(path, limit=_MAX_CONFIG)
        except CollectorError as err:
            if not isinstance(err, Vanished):
                gaps.append(err.to_gap())
            continue
        out.append(parse_cni_config(path, text))
    return tuple(out)


def parse_allocation(network: str, ip_name: str, content: str) -> IpamAllocation | None:
    """One host-local reservation file; None for bookkeeping files and junk."""
    try:
        ipaddress.ip_address(ip_name)
    except ValueError:
        return None  # lock, last_reserved_ip.0, ...
    lines = content.splitlines()
    cid = lines[0].strip() if lines else ""
    ifname = lines[1].strip() if len(lines) > 1 and lines[1].strip() else None
    return IpamAllocation(network=network, ip=ip_name, container_id=cid, ifname=ifname)


def read_host_local(
    host: HostRoot, data_dirs: tuple[str, ...], gaps: list[Gap]
) -> tuple[IpamAllocation, ...]:
    """All host-local reservations under the given data dirs."""
    out: list[IpamAllocation] = []
    for data_dir in data_dirs:
        try:
            networks = sorted(host.listdir(data_dir))
        except Vanished:
            continue
        except CollectorError as err:
            gaps.append(err.to_gap())
            continue
        for net in networks:
            try:
                files = sorted(host.listdir(f"{data_dir}/{net}"))
            except CollectorError:
                continue
            for name in files:
                try:
                    content = host.read_text(f"{data_dir}/{net}/{name}", limit=4096)
                except CollectorError:
                    continue
                alloc = parse_allocation(net, name, content)
                if alloc is not None:
                    out.append(alloc)
    return tuple(out)


def mark_stale(
    allocations: tuple[IpamAllocation, ...], sandbox_ids: set[str]
) -> tuple[IpamAllocation, ...]:
    """Flag reservations whose container is not a known sandbox (leaked addresses)."""
    return tuple(
        IpamAllocation(
            a.network, a.ip, a.container_id, a.ifname, stale=a.container_id not in sandbox_ids
        )
        for a in allocations
    )


def collect_cni(
    host: HostRoot,
    cancel: threading.Event | None = None,
    *,
    sandbox_ids: set[str] | None = None,
    config_dir: str = CONFIG_DIR,
) -> tuple[CniState, tuple[Gap, ...]]:
    """CNI configs, the active one, and host-local allocations (stale ones flagged)."""
    gaps: list[Gap] = []
    configs = read_configs(host, config_dir, gaps)
    active = next((c for c in configs if c.error is None), None)
    dirs = [HOST_LOCAL_DIR]
    if active is not None:
        dirs += [r.data_dir for r in ipam_ranges(active) if r.data_dir and r.data_dir not in dirs]
    allocations: tuple[IpamAllocation, ...] = ()
    if cancel is None or not cancel.is_set():
        allocations = read_host_local(host, tuple(dirs), gaps)
    if sandbox_ids is not None:
        allocations = mark_stale(allocations, sandbox_ids)
    return CniState(
        config_dir=config_dir,
        configs=configs,
        active=active.path if active else None,
        allocations=allocations,
    ), tuple(gaps)
