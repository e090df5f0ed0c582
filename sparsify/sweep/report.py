"""sweep_report.md, sweep_report.html, sweep_report.json and the plots beside them: a sweep read
as one experiment (docs/sweeps.md).

Sections: what was swept and what is missing; the methods table (the last level of each
series at each target sparsity, mean ± std over seeds with the 95% interval of the mean and the
Wilson interval of the test set); the safe-sparsity verdict per series and the metric that binds
it; every plotted metric against sparsity, one curve per series with its 95% band over seeds.
Built from results.json files only (the contract of docs/run-directory.md).
"""

from __future__ import annotations

import statistics
from collections import Counter
from pathlib import Path
from typing import Any, Optional

from sparsify.analysis.intervals import format_wilson
from sparsify.io import save_json, save_text
from sparsify.report.model import Figure, Report, Section, Table, Text
from sparsify.report.plots import pyplot, save_png
from sparsify.report.render import to_html, to_markdown
from sparsify.sweep.collect import Sweep
from sparsify.sweep.series import Point, Series, build_series, is_accuracy

HEADLINE = "accuracy"  # the methods table's metric


def metric_specs() -> dict[str, Any]:
    from sparsify.evaluate import EVALUATORS

    return {k: s for n in EVALUATORS.names() for k, s in EVALUATORS.get(n).metrics.items()}


def _value(stats: dict[str, Any], spec: Any) -> str:
    scale = 100 if spec is not None and spec.percent else 1
    digits = 2 if scale == 100 else 4
    text = f"{scale * stats['mean']:.{digits}f}"
    if stats.get("std") is not None:
        text += f" ± {scale * stats['std']:.{digits}f}"
    return text


def _cell(point: Point, key: str, spec: Any, images: Optional[int]) -> str:
    stats = point.metrics.get(key)
    if stats is None:
        return ""
    text = _value(stats, spec)
    if stats.get("ci95") is not None:
        scale = 100 if spec is not None and spec.percent else 1
        text += f" (±{scale * stats['ci95']:.2f})"
    if is_accuracy(key, spec):
        text += format_wilson(stats["mean"], images)
    return f"{text}, n={stats['n']}"


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def _images(sweep: Sweep) -> Optional[int]:
    images = [r.results.eval_images for r in sweep.runs if r.results.eval_images]
    return min(images) if images else None


def methods_table(series: list[Series], key: str, spec: Any, images: Optional[int]) -> Table:
    """Rows: the dense parent, then each series; columns: the target sparsities (the series'
    last level at each), and `final` for series without a target (their last level)."""
    targets = sorted({t for s in series for p in s.points if p.final for t in p.targets})
    untargeted = any(p.final and not p.targets for s in series for p in s.points)
    head = ["series", *(f"{100 * t:g}%" for t in targets)] + (["final"] if untargeted else [])
    rows = []
    dense = [p for s in series for p in s.points if p.sparsity["mean"] == 0.0 and p.level == 0]
    if dense:
        best = max(dense, key=lambda p: len(p.seeds))
        cells = [_cell(best, key, spec, images)] + [""] * (len(head) - 2)
        rows.append(["dense (level 0)", *cells])
    for s in series:
        cells = []
        for t in targets:
            hit = [p for p in s.points if p.final and t in p.targets]
            cells.append(_cell(hit[-1], key, spec, images) if hit else "")
        if untargeted:
            hit = [p for p in s.points if p.final and not p.targets]
            cells.append(
                f"{_cell(hit[-1], key, spec, images)} at {100 * hit[-1].sparsity['mean']:.1f}%"
                if hit
                else ""
            )
        rows.append([s.label, *cells])
    return Table(head, rows)


def verdicts(series: list[Series]) -> list[dict[str, Any]]:
    """Per series: every seed's safe sparsity (the largest over its runs' verdicts) and the
    metric that binds it (the binding of the least sparse failing level above it)."""
    out = []
    for s in series:
        per_seed: dict[int, dict[str, Any]] = {}
        for r in s.runs:
            v = r.results.summary.get("verdict")
            if not isinstance(v, dict) or "safe_sparsity" not in v:
                continue
            seed = per_seed.setdefault(r.results.seed, {"safe": 0.0, "bindings": []})
            seed["safe"] = max(seed["safe"], float(v["safe_sparsity"]))
            if v.get("binding"):
                seed["bindings"].append(v["binding"])
        if not per_seed:
            out.append({"series": s.label, "skipped": "no verdict (eval.summaries without it)"})
            continue
        safes, binds = [], []
        for seed in sorted(per_seed):
            info = per_seed[seed]
            safes.append(info["safe"])
            above = [b for b in info["bindings"] if float(b["sparsity"]) > info["safe"]]
            if above:
                binds.append(min(above, key=lambda b: float(b["sparsity"]))["metric"])
        out.append(
            {
                "series": s.label,
                "seeds": sorted(per_seed),
                "safe_sparsity": safes,
                "median": statistics.median_low(safes),
                "binding": dict(Counter(binds).most_common()),
            }
        )
    return out


def _verdict_table(rows: list[dict[str, Any]]) -> Table:
    out = []
    for v in rows:
        if "skipped" in v:
            out.append([v["series"], v["skipped"], "", ""])
            continue
        safes = v["safe_sparsity"]
        binding = ", ".join(f"{m} ({c} of {len(safes)})" for m, c in v["binding"].items())
        spread = f"{100 * min(safes):.1f}–{100 * max(safes):.1f}%"
        out.append([v["series"], f"{100 * v['median']:.1f}%", spread, binding or "none fails"])
    return Table(["series", "safe sparsity (median over seeds)", "range over seeds", "binds"], out)


def plot_metric(series: list[Series], key: str, spec: Any, split: str, images, path: Path) -> None:
    """`key` against sparsity, one curve per series: the mean over seeds, a band of its 95%
    interval (two seeds or more) and, for accuracies, the Wilson interval as error bars."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    scale = 100 if spec is not None and spec.percent else 1
    for s in series:
        pts = [p for p in s.points if key in p.metrics]
        if not pts:
            continue
        xs = [100 * p.sparsity["mean"] for p in pts]
        ys = [scale * p.metrics[key]["mean"] for p in pts]
        (line,) = ax.plot(xs, ys, marker="o", markersize=3, label=s.label)
        ci = [p.metrics[key].get("ci95") for p in pts]
        if any(c is not None for c in ci):
            lo = [y - scale * (c or 0.0) for y, c in zip(ys, ci)]
            hi = [y + scale * (c or 0.0) for y, c in zip(ys, ci)]
            if scale == 100:  # a fraction's interval stays within [0, 1]
                lo, hi = [max(0.0, v) for v in lo], [min(100.0, v) for v in hi]
            ax.fill_between(xs, lo, hi, color=line.get_color(), alpha=0.2, linewidth=0)
        if is_accuracy(key, spec) and all("wilson" in p.metrics[key] for p in pts):
            err = [
                [y - scale * p.metrics[key]["wilson"][0] for y, p in zip(ys, pts)],
                [scale * p.metrics[key]["wilson"][1] - y for y, p in zip(ys, pts)],
            ]
            ax.errorbar(
                xs,
                ys,
                yerr=err,
                fmt="none",
                ecolor=line.get_color(),
                alpha=0.5,
                capsize=2,
                linewidth=0.8,
            )
    label = spec.label if spec is not None else key
    unit = " (%)" if scale == 100 else ""
    ax.set_xlabel("sparsity (% of prunable weights zero)")
    ax.set_ylabel(f"{split} {label}{unit}")
    note = "band: 95% interval over seeds"
    if is_accuracy(key, spec) and images:
        note += f"; bars: Wilson 95% on {images} images"
    ax.set_title(f"{label} against sparsity ({note})", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    save_png(fig, path)


def build(sweep: Sweep, out: Path, title: str) -> dict[str, Any]:
    """Write the sweep report into `out`; returns what sweep_report.json holds."""
    specs = metric_specs()
    series = build_series(sweep, specs)
    images = _images(sweep)
    split = sweep.runs[0].results.split
    seeds = sorted({r.results.seed for r in sweep.runs})
    intro = [
        Text(
            f"{_count(len(sweep.runs), 'finished run')} in {len(series)} series "
            f"({_count(sum(len(s.studies) for s in series), 'group')} of seeds), seeds "
            f"{', '.join(map(str, seeds))}, evaluated on the `{split}` split"
            + (f" ({images} images: one image is {100 / images:.2f} points)." if images else ".")
        ),
        Text(
            "Swept: "
            + (", ".join(f"`{k}`" for k in [*sweep.groups, *sweep.swept]) or "nothing declared")
            + ". Cells: mean ± std over seeds (± the half-width of the 95% interval of the mean, "
            "Student's t), then for accuracies the Wilson 95% interval of that accuracy on the "
            "split's images, and n, the number of seeds."
        ),
    ]
    sections = []
    if sweep.missing:
        sections.append(
            Section(
                "Not in this report",
                [Table(["run", "why"], [[p, why] for p, why in sweep.missing])],
            )
        )
    key = HEADLINE if any(HEADLINE in p.metrics for s in series for p in s.points) else None
    if key:
        sections.append(
            Section(
                f"Methods table: {specs[key].label}",
                [methods_table(series, key, specs.get(key), images)],
            )
        )
    verdict_rows = verdicts(series)
    if any("skipped" not in v for v in verdict_rows):
        sections.append(Section("Safe sparsity per series", [_verdict_table(verdict_rows)]))
    plotted = [
        k
        for k, spec in specs.items()
        if spec.plot and any(k in p.metrics for s in series for p in s.points)
    ]
    figures = []
    for k in plotted:
        name = f"sweep_{k}_vs_sparsity.png"
        plot_metric(series, k, specs[k], split, images, out / name)
        figures.append(Figure(name, f"{specs[k].label} against sparsity"))
    if figures:
        sections.append(Section("Against sparsity", figures))
    rows = []
    for s in series:
        for p in s.points:
            cells = [_cell(p, k, specs.get(k), images) for k in plotted]
            rows.append([s.label, str(p.level), f"{100 * p.sparsity['mean']:.2f}%", *cells])
    sections.append(
        Section(
            "Every point",
            [Table(["series", "level", "sparsity", *(specs[k].label for k in plotted)], rows)],
        )
    )
    report = Report(title, intro, sections)
    save_text(to_markdown(report), out / "sweep_report.md")
    save_text(to_html(report), out / "sweep_report.html")
    data = {
        "title": title,
        "split": split,
        "eval_images": images,
        "swept": sweep.swept,
        "groups": sweep.groups,
        "runs": [str(r.path) for r in sweep.runs],
        "missing": [{"run": p, "why": why} for p, why in sweep.missing],
        "series": [
            {
                "label": s.label,
                "method": s.method,
                "studies": s.studies,
                "points": [
                    {
                        "level": p.level,
                        "seeds": p.seeds,
                        "targets": p.targets,
                        "final": p.final,
                        "sparsity": p.sparsity,
                        "metrics": p.metrics,
                    }
                    for p in s.points
                ],
            }
            for s in series
        ],
        "verdicts": verdict_rows,
        "plots": [f.path for f in figures],
    }
    save_json(data, out / "sweep_report.json")
    return data
