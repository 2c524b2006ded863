"""Container environments: values redacted, one shared string per variable name."""

from __future__ import annotations

from podpath.collectors.runtime.environments import Environments


def test_values_are_redacted_and_each_name_is_one_shared_string() -> None:
    envs = Environments()
    a = envs.of(["PATH=/bin", "DB_PASSWORD=hunter2", "WEB_PORT=tcp://10.96.0.9:80"])
    b = envs.of(["WEB_PORT=tcp://10.96.0.9:80", "DB_PASSWORD=other", "HOSTNAME=b"])
    assert a == ("PATH=<redacted>", "DB_PASSWORD=<redacted>", "WEB_PORT=<redacted>")
    assert b == ("WEB_PORT=<redacted>", "DB_PASSWORD=<redacted>", "HOSTNAME=<redacted>")
    assert a[1] is b[1] and a[2] is b[0]  # shared, whatever the value or the order


def test_values_are_kept_when_asked() -> None:
    env = ["PATH=/bin", "DB_PASSWORD=hunter2"]
    assert Environments(redact=False).of(env) == ("PATH=/bin", "DB_PASSWORD=hunter2")


def test_a_malformed_env_list_is_read_as_text() -> None:
    """Not strings (a hand-edited spec): shown as text, 1 and True never confused."""
    envs = Environments()
    assert envs.of([1, True, "A=1", "NOEQUALS"]) == (
        "1=<redacted>",
        "True=<redacted>",
        "A=<redacted>",
        "NOEQUALS=<redacted>",
    )
    assert envs.of([True]) == ("True=<redacted>",)
    assert envs.of("A=1") == () and envs.of(None) == ()


def test_a_real_kubelet_env_gives_its_links_by_block_by_set_and_alone() -> None:
    """kind's coredns spec (kubelet's own order): the first container's links are found
    by the expression; a second container with the same env finds them as a known block,
    a third with its variables in another order as a known set; each equal to
    keep_service_links of its env, and each env short of exactly those variables."""
    from runtime_tree import load

    from podpath.kubelet_env import keep_service_links

    spec = load("runtime/kind-containerd-crictl-inspect-container-coredns.json")
    env = spec["info"]["runtimeSpec"]["process"]["env"]
    want = keep_service_links(env)
    assert any(v.startswith("KUBE_DNS_PORT_53_UDP=") for v in want)
    envs = Environments(redact=False)
    # A variable of its own after the block: cutting the block must leave it.
    mine = "LANG=C.UTF-8"
    for cid, order in (("first", env), ("block", [*env, mine]), ("set", [*env[::-1], mine])):
        rest, left_out = envs.without_links(order, cid)
        assert sorted(envs.service_links[cid]) == sorted(want), cid
        assert sorted(rest) == sorted(v for v in order if v not in want), cid
        assert left_out == len(want), cid
        assert cid == "first" or mine in rest
