"""Native nftables on the Netfilter screen: tables, chains, rules, jumps and vmap elements."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from podpath.netfilter.nft import parse_nft_json
from podpath.snapshot.model import NftDump, Snapshot
from podpath.tui.app import PodpathApp
from podpath.tui.rows.nft import (
    nft_chain_rows,
    nft_element_rows,
    nft_rule_rows,
    rule_counters,
    rule_target,
    rule_vmap_elements,
    rule_vmap_set,
    verdict_chain,
)
from podpath.tui.screens.netfilter import NetfilterScreen
from podpath.tui.widgets.table import RowTable

SIZE = (120, 36)
REALWORLD = Path(__file__).resolve().parents[1] / "fixtures" / "realworld" / "nftables"

SVC = "service-ULMVA6XW-default/web/tcp/http"
EP = "endpoint-5TPGNJF2-default/web/tcp/http__10.244.0.5/80"


def _chain(name: str, **base: Any) -> dict[str, Any]:
    return {"chain": {"family": "ip", "table": "kube-proxy", "name": name, **base}}


def _rule(chain: str, handle: int, *expr: Any) -> dict[str, Any]:
    return {
        "rule": {
            "family": "ip",
            "table": "kube-proxy",
            "chain": chain,
            "handle": handle,
            "expr": list(expr),
        }
    }


def _goto(target: str) -> dict[str, Any]:
    return {"goto": {"target": target}}


def kube_proxy_json() -> str:
    """A small `nft -j list ruleset` of kube-proxy's nftables mode (one Service, one endpoint)."""
    items: list[dict[str, Any]] = [
        {"metainfo": {"version": "1.0.9", "json_schema_version": 1}},
        {
            "table": {
                "family": "ip",
                "name": "kube-proxy",
                "handle": 1,
                "comment": "rules for kube-proxy",
            }
        },
        _chain("nat-prerouting", type="nat", hook="prerouting", prio=-100, policy="accept"),
        _chain("services"),
        _chain(SVC),
        _chain(EP),
        {
            "map": {
                "family": "ip",
                "table": "kube-proxy",
                "name": "service-ips",
                "map": "verdict",
                "type": ["ipv4_addr", "inet_proto", "inet_service"],
                "elem": [
                    [{"concat": ["10.96.0.20", "tcp", 80]}, _goto(SVC)],
                    [{"concat": ["10.96.0.30", "udp", 53]}, {"drop": None}],
                ],
            }
        },
        _rule(
            "nat-prerouting",
            10,
            {"counter": {"packets": 42, "bytes": 2520}},
            {"jump": {"target": "services"}},
        ),
        _rule(
            "services",
            11,
            {
                "vmap": {
                    "key": {
                        "concat": [
                            {"payload": {"protocol": "ip", "field": "daddr"}},
                            {"meta": {"key": "l4proto"}},
                            {"payload": {"protocol": "th", "field": "dport"}},
                        ]
                    },
                    "data": "@service-ips",
                }
            },
        ),
        _rule(
            SVC,
            12,
            {
                "vmap": {
                    "key": {"numgen": {"mode": "random", "mod": 1}},
                    "data": {"set": [[0, _goto(EP)]]},
                }
            },
        ),
        _rule(
            EP,
            13,
            {"match": {"op": "==", "left": {"meta": {"key": "l4proto"}}, "right": "tcp"}},
            {"dnat": {"addr": "10.244.0.5", "port": 80}},
        ),
    ]
    return json.dumps({"nftables": items})


def test_rule_counters_and_verdicts_come_from_the_expressions() -> None:
    """Counters, jump targets, named and inline vmaps are read from each rule's JSON."""
    nft = parse_nft_json(kube_proxy_json())
    (pre,) = nft.chain_rules("ip", "kube-proxy", "nat-prerouting")
    (svc,) = nft.chain_rules("ip", "kube-proxy", "services")
    (numgen,) = nft.chain_rules("ip", "kube-proxy", SVC)
    (dnat,) = nft.chain_rules("ip", "kube-proxy", EP)
    assert (rule_counters(pre), rule_target(pre)) == ((42, 2520), "services")
    assert rule_vmap_set(svc) == "service-ips" and rule_target(svc) is None
    elements = rule_vmap_elements(numgen)
    assert elements is not None and [verdict_chain(e.value) for e in elements] == [EP]
    assert (
        rule_counters(dnat) is None
        and rule_vmap_elements(dnat) is None
        and rule_target(dnat) is None
    )


def test_rule_rows_show_text_handle_and_counters() -> None:
    """A rule row holds its position, handle, nft text and counter values."""
    nft = parse_nft_json(kube_proxy_json())
    (first,) = nft_rule_rows(nft.chain_rules("ip", "kube-proxy", "nat-prerouting"))
    texts = [c.text for c in first.cells]
    assert first.key == "nftrule:1"
    # #, HANDLE, PKTS, BYTES (counters first, as iptables -L -v), OWNER, RULE
    rule = "counter packets 42 bytes 2520 jump services"
    assert texts == ["1", "10", "42", "2520", "kube-proxy", rule]


def test_chain_rows_list_base_chains_first_then_maps() -> None:
    """Base chains (with type/hook/prio/policy) come first, maps last as @name."""
    nft = parse_nft_json(kube_proxy_json())
    rows = nft_chain_rows(nft, "ip", "kube-proxy")
    assert rows[0].key == "nftchain:nat-prerouting"
    assert [c.text for c in rows[0].cells] == [
        "nat-prerouting",
        "nat",
        "prerouting",
        "-100",
        "accept",
        "1",
    ]
    assert rows[-1].key == "nftset:service-ips" and rows[-1].cells[0].text == "@service-ips"


def test_real_verdict_map_elements_render_key_and_verdict() -> None:
    """knftables' verdict-map fixture: concatenated keys and drop/return/goto verdicts."""
    nft = parse_nft_json((REALWORLD / "knftables-nft-j-list-verdict-map-concat.json").read_text())
    found = nft.get_set("ip", "testing", "test")
    assert found is not None
    rows = nft_element_rows(found.elements)
    assert [(r.cells[0].text, r.cells[1].text) for r in rows] == [
        ("192.168.1.1 . tcp", "drop"),
        ("192.168.1.3 . tcp", "return"),
        ("192.168.1.2 . udp", "goto test"),
    ]
    assert rows[2].cells[1].role == "accent" and rows[0].cells[1].role == ""
    assert rows[1].cells[2].text == "foo"


def _with_nft(snap: Snapshot, text: str) -> Snapshot:
    return dataclasses.replace(snap, nft=NftDump(json_text=text))


async def _enter(pilot: object, table: RowTable, key: str) -> None:
    assert table.move_to_key(key), key
    await pilot.pause()  # type: ignore[attr-defined]
    await pilot.press("enter")  # type: ignore[attr-defined]
    await pilot.pause()  # type: ignore[attr-defined]


async def _open_netfilter(pilot: object) -> None:
    await pilot.press("colon", *"ipt", "enter")  # type: ignore[attr-defined]
    await pilot.pause()  # type: ignore[attr-defined]


async def test_fixture_without_nft_has_no_nftables_backend(
    make_app: Callable[..., PodpathApp],
) -> None:
    """A snapshot without native nftables lists only its iptables dumps."""
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await _open_netfilter(pilot)
        screen = app.screen
        assert isinstance(screen, NetfilterScreen)
        assert not screen.table.move_to_key("nft:")


async def test_drill_table_chain_rule_and_follow_jump(
    make_app: Callable[..., PodpathApp], fixed_snapshot: Snapshot
) -> None:
    """nftables -> ip kube-proxy -> nat-prerouting -> enter on `jump services` -> services; esc back."""
    app = make_app(_with_nft(fixed_snapshot, kube_proxy_json()))
    async with app.run_test(size=SIZE) as pilot:
        await _open_netfilter(pilot)
        screen = app.screen
        assert isinstance(screen, NetfilterScreen)
        await _enter(pilot, screen.table, "nft:")
        await _enter(pilot, screen.table, "nfttable:0")
        assert (screen.level.family, screen.level.table) == ("ip", "kube-proxy")
        await _enter(pilot, screen.table, "nftchain:nat-prerouting")
        assert screen.table.selected_cells()[2].text == "42"
        await _enter(pilot, screen.table, "nftrule:1")
        assert screen.level.chain == "services"
        assert screen.heading() == "Netfilter › nftables › ip kube-proxy › services"
        await pilot.press("escape")
        await pilot.pause()
        assert screen.level.chain == "nat-prerouting" and screen.table.selected_key == "nftrule:1"
        await pilot.press("escape", "escape", "escape")
        await pilot.pause()
        assert screen.level == screen.path[0] and screen.table.selected_key == "nft:"


async def test_vmap_elements_goto_service_then_endpoint(
    make_app: Callable[..., PodpathApp], fixed_snapshot: Snapshot
) -> None:
    """services' vmap @service-ips -> element goto service-... -> inline numgen vmap -> endpoint chain."""
    app = make_app(_with_nft(fixed_snapshot, kube_proxy_json()))
    async with app.run_test(size=SIZE) as pilot:
        await _open_netfilter(pilot)
        screen = app.screen
        assert isinstance(screen, NetfilterScreen)
        for key in ("nft:", "nfttable:0", "nftchain:services", "nftrule:1"):
            await _enter(pilot, screen.table, key)
        assert screen.level.set == "service-ips"
        assert screen.table.selected_cells()[0].text == "10.96.0.20 . tcp . 80"
        await _enter(pilot, screen.table, "nftelem:0")
        assert screen.level.chain == SVC and not screen.level.elements
        await _enter(pilot, screen.table, "nftrule:1")
        assert screen.level.vmap_rule == 1
        await _enter(pilot, screen.table, "nftelem:0")
        assert screen.level.chain == EP
        assert "dnat to 10.244.0.5:80" in screen.table.selected_cells()[5].text
        await pilot.press("escape")
        await pilot.pause()
        assert screen.level.vmap_rule == 1 and screen.table.selected_key == "nftelem:0"
        await pilot.press("escape")
        await pilot.pause()
        assert screen.level.chain == SVC and screen.table.selected_key == "nftrule:1"
        await pilot.press("escape")
        await pilot.pause()
        assert screen.level.set == "service-ips" and screen.table.selected_key == "nftelem:0"


async def test_element_with_a_plain_verdict_stays_put(
    make_app: Callable[..., PodpathApp], fixed_snapshot: Snapshot
) -> None:
    """Enter on a `drop` element opens nothing: the element list stays."""
    app = make_app(_with_nft(fixed_snapshot, kube_proxy_json()))
    async with app.run_test(size=SIZE) as pilot:
        await _open_netfilter(pilot)
        screen = app.screen
        assert isinstance(screen, NetfilterScreen)
        for key in ("nft:", "nfttable:0", "nftset:service-ips", "nftelem:1"):
            await _enter(pilot, screen.table, key)
        assert screen.level.set == "service-ips" and screen.level.chain is None


async def test_hostile_chain_name_is_shown_literally(
    make_app: Callable[..., PodpathApp], fixed_snapshot: Snapshot
) -> None:
    """A chain named with markup and an escape shows literally in the table and heading."""
    hostile = "[@click=app.quit]x[/]\x1b[31m"
    doc = json.loads(kube_proxy_json())
    doc["nftables"].append(_chain(hostile))
    doc["nftables"].append(_rule("services", 20, {"jump": {"target": hostile}}))
    app = make_app(_with_nft(fixed_snapshot, json.dumps(doc)))
    async with app.run_test(size=SIZE) as pilot:
        await _open_netfilter(pilot)
        screen = app.screen
        assert isinstance(screen, NetfilterScreen)
        for key in ("nft:", "nfttable:0", "nftchain:services", "nftrule:2"):
            await _enter(pilot, screen.table, key)
        assert screen.level.chain == hostile
        assert app.is_running and "[@click=app.quit]x[/]" in str(
            screen.query_one("#heading").render()
        )
