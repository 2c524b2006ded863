"""A refresh reuses a container parsed from its bundle only while it is provably the same
container (id, init PID and start time, the same bundle file, the same redaction), and the
env it keeps is what the Service-link trim would make of the whole env."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from runtime_tree import kind_specs

from podpath.collectors.hostroot import HostRoot, read_json_object
from podpath.collectors.proc.service_links import without_service_link_env
from podpath.collectors.runtime import pods as pods_module
from podpath.collectors.runtime.environments import Environments
from podpath.collectors.runtime.pods import CONTAINERD_RUNC, CONTAINERD_TASKS, BundleMemo
from podpath.kubelet_env import keep_service_links
from podpath.snapshot.model import Container, Pod, Process, ServiceLinkEnv

SB = "3eff2d8d3a4f3d3c0d1c4d4737c21b397bf7cbf77fd8a0fe370f6a59129cd535"
CT = "f3a240d625b1e97b859e29f81360fd79538021c46eaafb325dc0fa195c8e4b6a"
LINKS = [
    "WEB_SERVICE_HOST=10.96.0.9",
    "WEB_SERVICE_PORT=80",
    "WEB_PORT=tcp://10.96.0.9:80",
    "WEB_PORT_80_TCP=tcp://10.96.0.9:80",
    "WEB_PORT_80_TCP_PROTO=tcp",
    "WEB_PORT_80_TCP_PORT=80",
    "WEB_PORT_80_TCP_ADDR=10.96.0.9",
]
ENV = ["PATH=/bin", *LINKS[:3], "DB_PASSWORD=hunter2", *LINKS[3:], "HOSTNAME=web-1"]


@pytest.mark.parametrize("redact", [True, False])
def test_without_links_is_the_trim_of_the_whole_env(redact: bool) -> None:
    """The one pass gives what of() and without_service_link_env give, a value of the
    same name that is not kubelet's (set twice) included."""
    env = ["WEB_SERVICE_HOST=10.0.0.1", *ENV, "WEB_SERVICE_PORT=8080"]
    envs = Environments(redact=redact)
    kept, left_out = envs.without_links(env, CT)
    assert envs.service_links[CT] == keep_service_links(env)
    whole = Environments(redact=redact).of(env)
    app = Container("web", CT, "container", pids=(10,), env=whole)
    pod = Pod("default", "web-1", "uid", SB, None, containers=(app,))
    link = ServiceLinkEnv("default", "web-1", "web", 10, envs.service_links[CT])
    (trimmed,) = without_service_link_env((pod,), (link,))
    assert (kept, left_out) == (trimmed.containers[0].env, trimmed.containers[0].service_link_env)
    # The links but WEB_SERVICE_PORT (its last value is not kubelet's), and the first
    # WEB_SERVICE_HOST, whose name is a link's.
    assert left_out == 7


def _trim_of_whole(env: list[str], links: tuple[str, ...], redact: bool) -> tuple[Any, ...]:
    """What of() and without_service_link_env make of a running container's env."""
    whole = Environments(redact=redact).of(env)
    app = Container("web", CT, "container", pids=(10,), env=whole)
    pod = Pod("default", "web-1", "uid", SB, None, containers=(app,))
    link = ServiceLinkEnv("default", "web-1", "web", 10, links)
    (trimmed,) = without_service_link_env((pod,), (link,))
    return trimmed.containers[0].env, trimmed.containers[0].service_link_env


@pytest.mark.parametrize("redact", [True, False])
def test_a_known_block_is_cut_out_as_the_trim_would(redact: bool) -> None:
    """Later pods of a namespace hold the first one's block of variables: cut out whole,
    with their own variables of a link's name dropped too, as the trim drops them."""
    envs = Environments(redact=redact)
    envs.without_links(ENV, "first")  # learns the block
    others = {
        "own variables around it": ["A=1", *LINKS, "B=2", "C=3"],
        "a link's name without '='": ["WEB_SERVICE_PORT", "A=1", *LINKS],
        "a link's name again after it": [*LINKS, "WEB_PORT=tcp://10.0.0.1:1"],
        "a NUL in a variable": ["A=1\0B", *LINKS, "Z=9"],
        "the block at the start": [*LINKS],
    }
    for why, env in others.items():
        kept, left_out = envs.without_links(env, why)
        assert envs.service_links[why] == keep_service_links(env), why
        assert (kept, left_out) == _trim_of_whole(env, envs.service_links[why], redact), why


# Variables an env list is drawn from: two Services' links, an app's own *_PORT that is
# no link, a lookalike host, a link's name with another value, plain variables, and
# items no execve could give (a NUL inside, a number).
_DB_LINKS = ["DB_SERVICE_HOST=10.96.0.2", "DB_SERVICE_PORT=5432", "DB_PORT=tcp://10.96.0.2:5432"]
_OTHERS = [
    "MY_PORT=8080",
    "FAKE_SERVICE_HOST=10.96.0.7",
    "WEB_PORT=tcp://10.0.0.1:1",
    "PATH=/bin",
    "HOSTNAME=web-2",
    "A=1\0WEB_PORT_80_TCP_PORT=81",
    "WEB_SERVICE_PORT",
]
_ENV_ITEM = st.sampled_from([*LINKS, *_DB_LINKS, *_OTHERS])


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.lists(_ENV_ITEM, max_size=14),
            # Whole sets, as kubelet gives them, in an order of their own.
            st.permutations([*LINKS, "HOSTNAME=a"]),
            st.permutations([*LINKS, *_DB_LINKS, "PATH=/"]),
        ),
        min_size=1,
        max_size=6,
    ),
    st.booleans(),
)
def test_each_env_of_a_snapshot_is_trimmed_as_the_whole_env_would_be(
    envs_in_order: list[list[str]], redact: bool
) -> None:
    """Whatever sets of candidates containers before it held, and in whatever order, a
    container's env is trimmed as the three passes would trim it (its set known again
    or not)."""
    envs = Environments(redact=redact)
    for number, env in enumerate(envs_in_order):
        cid = f"c{number}"
        kept, left_out = envs.without_links(list(env), cid)
        assert envs.service_links[cid] == keep_service_links(env)
        assert (kept, left_out) == _trim_of_whole(env, envs.service_links[cid], redact)


def test_a_list_with_a_number_is_shown_whole_after_a_known_set() -> None:
    envs = Environments(redact=False)
    envs.without_links([*LINKS], "first")
    assert envs.without_links([*reversed(LINKS), 7], "second") == (
        (*reversed(LINKS), "7"),
        0,
    )


def _process(pid: int, start: int, cid: str) -> Process:
    return Process(
        pid=pid, start_time=start, ppid=1, comm="c", cmdline=("c",), uid=0, state="S",
        cgroup=f"/kubepods/cri-containerd-{cid}.scope",
    )  # fmt: skip


class Node:
    """A containerd node's files under a temporary root, and its processes."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.sandbox, self.app = kind_specs()
        self.app["process"]["env"] = list(ENV)
        self.procs = {SB: (1322, 5000), CT: (1478, 5100)}
        self.write_bundle(SB, self.sandbox)
        self.write_bundle(CT, self.app)
        for cid in self.procs:
            self.write_state(cid)

    def write_bundle(self, cid: str, spec: dict[str, Any]) -> None:
        path = self.root / CONTAINERD_TASKS.lstrip("/") / cid / "config.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(spec))

    def write_state(self, cid: str) -> None:
        pid, start = self.procs[cid]
        path = self.root / CONTAINERD_RUNC.lstrip("/") / cid / "state.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"init_process_pid": pid, "init_process_start": start}))

    def processes(self) -> tuple[Process, ...]:
        return tuple(_process(pid, start, cid) for cid, (pid, start) in self.procs.items())


def _collect(
    node: Node, previous: BundleMemo | None, redact: bool = True
) -> tuple[tuple[Pod, ...], BundleMemo, Environments]:
    memo, envs = BundleMemo(redact), Environments(redact=redact)
    with HostRoot(str(node.root)) as host:
        pods, _ = pods_module.collect_pods(
            host, node.processes(), None, envs=envs, previous=previous, memo=memo
        )
    return pods, memo, envs


@pytest.fixture
def bundles_read(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The ids whose config.json is read from now on."""
    read: list[str] = []
    original = read_json_object

    def counting(host: HostRoot, path: str, *args: Any) -> Any:
        if path.endswith("/config.json"):
            read.append(path.split("/")[-2])
        return original(host, path, *args)

    monkeypatch.setattr("podpath.collectors.runtime.pods.read_json_object", counting)
    return read


def test_an_unchanged_container_is_not_read_again(tmp_path: Path, bundles_read: list[str]) -> None:
    node = Node(tmp_path)
    first, memo, _ = _collect(node, None)
    assert sorted(bundles_read) == sorted([SB, CT])
    bundles_read.clear()
    again, _, envs = _collect(node, memo)
    assert bundles_read == []
    assert again == first
    assert envs.service_links[CT]  # given to collect_service_links as when read
    (app,) = [c for c in again[0].containers if c.id == CT]
    assert app.service_link_env == len(LINKS) and "PATH=<redacted>" in app.env


def _restarted(node: Node) -> None:
    node.procs[CT] = (1478, 9999)  # the same PID, another process
    node.write_state(CT)


def _new_pid(node: Node) -> None:
    node.procs[CT] = (2000, 5100)
    node.write_state(CT)


def _rewritten(node: Node) -> None:
    node.app["process"]["env"] = [*ENV, "NEW=1"]
    node.write_bundle(CT, node.app)


def _same_size_new_times(node: Node) -> None:
    path = node.root / CONTAINERD_TASKS.lstrip("/") / CT / "config.json"
    text = path.read_text().replace("hunter2", "hunter3")
    path.write_text(text)  # same size, same inode: only its times tell
    os.utime(path, ns=(1, 1))


@pytest.mark.parametrize(
    "change", [_restarted, _new_pid, _rewritten, _same_size_new_times], ids=lambda f: f.__name__
)
def test_a_changed_container_is_read_again(
    tmp_path: Path, bundles_read: list[str], change: Callable[[Node], None]
) -> None:
    """Another init process, or another bundle file: parsed anew, as a fresh read gives."""
    node = Node(tmp_path)
    _, memo, _ = _collect(node, None)
    change(node)
    bundles_read.clear()
    again, _, _ = _collect(node, memo)
    assert bundles_read == [CT]
    fresh, _, _ = _collect(node, None)
    assert again == fresh


def test_nothing_is_reused_across_redaction(tmp_path: Path, bundles_read: list[str]) -> None:
    node = Node(tmp_path)
    _, memo, _ = _collect(node, None, redact=True)
    bundles_read.clear()
    shown, _, _ = _collect(node, memo, redact=False)
    assert sorted(bundles_read) == sorted([SB, CT])
    (app,) = [c for c in shown[0].containers if c.id == CT]
    assert "DB_PASSWORD=hunter2" in app.env


def test_a_container_whose_init_is_gone_is_not_kept(tmp_path: Path) -> None:
    node = Node(tmp_path)
    del node.procs[CT]
    _, memo, _ = _collect(node, None)
    assert [cid for _, cid in memo.parsed] == [SB]


def test_one_set_in_each_pods_own_order_is_made_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """kubelet orders each container's variables its own way: the set is still one set,
    whose links are made once; a set giving a name twice is made for each order (its
    last value is kept)."""
    from podpath.collectors.runtime import environments
    from podpath.kubelet_env import keep_service_links as keep

    made: list[int] = []

    def counting(variables: list[str]) -> tuple[str, ...]:
        made.append(len(variables))
        return keep(variables)

    monkeypatch.setattr(environments, "keep_service_links", counting)
    envs = Environments()
    orders = [[*LINKS], LINKS[::-1], LINKS[3:] + LINKS[:3], [LINKS[6], *LINKS[:6]]]
    for n, order in enumerate(orders):
        env = [f"HOSTNAME=web-{n}", *order[:4], "PATH=/bin", *order[4:]]
        kept, left_out = envs.without_links(env, f"c{n}")
        assert envs.service_links[f"c{n}"] == keep(env)
        assert (kept, left_out) == _trim_of_whole(env, keep(env), True)
    assert made == [len(LINKS)]
    twice = [*LINKS, "WEB_SERVICE_PORT=81"]
    for n, env in enumerate([twice, twice[::-1]]):
        envs.without_links(env, f"t{n}")
        assert envs.service_links[f"t{n}"] == keep(env)
    assert len(made) == 3
