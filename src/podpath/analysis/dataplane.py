"""Which dataplane moves the node's traffic: the CNI's shape, eBPF, and kube-proxy's mode.

kube-proxy's mode itself is decided in one place, `podpath.netfilter.kube_proxy.detect_mode`
(from canary chains, kube-proxy's own nft tables and the IPVS-mode chains); this module
words it for the front ends, and `detect` uses it for whether kube-proxy programs rules.

Each CNI leaves recognisable objects. Cilium: cilium_host/cilium_net (a veth pair),
cilium_vxlan or cilium_geneve, lxc* pod veths, eBPF classifiers from bpf_lxc.o /
bpf_host.o / bpf_overlay.o on them, and -- with kube-proxy replacement -- no KUBE-*
rules at all. Calico: cali* veths without addresses, vxlan.calico or tunl0.
AWS VPC CNI: eni*/aws* veths and policy rules 512 (to pod) and 1536 (from pod).
kindnet and the CNI ptp plugin: veth* host ends holding the pods' gateway address.
Flannel: flannel.1; the bridge plugin: a cni0/cbr0 bridge. The verdict names its
evidence; an eBPF dataplane is one podpath can detect and name, never execute.
"""

from __future__ import annotations

from dataclasses import dataclass

from podpath.analysis.index import SnapshotIndex
from podpath.netfilter.iptables_save import count_rules
from podpath.netfilter.kube_proxy import KubeProxyMode
from podpath.snapshot.model import BpfProgram, Link, NetNamespace
from podpath.wording import count

CILIUM_LINKS = ("cilium_host", "cilium_net", "cilium_vxlan", "cilium_geneve", "cilium_wg0")
CALICO_LINKS = ("vxlan.calico", "vxlan-v6.calico", "tunl0", "wireguard.cali")


def mode_text(mode: KubeProxyMode | None) -> str:
    """kube-proxy's mode in a few words: `iptables (iptables-nft)`, `ipvs (...)`, `nftables`."""
    if mode is None:
        return "unknown (the rules could not be read)"
    if mode.mode is None:
        hint = f" (kubelet's chains are in {mode.backend})" if mode.backend else ""
        return "not found" + hint
    if mode.backend is None or mode.backend == mode.mode:
        return mode.mode
    return f"{mode.mode} ({mode.backend})"


def dataplane_text(plane: Dataplane | None) -> str:
    """The dataplane in one line (`Dataplane.summary`), or why it is unknown."""
    return plane.summary if plane is not None else "unknown (the rules could not be read)"


def iptables_backends(index: SnapshotIndex) -> list[str]:
    """The iptables dumps that hold at least one rule, as backend/family."""
    dumps = index.snapshot.iptables
    return sorted({f"{d.backend}/{d.family}" for d in dumps if count_rules(d.text)})


@dataclass(frozen=True)
class Program:
    """An eBPF program attached somewhere on the node."""

    interface: str
    hook: str  # xdp, tc ingress, tc egress
    program: BpfProgram | None


@dataclass(frozen=True)
class Dataplane:
    """The node's dataplane: which CNI shape, whether eBPF decides, whether kube-proxy programs rules."""

    cni: str  # cilium, calico, aws-vpc-cni, kindnet/ptp, flannel, bridge, unknown
    ebpf: bool
    kube_proxy_rules: bool
    programs: tuple[Program, ...] = ()
    evidence: tuple[str, ...] = ()

    @property
    def summary(self) -> str:
        """One line for the node screen."""
        text = {
            "cilium": "Cilium (eBPF)",
            "calico": "Calico (routed)",
            "aws-vpc-cni": "AWS VPC CNI (routed, policy rules)",
            "kindnet/ptp": "kindnet / CNI ptp (routed veths)",
            "flannel": "flannel (bridge + VXLAN)",
            "bridge": "CNI bridge",
        }.get(self.cni, "unknown")
        if self.ebpf:
            hooks = len({(p.interface, p.hook) for p in self.programs})
            text += f"; eBPF programs on {hooks} hook{'s' if hooks != 1 else ''}"
            if not self.kube_proxy_rules:
                text += "; no kube-proxy rules: Services are resolved in eBPF"
        return text


def _programs(ns: NetNamespace) -> list[Program]:
    names = {lk.ifindex: lk.name for lk in ns.links}
    found = [Program(lk.name, f"xdp ({lk.xdp.mode})", lk.xdp.program) for lk in ns.links if lk.xdp]
    found += [
        Program(names.get(f.ifindex, f"if{f.ifindex}"), f"tc {f.hook}", f.program)
        for f in ns.tc_filters
        if f.kind == "bpf"
    ]
    return found


def _veths(ns: NetNamespace, prefix: tuple[str, ...]) -> list[Link]:
    return [lk for lk in ns.links if lk.kind == "veth" and lk.name.startswith(prefix)]


def detect(index: SnapshotIndex) -> Dataplane:
    """The node's dataplane, with the evidence for it."""
    root = index.root_netns
    mode = index.kube_proxy_mode
    kube = mode.mode is not None
    if root is None:
        return Dataplane("unknown", False, kube, (), ("the root netns was not read",))
    programs = tuple(p for ns in index.snapshot.netns for p in _programs(ns))
    names = {lk.name for lk in root.links}
    evidence: list[str] = []
    cni = "unknown"
    cilium = sorted(names & set(CILIUM_LINKS))
    lxc = _veths(root, ("lxc",))
    sections = {p.program.section for p in programs if p.program and p.program.section}
    if cilium or (lxc and programs) or any("bpf_lxc" in s for s in sections):
        cni = "cilium"
        if cilium:
            evidence.append(f"links {', '.join(cilium)}")
        if lxc:
            evidence.append(f"{len(lxc)} lxc* pod veths")
    elif _veths(root, ("cali",)) or names & set(CALICO_LINKS):
        cni = "calico"
        evidence.append(f"{len(_veths(root, ('cali',)))} cali* pod veths")
        evidence += [f"link {n}" for n in sorted(names & set(CALICO_LINKS))]
    elif _veths(root, ("eni", "aws")) or any(r.priority in (512, 1536) for r in root.rules):
        cni = "aws-vpc-cni"
        evidence.append(f"{len(_veths(root, ('eni', 'aws')))} eni*/aws* pod veths")
        prios = sorted({r.priority for r in root.rules if r.priority in (512, 1536)})
        if prios:
            evidence.append(f"policy rules {', '.join(map(str, prios))}")
    elif "flannel.1" in names:
        cni = "flannel"
        evidence.append("link flannel.1")
    elif any(lk.kind == "bridge" and lk.name in ("cni0", "cbr0") for lk in root.links):
        cni = "bridge"
        evidence.append("bridge " + ", ".join(n for n in ("cni0", "cbr0") if n in names))
    elif any(lk.kind == "veth" and lk.addresses and lk.master is None for lk in root.links):
        cni = "kindnet/ptp"
        evidence.append("host veths holding the pods' gateway address")
    if programs:
        evidence.append(count(len(programs), "eBPF program attachment"))
    evidence.append(f"kube-proxy rules ({mode_text(mode)})" if kube else "no kube-proxy rules")
    return Dataplane(cni, bool(programs), kube, programs, tuple(evidence))
