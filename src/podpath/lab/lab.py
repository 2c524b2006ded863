"""Bringing labs up and down, and the Lab handle the CLI and the tests use."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TypeVar

from podpath.cri.client import CriClient, CriError
from podpath.lab import (
    awsvpc,
    cgroups,
    cni,
    containerd,
    cri_pods,
    dockerd,
    images,
    names,
    network,
    outside,
    pods,
    procs,
    runtime,
    state,
    topology,
)
from podpath.lab.kube_router import ipset_input, iptables_input
from podpath.lab.kubeproxy import KUBELET_CHAINS, merge_for_restore, restore_input
from podpath.lab.kubeproxy_nft import render as render_nft
from podpath.lab.names import mac_for
from podpath.lab.node import enter_argv, node_env, run_in, start_node, start_underlay
from podpath.lab.plan import pod_plans, services
from podpath.lab.probe import DEFAULT_WAIT, ProbeResult, run_probe
from podpath.lab.records import (
    LabError,
    LabRecord,
    LabSpec,
    NodeRecord,
    PodRecord,
    ServiceRecord,
    check_name,
)

REQUIRED_TOOLS = (
    "nsenter",
    "unshare",
    "runc",
    "catatonit",
    "busybox",
    "ip",
    "bridge",
    "iptables-restore",
    "ip6tables-restore",
    "nft",
    "mount",
    "python3",
)
CONTAINERD_TOOLS = ("containerd", "containerd-shim-runc-v2", "ctr")
CNI_PLUGINS = ("bridge", "ptp", "host-local", "portmap", "loopback")
T = TypeVar("T")
R = TypeVar("R")
WORKERS = 6  # parallel pod builds; runc and CNI spend most of their time in the kernel


def default_runtime() -> str:
    """containerd where it is installed, else the runc imitation."""
    return "containerd" if containerd.installed() else "runc-imitation"


@dataclass(frozen=True)
class LabNode:
    """One node of a running lab."""

    name: str
    init_pid: int  # host PID of the node's init: nsenter -t init_pid enters the node
    address: str  # underlay IPv4 address
    pod_cidr: str


@dataclass(frozen=True)
class LabSummary:
    """One line of `podpath lab status`."""

    name: str
    alive: bool
    nodes: int
    pods: int
    services: int
    overlay: str  # how pods cross nodes: LabSpec.crossing (--overlay, or routes, vpc)
    created: float
    up_seconds: float
    state_dir: str
    cni: str = "bridge"
    ip_family: str = "ipv4"


class LabCommandError(subprocess.CalledProcessError):
    """A command run inside a lab node failed; str() includes its stderr."""

    def __str__(self) -> str:
        err = self.stderr if isinstance(self.stderr, str) else ""
        return f"{super().__str__()}: {err.strip()[-1500:]}"


class Lab:
    """A running lab: its nodes, what was built (record), and ways to act inside it."""

    def __init__(self, record: LabRecord) -> None:
        self.record = record
        self.name = record.spec.name
        self.nodes = tuple(LabNode(n.name, n.init_pid, n.address, n.pod_cidr) for n in record.nodes)

    def __repr__(self) -> str:
        return f"Lab({self.name!r}, nodes={[n.name for n in self.nodes]})"

    @property
    def pods(self) -> tuple[PodRecord, ...]:
        """Every pod the lab made."""
        return self.record.pods

    @property
    def services(self) -> tuple[ServiceRecord, ...]:
        """Every Service port the lab programmed."""
        return self.record.services

    def node(self, name: str) -> LabNode:
        """The node called `name`; LabError when there is none."""
        for node in self.nodes:
            if node.name == name:
                return node
        raise LabError(
            f"lab {self.name!r} has no node {name!r} (nodes: {', '.join(n.name for n in self.nodes)})"
        )

    def pod(self, ref: str) -> PodRecord:
        """A pod by name, namespace/name or IP; LabError when none matches."""
        for pod in self.pods:
            if ref in (pod.name, pod.ref, pod.ip):
                return pod
        raise LabError(f"lab {self.name!r} has no pod {ref!r}")

    def pods_on(self, node: str) -> tuple[PodRecord, ...]:
        """Pods on one node."""
        return tuple(p for p in self.pods if p.node == node)

    def service(self, ref: str) -> tuple[ServiceRecord, ...]:
        """The ports of a Service by namespace/name, name, or ClusterIP."""
        found = tuple(s for s in self.services if ref in (s.ref, s.cluster_ip, s.name))
        if not found:
            raise LabError(f"lab {self.name!r} has no Service {ref!r}")
        return found

    def enter_argv(self, node: str, argv: Sequence[str]) -> list[str]:
        """argv that runs `argv` inside a node (for your own subprocess or os.execvp)."""
        return enter_argv(self.node(node).init_pid, argv)

    def exec(
        self,
        node: str,
        argv: Sequence[str],
        *,
        input: str | None = None,
        timeout: float = 60,
        check: bool = True,
    ) -> subprocess.CompletedProcess[str]:
        """Run argv in all of a node's namespaces; capture text output."""
        full = self.enter_argv(node, argv)
        done = subprocess.run(
            full,
            input=input,
            capture_output=True,
            text=True,
            errors="surrogateescape",
            timeout=timeout,
            env=node_env(),
            cwd="/",
            check=False,
            stdin=None if input is not None else subprocess.DEVNULL,
        )
        if check and done.returncode != 0:
            raise LabCommandError(done.returncode, full, done.stdout, done.stderr)
        return done

    def interactive(self, node: str, argv: Sequence[str]) -> int:
        """Run argv inside a node on this terminal (stdin/stdout/stderr inherited)."""
        return subprocess.run(
            self.enter_argv(node, argv), env=node_env(), cwd="/", check=False
        ).returncode

    def probe(
        self,
        src: str,
        dst: str,
        port: int | None = None,
        proto: str = "tcp",
        family: int | None = None,
        wait: int = DEFAULT_WAIT,
    ) -> ProbeResult:
        """Send real traffic from a pod (or node) to a pod, Service, VIP or node (IPv4 or IPv6).

        `wait`: seconds to wait for an answer; a caller that expects a drop may say 1.
        """
        return run_probe(self, src, dst, port, proto, family, wait)

    @property
    def primary_services(self) -> tuple[ServiceRecord, ...]:
        """The Service ports of the primary family (Service.spec.clusterIP's)."""
        v6 = self.record.spec.families[0] == 6
        return tuple(s for s in self.services if (":" in s.cluster_ip) == v6)

    def cri(self, node: str) -> CriClient:
        """A CRI client of a node's containerd (LabError on a runc-imitation lab)."""
        if self.record.spec.runtime != "containerd":
            raise LabError(f"lab {self.name!r} runs the runc imitation, which has no CRI")
        return CriClient(containerd.host_socket(self.node(node).init_pid), timeout=60)

    def add_container(self, pod_ref: str, name: str, *, start: bool = True) -> str:
        """Create (and start) one more app container in a pod through CRI; its id."""
        pod = self.pod(pod_ref)
        plan = pods.PodPlan(pod.node, pod.namespace, pod.name, pod.uid, pod.app, pod.qos)
        with self.cri(pod.node) as cri:
            try:
                cid: str = cri_pods.start_container(
                    cri,
                    self.node(pod.node).init_pid,
                    plan,
                    pod.sandbox_id,
                    0,
                    name=name,
                    start=start,
                    services=self.primary_services,
                )
            except CriError as exc:
                raise LabError(str(exc)) from exc
        return cid

    def add_docker_pod(self, node: str, name: str) -> dockerd.DockerPod:
        """A web pod made by a real dockerd in the node, dockershim-style (dockerd starts once)."""
        init_pid = self.node(node).init_pid
        sock = dockerd.host_socket(init_pid)
        if not os.path.exists(sock):
            dockerd.start(init_pid)
        plan = pods.PodPlan(node, "default", name, names.pod_uid(), "web", "besteffort")
        return dockerd.make_pod(init_pid, sock, pods.read_conf(init_pid), plan)

    def alive(self) -> bool:
        """True while every node's init process is running."""
        return all(procs.alive(n.init_pid, n.init_start) for n in self.record.nodes)

    def down(self) -> list[str]:
        """Tear the lab down (same as podpath.lab.down(name))."""
        return down(self.name)


def _check_tools(runtime_name: str = "", policy: str = "") -> None:
    if os.geteuid() != 0:
        raise LabError("the lab needs root (it creates namespaces, cgroups and runc containers)")
    tools = REQUIRED_TOOLS + (CONTAINERD_TOOLS if runtime_name == "containerd" else ())
    tools += ("ipset",) if policy else ()
    missing = [t for t in tools if shutil.which(t, path=node_env()["PATH"]) is None]
    missing += [
        f"{cni.CNI_BIN_DIR}/{p}" for p in CNI_PLUGINS if not Path(cni.CNI_BIN_DIR, p).exists()
    ]
    if missing:
        raise LabError(f"the lab needs tools that are not installed: {', '.join(missing)}")
    if not _has_overlayfs():
        # Asked of /proc/filesystems: a mount -t overlay would load the module itself.
        raise LabError("the lab needs the overlay filesystem (modprobe overlay)")


def _has_overlayfs() -> bool:
    """True when this kernel already has the overlay filesystem (built in or loaded)."""
    try:
        lines = Path("/proc/filesystems").read_text().splitlines()
    except OSError:
        return False
    return any(line.split()[-1:] == ["overlay"] for line in lines)


def missing_requirements() -> str | None:
    """Why the lab cannot run on this machine, or None when it can."""
    try:
        _check_tools()
    except LabError as exc:
        return str(exc)
    return None


def up(spec: LabSpec) -> Lab:
    """Build a lab and return it; on any failure (or Ctrl-C) it is torn down again."""
    spec.validate()
    if not spec.runtime:
        spec = replace(spec, runtime=default_runtime())
    _check_tools(spec.runtime, spec.policy)
    started = time.monotonic()
    d = state.claim(spec.name)
    record = LabRecord(spec, (), (), (), 0, 0, (), time.time(), 0.0)
    try:
        record = _build(spec, d, record, started)
    except BaseException:
        _teardown(spec.name, graceful=False)
        raise
    return Lab(record)


def _build(spec: LabSpec, d: Path, record: LabRecord, started: float) -> LabRecord:
    under_dirs = cgroups.make_node_cgroups(spec.name, "underlay")
    state.note_cgroups(spec.name, under_dirs)
    under_pid, under_start = start_underlay(d / "underlay.log", under_dirs)
    state.note_started(spec.name, "underlay", under_pid, under_start)
    record = replace(
        record,
        underlay_pid=under_pid,
        underlay_start=under_start,
        cgroup_dirs=tuple(under_dirs),
    )
    state.write(record)
    network.make_underlay(under_pid)
    nodes: list[NodeRecord] = []
    cg_dirs: list[str] = list(under_dirs)
    for n in range(1, spec.nodes + 1):
        name = f"node{n}"
        pid, start, dirs = start_node(spec.name, name, d / f"{name}.log")
        state.note_cgroups(spec.name, dirs)
        state.note_started(spec.name, name, pid, start)
        cg_dirs += dirs
        v6 = 6 in spec.families
        # The AWS VPC CNI's IPv6 pods take their addresses from the ENI's /80 prefix.
        cidr6 = awsvpc.pod_prefix6(n) if spec.cni == "aws-vpc" else network.pod_cidr6(n)
        node = NodeRecord(
            name,
            pid,
            start,
            network.node_address(n),
            network.pod_cidr(n),
            mac_for(spec.name, name),
            network.node_address6(n) if v6 else None,
            cidr6 if v6 else None,
        )
        nodes.append(node)
        record = replace(record, nodes=tuple(nodes), cgroup_dirs=tuple(cg_dirs))
        state.write(record)
        network.attach_node(under_pid, node)
    topology.wire(spec, tuple(nodes))
    nft_mode = spec.proxy_mode == "nftables"
    proxy_config = topology.proxy_config(spec)
    real = spec.runtime == "containerd"
    daemons: dict[str, int] = {}
    for index, node in enumerate(nodes, 1):
        # The conflist and podpath's own plugins are in place before containerd reads them.
        topology.prepare_node(spec, node, index, under_pid)
        if real:
            # Started first: the daemons come up while the other nodes are prepared.
            daemons[node.name] = containerd.start(node.init_pid, spec.netns_under_state)
    built = images.build(d / "images") if real else ()
    for i, node in enumerate(nodes):
        if real:
            daemon = containerd.wait_ready(node.init_pid, daemons[node.name])
            state.note_started(spec.name, f"{node.name} containerd", daemon.host_pid, daemon.start)
            node = replace(node, containerd_pid=daemon.host_pid, containerd_start=daemon.start)
            nodes[i] = node
            record = replace(record, nodes=tuple(nodes))
            state.write(record)
            containerd.import_images(node.init_pid, built)
        else:
            runtime.install_images(node.init_pid)
        # kube-proxy's base chains exist before any pod (portmap marks into KUBE-MARK-MASQ);
        # in nftables mode only kubelet's own iptables chains exist.
        for family in spec.families:
            base = KUBELET_CHAINS
            if not nft_mode:
                base = restore_input([], jumps=True, family=family, config=proxy_config)
            _restore(node, base, family)
    by_name = {n.name: n.init_pid for n in nodes}
    plans = pod_plans(spec)
    if real:
        sockets = {n.name: containerd.host_socket(n.init_pid) for n in nodes}
        # The Services exist (in the API) before their pods, as they do when applied
        # together: kubelet gives each container their Service-link variables, of the
        # primary family's ClusterIPs (Service.spec.clusterIP).
        primary = [
            s for s in services(spec, []) if (":" in s.cluster_ip) == (spec.families[0] == 6)
        ]
        made = _parallel(
            lambda p: cri_pods.make_pod(by_name[p.node], sockets[p.node], p, primary), plans
        )
        made = _with_host_pids(made, by_name)
    else:
        confs = {n.name: pods.read_conf(n.init_pid) for n in nodes}
        made = _parallel(lambda p: pods.make_pod(by_name[p.node], confs[p.node], p), plans)
    record = replace(record, pods=tuple(made))
    state.write(record)
    topology.after_pods(spec, under_pid, tuple(nodes), record.pods)
    svcs = services(spec, made)
    for node in nodes:
        if nft_mode:
            # One table per family, as kube-proxy runs one proxier per family.
            addresses = tuple(a for a in (node.address, node.address6) if a)
            for family in spec.families:
                text = render_nft(svcs, addresses, family, _pod_ips(node, made), proxy_config)
                run_in(node.init_pid, ["nft", "-f", "-"], input=text, timeout=300)
            continue
        for family in spec.families:
            tool = "iptables" if family == 4 else "ip6tables"
            mine = [s for s in svcs if (":" in s.cluster_ip) == (family == 6)]
            local_ips = _pod_ips(node, made)
            rules = restore_input(
                mine, jumps=False, family=family, local_ips=local_ips, config=proxy_config
            )
            saved = run_in(node.init_pid, [f"{tool}-save"], timeout=120).stdout
            run_in(
                node.init_pid,
                [f"{tool}-restore", "-w", "30"],
                input=merge_for_restore(saved, rules),
                timeout=300,
            )
    if spec.policy:
        for node in nodes:
            _enforce_policies(node, made)
    if spec.load_balancer:
        outside.make_outside(under_pid, nodes, svcs)
    if 6 in spec.families:
        for node in nodes:
            network.settle_ipv6(node.init_pid)
    record = replace(record, services=tuple(svcs), up_seconds=round(time.monotonic() - started, 2))
    state.write(record)
    return record


def _pod_ips(node: NodeRecord, made: Sequence[PodRecord]) -> tuple[str, ...]:
    """The node's pod IPs: its endpoints are the local ones of a traffic policy Local."""
    return tuple(ip for p in made if p.node == node.name for ip in (p.ips or (p.ip,)))


def _enforce_policies(node: NodeRecord, made: Sequence[PodRecord]) -> None:
    """kube-router's sync: its ipsets first (the rules name them), then its filter rules."""
    run_in(node.init_pid, ["ipset", "restore", "-exist"], input=ipset_input(made), timeout=60)
    _restore(node, iptables_input(node.name, made))


def _with_host_pids(made: list[PodRecord], init_pids: dict[str, int]) -> list[PodRecord]:
    """Fill each pod's pause_host_pid from one walk of its node's process tree."""
    host = {node: procs.host_pids(pid) for node, pid in init_pids.items()}
    out = []
    for pod in made:
        found = host[pod.node].get(pod.pause_pid)
        if found is None:
            raise LabError(f"pause {pod.pause_pid} of {pod.ref} is not in node {pod.node}")
        out.append(replace(pod, pause_host_pid=found))
    return out


def _parallel(fn: Callable[[T], R], items: Sequence[T]) -> list[R]:
    """map over a thread pool; on the first error (or Ctrl-C) queued work is cancelled.

    On Ctrl-C the running calls are not awaited either: a pod build on a loaded node
    can wait minutes on containerd, and the teardown that follows kills the nodes,
    which ends those calls (their CRI socket and nsenter targets are gone).
    """
    pool = ThreadPoolExecutor(max_workers=WORKERS)
    interrupted = False
    try:
        return list(pool.map(fn, items))
    except KeyboardInterrupt:
        interrupted = True
        raise
    finally:
        pool.shutdown(wait=not interrupted, cancel_futures=True)


def _restore(node: NodeRecord, rules: str, family: int = 4) -> None:
    tool = "iptables-restore" if family == 4 else "ip6tables-restore"
    run_in(node.init_pid, [tool, "--noflush", "-w", "30"], input=rules, timeout=300)


def load(name: str) -> Lab:
    """The running lab called `name`; LabError when there is none or it died."""
    record = state.read(name)
    if record is None:
        raise LabError(f"no lab named {name!r} is up (podpath lab status lists them)")
    lab = Lab(record)
    if not record.services and not record.pods:
        raise LabError(f"lab {name!r} is still being built or failed half way")
    if not lab.alive():
        raise LabError(f"lab {name!r} is no longer running; run `podpath lab down --name {name}`")
    return lab


def status() -> list[LabSummary]:
    """Every lab with state on this machine."""
    out: list[LabSummary] = []
    for name in state.names():
        try:
            record = state.read(name)
        except LabError:
            record = None
        if record is None:
            out.append(LabSummary(name, False, 0, 0, 0, "?", 0.0, 0.0, str(state.lab_dir(name))))
            continue
        alive = bool(record.nodes) and all(
            procs.alive(n.init_pid, n.init_start) for n in record.nodes
        )
        out.append(
            LabSummary(
                name,
                alive,
                len(record.nodes),
                len(record.pods),
                len({(s.namespace, s.name) for s in record.services}),
                record.spec.crossing,
                record.created,
                record.up_seconds,
                str(state.lab_dir(name)),
                record.spec.cni,
                record.spec.ip_family,
            )
        )
    return out


def down(name: str) -> list[str]:
    """Tear a lab down: pods (CNI DEL), nodes, underlay, cgroups, state; LabError on leftovers.

    Returns notes worth telling (a record that could not be read, and what was ended
    from the ledger instead)."""
    check_name(name)  # it names the directory removed below
    if not state.lab_dir(name).exists():
        raise LabError(f"no lab named {name!r} (podpath lab status lists them)")
    return _teardown(name, graceful=True)


def _teardown(name: str, *, graceful: bool) -> list[str]:
    problems: list[str] = []
    notes: list[str] = []
    try:
        record = state.read(name)
    except LabError as exc:
        record = None
        notes.append(f"{exc}; ended what the lab's ledger and cgroups name instead")
    ledger = state.ledger(name)
    if ledger.unreadable:
        lines = ", ".join(map(str, ledger.unreadable))
        notes.append(f"ledger line(s) {lines} unreadable; the lab's cgroups were swept for them")
    try:
        if graceful and record is not None:
            problems += _remove_pods(record)
    finally:
        # Whatever happened above (a bug, Ctrl-C), the nodes die and their cgroups go.
        problems += _kill_and_clean(record, ledger)
    state.forget(name)
    if problems:
        raise LabError(f"lab {name!r} left things behind: {'; '.join(problems)}")
    return notes


def _started(record: LabRecord | None, ledger: state.Ledger) -> list[state.Started]:
    """Every process the lab started, node inits first (their PID namespaces take the rest)."""
    found: list[state.Started] = []
    if record is not None:
        for node in record.nodes:
            found.append(state.Started(node.name, node.init_pid, node.init_start))
            if node.containerd_pid:
                what = f"{node.name} containerd"
                found.append(state.Started(what, node.containerd_pid, node.containerd_start))
        if record.underlay_pid:
            found.append(state.Started("underlay", record.underlay_pid, record.underlay_start))
    found += ledger.processes
    unique = list({(p.pid, p.start): p for p in found}.values())
    return sorted(unique, key=lambda p: " " in p.what or p.what == "underlay")


def _kill_and_clean(record: LabRecord | None, ledger: state.Ledger) -> list[str]:
    problems: list[str] = []
    for started in _started(record, ledger):
        # Killing a PID namespace's init kills every process in it (containerd, its
        # shims, pause and app processes); the node's mount namespace, and with it
        # every netns bind mount and rootfs mount, then goes. A PID whose start time
        # differs is another process now: kill_and_wait leaves it alone.
        if not procs.kill_and_wait(started.pid, started.start):
            problems.append(f"{started.what} (pid {started.pid}) did not exit")
    dirs = list(dict.fromkeys((*(record.cgroup_dirs if record else ()), *ledger.cgroup_dirs)))
    # The lab's parent cgroups too: a node interrupted while starting is in cgroups
    # the ledger has not noted yet.
    parents = [str(Path(d).parent) for d in dirs if Path(d).parent.name.startswith("podpath-lab-")]
    problems += _sweep_cgroups(list(dict.fromkeys([*dirs, *parents])))
    for d in dirs:
        problems += cgroups.remove_tree(d)
    problems += cgroups.remove_lab_parents(dirs)
    return problems


def _sweep_cgroups(dirs: list[str]) -> list[str]:
    """Kill whatever is still in the lab's own cgroups (it is the lab's, whatever the
    files say), round after round: a process may fork while the others die."""
    deadline = time.monotonic() + procs.EXIT_TIMEOUT
    while True:
        left = [pid for pid in cgroups.members(dirs) if pid != os.getpid()]
        # (`lab down` run from inside the lab is itself a member: the node's init takes it.)
        found = [(pid, began) for pid in left if (began := procs.start_time(pid)) is not None]
        if not found:
            return []
        for pid, began in found:
            procs.kill(pid, began)
        stuck = [pid for pid, began in found if not procs.wait_gone(pid, began, deadline)]
        if stuck:
            return [f"process {pid} in the lab's cgroups did not exit" for pid in stuck]


def _remove_pods(record: LabRecord) -> list[str]:
    """Kubelet-style pod teardown on live nodes; returns what failed (never raises)."""
    live = {n.name: n.init_pid for n in record.nodes if procs.alive(n.init_pid, n.init_start)}
    if record.spec.runtime == "containerd":
        # Nothing of containerd's lives outside the node: its pods, shims, netns mounts
        # and state die with the node's PID and mount namespaces, killed by PID next.
        # Stopping 250 sandboxes through CRI first took 35-46 s for nothing.
        return []
    confs: dict[str, dict[str, object]] = {}
    for node, pid in live.items():
        try:
            confs[node] = pods.read_conf(pid)
        except (OSError, ValueError):
            continue  # no conflist: the node never got pods
    todo = [p for p in record.pods if p.node in confs]

    def remove(pod: PodRecord) -> str | None:
        try:
            pods.remove_pod(live[pod.node], confs[pod.node], pod, full=False)
        except (LabError, OSError, subprocess.SubprocessError) as exc:
            return f"{pod.ref}: {exc}"
        return None

    return [p for p in _parallel(remove, todo) if p is not None]


@contextmanager
def running_lab(spec: LabSpec) -> Iterator[Lab]:
    """A lab for the duration of a with-block; always torn down, even on errors."""
    lab = up(spec)
    try:
        yield lab
    finally:
        down(spec.name)
