"""The Pod screen's NAT tab: rules naming the pod's IP, masquerade for its traffic, and `t` anywhere."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from podpath.analysis.index import SnapshotIndex
from podpath.analysis.mentions import mention_index
from podpath.analysis.parsed import ParsedSnapshot
from podpath.snapshot.model import Snapshot
from podpath.tui.app import PodpathApp
from podpath.tui.rows.model import Row
from podpath.tui.rows.nat import masquerade_rows, mention_rows
from podpath.tui.screens.node import NodeScreen
from podpath.tui.screens.pod import PodScreen
from podpath.tui.screens.services import ServicesScreen
from podpath.tui.screens.trace import TraceScreen
from podpath.tui.widgets.table import RowTable

WEB = "default/web-7d4b9c6f5d-x7k2p"  # 10.244.0.5
OTHER_WEB = "default/web-7d4b9c6f5d-m9q4z"  # 10.244.0.6
SIZE = (120, 36)

# What the portmap and bridge CNI plugins add for a hostPort pod at 10.244.0.5, plus a
# rule for 10.244.0.50 that must not count as naming 10.244.0.5.
EXTRA_NAT = """\
:CNI-HOSTPORT-DNAT - [0:0]
:CNI-DN-0f1e2d3c4b5a69788796a5b4 - [0:0]
:CNI-5f2a9c0e1d3b7a6c4e8f9a0b - [0:0]
-A PREROUTING -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT
-A CNI-HOSTPORT-DNAT -p tcp -m comment --comment "dnat name: \\"cbr0\\" id: \\"abc\\"" -m multiport --dports 8080 -j CNI-DN-0f1e2d3c4b5a69788796a5b4
-A CNI-DN-0f1e2d3c4b5a69788796a5b4 -p tcp -m tcp --dport 8080 -j DNAT --to-destination 10.244.0.5:80
-A CNI-DN-0f1e2d3c4b5a69788796a5b4 -s 10.244.0.50/32 -p tcp -m tcp --dport 8080 -j KUBE-MARK-MASQ
-A POSTROUTING -s 10.244.0.5/32 -m comment --comment "name: \\"cbr0\\" id: \\"abc\\"" -j CNI-5f2a9c0e1d3b7a6c4e8f9a0b
-A CNI-5f2a9c0e1d3b7a6c4e8f9a0b -d 10.244.0.0/24 -m comment --comment "name: \\"cbr0\\" id: \\"abc\\"" -j ACCEPT
-A CNI-5f2a9c0e1d3b7a6c4e8f9a0b ! -d 224.0.0.0/4 -m comment --comment "name: \\"cbr0\\" id: \\"abc\\"" -j MASQUERADE
"""


def texts(r: Row) -> list[str]:
    """The plain texts of a row."""
    return [c.text for c in r.cells]


def with_cni_rules(snap: Snapshot) -> Snapshot:
    """The fixture with hostPort DNAT and bridge-plugin masquerade rules added to nat."""
    dump = snap.iptables[0]
    head, _, tail = dump.text.partition("*nat\n")
    body, _, rest = tail.partition("COMMIT\n")
    lines = body.splitlines(keepends=True)
    headers = [ln for ln in lines if ln.startswith(":")]
    rules = [ln for ln in lines if not ln.startswith(":")]
    extra = EXTRA_NAT.splitlines(keepends=True)
    text = (
        head
        + "*nat\n"
        + "".join(
            headers
            + [e for e in extra if e.startswith(":")]
            + rules
            + [e for e in extra if not e.startswith(":")]
        )
        + "COMMIT\n"
        + rest
    )
    return dataclasses.replace(
        snap, iptables=(dataclasses.replace(dump, text=text), *snap.iptables[1:])
    )


def test_mentions_list_the_kube_sep_rules_of_the_pod(
    index: SnapshotIndex, parsed: ParsedSnapshot
) -> None:
    """The web pod's IP is named by its KUBE-SVC jump, KUBE-SEP masquerade mark and DNAT rules."""
    pod = index.pods_by_name[WEB]
    rows = [
        texts(r) for r in mention_rows(mention_index(parsed.rule_dumps(), index.pods_by_ip), pod)
    ]
    assert {r[2] for r in rows} == {"KUBE-SVC-CDGGSHYLG3RE2FKL", "KUBE-SEP-J44QSZ26JCYCDSXF"}
    assert any("--to-destination 10.244.0.5:80" in r[4] for r in rows)
    assert all(r[0] == "nft/ipv4" and r[1] == "nat" for r in rows)


def test_mentions_include_a_hostport_dnat_but_not_a_longer_address(
    fixed_snapshot: Snapshot,
) -> None:
    """A portmap CNI-DN DNAT to the pod is listed; a rule for 10.244.0.50 is not taken for 10.244.0.5."""
    index = SnapshotIndex(with_cni_rules(fixed_snapshot))
    parsed = ParsedSnapshot(index)
    pod = index.pods_by_name[WEB]
    rows = [
        texts(r) for r in mention_rows(mention_index(parsed.rule_dumps(), index.pods_by_ip), pod)
    ]
    chains = {r[2] for r in rows}
    assert "CNI-DN-0f1e2d3c4b5a69788796a5b4" in chains and "POSTROUTING" in chains
    assert not any("10.244.0.50" in r[4] for r in rows)


def test_kube_proxy_masquerade_applies_when_marked(
    index: SnapshotIndex, parsed: ParsedSnapshot
) -> None:
    """KUBE-POSTROUTING's MASQUERADE applies only to packets marked 0x4000 (after the RETURN)."""
    rows = [texts(r) for r in masquerade_rows(parsed.rule_dumps(), index.pods_by_name[WEB])]
    assert rows == [
        [
            "nft/ipv4",
            "KUBE-POSTROUTING",
            "3",
            "MASQUERADE",
            "when marked 0x4000/0x4000",
            '-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" '
            "-j MASQUERADE --random-fully",
        ]
    ]


def test_bridge_plugin_masquerade_is_explained_for_its_pod_only(fixed_snapshot: Snapshot) -> None:
    """The bridge plugin's per-pod chain masquerades 10.244.0.5 off-subnet; another pod gets none of it."""
    index = SnapshotIndex(with_cni_rules(fixed_snapshot))
    parsed = ParsedSnapshot(index)
    web = [texts(r) for r in masquerade_rows(parsed.rule_dumps(), index.pods_by_name[WEB])]
    cni = next(r for r in web if r[1].startswith("CNI-"))
    assert cni[3] == "MASQUERADE"
    assert (
        cni[4]
        == "when source 10.244.0.5 and destination not 10.244.0.0/24 and destination not 224.0.0.0/4"
    )
    other = [texts(r) for r in masquerade_rows(parsed.rule_dumps(), index.pods_by_name[OTHER_WEB])]
    assert [r[1] for r in other] == ["KUBE-POSTROUTING"]


async def test_pod_screen_nat_tab_shows_mentions_and_masquerade(
    make_app: Callable[..., PodpathApp], fixed_snapshot: Snapshot
) -> None:
    """The NAT tab of the hostPort pod lists its CNI-DN DNAT rule and the bridge masquerade."""
    app = make_app(with_cni_rules(fixed_snapshot))
    async with app.run_test(size=SIZE) as pilot:
        app.open_screen("pod", WEB)
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, PodScreen)
        mentions = screen.query_one("#t-natrules", RowTable)
        masq = screen.query_one("#t-masq", RowTable)
        mention_chains = {mentions.row_texts(i)[2] for i in range(mentions.row_count)}
        masq_chains = {masq.row_texts(i)[1] for i in range(masq.row_count)}
        assert "CNI-DN-0f1e2d3c4b5a69788796a5b4" in mention_chains
        assert masq_chains == {"KUBE-POSTROUTING", "CNI-5f2a9c0e1d3b7a6c4e8f9a0b"}
        assert screen.query_one("#t-nat", RowTable).row_count == 1


async def test_t_on_the_node_screen_opens_an_empty_trace(
    make_app: Callable[..., PodpathApp],
) -> None:
    """`t` on home (no pod selected) opens Trace with both ends empty."""
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        assert isinstance(app.screen, NodeScreen)
        await pilot.press("t")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, TraceScreen)
        assert (screen.source_spec, screen.destination_spec) == ("", "")


async def test_t_on_the_services_screen_traces_to_the_selected_service(
    make_app: Callable[..., PodpathApp],
) -> None:
    """`t` on a Service row opens Trace with that Service's VIP:port as the destination."""
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        app.open_screen("svc")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, ServicesScreen)
        key = next(k for k in screen.table._keys if "/web:" in k)
        assert screen.table.move_to_key(key)
        await pilot.press("t")
        await pilot.pause()
        trace = app.screen
        assert isinstance(trace, TraceScreen)
        assert (trace.source_spec, trace.destination_spec) == ("", "10.96.0.20:80")


async def test_t_in_the_pod_screen_still_traces_from_the_pod(
    make_app: Callable[..., PodpathApp],
) -> None:
    """The Pod screen's own `t` keeps prefilling the pod as the source."""
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        app.open_screen("pod", WEB)
        await pilot.pause()
        await pilot.press("t")
        await pilot.pause()
        trace = app.screen
        assert isinstance(trace, TraceScreen) and trace.source_spec == WEB
