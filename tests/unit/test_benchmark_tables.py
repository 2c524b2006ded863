"""The pure parts of the benchmark: statistics, goals, table rendering, JSON output."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

from report import (  # noqa: E402
    RunInfo,
    dumps,
    format_stat,
    from_json,
    markdown,
    markdown_table,
    text_table,
)
from stats import Figure, Goal, stat  # noqa: E402

INFO = RunInfo("test box", "2025-01-01 00:00:00 UTC", "benchmarks/run --quick", {"pods": 3})


def test_median_of_even_samples() -> None:
    """The median of an even count is the mean of the middle two."""
    assert stat([4.0, 1.0, 3.0, 2.0]).median == 2.5


def test_spread_is_half_range_over_median() -> None:
    """Spread is (max - min) / 2 relative to the median."""
    assert stat([0.9, 1.0, 1.1]).spread == pytest.approx(0.1)


def test_single_sample_has_no_spread() -> None:
    """One sample has spread 0 and is shown without ±."""
    s = stat([2.0])
    assert s.spread == 0.0
    assert format_stat(s, "s") == "2.00 s"


def test_no_samples_is_an_error() -> None:
    """A figure without samples cannot be made."""
    with pytest.raises(ValueError):
        stat([])


def test_ratio_goal_met_and_missed() -> None:
    """A ratio goal compares podpath's median over the baseline's."""
    fast = Figure("a", "a", "s", stat([1.0]), stat([3.0]), goal=Goal("ratio", 0.5))
    slow = Figure("b", "b", "s", stat([2.0]), stat([3.0]), goal=Goal("ratio", 0.5))
    assert fast.ratio == pytest.approx(1 / 3)
    assert fast.met is True
    assert slow.met is False


def test_max_goal_is_strict() -> None:
    """An absolute goal is met only strictly below the limit."""
    assert Figure("t", "t", "s", stat([0.020]), goal=Goal("max", 0.020)).met is False
    assert Figure("t", "t", "s", stat([0.019]), goal=Goal("max", 0.020)).met is True


def test_ratio_goal_without_baseline_is_unjudged() -> None:
    """Without a baseline a ratio goal is neither met nor missed."""
    assert Figure("x", "x", "s", stat([1.0]), goal=Goal("ratio", 1.0)).met is None


def test_units_render_readably() -> None:
    """Below a second in ms, sizes in MB, memory in MiB."""
    assert format_stat(stat([0.0123]), "s") == "12.3 ms"
    assert format_stat(stat([12_345_678]), "bytes") == "12.3 MB"
    assert format_stat(stat([150.4]), "MiB") == "150 MiB"


def test_markdown_table_rows_and_escaping() -> None:
    """One row per figure; a pipe in a title does not break the table."""
    figs = [Figure("a", "a | b", "s", stat([1.0, 1.2]), stat([2.0]), "sh", Goal("ratio", 0.5))]
    lines = markdown_table(figs).splitlines()
    assert lines[0] == "| figure | podpath | baseline | ratio | goal | met? |"
    assert len(lines) == 3
    assert "a \\| b" in lines[2]
    assert "0.55x" in lines[2] and "<= 0.5x" in lines[2] and "**NO**" in lines[2]


def test_text_table_is_aligned() -> None:
    """Every column starts at the same offset on every line."""
    figs = [
        Figure("a", "short", "s", stat([1.0])),
        Figure("b", "a much longer title", "s", stat([0.5])),
    ]
    lines = text_table(figs).splitlines()
    starts = {
        line.index(cell)
        for line, cell in zip(lines, ("podpath", "1.00 s", "500.0 ms"), strict=True)
    }
    assert len(starts) == 1


def test_json_has_the_same_figures() -> None:
    """--json writes every figure with its samples, ratio, goal and verdict."""
    figs = [
        Figure("snapshot", "1. snap", "s", stat([1.0, 3.0]), stat([4.0]), "sh", Goal("ratio", 0.5))
    ]
    doc = json.loads(dumps(INFO, figs))
    assert doc["command"] == "benchmarks/run --quick"
    (f,) = doc["figures"]
    assert f["podpath"]["median"] == 2.0 and f["podpath"]["samples"] == [1.0, 3.0]
    assert f["ratio"] == 0.5 and f["met"] is True
    assert f["goal"] == {"kind": "ratio", "limit": 0.5}


def test_markdown_document_names_machine_and_command() -> None:
    """BENCHMARKS.md says where, when and how the figures were taken."""
    text = markdown(INFO, [Figure("a", "a", "s", stat([1.0]), note="why")], "## Analysis\n")
    assert "test box" in text and "`benchmarks/run --quick`" in text
    assert "pods=3" in text and "- **a**: why" in text and text.rstrip().endswith("## Analysis")


def test_json_round_trip_renders_the_same_table() -> None:
    """--render rebuilds the same table from a run's JSON."""
    figs = [
        Figure("a", "1. a", "s", stat([1.0, 2.0]), stat([4.0]), "sh", Goal("ratio", 0.5), "note"),
        Figure("b", "6. b", "MiB", stat([100.0]), goal=Goal("max", 300)),
    ]
    info, back = from_json(json.loads(dumps(INFO, figs)))
    assert info == INFO
    assert markdown_table(back) == markdown_table(figs)
