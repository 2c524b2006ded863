"""Containers' env without the Service-link variables service_links already holds."""

from __future__ import annotations

from podpath.collectors.proc.service_links import without_service_link_env
from podpath.snapshot.model import Container, Pod, ServiceLinkEnv

LINKS = ("WEB_SERVICE_HOST=10.96.0.9", "WEB_SERVICE_PORT=80", "WEB_PORT=tcp://10.96.0.9:80")


def _pod(name: str, env: tuple[str, ...], *earlier: Container) -> Pod:
    pause = Container("POD", f"{name}-pause", "sandbox", env=("PATH=<redacted>",))
    app = Container("app", f"{name}-app", "container", pids=(10 + ord(name[0]) - 97,), env=env)
    return Pod(
        "default", name, f"uid-{name}", f"sb-{name}", None, containers=(pause, app, *earlier)
    )


def _redacted(*variables: str) -> tuple[str, ...]:
    return tuple(v.partition("=")[0] + "=<redacted>" for v in variables)


def test_links_leave_env_and_are_counted_through_same_as() -> None:
    env = _redacted("PATH=/bin", "HOSTNAME=a", *LINKS, "WEB_PORT_HINT=1")
    pods = (_pod("a", env), _pod("b", env), _pod("c", env))
    links = (
        ServiceLinkEnv("default", "a", "app", 10, LINKS),
        ServiceLinkEnv("default", "b", "app", 11, (), same_as="default/a/app"),
    )
    a, b, c = without_service_link_env(pods, links)
    for pod in (a, b):
        pause, app = pod.containers
        want = ("PATH=<redacted>", "HOSTNAME=<redacted>", "WEB_PORT_HINT=<redacted>")
        assert app.env == want
        assert app.service_link_env == 3
        assert pause.env == ("PATH=<redacted>",) and pause.service_link_env == 0
    # No Service-link record (not running, or its environ unreadable): env is kept whole.
    assert c.containers[1].env == env and c.containers[1].service_link_env == 0


def test_only_the_attempt_whose_environ_was_read_is_trimmed() -> None:
    """A restarted container: the exited attempt (same name, no PID) keeps its env."""
    env = _redacted("PATH=/bin", *LINKS)
    exited = Container("app", "a-app-0", "container", env=env, state="exited")
    (pod,) = without_service_link_env(
        (_pod("a", env, exited),), (ServiceLinkEnv("default", "a", "app", 10, LINKS),)
    )
    assert pod.containers[1].service_link_env == 3
    assert pod.containers[2].env == env and pod.containers[2].service_link_env == 0


def test_values_kept_with_show_env_are_trimmed_by_name() -> None:
    env = ("PATH=/bin", "WEB_SERVICE_HOST=10.96.0.9", "WEB_SERVICE_PORT=80")
    (pod,) = without_service_link_env(
        (_pod("a", env),), (ServiceLinkEnv("default", "a", "app", 10, LINKS),)
    )
    assert pod.containers[1].env == ("PATH=/bin",)
    assert pod.containers[1].service_link_env == 2


def test_no_links_returns_the_same_pods() -> None:
    pods = (_pod("a", ("PATH=<redacted>",)),)
    assert without_service_link_env(pods, ()) is pods


def test_the_candidates_alone_give_the_same_links() -> None:
    """Of a whole environ, the variables named *_PORT* or *_SERVICE_HOST* decide the links:
    kubelet's are kept, a lookalike or an app's own are dropped either way."""
    from podpath.collectors.runtime.environments import candidates
    from podpath.kubelet_env import keep_service_links

    environ = [
        "PATH=/bin",
        "HOSTNAME=web-1",
        "WEB_SERVICE_HOST=10.96.0.9",
        "WEB_SERVICE_PORT=80",
        "WEB_SERVICE_PORT_HTTP=80",
        "WEB_PORT=tcp://10.96.0.9:80",
        "WEB_PORT_80_TCP=tcp://10.96.0.9:80",
        "WEB_PORT_80_TCP_PROTO=tcp",
        "WEB_PORT_80_TCP_PORT=80",
        "WEB_PORT_80_TCP_ADDR=10.96.0.9",
        "WEB_FOO=1",
        "MY_PORT=8080",
        "FAKE_SERVICE_HOST=10.96.0.7",
        "X=WEB_PORT=1",
    ]
    raw = ("\0".join(environ) + "\0").encode()
    kept = candidates(raw).decode().split("\0")
    assert "PATH=/bin" not in kept and "X=WEB_PORT=1" not in kept
    assert keep_service_links(kept) == keep_service_links(environ)
    assert len(keep_service_links(environ)) == 8  # the WEB_ ones


def test_a_known_block_gives_the_candidates_the_expression_would() -> None:
    """Another pod's block is used only when it is whole variables and all there is."""
    from podpath.collectors.runtime.environments import candidates

    links = ["WEB_SERVICE_HOST=10.96.0.9", "WEB_SERVICE_PORT=80", "WEB_PORT=tcp://10.96.0.9:80"]
    block = candidates(("\0".join(["HOSTNAME=a", *links, "HOME=/"]) + "\0").encode())
    environs = {
        "same block, own variables around it": ["PATH=/b", "HOSTNAME=b", *links, "HOME=/"],
        "one more Service-link variable": ["HOSTNAME=c", *links, "DB_SERVICE_HOST=10.96.0.2"],
        "one fewer": ["HOSTNAME=d", *links[:2]],
        "another order": ["HOSTNAME=e", *reversed(links)],
        "block inside a longer variable": ["HOSTNAME=f", "XWEB_SERVICE_HOST=10.96.0.9", *links[1:]],
        "block cut at the end": ["HOSTNAME=g", *links[:2], links[2] + "0"],
        "no candidates": ["HOSTNAME=h"],
        "its first variable earlier, in a value": ["NOTE=" + links[0], *links],
        "its first variable earlier, cut short": [links[0][:-1], *links],
    }
    for why, environ in environs.items():
        raw = ("\0".join(environ) + "\0").encode()
        assert candidates(raw, [b"", block]) == candidates(raw), why
    same = ("\0".join(environs["same block, own variables around it"]) + "\0").encode()
    assert candidates(same, [block]) is block  # found, not made again
    # The block is found past an earlier copy of its first variable's text.
    later = ("\0".join(environs["its first variable earlier, in a value"]) + "\0").encode()
    assert candidates(later, [block]) is block
