"""Runs inside a lab node: a snapshot, then, after a line on stdin, a refresh of it and a
fresh snapshot; prints whether their pods and Service links are equal, as JSON.

The bundles (config.json) the refresh read are counted: a refresh of an unchanged node
reads none, and one after a container was replaced reads that container's. So are the
sandboxes and containers whose status the refresh's CRI listing asked the runtime again,
and those it kept (cri_listing's `{"same": ID}` entries).
"""

from __future__ import annotations

import json
import sys
from typing import Any

from podpath.collectors.commands import CommandRunner
from podpath.collectors.hostroot import read_json_object
from podpath.collectors.runtime import pods as pods_module
from podpath.collectors.runtime.cri_state import LISTING_MODULE
from podpath.collectors.snapshot import ALL_PARTS, take_snapshot
from podpath.snapshot.codec import to_jsonable

PARTS = ALL_PARTS - {"netfilter", "conntrack"}  # what pods are made of, and no more


def main() -> int:
    """Snapshot, wait for a line, refresh and snapshot again; print the comparison."""
    first = take_snapshot(parts=PARTS)
    print("ready", flush=True)
    sys.stdin.readline()
    read: list[str] = []
    original = read_json_object

    def counting(host: Any, path: str, *args: Any) -> Any:
        if path.endswith("/config.json"):
            read.append(path.split("/")[-2])
        return original(host, path, *args)

    asked: list[str] = []
    kept: list[str] = []
    run_module = CommandRunner.run_module

    def listing_seen(runner: CommandRunner, module: str, *args: Any, **kwargs: Any) -> Any:
        result = run_module(runner, module, *args, **kwargs)
        if module == LISTING_MODULE and result.returncode == 0:
            doc = json.loads(result.stdout)
            for entry in [*doc["sandboxes"], *doc["containers"]]:
                (kept if "same" in entry else asked).append(
                    entry.get("same") or entry["status"]["id"]
                )
        return result

    pods_module.__dict__["read_json_object"] = counting
    CommandRunner.run_module = listing_seen  # type: ignore[method-assign,assignment]
    refreshed = take_snapshot(previous=first, parts=PARTS)
    CommandRunner.run_module = run_module  # type: ignore[method-assign]
    pods_module.__dict__["read_json_object"] = original
    fresh = take_snapshot(parts=PARTS)
    result = {
        "pods_equal": refreshed.pods == fresh.pods,
        "links_equal": refreshed.service_links == fresh.service_links,
        "bundles_read": read,
        "cri_asked": asked,
        "cri_kept": kept,
        "pods": to_jsonable(refreshed.pods),
        "fresh_pods": to_jsonable(fresh.pods),
        "links": len(fresh.service_links or ()),
    }
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
