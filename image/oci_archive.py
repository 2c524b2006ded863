#!/usr/bin/env python3
"""Pack root filesystem directories into one image tarball, without a container engine.

Each directory becomes one layer (a gzipped tar, entries sorted, owners numeric, times
clamped to SOURCE_DATE_EPOCH), described by an image config and an OCI image manifest.
The tarball holds the same blobs twice described, as `docker save` writes since Docker
25: an OCI image layout (`oci-layout`, `index.json`, `blobs/sha256/`), which
`ctr images import`, `skopeo` and `podman load` read, and a docker-archive
`manifest.json`, which `docker load` and `podman load` read. The same inputs give the
same bytes, so the image's digest identifies what went into it.

Formats: the OCI image spec (opencontainers/image-spec: image-layout.md, manifest.md,
config.md, layer.md) and Docker's image spec v1.2 for manifest.json.

    oci_archive.py --layer DIR [--layer DIR ...] --tag NAME:TAG -o IMAGE.tar
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import os
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, cast

MEDIA_INDEX = "application/vnd.oci.image.index.v1+json"
MEDIA_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_CONFIG = "application/vnd.oci.image.config.v1+json"
MEDIA_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"

# Directories whose contents belong to the running container, never to an image: the
# runtime mounts its own /proc, /sys, /dev and a fresh /run and /tmp over them.
EMPTIED = frozenset({"proc", "sys", "dev", "run", "tmp"})

# GOARCH names, which the config's "architecture" uses, for `uname -m` names.
GOARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "ppc64le": "ppc64le"}


@dataclass(frozen=True)
class Blob:
    """One content-addressed file of the archive."""

    digest: str  # "sha256:<hex>"
    size: int
    path: Path  # where its bytes are, until the archive is written

    @property
    def name(self) -> str:
        """Its path inside the archive."""
        return "blobs/sha256/" + self.digest.split(":", 1)[1]


@dataclass(frozen=True)
class Layer:
    """A layer blob with the digest of its uncompressed tar (the config's diff_id)."""

    blob: Blob
    diff_id: str
    source: str


@dataclass
class ImageSpec:
    """What the image runs and how it is labelled."""

    tag: str  # e.g. podpath:0.1.0 (a bare name gets docker.io/library/ for containerd)
    cmd: list[str] = field(default_factory=list)
    entrypoint: list[str] = field(default_factory=list)
    env: list[str] = field(default_factory=list)
    labels: dict[str, str] = field(default_factory=dict)
    workdir: str = "/"
    architecture: str = GOARCH.get(os.uname().machine, os.uname().machine)
    created: int = 0  # unix time; 0 means SOURCE_DATE_EPOCH or now


class _HashingWriter(io.RawIOBase):
    """A file-like sink that hashes and counts what passes through it."""

    def __init__(self, target: IO[bytes] | gzip.GzipFile) -> None:
        self.target = target
        self.sha = hashlib.sha256()
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        view = memoryview(data)
        self.sha.update(view)
        self.size += len(view)
        self.target.write(view)
        return len(view)


def source_date_epoch() -> int:
    """SOURCE_DATE_EPOCH (reproducible-builds.org) when set, else now."""
    value = os.environ.get("SOURCE_DATE_EPOCH", "")
    return int(value) if value.isdigit() else int(time.time())


def _walk(root: Path) -> Iterator[tuple[Path, str]]:
    """Every path below `root` with its name in the layer, parents first, names sorted."""
    todo = [(root, "")]
    while todo:
        directory, prefix = todo.pop()
        with os.scandir(directory) as it:
            entries = sorted(it, key=lambda e: e.name)
        children = []
        for entry in entries:
            name = f"{prefix}{entry.name}"
            yield Path(entry.path), name
            if entry.is_dir(follow_symlinks=False) and not (prefix == "" and name in EMPTIED):
                children.append((Path(entry.path), name + "/"))
        # A stack: push in reverse so the walk stays in sorted order.
        todo.extend(reversed(children))


def _tarinfo(tar: tarfile.TarFile, path: Path, name: str, epoch: int) -> tarfile.TarInfo | None:
    # None for a socket (typeshed says otherwise): nothing an image can hold.
    info = cast("tarfile.TarInfo | None", tar.gettarinfo(str(path), name))
    if info is None:
        return None
    info.uname = info.gname = ""
    info.mtime = min(int(info.mtime), epoch)
    if info.isdir():
        info.name = name + "/"
    return info


def write_layer_tar(root: Path, out: IO[bytes], epoch: int) -> None:
    """Write the tar of one layer: every file below `root`, deterministic."""
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for path, name in _walk(root):
            info = _tarinfo(tar, path, name, epoch)
            if info is None:
                continue
            if info.isreg():
                with open(path, "rb") as content:
                    tar.addfile(info, content)
            else:
                tar.addfile(info)


def make_layer(root: Path, workdir: Path, epoch: int, level: int = 6) -> Layer:
    """Tar and gzip one directory into a blob under `workdir`."""
    if not root.is_dir():
        raise SystemExit(f"oci_archive: {root} is not a directory")
    fd, tmp_name = tempfile.mkstemp(dir=workdir, suffix=".layer")
    with os.fdopen(fd, "wb") as raw:
        compressed = _HashingWriter(raw)
        # mtime=0 and no file name in the gzip header: the same tar gives the same bytes.
        with gzip.GzipFile(
            filename="", mode="wb", fileobj=compressed, mtime=0, compresslevel=level
        ) as gz:
            plain = _HashingWriter(gz)
            write_layer_tar(root, cast(IO[bytes], plain), epoch)
    digest = "sha256:" + compressed.sha.hexdigest()
    final = workdir / digest.split(":", 1)[1]
    os.replace(tmp_name, final)
    return Layer(Blob(digest, compressed.size, final), "sha256:" + plain.sha.hexdigest(), str(root))


def _json_blob(document: dict[str, Any], workdir: Path) -> Blob:
    data = json.dumps(document, sort_keys=True, separators=(",", ":")).encode()
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    path = workdir / digest.split(":", 1)[1]
    path.write_bytes(data)
    return Blob(digest, len(data), path)


def _iso(epoch: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def image_config(spec: ImageSpec, layers: Sequence[Layer], epoch: int) -> dict[str, Any]:
    """The image config (OCI config.md; also Docker's image JSON)."""
    config: dict[str, Any] = {"Env": spec.env, "WorkingDir": spec.workdir}
    if spec.cmd:
        config["Cmd"] = spec.cmd
    if spec.entrypoint:
        config["Entrypoint"] = spec.entrypoint
    if spec.labels:
        config["Labels"] = spec.labels
    return {
        "architecture": spec.architecture,
        "os": "linux",
        "created": _iso(epoch),
        "config": config,
        "rootfs": {"type": "layers", "diff_ids": [layer.diff_id for layer in layers]},
        "history": [
            {
                "created": _iso(epoch),
                "created_by": f"oci_archive.py --layer {Path(layer.source).name}",
            }
            for layer in layers
        ],
    }


def full_reference(tag: str) -> str:
    """The reference containerd names an image by: docker.io/library/ added to bare names."""
    name = tag.rsplit(":", 1)[0] if ":" in tag.rsplit("/", 1)[-1] else tag
    first = name.split("/", 1)[0]
    if "/" not in name:
        return f"docker.io/library/{tag}"
    if "." not in first and ":" not in first and first != "localhost":
        return f"docker.io/{tag}"
    return tag


def build(
    layer_dirs: Sequence[Path], spec: ImageSpec, out: Path, gzip_level: int = 6
) -> dict[str, Any]:
    """Write the image tarball; return a summary (digests, sizes) for the caller to print."""
    epoch = spec.created or source_date_epoch()
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=".oci-") as tmp:
        work = Path(tmp)
        layers = [make_layer(d, work, epoch, gzip_level) for d in layer_dirs]
        config = _json_blob(image_config(spec, layers, epoch), work)
        manifest_doc = {
            "schemaVersion": 2,
            "mediaType": MEDIA_MANIFEST,
            "config": {"mediaType": MEDIA_CONFIG, "digest": config.digest, "size": config.size},
            "layers": [
                {"mediaType": MEDIA_LAYER, "digest": layer.blob.digest, "size": layer.blob.size}
                for layer in layers
            ],
        }
        manifest = _json_blob(manifest_doc, work)
        tag = spec.tag.rsplit(":", 1)[1] if ":" in spec.tag.rsplit("/", 1)[-1] else "latest"
        index = {
            "schemaVersion": 2,
            "mediaType": MEDIA_INDEX,
            "manifests": [
                {
                    "mediaType": MEDIA_MANIFEST,
                    "digest": manifest.digest,
                    "size": manifest.size,
                    "annotations": {
                        "io.containerd.image.name": full_reference(spec.tag),
                        "org.opencontainers.image.ref.name": tag,
                    },
                }
            ],
        }
        docker_manifest = [
            {
                "Config": config.name,
                "RepoTags": [spec.tag],
                "Layers": [layer.blob.name for layer in layers],
            }
        ]
        files: list[tuple[str, bytes | Path]] = [
            ("blobs/", b""),
            ("blobs/sha256/", b""),
            *((b.name, b.path) for b in [*(layer.blob for layer in layers), config, manifest]),
            ("index.json", _dumps(index)),
            ("manifest.json", _dumps(docker_manifest)),
            ("oci-layout", _dumps({"imageLayoutVersion": "1.0.0"})),
        ]
        tmp_out = work / "image.tar"
        _write_archive(tmp_out, files, epoch)
        os.replace(tmp_out, out)
    return {
        "tag": spec.tag,
        "reference": full_reference(spec.tag),
        "manifest": manifest.digest,
        "config": config.digest,
        "layers": [
            {
                "source": layer.source,
                "digest": layer.blob.digest,
                "size": layer.blob.size,
                "diff_id": layer.diff_id,
            }
            for layer in layers
        ],
        "archive": str(out),
        "archive_size": out.stat().st_size,
    }


def _dumps(document: Any) -> bytes:
    return json.dumps(document, sort_keys=True, indent=2).encode() + b"\n"


def _write_archive(path: Path, files: Sequence[tuple[str, bytes | Path]], epoch: int) -> None:
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        for name, content in files:
            info = tarfile.TarInfo(name)
            info.mtime = epoch
            info.uid = info.gid = 0
            if name.endswith("/"):
                info.type = tarfile.DIRTYPE
                info.mode = 0o755
                tar.addfile(info)
            elif isinstance(content, Path):
                info.mode = 0o644
                info.size = content.stat().st_size
                with open(content, "rb") as fp:
                    tar.addfile(info, fp)
            else:
                info.mode = 0o644
                info.size = len(content)
                tar.addfile(info, io.BytesIO(content))


def unpack(archive: Path, dest: Path) -> dict[str, Any]:
    """Extract an image tarball's layers in order into `dest`, as a runtime would; the config.

    Used by tests to run the image's root filesystem without an engine; whiteouts are
    not handled (the layers this script writes have none).
    """
    with tarfile.open(archive) as outer:
        index = json.load(_member(outer, "index.json"))
        manifest = json.load(_member(outer, _blob_name(index["manifests"][0]["digest"])))
        config = json.load(_member(outer, _blob_name(manifest["config"]["digest"])))
        dest.mkdir(parents=True, exist_ok=True)
        for layer in manifest["layers"]:
            with tarfile.open(
                fileobj=_member(outer, _blob_name(layer["digest"])), mode="r|gz"
            ) as t:
                # Image layers hold absolute symlinks, device-free trees and root-owned
                # files: "tar" keeps them as they are (the "data" filter would refuse).
                t.extractall(dest, filter="tar")
    result: dict[str, Any] = config
    return result


def _blob_name(digest: str) -> str:
    return "blobs/sha256/" + digest.split(":", 1)[1]


def _member(tar: tarfile.TarFile, name: str) -> IO[bytes]:
    fp = tar.extractfile(name)
    if fp is None:
        raise SystemExit(f"oci_archive: {name} is not a file in the archive")
    return fp


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: build an image tarball from layer directories."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--layer", action="append", required=True, type=Path, metavar="DIR")
    p.add_argument("--tag", required=True, help="NAME:TAG, e.g. podpath:0.1.0")
    p.add_argument("--cmd", default="[]", help="the image's Cmd as a JSON list")
    p.add_argument("--entrypoint", default="[]", help="the image's Entrypoint as a JSON list")
    p.add_argument("--env", action="append", default=[], metavar="NAME=VALUE")
    p.add_argument("--label", action="append", default=[], metavar="NAME=VALUE")
    p.add_argument(
        "--gzip-level", type=int, default=6, choices=range(1, 10), help="1 fast .. 9 small"
    )
    p.add_argument("-o", "--output", required=True, type=Path, metavar="IMAGE.tar")
    args = p.parse_args(argv)
    for root in args.layer:
        if not root.is_dir():
            p.error(f"--layer {root}: not a directory")
    spec = ImageSpec(
        tag=args.tag,
        cmd=json.loads(args.cmd),
        entrypoint=json.loads(args.entrypoint),
        env=list(args.env),
        labels=dict(label.split("=", 1) for label in args.label),
    )
    summary = build(args.layer, spec, args.output, args.gzip_level)
    json.dump(summary, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
