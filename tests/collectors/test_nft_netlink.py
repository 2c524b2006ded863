"""Native nft tables read over netlink: exactly what `nft -j list table` prints, or nft.

Each ruleset is loaded with `nft -f` into a throw-away network namespace; there the
netlink reader (nftables.listing.list_table) and nft itself list every table, and the two
documents must be equal, or the reader must refuse the table with a reason (the
collector then asks nft). A document that differs is a wrong picture: the one outcome
these tests forbid.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
from test_netfilter_collect import in_netns, needs_lab

from podpath.lab.records import ServiceRecord

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "realworld" / "nftables"
BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"

# In the child: list every table both ways; print {"family name": outcome}.
_COMPARE = """
from podpath.collectors.nftables.listing import list_table
def body(text):
    return [x for x in json.loads(text)["nftables"] if "metainfo" not in x]
out = {}
for t in json.loads(sh("nft", "-j", "list", "tables"))["nftables"]:
    if "table" not in t:
        continue
    fam, name = t["table"]["family"], t["table"]["name"]
    got = list_table(fam, name)
    want = body(sh("nft", "-j", "list", "table", fam, name))
    if got.json_text is None:
        out[f"{fam} {name}"] = "unsupported: " + got.reason
    elif body(got.json_text) == want:
        out[f"{fam} {name}"] = f"equal, {got.rules} rules"
    else:
        out[f"{fam} {name}"] = "DIFFERENT"
print(json.dumps(out))
"""

# Creating iptables-nft's base chains the way iptables does (the calico issue's
# ruleset adds its chains and rules to them).
_IPTABLES_BASE = """
for table, chains in (("filter", ("INPUT", "FORWARD", "OUTPUT")),
                      ("nat", ("PREROUTING", "INPUT", "OUTPUT", "POSTROUTING")),
                      ("mangle", ("PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"))):
    for chain in chains:
        sh("iptables-nft", "-t", table, "-P", chain, "ACCEPT")
"""


def _compare(ruleset: str, before: str = "") -> dict[str, str]:
    needs_lab()
    # Through a file: a large ruleset does not fit on the child's command line.
    with tempfile.NamedTemporaryFile("w", prefix="podpath-nft-", suffix=".nft") as f:
        f.write(ruleset)
        f.flush()
        body = before + f"sh('nft', '-f', {f.name!r})\n" + _COMPARE
        result: dict[str, str] = in_netns(body, timeout=240)
    return result


def _fixture(name: str) -> str:
    return (FIXTURES / name).read_text()


def _declarations_first(commands: str) -> str:
    """`nft -f` commands with tables, sets, maps and chains before the rules using them
    (kube-proxy's test dump lists each chain's rules under the chain's own `add`)."""
    lines = commands.splitlines()
    rank = [
        (
            0
            if ln.startswith("add table")
            else 1
            if ln.startswith(("add set", "add map", "add chain"))
            else 2
        )
        for ln in lines
    ]
    return (
        "\n".join(ln for _, ln in sorted(zip(rank, lines, strict=True), key=lambda p: p[0])) + "\n"
    )


def test_calico_table_is_read_exactly() -> None:
    """Felix's `table ip calico`: named sets, marks, verdicts, comments."""
    assert _compare(_fixture("calico-felix-fv-table-ip-calico-nft-list.txt")) == {
        "ip calico": "equal, 62 rules"
    }


def test_kube_proxy_test_ruleset_is_read_exactly() -> None:
    """kube-proxy's own nftables test dump: service-ips vmap, numgen, dnat, masquerade."""
    rules = _declarations_first(_fixture("k8s-nftables-proxier-test-overall-rules-nft-f-dump.txt"))
    assert _compare(rules) == {"ip kube-proxy": "equal, 57 rules"}


def test_foreign_ruleset_with_fib_and_pkttype_is_read_exactly() -> None:
    """projectcalico/calico#13263's host firewall, Tailscale and portmap rules in iptables-nft's tables."""
    got = _compare(_fixture("calico-issue13263-foreign-ruleset-nft-commands.txt"), _IPTABLES_BASE)
    assert got == {
        "ip filter": "equal, 50 rules",
        "ip nat": "equal, 14 rules",
        "ip mangle": "equal, 7 rules",
    }


_MIXED = """
table inet mix {
  set allowed4 { type ipv4_addr; flags interval; elements = { 10.0.0.0/8, 192.168.1.1-192.168.1.20, 172.16.0.1 }; }
  set allowed6 { type ipv6_addr; elements = { 2001:db8::1, fe80::1 }; }
  map ports { type inet_service : verdict; elements = { 22 : accept, 80 : jump web }; }
  chain web { tcp dport 80 counter accept comment "web in"; }
  chain input {
    type filter hook input priority 0; policy drop;
    ct state established,related accept
    ct state invalid drop
    iifname "lo" accept
    ip saddr @allowed4 accept
    ip6 saddr @allowed6 accept
    tcp dport vmap @ports
    tcp dport { 8080, 8443 } accept
    udp sport 68 udp dport 67 accept
    meta l4proto ipv6-icmp accept
    tcp flags & (syn | ack) == syn log prefix "new: " counter
    meta mark set meta mark | 0x4000
    ip6 daddr ::1 drop
    meta pkttype broadcast drop
    fib daddr type local accept
  }
  chain pre { type nat hook prerouting priority -100; ip daddr 10.96.0.10 tcp dport 53 dnat ip to 10.244.0.5:53; }
  chain post {
    type nat hook postrouting priority 100;
    oifname "eth0" ip saddr 10.244.0.0/16 masquerade
    ip saddr 10.0.0.1 snat ip to 192.0.2.1
    numgen random mod 2 vmap { 0 : jump web, 1 : accept }
  }
}
table ip lim {
  chain l { ip protocol icmp icmp type echo-request limit rate 10/second accept; }
}
table ip6 six {
  chain y { type filter hook forward priority 0; ip6 saddr 2001:db8::/32 ip6 daddr != fd00::/8 counter accept; }
}
"""

# Forms the reader does not reproduce: each table must be refused, never mis-printed.
_REFUSED = """
table ip withobj {
  counter c1 { packets 0 bytes 0; }
  chain x { counter name "c1"; }
}
table inet rejects {
  chain r { ip daddr 10.96.0.0/12 reject with icmp type host-unreachable; }
}
table inet concat {
  set pairs { type ipv4_addr . inet_service; elements = { 10.1.1.1 . 80 }; }
  chain c { ip saddr . tcp dport @pairs accept; }
}
"""


def test_common_statement_forms_are_read_exactly() -> None:
    """Interval, IPv6 and verdict-map sets, anonymous sets, ct, limit, log, bitwise
    marks, fib, pkttype, nat forms and numgen, in inet, ip and ip6 tables."""
    assert _compare(_MIXED) == {
        "inet mix": "equal, 19 rules",
        "ip lim": "equal, 1 rules",
        "ip6 six": "equal, 1 rules",
    }


def test_forms_it_cannot_reproduce_are_refused_with_a_reason() -> None:
    got = _compare(_REFUSED)
    assert got == {
        "ip withobj": "unsupported: stateful objects (named counters, quotas...)",
        "inet rejects": got["inet rejects"],
        "inet concat": got["inet concat"],
    }
    assert got["inet rejects"].startswith("unsupported: chain r, rule")
    assert got["inet concat"].startswith("unsupported: chain c, rule")


_COLLECT_BOTH = """
from podpath.collectors.commands import CommandRunner
from podpath.collectors.netfilter import collect_netfilter
def body(res):
    return [x for x in json.loads(res.nft.json_text)["nftables"] if "metainfo" not in x]
netlink = collect_netfilter(CommandRunner())
os.environ["PODPATH_NFT_READER"] = "nft"
tool = collect_netfilter(CommandRunner())
print(json.dumps({"same": body(netlink) == body(tool), "gaps": [g.subject for g in netlink.gaps],
                  "tables": sorted({(x.get("table") or {}).get("name", "") for x in body(netlink)})}))
"""


def test_collector_document_equals_nfts_when_some_tables_fall_back() -> None:
    """Read and refused tables together: the collector's document is nft's, in nft's order."""
    needs_lab()
    got = in_netns(
        f"sh('nft', '-f', '-', input={_MIXED + _REFUSED!r})\n" + _COLLECT_BOTH, timeout=240
    )
    assert got == {
        "same": True,
        "gaps": [],
        "tables": ["", "concat", "lim", "mix", "rejects", "six", "withobj"],
    }


def _services(count: int) -> list[ServiceRecord]:
    """`count` Services of three endpoints each, as the lab plans them."""
    out = []
    for i in range(count):
        eps = tuple(
            (f"10.244.{(i * 3 + k) // 250}.{(i * 3 + k) % 250 + 2}", 8080) for k in range(3)
        )
        out.append(
            ServiceRecord(
                "billing",
                f"svc-{i:04d}",
                "http",
                "TCP" if i % 5 else "UDP",
                f"10.96.{i // 250}.{i % 250 + 2}",
                80,
                None,
                eps,
                f"KUBE-SVC-{i:016d}",
                (),
            )
        )
    return out


def test_kube_proxy_table_of_a_thousand_services_is_read_exactly() -> None:
    """The benchmark's kube-proxy nftables table (service-ips vmap, 4k chains), at 1k Services."""
    sys.path.insert(0, str(BENCHMARKS))
    import nft_render

    got = _compare(nft_render.render(_services(1000)))
    assert list(got) == ["ip kube-proxy"]
    assert got["ip kube-proxy"].startswith("equal"), got


# A second thread in the reading process: forking is then unsafe, and the runs of
# chains are decoded on threads, each with a reader of its own.
_A_THREAD = """
import threading
_hold = threading.Event()
threading.Thread(target=_hold.wait, daemon=True).start()
"""


def test_large_table_read_on_threads_when_forking_is_unsafe() -> None:
    sys.path.insert(0, str(BENCHMARKS))
    import nft_render

    got = _compare(nft_render.render(_services(1000)), _A_THREAD)
    assert list(got) == ["ip kube-proxy"]
    assert got["ip kube-proxy"].startswith("equal"), got


@pytest.mark.parametrize("family", ["arp", "bridge", "netdev"])
def test_other_families_are_left_to_nft(family: str) -> None:
    from podpath.collectors.nftables.listing import list_table

    listing: Any = list_table(family, "t")
    assert listing.json_text is None and "read by nft" in listing.reason
    assert json.dumps(listing.family) == json.dumps(family)


def test_the_collector_knows_the_readers_exit_status() -> None:
    """netfilter keeps its own copy of the constant (to not import the decoders)."""
    from podpath.collectors import netfilter
    from podpath.collectors.nftables import listing as nft_listing

    assert netfilter.EXIT_NOT_READ == nft_listing.EXIT_NOT_READ


def test_reader_command_line_reports_what_it_does_not_read() -> None:
    needs_lab()
    done = subprocess.run(
        [sys.executable, "-m", "podpath.collectors.nftables.listing", "bridge", "t"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (done.returncode, done.stdout) == (3, "")
    assert "read by nft" in done.stderr
    usage = subprocess.run(
        [sys.executable, "-m", "podpath.collectors.nftables.listing"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert usage.returncode == 2 and "usage:" in usage.stderr


_NO_NFT_TABLES = """
import pathlib, tempfile
from podpath.collectors.commands import CommandRunner
from podpath.collectors.netfilter import collect_netfilter
bin_dir = pathlib.Path(tempfile.mkdtemp())
# An nft that refuses to list a table: whatever the collector shows of one was read
# over netlink.
(bin_dir / "nft").write_text('#!/bin/sh\\nfor a; do [ "$a" = table ] && exit 1; done\\n'
                             'exec /usr/sbin/nft "$@"\\n')
(bin_dir / "nft").chmod(0o755)
runner = CommandRunner(bin_dirs=(bin_dir, pathlib.Path("/usr/sbin")))
res = collect_netfilter(runner)
doc = [x for x in json.loads(res.nft.json_text)["nftables"] if "metainfo" not in x]
want = []
for t in ("inet mix", "ip lim", "ip6 six"):
    want += json.loads(sh("nft", "-j", "list", "table", *t.split()))["nftables"][1:]
print(json.dumps({"same": doc == want, "gaps": [g.subject for g in res.gaps]}))
"""


def test_collector_reads_tables_over_netlink_not_through_nft() -> None:
    needs_lab()
    got = in_netns(f"sh('nft', '-f', '-', input={_MIXED!r})\n" + _NO_NFT_TABLES, timeout=240)
    assert got == {"same": True, "gaps": []}
