"""Netfilter collection: every backend, labelled; read-only; generation reuse; failures.

Everything that touches netfilter runs in a throw-away network namespace: a child made
by `unshare --net --mount --fork` runs the collector and prints JSON.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
import threading
from concurrent.futures import Future
from pathlib import Path
from typing import Any, cast

import pytest
from netlink_fakes import Request, ScriptedKernel, done, error, msg, nla

from podpath.collectors import netfilter
from podpath.collectors.commands import CommandResult, CommandRunner
from podpath.collectors.netfilter import (
    _joined,
    merge_nft_documents,
    native_tables,
    with_family_keywords,
)
from podpath.collectors.netlink.wire import NetlinkError
from podpath.collectors.nftables.netlink import NftSocket
from podpath.snapshot.model import Gap

TOOLS = ("unshare", "iptables-legacy", "iptables-nft", "nft", "conntrack")

# Prepended to every child script: run argv lists, never a shell.
_PRELUDE = """
import json, os, subprocess, threading
from pathlib import Path
def sh(*argv, input=None):
    p = subprocess.run(argv, input=input, capture_output=True, text=True, timeout=30)
    if p.returncode != 0:
        raise SystemExit(f"{argv}: {p.stderr}")
    return p.stdout
"""


def in_netns(body: str, timeout: float = 120) -> Any:
    """Run Python `body` in a new net+mount namespace; return the JSON it prints last."""
    code = _PRELUDE + textwrap.dedent(body)
    proc = subprocess.run(
        ["unshare", "--net", "--mount", "--fork", "--", sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def needs_lab() -> None:
    """Fail loudly in CI, skip elsewhere, when root or the netfilter tools are missing."""
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if os.geteuid() != 0 or missing:
        if os.environ.get("CI") == "true":
            pytest.fail(f"lab test needs root and {missing}")
        pytest.skip(f"needs root and {missing}")


_MIXED_SETUP = """
sh("iptables-legacy", "-A", "INPUT", "-s", "192.0.2.1/32", "-j", "DROP")
sh("iptables-nft", "-A", "INPUT", "-s", "192.0.2.2/32", "-m", "comment", "--comment", "nft rule", "-j", "DROP")
sh("ip6tables-nft", "-A", "INPUT", "-s", "2001:db8::2/128", "-j", "DROP")
sh("nft", "-f", "-", input='''
table ip kube-proxy {
    chain services {
        ip daddr 10.96.0.1 tcp dport 443 counter
    }
}
''')
"""

_COLLECT = """
from podpath.collectors.commands import CommandRunner
from podpath.collectors.netfilter import collect_netfilter
res = collect_netfilter(CommandRunner())
out = {
    "dumps": [[d.backend, d.family, list(d.command), d.text, d.generation] for d in res.iptables],
    "nft": None if res.nft is None else [res.nft.json_text, res.nft.generation],
    "gaps": [[g.subject, g.reason, g.kind] for g in res.gaps],
    "generation": res.generation,
    "legacy_save": sh("iptables-legacy-save"),
    "nft_save": sh("iptables-nft-save"),
}
print(json.dumps(out))
"""


def _rules(text: str) -> list[str]:
    # The collector saves with -c: each rule starts with [packets:bytes].
    lines = [re.sub(r"^\[\d+:\d+\] ", "", line) for line in text.splitlines()]
    return [line for line in lines if line.startswith("-A ")]


@pytest.mark.lab
def test_mixed_backends_are_all_collected_and_labelled() -> None:
    """Row 7: a legacy rule, an iptables-nft rule and `table ip kube-proxy` all appear, labelled."""
    needs_lab()
    out = in_netns(_MIXED_SETUP + _COLLECT)
    dumps = {(b, f): (text, gen) for b, f, _, text, gen in out["dumps"]}
    assert set(dumps) == {("legacy", "ipv4"), ("nft", "ipv4"), ("nft", "ipv6")}
    assert _rules(dumps["legacy", "ipv4"][0]) == ["-A INPUT -s 192.0.2.1/32 -j DROP"]
    assert _rules(dumps["nft", "ipv4"][0]) == _rules(out["nft_save"])
    assert '--comment "nft rule"' in dumps["nft", "ipv4"][0]
    assert "-A INPUT -s 2001:db8::2/128 -j DROP" in dumps["nft", "ipv6"][0]
    assert _rules(dumps["legacy", "ipv4"][0]) == _rules(out["legacy_save"])
    doc = json.loads(out["nft"][0])["nftables"]
    tables = [(i["table"]["family"], i["table"]["name"]) for i in doc if "table" in i]
    # Only the native table: the compat `ip filter` is iptables-nft-save's to show.
    assert tables == [("ip", "kube-proxy")]
    assert any("rule" in i and i["rule"]["chain"] == "services" for i in doc)
    assert sum(1 for i in doc if "metainfo" in i) == 1
    assert out["gaps"] == []
    assert out["generation"] is not None and dumps["nft", "ipv4"][1] == out["generation"]
    assert dumps["legacy", "ipv4"][1] is None


@pytest.mark.lab
def test_snapshot_command_warns_about_mixed_backends(tmp_path: Path) -> None:
    """`podpath snapshot` writes the file and warns about mixed backends (found meanwhile)."""
    needs_lab()
    path = tmp_path / "mixed.json"
    out = in_netns(
        _MIXED_SETUP
        + f"""
import sys
done = subprocess.run([sys.executable, "-m", "podpath", "snapshot", "-o", {str(path)!r}],
                      capture_output=True, text=True, timeout=120)
print(json.dumps([done.returncode, done.stderr]))
"""
    )
    code, stderr = out
    assert code == 0, stderr
    (line,) = [x for x in stderr.splitlines() if "warning: rules in several iptables" in x]
    assert "iptables-legacy" in line and "iptables-nft" in line
    from podpath.snapshot.codec import load_path

    snap = load_path(str(path))
    assert {(d.backend, d.family) for d in snap.iptables} >= {("legacy", "ipv4"), ("nft", "ipv4")}


@pytest.mark.lab
def test_legacy_is_not_read_when_no_legacy_table_exists() -> None:
    """A namespace whose ip_tables_names is empty gets no legacy dump (and no gap)."""
    needs_lab()
    out = in_netns(
        """
sh("iptables-nft", "-A", "INPUT", "-j", "ACCEPT")
names_file = Path("/proc/net/ip_tables_names")
names = names_file.read_text() if names_file.exists() else ""
"""
        + _COLLECT.replace(
            '"generation": res.generation,', '"generation": res.generation, "names": names,'
        )
    )
    assert out["names"] == ""
    assert [d[:2] for d in out["dumps"]] == [["nft", "ipv4"], ["nft", "ipv6"]]
    assert out["gaps"] == []


_STATE = """
def state():
    def read(p):
        try:
            return Path(p).read_bytes().decode("latin-1")
        except FileNotFoundError:
            return "<absent>"
    return {
        "ip_tables_names": read("/proc/net/ip_tables_names"),
        "ip6_tables_names": read("/proc/net/ip6_tables_names"),
        "modules": read("/proc/modules"),
        "mountinfo": read("/proc/self/mountinfo"),
        "nft_tables": sh("nft", "list", "tables"),
        "ip_netns": sh("ip", "netns", "list"),
    }
"""


@pytest.mark.lab
def test_full_collection_writes_nothing() -> None:
    """Row 8: tables, modules, mounts and named netns are byte-identical before and after."""
    needs_lab()
    out = in_netns(
        _MIXED_SETUP
        + _STATE
        + """
from podpath.collectors.commands import CommandRunner
from podpath.collectors.conntrack import collect_conntrack
from podpath.collectors.netfilter import collect_netfilter
before = state()
runner = CommandRunner()
nf = collect_netfilter(runner)
ct = collect_conntrack(runner)
after = state()
print(json.dumps({"before": before, "after": after, "gaps": [g.reason for g in nf.gaps + ct.gaps]}))
"""
    )
    assert out["before"] == out["after"]
    # Legacy save without -t: only the table that had a rule exists, none was created.
    assert out["after"]["ip_tables_names"] == "filter\n"
    assert out["gaps"] == []


@pytest.mark.lab
def test_unchanged_generation_reuses_previous_dumps_and_a_change_rereads() -> None:
    """Same generation id: the previous nft dumps are reused as-is; after a new rule, re-read."""
    needs_lab()
    out = in_netns(
        _MIXED_SETUP
        + """
from podpath.collectors.commands import CommandRunner
from podpath.collectors.netfilter import collect_netfilter, nft_generation
from podpath.snapshot.model import NodeFacts, Snapshot
runner = CommandRunner()
def snap(res):
    return Snapshot(1, 0.0, NodeFacts("n", "k"), 0, iptables=res.iptables, nft=res.nft)
first = collect_netfilter(runner)
second = collect_netfilter(runner, previous=snap(first))
nft_first = [d for d in first.iptables if d.backend == "nft"]
nft_second = [d for d in second.iptables if d.backend == "nft"]
legacy_first = [d for d in first.iptables if d.backend == "legacy"]
legacy_second = [d for d in second.iptables if d.backend == "legacy"]
gen_before = nft_generation()
sh("iptables-nft", "-A", "INPUT", "-s", "192.0.2.99/32", "-j", "DROP")
gen_after = nft_generation()
third = collect_netfilter(runner, previous=snap(second))
print(json.dumps({
    "reused": second.reused,
    "same_objects": all(a is b for a, b in zip(nft_first, nft_second)) and len(nft_first) == 2,
    "same_nft": second.nft is first.nft,
    "legacy_reread": legacy_first[0] is not legacy_second[0],
    "gens": [first.generation, second.generation, gen_before, gen_after, third.generation],
    "third_reused": third.reused,
    "third_has_rule": any("192.0.2.99" in d.text for d in third.iptables if d.backend == "nft"),
}))
"""
    )
    assert out["reused"] and out["same_objects"] and out["same_nft"]
    assert out["legacy_reread"]
    g1, g2, before, after, g3 = out["gens"]
    assert g1 == g2 == before and after != before and g3 == after
    assert not out["third_reused"] and out["third_has_rule"]


@pytest.mark.lab
def test_hanging_nft_save_costs_only_its_own_part(tmp_path: Path) -> None:
    """Row 14: a sleeping iptables-nft-save times out; IPv6, legacy and native nft still arrive."""
    needs_lab()
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("ip6tables-nft-save", "iptables-legacy-save", "ip6tables-legacy-save", "nft"):
        real = shutil.which(tool)
        assert real is not None
        os.symlink(real, bin_dir / tool)  # multi-call binaries dispatch on the link name
    hang = bin_dir / "iptables-nft-save"
    hang.write_text("#!/bin/sh\nsleep 60\n")
    hang.chmod(0o755)
    out = in_netns(
        _MIXED_SETUP
        + f"""
import time
from podpath.collectors.commands import CommandRunner
from podpath.collectors.netfilter import collect_netfilter
start = time.monotonic()
res = collect_netfilter(CommandRunner(bin_dirs=(Path({str(bin_dir)!r}),), timeout=1.0))
print(json.dumps({{
    "elapsed": time.monotonic() - start,
    "dumps": [[d.backend, d.family] for d in res.iptables],
    "gaps": [[g.subject, g.kind] for g in res.gaps],
    "nft": res.nft is not None,
    "nft_generation": None if res.nft is None else res.nft.generation,
}}))
"""
    )
    assert out["elapsed"] < 10
    assert out["gaps"] == [["iptables-nft-save -c", "timeout"]]
    assert sorted(map(tuple, out["dumps"])) == [("legacy", "ipv4"), ("nft", "ipv6")]
    assert out["nft"]
    # An incomplete nft-side read is never stamped: the next refresh reads it all again.
    assert out["nft_generation"] is None


@pytest.mark.lab
def test_unusual_native_table_name_falls_back_to_full_ruleset() -> None:
    """A name outside the plain identifier shape (`.odd`) is not put on nft's command line."""
    needs_lab()
    out = in_netns(
        """
sh("nft", "add", "table", "ip", ".odd")
"""
        + _COLLECT
    )
    doc = json.loads(out["nft"][0])["nftables"]
    assert ("ip", ".odd") in [
        (i["table"]["family"], i["table"]["name"]) for i in doc if "table" in i
    ]
    assert out["gaps"] == []


def test_native_tables_skip_iptables_nft_compat_tables() -> None:
    """ip/ip6 filter/nat/mangle/raw/security belong to iptables-nft; all others are native."""
    listing = json.dumps(
        {
            "nftables": [
                {"metainfo": {"version": "1.0.6"}},
                {"table": {"family": "ip", "name": "filter", "handle": 1}},
                {"table": {"family": "ip6", "name": "nat", "handle": 2}},
                {"table": {"family": "ip", "name": "kube-proxy", "handle": 3}},
                {"table": {"family": "inet", "name": "filter", "handle": 4}},
                {"table": {"family": "bridge", "name": "filter", "handle": 5}},
            ]
        }
    )
    assert native_tables(listing) == (
        ("ip", "kube-proxy"),
        ("inet", "filter"),
        ("bridge", "filter"),
    )


def test_merged_nft_documents_are_one_valid_document() -> None:
    """Splicing per-table outputs keeps every object and a single metainfo."""
    meta = '{"metainfo": {"version": "1.0.6", "release_name": "Lester Gooch #5", "json_schema_version": 1}}'
    a = '{"nftables": [' + meta + ', {"table": {"family": "ip", "name": "a", "handle": 1}}]}\n'
    b = '{"nftables": [' + meta + ', {"table": {"family": "inet", "name": "b", "handle": 2}}]}\n'
    empty = '{"nftables": [' + meta + "]}"
    merged = json.loads(merge_nft_documents([empty, a, b]))["nftables"]
    assert merged[0] == json.loads(meta)
    assert [i["table"]["name"] for i in merged[1:]] == ["a", "b"]


def test_merge_keeps_each_body_as_written_between_its_brackets() -> None:
    """Only the envelope, a later metainfo, the whitespace and trailing commas go."""
    meta = '{"metainfo": {"version": "1.0.6"}}'
    first = ' {"nftables": [ ' + meta + " ] }\n"
    second = '{"nftables": [' + meta + ',  {"table": {"name": "a]b"}} ,\n]}'
    third = '{"nftables":[{"chain": {"name": "c"}}]}'
    assert merge_nft_documents([first, second, third]) == (
        '{"nftables": [' + meta + ', {"table": {"name": "a]b"}} , {"chain": {"name": "c"}}]}'
    )


@pytest.mark.parametrize(
    "last",
    [
        '{"nftables": [{"table": {"name": "k"}}, {"chain": {"name": "c"}}]}',
        '{"nftables": [{"table": {"name": "k"}}]}',
        # Not the reader's shape: joined as before.
        '{"nftables": [ {"table": {"name": "k"}}]}',
        '{"nftables": [{"table": {"name": "k"}},]}',
        '{"nftables": [{"table": {"name": "k"}}]}\n',
        '{"nftables": [{"metainfo": {"version": "1.0.6"}}, {"table": {"name": "k"}}]}',
        '{"nftables": []}',
    ],
)
@pytest.mark.parametrize(
    "head",
    [
        ['{"nftables": [{"metainfo": {"version": "1.0.6"}}]}'],
        ['{"nftables": []}'],
        ['{"nftables": [{"metainfo": {"version": "1.0.6"}}]}', '{"nftables": [{"table": {}}]}'],
    ],
)
def test_a_reader_document_spliced_last_is_the_joined_text(head: list[str], last: str) -> None:
    """The netlink reader's document, copied once by a replace, gives _joined's text."""
    assert merge_nft_documents([*head, last]) == _joined([*head, last])


def test_merge_rejects_text_that_is_not_nft_json() -> None:
    """Garbage from a tool is an error, not silently spliced."""
    with pytest.raises(ValueError):
        merge_nft_documents(['{"nftables": []}', "Error: something"])


def test_generation_reply_is_decoded_and_an_error_raised() -> None:
    """A real NFT_MSG_NEWGEN (seq 1, port 0x1f03): NFTA_GEN_ID read big-endian; EPERM raised."""
    reply = bytes.fromhex(
        "300000000f0a000001000000031f0000000000010800010000000029080002000000"
        "1f030c000300707974686f6e3300"
    )
    kernel = ScriptedKernel(lambda _n, _req: [reply], portid=0x1F03)
    assert NftSocket(transport=kernel).generation() == 0x29
    refused = ScriptedKernel(lambda _n, req: [error(req.seq, -1)])
    with pytest.raises(NetlinkError) as caught:
        NftSocket(transport=refused).generation()
    assert caught.value.errno == 1


@pytest.mark.lab
def test_unprivileged_collection_names_missing_capabilities() -> None:
    """Row 10: as nobody, every part is a permission gap (none shown as empty rules)."""
    needs_lab()
    out = in_netns(
        """
sh("iptables-legacy", "-A", "INPUT", "-j", "ACCEPT")
code = (
    "import json; from podpath.collectors.commands import CommandRunner;"
    "from podpath.collectors.netfilter import collect_netfilter;"
    "r = collect_netfilter(CommandRunner());"
    "print(json.dumps([len(r.iptables), r.nft is None, [[g.kind, g.capability] for g in r.gaps]]))"
)
import sys
print(sh("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--", sys.executable, "-c", code))
"""
    )
    count, nft_missing, gaps = out
    assert count == 0 and nft_missing
    assert {kind for kind, _ in gaps} == {"permission"}
    assert ["permission", "CAP_NET_ADMIN"] in gaps and len(gaps) == 5


@pytest.mark.lab
def test_kernel_table_list_equals_nft_list_tables() -> None:
    """The NFT_MSG_GETTABLE dump names the same tables, in the same order, as nft does."""
    needs_lab()
    out = in_netns(
        _MIXED_SETUP
        + """
for family, name in (("inet", "a"), ("ip6", "b"), ("bridge", "c"), ("netdev", "d"), ("arp", "e")):
    sh("nft", "add", "table", family, name)
from podpath.collectors.netfilter import nft_table_names
doc = json.loads(sh("nft", "-j", "list", "tables"))["nftables"]
print(json.dumps({"kernel": nft_table_names(),
                  "nft": [[i["table"]["family"], i["table"]["name"]] for i in doc if "table" in i]}))
"""
    )
    assert out["kernel"] == out["nft"] and len(out["nft"]) == 8


def test_table_dump_is_decoded_and_unknown_families_are_left_to_nft() -> None:
    """NEWTABLE messages give (family, name) in order; a family nft cannot name gives None."""

    def table(family: int, name: bytes, seq: int) -> bytes:
        return msg(0xA00, bytes([family, 0, 0, 0]) + nla(1, name + b"\0"), seq=seq)

    def script(_n: int, req: Request) -> list[bytes]:
        first = table(2, b"kube-proxy", req.seq) + table(10, b"x", req.seq)
        return [first, table(1, b"filter", req.seq) + done(req.seq)]

    tables = NftSocket(transport=ScriptedKernel(script)).table_names()
    assert tables == [(2, "kube-proxy"), (10, "x"), (1, "filter")]
    assert with_family_keywords(tables) == (("ip", "kube-proxy"), ("ip6", "x"), ("inet", "filter"))
    assert with_family_keywords([(2, "a"), (99, "odd")]) is None


class _NoNftRunner:
    """A runner stand-in: records module submissions; running nft fails the test."""

    timeout = 20.0

    def __init__(self) -> None:
        self.submitted: list[tuple[str, tuple[str, ...], float | None]] = []

    def submit_module(
        self, module: str, args: tuple[str, ...], cancel: object, timeout: float | None = None
    ) -> Future[CommandResult]:
        self.submitted.append((module, args, timeout))
        return _done(CommandResult("python", ("python", "-m", module, *args), 0, "", "", 0.1))

    def run(self, program: str, args: tuple[str, ...], cancel: object) -> CommandResult:
        raise AssertionError(f"{program} {args} run after the reader timed out")


def _done(result: CommandResult) -> Future[CommandResult]:
    fut: Future[CommandResult] = Future()
    fut.set_result(result)
    return fut


def test_the_reader_is_bounded_by_twice_the_runners_timeout() -> None:
    """The netlink reader may take the time its read and nft's fallback had together."""
    runner = _NoNftRunner()
    netfilter._start_table_read(cast(CommandRunner, runner), "ip", "kube-proxy", threading.Event())
    assert runner.submitted == [("podpath.collectors.nftables.listing", ("ip", "kube-proxy"), 40.0)]


def test_a_reader_that_timed_out_is_a_gap_not_a_second_read_by_nft() -> None:
    """nft would ask the kernel for the same sets again: the table is a timeout gap."""
    argv = ("python", "-m", "podpath.collectors.nftables.listing", "ip", "kube-proxy")
    timed_out = CommandResult(
        "python", argv, -9, "", "", 40.0, timed_out=True,
        gap=Gap(" ".join(argv), "timed out after 40 s", "timeout"),
    )  # fmt: skip
    side = netfilter._NftSide((), _done(timed_out), (), ((("ip", "kube-proxy"), _done(timed_out)),))
    runner = cast(CommandRunner, _NoNftRunner())
    [result] = netfilter._native_documents(side, runner, threading.Event())
    assert result.gap == Gap(
        "nft table ip kube-proxy over netlink",
        "timed out after 40 s; not listed by nft, which reads the same sets from the kernel",
        "timeout",
    )
