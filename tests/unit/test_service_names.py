"""IPVS Services named from pods' Service-link environment (kubelet's envvars.go format):
the real IPVS fixtures plus pods carrying matching, stale and conflicting variables."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import pytest
from trace_factory import NodeSpec, PodSpec, build_node, ipvs_mode

from podpath.analysis.index import SnapshotIndex
from podpath.analysis.service_names import gather, service_names
from podpath.collectors.hostroot import HostRoot
from podpath.collectors.proc.processes import parse_stat
from podpath.collectors.proc.service_links import collect_service_links
from podpath.kubelet_env import ServiceLink, keep_service_links, service_links
from podpath.lab.cri_pods import fitting_service_links
from podpath.listing import listing
from podpath.netfilter.ipvs import parse_ipvs
from podpath.snapshot.codec import dumps, loads
from podpath.snapshot.model import Container, Pod, Process, ServiceLinkEnv, Snapshot
from podpath.table import render_text
from podpath.trace.engine import trace
from podpath.trace.probe import Probe, ProbeError

IPVS = Path(__file__).resolve().parents[1] / "fixtures" / "realworld" / "ipvs"
IPTABLES = Path(__file__).resolve().parents[1] / "fixtures" / "realworld" / "iptables"
SECRET = "DB_PASSWORD=hunter2-do-not-leak"

# The Kubernetes documentation's example of the variables (concepts/services-networking
# "Environment variables"): Service redis-primary, TCP 6379, ClusterIP 10.0.0.11.
REDIS = [
    "REDIS_PRIMARY_SERVICE_HOST=10.0.0.11",
    "REDIS_PRIMARY_SERVICE_PORT=6379",
    "REDIS_PRIMARY_PORT=tcp://10.0.0.11:6379",
    "REDIS_PRIMARY_PORT_6379_TCP=tcp://10.0.0.11:6379",
    "REDIS_PRIMARY_PORT_6379_TCP_PROTO=tcp",
    "REDIS_PRIMARY_PORT_6379_TCP_PORT=6379",
    "REDIS_PRIMARY_PORT_6379_TCP_ADDR=10.0.0.11",
]


def _links(prefix: str, ip: str, ports: list[tuple[str, int, str]]) -> list[str]:
    """kubelet's variables of one Service (envvars.FromServices), ports in spec order."""
    env = [f"{prefix}_SERVICE_HOST={ip}", f"{prefix}_SERVICE_PORT={ports[0][1]}"]
    env += [f"{prefix}_SERVICE_PORT_{n.upper().replace('-', '_')}={p}" for n, p, _ in ports if n]
    for i, (_n, port, proto) in enumerate(ports):
        url = f"{proto.lower()}://{ip}:{port}"
        if i == 0:
            env.append(f"{prefix}_PORT={url}")
        base = f"{prefix}_PORT_{port}_{proto}"
        env += [f"{base}={url}", f"{base}_PROTO={proto.lower()}"]
        env += [f"{base}_PORT={port}", f"{base}_ADDR={ip}"]
    return env


KUBERNETES = _links("KUBERNETES", "10.0.0.1", [("https", 443, "TCP")])
KUBE_DNS = _links(
    "KUBE_DNS", "10.0.0.10", [("dns", 53, "UDP"), ("dns-tcp", 53, "TCP"), ("metrics", 9153, "TCP")]
)


def test_documented_example_parses_and_nothing_else_is_kept() -> None:
    """The docs' redis-primary variables give one TCP port; other variables are dropped."""
    noise = [
        SECRET,
        "PATH=/usr/bin",
        "API_SERVICE_HOST=10.0.0.12",  # a host with no port variable: not kubelet's
        "MY_SERVICE_HOST=db.internal",  # not an address
        "REDIS_PRIMARY_SERVICE_PORT_PIN=4242",  # no _PORT_4242_TCP of the ClusterIP
        "REDIS_PRIMARY_PORT_6379_TCP_ADDR_X=1",
        "REDIS_PRIMARY_PORT_7000_TCP_ADDR=10.9.9.9",  # another address than the ClusterIP
    ]
    kept = keep_service_links([*noise, *REDIS])
    assert sorted(kept) == sorted(REDIS)
    assert service_links("prod", REDIS) == (
        ServiceLink("prod", "redis-primary", "10.0.0.11", 6379, "TCP", ()),
    )


def test_port_names_that_one_number_shares_are_all_offered() -> None:
    """kube-dns's dns (53/udp) and dns-tcp (53/tcp): the variables cannot tell which is which."""
    links = {(x.port, x.protocol): x for x in service_links("kube-system", KUBE_DNS)}
    assert links[(53, "UDP")].port_names == ("dns", "dns-tcp")
    assert links[(53, "UDP")].port_name == ""
    assert links[(9153, "TCP")].port_name == "metrics"
    (api,) = service_links("kube-system", KUBERNETES)
    assert (api.service, api.port_name) == ("default/kubernetes", "https")


def _env(ns: str, pod: str, variables: list[str], pid: int = 100) -> ServiceLinkEnv:
    return ServiceLinkEnv(ns, pod, "app", pid, tuple(keep_service_links(variables)))


def _node(*envs: ServiceLinkEnv) -> Snapshot:
    """The README's IPVS listing (kubernetes 10.0.0.1:443, kube-dns 10.0.0.10:53) on a node."""
    listing = (IPVS / "k8s-ipvs-readme-ipvsadm-ln.txt").read_text()
    rules = (IPTABLES / "k8s-ipvs-mode-iptables-t-nat-nL-loadbalancer.txt").read_text()
    snap = build_node(
        NodeSpec(pod_cidr="10.244.0.0/24", pods=[PodSpec("a", "10.244.0.5")], iptables=rules)
    )
    vips = sorted({s.address for s in parse_ipvs(listing) if s.address})
    return replace(ipvs_mode(snap, listing, vips), service_links=envs)


STALE_WEB = _links("WEB", "10.0.0.99", [("http", 80, "TCP")])


def _named_node() -> Snapshot:
    return _node(
        _env("default", "a", [*KUBERNETES, *STALE_WEB, SECRET]),
        _env("kube-system", "coredns-0", [*KUBERNETES, *KUBE_DNS]),
    )


def test_ipvs_virtual_services_are_named_from_the_environment() -> None:
    """`ls services`: NAME from the variables, the source said; the stale one names nothing."""
    index = SnapshotIndex(_named_node())
    rows = {(r["cluster_ip"], r["port"], r["protocol"]): r for r in listing(index, "services").rows}
    api = rows[("10.0.0.1", 443, "TCP")]
    assert (api["namespace"], api["name"], api["port_name"]) == ("default", "kubernetes", "https")
    assert api["name_source"] == "named from pods' service-link environment"
    dns = rows[("10.0.0.10", 53, "UDP")]
    assert (dns["namespace"], dns["name"], dns["port_name"]) == ("kube-system", "kube-dns", "")
    assert not any(r["cluster_ip"] == "10.0.0.99" for r in rows.values())
    text = render_text(listing(index, "services"))
    assert "kubernetes" in text and "kube-dns" in text
    notes = index.service_names.notes()
    assert any("default/web at 10.0.0.99:80/tcp" in n and "not serve" in n for n in notes)
    assert any("kube-system/kube-dns at 10.0.0.10:9153/tcp" in n for n in notes), notes
    assert SECRET not in dumps(index.snapshot)
    assert "hunter2" not in json.dumps(listing(index, "services").rows)


def test_trace_to_a_name_resolves_in_ipvs_mode_and_the_hop_names_it() -> None:
    """`--to ns/name:port` resolves through the environment; the IPVS hop names the Service."""
    node = _named_node()
    result = trace([node], Probe("default/a", "kube-system/kube-dns:dns-tcp", "tcp"))
    (branch,) = result.branches
    assert branch.packet.dst == "172.17.0.2"
    hop = next(h for h in branch.hops if h.data.get("backend") == "ipvs")
    owner = hop.data["owner"]
    assert isinstance(owner, dict) and owner["name"] == "kube-system/kube-dns"
    assert "(Service kube-system/kube-dns)" in hop.text
    (udp,) = trace([node], Probe("default/a", "kube-system/kube-dns:53", "udp")).branches
    assert udp.packet.dst == "172.17.0.2"
    (api,) = trace([node], Probe("default/a", "default/kubernetes:https")).branches
    assert api.packet.dst == "192.168.0.1"


def test_a_name_no_environment_holds_gets_one_sentence() -> None:
    """A stale name (its address is not served) and an unknown one are refused, not guessed."""
    node = _named_node()
    with pytest.raises(ProbeError, match="no pod's service-link environment") as err:
        trace([node], Probe("default/a", "default/nowhere:80"))
    assert "trace its ClusterIP:port" in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(ProbeError, match="only at 10.0.0.99:80/tcp, which IPVS does not serve"):
        trace([node], Probe("default/a", "default/web:http"))


def test_conflicting_environments_name_nothing() -> None:
    """Two Services named for one served address: left unnamed, both candidates told."""
    other = _links("LEGACY_API", "10.0.0.1", [("https", 443, "TCP")])
    index = SnapshotIndex(
        _node(_env("default", "a", KUBERNETES), _env("default", "b", other, pid=101))
    )
    row = next(r for r in listing(index, "services").rows if r["port"] == 443)
    assert row["name"] == "" and row["name_source"] is None
    assert row["name_candidates"] == ["default/kubernetes", "default/legacy-api"]
    assert any("left unnamed" in n for n in index.service_names.notes())


def test_old_snapshots_without_the_field_still_load_and_trace() -> None:
    """A snapshot written before the field: service_links None, IPVS unnamed as before."""
    node = _node()
    data = json.loads(dumps(replace(node, service_links=None)))
    data.pop("service_links", None)
    loaded = loads(json.dumps(data))
    assert loaded.service_links is None
    assert SnapshotIndex(loaded).service_names.by_address == {}
    with pytest.raises(ProbeError, match="IPVS mode"):
        trace([loaded], Probe("default/a", "default/kubernetes:https"))


def test_iptables_mode_names_agree_with_the_environment() -> None:
    """The cross-check's function: served addresses from kube-proxy's named Services."""
    from podpath.analysis.service_names import served

    links = [_env("default", "a", _links("WEB", "10.96.0.20", [("http", 80, "TCP")]))]
    names = service_names(links, {("10.96.0.20", 80, "TCP")})
    assert names.name_of("10.96.0.20", 80, "tcp") is not None
    assert served([]) == set()


@contextmanager
def _process(variables: list[str]) -> Iterator[tuple[Process, Container]]:
    """A real process whose environ is PATH, a secret and `variables`, as a container's init."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin")}
    env.update(dict(v.split("=", 1) for v in [SECRET, *variables]))
    child = subprocess.Popen(
        [sys.executable, "-c", "import sys; print('ready', flush=True); sys.stdin.read()"],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    try:
        assert child.stdout is not None and child.stdout.readline() == b"ready\n"  # exec'd
        stat = parse_stat(Path(f"/proc/{child.pid}/stat").read_bytes())
        proc = Process(child.pid, stat.start_time, stat.ppid, stat.comm, (), None, "S", None)
        yield proc, Container("app", "c" * 64, "container", pids=(child.pid,))
    finally:
        child.communicate(b"")


def test_collector_reads_a_real_process_environ_and_keeps_only_links() -> None:
    """A real process with a secret and kubelet's variables: only the variables are kept."""
    with _process(REDIS) as (proc, container):
        pod = Pod("prod", "redis-client", "uid", "s" * 64, None, containers=(container,))
        with HostRoot("/") as host:
            found, gaps = collect_service_links(host, [pod], [proc], threading.Event())
        assert gaps == []
        (one,) = found
        assert (one.namespace, one.pod, one.container, one.pid) == (
            "prod",
            "redis-client",
            "app",
            proc.pid,
        )
        assert sorted(one.variables) == sorted(REDIS)
        assert "hunter2" not in repr(found)
        # A PID whose process is not the one scanned (reused): a gap, nothing read.
        old = replace(proc, start_time=proc.start_time - 1)
        with HostRoot("/") as host:
            found, gaps = collect_service_links(host, [pod], [old], threading.Event())
        assert found == () and "reused" in gaps[0].reason


def test_a_planted_secret_reaches_no_snapshot_json_or_output(tmp_path: Path) -> None:
    """A real process's secret: not in the snapshot file, `ls services` or a trace, text or JSON."""
    with _process([*KUBERNETES, *STALE_WEB]) as (proc, container):
        pod = Pod("default", "a", "uid", "s" * 64, None, containers=(container,))
        with HostRoot("/") as host:
            found, gaps = collect_service_links(host, [pod], [proc], threading.Event())
    assert gaps == [] and len(found) == 1
    path = tmp_path / "node.json"
    path.write_text(dumps(replace(_named_node(), service_links=found)))
    assert "hunter2" not in path.read_text()
    runs = [
        ["ls", "services"],
        ["ls", "services", "--json"],
        ["trace", "--from", "default/a", "--to", "default/kubernetes:https"],
        ["trace", "--from", "default/a", "--to", "default/kubernetes:https", "--json"],
    ]
    outputs = []
    for args in runs:
        done = subprocess.run(
            [sys.executable, "-m", "podpath", *args, "--snapshot", str(path)],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        outputs.append(done.stdout + done.stderr)
    assert not any("hunter2" in out for out in outputs)
    assert "default/web at 10.0.0.99:80/tcp" in outputs[0]  # the stale variable, told
    assert "kubernetes" in outputs[2] and "192.168.0.1" in outputs[2]


def test_stale_and_conflicting_variables_are_problems_in_ipvs_mode() -> None:
    """`ls problems`/doctor: a stale variable is a warning, a conflict an info finding."""
    from podpath.analysis.parsed import ParsedSnapshot
    from podpath.analysis.problems import problems

    other = _links("LEGACY_API", "10.0.0.1", [("https", 443, "TCP")])
    snap = replace(
        _named_node(),
        service_links=(*(_named_node().service_links or ()), _env("default", "b", other, 7)),
    )
    found = problems(ParsedSnapshot(SnapshotIndex(snap)))
    stale = {f.subject: f for f in found if f.check == "service-link-stale"}
    web = stale["Service default/web"]
    assert web.grade == "warning" and "10.0.0.99:80/tcp" in web.cause
    assert web.evidence == ("default/a/app: WEB_SERVICE_HOST",)
    assert stale["Service kube-system/kube-dns"].evidence == (
        "kube-system/coredns-0/app: KUBE_DNS_SERVICE_HOST",
    )
    (conflict,) = [f for f in found if f.check == "service-link-conflict"]
    assert "default/kubernetes and default/legacy-api" in conflict.cause


def test_a_set_of_variables_is_written_once_and_every_holder_keeps_it() -> None:
    """Two pods whose containers hold the same variables (as every pod of a namespace
    does): the set is in the snapshot once, the second record points to the first, and
    both containers still carry each Service port the set names."""
    with _process(REDIS) as (proc, container):
        pods = [
            Pod("prod", name, "uid", "s" * 64, None, containers=(container,))
            for name in ("redis-client-a", "redis-client-b")
        ]
        with HostRoot("/") as host:
            found, gaps = collect_service_links(host, pods, [proc], threading.Event())
    assert gaps == []
    first, second = found
    assert sorted(first.variables) == sorted(REDIS) and first.same_as == ""
    assert second.variables == () and second.same_as == "prod/redis-client-a/app"
    again = loads(dumps(replace(_named_node(), service_links=found)))
    assert again.service_links == found
    carried = {n.link: n.carriers for n in gather(found)}
    assert carried and all(
        who == ("prod/redis-client-a/app", "prod/redis-client-b/app") for who in carried.values()
    )


def test_the_lab_gives_no_links_that_exec_would_refuse() -> None:
    """Thousands of Services in one namespace: their variables would pass what exec
    accepts, so the lab's pods get none, as with enableServiceLinks: false."""
    few = [("WEB_SERVICE_HOST", "10.96.0.100")]
    assert fitting_service_links(few) == few
    many = [(f"SVC_{i}_SERVICE_HOST", "10.96.0.1") for i in range(100_000)]
    assert fitting_service_links(many) == []


def test_the_lab_gives_each_container_the_variables_in_an_order_of_its_own() -> None:
    """As kubelet's map gives them: the same variables, in one order per container
    (the same each time the lab asks for that container), another for the next."""
    from podpath.lab.cri_pods import kubelets_order

    env = [(f"SVC_{i}_SERVICE_HOST", f"10.96.0.{i}") for i in range(50)]
    first = kubelets_order(env, "default/web-0/web/0")
    assert sorted(first) == sorted(env) and first != env
    assert kubelets_order(env, "default/web-0/web/0") == first
    assert kubelets_order(env, "default/web-1/web/0") != first
    assert kubelets_order(env, "default/web-0/web/1") != first
