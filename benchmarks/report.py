"""Rendering figures: the terminal/Markdown table, the JSON document, BENCHMARKS.md."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from stats import Figure, Goal, Growth, Stat

HEADERS = ("figure", "node", "podpath", "baseline", "ratio", "goal", "met?")


@dataclass(frozen=True)
class RunInfo:
    """Where and how the figures were measured."""

    machine: str
    date: str
    command: str
    sizes: dict[str, int]


def format_value(value: float, unit: str) -> str:
    """A value with a readable unit: ms below one second, MiB/MB for sizes."""
    if unit == "s":
        return f"{value * 1000:.1f} ms" if value < 1 else f"{value:.2f} s"
    if unit == "bytes":
        return f"{value / 1e6:.1f} MB"
    return f"{value:.0f} {unit}"


def format_stat(s: Stat | None, unit: str) -> str:
    """Median and spread, e.g. `1.23 s ±4%`; an em dash for no value."""
    if s is None:
        return "—"
    text = format_value(s.median, unit)
    return f"{text} ±{s.spread * 100:.0f}%" if len(s.samples) > 1 else text


def format_goal(goal: Goal | None, unit: str) -> str:
    """The goal as the issue states it."""
    if goal is None:
        return ""
    if goal.kind == "ratio":
        return f"<= {goal.limit:g}x"
    return f"< {format_value(goal.limit, unit)}"


def _met(flag: bool | None) -> str:
    return {True: "yes", False: "**NO**", None: ""}[flag]


def rows(figures: Sequence[Figure]) -> list[tuple[str, ...]]:
    """The table's cells, one tuple per figure."""
    out: list[tuple[str, ...]] = []
    for f in figures:
        base = format_stat(f.baseline, f.unit)
        if f.baseline is not None and f.baseline_label:
            base = f"{base} ({f.baseline_label})"
        ratio = f"{f.ratio:.2f}x" if f.ratio is not None else ""
        out.append(
            (
                f.title,
                f.shape,
                format_stat(f.podpath, f.unit),
                base,
                ratio,
                format_goal(f.goal, f.unit),
                _met(f.met),
            )
        )
    return out


def markdown_table(figures: Sequence[Figure]) -> str:
    """A GitHub Markdown table of the figures."""
    return _markdown(HEADERS, rows(figures))


def text_table(figures: Sequence[Figure]) -> str:
    """A plain aligned table for the terminal."""
    return _aligned(HEADERS, rows(figures))


def _markdown(headers: Sequence[str], cells: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    for row in cells:
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in row) + " |")
    return "\n".join(lines)


def _aligned(headers: Sequence[str], cells: Sequence[Sequence[str]]) -> str:
    table = [tuple(headers), *(tuple(r) for r in cells)]
    widths = [max(len(r[i]) for r in table) for i in range(len(headers))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in table
    )


def _scale_label(scale: float) -> str:
    return f"{scale:g}x"


def growth_headers(growth: Sequence[Growth]) -> tuple[str, ...]:
    """Columns of the growth table: one per scale, for podpath and for the baseline."""
    scales = growth[0].scales if growth else (1.0, 2.0, 4.0)
    labels = [_scale_label(x) for x in scales]
    return (
        "figure",
        "node",
        *labels,
        "exponent",
        "baseline " + " / ".join(labels),
        "baseline exponent",
        "goal",
        "met?",
    )


def growth_rows(growth: Sequence[Growth]) -> list[tuple[str, ...]]:
    """The growth table's cells: each size's median, the fitted exponents, the verdict."""
    out: list[tuple[str, ...]] = []
    for g in growth:
        base = "—"
        base_k = ""
        if g.baseline is not None:
            base = " / ".join(format_value(s.median, g.unit) for s in g.baseline)
            base_k = f"{g.baseline_exponent:.2f}"
        out.append(
            (
                g.title,
                g.shape,
                *(format_value(s.median, g.unit) for s in g.podpath),
                f"{g.exponent:.2f}",
                base,
                base_k,
                f"<= {g.limit:g}",
                _met(g.met),
            )
        )
    return out


def growth_markdown(growth: Sequence[Growth]) -> str:
    """The growth table in Markdown."""
    return _markdown(growth_headers(growth), growth_rows(growth))


def growth_text(growth: Sequence[Growth]) -> str:
    """The growth table aligned for the terminal."""
    return _aligned(growth_headers(growth), growth_rows(growth))


def _stat_json(s: Stat | None) -> dict[str, Any] | None:
    if s is None:
        return None
    return {
        "median": s.median,
        "min": s.low,
        "max": s.high,
        "spread": s.spread,
        "samples": list(s.samples),
    }


def to_json(
    info: RunInfo, figures: Sequence[Figure], growth: Sequence[Growth] = ()
) -> dict[str, Any]:
    """The machine-readable form of a run (same figures as the tables)."""
    return {
        "machine": info.machine,
        "date": info.date,
        "command": info.command,
        "sizes": info.sizes,
        "figures": [
            {
                "key": f.key,
                "title": f.title,
                "unit": f.unit,
                "podpath": _stat_json(f.podpath),
                "baseline": _stat_json(f.baseline),
                "baseline_label": f.baseline_label,
                "ratio": f.ratio,
                "goal": None if f.goal is None else {"kind": f.goal.kind, "limit": f.goal.limit},
                "met": f.met,
                "note": f.note,
                "extra": f.extra,
                "shape": f.shape,
            }
            for f in figures
        ],
        "growth": [
            {
                "key": g.key,
                "title": g.title,
                "unit": g.unit,
                "shape": g.shape,
                "scales": list(g.scales),
                "podpath": [_stat_json(s) for s in g.podpath],
                "baseline": None if g.baseline is None else [_stat_json(s) for s in g.baseline],
                "baseline_label": g.baseline_label,
                "limit": g.limit,
                "exponent": g.exponent,
                "baseline_exponent": g.baseline_exponent,
                "met": g.met,
            }
            for g in growth
        ],
    }


def _stat_from(doc: dict[str, Any] | None) -> Stat | None:
    return None if doc is None else Stat(tuple(float(x) for x in doc["samples"]))


def _stats_from(docs: list[dict[str, Any]]) -> tuple[Stat, ...]:
    out = []
    for d in docs:
        s = _stat_from(d)
        assert s is not None
        out.append(s)
    return tuple(out)


def from_json(doc: dict[str, Any]) -> tuple[RunInfo, list[Figure], list[Growth]]:
    """A run read back from its JSON (to re-render BENCHMARKS.md without re-measuring)."""
    info = RunInfo(doc["machine"], doc["date"], doc["command"], dict(doc["sizes"]))
    figures = []
    for f in doc["figures"]:
        podpath = _stat_from(f["podpath"])
        assert podpath is not None
        goal = f["goal"]
        figures.append(
            Figure(
                f["key"],
                f["title"],
                f["unit"],
                podpath,
                _stat_from(f["baseline"]),
                f["baseline_label"],
                None if goal is None else Goal(goal["kind"], goal["limit"]),
                f["note"],
                dict(f["extra"]),
                f.get("shape", ""),
            )
        )
    growth = [
        Growth(
            g["key"],
            g["title"],
            g["unit"],
            g["shape"],
            tuple(float(x) for x in g["scales"]),
            _stats_from(g["podpath"]),
            None if g["baseline"] is None else _stats_from(g["baseline"]),
            g["baseline_label"],
            float(g["limit"]),
        )
        for g in doc.get("growth", [])
    ]
    return info, figures, growth


def dumps(info: RunInfo, figures: Sequence[Figure], growth: Sequence[Growth] = ()) -> str:
    """JSON text of a run."""
    return json.dumps(to_json(info, figures, growth), indent=1, sort_keys=True)


def markdown(
    info: RunInfo,
    figures: Sequence[Figure],
    analysis: str = "",
    growth: Sequence[Growth] = (),
) -> str:
    """The BENCHMARKS.md document: how it was run, the tables, notes and analysis."""
    sizes = ", ".join(f"{k}={v:,}" for k, v in info.sizes.items())
    notes = [
        f"- **{f.title}**" + (f" ({f.shape})" if f.shape else "") + f": {f.note}"
        for f in figures
        if f.note
    ]
    parts = [
        "# podpath benchmarks",
        "",
        f"- machine: {info.machine}",
        f"- date: {info.date}",
        f"- command: `{info.command}`",
        f"- nodes: {sizes}",
        "",
        "Medians over alternating A/B runs; ±N% is half the min–max range relative to the "
        "median. Ratio = podpath / baseline.",
        "",
        markdown_table(figures),
        "",
    ]
    if growth:
        parts += [
            "## Growth",
            "",
            "Each figure on the same node shape at 1x, 2x and 4x its size (pods, Services, "
            "conntrack entries, processes and netns holders together), with the exponent k "
            "of the power law time ~ size^k fitted to the three medians (1 is linear; a "
            "fixed start-up cost beside a linear one gives k < 1).",
            "",
            growth_markdown(growth),
            "",
        ]
    if notes:
        parts += ["## Notes on the figures", "", *notes, ""]
    if analysis:
        parts += [analysis.rstrip(), ""]
    return "\n".join(parts)
