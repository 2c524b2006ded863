"""A refresh's CRI listing keeps the statuses of what is listed as it was (cri_listing's
`--known`), and takes them from the listing it refreshes (cri_state.read_listings).

The child's side against real containerd is in tests/lab/test_refresh_lab.py; these
check the keys and the merge on documents of the child's shape.
"""

from __future__ import annotations

import json
from typing import Any

from podpath.collectors.runtime.cri_listing import _split_known, status_key
from podpath.collectors.runtime.cri_state import (
    CriListing,
    _statuses,
    _with_kept,
    kept_for_refresh,
)
from podpath.collectors.runtime.environments import Environments

SANDBOX = {"id": "5b1f", "state": "SANDBOX_READY", "created_at": 1796702093141168000}
CONTAINER = {"id": "9c2e", "state": "CONTAINER_RUNNING", "created_at": 1796702094000000000}


def _previous() -> dict[str, Any]:
    """A listing as the child prints it: statuses with the fields podpath reads."""
    return {
        "sandboxes": [
            {
                "status": {**SANDBOX, "network": {"ip": "10.244.1.5"}},
                "info": {"pid": 4242, "netns_path": "/var/run/netns/cni-1"},
            }
        ],
        "containers": [
            {
                "status": {**CONTAINER, "started_at": 1796702095000000000},
                "info": {"pid": 4250, "env": ["PATH=/bin", "DB_PASSWORD=hunter2"]},
                "pod_sandbox_id": "5b1f",
                "verbose": True,
            }
        ],
    }


def test_a_listed_item_and_its_status_have_one_key() -> None:
    """ListPodSandbox/ListContainers items and their statuses carry id, state and creation
    time alike: the key made of a listed item finds the status kept for it."""
    kept = _statuses(_previous())
    assert status_key(dict(SANDBOX, metadata={"name": "web-0"}), True) in kept
    assert status_key(dict(CONTAINER, image={"image": "nginx"}), True) in kept


def test_a_changed_state_or_a_different_question_is_asked_again() -> None:
    """A container that exited, or one now asked verbose (its bundle gone), is not kept."""
    kept = _statuses(_previous())
    assert status_key(dict(CONTAINER, state="CONTAINER_EXITED"), True) not in kept
    assert status_key(CONTAINER, False) not in kept
    assert status_key(dict(SANDBOX, state="SANDBOX_NOTREADY"), True) not in kept


def test_same_entries_are_the_kept_statuses() -> None:
    """The merged listing holds the kept entries where the child answered "same"."""
    previous = _previous()
    asked = {"status": {"id": "77aa", "state": "CONTAINER_CREATED"}, "info": {}}
    child = {
        "socket": "/run/containerd/containerd.sock",
        "version": {"runtime_name": "containerd"},
        "sandboxes": [{"same": "5b1f"}],
        "containers": [asked, {"same": "9c2e", "pod_sandbox_id": "5b1f"}],
    }
    merged = _with_kept(child, _statuses(previous))
    assert merged is not None
    assert merged["sandboxes"] == previous["sandboxes"]
    assert merged["containers"] == [asked, *previous["containers"]]
    assert merged["version"] == child["version"]


def test_a_same_entry_not_kept_makes_no_listing() -> None:
    """An answer naming a status the caller does not hold is refused, not shown without
    it (pods then come from the runtime's files, with a gap)."""
    child = {"sandboxes": [{"same": "5b1f"}], "containers": [{"same": "0000"}]}
    assert _with_kept(child, _statuses(_previous())) is None
    assert _with_kept({"sandboxes": [{"same": ["5b1f"]}]}, _statuses(_previous())) is None


def test_the_child_reads_known_keys_beside_container_ids() -> None:
    ids, known = _split_known(["9c2e", "--known", "5b1f/SANDBOX_READY/1/verbose", "77aa"])
    assert ids == {"9c2e", "77aa"} and known == {"5b1f/SANDBOX_READY/1/verbose"}


def test_a_kept_listing_holds_no_environment_value() -> None:
    """What a refresh keeps shows each env as the snapshot does: values redacted (the
    snapshot never stores them), and a status kept from it shows the same env again."""
    envs = Environments(redact=True)
    listing = CriListing("containerd", "/run/containerd/containerd.sock", _previous())
    (kept,) = kept_for_refresh([listing], envs.of)
    assert "hunter2" not in json.dumps(kept.document)
    (entry,) = kept.document["containers"]
    assert entry["info"]["env"] == ("PATH=<redacted>", "DB_PASSWORD=<redacted>")
    # The next snapshot takes it as shown, and shows what a fresh listing gives it.
    assert Environments(redact=True).of(entry["info"]["env"]) == Environments(redact=True).of(
        listing.document["containers"][0]["info"]["env"]
    )
    assert _statuses(kept.document).keys() == _statuses(listing.document).keys()
    # Told not to redact, the snapshot shows the values, and the refresh keeps them.
    (shown,) = kept_for_refresh([listing], Environments(redact=False).of)
    assert shown.document["containers"][0]["info"]["env"][1] == "DB_PASSWORD=hunter2"
