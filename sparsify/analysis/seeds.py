"""`seeds`: every scalar of every level as mean, standard deviation and a 95% interval over the
seeds of a study (Student's t for the mean; n = 1 has no spread), with the measured sparsity."""

from __future__ import annotations

import math
import statistics
from typing import Any

from sparsify.analysis.base import Study, analysis

# two-sided 97.5% quantiles of Student's t, by degrees of freedom (30 and beyond: the normal's)
_T975 = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179,
         2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064,
         2.060, 2.056, 2.052, 2.048, 2.045]  # fmt: skip


def t975(dof: int) -> float:
    """The 97.5% quantile of Student's t with `dof` >= 1 degrees of freedom."""
    return _T975[dof - 1] if dof <= len(_T975) else 1.960


def describe(values: list[float]) -> dict[str, Any]:
    """n, mean, std (sample), and the half-width of the 95% interval of the mean (None for n = 1)."""
    n = len(values)
    mean = statistics.fmean(values)
    if n < 2:
        return {"n": n, "mean": mean, "std": None, "ci95": None}
    std = statistics.stdev(values)
    return {"n": n, "mean": mean, "std": std, "ci95": t975(n - 1) * std / math.sqrt(n)}


@analysis("seeds")
def seeds(study: Study) -> dict[str, Any]:
    """{"levels": [{"level", "sparsity": stats, "metrics": {key: stats}}]}, level by level over
    the runs that have the level."""
    depth = max(len(r.results.levels) for r in study.runs)
    levels = []
    for level in range(depth):
        records = [r.results.levels[level] for r in study.runs if len(r.results.levels) > level]
        keys = list(dict.fromkeys(k for lv in records for k in lv.metrics))
        metrics = {
            k: describe([float(lv.metrics[k]) for lv in records if k in lv.metrics]) for k in keys
        }
        sparsity = describe([lv.sparsity for lv in records])
        levels.append({"level": level, "sparsity": sparsity, "metrics": metrics})
    return {"seeds": study.seeds, "levels": levels}
