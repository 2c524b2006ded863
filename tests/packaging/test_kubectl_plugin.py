"""`kubectl podpath` run by the real kubectl, against a stand-in API server (fake_apiserver.py)."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import stat
import subprocess
import sys
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
from fake_apiserver import drop_empty

from podpath.cli.kubectl import (
    SESSION_ENV,
    Kubectl,
    debug_argv,
    node_debug_pod,
    snapshot_command,
    tui_command,
)

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("kubectl") is None or shutil.which("unshare") is None,
    reason="needs root (a network namespace of its own), kubectl and unshare",
)

SERVER = Path(__file__).with_name("fake_apiserver.py")
PLUGIN = Path(sys.executable).with_name("kubectl-podpath")
IMAGE = "registry.example/podpath:0.1.0"
# A kubeconfig whose server nothing listens on (port 9 of the test's own loopback).
KUBECONFIG_NOWHERE = """apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:9"}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: c, context: {cluster: c, user: u}}]
current-context: c
"""


def _demo(name: str) -> bytes:
    return resources.files("podpath").joinpath("data", name).read_bytes()


def _serve(
    tmp_path: Path, command: list[str], nodes: tuple[str, ...], logs: dict[str, bytes]
) -> dict[str, Any]:
    """Run `command` against a stand-in API server that knows `nodes`; what it saw."""
    (tmp_path / "nodes.json").write_text(json.dumps(list(nodes)))
    (tmp_path / "logs").mkdir(exist_ok=True)
    for node, text in logs.items():
        (tmp_path / "logs" / node).write_bytes(text)
    env = {**os.environ, "PATH": f"{PLUGIN.parent}:{os.environ['PATH']}"}
    subprocess.run(
        ["unshare", "--net", "--", sys.executable, str(SERVER), str(tmp_path), "--", *command],
        check=True,
        timeout=300,
        env=env,
    )
    record: dict[str, Any] = json.loads((tmp_path / "record.json").read_text())
    return record


def _snapshot(
    tmp_path: Path, targets: list[str], nodes: tuple[str, ...], logs: dict[str, bytes]
) -> tuple[dict[str, Any], Path]:
    """`kubectl podpath snapshot TARGETS -o DIR` against the stand-in; its record and DIR."""
    out = tmp_path / "snaps"
    argv = ["kubectl", "podpath", "snapshot", *targets, "-o", str(out), f"--image={IMAGE}"]
    return _serve(tmp_path, argv, nodes, logs), out


def _two_nodes() -> dict[str, bytes]:
    return {"node1": _demo("demo-snapshot.json"), "node2": _demo("demo-snapshot-node2.json")}


def _kubectl_minor() -> int:
    out = subprocess.run(
        ["kubectl", "version", "--client", "-o", "json"], capture_output=True, check=True
    )
    return int(json.loads(out.stdout)["clientVersion"]["minor"].rstrip("+"))


def _as_made(pod: dict[str, Any]) -> dict[str, Any]:
    """A created pod without its random name suffix, empty fields left out."""
    made: dict[str, Any] = drop_empty(pod)
    name = made["metadata"]["name"]
    made["metadata"]["name"] = name[: name.rindex("-")] + "-xxxxx"
    return made


@pytest.mark.parametrize("mode", ["tui", "snapshot"])
def test_our_pod_spec_is_the_one_kubectl_debug_creates(tmp_path: Path, mode: str) -> None:
    """The pod kubectl itself POSTs for the plugin's argv equals node_debug_pod()."""
    tty = mode == "tui"
    command = tui_command() if tty else snapshot_command(600)
    argv = debug_argv(Kubectl(), "node1", IMAGE, command, "s1", tty=tty, quiet=not tty)
    record = _serve(tmp_path, argv, ("node1",), {"node1": b""})
    expected = node_debug_pod(
        "node1",
        IMAGE,
        command,
        env={SESSION_ENV: "s1"},
        stdin=True,
        tty=tty,
        labelled=_kubectl_minor() >= 34,
    )
    assert [_as_made(p) for p in record["created"]] == [expected]


def test_snapshot_of_all_nodes_comes_back_through_kubectl(tmp_path: Path) -> None:
    """--all-nodes: one pod per node, each snapshot saved as NODE.json, every pod deleted."""
    logs = _two_nodes()
    record, out = _snapshot(tmp_path, ["--all-nodes"], ("node1", "node2"), logs)
    assert record["returncode"] == 0, record["stderr"]
    assert sorted(p.name for p in out.iterdir()) == ["node1.json", "node2.json"]
    for node, text in logs.items():
        assert (out / f"{node}.json").read_bytes() == text
        assert stat.S_IMODE((out / f"{node}.json").stat().st_mode) == 0o644
    assert sorted(p["spec"]["nodeName"] for p in record["created"]) == ["node1", "node2"]
    assert sorted(record["deleted"]) == sorted(p["metadata"]["name"] for p in record["created"])
    assert "GET /api/v1/nodes" in record["requests"]


def test_snapshots_stitch_into_a_cross_node_trace(tmp_path: Path) -> None:
    """The saved files of two nodes trace a packet from a pod on one to a pod on the other."""
    record, out = _snapshot(tmp_path, ["node1", "node2"], ("node1", "node2"), _two_nodes())
    assert record["returncode"] == 0, record["stderr"]
    files = [str(out / "node1.json"), str(out / "node2.json")]
    pods = json.loads(
        subprocess.run(
            [sys.executable, "-m", "podpath", "ls", "pods", "--json", "--snapshot", files[1]],
            capture_output=True,
            check=True,
        ).stdout
    )["pods"]
    target = pods[0]["ips"][0]
    trace = json.loads(
        subprocess.run(
            [sys.executable, "-m", "podpath", "trace", "--json", "--from", "node"]
            + ["--to", f"{target}:80", "--snapshot", files[0], "--snapshot", files[1]],
            capture_output=True,
            check=True,
        ).stdout
    )
    (branch,) = trace["branches"]
    assert branch["verdict"] == "delivered"
    assert {hop["node"] for hop in branch["hops"]} == {"node1", "node2"}


def test_a_node_that_sends_no_snapshot_fails_alone(tmp_path: Path) -> None:
    """Garbage from one node: that node is reported, the other saved, no partial file, exit 1."""
    logs = {"node1": _demo("demo-snapshot.json"), "node2": b"Error: podpath: not found\n"}
    record, out = _snapshot(tmp_path, ["node1", "node2"], ("node1", "node2"), logs)
    assert record["returncode"] == 1
    assert sorted(p.name for p in out.iterdir()) == ["node1.json"]
    assert "node2: what came back is not a snapshot" in record["stderr"]
    assert len(record["deleted"]) == 2


def test_unknown_node_is_one_sentence(tmp_path: Path) -> None:
    """A node the API server does not know: kubectl's own message, no file, exit 1."""
    record, out = _snapshot(tmp_path, ["node9"], ("node1",), {})
    assert record["returncode"] == 1
    assert record["stderr"].splitlines()[0].startswith("kubectl podpath: node9: no snapshot")
    assert 'nodes "node9" not found' in record["stderr"]
    assert not out.exists(), "the directory it made for nothing is removed"


def test_a_directory_that_was_there_stays_when_nothing_came_back(tmp_path: Path) -> None:
    """-o DIR that existed before: kept (with what was in it) when no node sends a snapshot."""
    out = tmp_path / "snaps"
    out.mkdir()
    (out / "old.json").write_text("{}")
    record, _ = _snapshot(tmp_path, ["node9"], ("node1",), {})
    assert record["returncode"] == 1
    assert sorted(p.name for p in out.iterdir()) == ["old.json"]


_BROKEN = {
    "not yaml": "apiVersion: v1\nclusters: [{{{\n",
    "no server": KUBECONFIG_NOWHERE,
}


@pytest.mark.parametrize("kubeconfig", sorted(_BROKEN))
@pytest.mark.parametrize(
    "command",
    [["node1"], ["snapshot", "node1", "-o", "{out}"], ["snapshot", "--all-nodes", "-o", "{out}"]],
    ids=["tui", "snapshot", "snapshot-all-nodes"],
)
def test_a_broken_kubeconfig_is_one_sentence_and_leaves_nothing(
    tmp_path: Path, kubeconfig: str, command: list[str]
) -> None:
    """No pod made, no cleanup message about pods that cannot exist, no empty DIR left."""
    config = tmp_path / "broken-kubeconfig"
    config.write_text(_BROKEN[kubeconfig])
    out = tmp_path / "snaps"
    argv = ["kubectl", "podpath", *(w.format(out=out) for w in command)]
    record = _serve(tmp_path, [*argv, f"--image={IMAGE}", f"--kubeconfig={config}"], ("node1",), {})
    assert record["returncode"] == 1
    (line,) = record["stderr"].strip().splitlines()
    assert line.startswith("kubectl podpath: ")
    assert "not deleted" not in line and "Traceback" not in line
    assert record["created"] == [] and record["requests"] == []
    assert not out.exists()


def test_tui_pod_is_created_with_a_terminal_and_deleted_after(tmp_path: Path) -> None:
    """`kubectl podpath NODE`: kubectl creates the -it pod; the plugin deletes it when it ends."""
    record = _serve(
        tmp_path, ["kubectl", "podpath", "node1", f"--image={IMAGE}"], ("node1",), {"node1": b""}
    )
    (pod,) = record["created"]
    container = pod["spec"]["containers"][0]
    assert (container["stdin"], container["tty"]) == (True, True)
    assert container["command"] == ["podpath", "tui", "--host-root", "/host"]
    assert record["deleted"] == [pod["metadata"]["name"]]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["node1"], "no image: pass --image=REF or set PODPATH_IMAGE"),
        (["--image=x", "Node_1"], "'Node_1' is not a node name"),
        (["--image=x", "--", "-rf"], "'-rf' is not a node name"),
        (["--image=-x", "node1"], "'-x' is not an image reference"),
        (["snapshot", "--image=x", "-o", "d"], "name the nodes, or pass --all-nodes"),
    ],
)
def test_bad_usage_is_one_sentence(args: list[str], message: str) -> None:
    """Bad usage: exit 2 and one sentence, before kubectl runs at all."""
    env = {k: v for k, v in os.environ.items() if k != "PODPATH_IMAGE"}
    env["KUBECTL"] = "/nonexistent/kubectl"
    done = subprocess.run([str(PLUGIN), *args], capture_output=True, text=True, env=env)
    assert done.returncode == 2
    assert message in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def _dry_run(*args: str) -> tuple[list[str], dict[str, Any]]:
    """`kubectl-podpath ... --dry-run` with no kubectl to run: its command lines and pod."""
    env = {**os.environ, "KUBECTL": "/nonexistent/kubectl"}
    done = subprocess.run(
        [str(PLUGIN), *args, f"--image={IMAGE}", "--dry-run"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert (done.returncode, done.stderr) == (0, "")
    lines = done.stdout.splitlines()
    commands = [line.removeprefix("# ") for line in lines if line.startswith("# ")]
    pod: dict[str, Any] = json.loads("\n".join(line for line in lines if not line.startswith("#")))
    return commands, pod


def test_dry_run_of_all_nodes_shows_the_listing_and_the_pod_of_each(tmp_path: Path) -> None:
    """snapshot --all-nodes --dry-run: `get nodes`, then the pod each listed NODE gets; no DIR."""
    out = tmp_path / "snaps"
    commands, pod = _dry_run("snapshot", "--all-nodes", "-o", str(out))
    assert commands[0] == "/nonexistent/kubectl get nodes -o name"
    assert commands[1].startswith("/nonexistent/kubectl debug node/NODE --profile=sysadmin ")
    assert len(commands) == 2
    assert pod == node_debug_pod(
        "NODE", IMAGE, snapshot_command(600), env={SESSION_ENV: "<session>"}, stdin=True
    )
    assert not out.exists()


def test_dry_run_of_named_nodes_shows_one_command_per_node(tmp_path: Path) -> None:
    """snapshot A B A --dry-run: one kubectl debug per distinct node, in order, shell-quoted."""
    commands, pod = _dry_run("snapshot", "node-a", "node-b", "node-a", "-o", str(tmp_path / "d"))
    assert [c.split()[2] for c in commands] == ["node/node-a", "node/node-b"]
    assert pod["spec"]["nodeName"] == "node-a"
    assert shlex.split(commands[0]) == debug_argv(
        Kubectl("/nonexistent/kubectl"),
        "node-a",
        IMAGE,
        snapshot_command(600),
        "<session>",
        tty=False,
        quiet=True,
    )


def test_kubectl_finds_the_plugin_on_path() -> None:
    """kubectl runs kubectl-podpath as `kubectl podpath` (the krew convention)."""
    env = {**os.environ, "PATH": f"{PLUGIN.parent}:{os.environ['PATH']}"}
    done = subprocess.run(
        ["kubectl", "podpath", "--version"], capture_output=True, text=True, env=env, check=True
    )
    assert done.stdout.strip().startswith("kubectl-podpath ")


# -- a reader that goes away, and Ctrl-C ------------------------------------------------------

# Run by the stand-in as its COMMAND (so kubectl talks to it): the plugin with stdout a
# pipe whose reader has already gone, as after `| head -1` ends.
_CLOSED_PIPE = """
import json, os, subprocess, sys
read, write = os.pipe()
os.close(read)
done = subprocess.run(sys.argv[1:], stdout=write, stderr=subprocess.PIPE, text=True)
print(json.dumps({"returncode": done.returncode, "stderr": done.stderr}))
"""

# Ctrl-C as a terminal sends it: SIGINT to the plugin's whole process group, once its
# debug pod exists and kubectl waits on it (the stand-in's log of the node is a FIFO
# nobody writes, so kubectl hangs reading it as it would on a slow node).
_CTRL_C = """
import json, os, signal, subprocess, sys, time
argv = sys.argv[1:]
plugin = subprocess.Popen(argv, stderr=subprocess.PIPE, text=True, start_new_session=True)
deadline = time.monotonic() + 60
while time.monotonic() < deadline:
    pods = subprocess.run(["kubectl", "get", "pods", "-o", "name"], capture_output=True, text=True)
    if "node-debugger-" in pods.stdout:
        break
    time.sleep(0.2)
time.sleep(1)
os.killpg(plugin.pid, signal.SIGINT)
_, stderr = plugin.communicate(timeout=120)
print(json.dumps({"returncode": plugin.returncode, "stderr": stderr}))
"""


def test_a_dry_run_into_head_ends_quietly() -> None:
    """`kubectl podpath snapshot ... --dry-run | head -1`: one line, exit 0, no BrokenPipeError."""
    nodes = [f"node-{i}" for i in range(3000)]  # more than a pipe holds: head leaves first
    env = {**os.environ, "KUBECTL": "/nonexistent/kubectl"}
    plugin = subprocess.Popen(
        [str(PLUGIN), "snapshot", *nodes, "-o", "d", f"--image={IMAGE}", "--dry-run"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    assert plugin.stdout is not None
    head = subprocess.run(["head", "-1"], stdin=plugin.stdout, capture_output=True, check=True)
    plugin.stdout.close()
    _, stderr = plugin.communicate(timeout=60)
    assert head.stdout.decode().startswith("# /nonexistent/kubectl debug node/node-0 ")
    assert (plugin.returncode, stderr.decode()) == (0, "")


def test_snapshots_listed_into_a_closed_pipe_end_quietly(tmp_path: Path) -> None:
    """The saved files' lines into a pipe nobody reads: no traceback, pods deleted, files kept."""
    out = tmp_path / "snaps"
    argv = ["kubectl", "podpath", "snapshot", "--all-nodes", "-o", str(out), f"--image={IMAGE}"]
    record = _serve(
        tmp_path, [sys.executable, "-c", _CLOSED_PIPE, *argv], ("node1", "node2"), _two_nodes()
    )
    seen = json.loads(record["stdout"])
    assert seen["returncode"] == 0, seen["stderr"]
    assert "Traceback" not in seen["stderr"] and "BrokenPipe" not in seen["stderr"]
    assert seen["stderr"].strip().startswith("kubectl podpath: deleted node-debugger-")
    assert sorted(p.name for p in out.iterdir()) == ["node1.json", "node2.json"]
    assert len(record["deleted"]) == 2


@pytest.mark.parametrize(
    "command",
    [["node1"], ["snapshot", "node1", "-o", "{out}"]],
    ids=["tui", "snapshot"],
)
def test_ctrl_c_says_interrupted_and_deletes_the_pods_it_made(
    tmp_path: Path, command: list[str]
) -> None:
    """SIGINT to the plugin's process group: `interrupted`, exit 130, its debug pod deleted."""
    (tmp_path / "logs").mkdir()
    os.mkfifo(tmp_path / "logs" / "node1")
    out = tmp_path / "snaps"
    argv = ["kubectl", "podpath", *(w.format(out=out) for w in command), f"--image={IMAGE}"]
    record = _serve(tmp_path, [sys.executable, "-c", _CTRL_C, *argv], ("node1",), {})
    # kubectl's own "Creating debugging pod ..." comes first: the driver's report is last.
    seen = json.loads(record["stdout"].splitlines()[-1])
    assert seen["returncode"] == 130, seen["stderr"]
    lines = seen["stderr"].strip().splitlines()
    assert "kubectl podpath: interrupted" in lines and "Traceback" not in seen["stderr"]
    (pod,) = record["created"]
    assert record["deleted"] == [pod["metadata"]["name"]]
    assert f"kubectl podpath: deleted {pod['metadata']['name']}" in lines
    assert not out.exists(), "no snapshot came back: the directory it made is removed"
