"""kubelet's Service-link environment variables: which variables they are, and what they say.

For each Service of a pod's namespace (plus default/kubernetes) that exists when a
container is created, kubelet sets (kubernetes/kubernetes pkg/kubelet/envvars/envvars.go,
FromServices and makeLinkVariables; pkg/kubelet/kubelet_pods.go, getServiceEnvVarMap):

    <NAME>_SERVICE_HOST=<ClusterIP>
    <NAME>_SERVICE_PORT=<first port>
    <NAME>_SERVICE_PORT_<PORTNAME>=<port>          (each named port)
    <NAME>_PORT=<proto>://<ClusterIP>:<first port>
    <NAME>_PORT_<port>_<PROTO>=<proto>://<ClusterIP>:<port>
    <NAME>_PORT_<port>_<PROTO>_PROTO|_PORT|_ADDR=<proto>|<port>|<ClusterIP>

NAME is the Service name upper-cased with '-' made '_', PORTNAME the port's name the
same way. Service names are DNS-1035 labels and port names IANA service names (lower
case, digits, '-'), so both are reversed by lower-casing and making '_' '-'.

Only a variable of exactly these shapes whose value agrees with its Service's
`_SERVICE_HOST` is kept: environ holds secrets, and a user's `DB_SERVICE_PORT_PIN=1234`
is not kept unless a `DB_PORT_1234_<PROTO>` of the same ClusterIP says it is a port.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from collections.abc import Collection, Iterable
from dataclasses import dataclass

_HOST = re.compile(r"^(?P<name>[A-Z][A-Z0-9_]*)_SERVICE_HOST$")
_PORT_VAR = re.compile(
    r"^_PORT_(?P<port>[0-9]{1,5})_(?P<proto>TCP|UDP|SCTP)(?P<field>_PROTO|_PORT|_ADDR)?$"
)
_SERVICE_PORT = re.compile(r"^_SERVICE_PORT(?:_(?P<pname>[A-Z0-9][A-Z0-9_]*))?$")
_URL = re.compile(
    r"^(?P<proto>tcp|udp|sctp)://(?P<host>\[[0-9a-fA-F:.]+\]|[0-9.]+):(?P<port>[0-9]{1,5})$"
)
MASTER_SERVICE = "KUBERNETES"  # default/kubernetes: kubelet gives it to every namespace


@dataclass(frozen=True)
class ServiceLink:
    """One Service port as one container's environment tells it."""

    namespace: str
    name: str
    ip: str
    port: int
    protocol: str  # TCP, UDP, SCTP
    # The port's name; several when kubelet's variables cannot tell them apart (two
    # named ports with one number, e.g. kube-dns's dns/udp and dns-tcp/tcp on 53).
    port_names: tuple[str, ...] = ()

    @property
    def port_name(self) -> str:
        """The port's name when the variables tell it, else ''."""
        return self.port_names[0] if len(self.port_names) == 1 else ""

    @property
    def service(self) -> str:
        """`namespace/name`."""
        return f"{self.namespace}/{self.name}"


# Each Service's ClusterIP is checked ~7 times (its _SERVICE_HOST, each port's URL and
# _ADDR): with 3.3k Services in a namespace, ipaddress took 3/4 of keep_service_links'
# 0.18 s per distinct set of variables. Pure, and bounded against a hostile environ.
@functools.lru_cache(maxsize=1 << 16)
def _address(text: str) -> str | None:
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return None


def _valid_port(text: str) -> int | None:
    return int(text) if text.isdigit() and 0 < int(text) < 65536 and text[0] != "0" else None


def _split(env: Iterable[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in env:
        key, sep, value = item.partition("=")
        if sep:
            out[key] = value
    return out


def _hosts(env: dict[str, str]) -> dict[str, str]:
    """NAME -> ClusterIP of each `<NAME>_SERVICE_HOST` holding an address."""
    out = {}
    for key, value in env.items():
        found = _HOST.match(key)
        if found is not None and _address(value) == value:
            out[found["name"]] = value
    return out


def _by_service(env: dict[str, str], names: Collection[str]) -> dict[str, dict[str, str]]:
    """Each NAME's variables by suffix (`_PORT_53_UDP`...): one pass, whatever their number.

    A namespace with thousands of Services gives each container thousands of variables:
    each one is split at each '_' rather than compared with every Service.
    """
    own: dict[str, dict[str, str]] = {name: {} for name in names}
    for key, value in env.items():
        at = key.find("_")
        while at != -1:
            if key[:at] in own:
                own[key[:at]][key[at:]] = value
            at = key.find("_", at + 1)
    return own


def _service_vars(name: str, host: str, own: dict[str, str]) -> dict[str, str]:
    """The variables of Service NAME (ClusterIP `host`) that have kubelet's shape and agree."""
    kept: dict[str, str] = {}
    ports: set[int] = set()
    for suffix, value in own.items():
        found = _PORT_VAR.match(suffix)
        if found is None:
            continue
        port, proto, what = _valid_port(found["port"]), found["proto"], found["field"]
        if port is None:
            continue
        url = _URL.match(value)
        ok = {
            None: url is not None
            and url["proto"] == proto.lower()
            and _address(url["host"].strip("[]")) == host
            and url["port"] == found["port"],
            "_PROTO": value == proto.lower(),
            "_PORT": value == found["port"],
            "_ADDR": _address(value) == host,
        }[what]
        if ok:
            kept[name + suffix] = value
            ports.add(port)
    for suffix, value in own.items():
        found = _SERVICE_PORT.match(suffix)
        port = _valid_port(value)
        if found is not None and port in ports:
            kept[name + suffix] = value
    first = _URL.match(own.get("_PORT", ""))
    if (
        first
        and _address(first["host"].strip("[]")) == host
        and _valid_port(first["port"]) in ports
    ):
        kept[name + "_PORT"] = own["_PORT"]
    return kept


def keep_service_links(env: Iterable[str]) -> tuple[str, ...]:
    """Of NAME=VALUE strings, only kubelet's Service-link variables (sorted); the rest is dropped."""
    variables = _split(env)
    hosts = _hosts(variables)
    own = _by_service(variables, hosts)
    kept: dict[str, str] = {}
    for name, host in hosts.items():
        ports = _service_vars(name, host, own[name])
        if ports:  # a ClusterIP with no port variable is not kubelet's doing
            kept[f"{name}_SERVICE_HOST"] = host
            kept.update(ports)
    return tuple(f"{k}={v}" for k, v in sorted(kept.items()))


def _reverse(name: str) -> str:
    return name.lower().replace("_", "-")


def service_links(namespace: str, variables: Iterable[str]) -> tuple[ServiceLink, ...]:
    """The Service ports one container's Service-link variables describe, in the pod's namespace."""
    env = _split(keep_service_links(variables))
    hosts = _hosts(env)
    by_name = _by_service(env, hosts)
    out: list[ServiceLink] = []
    for name, host in sorted(hosts.items()):
        own = _service_vars(name, host, by_name[name])
        named: dict[int, list[str]] = {}
        ports: set[tuple[int, str]] = set()
        for var, value in own.items():
            suffix = var[len(name) :]
            sp = _SERVICE_PORT.match(suffix)
            if sp is not None and sp["pname"]:
                named.setdefault(int(value), []).append(_reverse(sp["pname"]))
            pv = _PORT_VAR.match(suffix)
            if pv is not None and pv["field"] is None:
                ports.add((int(pv["port"]), pv["proto"]))
        # default/kubernetes is the only Service kubelet adds from another namespace.
        ns = "default" if name == MASTER_SERVICE else namespace
        for port, proto in sorted(ports):
            out.append(
                ServiceLink(
                    ns, _reverse(name), host, port, proto, tuple(sorted(named.get(port, [])))
                )
            )
    return tuple(out)
