"""What a lab will contain: its pods per node and its Services with their endpoints."""

from __future__ import annotations

from podpath.lab.kubeproxy import service_chains
from podpath.lab.names import pod_name, pod_uid
from podpath.lab.pods import DNS_IP, PodPlan
from podpath.lab.records import LabSpec, PodRecord, ServiceRecord

WEB_NODE_PORT = 30080
# web-local's NodePort (externalTrafficPolicy Local, endpoints on node1 only).
LOCAL_NODE_PORT = 30081
LOCAL_NODE = "node1"
WEB_HOST_PORT = 8080
# web-lb's NodePort (a LoadBalancer Service gets one, externalTrafficPolicy Cluster).
LB_NODE_PORT = 30082
# External and LoadBalancer IPs (IPv4 only) come from TEST-NET-1 (RFC 5737): the lab's
# `outside` namespace routes them to a node, as a router or a cloud load balancer would.
WEB_LB_EXTERNAL_IP = "192.0.2.10"
WEB_LB_INGRESS_IP = "192.0.2.11"
LOCAL_EXTERNAL_IP = "192.0.2.20"
LOCAL_INGRESS_IP = "192.0.2.21"
# web-lb's loadBalancerSourceRanges: the outside client's allowed address is in it, its
# refused one is not, and no node address is (so kube-proxy adds no allow-from-node rule).
LB_SOURCE_RANGE = "172.18.100.0/24"
OUTSIDE_ALLOWED = "172.18.100.10"
OUTSIDE_REFUSED = "172.18.200.10"
# ClientIP session affinity timeout of web-sticky (kube-proxy's default, 3 hours).
AFFINITY_SECONDS = 10800
SYNTHETIC_NAMESPACES = ("shop", "billing", "default")
# Every tenth synthetic Service has no endpoints, as real clusters always have some.
NO_ENDPOINTS_EVERY = 10
ENDPOINTS_PER_SYNTHETIC = 3


def pod_plans(spec: LabSpec) -> list[PodPlan]:
    """Pods to make: coredns on node1, web pods everywhere else, `spec.pods` per node."""
    plans: list[PodPlan] = []
    for n in range(1, spec.nodes + 1):
        node = f"node{n}"
        for i in range(spec.pods):
            if n == 1 and i == 0:
                plans.append(
                    PodPlan(
                        node,
                        "kube-system",
                        pod_name("coredns", spec.name),
                        pod_uid(),
                        "dns",
                        "burstable",
                    )
                )
                continue
            ports = ((WEB_HOST_PORT, 80, "tcp"),) if n == 1 and i == 1 else ()
            name = pod_name("web", spec.name, node, str(i))
            # One pod whose app container crashed once (attempt 0 exited, attempt 1
            # running), as every real node has some; the imitation cannot restart.
            restarts = int(n == 1 and i == 2 and spec.runtime == "containerd")
            plans.append(
                PodPlan(node, "default", name, pod_uid(), "web", "besteffort", ports, restarts)
            )
    return plans


def _service(
    namespace: str,
    name: str,
    port_name: str,
    protocol: str,
    cluster_ip: str,
    port: int,
    node_port: int | None,
    endpoints: tuple[tuple[str, int], ...],
    affinity: int | None = None,
    local: bool = False,
    external_ips: tuple[str, ...] = (),
    lb_ips: tuple[str, ...] = (),
    source_ranges: tuple[str, ...] = (),
) -> ServiceRecord:
    draft = ServiceRecord(
        namespace, name, port_name, protocol, cluster_ip, port, node_port, endpoints, "", ()
    )
    svc, seps = service_chains(draft)
    return ServiceRecord(
        namespace,
        name,
        port_name,
        protocol,
        cluster_ip,
        port,
        node_port,
        endpoints,
        svc,
        seps,
        affinity,
        external_local=local,
        internal_local=local,
        external_ips=external_ips,
        lb_ips=lb_ips,
        source_ranges=source_ranges,
    )


def synthetic_ip(index: int, family: int = 4) -> str:
    """ClusterIP of synthetic Service `index` (0-based), clear of kube-dns and web."""
    if family == 6:
        return f"fd00:10:96::{1 + index // 250:x}:{1 + index % 250:x}"
    return f"10.96.{1 + index // 250}.{1 + index % 250}"


# kube-dns, web, web-sticky and noep ClusterIPs per family (IPv6 from the lab's SERVICE_CIDR6).
DNS_IPS = {4: DNS_IP, 6: "fd00:10:96::a"}
WEB_IPS = {4: "10.96.0.100", 6: "fd00:10:96::64"}
STICKY_IPS = {4: "10.96.0.101", 6: "fd00:10:96::65"}
NOEP_IPS = {4: "10.96.0.102", 6: "fd00:10:96::66"}
LOCAL_IPS = {4: "10.96.0.103", 6: "fd00:10:96::67"}
LB_IPS = {4: "10.96.0.104"}


def pod_ip(pod: PodRecord, family: int) -> str | None:
    """A pod's address of one family (records from before dual-stack hold only `ip`)."""
    for ip in pod.ips or (pod.ip,):
        if (":" in ip) == (family == 6):
            return ip
    return None


def services(spec: LabSpec, pods: list[PodRecord]) -> list[ServiceRecord]:
    """kube-dns (53 udp+tcp), web (80/tcp + NodePort), web-sticky, noep, then synthetic ones.

    `spec.services` counts Services (not ports): 2 makes kube-dns and web; a third is
    web-sticky (web's pods with ClientIP session affinity), a fourth noep (no endpoints:
    kube-proxy rejects it); the rest are synthetic. A dual-stack lab gets each of these
    named Services in both families, as a PreferDualStack Service has a ClusterIP of
    each; synthetic Services use the primary family only. With
    `spec.traffic_policy_local`, web-local follows the named ones (not counted), with
    an external IP and a LoadBalancer IP in its IPv4 family; with `spec.load_balancer`,
    web-lb (IPv4 only, not counted): web's pods behind a NodePort, an external IP and a
    LoadBalancer IP that only LB_SOURCE_RANGE may reach.
    """
    out: list[ServiceRecord] = []
    for n, family in enumerate(spec.families):
        out += _services(spec, pods, family, synthetic=n == 0)
    return out


def _services(
    spec: LabSpec, pods: list[PodRecord], family: int, synthetic: bool
) -> list[ServiceRecord]:
    dns = [ip for p in pods if p.app == "dns" and (ip := pod_ip(p, family))]
    web_pods = sorted((p for p in pods if p.app == "web"), key=lambda p: (p.node, p.name))
    web = [ip for p in web_pods if (ip := pod_ip(p, family))]
    web_eps = tuple((ip, 80) for ip in web)
    dns_eps = tuple((ip, 53) for ip in dns)
    out = [
        _service("kube-system", "kube-dns", "dns", "UDP", DNS_IPS[family], 53, None, dns_eps),
        _service("kube-system", "kube-dns", "dns-tcp", "TCP", DNS_IPS[family], 53, None, dns_eps),
        _service("default", "web", "http", "TCP", WEB_IPS[family], 80, WEB_NODE_PORT, web_eps),
    ]
    if spec.services >= 3:
        sticky_ip = STICKY_IPS[family]
        sticky = ("default", "web-sticky", "http", "TCP", sticky_ip, 80, None, web_eps)
        out.append(_service(*sticky, AFFINITY_SECONDS))
    if spec.services >= 4:
        out.append(_service("default", "noep", "http", "TCP", NOEP_IPS[family], 80, None, ()))
    if spec.traffic_policy_local:
        # Both traffic policies Local, endpoints on one node: the other nodes drop it.
        local_eps = tuple(
            (ip, 80) for p in web_pods if p.node == LOCAL_NODE and (ip := pod_ip(p, family))
        )
        out.append(
            _service(
                "default",
                "web-local",
                "http",
                "TCP",
                LOCAL_IPS[family],
                80,
                LOCAL_NODE_PORT,
                local_eps,
                local=True,
                external_ips=(LOCAL_EXTERNAL_IP,) if family == 4 else (),
                lb_ips=(LOCAL_INGRESS_IP,) if family == 4 else (),
            )
        )
    if spec.load_balancer and family == 4:
        out.append(
            _service(
                "default",
                "web-lb",
                "http",
                "TCP",
                LB_IPS[family],
                80,
                LB_NODE_PORT,
                web_eps,
                external_ips=(WEB_LB_EXTERNAL_IP,),
                lb_ips=(WEB_LB_INGRESS_IP,),
                source_ranges=(LB_SOURCE_RANGE,),
            )
        )
    if not synthetic:
        return out
    for i in range(spec.services - 4):
        endpoints: tuple[tuple[str, int], ...] = ()
        if web and i % NO_ENDPOINTS_EVERY != NO_ENDPOINTS_EVERY - 1:
            picks = {web[(i + k) % len(web)] for k in range(ENDPOINTS_PER_SYNTHETIC)}
            endpoints = tuple((ip, 80) for ip in sorted(picks))
        ns = SYNTHETIC_NAMESPACES[i % len(SYNTHETIC_NAMESPACES)]
        out.append(
            _service(
                ns, f"svc-{i + 1:04d}", "http", "TCP", synthetic_ip(i, family), 80, None, endpoints
            )
        )
    return out
