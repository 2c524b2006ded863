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
