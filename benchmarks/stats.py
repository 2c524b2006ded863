"""Figures of the benchmark: samples, their median and spread, and the goal they are held to."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Stat:
    """Repeated measurements of one quantity (seconds, bytes or MiB)."""

    samples: tuple[float, ...]

    @property
    def median(self) -> float:
        """The median sample (what the table shows)."""
        return statistics.median(self.samples)

    @property
    def low(self) -> float:
        """The smallest sample."""
        return min(self.samples)

    @property
    def high(self) -> float:
        """The largest sample."""
        return max(self.samples)

    @property
    def spread(self) -> float:
        """Half the range, relative to the median (0.05 = +-5 %); 0 for one sample."""
        if len(self.samples) < 2 or self.median == 0:
            return 0.0
        return (self.high - self.low) / 2 / self.median


def stat(samples: Sequence[float]) -> Stat:
    """A Stat from samples; ValueError when there are none."""
    if not samples:
        raise ValueError("a figure needs at least one sample")
    return Stat(tuple(float(s) for s in samples))


@dataclass(frozen=True)
class Goal:
    """What a figure must meet: podpath/baseline ratio at most `limit`, or podpath below it."""

    kind: str  # "ratio" (podpath/baseline <= limit) or "max" (podpath median < limit)
    limit: float

    def met(self, podpath: Stat, baseline: Stat | None) -> bool | None:
        """True/False when it can be judged, None when the baseline is missing."""
        if self.kind == "ratio":
            if baseline is None or baseline.median == 0:
                return None
            return podpath.median / baseline.median <= self.limit
        return podpath.median < self.limit


@dataclass(frozen=True)
class Figure:
    """One row of the table: a podpath measurement, an optional baseline and goal."""

    key: str
    title: str
    unit: str  # "s", "MiB" or "bytes"
    podpath: Stat
    baseline: Stat | None = None
    baseline_label: str = ""
    goal: Goal | None = None
    note: str = ""
    extra: dict[str, float] = field(default_factory=dict)

    @property
    def ratio(self) -> float | None:
        """podpath median / baseline median, when there is a baseline."""
        if self.baseline is None or self.baseline.median == 0:
            return None
        return self.podpath.median / self.baseline.median

    @property
    def met(self) -> bool | None:
        """Whether the goal is met (None: no goal, or not judgeable)."""
        return None if self.goal is None else self.goal.met(self.podpath, self.baseline)
