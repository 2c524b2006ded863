"""Figures of the benchmark: samples, their median and spread, and the goal they are held to."""

from __future__ import annotations

import math
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
    shape: str = ""  # which node shape it was measured on (bench.SHAPES)

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


def fit_exponent(scales: Sequence[float], values: Sequence[float]) -> float:
    """k of the power law value ~ scale**k that fits best (least squares on log-log).

    1 is linear, 2 quadratic; a fixed cost beside a linear one (start-up) gives k < 1.
    """
    if len(scales) != len(values) or len(scales) < 2:
        raise ValueError("an exponent needs at least two (scale, value) points")
    if min(scales) <= 0 or min(values) <= 0:
        raise ValueError("scales and values must be positive")
    xs = [math.log(x) for x in scales]
    ys = [math.log(y) for y in values]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    den = sum((x - mx) ** 2 for x in xs)
    if den == 0:
        raise ValueError("an exponent needs at least two different scales")
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / den


@dataclass(frozen=True)
class Growth:
    """One figure measured on the same node shape at several sizes (1x, 2x, 4x)."""

    key: str
    title: str
    unit: str
    shape: str
    scales: tuple[float, ...]  # relative sizes, the smallest being 1
    podpath: tuple[Stat, ...]  # one per scale
    baseline: tuple[Stat, ...] | None = None
    baseline_label: str = ""
    # Worst exponent accepted: linear, with room for the noise of three medians.
    limit: float = 1.1

    @property
    def exponent(self) -> float:
        """podpath's fitted growth exponent over the scales."""
        return fit_exponent(self.scales, [s.median for s in self.podpath])

    @property
    def baseline_exponent(self) -> float | None:
        """The baseline's fitted growth exponent, when it was measured."""
        if self.baseline is None:
            return None
        return fit_exponent(self.scales, [s.median for s in self.baseline])

    @property
    def met(self) -> bool:
        """Whether podpath grows no worse than linearly (within the limit)."""
        return self.exponent <= self.limit
