"""A node at the benchmark's scale, built in-process: 250 pods, 10k Services, 50k conntrack.

The fixed snapshot (fixtures/make_snapshot.py) gives the node's shape; this adds pods
on cni0 (their netns, host-side veths, FDB and neighbour entries), kube-proxy's
iptables rules for `services` Services with 3 endpoints each (rendered by the lab's
own kube-proxy renderer, the shape `iptables-save` prints), and `conntrack` DNAT'd
pod -> ClusterIP TCP flows in `conntrack -L -o extended` form. Deterministic.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import sys
from pathlib import Path

from podpath.lab.kubeproxy import restore_input, service_chains
from podpath.lab.records import ServiceRecord
from podpath.netfilter.model import BUILTIN_CHAINS
from podpath.snapshot.codec import load_path
from podpath.snapshot.model import (
    Address,
    ConntrackDump,
    Container,
    FdbEntry,
    IptablesDump,
    Link,
    LinkRef,
    Neighbour,
    NetNamespace,
    Pod,
    Route,
    Snapshot,
)

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "snapshot.json"
CNI0 = 3
FIRST_NETNS = 4026540000
FIRST_HOST_IF = 100
SERVICE_NET = ipaddress.ip_address("10.96.16.0")  # above the fixed snapshot's VIPs


def pod_ip(i: int) -> str:
    """The IP of scale pod i (10.244.2.0/23 upwards: the fixed pods keep 10.244.0.x)."""
    return str(ipaddress.ip_address("10.244.2.10") + i)


def service_name(i: int) -> str:
    """The name of scale Service i."""
    return f"svc-{i}"


def _pod(i: int) -> tuple[Pod, NetNamespace, Link, tuple[FdbEntry, ...], Neighbour]:
    """Scale pod i: the pod, its netns, its host-side veth, FDB and neighbour entries."""
    inode = FIRST_NETNS + i * 10
    ip = pod_ip(i)
    mac = f"0a:58:0a:f4:{i // 256:02x}:{i % 256:02x}"
    host_mac = f"5e:8a:13:ab:{i // 256:02x}:{i % 256:02x}"
    host_if = FIRST_HOST_IF + i
    sandbox = f"{i:08x}" + "5e1d0c9b7a" * 5 + "0b0b0b0b0b0b0b"
    name = f"web-{i:04d}-7d4b9c6f5d"
    netns_name = f"cni-{i:08x}-3c4b-5d6e-7f80-91a2b3c4d5e6"
    pause_pid = 20000 + i * 3
    containers = (
        Container(
            "pause", sandbox, "sandbox", (pause_pid,), "registry.k8s.io/pause:3.9", ("/pause",)
        ),
        Container(
            "web",
            sandbox[::-1],
            "container",
            (pause_pid + 1,),
            "docker.io/library/nginx:1.27",
            ("nginx", "-g", "daemon off;"),
            shared_namespaces=("net", "ipc", "uts"),
        ),
    )
    pod = Pod(
        f"team-{i % 25}",
        name,
        f"{i:08x}-9b1e-4c55-8d2a-000000000000",
        sandbox,
        pause_pid,
        9000 + i,
        inode,
        f"/run/netns/{netns_name}",
        (ip,),
        False,
        containers,
        "containerd",
    )
    links = (
        Link(
            inode,
            1,
            "lo",
            None,
            "00:00:00:00:00:00",
            65536,
            "UNKNOWN",
            ("LOOPBACK", "UP"),
            addresses=(Address(4, "127.0.0.1", 8, "host"),),
        ),
        Link(
            inode,
            2,
            "eth0",
            "veth",
            mac,
            1450,
            "UP",
            ("BROADCAST", "MULTICAST", "UP"),
            link=host_if,
            link_netnsid=0,
            peer=LinkRef(4026531840, host_if),
            addresses=(Address(4, ip, 16),),
        ),
    )
    routes = (
        Route(inode, 4, 254, "unicast", "0.0.0.0/0", gateway="10.244.0.1", dev=2),
        Route(
            inode,
            4,
            254,
            "unicast",
            "10.244.0.0/16",
            dev=2,
            prefsrc=ip,
            scope="link",
            protocol="kernel",
        ),
    )
    netns = NetNamespace(inode, 4, (f"/run/netns/{netns_name}",), 100 + i, pause_pid, links, routes)
    root = 4026531840
    veth = Link(
        root,
        host_if,
        f"veth{sandbox[:8]}",
        "veth",
        host_mac,
        1450,
        "UP",
        ("BROADCAST", "MULTICAST", "UP"),
        master=CNI0,
        link=2,
        link_netnsid=100 + i,
        peer=LinkRef(inode, 2),
    )
    fdb = (
        FdbEntry(root, host_if, mac, master=CNI0, state=(), flags=("master",)),
        FdbEntry(root, host_if, host_mac, master=CNI0, state=("permanent",), flags=("master",)),
    )
    return pod, netns, veth, fdb, Neighbour(root, 4, CNI0, ip, mac, ("REACHABLE",))


def services(count: int, pods: int) -> list[ServiceRecord]:
    """`count` ClusterIP Services, 3 endpoints each spread over the pods (plus remote ones)."""
    out = []
    for i in range(count):
        vip = str(SERVICE_NET + i)
        # Every third endpoint is on another node (10.244.1.x), as in a real cluster.
        eps = tuple(
            (pod_ip((i * 3 + k) % pods) if k < 2 else f"10.244.1.{(i + k) % 250 + 2}", 8080)
            for k in range(3)
        )
        draft = ServiceRecord(
            f"team-{i % 25}", service_name(i), "http", "TCP", vip, 80, None, eps, "", ()
        )
        svc, seps = service_chains(draft)
        out.append(dataclasses.replace(draft, svc_chain=svc, sep_chains=seps))
    return out


def conntrack_text(count: int, pods: int, svcs: list[ServiceRecord]) -> str:
    """`count` distinct DNAT'd pod -> ClusterIP TCP flows, as `conntrack -L -o extended` prints."""
    lines = []
    for i in range(count):
        src = pod_ip(i % pods)
        svc = svcs[i % len(svcs)]
        ep_ip, ep_port = svc.endpoints[i % len(svc.endpoints)]
        sport = 32768 + (i // pods) % 28000
        lines.append(
            f"ipv4     2 tcp      6 86397 ESTABLISHED src={src} dst={svc.cluster_ip} sport={sport} dport={svc.port} "
            f"src={ep_ip} dst={src} sport={ep_port} dport={sport} [ASSURED] mark=0 use=1"
        )
    return "\n".join(lines) + "\n"


def _as_saved(restore: str) -> str:
    """iptables-restore input as iptables-save prints it: built-in chains declared."""
    out = []
    for line in restore.splitlines():
        out.append(line)
        if line.startswith("*"):
            out += [f":{chain} ACCEPT [0:0]" for chain in BUILTIN_CHAINS[line[1:]]]
    return "\n".join(out) + "\n"


def build(pods: int = 250, service_count: int = 10_000, conntrack: int = 50_000) -> Snapshot:
    """The fixed snapshot grown to `pods` pods, `service_count` Services, `conntrack` entries."""
    base = load_path(str(FIXTURE))
    built = [_pod(i) for i in range(pods)]
    root = next(ns for ns in base.netns if ns.inode == base.root_netns)
    new_root = dataclasses.replace(
        root,
        links=root.links + tuple(b[2] for b in built),
        fdb=root.fdb + tuple(f for b in built for f in b[3]),
        neighbours=root.neighbours + tuple(b[4] for b in built),
    )
    svcs = services(service_count, pods)
    header = "# Generated by iptables-nft-save v1.8.9 (nf_tables) on Tue Nov 25 10:00:00 2025\n"
    text = header + _as_saved(restore_input(svcs))
    return dataclasses.replace(
        base,
        pods=base.pods + tuple(b[0] for b in built),
        netns=tuple(new_root if ns is root else ns for ns in base.netns)
        + tuple(b[1] for b in built),
        iptables=(IptablesDump("nft", "ipv4", ("iptables-nft-save",), text),),
        conntrack=ConntrackDump(conntrack_text(conntrack, pods, svcs)),
    )


def main(argv: list[str]) -> int:
    """Write a scale snapshot to the path given: `scale_snapshot.py OUT.json [PODS SERVICES CONNTRACK]`."""
    from podpath.snapshot import codec

    sizes = [int(a) for a in argv[1:4]]
    Path(argv[0]).write_text(codec.dumps(build(*sizes)) + "\n", encoding="ascii")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
