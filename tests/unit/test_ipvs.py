"""kube-proxy's IPVS mode, modelled from what a node shows: real /proc/net/ip_vs and
`ipvsadm -Ln` dumps, ipsets (fixtures and the real `ipset`), and traces through it."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from trace_factory import NodeSpec, PodSpec, build_node, ipvs_mode

from podpath.analysis.index import SnapshotIndex
from podpath.netfilter.ipset import parse_ipsets
from podpath.netfilter.iptables_save import parse_ruleset
from podpath.netfilter.ipvs import parse_ipvs, parse_ipvs_conn
from podpath.netfilter.kube_proxy import detect_mode
from podpath.snapshot.model import Snapshot
from podpath.trace.engine import trace
from podpath.trace.model import Branch
from podpath.trace.probe import Probe

IPVS = Path(__file__).resolve().parents[1] / "fixtures" / "realworld" / "ipvs"
IPTABLES = Path(__file__).resolve().parents[1] / "fixtures" / "realworld" / "iptables"
LISTINGS = sorted(p for p in IPVS.iterdir() if "ipset" not in p.name)


def _read(name: str) -> str:
    return (IPVS / name).read_text()


@pytest.mark.parametrize("path", LISTINGS, ids=[p.name for p in LISTINGS])
def test_every_ipvs_listing_parses(path: Path) -> None:
    """Every real listing gives virtual services with addresses, schedulers and servers."""
    services = parse_ipvs(path.read_text())
    assert services
    for svc in services:
        assert svc.scheduler and (svc.address or svc.fwmark is not None)
        assert all(s.address and s.forward for s in svc.servers)


def test_proc_listing_decodes_hex_ipv6_and_fwmark() -> None:
    """/proc/net/ip_vs prints hex: decoded to dotted addresses, ports, IPv6 and a fwmark."""
    services = parse_ipvs(_read("procfs-proc-net-ip_vs-hex-tunnel-route-fwm.txt"))
    first = services[0]
    assert (first.protocol, first.address, first.port, first.scheduler) == (
        "TCP",
        "192.168.0.22",
        3306,
        "wlc",
    )
    assert [(s.address, s.forward, s.weight, s.active) for s in first.servers][0] == (
        "192.168.82.22",
        "Tunnel",
        100,
        248,
    )
    six = next(s for s in services if s.address and ":" in s.address)
    assert (six.address, six.port, six.scheduler) == ("2620::1", 80, "sh")
    assert {s.forward for s in six.servers} == {"Route"}
    fwm = next(s for s in services if s.protocol == "FWM")
    assert (fwm.fwmark, fwm.address, len(fwm.servers)) == (0x10001000, None, 2)


def test_ipvsadm_quirks_persistence_mask_and_empty_services() -> None:
    """ipvsadm -Ln forms: persistence, `mask`, trailing spaces, a typo'd header, no servers."""
    (api, dns_tcp, dns_udp) = parse_ipvs(_read("k8s-ipvs-readme-ipvsadm-ln.txt"))
    assert (api.address, api.port, api.persistent, api.key) == (
        "10.0.0.1",
        443,
        10800,
        "TCP 10.0.0.1:443",
    )
    assert (dns_udp.protocol, dns_udp.persistent) == ("UDP", None)
    masked = parse_ipvs(_read("kube-router-toolbox-ipvsadm-persistent-mask.txt"))[0]
    assert (masked.persistent, masked.netmask) == (10800, "0.0.0.0")
    assert parse_ipvs(_read("kep265-ipvsadm-ln-persistent-no-dests.txt"))[0].servers == ()
    assert len(parse_ipvs(_read("kep265-ipvsadm-ln-port-remap-typo-header.txt"))[0].servers) == 2
    assert len(parse_ipvs(_read("kep265-ipvsadm-ln-lb-ingress-trailing-ws.txt"))) == 3


def test_ip_vs_conn_lines_in_the_kernels_format() -> None:
    """ip_vs_conn_seq_show's `%-3s %08X %04X %08X %04X %08X %04X %-11s %7u` lines, templates too."""
    text = (
        "Pro FromIP   FPrt ToIP     TPrt DestIP   DPrt State       Expires PEName PEData\n"
        "TCP 0AF40005 D431 0A000001 01BB 0AF40107 01BB ESTABLISHED     899\n"
        "IP  0AF40005 0000 0A000001 0000 0AF40107 01BB NONE          10790\n"
    )
    conn, template = parse_ipvs_conn(text)
    assert (conn.client, conn.client_port, conn.virtual, conn.server, conn.server_port) == (
        "10.244.0.5",
        54321,
        "10.0.0.1",
        "10.244.1.7",
        443,
    )
    assert not conn.template and template.template and template.expires == 10790


def test_ipset_list_fixtures_parse() -> None:
    """`ipset list` text: type and members (an empty bitmap:port set has none)."""
    sets = parse_ipsets(_read("k8s-ipset-list-hash-ip-port.txt"))
    assert sets["foobar"].type == "hash:ip,port"
    assert sets["foobar"].members == ("192.168.1.2,tcp:8080", "192.168.1.1,udp:53")
    empty = parse_ipsets(_read("k8s-ipset-list-bitmap-port-empty.txt"))["KUBE-NODE-PORT"]
    assert (empty.type, empty.members) == ("bitmap:port", ())


def _real_ipset_save(script: str) -> str:
    if os.geteuid() != 0 or shutil.which("ipset") is None or shutil.which("unshare") is None:
        pytest.skip("needs root, ipset and unshare")
    done = subprocess.run(
        ["unshare", "--net", "sh", "-c", script + "\nipset save"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_real_ipset_save_parses_and_matches_like_the_set_match() -> None:
    """kube-proxy's sets made with the real ipset: `ipset save` reads back, members match."""
    text = _real_ipset_save(
        "ipset create KUBE-CLUSTER-IP hash:ip,port comment\n"
        'ipset add KUBE-CLUSTER-IP 10.96.0.10,udp:53 comment "Kubernetes service cluster ip + port"\n'
        "ipset add KUBE-CLUSTER-IP 10.96.0.1,tcp:443\n"
        "ipset create KUBE-LOOP-BACK hash:ip,port,ip\n"
        "ipset add KUBE-LOOP-BACK 10.244.0.5,tcp:80,10.244.0.5\n"
        "ipset create KUBE-NODE-PORT-TCP bitmap:port range 0-65535\n"
        "ipset add KUBE-NODE-PORT-TCP 30080\n"
    )
    from podpath.netfilter.ipset import member_matches

    sets = parse_ipsets(text)
    assert set(sets["KUBE-CLUSTER-IP"].members) == {"10.96.0.10,udp:53", "10.96.0.1,tcp:443"}
    assert member_matches(sets["KUBE-CLUSTER-IP"], ("10.96.0.1", "tcp:443")) is True
    assert member_matches(sets["KUBE-CLUSTER-IP"], ("10.96.0.1", "udp:443")) is False
    loop = sets["KUBE-LOOP-BACK"]
    assert member_matches(loop, ("10.244.0.5", "tcp:80", "10.244.0.5")) is True
    assert member_matches(loop, ("10.244.0.5", "tcp:80", "10.244.0.6")) is False
    assert sets["KUBE-NODE-PORT-TCP"].members == ("30080",)


# --- traces through IPVS -------------------------------------------------------------------

VIPS = ("10.0.0.1", "10.0.0.10")


def _ipvs_node(listing: str, *, ipvs: bool = True, conn: str | None = None) -> Snapshot:
    """A node in IPVS mode: the listing's VIPs on kube-ipvs0 (local routes), iptables in IPVS form."""
    rules = (IPTABLES / "k8s-ipvs-mode-iptables-t-nat-nL-loadbalancer.txt").read_text()
    snap = build_node(
        NodeSpec(pod_cidr="10.244.0.0/24", pods=[PodSpec("a", "10.244.0.5")], iptables=rules)
    )
    vips = {s.address for s in parse_ipvs(listing) if s.address} or set(VIPS)
    return ipvs_mode(snap, listing, sorted(vips), ipvs=ipvs, conn=conn)


def _dnat(branch: Branch) -> list[str]:
    return [str(h.data["to"]) for h in branch.hops if h.kind == "nat" and h.data["type"] == "DNAT"]


def test_cluster_ip_goes_to_its_real_server_never_to_the_node() -> None:
    """A pod to an IPVS ClusterIP: DNAT to the real server at LOCAL_IN, then routed out."""
    node = _ipvs_node(_read("k8s-ipvs-readme-ipvsadm-ln.txt"))
    (branch,) = trace([node], Probe("default/a", "10.0.0.10:53")).branches
    assert _dnat(branch) == ["172.17.0.2:53"]
    assert branch.verdict != "delivered" and branch.packet.dst == "172.17.0.2"
    ipvs_hop = next(h for h in branch.hops if h.data.get("backend") == "ipvs")
    assert ipvs_hop.data["scheduler"] == "rr" and ipvs_hop.data["hook"] == "INPUT"


def test_round_robin_shares_are_even_and_weighted_ones_follow_weights() -> None:
    """rr: 1/n for each server with a weight; wrr: in proportion to the weights."""
    listing = (
        "IP Virtual Server version 1.2.1 (size=4096)\n"
        "Prot LocalAddress:Port Scheduler Flags\n"
        "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n"
        "TCP  10.0.0.1:443 SCHED\n"
        "  -> 10.244.1.2:6443             Masq    3      0          0\n"
        "  -> 10.244.1.3:6443             Masq    1      0          0\n"
        "  -> 10.244.1.4:6443             Masq    0      0          0\n"
    )
    for sched, want in (("rr", [0.5, 0.5]), ("wrr", [0.75, 0.25])):
        node = _ipvs_node(listing.replace("SCHED", sched))
        result = trace([node], Probe("default/a", "10.0.0.1:443"))
        got = sorted((b.packet.dst, round(b.probability, 6)) for b in result.branches)
        assert got == list(zip(["10.244.1.2", "10.244.1.3"], want, strict=True)), sched
        assert all(not b.uncertain for b in result.branches)


def test_least_connection_choice_is_named_unknowable() -> None:
    """wlc picks by live connection counts: every server is a branch that says so, and why."""
    node = _ipvs_node(_read("procfs-proc-net-ip_vs-hex-tunnel-route-fwm.txt"))
    result = trace([node], Probe("default/a", "192.168.0.55:3306"))
    assert len(result.branches) == 1  # its other server has weight 0: never chosen
    result = trace([node], Probe("default/a", "192.168.0.22:3306"))
    assert len(result.branches) == 3
    for b in result.branches:
        assert b.verdict == "uncertain"
        assert any("wlc" in u and "cannot know" in u for u in b.uncertain), b.uncertain
        # These real servers are reached by IP-in-IP tunnelling, which is not NAT.
        assert any("Tunnel" in u for u in b.uncertain)


def test_virtual_service_without_servers_rejects() -> None:
    """A virtual service with no real server answers ICMP port unreachable."""
    node = _ipvs_node(_read("kep265-ipvsadm-ln-persistent-no-dests.txt"))
    (branch,) = trace([node], Probe("default/a", "10.102.128.4:3080")).branches
    assert branch.verdict == "dropped" and "no real server" in branch.reason


def test_persistence_template_pins_the_client() -> None:
    """A persistent service with a template connection for this client follows the pin."""
    conn = (
        "Pro FromIP   FPrt ToIP     TPrt DestIP   DPrt State       Expires PEName PEData\n"
        "IP  0AF40005 0000 0A000001 0000 C0A80001 192B NONE          10700\n"
    )
    node = _ipvs_node(_read("k8s-ipvs-readme-ipvsadm-ln.txt"), conn=conn)
    (branch,) = trace([node], Probe("default/a", "10.0.0.1:443")).branches
    assert _dnat(branch) == ["192.168.0.1:6443"]
    assert any("pinned" in d for h in branch.hops for d in h.details)


def test_ipvs_mode_without_ipvs_state_is_uncertain_not_delivered() -> None:
    """A ClusterIP on kube-ipvs0 with no /proc/net/ip_vs read: uncertain, never 'delivered to node'."""
    node = _ipvs_node(_read("k8s-ipvs-readme-ipvsadm-ln.txt"), ipvs=False)
    (branch,) = trace([node], Probe("default/a", "10.0.0.10:53")).branches
    assert branch.verdict == "uncertain" and "IPVS" in branch.reason, branch.reason


def test_mode_and_services_say_ipvs() -> None:
    """detect_mode says ipvs from the kernel's own evidence; each virtual service is a Service."""
    node = SnapshotIndex(_ipvs_node(_read("k8s-ipvs-readme-ipvsadm-ln.txt")))
    assert node.kube_proxy_mode.mode == "ipvs"
    assert any("kube-ipvs0" in e for e in node.kube_proxy_mode.evidence)
    ipvs = [s for s in node.services if s.backend == "ipvs"]
    api = next(s for s in ipvs if s.port == 443)
    assert (api.cluster_ip, api.scheduler, api.affinity_timeout) == ("10.0.0.1", "rr", 10800)
    assert [(e.ip, e.port, e.probability, e.weight) for e in api.endpoints] == [
        ("192.168.0.1", 6443, 1.0, 1)
    ]
    assert detect_mode({}, ipvs_services=3).mode == "ipvs"
    empty = parse_ruleset("*nat\n:PREROUTING ACCEPT [0:0]\nCOMMIT\n")
    assert detect_mode({"iptables-nft": empty}).mode is None


def test_service_names_in_ipvs_mode_get_one_clear_sentence() -> None:
    """IPVS names no Service: `--to ns/name` says so and points at the ClusterIP."""
    from podpath.trace.probe import ProbeError

    node = _ipvs_node(_read("k8s-ipvs-readme-ipvsadm-ln.txt"))
    with pytest.raises(ProbeError, match="IPVS mode, whose rules name no Service"):
        trace([node], Probe("default/a", "default/kubernetes:https"))


def test_ipvs_hop_names_its_backend_once_as_other_netfilter_hops() -> None:
    """`netfilter  ipvs TCP 10.0.0.10:53 rr: -> ...` (not `ipvs ipvs`), then `nat  DNAT a -> b`."""
    from podpath.trace.render import render_text

    node = _ipvs_node(_read("k8s-ipvs-readme-ipvsadm-ln.txt"))
    lines = render_text(trace([node], Probe("default/a", "10.0.0.10:53"))).splitlines()
    hop = next(line.strip() for line in lines if line.strip().startswith("netfilter  ipvs"))
    assert hop.startswith("netfilter  ipvs TCP 10.0.0.10:53 rr: -> 172.17.0.2:53"), hop
    assert not any("ipvs ipvs" in line for line in lines)
    assert "nat        DNAT 10.0.0.10:53 -> 172.17.0.2:53" in [line.strip() for line in lines]
