"""packaging/k9s/plugins.yaml: valid as k9s reads it, and the command k9s would run works."""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
PLUGINS = REPO / "packaging" / "k9s" / "plugins.yaml"
K9S = REPO / "tests" / "fixtures" / "realworld" / "k9s"
PLUGIN = Path(sys.executable).with_name("kubectl-podpath")

# k9s's key names for a plugin's shortCut (internal/ui/key.go: letters, digits,
# Shift-<letter|digit>, and tcell's names such as Ctrl-P).
_SHORTCUT = re.compile(r"[a-z0-9]|Shift-[A-Z0-9]|Ctrl-[A-Z]")
# k9s substitutes $NAME, $!NAME, ${NAME} in args (internal/view/env.go envRX).
_ENV = re.compile(r"(\$(!?)([\w\-]+))|(\$\{(!?)([\w\-%/: ]+)})")


def _load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(path.read_text())
    return data


def _check(path: Path) -> None:
    """What k9s checks when it loads a plugins file: its schema and the shortcut names."""
    schema = json.loads((K9S / "plugins.schema.json").read_text())
    data = _load(path)
    jsonschema.validate(data, schema)
    for name, plugin in data["plugins"].items():
        assert _SHORTCUT.fullmatch(plugin["shortCut"]), f"{name}: {plugin['shortCut']!r}"


@pytest.mark.parametrize("path", sorted(K9S.glob("*.yaml")), ids=lambda p: p.name)
def test_the_check_accepts_k9s_own_plugins(path: Path) -> None:
    """The same check passes the plugin files k9s itself ships (so it checks what k9s reads)."""
    _check(path)


def test_the_check_refuses_a_broken_entry(tmp_path: Path) -> None:
    """A plugin without a command, or with a key k9s has no name for, is refused."""
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "plugins:\n  x:\n    shortCut: Shift-P\n    description: d\n    scopes: [nodes]\n"
    )
    with pytest.raises(jsonschema.ValidationError):
        _check(bad)
    bad.write_text(
        "plugins:\n  x:\n    shortCut: Alt-Shift-P\n    description: d\n"
        "    scopes: [nodes]\n    command: kubectl\n"
    )
    with pytest.raises(AssertionError):
        _check(bad)


def test_podpath_plugins_are_valid_for_k9s() -> None:
    """Our file passes k9s's schema; node and pod scopes; dangerous and confirmed."""
    _check(PLUGINS)
    plugins = _load(PLUGINS)["plugins"]
    assert {tuple(p["scopes"]) for p in plugins.values()} == {("nodes",), ("pods",)}
    for plugin in plugins.values():
        assert plugin["dangerous"] is True and plugin["confirm"] is True
        assert plugin["background"] is False  # the TUI needs the terminal
    pod = next(p for p in plugins.values() if p["scopes"] == ["pods"])
    assert "$COL-NODE" in pod["args"]


def _substitute(arg: str, env: dict[str, str]) -> str:
    """k9s's substitution of one plugin argument (env.go Substitute, without booleans)."""
    for match in sorted(_ENV.findall(arg), key=lambda m: -len(m[0] or m[3])):
        whole = match[0] or match[3]
        key = (match[2] or match[5]).upper()
        if key in env:
            arg = arg.replace(whole, env[key])
    return arg


@pytest.mark.parametrize("scope", ["nodes", "pods"])
def test_k9s_command_runs_kubectl_debug_on_the_node(tmp_path: Path, scope: str) -> None:
    """What k9s runs for a selected node (or a pod on node7) becomes kubectl debug node/node7."""
    plugin = next(p for p in _load(PLUGINS)["plugins"].values() if p["scopes"] == [scope])
    env = {"CONTEXT": "prod", "KUBECONFIG": "", "NAMESPACE": "default"}
    env.update({"NAME": "node7"} if scope == "nodes" else {"NAME": "web-0", "COL-NODE": "node7"})
    args = [_substitute(a, env) for a in plugin["args"]]
    # The kubectl the plugin runs records its argv and answers `get pods` with no pods.
    log = tmp_path / "argv"
    fake = tmp_path / "fake-kubectl"
    fake.write_text(
        "#!/bin/sh\n"
        f'printf "%s\\n" "$*" >> {log}\n'
        'case "$*" in *" get pods "*) echo \'{"items": []}\';; esac\n'
    )
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    run_env = {
        **os.environ,
        "PATH": f"{PLUGIN.parent}:{os.environ['PATH']}",
        "KUBECTL": str(fake),
        "PODPATH_IMAGE": "registry.example/podpath:0.1.0",
    }
    done = subprocess.run(
        [plugin["command"], *args], capture_output=True, text=True, env=run_env, timeout=60
    )
    assert done.returncode == 0, done.stderr
    # The cluster is checked (pods listed) before the pod is made, and its pods listed after.
    check, debug, get = log.read_text().splitlines()
    assert check == get
    assert debug.startswith("--context=prod debug node/node7 --profile=sysadmin ")
    assert "--image=registry.example/podpath:0.1.0" in debug
    assert debug.endswith(" -it -- podpath tui --host-root /host")
    assert get == "--context=prod get pods -o json"
