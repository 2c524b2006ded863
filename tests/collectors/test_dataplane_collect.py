"""netconf sysctls, tc qdiscs and filters, eBPF programs, XDP and counters, against the real tools.

Everything lives in a private `unshare --net --mount --pid` child where
`dataplane_driver.py` builds a Calico-style and a Cilium-style pod (a real eBPF
classifier compiled by llc), runs the scanner, and prints the scan beside `ip -j
netconf`, `tc -j qdisc`, `tc -j filter` and `ip -j -s -s -d link`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from podpath.collectors.netlink.netconf_decode import decode_netconf
from podpath.collectors.netlink.tc_decode import decode_filters, hook_of, protocol_str
from podpath.collectors.netlink.wire import MalformedMessage, message
from podpath.lab.bpf import llc

DRIVER = Path(__file__).with_name("dataplane_driver.py")
RP_FILTER = {"off": 0, "strict": 1, "loose": 2}

pytestmark = pytest.mark.lab


def _require() -> None:
    missing = [t for t in ("unshare", "ip", "tc", "busybox") if shutil.which(t) is None]
    if llc() is None:
        missing.append("llc")
    if os.geteuid() != 0 or missing:
        reason = f"needs root and {missing or 'the tools'}"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)


@pytest.fixture(scope="module")
def run() -> Any:
    """One driver run: scan, tools' views, inodes by name."""
    _require()
    unshare = "unshare --net --mount --pid --fork --mount-proc --propagation private --".split()
    argv = [*unshare, sys.executable, str(DRIVER)]
    res = subprocess.run(argv, capture_output=True, text=True, timeout=240, check=False)
    assert res.returncode == 0, res.stderr[-3000:]
    return json.loads(res.stdout)


def _pairs(run: Any) -> list[tuple[str, Any, Any]]:
    by_inode = {ns["inode"]: ns for ns in run["scan"]}
    return [(n, run["tools"][n], by_inode[ino]) for n, ino in run["inodes"].items()]


def test_scan_has_no_gaps(run: Any) -> None:
    """All three namespaces are read, eBPF program names included, with no gap."""
    assert run["gaps"] == []
    assert len(run["scan"]) == 3


def test_netconf_equals_ip_netconf(run: Any) -> None:
    """forwarding, rp_filter and proxy_arp/proxy_ndp per interface equal `ip -j netconf show`."""
    for _name, view, ns in _pairs(run):
        index = {lk["ifname"]: lk["ifindex"] for lk in view["link"]}
        index.update({"all": -1, "default": -2})
        want = sorted(
            (
                4 if c["family"] == "inet" else 6,
                index[c["interface"]],
                int(c["forwarding"]),
                RP_FILTER.get(c.get("rp_filter", ""), None),
                int(c["proxy_neigh"]),
            )
            for c in view["netconf"]
        )
        got = sorted(
            (c["family"], c["ifindex"], c["forwarding"], c["rp_filter"], c["proxy_neigh"])
            for c in ns["netconf"]
        )
        assert got == want


def test_calico_host_veth_sysctls(run: Any) -> None:
    """The Calico-style host veth reads proxy_arp 1 and rp_filter 1; all/rp_filter is 2."""
    (_n, view, ns) = next(p for p in _pairs(run) if p[0] == "root")
    cali = next(lk["ifindex"] for lk in view["link"] if lk["ifname"] == "cali0123456789a")
    conf = {(c["family"], c["ifindex"]): c for c in ns["netconf"]}
    assert (conf[(4, cali)]["proxy_neigh"], conf[(4, cali)]["rp_filter"]) == (1, 1)
    assert (conf[(4, -1)]["rp_filter"], conf[(4, -1)]["forwarding"]) == (2, 1)


SYSCTL_FIELDS = ("accept_local", "route_localnet", "src_valid_mark", "force_forwarding")


def test_interface_sysctls_equal_sysctl(run: Any) -> None:
    """accept_local, route_localnet, src_valid_mark (and force_forwarding where the
    kernel has it) per interface and namespace equal `sysctl -a` run in that namespace;
    the driver set some of them apart, in the root and in a pod."""
    for name, view, ns in _pairs(run):
        index = {lk["ifname"]: lk["ifindex"] for lk in view["link"]}
        index.update({"all": -1, "default": -2})
        want = set()
        for line in view["sysctls"].splitlines():
            key, _, value = line.partition(" = ")
            _net, family, _conf, device, field = key.split(".")
            if device in index:
                want.add((4 if family == "ipv4" else 6, index[device], field, int(value)))
        got = {
            (c["family"], c["ifindex"], field, c[field])
            for c in ns["netconf"]
            for field in SYSCTL_FIELDS
            if c[field] is not None
        }
        assert got == want, name
        assert len({(f, i) for f, i, _, _ in got if f == 4}) == len(index), name
    root = next(ns for n, _v, ns in _pairs(run) if n == "root")
    calico = next(ns for n, _v, ns in _pairs(run) if n == "calico")
    assert {(c["ifindex"], c["src_valid_mark"]) for c in root["netconf"] if c["family"] == 4} >= {
        (-1, 1)
    }
    assert {c["route_localnet"] for c in calico["netconf"] if c["family"] == 4} == {0, 1}


def test_local_port_range_equals_sysctl_in_each_namespace(run: Any) -> None:
    """ip_local_port_range, where a client's source port comes from, equals `sysctl -n`
    in each namespace: the driver gave the Calico-style pod a range of its own."""
    for name, view, ns in _pairs(run):
        assert ns["local_ports"] == [int(w) for w in view["ports"].split()], name
    by_name = {name: ns["local_ports"] for name, _v, ns in _pairs(run)}
    assert by_name["calico"] == [40000, 40100] and by_name["root"] != [40000, 40100]


def test_qdiscs_equal_tc_qdisc(run: Any) -> None:
    """Every qdisc (kind, handle, device, root or ingress) equals `tc -j qdisc show`."""
    for _name, view, ns in _pairs(run):
        index = {lk["ifname"]: lk["ifindex"] for lk in view["link"]}
        want = sorted(
            (index[q["dev"]], q["kind"], q["handle"], "root" if q.get("root") else "ingress")
            for q in view["qdisc"]
        )
        got = sorted((q["ifindex"], q["kind"], q["handle"], q["parent"]) for q in ns["qdiscs"])
        assert got == want


def test_filters_equal_tc_filter(run: Any) -> None:
    """Every filter (hook, kind, pref, protocol, handle, direct-action, program) equals `tc -j filter`."""
    for _name, view, ns in _pairs(run):
        index = {lk["ifname"]: lk["ifindex"] for lk in view["link"]}
        want = []
        for key, filters in view["filters"].items():
            dev, hook = key.split()
            for f in filters:
                if "options" not in f:
                    continue  # the (pref, protocol) head line
                opts = f["options"]
                prog = opts.get("prog")
                want.append(
                    (
                        index[dev],
                        hook,
                        f["kind"],
                        f["pref"],
                        f["protocol"],
                        opts.get("handle"),
                        bool(opts.get("direct-action")),
                        (prog["id"], prog["name"], prog["tag"], opts.get("bpf_name"))
                        if prog
                        else None,
                    )
                )
        got = [
            (
                f["ifindex"],
                f["hook"],
                f["kind"],
                f["pref"],
                f["protocol"],
                f["handle"],
                f["direct_action"],
                (
                    f["program"]["id"],
                    f["program"]["name"],
                    f["program"]["tag"],
                    f["program"]["section"],
                )
                if f["program"]
                else None,
            )
            for f in ns["tc_filters"]
        ]
        assert sorted(got, key=str) == sorted(want, key=str)


def test_cilium_style_classifier_is_named(run: Any) -> None:
    """The lxc veth's ingress classifier is the compiled program: sched_cls cil_from_contai."""
    (_n, _view, ns) = next(p for p in _pairs(run) if p[0] == "root")
    (bpf,) = [f for f in ns["tc_filters"] if f["program"] is not None]
    assert bpf["hook"] == "ingress" and bpf["direct_action"]
    assert bpf["program"]["type"] == "sched_cls"
    # BPF_OBJ_NAME_LEN is 16: the kernel keeps 15 characters of the function name.
    assert bpf["program"]["name"] == "cil_from_contai"
    assert bpf["program"]["section"] == "bpf_lxc.o:[from-container]"


def test_xdp_equals_ip_link(run: Any) -> None:
    """The XDP attachment (mode generic, program id and name) equals `ip -j -d link`."""
    (_n, view, ns) = next(p for p in _pairs(run) if p[0] == "calico")
    (tool,) = [lk for lk in view["link"] if "xdp" in lk]
    (link,) = [lk for lk in ns["links"] if lk["xdp"] is not None]
    assert link["ifindex"] == tool["ifindex"]
    assert link["xdp"]["mode"] == "generic" and tool["xdp"]["mode"] == 2
    assert (link["xdp"]["program"]["id"], link["xdp"]["program"]["name"]) == (
        tool["xdp"]["prog"]["id"],
        tool["xdp"]["prog"]["name"],
    )


def test_counters_equal_ip_s_link(run: Any) -> None:
    """rx/tx packets, bytes, errors and drops lie between `ip -j -s -s link` just before and
    just after the scan (stray IPv6 packets may move them in between), equal when nothing moved."""
    moved = 0
    for name, view, ns in _pairs(run):
        after = {lk["ifindex"]: lk["stats64"] for lk in view["link"]}
        before = {lk["ifindex"]: lk["stats64"] for lk in run["links_before"][name]}
        for link in ns["links"]:
            s, t0, t1 = link["stats"], before[link["ifindex"]], after[link["ifindex"]]
            for direction in ("rx", "tx"):
                for key in ("packets", "bytes", "errors", "dropped"):
                    got = s[f"{direction}_{key}"]
                    low, high = t0[direction][key], t1[direction][key]
                    assert low <= got <= high, (name, link["name"], direction, key, low, got, high)
            moved += s["rx_packets"]
    assert moved >= 6  # three pings and their replies


def test_decoders_refuse_malformed_and_skip_foreign_messages() -> None:
    """A malformed dump raises (the scan makes it a gap); messages of other types are skipped."""
    with pytest.raises(MalformedMessage):
        decode_filters([b"\xff" * 40])
    with pytest.raises(MalformedMessage):
        decode_netconf([b"\x00" * 7])
    foreign = message(24, 0, 1, bytes(12))  # an RTM_NEWROUTE among them
    assert decode_filters([foreign]) == [] and decode_netconf([foreign]) == []


def test_hook_and_protocol_names() -> None:
    """clsact parents are ingress/egress; ethertypes are named as tc names them."""
    assert (hook_of(0xFFFFFFF2), hook_of(0xFFFFFFF3), hook_of(0x10000)) == (
        "ingress",
        "egress",
        "1:",
    )
    assert (protocol_str(0x0003), protocol_str(0x86DD), protocol_str(0x1234)) == (
        "all",
        "ipv6",
        "0x1234",
    )
