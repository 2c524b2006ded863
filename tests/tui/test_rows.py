"""Pure row builders, checked against the fixed snapshot without an App."""

from __future__ import annotations

from dataclasses import replace

from podpath.analysis.index import SnapshotIndex
from podpath.analysis.parsed import ParsedSnapshot
from podpath.conntrack import ConntrackEntry, ConntrackTuple
from podpath.netfilter.kube_proxy import Endpoint, Service
from podpath.snapshot.model import NeighbourTable, RecentEntry, RecentList
from podpath.tui.rows.conntrack import conntrack_rows
from podpath.tui.rows.links import link_rows
from podpath.tui.rows.model import MORE_KEY, Row, cell, more_row, page, row
from podpath.tui.rows.netfilter import chain_rows, rule_rows
from podpath.tui.rows.node import fact_rows, menu_rows
from podpath.tui.rows.pod import (
    POD_COLUMNS,
    container_rows,
    interface_rows,
    namespace_columns,
    namespace_rows,
    nat_rows,
    neighbour_rows,
    pod_rows,
    route_rows,
)
from podpath.tui.rows.problems import GRADE_ROLES, problem_rows
from podpath.tui.rows.services import (
    endpoint_rows,
    service_fact_rows,
    service_id,
    service_rows,
)

WEB = "default/web-7d4b9c6f5d-x7k2p"


def texts(r: Row) -> list[str]:
    """The plain texts of a row."""
    return [c.text for c in r.cells]


def test_page_filters_case_insensitively() -> None:
    """A filter keeps rows whose any cell contains the needle, ignoring case."""
    rows = [row("a", "Alpha"), row("b", "beta"), row("c", "GAMMA")]
    assert [r.key for r in page(rows, "AL").rows] == ["a"]
    assert page(rows, "m").matched == 1


def test_page_caps_rows_and_counts_the_rest() -> None:
    """More rows than the limit are capped; `hidden` says how many were left out."""
    rows = [row(str(i), i) for i in range(1000)]
    shown = page(rows, "", limit=50)
    assert len(shown.rows) == 50 and shown.total == 1000 and shown.hidden == 950


def test_more_row_says_how_many_are_hidden() -> None:
    """The cap row names the hidden count and spans the columns."""
    r = more_row(12345, 3)
    assert r.key == MORE_KEY and "12,345 more" in r.cells[0].text and len(r.cells) == 3


def test_none_cell_is_a_dim_dash() -> None:
    """Missing values show as a dim dash, not 'None'."""
    assert cell(None).text == "-" and cell(None).role == "dim"


def test_home_names_the_neighbour_tables_fill_when_read(index: SnapshotIndex) -> None:
    """Home's facts give each neighbour table's counted entries against gc_thresh3; a
    snapshot that did not read them (older ones) shows no such row."""
    assert "neighbours" not in [texts(r)[0] for r in fact_rows(index, "iptables", "")]
    tables = (
        NeighbourTable(4, "arp_cache", 128, 512, 1024, entries=600),
        NeighbourTable(6, "ndisc_cache", 128, 512, 4096, entries=12),
    )
    snap = index.snapshot
    read = SnapshotIndex(replace(snap, node=replace(snap.node, neighbour_tables=tables)))
    facts = {texts(r)[0]: texts(r)[1] for r in fact_rows(read, "iptables", "")}
    # The fixture's node holds one PERMANENT ARP entry, which the kernel does not count.
    assert facts["neighbours"] == "ARP 599 of 1024, NDP 12 of 4096 (gc_thresh3)"


def test_pod_rows_resolve_host_veth_and_bridge(index: SnapshotIndex) -> None:
    """Each pod row shows the host-side veth (resolved via the peer) and the bridge."""
    by_key = {r.key: texts(r) for r in pod_rows(index)}
    web = dict(zip(POD_COLUMNS, by_key[WEB], strict=True))
    assert web["IP"] == "10.244.0.5"
    assert web["HOST IF"].startswith("veth") and web["BRIDGE"] == "cni0"


def test_host_network_pod_is_marked(index: SnapshotIndex) -> None:
    """A hostNetwork pod says so instead of a netns name."""
    by_key = {r.key: texts(r) for r in pod_rows(index)}
    proxy = by_key["kube-system/kube-proxy-8vhzt"]
    assert proxy[POD_COLUMNS.index("NETNS")] == "hostNetwork"


def test_containers_list_pause_first(index: SnapshotIndex) -> None:
    """The sandbox (pause) container comes first."""
    pod = index.pods_by_name[WEB]
    rows = container_rows(index, pod)
    assert texts(rows[0])[0] == "pause" and texts(rows[0])[1] == "sandbox"


def _cri_pod(index: SnapshotIndex, name: str = WEB) -> SnapshotIndex:
    """The fixture with a pod as containerd reports it: a restarted web, an exited sidecar."""
    snap = index.snapshot
    now_ns = int(snap.taken_at * 1e9)
    pod = index.pods_by_name[name]
    pause, web = sorted(pod.containers, key=lambda c: c.kind != "sandbox")
    pause = replace(pause, image=None, node_namespaces=("user", "cgroup", "time"))
    web = replace(
        web,
        state="running",
        attempt=2,
        restart_count=2,
        started_at=now_ns - 180 * 10**9,
        node_namespaces=("user", "cgroup", "time"),
    )
    sidecar = replace(
        web,
        name="sidecar",
        id="51dec4" * 10,
        state="exited",
        attempt=0,
        restart_count=0,
        exit_code=137,
        reason="OOMKilled",
        started_at=now_ns - 2 * 3600 * 10**9,
        finished_at=now_ns - 90 * 60 * 10**9,
        pids=(),
    )
    cri = replace(
        pod,
        containers=(pause, web, sidecar),
        sandbox_image="registry.k8s.io/pause:3.10",
        state="ready",
        attempt=0,
        created_at=now_ns - 3 * 86400 * 10**9,
    )
    return SnapshotIndex(replace(snap, pods=tuple(cri if p is pod else p for p in snap.pods)))


def test_containers_read_like_crictl_ps_a(index: SnapshotIndex) -> None:
    """State, attempt, restarts, exit code and reason, ages; the sandbox's state and pause image."""
    cri = _cri_pod(index)
    rows = {texts(r)[0]: texts(r) for r in container_rows(cri, cri.pods_by_name[WEB])}
    # CONTAINER KIND STATE ATTEMPT RESTARTS EXIT STARTED FINISHED PID IMAGE COMMAND
    pause, web, sidecar = rows["pause"], rows["web"], rows["sidecar"]
    assert pause[2:5] == ["ready", "0", "-"] and pause[6] == "3d ago"
    assert pause[9] == "registry.k8s.io/pause:3.10"
    assert web[2:8] == ["running", "2", "2", "-", "3m ago", "-"]
    assert sidecar[2:8] == ["exited", "0", "0", "137 OOMKilled", "2h ago", "1h ago"]
    cells = {c.text: c.role for r in container_rows(cri, cri.pods_by_name[WEB]) for c in r.cells}
    assert cells["137 OOMKilled"] == "error" and cells["running"] == "success"


def test_namespace_matrix_marks_node_wide_namespaces(index: SnapshotIndex) -> None:
    """user/cgroup/time every process has are `node`, not `shared` with the pod."""
    cri = _cri_pod(index)
    pod = cri.pods_by_name[WEB]
    matrix = {r.key: texts(r) for r in namespace_rows(cri, pod)}
    web = namespace_columns(pod).index("web")
    assert all(matrix[f"ns:{t}"][web].startswith("node ") for t in ("user", "cgroup", "time"))
    assert matrix["ns:net"][web].startswith("shared") and matrix["ns:mnt"][web].startswith("own")


def test_namespace_matrix_shows_shared_net_and_own_mnt(index: SnapshotIndex) -> None:
    """The app container shares net/ipc/uts with pause and has its own mnt and pid."""
    pod = index.pods_by_name[WEB]
    matrix = {r.key: texts(r) for r in namespace_rows(index, pod)}
    assert matrix["ns:net"][2].startswith("shared")
    assert matrix["ns:ipc"][2].startswith("shared")
    assert matrix["ns:mnt"][2].startswith("own")
    assert matrix["ns:pid"][2].startswith("own")


def test_interface_row_shows_eth0_peer_and_bridge(index: SnapshotIndex) -> None:
    """eth0@ifN <-> vethX@if2 -> cni0, as the article's ip output reads."""
    pod = index.pods_by_name[WEB]
    eth0 = next(texts(r) for r in interface_rows(index, pod) if r.key == "if:2")
    assert (
        eth0[0].startswith("eth0@if") and eth0[1].startswith("↔ veth") and eth0[1].endswith("@if2")
    )
    assert eth0[2] == "→ cni0"


def test_routes_include_the_nodes_route_to_the_pod(index: SnapshotIndex) -> None:
    """The node's cni0 route that reaches the pod is listed after the pod's own routes."""
    pod = index.pods_by_name[WEB]
    rows = [texts(r) for r in route_rows(index, pod)]
    assert any(r[0] == "pod" and r[3] == "0.0.0.0/0" for r in rows)
    assert any(r[0] == "node" and r[3] == "10.244.0.0/24" and r[5] == "cni0" for r in rows)


def test_neighbours_include_the_bridge_fdb_entry_for_the_pod_mac(index: SnapshotIndex) -> None:
    """The bridge FDB entry for the pod's MAC is found on its veth port."""
    pod = index.pods_by_name[WEB]
    eth0 = index.pod_interface(pod)
    assert eth0 is not None
    fdb = [texts(r) for r in neighbour_rows(index, pod) if r.key.startswith("fdb:")]
    assert fdb and fdb[0][3] == eth0.mac and fdb[0][4].startswith("veth")


def test_nat_rows_give_this_endpoints_probability(
    index: SnapshotIndex, parsed: ParsedSnapshot
) -> None:
    """The web pod is one of three endpoints of default/web: probability 1/3."""
    pod = index.pods_by_name[WEB]
    rows = [texts(r) for r in nat_rows(parsed.services(), pod)]
    web = next(r for r in rows if r[0] == "default/web")
    assert web[1] == "10.96.0.20:80/tcp" and abs(float(web[3]) - 1 / 3) < 1e-3
    assert web[5].startswith("-A KUBE-SEP-") and "DNAT" in web[5]


def _entry(dst: str, reply_src: str) -> ConntrackEntry:
    return ConntrackEntry(
        4,
        "tcp",
        6,
        "ESTABLISHED",
        100,
        ConntrackTuple("10.244.0.8", dst, 5000, 80),
        ConntrackTuple(reply_src, "10.244.0.8", 80, 5000),
    )


def _web(*endpoint_ips: str) -> Service:
    endpoints = tuple(Endpoint(ip, 80, 1.0, "KUBE-SEP-X", "") for ip in endpoint_ips)
    return Service("default", "web", "http", "TCP", "10.96.0.20", 80, endpoints=endpoints)


def test_conntrack_dnat_is_explained() -> None:
    """A DNAT'd entry to a live endpoint says which VIP went to which endpoint."""
    rows = conntrack_rows((_entry("10.96.0.20", "10.244.0.5"),), (_web("10.244.0.5"),))
    assert texts(rows[0])[4] == "DNAT 10.96.0.20 → 10.244.0.5"


def test_conntrack_to_a_removed_endpoint_is_stale() -> None:
    """A DNAT to an address no longer among the Service's endpoints is flagged stale."""
    rows = conntrack_rows((_entry("10.96.0.20", "10.244.0.9"),), (_web("10.244.0.5"),))
    assert rows[0].cells[4].role == "error" and "stale" in rows[0].cells[4].text


def test_conntrack_rows_filter_by_pod_ips(parsed: ParsedSnapshot) -> None:
    """Only entries involving the pod's IPs are kept when ips are given."""
    rows = conntrack_rows(parsed.conntrack(), parsed.services(), frozenset({"10.244.0.7"}))
    assert rows and all("10.244.0.7" in " ".join(texts(r)) for r in rows)


def test_service_rows_resolve_local_remote_and_node_endpoints(
    index: SnapshotIndex, parsed: ParsedSnapshot
) -> None:
    """Endpoints resolve to a local pod, a remote node, or this node (apiserver)."""
    svcs = {service_id(s): s for s in parsed.services()}
    web = next(s for k, s in svcs.items() if k.startswith("default/web:"))
    places = [texts(r)[3] for r in endpoint_rows(index, web)]
    assert (
        places.count("remote node") == 1 and sum(p.startswith("default/web-") for p in places) == 2
    )
    api = next(s for k, s in svcs.items() if k.startswith("default/kubernetes:"))
    assert texts(endpoint_rows(index, api)[0])[3] == "this node (host network)"


def test_service_without_endpoints_is_a_warning(
    index: SnapshotIndex, parsed: ParsedSnapshot
) -> None:
    """A Service with no endpoints says so, as a warning."""
    prom = next(
        r for r in service_rows(index, parsed.services()) if r.key.startswith("monitoring/")
    )
    assert prom.cells[6].text == "0" and prom.cells[7].role == "warning"
    assert prom.cells[7].text == "no endpoints: REJECT"  # kube-proxy's verdict for it


def test_service_list_reads_like_kubectl_get_svc_plus_kube_proxy(
    index: SnapshotIndex, parsed: ParsedSnapshot
) -> None:
    """TYPE from the rules (web has a NodePort), MODE, and no affinity or policy by default."""
    rows = {r.key: texts(r) for r in service_rows(index, parsed.services())}
    web = next(v for k, v in rows.items() if k.startswith("default/web:"))
    dns = next(v for k, v in rows.items() if k.startswith("kube-system/kube-dns:dns/"))
    assert web[1:6] == ["NodePort", "10.96.0.20:80/tcp", "iptables", "-", "-"]
    assert dns[1] == "ClusterIP"


def test_service_facts_name_affinity_pins_policies_and_no_endpoint_verdict(
    index: SnapshotIndex, parsed: ParsedSnapshot
) -> None:
    """ClientIP affinity with the client pinned now (xt_recent), Local policy, REJECT."""
    web = next(s for s in parsed.services() if s.name == "web")
    sticky = replace(web, affinity_timeout=10800, external_policy="Local")
    first = web.endpoints[0]
    pinned = RecentList(first.sep_chain, (RecentEntry("10.244.0.8", 1, 12.0),))
    with_pin = SnapshotIndex(replace(index.snapshot, xt_recent=(pinned,)))
    facts = {texts(r)[0]: texts(r)[1] for r in service_fact_rows(with_pin, sticky)}
    assert facts["type"] == "NodePort" and facts["mode"] == "iptables"
    assert facts["reached at"] == "ClusterIP 10.96.0.20:80/tcp, NodePort 30080"
    assert facts["affinity"] == "ClientIP 10800s, 1 pinned"
    assert facts["pinned"] == (
        f"10.244.0.8 → {first.ip}:{first.port}  (12s ago, xt_recent {first.sep_chain})"
    )
    assert facts["traffic policy"] == "internal Cluster, external Local"
    list_row = texts(service_rows(with_pin, [sticky])[0])
    assert list_row[4:6] == ["ClientIP 10800s, 1 pinned", "ext:Local"]
    prom = next(s for s in parsed.services() if s.namespace == "monitoring")
    facts = {texts(r)[0]: texts(r)[1] for r in service_fact_rows(index, prom)}
    assert facts["no endpoints"] == "REJECT"


def test_ipvs_endpoints_show_weights_and_an_unmodelled_scheduler(
    index: SnapshotIndex, parsed: ParsedSnapshot
) -> None:
    """lc chooses by live connection counts: no share is claimed; weights are shown."""
    web = next(s for s in parsed.services() if s.name == "web")
    ipvs = replace(
        web,
        backend="ipvs",
        scheduler="lc",
        endpoints=tuple(replace(e, weight=1) for e in web.endpoints),
    )
    rows = [texts(r) for r in endpoint_rows(index, ipvs)]
    assert all(r[1] == "not modelled (lc)" and r[2] == "1" for r in rows)
    facts = {texts(r)[0]: texts(r)[1] for r in service_fact_rows(index, ipvs)}
    assert "least connections" in facts["mode"] and "live state" in facts["mode"]
    rr = replace(ipvs, scheduler="rr")
    assert all(texts(r)[1] == "0.3333" for r in endpoint_rows(index, rr))


def test_chain_rows_put_builtin_chains_first(parsed: ParsedSnapshot) -> None:
    """Built-in chains (with a policy) come before user chains."""
    rs = parsed.rule_dumps()[0]
    rows = chain_rows(rs, "nat")
    names = [texts(r)[0] for r in rows]
    assert names[:4] == ["INPUT", "OUTPUT", "POSTROUTING", "PREROUTING"]
    assert "KUBE-SERVICES" in names


def test_rule_rows_show_dnat_target(parsed: ParsedSnapshot) -> None:
    """A KUBE-SEP chain's rule shows its DNAT with --to-destination."""
    rs = parsed.rule_dumps()[0]
    sep = next(c.name for c in rs.chains("nat") if c.name.startswith("KUBE-SEP-"))
    rows = [texts(r) for r in rule_rows(rs.rules("nat", sep))]
    # #, PKTS, BYTES, TARGET, OWNER, MATCHES, COMMENT
    dnat = next(r for r in rows if r[3].startswith("DNAT --to-destination "))
    assert dnat[4].startswith("Service default/") and dnat[4].count(" ") == 1


def test_rule_rows_name_who_made_each_rule(parsed: ParsedSnapshot) -> None:
    """A KUBE-SEP chain's rules are the Service's, named as a trace hop names them."""
    rs = parsed.rule_dumps()[0]
    sep = next(c.name for c in rs.chains("nat") if c.name.startswith("KUBE-SEP-"))
    owners = {texts(r)[4] for r in rule_rows(rs.rules("nat", sep))}
    assert len(owners) == 1 and owners.pop().startswith("Service ")


def test_links_tree_puts_pod_veths_under_the_bridge(index: SnapshotIndex) -> None:
    """cni0 is followed by its ports, each naming its pod."""
    rows = [texts(r) for r in link_rows(index)]
    names = [r[0] for r in rows]
    i = names.index("cni0")
    assert names[i + 1].startswith(("├─ veth", "└─ veth"))
    assert any("pod default/web-" in r[-1] for r in rows)


def test_problem_rows_keep_the_doctors_order(index: SnapshotIndex) -> None:
    """One row per finding, in the doctor's order, each with its grade, subject, cause, fix."""
    from podpath.doctor import diagnose

    found = diagnose([index]).findings
    rows = problem_rows(found)
    assert [texts(r) for r in rows] == [[f.grade, f.subject, f.cause, f.fix] for f in found]
    assert [r.cells[0].role for r in rows] == [GRADE_ROLES[f.grade] for f in found]


def test_menu_rows_key_each_view_by_its_jump_name() -> None:
    """Home's menu rows are keyed go:NAME and show the label, the count and `:NAME`."""
    rows = menu_rows([("pods", "Pods", "5"), ("trace", "Trace a packet", "")])
    assert [r.key for r in rows] == ["go:pods", "go:trace"]
    assert texts(rows[0]) == ["Pods", "5", ":pods"]
