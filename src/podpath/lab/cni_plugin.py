"""podpath's CNI plugins for pod network shapes Debian does not package: Calico's and the AWS VPC CNI's.

Run as a CNI plugin (`python -m podpath.lab.cni_plugin calico|aws-cni`, behind a
two-line wrapper on the node's CNI_PATH): the runtime's CNI_* environment and the
network configuration on stdin, the CNI result on stdout, exactly as a runtime calls
/opt/cni/bin/calico or aws-cni. IPAM is delegated to Debian's host-local, as Calico
does with `"ipam": {"type": "host-local"}`. What it builds is what those plugins build
in the kernel (public docs and source of projectcalico/calico cni-plugin, and
the cni-proposal page in aws/amazon-vpc-cni-k8s's docs):

- calico: a veth `cali` + sha1("NAMESPACE.POD")[:11] whose host end has MAC
  ee:ee:ee:ee:ee:ee, no address, proxy_arp=1 (IPv6: proxy_ndp=1); the pod gets its
  address as /32 (/128), `169.254.1.1 dev eth0 scope link` and `default via
  169.254.1.1 dev eth0` (IPv6: via the host end's link-local fe80::ecee:eeff:feee:eeee);
  the node a /32 (/128) route to the pod over the veth.
- aws-cni: a veth `eni` + sha1(...)[:11]; the pod its /32, the same two routes and a
  PERMANENT neighbour 169.254.1.1 -> the host end's MAC (no ARP at all); the node a
  /32 route in main, rule 512 `to POD lookup main` and, for an address of the
  secondary ENI, rule 1536 `from POD lookup <ENI table>`. Which ENI owns an address is
  the lab's choice: odd last octet -> the secondary ENI (table 2).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from typing import Any

GATEWAY4 = "169.254.1.1"
CALICO_MAC = "ee:ee:ee:ee:ee:ee"
CALICO_GATEWAY6 = "fe80::ecee:eeff:feee:eeee"
ENI_TABLE = 2
RULE_TO_POD = 512
RULE_FROM_POD = 1536
SUPPORTED = ["0.3.0", "0.3.1", "0.4.0", "1.0.0"]


class PluginError(Exception):
    """A failure reported to the runtime as a CNI error result."""


def _run(*argv: str, stdin: str | None = None, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        argv, input=stdin, capture_output=True, text=True, timeout=30, env=env, check=False
    )
    if done.returncode != 0:
        raise PluginError(f"{' '.join(argv)}: {(done.stdout + done.stderr).strip()[-500:]}")
    return done.stdout


def _sysctl(path: str, value: str) -> None:
    with open(f"/proc/sys/{path}", "w", encoding="ascii") as f:
        f.write(value)


def veth_name(prefix: str, namespace: str, pod: str) -> str:
    """The host-side veth name Calico and the AWS VPC CNI derive from the pod's identity."""
    return prefix + hashlib.sha1(f"{namespace}.{pod}".encode()).hexdigest()[:11]


def _args() -> dict[str, str]:
    pairs = (p.partition("=") for p in os.environ.get("CNI_ARGS", "").split(";") if p)
    return {k: v for k, _, v in pairs}


def _ipam(command: str, conf: dict[str, Any]) -> dict[str, Any]:
    """Run the configured IPAM plugin with the same environment and configuration."""
    plugin = conf.get("ipam", {}).get("type", "host-local")
    for d in os.environ.get("CNI_PATH", "").split(":"):
        path = os.path.join(d, plugin)
        if os.path.exists(path):
            out = _run(path, stdin=json.dumps(conf), env=dict(os.environ, CNI_COMMAND=command))
            return json.loads(out) if out.strip() else {}
    raise PluginError(f"IPAM plugin {plugin!r} is not on CNI_PATH")


def _link_mac(netns: str | None, name: str) -> str:
    pre = ["ip", "-n", netns] if netns else ["ip"]
    (link,) = json.loads(_run(*pre, "-j", "link", "show", "dev", name))
    return str(link["address"])


def add(kind: str, conf: dict[str, Any]) -> dict[str, Any]:
    """CNI ADD: addresses from IPAM, the veth, the routes, the neighbour, the rules."""
    args = _args()
    netns = os.path.basename(os.environ["CNI_NETNS"])
    ifname = os.environ.get("CNI_IFNAME", "eth0")
    prefix = "cali" if kind == "calico" else conf.get("vethPrefix", "eni")
    host = veth_name(prefix, args.get("K8S_POD_NAMESPACE", ""), args.get("K8S_POD_NAME", ""))
    mtu = str(conf.get("mtu", 1500))
    ipam = _ipam("ADD", conf)
    ips = [str(ip["address"]).split("/")[0] for ip in ipam.get("ips", [])]
    if not ips:
        raise PluginError("IPAM returned no address")
    veth = ("ip", "link", "add", host, "mtu", mtu, "type", "veth")
    _run(*veth, "peer", "name", ifname, "mtu", mtu, "netns", netns)
    if kind == "calico":
        _run("ip", "link", "set", host, "address", CALICO_MAC)
        _sysctl(f"net/ipv4/conf/{host}/proxy_arp", "1")
        _sysctl(f"net/ipv4/neigh/{host}/proxy_delay", "0")
        _sysctl(f"net/ipv4/conf/{host}/forwarding", "1")
    if any(":" in ip for ip in ips):
        _sysctl(f"net/ipv6/conf/{host}/accept_ra", "0")
        _sysctl(f"net/ipv6/conf/{host}/forwarding", "1")
        # The lab's choice: no DAD on the host end, so its link-local (the pods' IPv6
        # gateway) answers at once instead of a second later.
        _sysctl(f"net/ipv6/conf/{host}/accept_dad", "0")
        if kind == "calico":
            _sysctl(f"net/ipv6/conf/{host}/proxy_ndp", "1")
    _run("ip", "link", "set", host, "up")
    host_mac = _link_mac(None, host)
    pod = ["ip", "-n", netns]
    _run(*pod, "link", "set", ifname, "up")
    routes: list[dict[str, str]] = []
    for ip in ips:
        if ":" in ip:
            _run(*pod, "-6", "addr", "add", f"{ip}/128", "dev", ifname, "nodad")
            _run(*pod, "-6", "route", "add", "default", "via", CALICO_GATEWAY6, "dev", ifname)
            _run("ip", "-6", "route", "add", f"{ip}/128", "dev", host)
            routes.append({"dst": "::/0", "gw": CALICO_GATEWAY6})
            continue
        _run(*pod, "addr", "add", f"{ip}/32", "dev", ifname)
        _run(*pod, "route", "add", GATEWAY4, "dev", ifname, "scope", "link")
        _run(*pod, "route", "add", "default", "via", GATEWAY4, "dev", ifname)
        _run("ip", "route", "add", f"{ip}/32", "dev", host, "scope", "link")
        routes.append({"dst": "0.0.0.0/0", "gw": GATEWAY4})
        if kind == "aws-cni":
            gateway = ("neigh", "add", GATEWAY4, "lladdr", host_mac)
            _run(*pod, *gateway, "dev", ifname, "nud", "permanent")
            _aws_rules("add", ip)
    return {
        "cniVersion": conf.get("cniVersion", "1.0.0"),
        "interfaces": [
            {"name": host, "mac": host_mac},
            {"name": ifname, "mac": _link_mac(netns, ifname), "sandbox": os.environ["CNI_NETNS"]},
        ],
        "ips": [{"address": f"{ip}/{128 if ':' in ip else 32}", "interface": 1} for ip in ips],
        "routes": routes,
        "dns": {},
    }


def secondary_eni(ip: str) -> bool:
    """The lab's rule for which ENI owns a pod address: odd last octet -> the secondary ENI."""
    return int(ip.rsplit(".", 1)[-1]) % 2 == 1


def _aws_rules(action: str, ip: str) -> None:
    _run("ip", "rule", action, "to", ip, "lookup", "main", "pref", str(RULE_TO_POD))
    if secondary_eni(ip):
        _run("ip", "rule", action, "from", ip, "lookup", str(ENI_TABLE), "pref", str(RULE_FROM_POD))


def delete(kind: str, conf: dict[str, Any]) -> None:
    """CNI DEL: rules, the host veth (its routes go with it), then the IPAM reservation."""
    args = _args()
    prefix = "cali" if kind == "calico" else conf.get("vethPrefix", "eni")
    host = veth_name(prefix, args.get("K8S_POD_NAMESPACE", ""), args.get("K8S_POD_NAME", ""))
    if kind == "aws-cni":
        for ip in conf.get("prevResult", {}).get("ips", []):
            address = str(ip.get("address", "")).split("/")[0]
            if address and ":" not in address:
                try:
                    _aws_rules("del", address)
                except PluginError:
                    pass  # DEL must succeed when the rules are already gone (CNI spec)
    subprocess.run(["ip", "link", "del", host], capture_output=True, timeout=30, check=False)
    _ipam("DEL", conf)


def main() -> int:
    """Entry point: one CNI command, its result or error on stdout."""
    kind = sys.argv[1] if len(sys.argv) > 1 else ""
    command = os.environ.get("CNI_COMMAND", "")
    try:
        conf = json.loads(sys.stdin.read() or "{}")
        if command == "VERSION":
            out: dict[str, Any] = {"cniVersion": "1.0.0", "supportedVersions": SUPPORTED}
        elif kind not in ("calico", "aws-cni"):
            raise PluginError(f"unknown plugin {kind!r}")
        elif command == "ADD":
            out = add(kind, conf)
        elif command == "DEL":
            delete(kind, conf)
            return 0
        elif command == "CHECK":
            return 0
        else:
            raise PluginError(f"unknown CNI_COMMAND {command!r}")
    except (PluginError, OSError, ValueError, KeyError) as exc:
        error = {"cniVersion": "1.0.0", "code": 100, "msg": str(exc)}
        sys.stdout.write(json.dumps(error))
        return 1
    sys.stdout.write(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
