"""Plots for the report (matplotlib, no display needed)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Optional

from sparsify.analysis.intervals import wilson
from sparsify.evaluate.base import MetricSpec
from sparsify.io import save_bytes
from sparsify.records import LevelRecord


def pyplot():
    """matplotlib's pyplot on the Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_png(fig, path: Path) -> None:
    """Write `fig` as a PNG at `path` (atomically) and close it."""
    plt = pyplot()
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    save_bytes(buf.getvalue(), path)


def metric_vs_sparsity(
    levels: list[LevelRecord],
    key: str,
    spec: MetricSpec,
    title: str,
    path: Path,
    split: str,
    dense_level: Optional[int] = None,
    images: Optional[int] = None,
) -> None:
    """Metric `key` on `split` against sparsity (%), one annotated point per level that has it;
    the dense reference level, if any, also as a dashed line. Percentages for fractions
    (`spec.percent`); a binomial metric (an accuracy) with the `images` of the split gets its
    Wilson 95% interval as error bars."""
    plt = pyplot()
    levels = [lv for lv in levels if isinstance(lv.metrics.get(key), (int, float))]
    scale = 100 if spec.percent else 1
    xs = [100 * lv.sparsity for lv in levels]
    ys = [scale * lv.metrics[key] for lv in levels]
    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    ax.plot(xs, ys, marker="o")
    if spec.binomial and images:
        bounds = [wilson(min(1.0, max(0.0, lv.metrics[key])), images) for lv in levels]
        err = [[y - scale * lo for y, (lo, _) in zip(ys, bounds)]]
        err.append([scale * hi - y for y, (_, hi) in zip(ys, bounds)])
        ax.errorbar(xs, ys, yerr=err, fmt="none", capsize=3, linewidth=1, color="C0")
        title = f"{title}\nbars: Wilson 95% interval on {images} images"
    for lv, x, y in zip(levels, xs, ys):
        ax.annotate(
            str(lv.level),
            (x, y),
            textcoords="offset points",
            xytext=(0, 6),
            ha="center",
            fontsize=8,
        )
    dense = [y for lv, y in zip(levels, ys) if lv.level == dense_level]
    if dense:
        ax.axhline(dense[0], linestyle="--", color="gray", linewidth=1, label="dense")
        ax.legend(loc="lower left")
    ax.set_xlabel("sparsity (% of prunable weights zero)")
    unit = " (%)" if spec.percent else (f" ({spec.unit.strip()})" if spec.unit.strip() else "")
    ax.set_ylabel(f"{split} {spec.label}{unit}")
    ax.set_title(title, fontsize=9 if "\n" in title else None)
    ax.grid(alpha=0.3)
    save_png(fig, path)
