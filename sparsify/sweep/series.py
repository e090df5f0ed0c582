"""A sweep's runs as curves: series (runs that differ only in the seed and the sparsity they
prune to) of points (one sparsity, every seed's metrics there), with statistics over seeds.

A point gathers, per seed, one level of one study: the seeds of a study share its sparsity
schedule, and the dense level 0 of several one-shot studies (one per target) is one point. Its
statistics are those of `python -m sparsify.analysis` (mean, sample std, Student's t 95%
interval of the mean over seeds), plus for accuracies the Wilson 95% interval of the mean
accuracy on the evaluated split's n images: the noise of the test set itself.
"""

from __future__ import annotations

import json
import statistics
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Optional

from sparsify.analysis.intervals import wilson
from sparsify.analysis.seeds import describe
from sparsify.records import LevelRecord
from sparsify.sweep.collect import SPARSITY_KEYS, Sweep, SweepRun


@dataclass
class Point:
    level: int  # the level, in the first study that has the point
    seeds: list[int]
    sparsity: dict[str, Any]  # describe() over seeds
    metrics: dict[str, dict[str, Any]]  # key -> describe() over seeds (+ "wilson" for accuracies)
    targets: list[Optional[float]] = field(default_factory=list)  # the studies' prune.sparsity
    final: bool = False  # the last level of a study


@dataclass
class Series:
    label: str
    method: str
    studies: list[str]
    runs: list[SweepRun]
    points: list[Point]  # by sparsity


def target(run: SweepRun) -> Optional[float]:
    """The sparsity a one-shot run prunes to (prune.sparsity), None for iterative schedules and
    methods that learn their sparsity."""
    prune = run.config.get("prune", {})
    if prune.get("iterative") or "sparsity" not in prune:
        return None
    return float(prune["sparsity"])


def is_accuracy(key: str, spec: Any) -> bool:
    """A fraction of the evaluated split's images (MetricSpec.binomial): the Wilson interval
    applies. Means over corrupted or shifted copies are not: their n is not the split's."""
    return bool(spec is not None and spec.binomial)


def _stats(values: list[float], images: Optional[int], accuracy: bool) -> dict[str, Any]:
    out = describe(values)
    if accuracy and images:
        out["wilson"] = list(wilson(min(1.0, max(0.0, out["mean"])), images))
    return out


def _series_key(run: SweepRun) -> str:
    ident = {k: v for k, v in run.identity.items() if k != "seed" and k not in SPARSITY_KEYS}
    return json.dumps(ident, sort_keys=True, default=str)


def build_series(sweep: Sweep, specs: dict[str, Any]) -> list[Series]:
    """The sweep's series, labelled by method and the swept values that tell them apart."""
    groups: dict[str, list[SweepRun]] = defaultdict(list)
    for r in sweep.runs:
        groups[_series_key(r)].append(r)
    extras = [
        k
        for k in [*sweep.swept, "data.name", "model.name"]
        if k != "seed" and k not in SPARSITY_KEYS and k != "prune.name"
    ]
    varying = [
        k
        for k in extras
        if len({json.dumps(rs[0].setting(k), default=str) for rs in groups.values()}) > 1
    ]
    images = [r.results.eval_images for r in sweep.runs if r.results.eval_images]
    n_images = min(images) if images else None
    out = []
    for runs in groups.values():
        first = runs[0]
        label = first.results.method
        shown = [f"{k}={first.setting(k)}" for k in varying]
        if shown:
            label += f" ({', '.join(shown)})"
        out.append(
            Series(
                label,
                first.results.method,
                sorted({r.study for r in runs}),
                runs,
                _points(runs, specs, n_images),
            )
        )
    return sorted(out, key=lambda s: s.label)


def _points(runs: list[SweepRun], specs: dict[str, Any], images: Optional[int]) -> list[Point]:
    by_study: dict[str, list[SweepRun]] = defaultdict(list)
    for r in runs:
        by_study[r.study].append(r)
    # x -> seed -> (level record, study target); the first study with a seed at x keeps it
    cells: dict[float, dict[int, tuple[LevelRecord, Optional[float]]]] = {}
    levels_of: dict[float, int] = {}
    finals: set[float] = set()
    for study in sorted(by_study):
        members = by_study[study]
        depth = max(len(r.results.levels) for r in members)
        for level in range(depth):
            here = [r for r in members if len(r.results.levels) > level]
            x = round(statistics.fmean(r.results.levels[level].sparsity for r in here), 4)
            slot = cells.setdefault(x, {})
            levels_of.setdefault(x, level)
            last = level == depth - 1
            if last:
                finals.add(x)
            for r in here:
                slot.setdefault(
                    r.results.seed, (r.results.levels[level], target(r) if last else None)
                )
    points = []
    for x in sorted(cells):
        slot = cells[x]
        seeds = sorted(slot)
        records = [slot[s][0] for s in seeds]
        keys = list(dict.fromkeys(k for lv in records for k in lv.metrics))
        metrics = {
            k: _stats(
                [float(lv.metrics[k]) for lv in records if k in lv.metrics],
                images,
                is_accuracy(k, specs.get(k)),
            )
            for k in keys
            if all(isinstance(lv.metrics.get(k, 0.0), (int, float)) for lv in records)
        }
        points.append(
            Point(
                levels_of[x],
                seeds,
                describe([lv.sparsity for lv in records]),
                metrics,
                sorted({slot[s][1] for s in seeds if slot[s][1] is not None}),
                x in finals,
            )
        )
    return points
