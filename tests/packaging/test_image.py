"""podpath's image: packed without an engine, loaded and run by containerd and podman."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
import subprocess
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from built_image import BuiltImage, UnpackedImage
from oci_archive import ImageSpec, build, full_reference, unpack

from podpath.dataclass_code import CodeCache

if TYPE_CHECKING:
    from podpath.lab import Lab

SITE = "/usr/local/lib/python3.11/dist-packages"
DEMO = f"{SITE}/podpath/data/demo-snapshot.json"


# --- the packer, on a small tree ----------------------------------------------------------


def _small_tree(root: Path) -> Path:
    """A tree with what image layers hold: dirs, modes, symlinks, a hard link, a socket."""
    (root / "bin").mkdir(parents=True)
    (root / "etc").mkdir()
    (root / "proc").mkdir()
    (root / "proc" / "junk").write_text("never in an image")
    (root / "etc" / "hello").write_text("hi\n")
    (root / "etc" / "secret").write_text("x")
    (root / "etc" / "secret").chmod(0o600)
    (root / "bin" / "tool").write_text("#!/bin/sh\necho tool\n")
    (root / "bin" / "tool").chmod(0o755)
    os.link(root / "bin" / "tool", root / "bin" / "tool-again")
    (root / "bin" / "abs").symlink_to("/etc/hello")
    (root / "bin" / "rel").symlink_to("../etc/hello")
    import socket

    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(root / "etc" / "sock"))
    sock.close()
    return root


def _spec() -> ImageSpec:
    return ImageSpec(tag="podpath-small:1", cmd=["/bin/tool"], env=["A=1"], created=1700000000)


def _members(archive: Path) -> dict[str, bytes]:
    with tarfile.open(archive) as tar:
        out = {}
        for m in tar.getmembers():
            fp = tar.extractfile(m)
            out[m.name] = fp.read() if fp else b""
        return out


def test_same_tree_gives_the_same_bytes(tmp_path: Path) -> None:
    """Two builds of one tree are byte-identical (sorted entries, clamped times, gzip mtime 0)."""
    root = _small_tree(tmp_path / "root")
    first = build([root], _spec(), tmp_path / "a.tar")
    os.utime(root / "etc" / "hello", (2_000_000_000, 2_000_000_000))  # after the epoch
    second = build([root], _spec(), tmp_path / "b.tar")
    assert (tmp_path / "a.tar").read_bytes() == (tmp_path / "b.tar").read_bytes()
    assert first["manifest"] == second["manifest"]


def test_digests_and_both_manifests_agree(tmp_path: Path) -> None:
    """Blobs are named by their sha256; diff_ids hash the plain tars; OCI and docker agree."""
    root = _small_tree(tmp_path / "root")
    summary = build([root], _spec(), tmp_path / "img.tar")
    files = _members(tmp_path / "img.tar")
    for name, data in files.items():
        if name.startswith("blobs/sha256/") and data:
            assert hashlib.sha256(data).hexdigest() == name.rsplit("/", 1)[1]
    index = json.loads(files["index.json"])
    (entry,) = index["manifests"]
    assert entry["annotations"]["io.containerd.image.name"] == "docker.io/library/podpath-small:1"
    manifest = json.loads(files["blobs/sha256/" + entry["digest"].split(":")[1]])
    config = json.loads(files["blobs/sha256/" + manifest["config"]["digest"].split(":")[1]])
    (layer,) = manifest["layers"]
    plain = gzip.decompress(files["blobs/sha256/" + layer["digest"].split(":")[1]])
    assert config["rootfs"]["diff_ids"] == ["sha256:" + hashlib.sha256(plain).hexdigest()]
    assert config["config"]["Cmd"] == ["/bin/tool"]
    assert summary["config"] == manifest["config"]["digest"]
    (docker,) = json.loads(files["manifest.json"])
    assert docker["Config"] == "blobs/sha256/" + manifest["config"]["digest"].split(":")[1]
    assert docker["Layers"] == ["blobs/sha256/" + layer["digest"].split(":")[1]]
    assert docker["RepoTags"] == ["podpath-small:1"]
    assert json.loads(files["oci-layout"]) == {"imageLayoutVersion": "1.0.0"}


def test_unpacked_layer_is_the_tree(tmp_path: Path) -> None:
    """Extracted, the layer has the tree's files, modes, links; no socket, no /proc content."""
    root = _small_tree(tmp_path / "root")
    build([root], _spec(), tmp_path / "img.tar")
    out = tmp_path / "out"
    config = unpack(tmp_path / "img.tar", out)
    assert config["config"]["Env"] == ["A=1"]
    assert (out / "etc" / "hello").read_text() == "hi\n"
    assert (out / "etc" / "secret").stat().st_mode & 0o777 == 0o600
    assert (out / "bin" / "tool").stat().st_mode & 0o777 == 0o755
    assert (out / "bin" / "tool").stat().st_ino == (out / "bin" / "tool-again").stat().st_ino
    assert os.readlink(out / "bin" / "abs") == "/etc/hello"
    assert os.readlink(out / "bin" / "rel") == "../etc/hello"
    assert not (out / "etc" / "sock").exists()
    assert (out / "proc").is_dir() and list((out / "proc").iterdir()) == []


@pytest.mark.parametrize(
    ("tag", "reference"),
    [
        ("podpath:1", "docker.io/library/podpath:1"),
        ("me/podpath:1", "docker.io/me/podpath:1"),
        ("ghcr.io/me/podpath:1", "ghcr.io/me/podpath:1"),
        ("localhost:5000/podpath:1", "localhost:5000/podpath:1"),
    ],
)
def test_full_reference(tag: str, reference: str) -> None:
    """The name containerd gives a tag, as docker's reference normalisation does."""
    assert full_reference(tag) == reference


# --- the real image ---------------------------------------------------------------------------


def test_image_holds_podpath_and_the_node_tools(image_rootfs: UnpackedImage) -> None:
    """podpath, its data, and the tools it runs are in the image; docs and caches are not."""
    root = image_rootfs.root
    for tool in (
        "usr/local/bin/podpath",
        "usr/sbin/ip",
        "usr/sbin/iptables-legacy-save",
        "usr/sbin/iptables-nft-save",
        "usr/sbin/nft",
        "usr/sbin/conntrack",
        "usr/sbin/ipset",
        "usr/bin/tcpdump",
        "usr/bin/nsenter",
        "usr/bin/lsns",
        "usr/bin/python3",
    ):
        assert (root / tool).exists(), tool
    assert (root / DEMO.lstrip("/")).is_file()
    assert not [p for p in (root / "usr/share/man").rglob("*") if not p.is_dir()]
    docs = {p.name for p in (root / "usr/share/doc").rglob("*") if p.is_file()}
    assert docs == {"copyright"}
    # No pip or other caches: root's home holds only Debian's dotfiles.
    assert {p.name for p in (root / "root").iterdir()} <= {".bashrc", ".profile"}
    assert (root / "etc/resolv.conf").read_text() == ""  # not the build machine's
    # The podpath layer is compiled in advance (the root may be read-only).
    assert list((root / SITE.lstrip("/") / "podpath/cli/__pycache__").glob("*.pyc"))
    # So are the methods @dataclass generates (podpath.dataclass_code), for every module.
    (kept,) = (root / SITE.lstrip("/") / "podpath/__pycache__").glob("dataclass-code.*.marshal")
    texts = CodeCache(str(kept)).kept
    assert any(" def __init__(self," in text for text in texts), len(texts)
    assert len(texts) > 500


def test_image_is_small(podpath_image: BuiltImage, image_rootfs: UnpackedImage) -> None:
    """Unpacked under 150 MiB (Debian essential + python3 + the tools ~ 117, podpath ~ 17)."""
    size = sum(p.lstat().st_size for p in image_rootfs.root.rglob("*") if not p.is_dir())
    assert size < 150 * 1024 * 1024, size
    assert len(podpath_image.summary["layers"]) == 2


def _in_node(lab: Lab, script: str, *args: str, timeout: float = 300) -> str:
    done = lab.exec("node1", ["sh", "-c", script, "sh", *args], timeout=timeout, check=False)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    return done.stdout


# containerd, inside a lab node (its /run, cgroups and network are the node's), with
# its content store in $1; only the image service and runc: no CRI plugin.
_CONTAINERD = r"""
set -eu
d=$1; archive=$2; demo=$3
mkdir -p /run/pp-ctd
cat >"$d/config.toml" <<EOF
version = 2
root = "$d/root"
state = "/run/pp-ctd/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "/run/pp-ctd/containerd.sock"
[ttrpc]
  address = "/run/pp-ctd/containerd.sock.ttrpc"
EOF
containerd --config "$d/config.toml" >"$d/containerd.log" 2>&1 &
pid=$!
trap 'kill $pid; wait $pid || true' EXIT
i=0
while [ ! -S /run/pp-ctd/containerd.sock ]; do
  i=$((i + 1)); [ $i -lt 300 ] || { cat "$d/containerd.log" >&2; exit 1; }; sleep 0.1
done
ctr() { command ctr --address /run/pp-ctd/containerd.sock --namespace podpath "$@"; }
ctr images import "$archive" >&2
echo "== images"; ctr images ls -q
echo "== version"; ctr run --rm docker.io/library/podpath:test pp1 podpath --version
echo "== pods"; ctr run --rm docker.io/library/podpath:test pp2 podpath ls pods --snapshot "$demo"
"""


def _sections(text: str) -> dict[str, str]:
    out: dict[str, list[str]] = {}
    current = ""
    for line in text.splitlines():
        if line.startswith("== "):
            current = line[3:]
            out[current] = []
        elif current:
            out[current].append(line)
    return {k: "\n".join(v) for k, v in out.items()}


def _expected_pods() -> str:
    import sys

    return subprocess.run(
        [sys.executable, "-m", "podpath", "ls", "pods", "--snapshot", _bundled_demo()],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.rstrip("\n")


def _bundled_demo() -> str:
    from importlib import resources

    return str(resources.files("podpath").joinpath("data", "demo-snapshot.json"))


@pytest.mark.lab
def test_containerd_imports_and_runs_the_image(
    podpath_image: BuiltImage, make_lab: Callable[..., Lab], tmp_path: Path
) -> None:
    """`ctr images import` takes the tarball; the image runs podpath on its bundled demo."""
    if shutil.which("containerd") is None or shutil.which("ctr") is None:
        pytest.skip("needs containerd and ctr")
    lab = make_lab(nodes=1, pods=1, services=2)
    out = _sections(_in_node(lab, _CONTAINERD, str(tmp_path), str(podpath_image.archive), DEMO))
    assert out["images"].split() == ["docker.io/library/podpath:test"]
    assert out["version"].strip() == "podpath 0.1.0"
    assert out["pods"] == _expected_pods()


# podman as root, with storage of its own in $1 and nothing on the machine's: inside a
# lab node (cgroups and /run are the node's), no network, no default ulimits (this
# machine's root may not raise them). Its blob cache, which --root does not move, goes
# to a tmpfs over /var/lib/containers in the node's private mount namespace (the empty
# mount point stays, as the lab leaves its node directories).
_PODMAN = r"""
set -eu
d=$1; archive=$2; demo=$3
mkdir -p /var/lib/containers
mount -t tmpfs podpath-test /var/lib/containers
printf '[containers]\ndefault_ulimits = []\n' >"$d/containers.conf"
export CONTAINERS_CONF="$d/containers.conf" TMPDIR="$d"
podman() {
  command podman --root "$d/storage" --runroot /run/pp-podman --storage-driver vfs \
    --cgroup-manager cgroupfs --events-backend none "$@"
}
echo "== load"; podman load -q -i "$archive"
echo "== oci"; podman pull -q "oci-archive:$archive"
echo "== docker"; podman pull -q "docker-archive:$archive"
echo "== version"; podman run --rm --network none podpath:test podpath --version
echo "== pods"; podman run --rm --network none podpath:test podpath ls pods --snapshot "$demo"
podman rmi -a -f >/dev/null
"""


@pytest.mark.lab
def test_podman_loads_the_tarball_as_oci_and_as_docker_archive(
    podpath_image: BuiltImage, make_lab: Callable[..., Lab], tmp_path: Path
) -> None:
    """`podman load`, and both transports named, read the tarball; the image runs."""
    if shutil.which("podman") is None:
        pytest.skip("needs podman")
    lab = make_lab(nodes=1, pods=1, services=2)
    out = _sections(_in_node(lab, _PODMAN, str(tmp_path), str(podpath_image.archive), DEMO))
    config = podpath_image.summary["config"].split(":")[1]
    assert "docker.io/library/podpath:test" in out["load"]
    assert out["oci"].strip() == config
    assert out["docker"].strip() == config
    assert out["version"].strip() == "podpath 0.1.0"
    assert out["pods"] == _expected_pods()


def test_image_config_runs_the_tui_on_host(podpath_image: BuiltImage) -> None:
    """Without a command the image opens the TUI on /host; its env has PATH and a UTF-8 locale."""
    with tarfile.open(podpath_image.archive) as tar:
        index = json.load(tar.extractfile("index.json"))  # type: ignore[arg-type]
        digest = index["manifests"][0]["digest"].split(":")[1]
        manifest: dict[str, Any] = json.load(tar.extractfile(f"blobs/sha256/{digest}"))  # type: ignore[arg-type]
        cfg_digest = manifest["config"]["digest"].split(":")[1]
        config = json.load(tar.extractfile(f"blobs/sha256/{cfg_digest}"))  # type: ignore[arg-type]
    assert config["config"]["Cmd"] == ["podpath", "tui", "--host-root", "/host"]
    env = dict(e.split("=", 1) for e in config["config"]["Env"])
    assert env["LANG"] == "C.UTF-8"
    assert "/usr/local/bin" in env["PATH"].split(":")
    assert config["config"]["Labels"]["org.opencontainers.image.version"] == "0.1.0"
