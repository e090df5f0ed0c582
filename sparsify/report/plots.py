"""Plots for the report (matplotlib, no display needed)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from sparsify.io import save_bytes


def accuracy_vs_sparsity(
    levels: list[dict[str, Any]], title: str, path: Path, split: str = "test"
) -> None:
    """Accuracy (%) on `split` against sparsity (%), one point per level; dense level dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    xs = [100 * lv["sparsity"] for lv in levels]
    ys = [100 * lv["metrics"]["accuracy"] for lv in levels]
    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    ax.plot(xs, ys, marker="o")
    for lv, x, y in zip(levels, xs, ys):
        ax.annotate(
            str(lv["level"]),
            (x, y),
            textcoords="offset points",
            xytext=(0, 6),
            ha="center",
            fontsize=8,
        )
    # a dense level 0 (a handful of weights can end exactly at zero by chance)
    if levels and levels[0]["level"] == 0 and levels[0]["sparsity"] < 1e-4:
        ax.axhline(ys[0], linestyle="--", color="gray", linewidth=1, label="dense")
        ax.legend(loc="lower left")
    ax.set_xlabel("sparsity (% of prunable weights zero)")
    ax.set_ylabel(f"{split} accuracy (%)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    save_bytes(buf.getvalue(), path)
