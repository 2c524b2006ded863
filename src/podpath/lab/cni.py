"""CNI driven exactly as a runtime (libcni) drives it: conflist, ADD/DEL chains, result cache."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any

from podpath.lab.node import node_path, run_in
from podpath.lab.records import LabError

CNI_BIN_DIR = "/usr/lib/cni"
# The node's own plugin directory in its private /var/lib/cni: podpath's own plugins
# (calico, aws-cni shapes) and links to Debian's, so a runtime with one plugin
# directory (containerd 1.6's `bin_dir`) finds them all, like any other plugin.
SHIM_BIN_DIR = "/var/lib/cni/bin"
CNI_PATH = f"{CNI_BIN_DIR}:{SHIM_BIN_DIR}"
CONF_DIR = "/etc/cni/net.d"
CONFLIST_NAME = "10-containerd-net.conflist"
NETWORK_NAME = "containerd-net"
BRIDGE = "cni0"
CNI_VERSION = "1.0.0"
RESULTS_DIR = "/var/lib/cni/results"


def ipam_ranges(cidrs: list[str]) -> list[list[dict[str, str]]]:
    """host-local `ranges`: one range set per family, so a pod gets one address of each."""
    return [[{"subnet": cidr}] for cidr in cidrs]


def default_routes(cidrs: list[str]) -> list[dict[str, str]]:
    """A default route for each family present."""
    return [{"dst": "::/0" if ":" in c else "0.0.0.0/0"} for c in cidrs]


def portmap_plugin(mark_chain: str | None = "KUBE-MARK-MASQ") -> dict[str, Any]:
    """The portmap plugin's entry, marking hostPort traffic for SNAT in `mark_chain`.

    portmap marks hostPort traffic for SNAT in kube-proxy's KUBE-MARK-MASQ chain when
    kube-proxy runs in iptables mode; with kube-proxy in nftables mode there is no such
    chain, and portmap uses its own (CNI-HOSTPORT-SETMARK, CNI-HOSTPORT-MASQ).
    """
    portmap: dict[str, Any] = {"type": "portmap", "capabilities": {"portMappings": True}}
    if mark_chain is not None:
        portmap["externalSetMarkChain"] = mark_chain
    return portmap


def conflist(
    pod_cidr: str,
    mtu: int,
    pod_cidr6: str | None = None,
    mark_chain: str | None = "KUBE-MARK-MASQ",
) -> dict[str, Any]:
    """The node's conflist: bridge cni0 + host-local IPAM + portmap (containerd's example).

    With an IPv6 CIDR (IPv6-only labs pass it alone as `pod_cidr`) host-local gives each
    pod one address per family, and the bridge plugin a gateway of each on cni0.
    `mark_chain` is portmap's SNAT mark chain (portmap_plugin).
    """
    cidrs = [pod_cidr] + ([pod_cidr6] if pod_cidr6 else [])
    return {
        "cniVersion": CNI_VERSION,
        "name": NETWORK_NAME,
        "plugins": [
            {
                "type": "bridge",
                "bridge": BRIDGE,
                "isGateway": True,
                # The overlay keeps pod IPs end to end; kube-proxy does Service SNAT.
                "ipMasq": False,
                "hairpinMode": True,
                "mtu": mtu,
                "ipam": {
                    "type": "host-local",
                    "ranges": ipam_ranges(cidrs),
                    "routes": default_routes(cidrs),
                },
            },
            portmap_plugin(mark_chain),
        ],
    }


def install_conflist(init_pid: int, conf: dict[str, Any], filename: str = CONFLIST_NAME) -> None:
    """Write the conflist where the runtime reads it, inside the node."""
    path = node_path(init_pid, f"{CONF_DIR}/{filename}")
    path.write_text(json.dumps(conf, indent=2) + "\n")


def read_conflist(init_pid: int) -> dict[str, Any]:
    """The conflist a runtime would use: the lexically first *.conflist (libcni's order)."""
    found = sorted(node_path(init_pid, CONF_DIR).glob("*.conflist"))
    if not found:
        raise FileNotFoundError(f"no conflist in {CONF_DIR}")
    conf: dict[str, Any] = json.loads(found[0].read_text())
    return conf


@dataclass(frozen=True)
class CniPod:
    """What a runtime passes to CNI for one pod sandbox."""

    container_id: str  # the sandbox id
    netns: str  # path of the pod netns inside the node
    namespace: str
    name: str
    uid: str
    port_mappings: tuple[tuple[int, int, str], ...] = ()  # (hostPort, containerPort, proto)

    def cni_args(self) -> list[tuple[str, str]]:
        """CNI_ARGS pairs, as the CRI plugin sets them."""
        return [
            ("IgnoreUnknown", "1"),
            ("K8S_POD_NAMESPACE", self.namespace),
            ("K8S_POD_NAME", self.name),
            ("K8S_POD_INFRA_CONTAINER_ID", self.container_id),
            ("K8S_POD_UID", self.uid),
        ]

    def runtime_config(self) -> dict[str, Any]:
        """Capability arguments (libcni's runtimeConfig) the runtime offers."""
        return {
            "portMappings": [
                {"hostPort": h, "containerPort": c, "protocol": p} for h, c, p in self.port_mappings
            ]
        }


def _plugin_conf(
    conf: dict[str, Any], plugin: dict[str, Any], pod: CniPod, prev: dict[str, Any] | None
) -> dict[str, Any]:
    # libcni buildOneConfig: inject name and cniVersion, the capability args the plugin
    # declares, and the previous plugin's result.
    out = {**plugin, "name": conf["name"], "cniVersion": conf["cniVersion"]}
    caps = plugin.get("capabilities", {})
    runtime = {k: v for k, v in pod.runtime_config().items() if caps.get(k) and v}
    if runtime:
        out["runtimeConfig"] = runtime
    if prev is not None:
        out["prevResult"] = prev
    return out


def _invoke(
    init_pid: int, command: str, plugin_conf: dict[str, Any], pod: CniPod, ifname: str = "eth0"
) -> str:
    env = {
        "CNI_COMMAND": command,
        "CNI_CONTAINERID": pod.container_id,
        "CNI_NETNS": pod.netns,
        "CNI_IFNAME": ifname,
        "CNI_ARGS": ";".join(f"{k}={v}" for k, v in pod.cni_args()),
        "CNI_PATH": CNI_PATH,
    }
    done = run_in(
        init_pid,
        [_plugin_path(init_pid, plugin_conf["type"])],
        input=json.dumps(plugin_conf),
        env=env,
        check=False,
        timeout=60,
    )
    if done.returncode != 0:
        raise LabError(
            f"CNI {command} of {plugin_conf['type']} failed for {pod.namespace}/{pod.name}: "
            f"{(done.stdout + done.stderr).strip()[-1000:]}"
        )
    return done.stdout


def _plugin_path(init_pid: int, plugin: str) -> str:
    """Where a plugin lives on the node's CNI_PATH (Debian's first, then podpath's own)."""
    for d in CNI_PATH.split(":"):
        if node_path(init_pid, f"{d}/{plugin}").exists():
            return f"{d}/{plugin}"
    raise LabError(f"CNI plugin {plugin!r} is not installed on the node ({CNI_PATH})")


def _loopback(conf: dict[str, Any]) -> dict[str, Any]:
    # containerd's CRI sets up `lo` first with go-cni's built-in "cni-loopback" network
    # (WithLoNetwork), then the default network from /etc/cni/net.d.
    return {"cniVersion": conf["cniVersion"], "name": "cni-loopback", "type": "loopback"}


def add(init_pid: int, conf: dict[str, Any], pod: CniPod) -> dict[str, Any]:
    """CNI ADD of lo, then through the whole conflist; caches and returns the final result."""
    _invoke(init_pid, "ADD", _loopback(conf), pod, ifname="lo")
    prev: dict[str, Any] | None = None
    for plugin in conf["plugins"]:
        out = _invoke(init_pid, "ADD", _plugin_conf(conf, plugin, pod, prev), pod)
        try:
            prev = json.loads(out)
        except ValueError as exc:
            raise LabError(f"CNI {plugin['type']} printed no JSON result: {out[:200]!r}") from exc
    assert prev is not None
    _write_cache(init_pid, conf, pod, prev)
    return prev


def delete(init_pid: int, conf: dict[str, Any], pod: CniPod) -> None:
    """CNI DEL through the conflist in reverse, with the cached result as prevResult."""
    cache = node_path(init_pid, _cache_path(conf, pod))
    prev: dict[str, Any] | None = None
    try:
        prev = json.loads(cache.read_text()).get("result")
    except (FileNotFoundError, ValueError):
        prev = None
    for plugin in reversed(conf["plugins"]):
        _invoke(init_pid, "DEL", _plugin_conf(conf, plugin, pod, prev), pod)
    _invoke(init_pid, "DEL", _loopback(conf), pod, ifname="lo")
    cache.unlink(missing_ok=True)


def _cache_path(conf: dict[str, Any], pod: CniPod) -> str:
    return f"{RESULTS_DIR}/{conf.get('name', NETWORK_NAME)}-{pod.container_id}-eth0"


def _write_cache(init_pid: int, conf: dict[str, Any], pod: CniPod, result: dict[str, Any]) -> None:
    # libcni's result cache (cniCacheV1): what `crictl inspectp` and CNI DEL/CHECK use.
    raw_conf = json.dumps(conf).encode()
    entry = {
        "kind": "cniCacheV1",
        "containerId": pod.container_id,
        "config": base64.b64encode(raw_conf).decode(),
        "ifName": "eth0",
        "networkName": conf["name"],
        "netns": pod.netns,
        "cniArgs": [list(pair) for pair in pod.cni_args()],
        "capabilityArgs": pod.runtime_config() if pod.port_mappings else {},
        "result": result,
    }
    path = node_path(init_pid, _cache_path(conf, pod))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(entry))


def pod_ips(result: dict[str, Any]) -> tuple[str, ...]:
    """Every address of the pod from a CNI result, IPv4 first."""
    found = [str(ip.get("address", "")).split("/")[0] for ip in result.get("ips", [])]
    found = sorted((a for a in found if a), key=lambda a: ":" in a)
    if not found:
        raise LabError(f"CNI result has no address: {result}")
    return tuple(found)


def pod_ip(result: dict[str, Any]) -> str:
    """The pod's primary address from a CNI result: IPv4 when it has one."""
    return pod_ips(result)[0]


def host_veth(result: dict[str, Any]) -> str:
    """The host-side veth name from a bridge plugin result (interface without sandbox)."""
    for iface in result.get("interfaces", []):
        name = str(iface.get("name", ""))
        if not iface.get("sandbox") and name != BRIDGE:
            return name
    raise LabError(f"CNI result names no host veth: {result}")
