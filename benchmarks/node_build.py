"""Shaping a lab node into the synthetic node: Services, nft table, conntrack, processes.

Everything runs inside the node through the lab's machinery (Lab.exec = nsenter into
all of the node's namespaces): nothing touches this machine's own network.
"""

from __future__ import annotations

from collections.abc import Sequence

import nft_render

from podpath.lab import Lab, LabSpec, PodRecord, ServiceRecord
from podpath.lab.kubeproxy import merge_for_restore, restore_input
from podpath.lab.plan import services as plan_services

NODE = "node1"
KUBE_SERVICE_CHAINS = ("KUBE-SVC-", "KUBE-SEP-", "KUBE-EXT-")


def plan(lab: Lab, count: int) -> list[ServiceRecord]:
    """The lab's Services (kube-dns, web, svc-NNNN) for `count` Services on its pods."""
    spec = LabSpec(lab.name, nodes=1, pods=lab.record.spec.pods, services=count)
    return plan_services(spec, list(lab.pods))


def program_iptables(lab: Lab, svcs: Sequence[ServiceRecord]) -> None:
    """Replace kube-proxy's Service rules with these (one flushing iptables-restore)."""
    saved = lab.exec(NODE, ["iptables-save"], timeout=300).stdout
    rules = restore_input(svcs, jumps=False)
    lab.exec(
        NODE, ["iptables-restore", "-w", "30"], input=merge_for_restore(saved, rules), timeout=600
    )


def drop_iptables_services(lab: Lab) -> None:
    """Remove every KUBE-SVC/SEP/EXT chain and the rules using them (for the nft run)."""
    saved = lab.exec(NODE, ["iptables-save"], timeout=300).stdout
    kept = [
        line
        for line in saved.splitlines()
        if not any(c in line for c in KUBE_SERVICE_CHAINS) and "has no endpoints" not in line
    ]
    lab.exec(NODE, ["iptables-restore", "-w", "30"], input="\n".join(kept) + "\n", timeout=600)


def load_nft(lab: Lab, svcs: Sequence[ServiceRecord]) -> None:
    """Load kube-proxy's native `table ip kube-proxy` with `nft -f`."""
    lab.exec(NODE, ["nft", "-f", "-"], input=nft_render.render(svcs), timeout=600)


def conntrack_lines(
    pods: Sequence[PodRecord], svcs: Sequence[ServiceRecord], count: int
) -> list[str]:
    """`conntrack -R` input: `count` DNAT'd pod -> ClusterIP TCP flows, all distinct."""
    backed = [s for s in svcs if s.endpoints]
    clients = [p.ip for p in pods]
    if not backed or not clients:
        return []
    lines = []
    for i in range(count):
        svc = backed[i % len(backed)]
        ep_ip, ep_port = svc.endpoints[i % len(svc.endpoints)]
        src = clients[i % len(clients)]
        sport = 1024 + (i // len(clients)) % 64000
        lines.append(
            f"-I -p tcp -s {src} -d {svc.cluster_ip} --sport {sport} --dport {svc.port} "
            f"-r {ep_ip} -q {src} --reply-port-src {ep_port} --reply-port-dst {sport} "
            "--state ESTABLISHED --timeout 86400 -u SEEN_REPLY,ASSURED"
        )
    return lines


def add_conntrack(lab: Lab, svcs: Sequence[ServiceRecord], count: int) -> int:
    """Insert conntrack entries in batches (`conntrack -R -`); returns the table's size."""
    lines = conntrack_lines(lab.pods, svcs, count)
    for start in range(0, len(lines), 10_000):
        chunk = "\n".join(lines[start : start + 10_000]) + "\n"
        lab.exec(NODE, ["conntrack", "-R", "-"], input=chunk, timeout=300, check=False)
    return conntrack_count(lab)


def conntrack_count(lab: Lab) -> int:
    """Entries in the node's conntrack table."""
    out = lab.exec(NODE, ["conntrack", "-C"], check=False).stdout.strip()
    return int(out) if out.isdigit() else 0


def process_count(lab: Lab) -> int:
    """Processes in the node's PID namespace."""
    out = lab.exec(NODE, ["sh", "-c", "ls -d /proc/[0-9]* | wc -l"]).stdout.strip()
    return int(out) - 2  # the sh and ls of this command


def add_sleepers(lab: Lab, count: int) -> None:
    """Start `count` sleeping processes inside the node (they die with the node)."""
    if count <= 0:
        return
    script = (
        'i=0; while [ "$i" -lt "$1" ]; do sleep 1000000 </dev/null >/dev/null 2>&1 & '
        "i=$((i+1)); done"
    )
    lab.exec(NODE, ["sh", "-c", script, "sleepers", str(count)], timeout=300)


# The node shape: named netns created with `ip netns add`, each with a veth
# whose host end is on a bridge, each held by a process started with `ip netns exec`
# (which gives every such process a mount namespace of its own, a copy of the node's
# with every /run/netns mount in it). Everything stays inside the lab node.
_HOLDERS = r"""
set -e
n=$1
ip link add name holders0 type bridge
ip link set holders0 up
i=0; while [ "$i" -lt "$n" ]; do echo "netns add holder-$i"; i=$((i+1)); done | ip -batch -
i=0; while [ "$i" -lt "$n" ]; do
  echo "link add hv$i type veth peer name eth0 netns holder-$i"
  echo "link set hv$i master holders0 up"
  i=$((i+1))
done | ip -batch -
i=0; while [ "$i" -lt "$n" ]; do
  printf 'addr add 10.250.%d.%d/16 dev eth0\nlink set eth0 up\n' $((i/250)) $((i%250+1)) \
    | ip -n "holder-$i" -batch -
  ip netns exec "holder-$i" sleep 1000000 </dev/null >/dev/null 2>&1 &
  i=$((i+1))
done
"""


def add_netns_holders(lab: Lab, count: int) -> None:
    """`count` named netns on a bridge, each held by an `ip netns exec` sleeper."""
    if count <= 0:
        return
    lab.exec(NODE, ["sh", "-c", _HOLDERS, "holders", str(count)], timeout=600)


def named_netns_count(lab: Lab) -> int:
    """Named netns under the node's /run/netns (the lab's pods' and the holders')."""
    out = lab.exec(NODE, ["sh", "-c", "ls /run/netns | wc -l"], check=False).stdout.strip()
    return int(out) if out.isdigit() else 0
