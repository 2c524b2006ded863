"""What a lab is asked to build (LabSpec) and what it built (LabRecord), as plain data."""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from typing import Any

OVERLAYS: tuple[str, ...] = ("vxlan", "host-gw")
# Pod network shapes: the CNI bridge plugin (+ flannel-style overlay), Calico's routed
# veths, kindnet's ptp veths, the AWS VPC CNI's ENI policy routing.
CNIS: tuple[str, ...] = ("bridge", "calico", "ptp", "aws-vpc")
IP_FAMILIES: tuple[str, ...] = ("ipv4", "ipv6", "dual")
# The kube-proxy modes this kernel can run (no ip_vs: IPVS is modelled, not built).
PROXY_MODES: tuple[str, ...] = ("iptables", "nftables")
# containerd: a real containerd per node, pods made through CRI; runc-imitation: the
# lab runs runc itself and writes the files containerd would (where containerd is absent).
RUNTIMES: tuple[str, ...] = ("containerd", "runc-imitation")
# NetworkPolicy engines the lab can program with real rules ("" enforces none).
POLICY_ENGINES: tuple[str, ...] = ("kube-router",)
MAX_NODES = 5
MAX_PODS_PER_NODE = 250
MAX_SERVICES = 10_000

# Lab names end up in cgroup directory names and process arguments: keep them boring.
_NAME_RE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,38}[a-z0-9])?$")


class LabError(Exception):
    """A lab operation failed; the message is one sentence a user can act on."""


def check_name(name: str) -> None:
    """LabError unless name is a valid lab name (it names directories and cgroups)."""
    if not _NAME_RE.match(name):
        raise LabError(
            f"invalid lab name {name!r}: use 1-40 of a-z, 0-9 and '-' (not at either end)"
        )


@dataclass(frozen=True)
class LabSpec:
    """The shape of a lab: nodes, pods per node, Services, the pod network and its families."""

    name: str
    nodes: int = 1
    pods: int = 4
    services: int = 3
    overlay: str = "vxlan"
    cni: str = "bridge"
    ip_family: str = "ipv4"
    proxy_mode: str = "iptables"
    runtime: str = ""  # "" picks containerd where it is installed (lab.up resolves it)
    policy: str = ""  # a NetworkPolicy engine of POLICY_ENGINES, or "" for none
    # Add web-local: NodePort, externalTrafficPolicy and internalTrafficPolicy Local,
    # endpoints on node1 only (the other nodes have none of their own).
    traffic_policy_local: bool = False
    # containerd's netns_mounts_under_state_dir: pods' netns pinned under the CRI plugin's
    # state dir (/run/containerd/io.containerd.grpc.v1.cri/netns) instead of /run/netns.
    netns_under_state: bool = False
    # Add web-lb (external IP, LoadBalancer IP with source ranges) and the `outside`
    # client namespace on the underlay that reaches those IPs (IPv4 only).
    load_balancer: bool = False

    @property
    def crossing(self) -> str:
        """How pods reach other nodes, in a word for `lab up` and `lab status`: --overlay
        applies to bridge and calico; ptp routes via the node addresses (kindnetd) and
        aws-vpc through the VPC, whatever --overlay says."""
        return {"ptp": "routes", "aws-vpc": "vpc"}.get(self.cni, self.overlay)

    @property
    def families(self) -> tuple[int, ...]:
        """The IP families of pods and Services, the primary one first."""
        return {"ipv4": (4,), "ipv6": (6,), "dual": (4, 6)}[self.ip_family]

    def validate(self) -> None:
        """Raise LabError when the spec cannot be built."""
        check_name(self.name)
        if not 1 <= self.nodes <= MAX_NODES:
            raise LabError(f"--nodes must be 1..{MAX_NODES}, not {self.nodes}")
        if not 1 <= self.pods <= MAX_PODS_PER_NODE:
            raise LabError(f"--pods must be 1..{MAX_PODS_PER_NODE} per node, not {self.pods}")
        if not 2 <= self.services <= MAX_SERVICES:
            raise LabError(
                f"--services must be 2..{MAX_SERVICES} (kube-dns and web are always made), "
                f"not {self.services}"
            )
        if self.overlay not in OVERLAYS:
            raise LabError(f"--overlay must be one of {', '.join(OVERLAYS)}, not {self.overlay!r}")
        if self.cni not in CNIS:
            raise LabError(f"--cni must be one of {', '.join(CNIS)}, not {self.cni!r}")
        if self.ip_family not in IP_FAMILIES:
            raise LabError(
                f"--ip-family must be one of {', '.join(IP_FAMILIES)}, not {self.ip_family!r}"
            )
        if self.cni == "aws-vpc" and self.ip_family == "dual":
            raise LabError(
                "--cni aws-vpc has no dual-stack pods: the AWS VPC CNI runs an IPv4 or an IPv6 "
                "cluster (IPv6 pods reach IPv4 only through egress-cni's SNAT); use "
                "--ip-family ipv4 or ipv6"
            )
        if self.proxy_mode not in PROXY_MODES:
            raise LabError(
                f"--proxy-mode must be one of {', '.join(PROXY_MODES)}, not {self.proxy_mode!r}"
                + (" (this kernel has no ip_vs)" if self.proxy_mode == "ipvs" else "")
            )
        if self.policy and self.policy not in POLICY_ENGINES:
            raise LabError(
                f"--policy must be one of {', '.join(POLICY_ENGINES)}, not {self.policy!r}"
            )
        if self.policy and self.ip_family != "ipv4":
            raise LabError("--policy kube-router is built for IPv4 labs only (--ip-family ipv4)")
        if self.traffic_policy_local and self.pods < 2:
            raise LabError(
                "--traffic-policy-local needs --pods 2 or more (web-local's endpoints are "
                "node1's web pods; its first pod is coredns)"
            )
        if self.load_balancer and self.ip_family == "ipv6":
            raise LabError(
                "--load-balancer needs IPv4 (--ip-family ipv4 or dual): its external and "
                "LoadBalancer IPs and the outside client are IPv4"
            )
        if self.load_balancer and self.cni == "aws-vpc":
            raise LabError("--load-balancer is not built for --cni aws-vpc (its VPC fabric routes)")
        if self.runtime and self.runtime not in RUNTIMES:
            raise LabError(f"--runtime must be one of {', '.join(RUNTIMES)}, not {self.runtime!r}")
        if self.netns_under_state and self.runtime not in ("", "containerd"):
            raise LabError("netns under containerd's state dir needs --runtime containerd")


@dataclass(frozen=True)
class NodeRecord:
    """One lab node: the init process holding its namespaces, and its addresses."""

    name: str
    init_pid: int  # host PID of the node's PID 1 (holds all of the node's namespaces)
    init_start: int  # its start time in clock ticks: tells a reused PID from ours
    address: str  # underlay IPv4 address of the node's eth0
    pod_cidr: str
    vtep_mac: str  # MAC of flannel.1 (used only with the vxlan overlay)
    address6: str | None = None  # underlay IPv6 address of eth0 (ipv6 and dual labs)
    pod_cidr6: str | None = None
    containerd_pid: int = 0  # host PID of the node's containerd (0: runc imitation)
    containerd_start: int = 0


@dataclass(frozen=True)
class PodRecord:
    """One pod the lab made: its sandbox, network and containers."""

    node: str
    namespace: str
    name: str
    uid: str
    sandbox_id: str
    pause_pid: int  # PID inside the node's PID namespace
    pause_host_pid: int  # PID of the same process on this machine
    ip: str
    netns_path: str  # inside the node, e.g. /run/netns/cni-<uuid>
    host_veth: str  # name of the pod's veth peer in the node's root netns
    containers: tuple[tuple[str, str], ...]  # (container name, container id)
    app: str  # "web" or "dns": what its app container serves
    qos: str  # kubelet QoS class directory: besteffort | burstable
    ips: tuple[str, ...] = ()  # every address of the pod, `ip` (the primary family's) first

    @property
    def ref(self) -> str:
        """namespace/name."""
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True)
class ServiceRecord:
    """One Service port as kube-proxy programmed it."""

    namespace: str
    name: str
    port_name: str
    protocol: str  # "TCP" or "UDP", as Kubernetes spells it
    cluster_ip: str
    port: int
    node_port: int | None
    endpoints: tuple[tuple[str, int], ...]  # (pod IP, target port)
    svc_chain: str  # KUBE-SVC-...
    sep_chains: tuple[str, ...]  # KUBE-SEP-... in endpoint order
    affinity: int | None = None  # ClientIP session affinity timeout in seconds, or None
    external_local: bool = False  # externalTrafficPolicy: Local (NodePort keeps the client IP)
    internal_local: bool = False  # internalTrafficPolicy: Local (ClusterIP to this node's pods)
    external_ips: tuple[str, ...] = ()  # spec.externalIPs
    lb_ips: tuple[str, ...] = ()  # status.loadBalancer.ingress[].ip
    source_ranges: tuple[str, ...] = ()  # spec.loadBalancerSourceRanges (CIDRs)

    @property
    def ref(self) -> str:
        """namespace/name."""
        return f"{self.namespace}/{self.name}"

    @property
    def port_ref(self) -> str:
        """kube-proxy's servicePortName string: namespace/name:port-name."""
        return f"{self.namespace}/{self.name}:{self.port_name}" if self.port_name else self.ref


@dataclass(frozen=True)
class LabRecord:
    """Everything a lab built, persisted as JSON in its state directory."""

    spec: LabSpec
    nodes: tuple[NodeRecord, ...]
    pods: tuple[PodRecord, ...]
    services: tuple[ServiceRecord, ...]
    underlay_pid: int
    underlay_start: int
    cgroup_dirs: tuple[str, ...]  # host cgroup directories made for the lab (to remove)
    created: float
    up_seconds: float

    def to_json(self) -> str:
        """Serialise to JSON text."""
        return json.dumps(asdict(self), indent=1, sort_keys=True)

    @staticmethod
    def from_json(text: str) -> LabRecord:
        """Parse JSON text written by to_json; LabError when malformed."""
        try:
            raw = json.loads(text)
            return _record_from_dict(raw)
        except (ValueError, KeyError, TypeError) as exc:
            raise LabError(f"lab state is unreadable: {exc}") from exc


def _tuples(items: list[list[Any]]) -> tuple[tuple[Any, ...], ...]:
    return tuple(tuple(item) for item in items)


def _record_from_dict(raw: dict[str, Any]) -> LabRecord:
    pods = tuple(
        PodRecord(**{**p, "containers": _tuples(p["containers"]), "ips": tuple(p.get("ips", ()))})
        for p in raw["pods"]
    )
    services = tuple(
        ServiceRecord(
            **{
                **s,
                "endpoints": _tuples(s["endpoints"]),
                "sep_chains": tuple(s["sep_chains"]),
                "external_ips": tuple(s.get("external_ips", ())),
                "lb_ips": tuple(s.get("lb_ips", ())),
                "source_ranges": tuple(s.get("source_ranges", ())),
            }
        )
        for s in raw["services"]
    )
    return LabRecord(
        spec=LabSpec(**raw["spec"]),
        nodes=tuple(NodeRecord(**n) for n in raw["nodes"]),
        pods=pods,
        services=services,
        underlay_pid=int(raw["underlay_pid"]),
        underlay_start=int(raw["underlay_start"]),
        cgroup_dirs=tuple(raw["cgroup_dirs"]),
        created=float(raw["created"]),
        up_seconds=float(raw["up_seconds"]),
    )
