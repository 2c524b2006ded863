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
    growth_markdown,
    markdown,
    markdown_table,
    text_table,
)
from stats import Figure, Goal, Growth, fit_exponent, stat  # noqa: E402

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
    assert lines[0] == "| figure | node | podpath | baseline | ratio | goal | met? |"
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
    text = markdown(
        INFO,
        [Figure("a", "a", "s", stat([1.0]), note="why")],
        "## Analysis\n",
        [_growth([1, 2, 4])],
    )
    assert "test box" in text and "`benchmarks/run --quick`" in text
    assert "pods=3" in text and "- **a**: why" in text and text.rstrip().endswith("## Analysis")
    assert "## Growth" in text


def test_json_round_trip_renders_the_same_table() -> None:
    """--render rebuilds the same table from a run's JSON."""
    figs = [
        Figure("a", "1. a", "s", stat([1.0, 2.0]), stat([4.0]), "sh", Goal("ratio", 0.5), "note"),
        Figure("b", "6. b", "MiB", stat([100.0]), goal=Goal("max", 300)),
    ]
    grow = [_growth([1.0, 2.1, 3.9], [3.0, 6.0, 12.0])]
    info, back, back_growth = from_json(json.loads(dumps(INFO, figs, grow)))
    assert info == INFO
    assert markdown_table(back) == markdown_table(figs)
    assert growth_markdown(back_growth) == growth_markdown(grow)


def _growth(podpath: list[float], baseline: list[float] | None = None) -> Growth:
    return Growth(
        "holders.snapshot",
        "1. snapshot",
        "s",
        "holders",
        (1.0, 2.0, 4.0),
        tuple(stat([v]) for v in podpath),
        None if baseline is None else tuple(stat([v]) for v in baseline),
        "sh",
    )


def test_exponent_of_exact_power_laws() -> None:
    """Linear, quadratic and constant series fit exponents 1, 2 and 0."""
    assert fit_exponent([1, 2, 4], [3, 6, 12]) == pytest.approx(1.0)
    assert fit_exponent([1, 2, 4], [1, 4, 16]) == pytest.approx(2.0)
    assert fit_exponent([1, 2, 4], [5, 5, 5]) == pytest.approx(0.0)


def test_exponent_of_start_up_plus_linear_is_below_one() -> None:
    """A fixed cost beside a linear one grows slower than linearly."""
    assert 0 < fit_exponent([1, 2, 4], [0.1 + 0.2, 0.1 + 0.4, 0.1 + 0.8]) < 1


def test_exponent_needs_two_positive_points() -> None:
    """One point, a zero or equal scales cannot be fitted."""
    for scales, values in (([1], [1]), ([1, 2], [0, 1]), ([2, 2], [1, 2])):
        with pytest.raises(ValueError):
            fit_exponent(scales, values)


def test_growth_worse_than_linear_is_a_miss() -> None:
    """Quadratic growth misses the goal; linear growth meets it."""
    assert _growth([1.0, 2.0, 4.0]).met is True
    assert _growth([1.0, 4.0, 16.0]).met is False


def test_growth_table_shows_sizes_exponents_and_baseline() -> None:
    """One row per growth figure: each size, both exponents, the goal and the verdict."""
    lines = growth_markdown([_growth([1.0, 2.0, 4.0], [2.0, 4.5, 9.5])]).splitlines()
    assert lines[0].startswith("| figure | node | 1x | 2x | 4x | exponent | baseline 1x / 2x / 4x")
    cells = [c.strip() for c in lines[2].strip("|").split("|")]
    assert cells[:6] == ["1. snapshot", "holders", "1.00 s", "2.00 s", "4.00 s", "1.00"]
    assert cells[6] == "2.00 s / 4.50 s / 9.50 s" and cells[7] == "1.12"
    assert cells[8:] == ["<= 1.1", "yes"]


def test_figures_carry_their_node_shape() -> None:
    """The node column names the shape each figure was measured on."""
    fig = Figure("holders.a", "a", "s", stat([1.0]), shape="holders")
    assert "| a | holders | 1.00 s |" in markdown_table([fig])


def test_shapes_scale_every_size_and_keep_a_few_pods() -> None:
    """A shape at a fraction of its size scales all of it, never below 3 pods."""
    from bench import HOLDERS, SYNTHETIC

    quarter = SYNTHETIC.scaled(0.25)
    assert (quarter.pods, quarter.services, quarter.conntrack) == (62, 2_500, 12_500)
    assert (quarter.sleepers, quarter.procs_high) == (250, 1_250)
    small = HOLDERS.scaled(0.25)
    assert (small.pods, small.holders, small.sleepers) == (3, 62, 250)


def test_plan_of_the_command_line() -> None:
    """Both shapes by default, growth at 1/4, 1/2 and 1; --quick is small and 2 repeats."""
    from bench import QUICK_SHAPES, SHAPES, parse_args, plan_from

    full = plan_from(parse_args([]))
    assert [s.key for s in full.shapes] == ["synthetic", "holders"]
    assert full.shapes == (SHAPES["synthetic"], SHAPES["holders"]) and full.repeats == 5
    assert full.growth == (0.25, 0.5, 1.0)
    quick = plan_from(parse_args(["--quick", "--shapes", "holders", "--growth", "1"]))
    assert quick.shapes == (QUICK_SHAPES["holders"],) and quick.repeats == 2
    assert quick.growth == (1.0,)
    with pytest.raises(SystemExit):
        plan_from(parse_args(["--shapes", "nosuch"]))
