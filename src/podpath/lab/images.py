"""Container images built offline: OCI image layouts as tar files, for `ctr images import`.

Nothing is pulled: the pause image holds Debian's static catatonit as /pause, the app
image Debian's static busybox with its applets. Every file gets mtime 0 and fixed
ownership, so the same machine always builds the same digests (image ids stay put
between labs).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import platform
import shutil
import subprocess
import tarfile
from dataclasses import dataclass
from pathlib import Path

from podpath.lab.records import LabError

PAUSE_IMAGE = "registry.k8s.io/pause:3.9"
BUSYBOX_IMAGE = "docker.io/library/busybox:1.35"
_LAYER = "application/vnd.oci.image.layer.v1.tar"
_CONFIG = "application/vnd.oci.image.config.v1+json"
_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
# Mount points the runtime binds onto; a read-only rootfs cannot grow them later.
_APP_DIRS = ("proc", "dev", "sys", "etc", "tmp", "www", "root", "var/run", "usr", "bin")


@dataclass(frozen=True)
class BuiltImage:
    """An image tar on disk, with the name it is imported as."""

    ref: str
    path: Path


def _arch() -> str:
    machine = platform.machine()
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)


def _which(tool: str) -> str:
    found = shutil.which(tool, path="/usr/bin:/usr/sbin:/bin:/sbin")
    if found is None:
        package = "busybox-static" if tool == "busybox" else tool
        raise LabError(f"{tool} is not installed (apt-get install {package})")
    return found


class _Layer:
    """A reproducible tar layer written in memory."""

    def __init__(self) -> None:
        self.buf = io.BytesIO()
        self.tar = tarfile.open(fileobj=self.buf, mode="w", format=tarfile.PAX_FORMAT)

    def _info(self, name: str, kind: bytes, mode: int) -> tarfile.TarInfo:
        info = tarfile.TarInfo(name)
        info.type, info.mode, info.mtime, info.uid, info.gid = kind, mode, 0, 0, 0
        return info

    def directory(self, name: str) -> None:
        self.tar.addfile(self._info(name, tarfile.DIRTYPE, 0o755))

    def file(self, name: str, data: bytes, mode: int = 0o644) -> None:
        info = self._info(name, tarfile.REGTYPE, mode)
        info.size = len(data)
        self.tar.addfile(info, io.BytesIO(data))

    def symlink(self, name: str, target: str) -> None:
        info = self._info(name, tarfile.SYMTYPE, 0o777)
        info.linkname = target
        self.tar.addfile(info)

    def bytes(self) -> bytes:
        self.tar.close()
        return self.buf.getvalue()


def _pause_layer() -> bytes:
    layer = _Layer()
    layer.file("pause", Path(_which("catatonit")).read_bytes(), 0o755)
    return layer.bytes()


def _busybox_layer() -> bytes:
    layer = _Layer()
    for d in _APP_DIRS:
        layer.directory(d)
    for f in ("etc/hostname", "etc/hosts", "etc/resolv.conf"):
        layer.file(f, b"")
    layer.file("etc/passwd", b"root:x:0:0:root:/root:/bin/sh\n")
    busybox = _which("busybox")
    layer.file("bin/busybox", Path(busybox).read_bytes(), 0o755)
    applets = subprocess.run(
        [busybox, "--list"], capture_output=True, text=True, timeout=10, check=True
    ).stdout.split()
    # `busybox --install -s` would link to the absolute path it ran from: relative links.
    for applet in sorted(set(applets) - {"busybox"}):
        layer.symlink(f"bin/{applet}", "busybox")
    # The host's /usr is bound into the DNS-like container; its /lib* follow merged-/usr.
    for lib in ("lib", "lib64"):
        host = Path("/") / lib
        if host.is_symlink():
            layer.symlink(lib, os.readlink(host))
    return layer.bytes()


def _blob(blobs: dict[str, bytes], data: bytes) -> dict[str, object]:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    blobs[digest] = data
    return {"digest": digest, "size": len(data)}


def _json(value: object) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


def oci_archive(ref: str, layer: bytes, entrypoint: list[str], cmd: list[str]) -> bytes:
    """An OCI image layout (index, manifest, config, one layer) as one tar archive."""
    blobs: dict[str, bytes] = {}
    layer_desc = {"mediaType": _LAYER, **_blob(blobs, layer)}
    config = {
        "architecture": _arch(),
        "os": "linux",
        "created": "1970-01-01T00:00:00Z",
        "config": {
            "Entrypoint": entrypoint,
            "Cmd": cmd,
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "WorkingDir": "/",
        },
        "rootfs": {"type": "layers", "diff_ids": [layer_desc["digest"]]},
        "history": [{"created": "1970-01-01T00:00:00Z", "created_by": "podpath lab"}],
    }
    manifest = {
        "schemaVersion": 2,
        "mediaType": _MANIFEST,
        "config": {"mediaType": _CONFIG, **_blob(blobs, _json(config))},
        "layers": [layer_desc],
    }
    manifest_desc = {
        "mediaType": _MANIFEST,
        **_blob(blobs, _json(manifest)),
        "platform": {"architecture": _arch(), "os": "linux"},
        "annotations": {
            "io.containerd.image.name": ref,
            "org.opencontainers.image.ref.name": ref.rsplit(":", 1)[-1],
        },
    }
    index = {"schemaVersion": 2, "manifests": [manifest_desc]}
    out = _Layer()
    out.file("oci-layout", _json({"imageLayoutVersion": "1.0.0"}))
    out.file("index.json", _json(index))
    out.directory("blobs")
    out.directory("blobs/sha256")
    for digest, data in sorted(blobs.items()):
        out.file(f"blobs/sha256/{digest.split(':', 1)[1]}", data)
    return out.bytes()


def docker_archive(ref: str, layer: bytes, entrypoint: list[str], cmd: list[str]) -> bytes:
    """The same image as a docker-archive (`docker save` layout), which dockerd 20.10 loads."""
    blobs: dict[str, bytes] = {}
    layer_digest = str(_blob(blobs, layer)["digest"])
    config = {
        "architecture": _arch(),
        "os": "linux",
        "created": "1970-01-01T00:00:00Z",
        "config": {"Entrypoint": entrypoint, "Cmd": cmd, "WorkingDir": "/"},
        "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
    }
    config_bytes = _json(config)
    config_name = hashlib.sha256(config_bytes).hexdigest() + ".json"
    layer_dir = layer_digest.split(":", 1)[1]
    manifest = [{"Config": config_name, "RepoTags": [ref], "Layers": [f"{layer_dir}/layer.tar"]}]
    out = _Layer()
    out.file(config_name, config_bytes)
    out.directory(layer_dir)
    out.file(f"{layer_dir}/layer.tar", layer)
    out.file("manifest.json", _json(manifest))
    return out.bytes()


def docker_images() -> tuple[tuple[str, bytes], ...]:
    """(ref, docker-archive bytes) of the pause and busybox images."""
    return (
        (PAUSE_IMAGE, docker_archive(PAUSE_IMAGE, _pause_layer(), ["/pause", "-P"], [])),
        (BUSYBOX_IMAGE, docker_archive(BUSYBOX_IMAGE, _busybox_layer(), [], ["sh"])),
    )


def build(directory: Path) -> tuple[BuiltImage, ...]:
    """Write the pause and busybox image archives into `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    # Debian's catatonit runs as a pause container only with -P (pause mode).
    images: tuple[tuple[str, str, bytes, list[str], list[str]], ...] = (
        (PAUSE_IMAGE, "pause.tar", _pause_layer(), ["/pause", "-P"], []),
        (BUSYBOX_IMAGE, "busybox.tar", _busybox_layer(), [], ["sh"]),
    )
    built = []
    for ref, filename, layer, entrypoint, cmd in images:
        path = directory / filename
        path.write_bytes(oci_archive(ref, layer, entrypoint, cmd))
        built.append(BuiltImage(ref, path))
    return tuple(built)
