"""The shared lab, checked with independent tools (lsns, ip, conntrack, iptables-save)."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from podpath.lab import Lab, PodRecord

pytestmark = pytest.mark.lab


def _json(lab: Lab, node: str, *argv: str) -> Any:
    return json.loads(lab.exec(node, list(argv)).stdout)


def _lsns(lab: Lab, node: str, *args: str) -> list[dict[str, Any]]:
    out = _json(lab, node, "lsns", "-J", "-o", "NS,TYPE,NPROCS,PID,COMMAND", *args)
    return _flatten(out["namespaces"])


def _flatten(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    # lsns -J nests namespaces of one type as a tree ("children") when listing a type.
    flat: list[dict[str, Any]] = []
    for row in rows:
        flat.append(row)
        flat += _flatten(row.get("children", []))
    return flat


def test_each_pod_has_a_pause_process_holding_a_net_namespace(shared_lab: Lab) -> None:
    """lsns -t net inside a node shows one net ns per pod whose first process is /pause."""
    for node in shared_lab.nodes:
        nets = _lsns(shared_lab, node.name, "-t", "net")
        pause_nets = {n["pid"] for n in nets if str(n["command"]).startswith("/pause")}
        expected = {p.pause_pid for p in shared_lab.pods_on(node.name)}
        assert pause_nets == expected


def test_app_containers_share_net_ipc_uts_but_not_mnt_pid(shared_lab: Lab) -> None:
    """An app container's net/ipc/uts namespaces are its pause's; mnt and pid are its own."""
    node = "node1"
    app_pids = [
        n["pid"]
        for n in _lsns(shared_lab, node, "-t", "mnt")
        if str(n["command"]).startswith(("/bin/httpd", "/usr/bin/python3"))
    ]
    assert len(app_pids) == len(shared_lab.pods_on(node))
    pause_ns = {
        p.pause_pid: _ns_of(shared_lab, node, p.pause_pid) for p in shared_lab.pods_on(node)
    }
    for pid in app_pids:
        mine = _ns_of(shared_lab, node, pid)
        owners = [pp for pp, ns in pause_ns.items() if ns["net"] == mine["net"]]
        assert len(owners) == 1, f"app {pid} shares a net ns with {owners}"
        pause = pause_ns[owners[0]]
        assert (mine["ipc"], mine["uts"]) == (pause["ipc"], pause["uts"])
        assert mine["mnt"] != pause["mnt"] and mine["pid"] != pause["pid"]


def _ns_of(lab: Lab, node: str, pid: int) -> dict[str, int]:
    rows = _lsns(lab, node, "-p", str(pid))
    return {str(r["type"]): int(r["ns"]) for r in rows}


def _pod_netns_name(pod: PodRecord) -> str:
    return pod.netns_path.rsplit("/", 1)[-1]


def test_pod_eth0_peer_is_its_veth_on_cni0(shared_lab: Lab) -> None:
    """ip -n <pod netns> -j link: eth0's peer ifindex is the recorded veth, enslaved to cni0."""
    for pod in shared_lab.pods:
        links = _json(
            shared_lab, pod.node, "ip", "-n", _pod_netns_name(pod), "-j", "link", "show", "eth0"
        )
        peer_index = links[0]["link_index"]
        root = _json(shared_lab, pod.node, "ip", "-j", "link", "show")
        peer = next(link for link in root if link["ifindex"] == peer_index)
        assert (peer["ifname"], peer.get("master")) == (pod.host_veth, "cni0")


def test_pod_loopback_is_up(shared_lab: Lab) -> None:
    """Like containerd (go-cni's cni-loopback), the lab brings each pod's lo up first."""
    for pod in shared_lab.pods:
        links = _json(shared_lab, pod.node, "ip", "-n", _pod_netns_name(pod), "-j", "link")
        (lo,) = [link for link in links if link["ifname"] == "lo"]
        assert "UP" in lo["flags"]


def test_pod_address_is_on_eth0(shared_lab: Lab) -> None:
    """ip -n <pod netns> -j addr shows the recorded pod IP on eth0, inside the node's CIDR."""
    for pod in shared_lab.pods:
        addrs = _json(
            shared_lab, pod.node, "ip", "-n", _pod_netns_name(pod), "-j", "addr", "show", "eth0"
        )
        ips = [a["local"] for a in addrs[0]["addr_info"] if a["family"] == "inet"]
        cidr = shared_lab.node(pod.node).pod_cidr
        assert ips == [pod.ip] and pod.ip.startswith(cidr.rsplit(".", 2)[0] + ".")


def test_host_local_ipam_files_match_pod_addresses(shared_lab: Lab) -> None:
    """/var/lib/cni/networks/<net>/<ip> exists per pod and names its sandbox id."""
    for node in shared_lab.nodes:
        listing = shared_lab.exec(
            node.name, ["ls", "/var/lib/cni/networks/containerd-net"]
        ).stdout.split()
        ips = {f for f in listing if re.fullmatch(r"\d+\.\d+\.\d+\.\d+", f)}
        pods = shared_lab.pods_on(node.name)
        assert ips == {p.ip for p in pods}
        for pod in pods:
            owner = shared_lab.exec(
                node.name, ["cat", f"/var/lib/cni/networks/containerd-net/{pod.ip}"]
            ).stdout
            assert owner.split()[0] == pod.sandbox_id


def test_bundles_carry_cri_annotations(shared_lab: Lab) -> None:
    """Each sandbox bundle's config.json has containerd's io.kubernetes.cri.* annotations."""
    pod = shared_lab.pods[0]
    bundle = f"/run/containerd/io.containerd.runtime.v2.task/k8s.io/{pod.sandbox_id}/config.json"
    ann = json.loads(shared_lab.exec(pod.node, ["cat", bundle]).stdout)["annotations"]
    assert ann["io.kubernetes.cri.container-type"] == "sandbox"
    assert (ann["io.kubernetes.cri.sandbox-name"], ann["io.kubernetes.cri.sandbox-namespace"]) == (
        pod.name,
        pod.namespace,
    )
    assert ann["io.kubernetes.cri.sandbox-uid"] == pod.uid
    assert (
        ann["io.kubernetes.cri.sandbox-log-directory"]
        == f"/var/log/pods/{pod.namespace}_{pod.name}_{pod.uid}"
    )


def test_runc_lists_every_container_running(shared_lab: Lab) -> None:
    """runc's k8s.io root runs exactly the sandboxes and containers CRI calls running."""
    for node in shared_lab.nodes:
        out = shared_lab.exec(
            node.name, ["runc", "--root", "/run/containerd/runc/k8s.io", "list", "-f", "json"]
        )
        running = {c["id"] for c in json.loads(out.stdout) if c["status"] == "running"}
        with shared_lab.cri(node.name) as cri:
            sandboxes = cri.call("ListPodSandbox")["items"]
            containers = cri.call("ListContainers")["containers"]
        want = {s["id"] for s in sandboxes if s["state"] == "SANDBOX_READY"}
        want |= {c["id"] for c in containers if c["state"] == "CONTAINER_RUNNING"}
        assert {s["id"] for s in sandboxes} == {p.sandbox_id for p in shared_lab.pods_on(node.name)}
        assert running == want


def test_a_restarted_container_has_an_exited_attempt(shared_lab: Lab) -> None:
    """The lab's crashed pod, as CRI reports it: attempt 0 EXITED, attempt 1 RUNNING."""
    crashed = [p for p in shared_lab.pods if len(p.containers) == 2]
    assert len(crashed) == 1
    (pod,) = crashed
    with shared_lab.cri(pod.node) as cri:
        got = cri.call("ListContainers", {"filter": {"pod_sandbox_id": pod.sandbox_id}})
    states = sorted((c["metadata"]["attempt"], c["state"]) for c in got["containers"])
    assert states == [(0, "CONTAINER_EXITED"), (1, "CONTAINER_RUNNING")]


def test_pause_cgroup_is_kubelet_cgroupfs_shaped(shared_lab: Lab) -> None:
    """/proc/<pause>/cgroup inside the node reads /kubepods/<qos>/pod<uid>/<sandbox id>."""
    pod = shared_lab.pods[0]
    text = shared_lab.exec(pod.node, ["cat", f"/proc/{pod.pause_pid}/cgroup"]).stdout
    memory = next(
        line for line in text.splitlines() if ":memory:" in line or line.startswith("0::")
    )
    assert memory.split(":", 2)[2] == f"/kubepods/{pod.qos}/pod{pod.uid}/{pod.sandbox_id}"


def test_pause_comm_is_pause(shared_lab: Lab) -> None:
    """The recorded host PID of each pause process really is a process called pause."""
    for pod in shared_lab.pods:
        with open(f"/proc/{pod.pause_host_pid}/comm") as f:
            assert f.read().strip() == "pause"


def test_kube_proxy_rules_are_in_iptables_save(shared_lab: Lab) -> None:
    """iptables-save shows KUBE-SERVICES -> KUBE-SVC -> KUBE-SEP -> DNAT for every endpoint."""
    text = shared_lab.exec("node2", ["iptables-save", "-t", "nat"]).stdout
    for svc in shared_lab.services:
        if not svc.endpoints:
            continue
        proto = svc.protocol.lower()
        assert re.search(
            rf"-A KUBE-SERVICES -d {re.escape(svc.cluster_ip)}/32 -p {proto} .*--dport {svc.port} -j {svc.svc_chain}$",
            text,
            re.M,
        ), svc.port_ref
        # ClientIP affinity (web-sticky) first sends known clients back (-m recent --rcheck).
        found = re.findall(rf"^-A {svc.svc_chain} (.*)-j (KUBE-SEP-\w+)$", text, re.M)
        jumps = [sep for rule, sep in found if "--rcheck" not in rule]
        assert tuple(jumps) == svc.sep_chains
        pinned = [sep for rule, sep in found if "--rcheck" in rule]
        assert tuple(pinned) == (svc.sep_chains if svc.affinity is not None else ())
        for (ip, port), sep in zip(svc.endpoints, svc.sep_chains, strict=True):
            assert re.search(
                rf"^-A {sep} .*-j DNAT --to-destination {re.escape(ip)}:{port}$", text, re.M
            )


def test_statistic_probabilities_spread_evenly(shared_lab: Lab) -> None:
    """The web Service's KUBE-SVC chain uses probabilities 1/n, 1/(n-1), ... like kube-proxy."""
    web = shared_lab.service("default/web")[0]
    text = shared_lab.exec("node1", ["iptables-save", "-t", "nat"]).stdout
    probs = [
        float(p) for p in re.findall(rf"^-A {web.svc_chain} .*--probability ([0-9.]+)", text, re.M)
    ]
    n = len(web.endpoints)
    assert probs == pytest.approx([1 / (n - i) for i in range(n - 1)], rel=1e-6)


def test_probe_to_service_vip_is_dnat_to_an_endpoint(shared_lab: Lab) -> None:
    """A probe to web's VIP returns a page, and conntrack -L shows the DNAT to that endpoint."""
    src = shared_lab.pods_on("node1")[0]
    web = shared_lab.service("default/web")[0]
    result = shared_lab.probe(src.name, web.cluster_ip, 80)
    assert result.ok and "served by pod" in result.answer
    served = shared_lab.pod(result.served_by or "?")
    out = shared_lab.exec(
        "node1", ["conntrack", "-L", "-p", "tcp", "-s", src.ip, "-d", web.cluster_ip]
    ).stdout
    assert re.search(
        rf"src={re.escape(src.ip)} dst={re.escape(web.cluster_ip)} .*dport=80 src={re.escape(served.ip)} dst={re.escape(src.ip)}",
        out,
    ), out


def test_probe_crosses_to_the_other_node(shared_lab: Lab) -> None:
    """A pod on node1 reaches each pod on node2 by IP; the answer names the pod reached."""
    src = shared_lab.pods_on("node1")[0]
    for dst in shared_lab.pods_on("node2"):
        if dst.app != "web":
            continue
        result = shared_lab.probe(src.name, dst.ip)
        assert result.ok and result.served_by == dst.ref, result


def test_dns_like_pod_answers_udp_and_tcp_through_its_vip(shared_lab: Lab) -> None:
    """kube-dns's VIP answers on 53/udp and 53/tcp from a pod on the other node."""
    src = shared_lab.pods_on("node2")[0]
    dns_pod = next(p for p in shared_lab.pods if p.app == "dns")
    for proto in ("udp", "tcp"):
        result = shared_lab.probe(src.name, "kube-system/kube-dns", proto=proto)
        assert result.ok and result.served_by == dns_pod.ref, result


def test_a_failed_probe_says_why_in_one_line(shared_lab: Lab) -> None:
    """UDP to a port nothing serves and to an address nobody holds, TCP to the latter:
    each fails with one line (refused, timed out), never the UDP client's traceback."""
    src = shared_lab.pods_on("node1")[0]
    web = next(p for p in shared_lab.pods_on("node2") if p.app == "web")
    nobody = "10.244.9.9"
    refused = shared_lab.probe(src.name, f"{web.ip}:9", proto="udp", wait=1)
    assert not refused.ok and refused.error == "udp: Connection refused", refused
    silent = shared_lab.probe(src.name, f"{nobody}:53", proto="udp", wait=1)
    assert not silent.ok and silent.error == "udp: timed out", silent
    tcp = shared_lab.probe(src.name, f"{nobody}:80", wait=1)
    assert not tcp.ok and tcp.error == "nc: timed out", tcp
    assert 1 <= tcp.seconds < 2.5, tcp


def test_node_port_answers_on_the_node_address(shared_lab: Lab) -> None:
    """The web NodePort answers on node2's underlay address, probed from node1."""
    result = shared_lab.probe("node1", "node2")
    assert result.ok and "served by pod" in result.answer, result


def test_vxlan_device_is_flannel_shaped(shared_lab: Lab) -> None:
    """flannel.1 is VXLAN VNI 1 on port 8472 with an FDB entry to the other node's address."""
    link = _json(shared_lab, "node1", "ip", "-d", "-j", "link", "show", "flannel.1")[0]
    info = link["linkinfo"]["info_data"]
    assert (link["linkinfo"]["info_kind"], info["id"], info["port"]) == ("vxlan", 1, 8472)
    fdb = _json(shared_lab, "node1", "bridge", "-j", "fdb", "show", "dev", "flannel.1")
    assert {e.get("dst") for e in fdb} >= {shared_lab.node("node2").address}


def test_node_is_isolated_from_this_machine(shared_lab: Lab) -> None:
    """A node's root net namespace and /run differ from this machine's."""
    import os

    node = shared_lab.nodes[0]
    assert os.stat(f"/proc/{node.init_pid}/ns/net").st_ino != os.stat("/proc/self/ns/net").st_ino
    assert shared_lab.exec(node.name, ["ls", "/run/netns"]).stdout.split() == sorted(
        p.netns_path.rsplit("/", 1)[-1] for p in shared_lab.pods_on(node.name)
    )


def test_podpath_runs_inside_a_node(shared_lab: Lab, run_podpath: Any) -> None:
    """run_podpath runs this checkout's podpath inside a node."""
    done = run_podpath(shared_lab, "node1", "--version")
    assert done.returncode == 0 and done.stdout.startswith("podpath ")
