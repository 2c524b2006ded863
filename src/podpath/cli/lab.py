"""`podpath lab up|down|status|shell|exec|probe`: build and use lab nodes."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from typing import Any

from podpath.cli import EXIT_FAILURE, EXIT_OK, CliError

DEFAULT_NAME = "podpath"


def register(sub: Any) -> None:
    """Register `podpath lab` and its subcommands."""
    lab = sub.add_parser(
        "lab",
        help="build and use lab nodes (real namespaces, CNI, containerd pods, kube-proxy rules)",
        description="A lab is one to five Kubernetes-like nodes built from real kernel parts "
        "in namespaces of their own; nothing touches this machine's network.",
    )
    lab.set_defaults(handler=lambda args: _usage(lab))
    cmds = lab.add_subparsers(dest="lab_command", metavar="COMMAND")

    p = cmds.add_parser("up", help="build a lab")
    _name(p)
    p.add_argument("--nodes", type=int, default=1, choices=(1, 2, 3, 4, 5))
    p.add_argument("--pods", type=int, default=4, help="pods per node (default 4)")
    p.add_argument(
        "--services",
        type=int,
        default=3,
        help="Services, incl. kube-dns, web, web-sticky (ClientIP affinity), noep (no endpoints)",
    )
    p.add_argument(
        "--overlay",
        default="vxlan",
        choices=("vxlan", "host-gw"),
        help="how pods cross nodes with --cni bridge or calico: VXLAN, or routes via the nodes",
    )
    p.add_argument(
        "--cni",
        default="bridge",
        choices=("bridge", "calico", "ptp", "aws-vpc"),
        help="pod network: bridge (+flannel), calico (routed, proxy ARP), ptp (kindnet), "
        "aws-vpc (ENIs, policy rules)",
    )
    p.add_argument(
        "--ip-family",
        default="ipv4",
        choices=("ipv4", "ipv6", "dual"),
        help="pod and Service address families (dual: both, IPv4 first)",
    )
    p.add_argument(
        "--proxy-mode",
        default="iptables",
        choices=("iptables", "nftables"),
        help="how kube-proxy programs Services (IPVS needs ip_vs, which this kernel lacks)",
    )
    _policy(p)
    p.add_argument(
        "--traffic-policy-local",
        action="store_true",
        help="add web-local: a NodePort Service with externalTrafficPolicy and "
        "internalTrafficPolicy Local whose endpoints are on node1 only",
    )
    p.add_argument(
        "--load-balancer",
        action="store_true",
        help="add web-lb (an external IP, and a LoadBalancer IP only 172.18.100.0/24 may "
        "reach) and the outside client namespace (netns:outside on node1) that reaches them",
    )
    p.add_argument(
        "--runtime",
        default="",
        choices=("containerd", "runc-imitation"),
        help="containerd (pods made through CRI; the default where containerd is installed) "
        "or runc-imitation (the lab runs runc and writes containerd's files itself)",
    )
    p.set_defaults(handler=_up)

    p = cmds.add_parser("down", help="tear a lab down, leaving nothing behind")
    _name(p)
    p.set_defaults(handler=_down)

    p = cmds.add_parser("status", help="list labs")
    p.set_defaults(handler=_status)

    p = cmds.add_parser("shell", help="a shell inside a node (podpath runs there as on a node)")
    _name(p)
    p.add_argument("node", nargs="?", default="node1")
    p.set_defaults(handler=_shell)

    p = cmds.add_parser("exec", help="run a command inside a node: lab exec NODE -- CMD...")
    _name(p)
    p.add_argument("node")
    p.add_argument("argv", nargs=argparse.REMAINDER, metavar="-- CMD")
    p.set_defaults(handler=_exec)

    p = cmds.add_parser("probe", help="send real traffic: lab probe FROM TO[:PORT]")
    _name(p)
    p.add_argument(
        "src",
        metavar="FROM",
        help="pod name, namespace/name or IP, a node, or NODE:/run/netns/NAME (any netns)",
    )
    p.add_argument("dst", metavar="TO[:PORT]", help="pod, Service (ns/name), VIP, or node")
    # --proto as `podpath trace` spells it; --udp, the short form, is kept.
    proto = p.add_mutually_exclusive_group()
    proto.add_argument(
        "--proto",
        choices=("tcp", "udp", "icmp"),
        default="tcp",
        help="protocol, as trace (default tcp; icmp sends one echo request)",
    )
    proto.add_argument(
        "--udp", dest="proto", action="store_const", const="udp", help="the same as --proto udp"
    )
    p.add_argument("-6", dest="ipv6", action="store_true", help="use IPv6 addresses of names")
    p.add_argument(
        "--wait",
        type=int,
        default=3,
        metavar="SECONDS",
        help="how long to wait for an answer, 1 to 5 (default 3)",
    )
    p.set_defaults(handler=_probe)

    p = cmds.add_parser("record", help="save a snapshot of every node: DIR/NODE.json")
    _name(p)
    p.add_argument("-o", "--output", required=True, metavar="DIR", help="directory to write to")
    p.set_defaults(handler=_record)


def _policy(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--policy",
        default="",
        choices=("kube-router",),
        help="enforce the lab's NetworkPolicies with real rules, as this engine does "
        "(kube-router: iptables and ipsets; IPv4)",
    )


def _name(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--name",
        default=os.environ.get("PODPATH_LAB", DEFAULT_NAME),
        help=f"lab name (default $PODPATH_LAB or {DEFAULT_NAME!r})",
    )


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return EXIT_OK


def _up(args: argparse.Namespace) -> int:
    from podpath.lab import LabError, LabSpec, up

    spec = LabSpec(
        args.name,
        args.nodes,
        args.pods,
        args.services,
        args.overlay,
        args.cni,
        args.ip_family,
        proxy_mode=args.proxy_mode,
        traffic_policy_local=args.traffic_policy_local,
        load_balancer=args.load_balancer,
        runtime=args.runtime,
        policy=args.policy,
    )
    # up() tears a half-built lab down on KeyboardInterrupt: make SIGTERM/SIGHUP one too.
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _interrupt)
    began = time.monotonic()
    try:
        lab = up(spec)
    except LabError as exc:
        raise CliError(str(exc), EXIT_FAILURE) from exc
    print(f"lab {lab.name!r} up in {time.monotonic() - began:.1f}s ({lab.record.spec.runtime})")
    shape = f"  cni {spec.cni}, {spec.ip_family}, kube-proxy {spec.proxy_mode}"
    shape += f", NetworkPolicy by {spec.policy}" if spec.policy else ""
    print(shape + (f", {spec.crossing}" if spec.nodes > 1 else ""))
    for index, (node, record) in enumerate(zip(lab.nodes, lab.record.nodes, strict=True), 1):
        cidrs = " ".join(c for c in (node.pod_cidr, record.pod_cidr6) if c)
        if spec.cni == "aws-vpc":
            from podpath.lab.awsvpc import pod_prefix6, pod_range

            cidrs = pod_prefix6(index) if spec.families == (6,) else "-".join(pod_range(index))
        print(f"  {node.name}  {node.address}  pods {cidrs}  init pid {node.init_pid}")
    from podpath.wording import count

    print(
        f"  {count(len(lab.pods), 'pod')}, {count(len({s.ref for s in lab.services}), 'Service')}"
    )
    print(f"shell:  podpath lab shell --name {lab.name} node1")
    print(f"down:   podpath lab down --name {lab.name}")
    return EXIT_OK


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _down(args: argparse.Namespace) -> int:
    from podpath.lab import LabError, down

    began = time.monotonic()
    try:
        notes = down(args.name)
    except LabError as exc:
        raise CliError(str(exc), EXIT_FAILURE) from exc
    for note in notes:
        print(f"podpath: lab {args.name!r}: {note}", file=sys.stderr)
    print(f"lab {args.name!r} down in {time.monotonic() - began:.1f}s")
    return EXIT_OK


def _status(args: argparse.Namespace) -> int:
    from podpath.lab import status

    labs = status()
    if not labs:
        print("no labs")
        return EXIT_OK
    print(
        f"{'NAME':<24} {'STATE':<7} {'NODES':>5} {'PODS':>5} {'SVCS':>5} {'CNI':<8} "
        f"{'FAMILY':<6} {'OVERLAY':<8} UP(s)"
    )
    for s in labs:
        state = "up" if s.alive else "dead"
        print(
            f"{s.name:<24} {state:<7} {s.nodes:>5} {s.pods:>5} {s.services:>5} "
            f"{s.cni:<8} {s.ip_family:<6} {s.overlay:<8} {s.up_seconds:.1f}"
        )
    return EXIT_OK


def _loaded(name: str) -> Any:
    from podpath.lab import LabError, load

    try:
        return load(name)
    except LabError as exc:
        raise CliError(str(exc), EXIT_FAILURE) from exc


def _shell(args: argparse.Namespace) -> int:
    from podpath.lab import LabError
    from podpath.lab.node import node_env

    lab = _loaded(args.name)
    try:
        # No login shell: /etc/profile would reset PATH and drop the venv with podpath.
        shell = ["bash", "--noprofile", "--norc", "-i"] if _has_bash() else ["sh", "-i"]
        argv = lab.enter_argv(args.node, shell)
    except LabError as exc:
        raise CliError(str(exc)) from exc
    env = {**node_env(), "PS1": f"[lab {lab.name} {args.node}] \\w# "}
    sys.stdout.flush()
    # Become nsenter: the shell owns this terminal directly (job control, Ctrl-C, size).
    os.execvpe(argv[0], argv, env)


def _has_bash() -> bool:
    return os.path.exists("/bin/bash")


def _exec(args: argparse.Namespace) -> int:
    from podpath.lab import LabError

    argv = list(args.argv)
    if argv and argv[0] == "--":
        argv = argv[1:]
    if not argv:
        raise CliError("lab exec needs a command: podpath lab exec NODE -- CMD...")
    lab = _loaded(args.name)
    try:
        return int(lab.interactive(args.node, argv))
    except LabError as exc:
        raise CliError(str(exc)) from exc


def _probe(args: argparse.Namespace) -> int:
    from podpath.lab import LabError

    lab = _loaded(args.name)
    try:
        result = lab.probe(
            args.src,
            args.dst,
            proto=args.proto,
            family=6 if args.ipv6 else None,
            wait=args.wait,
        )
    except LabError as exc:
        raise CliError(str(exc)) from exc
    host = f"[{result.address}]" if ":" in result.address else result.address
    where = (
        f"{result.address}/icmp"
        if result.proto == "icmp"
        else f"{host}:{result.port}/{result.proto}"
    )
    if not result.ok:
        print(f"{result.src} -> {args.dst} ({where}): FAILED: {result.error}")
        return EXIT_FAILURE
    who = f" (answered by {result.served_by})" if result.served_by else ""
    print(f"{result.src} -> {args.dst} ({where}) in {result.seconds * 1000:.0f} ms{who}")
    print(result.shown_answer())
    return EXIT_OK


def record_lab(lab: Any, directory: str) -> list[str]:
    """Take `podpath snapshot` inside every node of a lab; return the files written."""
    from podpath.output_file import OutputError, write_text

    os.makedirs(directory, exist_ok=True)
    written = []
    for node in lab.nodes:
        out = lab.exec(
            node.name,
            [sys.executable, "-m", "podpath", "snapshot", "-o", "-"],
            timeout=300,
            check=False,
        )
        if out.returncode != 0:
            raise CliError(f"snapshot of {node.name} failed: {out.stderr.strip()}", EXIT_FAILURE)
        try:
            written.append(write_text(os.path.join(directory, f"{node.name}.json"), out.stdout))
        except OutputError as exc:
            raise CliError(str(exc), EXIT_FAILURE) from None
    return written


def _record(args: argparse.Namespace) -> int:
    for path in record_lab(_loaded(args.name), args.output):
        print(path)
    return EXIT_OK
