"""CNI configs (every real-world file), the active pick, and host-local IPAM state."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from podpath.collectors.cni import (
    collect_cni,
    ipam_ranges,
    parse_allocation,
    parse_cni_config,
)
from podpath.collectors.hostroot import HostRoot

CNI = Path(__file__).resolve().parents[1] / "fixtures" / "realworld" / "cni"

# Which fixture files are valid CNI configs (templates are not JSON until rendered).
VALID = {
    "00-multus.conf": ("multus-cni-network", ("multus",)),
    "10-flannel.conflist": ("cbr0", ("flannel", "portmap")),
    "aks-kubenet-10-containerd-net.conflist": None,
    "aks-10-azure.conflist": None,
    "aks-15-azure-swift-overlay.conflist": None,
    "aks-operator-rendered-10-calico.conflist": None,
    "cni-plugins-bridge-host-local-bandwidth.conflist": None,
    "cni-plugins-chained-ptp-bandwidth.conflist": None,
    "cilium-test-aws-chained-cilium-cni-escaped-quote.conflist": None,
}


@pytest.mark.parametrize("path", sorted(CNI.iterdir()), ids=lambda p: p.name)
def test_every_fixture_parses_or_reports(path: Path) -> None:
    """Every real-world CNI file yields a config or an error string, never an exception."""
    config = parse_cni_config(path.name, path.read_text(errors="surrogateescape"))
    if path.name.endswith((".template", ".gotemplate")):
        assert config.error is not None
    if path.name in VALID:
        assert config.error is None, config.error
        assert config.plugins
        expected = VALID[path.name]
        if expected is not None:
            assert (config.name, config.plugins) == expected
    if config.error is None:
        ipam_ranges(config)  # must not raise either


def test_ipam_ranges_of_bridge_host_local() -> None:
    """host-local ranges and a dataDir override come out of the plugin chain."""
    name = "cni-plugins-bridge-host-local-bandwidth.conflist"
    config = parse_cni_config(name, (CNI / name).read_text())
    ranges = ipam_ranges(config)
    assert [(r.plugin, r.ipam_type, r.subnet, r.data_dir) for r in ranges] == [
        ("bridge", "host-local", "10.12.2.0/24", "/tmp/bar")
    ]


def test_data_dir_override_is_read(node_root: Path) -> None:
    """Reservations under the active config's ipam dataDir are read too."""
    extra = node_root / "tmp/bar/network-chain-test"
    extra.mkdir(parents=True)
    (extra / "10.12.2.7").write_text("cccc\neth0")
    with HostRoot(str(node_root)) as host:
        state, _ = collect_cni(host)
    assert ("network-chain-test", "10.12.2.7", "cccc") in {
        (a.network, a.ip, a.container_id) for a in state.allocations
    }


def test_template_error_is_one_line() -> None:
    """An unrendered template reports a one-line JSON error."""
    text = (CNI / "10-calico.conflist.template").read_text()
    config = parse_cni_config("/etc/cni/net.d/10-calico.conflist", text)
    assert config.error and "\n" not in config.error and config.plugins == ()


@pytest.fixture
def node_root(tmp_path: Path) -> Path:
    """A node root whose net.d has an invalid first file, a valid one, and a non-CNI file."""
    netd = tmp_path / "etc/cni/net.d"
    netd.mkdir(parents=True)
    shutil.copy(CNI / "10-calico.conflist.template", netd / "05-broken.conflist")
    shutil.copy(
        CNI / "cni-plugins-bridge-host-local-bandwidth.conflist", netd / "10-bridge.conflist"
    )
    shutil.copy(CNI / "10-flannel.conflist", netd / "20-flannel.conflist")
    (netd / "00-readme.txt").write_text("not a config")
    alloc = tmp_path / "var/lib/cni/networks/mynet"
    alloc.mkdir(parents=True)
    (alloc / "10.1.2.3").write_text("aaaa\r\neth0")
    (alloc / "10.1.2.4").write_text("bbbb\neth0\n")
    (alloc / "fd00::5").write_text("oldformat")
    (alloc / "last_reserved_ip.0").write_text("10.1.2.4")
    (alloc / "lock").write_text("")
    return tmp_path


def test_lexical_first_valid_is_active(node_root: Path) -> None:
    """The runtime's pick: lexically first .conf/.conflist/.json that is valid."""
    with HostRoot(str(node_root)) as host:
        state, gaps = collect_cni(host)
    assert gaps == ()
    assert [Path(c.path).name for c in state.configs] == [
        "05-broken.conflist",
        "10-bridge.conflist",
        "20-flannel.conflist",
    ]
    assert state.active == "/etc/cni/net.d/10-bridge.conflist"


def test_host_local_allocations_and_stale(node_root: Path) -> None:
    """Reservations map IP -> container id + ifname; bookkeeping files are ignored."""
    with HostRoot(str(node_root)) as host:
        state, _ = collect_cni(host, sandbox_ids={"aaaa"})
    got = {(a.ip, a.container_id, a.ifname, a.stale) for a in state.allocations}
    assert got == {
        ("10.1.2.3", "aaaa", "eth0", False),
        ("10.1.2.4", "bbbb", "eth0", True),
        ("fd00::5", "oldformat", None, True),
    }


def test_parse_allocation_ignores_bookkeeping() -> None:
    """lock and last_reserved_ip.N are not allocations."""
    assert parse_allocation("n", "lock", "") is None
    assert parse_allocation("n", "last_reserved_ip.0", "10.0.0.1") is None


def test_missing_dirs_are_not_errors(tmp_path: Path) -> None:
    """A node without CNI at all gives an empty state and no gaps."""
    with HostRoot(str(tmp_path)) as host:
        state, gaps = collect_cni(host)
    assert state.configs == () and state.active is None and gaps == ()
