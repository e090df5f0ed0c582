"""`corruptions`: accuracy under Hendrycks & Dietterich's common corruptions, generated from the
evaluation split (sparsify.corruptions), per corruption and severity; and what Hendrycks &
Dietterich and Lost in Pruning derive from it, normalised by the dense parent instead of AlexNet:

- CE_c = Σ_s E_{s,c} / Σ_s E^dense_{s,c} per corruption, mCE = mean CE over the 15 benchmark
  corruptions evaluated (the 4 extra ones are held out of mCE, as in the benchmark);
- relative CE_c = Σ_s (E_{s,c} − E_clean) / Σ_s (E^dense_{s,c} − E^dense_clean), relative mCE
  their mean (corruptions on which the dense parent loses nothing are left out: the ratio has no
  meaning there);
- excess error = (E_corrupted − E_clean) − (E^dense_corrupted − E^dense_clean), with E_corrupted
  the mean error over every corruption and severity evaluated (Lost in Pruning, §1.3 of
  EVALUATION.md).

The dense parent's own mCE is 1 and its excess error 0 by definition. Without a dense parent
only the accuracies are reported.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from sparsify.checks import check_choice
from sparsify.corruptions import BENCHMARK, CORRUPTIONS, ORDER, SEVERITIES
from sparsify.errors import UserError
from sparsify.evaluate.base import EvalResult, MetricSpec, evaluator
from sparsify.evaluate.context import EvalContext
from sparsify.evaluate.distributions import Distribution, clean, corrupted

PRESETS = ("auto", "cifar", "imagenet")


@dataclass
class CorruptionSettings:
    """`eval.corruptions.*`: which corrupted data to score (also read by `fidelity` and
    `calibration`, which score the same data)."""

    names: list[str] = field(default_factory=lambda: list(ORDER))  # the 19, in benchmark order
    severities: list[int] = field(default_factory=lambda: list(SEVERITIES))
    # parameter set: cifar (make_cifar_c.py's), imagenet (imagenet_c's), auto: cifar up to 64 px
    preset: str = "auto"
    # a released set used instead of generating: a CIFAR-10-C / CIFAR-100-C folder of .npy files,
    # or an ImageNet-C tree <corruption>/<severity>/<class>/<image>; null: generate
    released: Optional[str] = None

    def check(self, where: str) -> None:
        if not self.names:
            raise UserError(f"{where}.names is empty; list some of: {', '.join(ORDER)}")
        for name in self.names:
            check_choice(f"{where}.names", name, ORDER)
        for s in self.severities:
            check_choice(f"{where}.severities", s, SEVERITIES)
        if not self.severities:
            raise UserError(f"{where}.severities is empty; list some of 1, 2, 3, 4, 5")
        for what, values in (("names", self.names), ("severities", self.severities)):
            if len(set(values)) != len(values):
                raise UserError(f"{where}.{what} lists a value twice: {list(values)}")
        check_choice(f"{where}.preset", self.preset, PRESETS)
        if self.released is not None and not Path(self.released).expanduser().is_dir():
            raise UserError(
                f"{where}.released={self.released}: not a folder (give the CIFAR-10-C folder of "
                ".npy files or the ImageNet-C folder, or null to generate the corruptions)"
            )

    def distributions(self) -> list[Distribution]:
        """Every (corruption, severity), corruptions in benchmark order."""
        names = [n for n in ORDER if n in self.names]
        return [corrupted(n, s) for n in names for s in sorted(self.severities)]


METRICS = {
    "corruption_accuracy": MetricSpec(
        "accuracy under corruption (mean)", percent=True, higher_is_better=True
    ),
    "mce": MetricSpec("mCE (relative to dense)", digits=3, higher_is_better=False),
    "relative_mce": MetricSpec("relative mCE (to dense)", digits=3, higher_is_better=False),
    "excess_error": MetricSpec(
        "excess error under corruption", percent=True, higher_is_better=False
    ),
}


def grid_table(acc: dict[str, dict[int, float]], severities: list[int]) -> dict:
    """Accuracy per corruption (rows, benchmark order) and severity (columns), and the mean."""
    rows = []
    for name, by_sev in acc.items():
        values = [by_sev[s] for s in severities]
        rows.append([name, CORRUPTIONS.get(name).family, *values, sum(values) / len(values)])
    return {"columns": ["corruption", "family", *map(str, severities), "mean"], "rows": rows}


def _section(inp):
    from sparsify.report.corruption_parts import corruption_section

    return corruption_section(inp)


@evaluator("corruptions", metrics=METRICS, settings=CorruptionSettings, section=_section)
def corruptions(ctx: EvalContext) -> EvalResult:
    dists = ctx.corrupted()
    severities = sorted({d.severity for d in dists})
    err = {d.name: ctx.outputs(d).error for d in dists}
    acc: dict[str, dict[int, float]] = {}
    for d in dists:
        acc.setdefault(d.corruption, {})[d.severity] = 1.0 - err[d.name]
    scalars = {"corruption_accuracy": sum(1.0 - e for e in err.values()) / len(err)}
    dense_clean = ctx.dense_outputs(clean())
    if dense_clean is not None:
        dense_err = {d.name: ctx.dense_outputs(d).error for d in dists}
        clean_err, dense_clean_err = ctx.outputs(clean()).error, dense_clean.error
        ce, rel = [], []
        for name in acc:
            if name not in BENCHMARK:
                continue
            mine = sum(err[f"{name}/{s}"] for s in severities)
            ref = sum(dense_err[f"{name}/{s}"] for s in severities)
            if ref > 0:
                ce.append(mine / ref)
            ref_rise = ref - len(severities) * dense_clean_err
            if ref_rise > 0:
                rel.append((mine - len(severities) * clean_err) / ref_rise)
        if ce:
            scalars["mce"] = sum(ce) / len(ce)
        if rel:
            scalars["relative_mce"] = sum(rel) / len(rel)
        mean_err = sum(err.values()) / len(err)
        dense_mean_err = sum(dense_err.values()) / len(dense_err)
        scalars["excess_error"] = (mean_err - clean_err) - (dense_mean_err - dense_clean_err)
    return EvalResult(scalars=scalars, tables={"grid": grid_table(acc, severities)})
