"""Runs INSIDE a private `unshare --net --mount --pid --fork` child (see test_dataplane_collect.py).

Builds what routed and eBPF dataplanes leave in the kernel, in namespaces that exist
only in that child: a Calico-style pod (cali veth with proxy_arp and rp_filter set),
a Cilium-style pod (lxc veth with a real eBPF classifier on clsact ingress, a classic
BPF filter on egress), an `ingress` qdisc, and an XDP program; then sends a few
packets so the counters move. It runs the scanner and prints one JSON document: the
scan, and what `ip -j netconf`, `tc -j qdisc/filter` and `ip -j -s -s -d link` say.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from podpath.collectors.bpf_info import name_programs
from podpath.collectors.netlink.netns_scan import NetnsTarget, scan_network_namespaces
from podpath.lab.bpf import XDP_PASS, compile_program
from podpath.snapshot.codec import to_jsonable

PREFIX = "ppdp"
# The interface sysctls read from /proc/sys (podpath.collectors.netlink.netconf_sysctls).
SYSCTLS = (
    r"^net\.ipv[46]\.conf\.[^.]+\.(accept_local|route_localnet|src_valid_mark|force_forwarding)$"
)
T = 60


def run(*argv: str) -> str:
    """Run a command (argv only), return stdout; raise with its stderr on failure."""
    res = subprocess.run(argv, capture_output=True, text=True, timeout=T, check=False)
    if res.returncode != 0:
        raise RuntimeError(f"{argv}: {res.stderr.strip()}")
    return res.stdout


def jrun(*argv: str) -> Any:
    """A command's JSON output ([] when it printed nothing)."""
    out = run(*argv)
    return json.loads(out) if out.strip() else []


def target(path: str) -> NetnsTarget:
    """A scan target for an nsfs path."""
    st = os.stat(path)
    return NetnsTarget(st.st_ino, st.st_dev, path, (path,), None)


def build(objdir: Path) -> None:
    """The Calico-style and Cilium-style pods, filters, qdiscs and XDP."""
    run("mount", "-t", "tmpfs", f"{PREFIX}-run", "/run")
    # tc pins into a bpf filesystem: a fresh one of this child's own, never the host's
    # (the host's /sys/fs/bpf superblock would be shared with this mount namespace).
    run("mount", "-t", "bpf", "bpf", "/sys/fs/bpf")
    Path("/run/netns").mkdir()
    run("ip", "netns", "attach", f"{PREFIX}-root", str(os.getpid()))
    tc_obj = compile_program(objdir / "bpf_lxc.o", "cil_from_container", "from-container")
    xdp_obj = compile_program(objdir / "xdp.o", "xdp_pass", "xdp", XDP_PASS)
    for name, host in (("calico", "cali0123456789a"), ("cilium", "lxc0123456789ab")):
        ns = f"{PREFIX}-{name}"
        run("ip", "netns", "add", ns)
        run("ip", "link", "add", host, "type", "veth", "peer", "name", "eth0", "netns", ns)
        run("ip", "link", "set", host, "up")
        run("ip", "-n", ns, "link", "set", "eth0", "up")
        run("ip", "-n", ns, "link", "set", "lo", "up")
    host_conf = "/proc/sys/net/ipv4/conf/cali0123456789a"
    Path(f"{host_conf}/proxy_arp").write_text("1\n")
    Path(f"{host_conf}/rp_filter").write_text("1\n")
    Path("/proc/sys/net/ipv4/conf/all/rp_filter").write_text("2\n")
    Path("/proc/sys/net/ipv4/conf/all/forwarding").write_text("1\n")
    # The sysctls netconf does not carry (netconf_sysctls), set apart per interface and
    # per namespace: a scan that read another namespace's files would show it.
    Path(f"{host_conf}/accept_local").write_text("1\n")
    Path("/proc/sys/net/ipv4/conf/lxc0123456789ab/route_localnet").write_text("1\n")
    Path("/proc/sys/net/ipv4/conf/all/src_valid_mark").write_text("1\n")
    run(
        "ip",
        "netns",
        "exec",
        f"{PREFIX}-calico",
        "sysctl",
        "-q",
        "-w",
        "net.ipv4.conf.eth0.route_localnet=1",
        "net.ipv4.conf.default.src_valid_mark=1",
        # A pod's own port range (a namespaced sysctl kubelet may set per pod).
        "net.ipv4.ip_local_port_range=40000 40100",
    )
    run("ip", "addr", "add", "10.9.0.1/32", "dev", "lxc0123456789ab")
    run("ip", "route", "add", "10.9.0.2/32", "dev", "lxc0123456789ab")
    run("ip", "-n", f"{PREFIX}-cilium", "addr", "add", "10.9.0.2/32", "dev", "eth0")
    run("ip", "-n", f"{PREFIX}-cilium", "route", "add", "10.9.0.1", "dev", "eth0")
    run("tc", "qdisc", "add", "dev", "lxc0123456789ab", "clsact")
    tc_filter = ("tc", "filter", "add", "dev", "lxc0123456789ab")
    run(*tc_filter, "ingress", "bpf", "da", "obj", str(tc_obj), "sec", "from-container")
    run(*tc_filter, "egress", "pref", "7", "protocol", "ip", "bpf", "bytecode", "1,6 0 0 262144,")
    run("tc", "qdisc", "add", "dev", "cali0123456789a", "ingress")
    calico_eth0 = ("ip", "-n", f"{PREFIX}-calico", "link", "set", "dev", "eth0")
    run(*calico_eth0, "xdpgeneric", "obj", str(xdp_obj), "sec", "xdp")
    # Traffic through the classifier, so the counters are not all zero.
    ping = ["busybox", "ping", "-c", "3", "-i", "0.2", "10.9.0.1"]
    subprocess.run(
        ["ip", "netns", "exec", f"{PREFIX}-cilium", *ping],
        capture_output=True,
        timeout=T,
        check=False,
    )


def links_now(ns: str | None) -> list[dict[str, Any]]:
    """`ip -j -s -s -d link show` in one namespace."""
    pre = ("ip", "netns", "exec", ns) if ns else ()
    links: list[dict[str, Any]] = jrun(*pre, "ip", "-j", "-s", "-s", "-d", "link", "show")
    return links


def views(ns: str | None) -> dict[str, Any]:
    """What the tools say about one namespace."""
    pre = ("ip", "netns", "exec", ns) if ns else ()
    links = links_now(ns)
    filters = {}
    for link in links:
        for hook in ("ingress", "egress"):
            found = subprocess.run(
                [*pre, "tc", "-j", "filter", "show", "dev", link["ifname"], hook],
                capture_output=True,
                text=True,
                timeout=T,
                check=False,
            )
            if found.returncode == 0 and found.stdout.strip():
                filters[f"{link['ifname']} {hook}"] = json.loads(found.stdout)
    return {
        "link": links,
        "netconf": jrun(*pre, "ip", "-j", "netconf", "show"),
        "qdisc": jrun(*pre, "tc", "-j", "qdisc", "show"),
        "sysctls": run(*pre, "sysctl", "-a", "-r", SYSCTLS),
        "ports": run(*pre, "sysctl", "-n", "net.ipv4.ip_local_port_range"),
        "filters": filters,
    }


def main() -> None:
    """Build, scan, print."""
    with tempfile.TemporaryDirectory(prefix="ppdp-") as tmp:
        build(Path(tmp))
        names = {"root": f"/run/netns/{PREFIX}-root"}
        names.update({n: f"/run/netns/{PREFIX}-{n}" for n in ("calico", "cilium")})
        targets = [target(p) for p in names.values()]
        # The counters just before the scan: what it reads lies between these and the
        # tools' view just after (stray IPv6 packets move them in between, more under load).
        before = {n: links_now(None if n == "root" else f"{PREFIX}-{n}") for n in names}
        scanned, gaps = scan_network_namespaces(targets, targets[0].inode)
        scanned, bpf_gaps = name_programs(scanned)
        tools = {n: views(None if n == "root" else f"{PREFIX}-{n}") for n in names}
    json.dump(
        {
            "scan": to_jsonable(scanned),
            "gaps": to_jsonable(gaps + bpf_gaps),
            "inodes": {n: t.inode for n, t in zip(names, targets, strict=True)},
            "tools": tools,
            "links_before": before,
        },
        sys.stdout,
    )


if __name__ == "__main__":
    main()
