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


def _service_links(services: int) -> list[str]:
    """kubelet's variables for `services` Services of one port each (envvars.FromServices)."""
    links = []
    for i in range(services):
        name, ip = f"SVC_{i}", f"10.96.0.{i + 1}"
        links += [
            f"{name}_SERVICE_HOST={ip}",
            f"{name}_SERVICE_PORT=80",
            f"{name}_PORT=tcp://{ip}:80",
            f"{name}_PORT_80_TCP=tcp://{ip}:80",
            f"{name}_PORT_80_TCP_PROTO=tcp",
            f"{name}_PORT_80_TCP_PORT=80",
            f"{name}_PORT_80_TCP_ADDR={ip}",
        ]
    return links


def test_a_known_set_in_another_order_is_known_only_when_whole() -> None:
    """kubelet orders each container's variables anew: a set seen before is known again
    in any order, and not when one of it is missing (even with another given twice, so
    the count matches) or when a candidate of its own comes with it. Each container's
    links equal keep_service_links of its own env, and its env keeps its own variables
    in order, twice where given twice."""
    import random

    from podpath.kubelet_env import keep_service_links

    links = _service_links(20)
    envs = Environments(redact=False)
    envs.without_links(["PATH=/bin", *links], "first")
    shuffled = random.Random(1).sample(links, len(links))
    mixed = ["PATH=/bin", *shuffled[:50], "HOSTNAME=a", *shuffled[50:], "HOSTNAME=a"]
    short_one = [v for v in mixed if v != "SVC_3_SERVICE_HOST=10.96.0.4"] + [shuffled[9]]
    another = _service_links(21)[-7:]  # a Service of its own, in the middle
    with_own = [*mixed[:30], *another, *mixed[30:]]
    for cid, env in (("set", mixed), ("short", short_one), ("own", with_own)):
        want = keep_service_links(env)
        rest, left_out = envs.without_links(env, cid)
        assert sorted(envs.service_links[cid]) == sorted(want), cid
        names = {v.partition("=")[0] for v in want}
        assert list(rest) == [v for v in env if v.partition("=")[0] not in names], cid
        assert left_out == len(env) - len(rest), cid
    assert sorted(envs.service_links["set"]) == sorted(keep_service_links(links))
    assert envs.without_links(mixed, "again")[0] == ("PATH=/bin", "HOSTNAME=a", "HOSTNAME=a")
    assert "SVC_3_SERVICE_HOST=10.96.0.4" not in envs.service_links["short"]
    assert set(another) < set(envs.service_links["own"])


def test_a_known_set_held_whole_inside_a_larger_env_is_not_its_set() -> None:
    """Two namespaces' sets, one inside the other: a container of the larger, in an
    order of its own, holds all of the smaller one and is still given its own links."""
    import random

    from podpath.kubelet_env import keep_service_links

    links = _service_links(20)
    envs = Environments(redact=False)
    envs.without_links(["PATH=/bin", *links], "larger")
    envs.without_links(["PATH=/bin", *links[:-7]], "smaller")  # tried first from now on
    for seed in range(3):
        env = ["PATH=/bin", *random.Random(seed).sample(links, len(links)), "HOSTNAME=a"]
        rest, left_out = envs.without_links(env, f"c{seed}")
        assert sorted(envs.service_links[f"c{seed}"]) == sorted(keep_service_links(links))
        assert rest == ("PATH=/bin", "HOSTNAME=a") and left_out == len(links)


def test_a_variable_holding_a_nul_is_one_variable() -> None:
    """No execve passes a variable holding a NUL, but a hand-made spec may: it stays one
    variable, never cut as two, whether the links are known by block, by set or new."""
    from podpath.kubelet_env import keep_service_links

    links = _service_links(3)
    # A whole Service's variables inside one variable, and a NUL alone.
    hiding = "\0".join(["X=a", *_service_links(10)[-7:]])
    bare = "Y=a\0b"
    envs = Environments(redact=False)
    envs.without_links(["PATH=/bin", *links], "first")
    cases = {
        "block": [bare, *links, "PATH=/bin"],
        "set": [hiding, *links[::-1]],
        "new": [hiding, *links[:-1]],
    }
    for cid, env in cases.items():
        rest, left_out = envs.without_links(env, cid)
        want = keep_service_links(env)
        assert sorted(envs.service_links[cid]) == sorted(want), cid
        names = {v.partition("=")[0] for v in want}
        assert list(rest) == [v for v in env if v.partition("=")[0] not in names], cid
        assert rest[0] == env[0] and left_out == len(env) - len(rest), cid
    assert envs.service_links["block"] == envs.service_links["first"]
