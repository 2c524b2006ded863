"""Runs INSIDE a private `unshare --net --mount --pid --fork` child (see test_netlink.py).

Builds a small node topology in namespaces that exist only in that child, runs the
scanner there and prints one JSON document on stdout: the scan, and what the
independent tools (`ip -j`, `bridge -j`) say about the same namespaces.

Modes: `topology`, `replaced`, `churn`, `addr-churn`, `bench N`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from podpath.collectors.netlink.netns_scan import NetnsTarget, scan_network_namespaces
from podpath.collectors.netlink.rtnetlink import RTM_GETADDR, RouteSocket
from podpath.snapshot.codec import to_jsonable

# Run as a script: tests/, where the fixtures' readers are, is not on the path.
sys.path.insert(0, str(Path(__file__).parents[1]))
from sidecar_rules import istio_commands  # noqa: E402

PREFIX = "ppnl"
HOSTILE = ("e\x1b[31mx", "\udcffbad")
T = 60


def run(*argv: str, check: bool = True) -> str:
    """Run a command (argv only), return stdout."""
    res = subprocess.run(
        argv, capture_output=True, text=True, errors="surrogateescape", timeout=T, check=False
    )
    if check and res.returncode != 0:
        raise RuntimeError(f"{argv}: {res.stderr.strip()}")
    return res.stdout


def ip(ns: str | None, *args: str) -> Any:
    """`ip -j ...` in a named namespace (None: the child's own root)."""
    pre = ("ip", "-n", ns) if ns else ("ip",)
    out = run(*pre, "-j", *args)
    return json.loads(out, strict=False) if out.strip() else []


def bridge_fdb(ns: str | None) -> Any:
    """`bridge -j fdb` in a namespace."""
    pre = ("ip", "netns", "exec", ns, "bridge") if ns else ("bridge",)
    out = run(*pre, "-j", "fdb")
    return json.loads(out, strict=False) if out.strip() else []


def private_run() -> None:
    """A tmpfs over /run so `ip netns add` touches nothing of the host."""
    run("mount", "-t", "tmpfs", f"{PREFIX}-run", "/run")
    Path("/run/netns").mkdir()
    run("ip", "netns", "attach", f"{PREFIX}-root", str(os.getpid()))


def target_for(name: str) -> NetnsTarget:
    """A scan target for /run/netns/NAME."""
    path = f"/run/netns/{name}"
    st = os.stat(path)
    return NetnsTarget(st.st_ino, st.st_dev, path, (path,), None)


def root_target() -> NetnsTarget:
    """The child's own namespace, which plays the node's root netns."""
    return target_for(f"{PREFIX}-root")


def _without_timers(links: Any) -> Any:
    # A bridge's info_data (and a port's info_slave_data) carries running timers, which
    # differ on every call: of a port's data only its hairpin mode, isolation, learning and
    # STP state are kept.
    for link in links:
        slave = link.get("linkinfo", {}).pop("info_slave_data", None)
        if slave is not None and "hairpin" in slave:
            kept = {k: slave[k] for k in ("hairpin", "isolated", "learning", "state") if k in slave}
            link["linkinfo"]["info_slave_data"] = kept
        data = link.get("linkinfo", {}).get("info_data", {})
        for key in [k for k in data if k.endswith("_timer")]:
            del data[key]
    return links


def views(ns: str | None) -> dict[str, Any]:
    """Everything the independent tools print for one namespace."""
    return {
        "link": _without_timers(ip(ns, "-d", "link", "show")),
        "addr": ip(ns, "addr", "show"),
        "route4": ip(ns, "-4", "-d", "route", "show", "table", "all"),
        "route6": ip(ns, "-6", "-d", "route", "show", "table", "all"),
        "rule4": ip(ns, "-4", "rule", "show"),
        "rule6": ip(ns, "-6", "rule", "show"),
        "rule4text": run(*(("ip", "-n", ns) if ns else ("ip",)), "-4", "rule", "show"),
        "rule6text": run(*(("ip", "-n", ns) if ns else ("ip",)), "-6", "rule", "show"),
        "neigh": ip(ns, "neigh", "show"),
        "fdb": bridge_fdb(ns),
        "nsids": ip(ns, "netns", "list-id"),
        "nft": nft_ruleset(ns),
    }


def nft_ruleset(ns: str | None) -> Any:
    """`nft -j list ruleset` in a namespace: its tables, chains and rules."""
    pre = ("ip", "netns", "exec", ns) if ns else ()
    return json.loads(run(*pre, "nft", "-j", "list", "ruleset"))["nftables"]


def build_topology() -> list[str]:
    """cni0 with three pods, a vxlan with an FDB entry, routes, rules and a neighbour."""
    sh = [
        # Its own br_netfilter switch for IPv4 on, IPv6's off: both are compared.
        "link add cni0 type bridge nf_call_iptables 1",
        "addr add 10.244.0.1/24 dev cni0",
        "link set cni0 up",
        "link add ulay0 type veth peer name ulay1",
        "addr add 192.168.77.1/24 dev ulay0",
        "link set ulay0 up",
        "link set ulay1 up",
        "link add flannel.1 type vxlan id 42 local 192.168.77.1 dev ulay0 dstport 8472 nolearning proxy",
        "route add blackhole 10.99.0.0/16",
        "route add prohibit 10.98.0.0/16 table 100",
        "rule add not from 10.1.0.0/16 fwmark 0x1/0xff lookup 100 priority 100",
        "rule add iif cni0 goto 32766 priority 50",
        "-6 rule add to fd00:99::/64 lookup 101 priority 300",
        "route add 10.60.0.0/16 nexthop via 10.244.0.2 nexthop via 10.244.0.3 weight 3",
    ]
    for line in sh:
        run("ip", *line.split())
    names = []
    for i, letter in enumerate("abc"):
        name = f"{PREFIX}-{letter}"
        names.append(name)
        run("ip", "netns", "add", name)
        host = f"veth{PREFIX}{letter}"
        run("ip", "link", "add", host, "type", "veth", "peer", "name", "eth0", "netns", name)
        run("ip", "link", "set", host, "master", "cni0", "up")
        if letter == "a":
            run("bridge", "link", "set", "dev", host, "hairpin", "on")
        elif letter == "b":
            run("bridge", "link", "set", "dev", host, "isolated", "on", "learning", "off")
        else:
            run("bridge", "link", "set", "dev", host, "isolated", "on")
        for line in (
            "link set lo up",
            "link set eth0 up",
            f"addr add 10.244.0.{i + 2}/24 dev eth0",
            f"addr add fd00::{i + 2}/64 dev eth0 nodad",
            "route add default via 10.244.0.1",
        ):
            run("ip", "-n", name, *line.split())
        if letter == "a":
            # A sidecar's redirect, as Istio's istio-init writes it (its own golden file).
            for command in istio_commands():
                run("ip", "netns", "exec", name, *command)
        if letter == "c":
            # Disabled once its peer is up (a carrier change would enable it again): a
            # state other than forwarding is compared too.
            run("bridge", "link", "set", "dev", host, "state", "0")
    run(
        "ip",
        "-n",
        names[0],
        "neigh",
        "add",
        "10.244.0.77",
        "lladdr",
        "02:00:00:00:00:77",
        "dev",
        "eth0",
        "nud",
        "permanent",
    )
    run("ip", "-n", names[0], "route", "add", "unreachable", "10.97.0.0/16")
    run("ip", "-n", names[0], "route", "add", "10.50.0.0/16", "via", "10.244.0.1", "table", "7")
    run("ip", "-n", names[0], "rule", "add", "fwmark", "0x4", "lookup", "7", "priority", "10")
    # Every selector and option `ip rule` knows beyond addresses, marks and devices.
    for line in (
        "rule add ipproto udp dport 53 lookup 100 pref 90",
        "rule add lookup main suppress_prefixlength 0 pref 80",
        "rule add from 10.0.0.0/8 tos 0x10 uidrange 1000-2000 ipproto tcp sport 1000-2000"
        " dport 80 tun_id 7 lookup 200 suppress_ifgroup 5 pref 70 proto 99",
        "rule add l3mdev pref 72",
        "rule add lookup 100 realms 5 pref 74",
        "rule add fwmark 0x9 realms 3/7 goto 90 pref 75",
        "rule add lookup main suppress_ifgroup default pref 76",
        "rule add dport 10-20 blackhole pref 73",
        "-6 rule add ipproto ipv6-icmp lookup 100 suppress_prefixlength 64 pref 91 proto static",
    ):
        run("ip", "-n", names[2], *line.split())
    # Both ends of a veth inside one pod namespace: a peer without IFLA_LINK_NETNSID.
    run("ip", "-n", names[1], "link", "add", "in0", "type", "veth", "peer", "name", "in1")
    run("ip", "-n", names[1], "link", "set", "in1", "group", "7")
    # A veth between two pods, not through the root.
    run(
        "ip",
        "-n",
        names[1],
        "link",
        "add",
        "xb",
        "type",
        "veth",
        "peer",
        "name",
        "xc",
        "netns",
        names[2],
    )
    # Hostile names: an escape sequence and a byte that is not UTF-8.
    run("ip", "link", "add", HOSTILE[0], "type", "veth", "peer", "name", HOSTILE[1])
    run("bridge", "fdb", "append", "00:00:00:00:00:00", "dev", "flannel.1", "dst", "192.168.77.2")
    run(
        "bridge",
        "fdb",
        "add",
        "0a:00:00:00:00:01",
        "dev",
        "flannel.1",
        "dst",
        "192.168.77.3",
        "self",
        "permanent",
    )
    run("bridge", "fdb", "add", "0a:00:00:00:00:02", "dev", f"veth{PREFIX}a", "master", "static")
    run(
        "ip",
        "neigh",
        "add",
        "10.244.0.88",
        "lladdr",
        "02:00:00:00:00:88",
        "dev",
        "cni0",
        "nud",
        "permanent",
    )
    # Pod a's fd00::2 (nodad) on cni0 too, checked: duplicate address detection fails.
    run("sysctl", "-qw", "net.ipv6.conf.cni0.accept_dad=1")
    run("ip", "addr", "add", "fd00::2/64", "dev", "cni0")
    for _ in range(50):
        if "dadfailed" in run("ip", "-6", "addr", "show", "dev", "cni0"):
            break
        time.sleep(0.1)
    return names


def mode_topology() -> dict[str, Any]:
    """Scan the topology; retry until the tools' view is identical before and after."""
    names = build_topology()
    keys: list[str | None] = [None, *names]
    targets = [root_target(), *(target_for(n) for n in names)]
    root = targets[0].inode
    time.sleep(0.2)
    for _ in range(5):
        before = {str(k): views(k) for k in keys}
        scan, gaps = scan_network_namespaces(targets, root, netfilter=True)
        after = {str(k): views(k) for k in keys}
        if before == after:
            break
        time.sleep(0.5)
    return {
        "unstable": sorted(
            f"{k}:{v}" for k in after for v in after[k] if before[k][v] != after[k][v]
        ),
        "root": root,
        "inodes": {str(k): t.inode for k, t in zip(keys, targets, strict=True)},
        "tools": after,
        "scan": to_jsonable(scan),
        "gaps": to_jsonable(gaps),
        "stable": before == after,
    }


def mode_replaced() -> dict[str, Any]:
    """A deleted namespace and one whose name now leads to another namespace."""
    for n in ("gone", "swap", "other", "keep"):
        run("ip", "netns", "add", f"{PREFIX}-{n}")
    targets = [root_target(), *(target_for(f"{PREFIX}-{n}") for n in ("gone", "swap", "keep"))]
    run("ip", "-n", f"{PREFIX}-other", "link", "set", "lo", "mtu", "1234")
    run("ip", "netns", "del", f"{PREFIX}-gone")
    run("ip", "netns", "del", f"{PREFIX}-swap")
    # Re-create the name over a namespace that existed before the old one was freed,
    # so it has a different inode for certain (nsfs reuses freed inode numbers).
    swap = Path(f"/run/netns/{PREFIX}-swap")
    swap.touch()
    run("mount", "--bind", f"/run/netns/{PREFIX}-other", str(swap))
    scan, gaps = scan_network_namespaces(targets, targets[0].inode)
    return {
        "targets": to_jsonable(targets),
        "other": os.stat(f"/run/netns/{PREFIX}-other").st_ino,
        "scan": to_jsonable(scan),
        "gaps": to_jsonable(gaps),
    }


def mode_churn() -> dict[str, Any]:
    """Scan repeatedly while namespaces are deleted and re-created (rows 1 and 4)."""
    names = [f"{PREFIX}-c{i}" for i in range(30)]
    for n in names:
        run("ip", "netns", "add", n)
    stop = threading.Event()

    def churn() -> None:
        i = 0
        while not stop.is_set():
            n = names[i % len(names)]
            run("ip", "netns", "del", n, check=False)
            run("ip", "netns", "add", n, check=False)
            i += 1

    th = threading.Thread(target=churn)
    th.start()
    results = []
    try:
        for _ in range(40):
            targets = [root_target()]
            for n in names:
                try:
                    t = target_for(n)
                except OSError:
                    continue
                # As a real lister does: only nsfs files (not an empty mount placeholder).
                if t.dev == targets[0].dev:
                    targets.append(t)
            scan, gaps = scan_network_namespaces(targets, targets[0].inode)
            results.append(
                {
                    "targets": [t.inode for t in targets],
                    "scanned": [ns.inode for ns in scan],
                    "gaps": to_jsonable(gaps),
                }
            )
    finally:
        stop.set()
        th.join()
    return {"runs": results}


def mode_addr_churn() -> dict[str, Any]:
    """Dumps while thousands of addresses churn (row 6): flags seen, never an exception."""
    name = f"{PREFIX}-addr"
    run("ip", "netns", "add", name)
    run("ip", "-n", name, "link", "add", "br0", "type", "bridge")
    add = Path("/run/add.batch")
    add.write_text("".join(f"addr add 10.{i // 250}.{i % 250}.1/32 dev br0\n" for i in range(3000)))
    churn_lines = "".join(
        f"addr add 10.200.{i // 250}.{i % 250 + 1}/32 dev br0\n"
        f"addr del 10.200.{i // 250}.{i % 250 + 1}/32 dev br0\n"
        for i in range(2000)
    )
    Path("/run/churn.batch").write_text(churn_lines)
    run("ip", "-n", name, "-batch", str(add))
    target = target_for(name)
    stop = threading.Event()

    def churn() -> None:
        while not stop.is_set():
            run("ip", "-n", name, "-batch", "/run/churn.batch", check=False)

    th = threading.Thread(target=churn)
    th.start()
    single_flagged = 0
    scans = []
    try:
        time.sleep(0.2)
        # Open a socket in the namespace the same way the scanner does, on this thread
        # (this driver is single-purpose and throw-away, so moving its thread is fine).
        fd = os.open(target.open_path, os.O_RDONLY)
        own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        from podpath.collectors.netlink.netns_scan import _setns

        _setns(fd)
        rs = RouteSocket()
        _setns(own)
        for _ in range(60):
            if rs.dump_table(RTM_GETADDR, attempts=1).inconsistent:
                single_flagged += 1
        rs.close()
        for _ in range(10):
            scan, gaps = scan_network_namespaces([root_target(), target], root_target().inode)
            scans.append(
                {
                    "n": len(scan),
                    "gaps": to_jsonable(gaps),
                    "addrs": sum(len(lk.addresses) for ns in scan for lk in ns.links),
                }
            )
    finally:
        stop.set()
        th.join()
    return {"single_flagged": single_flagged, "scans": scans}


def mode_bench(count: int) -> dict[str, Any]:
    """Build `count` pod namespaces on cni0 and time full scans."""
    run("ip", "link", "add", "cni0", "type", "bridge")
    run("ip", "addr", "add", "10.244.0.1/16", "dev", "cni0")
    run("ip", "link", "set", "cni0", "up")
    lines = []
    for i in range(count):
        lines.append(f"netns add {PREFIX}-p{i}")
    Path("/run/ns.batch").write_text("\n".join(lines) + "\n")
    run("ip", "-batch", "/run/ns.batch")
    host = []
    for i in range(count):
        host += [
            f"link add vp{i} type veth peer name eth0 netns {PREFIX}-p{i}",
            f"link set vp{i} master cni0 up",
        ]
    Path("/run/host.batch").write_text("\n".join(host) + "\n")
    run("ip", "-batch", "/run/host.batch")
    pod = Path("/run/pod.batch")
    for i in range(count):
        pod.write_text(
            "link set lo up\nlink set eth0 up\n"
            f"addr add 10.244.{1 + i // 250}.{i % 250 + 1}/16 dev eth0\n"
            "route add default via 10.244.0.1\n"
        )
        run("ip", "-n", f"{PREFIX}-p{i}", "-batch", str(pod))
    targets = [root_target(), *(target_for(f"{PREFIX}-p{i}") for i in range(count))]
    times = []
    for _ in range(7):
        t0 = time.perf_counter()
        scan, gaps = scan_network_namespaces(targets, targets[0].inode)
        times.append(time.perf_counter() - t0)
    peers = sum(1 for ns in scan for lk in ns.links if lk.peer is not None)
    return {
        "namespaces": len(scan),
        "gaps": len(gaps),
        "peers": peers,
        "times": times,
        "median": sorted(times)[len(times) // 2],
    }


def main() -> None:
    """Dispatch on argv[1]."""
    mode = sys.argv[1]
    private_run()
    if mode == "topology":
        out = mode_topology()
    elif mode == "replaced":
        out = mode_replaced()
    elif mode == "churn":
        out = mode_churn()
    elif mode == "addr-churn":
        out = mode_addr_churn()
    elif mode == "bench":
        out = mode_bench(int(sys.argv[2]))
    else:
        raise SystemExit(f"unknown mode {mode}")
    sys.stdout.write(json.dumps(out))


if __name__ == "__main__":
    main()
