"""Container environments as a snapshot keeps them: values redacted, each variable made once.

Every replica of a workload carries the same variables, and with Service links on
(kubelet's default) every pod of a namespace carries one set per Service: the 10k-Service
benchmark node gives each of its 250 pods the same ~26k variables (BENCHMARKS.md), each
pod in its own order. Each distinct "NAME=value" is redacted once and the one
"NAME=<redacted>" string is shared by every container that has it. The values are held
only while one snapshot is collected (the Environments of collect_pods), never stored.
"""

from __future__ import annotations

from typing import Any

REDACTED = "<redacted>"


class _Redacted(dict[Any, str]):
    """ "NAME=value" -> "NAME=<redacted>", made on first sight and shared by name."""

    def __init__(self) -> None:
        super().__init__()
        self._names: dict[str, str] = {}

    def __missing__(self, variable: Any) -> str:
        name = str(variable).partition("=")[0]
        text = self._names.get(name)
        if text is None:
            text = self._names[name] = f"{name}={REDACTED}"
        if type(variable) is str:  # as keys, 1 and True would be one
            self[variable] = text
        return text


class Environments:
    """The env tuples of one snapshot's containers (values redacted unless told not to).

    Each variable is looked up whole: every pod of a namespace repeats the same
    Service-link variables, values and all, so after the first pod a variable costs one
    dict lookup, done by map() without a Python step per variable (26k variables x 250
    pods took 4.6 s in a Python loop; the order of a pod's variables is its own).
    """

    def __init__(self, *, redact: bool = True) -> None:
        self.redact = redact
        self._redacted = _Redacted()

    def of(self, value: Any) -> tuple[str, ...]:
        """The env of a runtime spec's `process.env` (or Docker's Config.Env) list."""
        if not isinstance(value, list):
            return ()
        if not self.redact:
            return tuple(map(str, value))
        return tuple(map(self._redacted.__getitem__, value))
