"""containerd 2.x, laid out as its source lays it out (tag v2.3.4, commit db8809540e1a).

What podpath reads is where 1.6 and 1.7 keep it: the CRI plugin was split into
io.containerd.cri.v1.runtime / .images and io.containerd.grpc.v1.cri, but "for backward
compatibility" its root and state stay .../io.containerd.grpc.v1.cri
(plugins/cri/runtime/plugin.go:77-81); bundles stay under io.containerd.runtime.v2.task
(core/runtime/v2/task_manager.go:65, plugins/types.go:31) and runc state under
/run/containerd/runc (cmd/containerd-shim-runc-v2/process/utils.go:39). What changed:
the sandbox's spec names its pause image (internal/cri/annotations/annotations.go:83,
103-133), and a verbose PodSandboxStatus carries the sandbox store's metadata with the
netns path even when it has no runtime spec (internal/cri/server/sandbox_status.go:180-210,
podsandbox/types/sandbox_info.go:29-45). With netns_mounts_under_state_dir the netns is
<state>/netns/cni-... (internal/cri/server/sandbox_run.go:201-206, pkg/netns/netns_linux.go:71).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from runtime_tree import CT, SB, kind_specs, load, write, write_containerd_pod

from podpath.collectors.hostroot import HostRoot
from podpath.collectors.runtime.cri_listing import status_info
from podpath.collectors.runtime.cri_state import CriListing
from podpath.collectors.runtime.pods import (
    CONTAINERD_TASKS,
    collect_pods,
    containers_from_cri,
)
from podpath.snapshot.model import Namespace, Process

ROOT_NET = 4026531840
UID = "44e4b37f-504f-4f1c-80f3-4137bfbec5e4"
PAUSE_IMAGE = "registry.k8s.io/pause:3.10"
# netns_mounts_under_state_dir = true: <state dir of the CRI plugin>/netns/cni-<uuid>.
STATE_NETNS = (
    "/run/containerd/io.containerd.grpc.v1.cri/netns/cni-c8f12417-13bc-a776-937a-0d987bcf8a2a"
)
CRI_ROOT = "/var/lib/containerd/io.containerd.grpc.v1.cri"


def _v2_specs() -> tuple[dict[str, Any], dict[str, Any]]:
    """kind's real containerd specs, annotated as 2.x's DefaultCRIAnnotations annotates them."""
    sandbox, app = kind_specs()
    sandbox["annotations"]["io.kubernetes.cri.podsandbox.image-name"] = PAUSE_IMAGE
    for ns in sandbox["linux"]["namespaces"]:
        if ns["type"] == "network":
            ns["path"] = STATE_NETNS
    return sandbox, app


def _proc(pid: int, comm: str, ns: dict[str, int]) -> Process:
    return Process(pid, 5000 + pid, 1, comm, (comm,), 0, "S", "/", dict(ns))


def test_a_containerd2_node_from_its_files(tmp_path: Path) -> None:
    """No CRI answer: bundle, runc state and CRI status file make the pod, pause image included."""
    write_containerd_pod(tmp_path, CONTAINERD_TASKS, *_v2_specs())
    # internal/cri/store/container/status.go: versionedStatus embeds Status (flat keys).
    status = {
        "Version": "v1",
        "Pid": 1478,
        "CreatedAt": 1700000000000000000,
        "StartedAt": 1700000001000000000,
        "FinishedAt": 0,
        "ExitCode": 0,
        "Reason": "",
        "Message": "",
        "Resources": None,
        "Restore": False,
    }
    write(tmp_path, f"{CRI_ROOT}/containers/{CT}/status", status)
    write(tmp_path, STATE_NETNS, "")  # a file stands in for the nsfs mount: its inode counts
    inode = (tmp_path / STATE_NETNS.lstrip("/")).stat().st_ino
    ns = {"net": inode, "ipc": 4026532501, "uts": 4026532502}
    procs = (_proc(1322, "pause", ns), _proc(1478, "coredns", {**ns, "pid": 4026532600}))
    with HostRoot(str(tmp_path)) as host:
        pods, gaps = collect_pods(host, procs, ROOT_NET)
    assert gaps == ()
    (pod,) = pods
    assert (pod.namespace, pod.name, pod.uid, pod.runtime) == (
        "kube-system",
        "coredns-5d78c9869d-79bfv",
        UID,
        "containerd",
    )
    assert (pod.sandbox_image, pod.pause_pid, pod.netns_path, pod.netns_inode) == (
        PAUSE_IMAGE,
        1322,
        STATE_NETNS,
        inode,
    )
    (coredns,) = [c for c in pod.containers if c.kind == "container"]
    assert (coredns.name, coredns.state, coredns.pids) == ("coredns", "running", (1478,))
    assert coredns.started_at == status["StartedAt"]


def test_a_pause_process_in_a_state_dir_netns_is_named_by_it(tmp_path: Path) -> None:
    """No runtime files at all: the pause process's netns mount under the state dir names the pod."""
    inode = 4026532500
    netns = Namespace("net", inode, 4, 1, 1322, 0, "root", "pause", nsfs=STATE_NETNS)
    with HostRoot(str(tmp_path)) as host:
        pods, _ = collect_pods(
            host, (_proc(1322, "pause", {"net": inode}),), ROOT_NET, namespaces=(netns,)
        )
    (pod,) = pods
    assert (pod.name, pod.netns_path, pod.pause_pid) == (
        "cni-c8f12417-13bc-a776-937a-0d987bcf8a2a",
        STATE_NETNS,
        1322,
    )


def _v2_sandbox_response() -> dict[str, Any]:
    """A 2.x verbose PodSandboxStatus of a sandbox whose task is gone (toDeletedCRISandboxInfo).

    `config` is the CRI PodSandboxConfig from containerd's own testdata, verbatim.
    """
    config = load("containerd/containerd-v2.3.4-checkpoint-testdata-sandbox_config.json")
    meta = config["metadata"]
    info = {
        "pid": 0,
        "processStatus": "deleted",
        "netNamespaceClosed": False,
        "image": "",
        "snapshotKey": "",
        "snapshotter": "",
        "runtimeType": "",
        "runtimeOptions": None,
        "config": config,
        "runtimeSpec": None,
        "cniResult": None,
        # sandboxstore.Metadata marshals itself as {"Version": "v1", "Metadata": {...}}.
        "sandboxMetadata": {
            "Version": "v1",
            "Metadata": {
                "ID": SB,
                "Name": f"{meta['name']}_{meta['namespace']}_{meta['uid']}_{meta['attempt']}",
                "Config": config,
                "NetNSPath": STATE_NETNS,
                "IP": "10.88.0.17",
                "AdditionalIPs": None,
                "RuntimeHandler": "",
                "CNIResult": None,
                "ProcessLabel": "",
            },
        },
    }
    status = {
        "id": SB,
        "metadata": meta,
        "state": "SANDBOX_NOTREADY",
        "created_at": 1700000000000000000,
        "network": {"ip": "", "additional_ips": []},
        "linux": {"namespaces": {"options": {"network": "POD", "pid": "CONTAINER"}}},
    }
    return {"status": status, "info": {"info": json.dumps(info)}}


def test_a_containerd2_sandbox_without_a_spec_keeps_its_netns() -> None:
    """2.x's sandboxMetadata gives the netns path when the verbose status has no runtime spec."""
    response = _v2_sandbox_response()
    info = status_info(response)
    assert info["netns_path"] == STATE_NETNS and info["namespaces"] is None
    listing = CriListing(
        "containerd",
        "/run/containerd/containerd.sock",
        {"sandboxes": [{"status": response["status"], "info": info}], "containers": []},
    )
    (sandbox,) = containers_from_cri(listing)
    assert sandbox.ns_paths == {"net": STATE_NETNS}
    assert (sandbox.pod_name, sandbox.pod_namespace, sandbox.state) == (
        "podsandbox1",
        "redhat.test.crio",
        "notready",
    )


def test_the_runtime_spec_wins_over_sandbox_metadata() -> None:
    """A running 2.x sandbox: the spec's netns path is used, the metadata only fills a gap."""
    response = _v2_sandbox_response()
    info = json.loads(response["info"]["info"])
    info["runtimeSpec"] = _v2_specs()[0]
    info["sandboxMetadata"]["Metadata"]["NetNSPath"] = "/var/run/netns/elsewhere"
    response["info"]["info"] = json.dumps(info)
    listing = CriListing(
        "containerd",
        "/run/containerd/containerd.sock",
        {
            "sandboxes": [{"status": response["status"], "info": status_info(response)}],
            "containers": [],
        },
    )
    (sandbox,) = containers_from_cri(listing)
    assert sandbox.ns_paths["net"] == STATE_NETNS
