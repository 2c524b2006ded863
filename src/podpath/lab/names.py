"""Names and identifiers computed the way Kubernetes components compute them."""

from __future__ import annotations

import base64
import hashlib
import uuid

# Alphabet of Kubernetes' rand.String (k8s.io/apimachinery/pkg/util/rand): no vowels,
# no look-alike characters, so generated names never spell words.
_K8S_ALPHANUMS = "bcdfghjklmnpqrstvwxz2456789"


def port_proto_hash(service_port_name: str, protocol: str) -> str:
    """kube-proxy's portProtoHash: base32(sha256(name + protocol))[:16]."""
    digest = hashlib.sha256((service_port_name + protocol.lower()).encode()).digest()
    return base64.b32encode(digest).decode()[:16]


def svc_chain(service_port_name: str, protocol: str) -> str:
    """KUBE-SVC-<hash> for a service port (kube-proxy servicePortPolicyClusterChain)."""
    return "KUBE-SVC-" + port_proto_hash(service_port_name, protocol)


def ext_chain(service_port_name: str, protocol: str) -> str:
    """KUBE-EXT-<hash> for a service port (kube-proxy servicePortPolicyExternalChainName)."""
    return "KUBE-EXT-" + port_proto_hash(service_port_name, protocol)


def svl_chain(service_port_name: str, protocol: str) -> str:
    """KUBE-SVL-<hash> for a service port (kube-proxy servicePortPolicyLocalChainName)."""
    return "KUBE-SVL-" + port_proto_hash(service_port_name, protocol)


def sep_chain(service_port_name: str, protocol: str, endpoint: str) -> str:
    """KUBE-SEP-<hash>: base32(sha256(name + protocol + "ip:port"))[:16]."""
    data = service_port_name + protocol.lower() + endpoint
    digest = hashlib.sha256(data.encode()).digest()
    return "KUBE-SEP-" + base64.b32encode(digest).decode()[:16]


def _stable_bytes(*parts: str) -> bytes:
    return hashlib.sha256("\x00".join(parts).encode()).digest()


def k8s_suffix(length: int, *seed: str) -> str:
    """A deterministic Kubernetes-style random suffix (e.g. the x7k2p of web-5d9c-x7k2p)."""
    raw = _stable_bytes("suffix", *seed)
    return "".join(_K8S_ALPHANUMS[b % len(_K8S_ALPHANUMS)] for b in raw[:length])


def pod_name(deployment: str, *seed: str) -> str:
    """A Deployment-style pod name: <deployment>-<10 char hash>-<5 char suffix>."""
    template_hash = k8s_suffix(10, "template", deployment, seed[0] if seed else "")
    return f"{deployment}-{template_hash}-{k8s_suffix(5, deployment, *seed)}"


def pod_uid() -> str:
    """A fresh pod UID (kubelet uses a random UUID)."""
    return str(uuid.uuid4())


def container_id() -> str:
    """A fresh 64-hex container or sandbox id, as containerd makes them."""
    return uuid.uuid4().hex + uuid.uuid4().hex


def netns_name() -> str:
    """A fresh containerd-style pod netns name: cni-<uuid>."""
    return f"cni-{uuid.uuid4()}"


def mac_for(*seed: str) -> str:
    """A deterministic locally administered unicast MAC address."""
    raw = bytearray(_stable_bytes("mac", *seed)[:6])
    raw[0] = (raw[0] & 0xFC) | 0x02
    return ":".join(f"{b:02x}" for b in raw)
