"""Container images from containerd's metadata store, for pods read from its files.

containerd keeps each container's record in <root>/io.containerd.metadata.v1.bolt/meta.db,
bucket v1/<namespace>/containers/<id>, its image under the key "image" (metadata/
buckets.go and containers.go in 1.6, core/metadata/ in 2.x). 1.6 and 1.7 write the
sandbox's (pause) image nowhere else on disk, so without an answer from CRI this is where
it is. The file is read without a lock (containerd holds bbolt's exclusive one; a reader
taking the shared lock would wait for it) and only the pages on the way to each key.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from podpath.collectors.hostroot import CollectorError, HostRoot, Vanished
from podpath.collectors.runtime.bolt import BoltError, BoltReader
from podpath.snapshot.model import Gap

META_DB = "io.containerd.metadata.v1.bolt/meta.db"
NAMESPACE = b"k8s.io"


def container_images(
    host: HostRoot, roots: Iterable[str], ids: Iterable[str], gaps: list[Gap]
) -> dict[str, str]:
    """id -> image of the containers of `ids` that a metadata store under `roots` records."""
    wanted = list(dict.fromkeys(ids))
    found: dict[str, str] = {}
    for root in dict.fromkeys(roots):
        if not wanted:
            break
        path = f"{root.rstrip('/')}/{META_DB}"
        try:
            fd = host.open(path)
        except Vanished:
            continue
        except CollectorError as err:
            gaps.append(err.to_gap())
            continue
        try:
            reader = BoltReader(fd)
            for cid in wanted:
                image = reader.get(b"v1", NAMESPACE, b"containers", cid.encode(), b"image")
                if image:
                    found[cid] = image.decode("utf-8", "surrogateescape")
        except (BoltError, OSError) as err:
            gaps.append(Gap(path, f"containerd's metadata store not read: {err}", "error"))
        finally:
            os.close(fd)
        wanted = [cid for cid in wanted if cid not in found]
    return found
