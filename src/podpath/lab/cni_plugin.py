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
  the lab's choice: odd last octet -> the secondary ENI (table 2). In either mode the
  host end gets IPv6 accept_ra=0, accept_redirects=1, forwarding=0 (setupVeth).
  IPv6 (aws/amazon-vpc-cni-k8s cmd/routed-eni-cni-plugin/driver/driver.go, setupVeth and
  setupIPBasedContainerRouteRules): the pod's eth0 gets disable_ipv6=0 (lo too), its
  /128, `fe80::1 dev eth0`, `default via fe80::1 dev eth0` and a PERMANENT neighbour
  fe80::1 -> the host end's MAC; the node `POD/128 dev eniXXX` in main and `ip -6 rule`
  512 `to POD lookup main` (IPv6 addresses are the primary ENI's prefix: no `from` rule).
- egress-cni (cmd/egress-cni-plugin: main.go, egressContext.go cmdAddEgressV4,
  snat/snat.go), chained after aws-cni in IPv6 mode: a second veth, `v4if0` in the pod
  (disable_ipv6=1) and `veth` + 8 random hex digits on the node, an address of its own
  host-local range (169.254.172.0/22) on v4if0 whose subnet route is replaced by
  `GW dev v4if0 scope link src ADDR` and `SUBNET via GW dev v4if0 src ADDR` (besides
  IPAM's `default via GW`); the host end holds GW/32 scope link and routes ADDR/32 to
  it; nat chain CNI-E4-<sha512(network name + container id)> accepts multicast and
  SNATs to the node's IPv4 (nodeIP), jumped to from POSTROUTING `-s ADDR`. The result
  is aws-cni's, with the two interfaces appended (not the address: v4if0's address is
  never the pod's IP).
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from typing import Any

GATEWAY4 = "169.254.1.1"
CALICO_MAC = "ee:ee:ee:ee:ee:ee"
CALICO_GATEWAY6 = "fe80::ecee:eeff:feee:eeee"
AWS_GATEWAY6 = "fe80::1"
EGRESS_IFNAME = "v4if0"
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
    if kind == "aws-cni":
        _aws_host_ipv6_sysctls(host)
    if any(":" in ip for ip in ips):
        if kind == "calico":
            _sysctl(f"net/ipv6/conf/{host}/accept_ra", "0")
            _sysctl(f"net/ipv6/conf/{host}/forwarding", "1")
            _sysctl(f"net/ipv6/conf/{host}/proxy_ndp", "1")
        # The lab's choice: no DAD on the host end, so its link-local (the pods' IPv6
        # gateway) answers at once instead of a second later.
        _sysctl(f"net/ipv6/conf/{host}/accept_dad", "0")
    _run("ip", "link", "set", host, "up")
    host_mac = _link_mac(None, host)
    pod = ["ip", "-n", netns]
    _run(*pod, "link", "set", ifname, "up")
    routes: list[dict[str, str]] = []
    for ip in ips:
        if ":" in ip and kind == "aws-cni":
            _aws_pod6(netns, ifname, host, host_mac, ip)
            routes.append({"dst": "::/0", "gw": AWS_GATEWAY6})
            continue
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


# The VPC CNI's setupVeth sets these on every host end, in IPv4 mode too (it
# runs them whatever the pod's family, ignoring only a kernel without IPv6):
# aws/amazon-vpc-cni-k8s cmd/routed-eni-cni-plugin/driver/driver.go, "For IPv6, host
# veth sysctls must be set to". The host end's own IPv6 forwarding is off; the node
# forwards by conf/all/forwarding.
AWS_HOST_IPV6_SYSCTLS = (("accept_ra", "0"), ("accept_redirects", "1"), ("forwarding", "0"))


def _aws_host_ipv6_sysctls(host: str) -> None:
    """The VPC CNI's IPv6 sysctls of a host end (skipped, as the plugin does, without IPv6)."""
    for name, value in AWS_HOST_IPV6_SYSCTLS:
        try:
            _sysctl(f"net/ipv6/conf/{host}/{name}", value)
        except FileNotFoundError:
            return


def _aws_pod6(netns: str, ifname: str, host: str, host_mac: str, ip: str) -> None:
    """The VPC CNI's IPv6 pod: fe80::1 as a static neighbour and gateway, the /128 routed to
    the host end, rule 512."""
    _run("ip", "netns", "exec", netns, "sh", "-ec", _enable_ipv6(ifname))
    pod = ("ip", "-n", netns, "-6")
    _run(*pod, "route", "replace", f"{AWS_GATEWAY6}/128", "dev", ifname, "scope", "link")
    _run(*pod, "route", "add", "default", "via", AWS_GATEWAY6, "dev", ifname)
    # The plugin waits for DAD to finish; the lab skips it (the address is the VPC's).
    _run(*pod, "addr", "add", f"{ip}/128", "dev", ifname, "nodad")
    gateway = ("neigh", "add", AWS_GATEWAY6, "lladdr", host_mac, "dev", ifname)
    _run(*pod, *gateway, "nud", "permanent")
    _run("ip", "-6", "route", "replace", f"{ip}/128", "dev", host, "scope", "link")
    _aws_rules("add", ip)


def _enable_ipv6(ifname: str) -> str:
    return (
        f"echo 0 > /proc/sys/net/ipv6/conf/{ifname}/disable_ipv6; "
        "echo 0 > /proc/sys/net/ipv6/conf/lo/disable_ipv6"
    )


def secondary_eni(ip: str) -> bool:
    """The lab's rule for which ENI owns a pod address: odd last octet -> the secondary ENI.

    IPv6 addresses are the primary ENI's (its delegated prefix): never the secondary.
    """
    if ":" in ip:
        return False
    return int(ip.rsplit(".", 1)[-1]) % 2 == 1


def _aws_rules(action: str, ip: str) -> None:
    to = f"{ip}/128" if ":" in ip else ip
    family = "-6" if ":" in ip else "-4"
    _run("ip", family, "rule", action, "to", to, "lookup", "main", "pref", str(RULE_TO_POD))
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
            if address:
                try:
                    _aws_rules("del", address)
                except PluginError:
                    pass  # DEL must succeed when the rules are already gone (CNI spec)
    subprocess.run(["ip", "link", "del", host], capture_output=True, timeout=30, check=False)
    _ipam("DEL", conf)


def egress_chain(network: str, container_id: str) -> str:
    """The nat chain of one pod's SNAT (containernetworking's MustFormatChainNameWithPrefix)."""
    digest = hashlib.sha512(f"{network}{container_id}".encode()).hexdigest()
    return f"CNI-E4-{digest}"[:28]


def _egress_comment(network: str, container_id: str) -> str:
    return f'name: "{network}" id: "{container_id}"'


@dataclass(frozen=True)
class EgressAddress:
    """v4if0's address from egress-cni's IPAM: ADDR/prefix, ADDR, its subnet and the gateway."""

    cidr: str
    address: str
    subnet: str
    gateway: str


def egress_add(conf: dict[str, Any]) -> dict[str, Any]:
    """egress-cni ADD (IPv4 egress of an IPv6 pod): v4if0, its routes, the host end, SNAT."""
    prev = conf.get("prevResult")
    if not prev:
        raise PluginError("must be called as a chained plugin")
    if conf.get("enabled") == "false":
        return dict(prev)
    node_ip = str(conf.get("nodeIP", ""))
    if not node_ip or ":" in node_ip:
        raise PluginError("the lab's egress-cni does IPv4 egress only: nodeIP must be IPv4")
    netns = os.path.basename(os.environ["CNI_NETNS"])
    container_id = os.environ.get("CNI_CONTAINERID", "")
    network = str(conf.get("name", ""))
    ipam = _ipam("ADD", conf)
    egress = _egress_address(ipam)
    mtu = str(int(conf.get("mtu", "1500")))
    host = "veth" + os.urandom(4).hex()
    _sysctl("net/ipv4/ip_forward", "1")
    _egress_veth(netns, host, mtu)
    _egress_pod_side(netns, egress, ipam.get("routes", []))
    _egress_host_side(host, egress)
    _egress_snat(network, container_id, egress.address, node_ip)
    return _egress_result(conf, dict(prev), host, netns)


def _egress_address(ipam: dict[str, Any]) -> EgressAddress:
    """The one IPv4 address (and its gateway) IPAM gave v4if0."""
    try:
        (ipc,) = [ip for ip in ipam.get("ips", []) if ":" not in str(ip["address"])]
        cidr = str(ipc["address"])
        gateway = str(ipc["gateway"])
    except (ValueError, KeyError) as exc:
        raise PluginError(f"IPAM returned no single IPv4 address: {ipam}") from exc
    subnet = str(ipaddress.ip_interface(cidr).network)
    return EgressAddress(cidr, cidr.split("/")[0], subnet, gateway)


def _egress_veth(netns: str, host: str, mtu: str) -> None:
    """The veth pair: `host` on the node, v4if0 (IPv6 off: it carries IPv4 only) in the pod."""
    veth = ("ip", "link", "add", host, "mtu", mtu, "type", "veth")
    _run(*veth, "peer", "name", EGRESS_IFNAME, "mtu", mtu, "netns", netns)
    off = f"echo 1 > /proc/sys/net/ipv6/conf/{EGRESS_IFNAME}/disable_ipv6"
    _run("ip", "netns", "exec", netns, "sh", "-ec", off)


def _egress_pod_side(netns: str, egress: EgressAddress, routes: list[dict[str, Any]]) -> None:
    """v4if0 up with its address, IPAM's routes via the gateway, and the subnet route replaced
    by `GW dev v4if0 scope link src ADDR` and `SUBNET via GW dev v4if0 src ADDR`."""
    pod = ("ip", "-n", netns)
    _run(*pod, "link", "set", EGRESS_IFNAME, "up")
    _run(*pod, "addr", "add", egress.cidr, "dev", EGRESS_IFNAME)
    for route in routes:
        _run(*pod, "route", "add", str(route["dst"]), "via", egress.gateway, "dev", EGRESS_IFNAME)
    _run(*pod, "route", "del", egress.subnet, "dev", EGRESS_IFNAME)
    on_link = ("dev", EGRESS_IFNAME, "scope", "link", "src", egress.address)
    _run(*pod, "route", "add", f"{egress.gateway}/32", *on_link)
    via_gateway = ("via", egress.gateway, "dev", EGRESS_IFNAME, "src", egress.address)
    _run(*pod, "route", "add", egress.subnet, *via_gateway)


def _egress_host_side(host: str, egress: EgressAddress) -> None:
    """The node's end: up, holding GW/32 scope link, with ADDR/32 routed to it."""
    _run("ip", "link", "set", host, "up")
    _run("ip", "addr", "add", f"{egress.gateway}/32", "dev", host, "scope", "link")
    _run("ip", "route", "add", f"{egress.address}/32", "dev", host, "scope", "link")


def _egress_snat(network: str, container_id: str, address: str, node_ip: str) -> None:
    """nat chain CNI-E4-...: multicast accepted, the rest SNATed to the node's IPv4; POSTROUTING
    jumps to it for the pod's egress address."""
    chain = egress_chain(network, container_id)
    comment = json.dumps(_egress_comment(network, container_id))
    rules = [
        "*nat",
        f":{chain} - [0:0]",
        f"-A {chain} -d 224.0.0.0/4 -m comment --comment {comment} -j ACCEPT",
        f"-A {chain} -m comment --comment {comment} -j SNAT --to-source {node_ip} --random-fully",
        f"-A POSTROUTING -s {address}/32 -m comment --comment {comment} -j {chain}",
        "COMMIT",
        "",
    ]
    _run("iptables-restore", "--noflush", "-w", "30", stdin="\n".join(rules))


def _egress_result(
    conf: dict[str, Any], prev: dict[str, Any], host: str, netns: str
) -> dict[str, Any]:
    """aws-cni's result with the two interfaces appended (v4if0's address is never the pod's)."""
    interfaces = list(prev.get("interfaces", []))
    interfaces.append({"name": host, "mac": _link_mac(None, host)})
    sandbox = os.environ["CNI_NETNS"]
    interfaces.append(
        {"name": EGRESS_IFNAME, "mac": _link_mac(netns, EGRESS_IFNAME), "sandbox": sandbox}
    )
    prev["interfaces"] = interfaces
    prev["cniVersion"] = conf.get("cniVersion", prev.get("cniVersion", "1.0.0"))
    return prev


def egress_delete(conf: dict[str, Any]) -> None:
    """egress-cni DEL: the IPAM reservation, v4if0 (its host end goes with it), the SNAT chain."""
    if conf.get("enabled") != "true":
        return
    _ipam("DEL", conf)
    netns = os.path.basename(os.environ.get("CNI_NETNS", ""))
    addresses: list[str] = []
    if netns:
        done = subprocess.run(
            ["ip", "-n", netns, "-j", "-4", "addr", "show", "dev", EGRESS_IFNAME],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        if done.returncode == 0 and done.stdout.strip():
            for link in json.loads(done.stdout):
                addresses += [str(a["local"]) for a in link.get("addr_info", [])]
            subprocess.run(
                ["ip", "-n", netns, "link", "del", EGRESS_IFNAME],
                capture_output=True,
                timeout=30,
                check=False,
            )
    network = str(conf.get("name", ""))
    container_id = os.environ.get("CNI_CONTAINERID", "")
    chain = egress_chain(network, container_id)
    comment = _egress_comment(network, container_id)
    ipt = ["iptables", "-w", "30", "-t", "nat"]
    for address in addresses:
        rule = ["-s", f"{address}/32", "-m", "comment", "--comment", comment, "-j", chain]
        subprocess.run([*ipt, "-D", "POSTROUTING", *rule], capture_output=True, check=False)
    for op in ("-F", "-X"):
        subprocess.run([*ipt, op, chain], capture_output=True, timeout=60, check=False)


def main() -> int:
    """Entry point: one CNI command, its result or error on stdout."""
    kind = sys.argv[1] if len(sys.argv) > 1 else ""
    command = os.environ.get("CNI_COMMAND", "")
    try:
        conf = json.loads(sys.stdin.read() or "{}")
        if command == "VERSION":
            out: dict[str, Any] = {"cniVersion": "1.0.0", "supportedVersions": SUPPORTED}
        elif kind not in ("calico", "aws-cni", "egress-cni"):
            raise PluginError(f"unknown plugin {kind!r}")
        elif command == "ADD":
            out = egress_add(conf) if kind == "egress-cni" else add(kind, conf)
        elif command == "DEL":
            if kind == "egress-cni":
                egress_delete(conf)
            else:
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
