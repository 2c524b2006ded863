"""`kubectl podpath`: podpath on a cluster's nodes through node debug pods.

kubectl runs any executable called `kubectl-NAME` on PATH as `kubectl NAME` (krew
plugins are such files); this module is the `kubectl-podpath` console script. It never
talks to an API server itself: it runs the user's `kubectl`, with their context and
credentials, and everything crosses the API server as `kubectl debug` traffic.

- `kubectl podpath NODE` runs `kubectl debug node/NODE -it --profile=sysadmin
  --image=IMAGE -- podpath tui --host-root /host`: kubelet starts a privileged pod in the
  node's PID, network and IPC namespaces with the node's root at /host, and the TUI
  runs on the attached terminal.
- `kubectl podpath snapshot [NODE...|--all-nodes] -o DIR` does the same without a
  terminal on a bounded number of nodes at once; each pod writes its snapshot to stdout,
  streamed back through the attach, checked, and saved as DIR/NODE.json.

kubectl leaves node debug pods behind when they end. Each pod this plugin starts carries
PODPATH_SESSION=<id> in its environment, and the pods of a session are deleted when it
ends (unless --keep). Pods are listed once before any is made, so a cluster kubectl
cannot reach is reported before anything exists to clean up.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from podpath import __version__
from podpath.cli import _quiet_if_closed, say

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2

# The label kubectl debug puts on the pods it makes, from kubectl 1.34 (older ones set
# none: pods are found by their name and PODPATH_SESSION instead).
MANAGED_BY = ("app.kubernetes.io/managed-by", "kubectl-debug")
DEBUG_POD_PREFIX = "node-debugger-"
CONTAINER = "debugger"
HOST_ROOT = "/host"
SESSION_ENV = "PODPATH_SESSION"
IMAGE_ENV = "PODPATH_IMAGE"

# A node name is a DNS subdomain (RFC 1123): it becomes a file name and an argument.
_NODE_NAME = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_MAX_NODE_NAME = 253
# kubectl's own check of --image (reference.ReferenceRegexp), loosely: no spaces, no
# leading dash, so the value can never be read as another flag.
_IMAGE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/:@+-]*")
STDERR_TAIL = 2000


class PluginError(Exception):
    """A failure reported as one sentence, with an exit code."""

    def __init__(self, message: str, code: int = EXIT_FAILURE) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Kubectl:
    """How to run kubectl: the binary and the global flags passed through."""

    binary: str = "kubectl"
    context: str | None = None
    kubeconfig: str | None = None
    namespace: str | None = None

    def argv(self, *args: str) -> list[str]:
        """A kubectl command line with the global flags first."""
        out = [self.binary]
        if self.kubeconfig:
            out.append(f"--kubeconfig={self.kubeconfig}")
        if self.context:
            out.append(f"--context={self.context}")
        if self.namespace:
            out.append(f"--namespace={self.namespace}")
        return [*out, *args]


def check_node_name(name: str) -> str:
    """The name, when it can be a Kubernetes node's; PluginError otherwise."""
    if len(name) > _MAX_NODE_NAME or not _NODE_NAME.fullmatch(name):
        raise PluginError(
            f"{name!r} is not a node name (lowercase letters, digits, '-' and '.')", EXIT_USAGE
        )
    return name


def check_image(image: str | None) -> str:
    """The image reference to run; PluginError when there is none or it is malformed."""
    if not image:
        raise PluginError(
            f"no image: pass --image=REF or set {IMAGE_ENV} (build one with image/build and "
            "push it where the nodes can pull it)",
            EXIT_USAGE,
        )
    if not _IMAGE.fullmatch(image):
        raise PluginError(f"{image!r} is not an image reference", EXIT_USAGE)
    return image


# --- what kubectl debug makes -------------------------------------------------------------


def tui_command(extra: Sequence[str] = ()) -> list[str]:
    """The debug container's command for the TUI."""
    return ["podpath", "tui", "--host-root", HOST_ROOT, *extra]


def snapshot_command(timeout: int) -> list[str]:
    """The debug container's command for one snapshot, written to stdout.

    An attach only streams what a container writes after it is connected, and kubectl
    attaches only once the container runs: podpath waits for a line on stdin, which
    kubectl delivers through the attach, so not one byte is written before anyone
    listens. `timeout` ends a pod whose plugin went away.
    """
    return [
        "timeout",
        str(timeout),
        "sh",
        "-c",
        f"read -r _ && exec podpath snapshot --host-root {HOST_ROOT} -o -",
    ]


def debug_argv(
    kubectl: Kubectl,
    node: str,
    image: str,
    command: Sequence[str],
    session: str,
    *,
    tty: bool,
    quiet: bool = False,
) -> list[str]:
    """The `kubectl debug node/NODE ...` command line that starts podpath's pod."""
    return _debug_args(kubectl, check_node_name(node), image, command, session, tty, quiet)


def _debug_args(
    kubectl: Kubectl,
    node: str,
    image: str,
    command: Sequence[str],
    session: str,
    tty: bool,
    quiet: bool,
) -> list[str]:
    """debug_argv with `node` taken as given (a checked name, or a dry run's placeholder)."""
    args = [
        "debug",
        f"node/{node}",
        "--profile=sysadmin",
        f"--image={check_image(image)}",
        f"--env={SESSION_ENV}={session}",
        "-it" if tty else "-i",
    ]
    if quiet:
        args.append("--quiet")
    return kubectl.argv(*args, "--", *command)


def node_debug_pod(
    node: str,
    image: str,
    command: Sequence[str],
    *,
    env: dict[str, str] | None = None,
    stdin: bool = True,
    tty: bool = False,
    name: str | None = None,
    labelled: bool = True,
) -> dict[str, Any]:
    """The pod `kubectl debug node/NODE --profile=sysadmin` creates (as JSON, empty fields left out).

    Written from kubectl's pkg/cmd/debug (generateNodeDebugPod, and the sysadmin
    profile: privileged, the host's network, PID and IPC namespaces, its root as a
    hostPath volume at /host); tests check it against what kubectl sends. kubectl
    before 1.34 sets no label (`labelled=False`).
    """
    container: dict[str, Any] = {
        "name": CONTAINER,
        "image": image,
        "command": list(command),
        "terminationMessagePolicy": "File",
        "securityContext": {"privileged": True},
        "volumeMounts": [{"name": "host-root", "mountPath": HOST_ROOT}],
    }
    if env:
        container["env"] = [{"name": k, "value": v} for k, v in env.items()]
    if stdin:
        container["stdin"] = True
    if tty:
        container["tty"] = True
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name or f"{DEBUG_POD_PREFIX}{node}-xxxxx",
            **({"labels": {MANAGED_BY[0]: MANAGED_BY[1]}} if labelled else {}),
        },
        "spec": {
            "containers": [container],
            "hostIPC": True,
            "hostNetwork": True,
            "hostPID": True,
            "nodeName": node,
            "restartPolicy": "Never",
            "tolerations": [{"operator": "Exists"}],
            "volumes": [{"name": "host-root", "hostPath": {"path": "/"}}],
        },
    }


# --- running kubectl ------------------------------------------------------------------------


def _run(argv: Sequence[str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            list(argv), capture_output=True, text=True, timeout=timeout, check=False
        )
    except FileNotFoundError:
        raise PluginError(f"{argv[0]} not found: install kubectl or set KUBECTL") from None
    except subprocess.TimeoutExpired:
        raise PluginError(f"{' '.join(argv[:3])} did not answer in {timeout:g}s") from None


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1][:300] if lines else "no message"


def list_nodes(kubectl: Kubectl) -> list[str]:
    """Every node's name (`kubectl get nodes -o name`)."""
    done = _run(kubectl.argv("get", "nodes", "-o", "name"))
    if done.returncode != 0:
        raise PluginError(f"kubectl get nodes failed: {_last_line(done.stderr)}")
    names = [line.removeprefix("node/") for line in done.stdout.split() if line]
    return [check_node_name(n) for n in names]


def list_pods(kubectl: Kubectl) -> list[dict[str, Any]]:
    """The pods of the namespace (`kubectl get pods -o json`)."""
    done = _run(kubectl.argv("get", "pods", "-o", "json"))
    if done.returncode != 0:
        raise PluginError(f"kubectl get pods failed: {_last_line(done.stderr)}")
    try:
        items = json.loads(done.stdout).get("items", [])
    except (ValueError, AttributeError):
        items = None
    if not isinstance(items, list):
        raise PluginError("kubectl get pods printed something that is not a pod list")
    return [pod for pod in items if isinstance(pod, dict)]


def session_pods(kubectl: Kubectl, session: str) -> list[str]:
    """Names of the node debug pods whose container carries PODPATH_SESSION=session."""
    names = []
    for pod in list_pods(kubectl):
        if not pod.get("metadata", {}).get("name", "").startswith(DEBUG_POD_PREFIX):
            continue
        for container in pod.get("spec", {}).get("containers", []):
            env = {e.get("name"): e.get("value") for e in container.get("env", [])}
            if env.get(SESSION_ENV) == session:
                names.append(pod["metadata"]["name"])
                break
    return sorted(names)


def check_cluster(kubectl: Kubectl) -> None:
    """PluginError unless kubectl can list pods: nothing is created on a cluster it cannot reach.

    The plugin lists pods to delete them afterwards; a kubeconfig that is broken, or an
    API server that does not answer, is reported before any debug pod can exist.
    """
    try:
        list_pods(kubectl)
    except PluginError as exc:
        raise PluginError(f"cannot use the cluster, no debug pod made: {exc}") from None


def delete_session(kubectl: Kubectl, session: str) -> str:
    """Delete the session's debug pods; a line saying what was done."""
    try:
        names = session_pods(kubectl, session)
    except PluginError as exc:
        return f"debug pods of session {session} not deleted: {exc}"
    if not names:
        return ""
    done = _run(kubectl.argv("delete", "pod", "--wait=false", "--ignore-not-found", *names))
    if done.returncode != 0:
        return f"could not delete {', '.join(names)}: {_last_line(done.stderr)}"
    return f"deleted {', '.join(names)}"


# --- the TUI ------------------------------------------------------------------------------


def open_tui(kubectl: Kubectl, node: str, image: str, extra: Sequence[str], *, keep: bool) -> int:
    """Run the TUI in a debug pod on this terminal; delete the pod afterwards."""
    session = uuid.uuid4().hex[:12]
    argv = debug_argv(kubectl, node, image, tui_command(extra), session, tty=True)
    check_cluster(kubectl)
    try:
        code = subprocess.run(argv, check=False).returncode
    except FileNotFoundError:
        raise PluginError(f"{argv[0]} not found: install kubectl or set KUBECTL") from None
    except KeyboardInterrupt:
        # Ctrl-C reaches kubectl too (one process group): it ends, its pod stays behind.
        if not keep:
            _cleanup(kubectl, session)
        raise
    if not keep:
        _cleanup(kubectl, session)
    return code


def _cleanup(kubectl: Kubectl, session: str) -> None:
    """Delete the session's debug pods, saying so; a second Ctrl-C does not cut it short."""
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        said = delete_session(kubectl, session)
    finally:
        signal.signal(signal.SIGINT, previous)
    if said:
        say(f"kubectl podpath: {said}")


# --- snapshots ------------------------------------------------------------------------------


@dataclass
class NodeResult:
    """How one node's snapshot went."""

    node: str
    path: Path | None = None
    error: str | None = None
    gaps: int = 0
    notes: list[str] = field(default_factory=list)


def _check_snapshot(path: Path) -> int:
    """Load a snapshot file the way `--snapshot` will; its number of gaps."""
    from podpath.snapshot.codec import SnapshotError, load_path

    try:
        return len(load_path(str(path)).gaps)
    except SnapshotError as exc:
        raise PluginError(str(exc)) from None


def _kill(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def snapshot_node(
    kubectl: Kubectl,
    node: str,
    image: str,
    outdir: Path,
    session: str,
    timeout: int,
    cancel: threading.Event,
) -> NodeResult:
    """Collect one node's snapshot through a debug pod into outdir/NODE.json."""
    result = NodeResult(node)
    argv = debug_argv(
        kubectl, node, image, snapshot_command(timeout), session, tty=False, quiet=True
    )
    final = outdir / f"{node}.json"
    with (
        tempfile.NamedTemporaryFile(dir=outdir, prefix=f".{node}.", delete=False) as out,
        tempfile.TemporaryFile() as err,
    ):
        partial = Path(out.name)
        try:
            proc = subprocess.Popen(
                argv, stdin=subprocess.PIPE, stdout=out, stderr=err, start_new_session=True
            )
        except FileNotFoundError:
            partial.unlink()
            raise PluginError(f"{argv[0]} not found: install kubectl or set KUBECTL") from None
        assert proc.stdin is not None
        try:
            # The line the pod waits for (see snapshot_command); stdin stays open
            # until kubectl is done, so the attach is never half-closed early.
            proc.stdin.write(b"go\n")
            proc.stdin.flush()
            code = _wait(proc, timeout + 60, cancel)
        finally:
            proc.stdin.close()
        err.seek(0)
        stderr = err.read()[-64 * 1024 :].decode("utf-8", "replace")
    if code is None:
        partial.unlink(missing_ok=True)
        result.error = "cancelled" if cancel.is_set() else f"no answer in {timeout + 60}s"
        return result
    if partial.stat().st_size == 0:
        partial.unlink()
        why = _last_line(stderr) if stderr.strip() else f"kubectl exited {code}"
        result.error = f"no snapshot came back ({why})"
        return result
    try:
        result.gaps = _check_snapshot(partial)
    except PluginError as exc:
        partial.unlink()
        result.error = f"what came back is not a snapshot: {exc}"
        return result
    # Made by mkstemp as 0600; a snapshot file is as readable as `podpath snapshot -o` makes it.
    partial.chmod(0o644)
    os.replace(partial, final)
    result.path = final
    return result


def _wait(proc: subprocess.Popen[bytes], timeout: float, cancel: threading.Event) -> int | None:
    """The exit status, or None after killing it (timeout or cancel)."""
    waited = 0.0
    while waited < timeout:
        try:
            return proc.wait(timeout=0.2)
        except subprocess.TimeoutExpired:
            waited += 0.2
            if cancel.is_set():
                break
    _kill(proc)
    return None


def collect(
    kubectl: Kubectl,
    nodes: Sequence[str],
    image: str,
    outdir: Path,
    *,
    parallel: int,
    timeout: int,
    keep: bool,
) -> tuple[list[NodeResult], str]:
    """Snapshots of `nodes`, at most `parallel` at once; the results and the cleanup line."""
    session = uuid.uuid4().hex[:12]
    cancel = threading.Event()
    made = make_output_dir(outdir)
    try:
        with ThreadPoolExecutor(max(1, parallel), thread_name_prefix="podpath-node") as pool:
            futures = [
                pool.submit(snapshot_node, kubectl, n, image, outdir, session, timeout, cancel)
                for n in nodes
            ]
            try:
                results = [f.result() for f in futures]
            except KeyboardInterrupt:
                # Running kubectls are killed by their waiters; queued nodes never start.
                cancel.set()
                for f in futures:
                    f.cancel()
                raise
    except KeyboardInterrupt:
        remove_if_empty(made)
        if not keep:
            _cleanup(kubectl, session)
        raise
    if not any(r.path for r in results):
        remove_if_empty(made)
    return results, "" if keep else delete_session(kubectl, session)


def make_output_dir(outdir: Path) -> list[Path]:
    """Create outdir and its missing parents; the directories made, deepest first."""
    made = []
    for d in (outdir, *outdir.parents):
        if d.exists():
            break
        made.append(d)
    try:
        outdir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise PluginError(f"cannot create {outdir}: {exc.strerror}") from None
    if not outdir.is_dir():
        raise PluginError(f"{outdir} is not a directory")
    return made


def remove_if_empty(made: Sequence[Path]) -> None:
    """Remove the directories make_output_dir made, deepest first, while they are empty."""
    for d in made:
        try:
            d.rmdir()
        except OSError:
            return  # something was written there meanwhile: it stays, and so do its parents


# --- command line ---------------------------------------------------------------------------


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--image", default=os.environ.get(IMAGE_ENV), help=f"podpath's image (default ${IMAGE_ENV})"
    )
    p.add_argument("--context", help="the kubeconfig context to use")
    p.add_argument("--kubeconfig", help="the kubeconfig file to use")
    p.add_argument(
        "-n", "--namespace", help="where the debug pods are made (default: the context's)"
    )
    p.add_argument("--keep", action="store_true", help="leave the debug pods behind")
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="print the kubectl commands and the pod they create; run nothing",
    )


def build_parser() -> tuple[argparse.ArgumentParser, argparse.ArgumentParser]:
    """The parsers of `kubectl podpath NODE` and `kubectl podpath snapshot`."""
    tui = argparse.ArgumentParser(
        prog="kubectl podpath",
        description="Open podpath on a node through a node debug pod "
        "(kubectl debug node/NODE --profile=sysadmin). "
        "`kubectl podpath snapshot --help` collects snapshots of several nodes.",
    )
    tui.add_argument("--version", action="version", version=f"kubectl-podpath {__version__}")
    tui.add_argument("node", metavar="NODE")
    tui.add_argument("podpath_args", nargs="*", metavar="-- TUI-ARGS", help=argparse.SUPPRESS)
    _common(tui)

    snap = argparse.ArgumentParser(
        prog="kubectl podpath snapshot",
        description="Collect one snapshot per node through debug pods, a few nodes at once, "
        "into DIR/NODE.json; then: podpath tui --snapshot DIR/*.json, or podpath trace "
        "--snapshot ... for cross-node traces.",
    )
    snap.add_argument("nodes", nargs="*", metavar="NODE")
    snap.add_argument("--all-nodes", action="store_true", help="every node of the cluster")
    snap.add_argument("-o", "--output", required=True, type=Path, metavar="DIR")
    snap.add_argument("--parallel", type=int, default=4, help="nodes collected at once (default 4)")
    snap.add_argument(
        "--timeout", type=int, default=600, help="seconds one node may take (default 600)"
    )
    _common(snap)
    return tui, snap


def _kubectl(args: argparse.Namespace) -> Kubectl:
    return Kubectl(
        binary=os.environ.get("KUBECTL") or shutil.which("kubectl") or "kubectl",
        context=args.context,
        kubeconfig=args.kubeconfig,
        namespace=args.namespace,
    )


def _stdout(line: str) -> None:
    """print(line); once stdout's reader has gone (`| head -1`), the rest is dropped."""
    try:
        print(line)
    except BrokenPipeError:
        _quiet_if_closed(sys.stdout)


def _dry_run(argvs: list[list[str]], node: str, image: str, command: list[str], tty: bool) -> int:
    for argv in argvs:
        # Quoted as a shell would need it: the line can be run as printed.
        _stdout("# " + shlex.join(argv))
    pod = node_debug_pod(node, image, command, env={SESSION_ENV: "<session>"}, tty=tty)
    _stdout(json.dumps(pod, indent=2))
    return EXIT_OK


def _tui(args: argparse.Namespace) -> int:
    kubectl = _kubectl(args)
    image = check_image(args.image)
    node = check_node_name(args.node)
    if args.dry_run:
        argv = debug_argv(
            kubectl, node, image, tui_command(args.podpath_args), "<session>", tty=True
        )
        return _dry_run([argv], node, image, tui_command(args.podpath_args), True)
    return open_tui(kubectl, node, image, args.podpath_args, keep=args.keep)


def _snapshot_dry_run(kubectl: Kubectl, nodes: list[str], image: str, timeout: int) -> int:
    """The commands of a snapshot run, one per named node; with --all-nodes, the node list first."""
    command = snapshot_command(timeout)
    if nodes:
        argvs = [
            debug_argv(kubectl, n, image, command, "<session>", tty=False, quiet=True)
            for n in nodes
        ]
        return _dry_run(argvs, nodes[0], image, command, False)
    # The nodes are known only once kubectl lists them: NODE stands for each one.
    listing = kubectl.argv("get", "nodes", "-o", "name")
    each = _debug_args(kubectl, "NODE", image, command, "<session>", False, True)
    return _dry_run([listing, each], "NODE", image, command, False)


def _snapshot(args: argparse.Namespace) -> int:
    kubectl = _kubectl(args)
    image = check_image(args.image)
    if args.all_nodes == bool(args.nodes):
        raise PluginError("name the nodes, or pass --all-nodes (not both)", EXIT_USAGE)
    if args.parallel < 1 or args.timeout < 1:
        raise PluginError("--parallel and --timeout must be at least 1", EXIT_USAGE)
    nodes = [check_node_name(n) for n in args.nodes]
    if args.dry_run:
        return _snapshot_dry_run(kubectl, list(dict.fromkeys(nodes)), image, args.timeout)
    if args.all_nodes:
        nodes = list_nodes(kubectl)
        if not nodes:
            raise PluginError("the cluster has no nodes")
    check_cluster(kubectl)
    results, cleanup = collect(
        kubectl,
        list(dict.fromkeys(nodes)),
        image,
        args.output,
        parallel=args.parallel,
        timeout=args.timeout,
        keep=args.keep,
    )
    failed = 0
    for r in results:
        if r.path is not None:
            gaps = f" ({r.gaps} gaps: podpath ls gaps --snapshot {r.path})" if r.gaps else ""
            _stdout(f"{r.node}: {r.path}{gaps}")
        else:
            failed += 1
            say(f"kubectl podpath: {r.node}: {r.error}")
    if cleanup:
        say(f"kubectl podpath: {cleanup}")
    return EXIT_FAILURE if failed else EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `kubectl-podpath` console script."""
    words = list(sys.argv[1:] if argv is None else argv)
    tui, snap = build_parser()
    try:
        if words[:1] == ["snapshot"]:
            code = _snapshot(snap.parse_args(words[1:]))
        else:
            code = _tui(tui.parse_args(words[1:] if words[:1] == ["tui"] else words))
    except PluginError as exc:
        say(f"kubectl podpath: {exc}")
        code = exc.code
    except KeyboardInterrupt:
        say("kubectl podpath: interrupted")
        code = 130
    except BrokenPipeError:
        # argparse's --help or usage into a closed pipe: nothing more to say.
        code = EXIT_OK
    # Flushed here, not at exit, so a reader that has gone (`| head -1`) is not a traceback.
    _quiet_if_closed(sys.stdout)
    return code


if __name__ == "__main__":
    sys.exit(main())
