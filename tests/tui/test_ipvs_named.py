"""`:ipvs` and `:svc` name IPVS virtual services from pods' service-link environment."""

from __future__ import annotations

import dataclasses

from ipvs_node import ipvs_node
from textual.pilot import Pilot

from podpath.analysis.index import SnapshotIndex
from podpath.kubelet_env import keep_service_links
from podpath.snapshot.model import ServiceLinkEnv, Snapshot
from podpath.tui.app import create_app
from podpath.tui.rows.ipvs import IPVS_COLUMNS, ipvs_rows
from podpath.tui.screens.ipvs import IpvsScreen
from podpath.tui.screens.service import ServiceScreen
from podpath.tui.source import static_source
from podpath.tui.tour import press_and_settle

SIZE = (120, 36)
# kubelet's variables of kube-system/kube-dns at 10.3.0.10 (dns 53/udp, dns-tcp 53/tcp).
KUBE_DNS = [
    "KUBE_DNS_SERVICE_HOST=10.3.0.10",
    "KUBE_DNS_SERVICE_PORT=53",
    "KUBE_DNS_SERVICE_PORT_DNS=53",
    "KUBE_DNS_SERVICE_PORT_DNS_TCP=53",
    "KUBE_DNS_PORT=udp://10.3.0.10:53",
    "KUBE_DNS_PORT_53_UDP=udp://10.3.0.10:53",
    "KUBE_DNS_PORT_53_UDP_PROTO=udp",
    "KUBE_DNS_PORT_53_UDP_PORT=53",
    "KUBE_DNS_PORT_53_UDP_ADDR=10.3.0.10",
    "KUBE_DNS_PORT_53_TCP=tcp://10.3.0.10:53",
    "KUBE_DNS_PORT_53_TCP_PROTO=tcp",
    "KUBE_DNS_PORT_53_TCP_PORT=53",
    "KUBE_DNS_PORT_53_TCP_ADDR=10.3.0.10",
]


def _named() -> Snapshot:
    env = ServiceLinkEnv("kube-system", "client", "app", 42, keep_service_links(KUBE_DNS))
    return dataclasses.replace(ipvs_node(), service_links=(env,))


def test_ipvs_rows_carry_the_name() -> None:
    """The virtual service's TYPE cell names its Service; unnamed ones stay as they were."""
    index = SnapshotIndex(_named())
    rows = {
        r.cells[0].text: r.cells[IPVS_COLUMNS.index("TYPE, FLAGS / WHERE")].text
        for r in ipvs_rows([index], index.services)
    }
    assert rows["TCP 10.3.0.10:53"].startswith("ClusterIP kube-system/kube-dns")
    assert rows["UDP 10.3.0.10:53"].startswith("ClusterIP kube-system/kube-dns")
    assert "/" not in rows["TCP 10.3.0.15:2379"]


async def _open(pilot: Pilot[None]) -> IpvsScreen:
    await press_and_settle(pilot, ("colon", *"ipvs", "enter"))
    screen = pilot.app.screen
    assert isinstance(screen, IpvsScreen)
    return screen


async def test_service_screen_heading_names_it_and_its_source() -> None:
    """Enter on a named virtual service: `Service kube-system/kube-dns ...`, and where from."""
    app = create_app(static_source(_named(), "snapshot", "ipvs.json"))
    async with app.run_test(size=SIZE) as pilot:
        screen = await _open(pilot)
        table = screen.table
        row = next(
            i for i in range(table.row_count) if table.row_texts(i)[0].strip() == "TCP 10.3.0.10:53"
        )
        table.move_cursor(row=row)
        await press_and_settle(pilot, ("enter",))
        shown = app.screen
        assert isinstance(shown, ServiceScreen)
        heading = str(shown.query_one("#heading").render())
        assert heading.startswith("Service kube-system/kube-dns · 10.3.0.10:53/tcp"), heading
        assert "named from pods' service-link environment" in heading
