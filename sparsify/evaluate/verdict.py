"""`verdict`: the largest sparsity among the run's levels that satisfies every tolerance, and the
metric that binds it (EVALUATION.md §4.11).

Each tolerance applies when its metric was evaluated (and the dense parent has it):

| tolerance | the level passes when |
|---|---|
| accuracy_drop | dense accuracy − accuracy <= tolerance |
| mce_rise | mCE (relative to dense, 1 for the parent) − 1 <= tolerance |
| ece_rise | ECE − dense ECE <= tolerance |
| agreement_drop | 1 − top-1 agreement with dense <= tolerance |
| worst_class_recall_drop | the largest drop of one class's recall <= tolerance |

The safe sparsity is the largest sparsity of a passing level (the maximum, as prune potential
takes it, so a noisy failure in between does not hide a later pass); the binding metric is the
one that fails by the most (in multiples of its tolerance) at the least sparse failing level
above it. A tolerance of fewer than `min_images` test images is flagged: differences that size
are within the noise of the split.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Optional

from sparsify.checks import check_range
from sparsify.evaluate.summary import NO_PARENT, SummaryInput, summary
from sparsify.records import LevelRecord


@dataclass
class VerdictSettings:
    accuracy_drop: float = 0.01  # 1 point of accuracy below the dense parent
    mce_rise: float = 0.1  # mCE at most 1.1 times the parent's
    ece_rise: float = 0.02  # 2 points of ECE above the parent's
    agreement_drop: float = 0.05  # at least 95% top-1 agreement with the parent
    worst_class_recall_drop: float = 0.05  # no class loses more than 5 points of recall
    min_images: int = 5  # flag tolerances worth fewer test images than this

    def check(self, where: str) -> None:
        for name in TOLERANCES:
            check_range(f"{where}.{name}", getattr(self, name), 0.0, 1.0, hi_open=False)
        check_range(f"{where}.min_images", self.min_images, 0, None)


Excess = Callable[[LevelRecord, LevelRecord], Optional[float]]


def _drop(key: str) -> Excess:
    def excess(lv: LevelRecord, dense: LevelRecord) -> Optional[float]:
        if key not in lv.metrics or key not in dense.metrics:
            return None
        return dense.metrics[key] - lv.metrics[key]

    return excess


def _rise(key: str, baseline: Optional[float] = None) -> Excess:
    def excess(lv: LevelRecord, dense: LevelRecord) -> Optional[float]:
        ref = baseline if baseline is not None else dense.metrics.get(key)
        if key not in lv.metrics or ref is None:
            return None
        return lv.metrics[key] - ref

    return excess


def _one_minus(key: str) -> Excess:
    return lambda lv, dense: None if key not in lv.metrics else 1.0 - lv.metrics[key]


def _value(key: str) -> Excess:
    return lambda lv, dense: lv.metrics.get(key)


# tolerance -> (the metric it limits, how far a level is from its parent in that metric)
TOLERANCES: dict[str, tuple[str, Excess]] = {
    "accuracy_drop": ("accuracy", _drop("accuracy")),
    "mce_rise": ("mce", _rise("mce", baseline=1.0)),
    "ece_rise": ("ece", _rise("ece")),
    "agreement_drop": ("agreement", _one_minus("agreement")),
    "worst_class_recall_drop": ("worst_class_recall_drop", _value("worst_class_recall_drop")),
}
# tolerances counted in images of the split (per class for the class recall)
IN_IMAGES = ("accuracy_drop", "ece_rise", "agreement_drop", "worst_class_recall_drop")


def _section(inp):
    from sparsify.report.evaluation_parts import verdict_section

    return verdict_section(inp)


@summary("verdict", settings=VerdictSettings, section=_section)
def verdict(inp: SummaryInput) -> dict[str, Any]:
    s: VerdictSettings = inp.settings
    dense = inp.dense
    if dense is None:
        return {"skipped": NO_PARENT}
    checks = {}
    for name, (metric, excess) in TOLERANCES.items():
        if all(excess(lv, dense) is not None for lv in inp.records):
            checks[name] = (metric, excess, getattr(s, name))
    levels = []
    for lv in inp.records:
        fails = {}
        for name, (_metric, excess, tol) in checks.items():
            over = excess(lv, dense)
            if over > tol + 1e-12:
                fails[name] = over
        levels.append({"level": lv.level, "sparsity": lv.sparsity, "fails": fails})
    passing = [e for e in levels if not e["fails"]]
    safe = max(passing, key=lambda e: e["sparsity"])
    above = sorted(
        (e for e in levels if e["sparsity"] > safe["sparsity"]), key=lambda e: e["sparsity"]
    )
    binding = None
    if above:
        first = above[0]
        name = max(first["fails"], key=lambda n: first["fails"][n] / max(checks[n][2], 1e-12))
        binding = {
            "tolerance": name,
            "metric": checks[name][0],
            "level": first["level"],
            "sparsity": first["sparsity"],
            "excess": first["fails"][name],
            "limit": checks[name][2],
        }
    # levels below the safe sparsity that fail: the pass above them may be the split's noise
    below = [e for e in levels if e["fails"] and e["sparsity"] < safe["sparsity"]]
    warnings = [
        f"level {e['level']} ({100 * e['sparsity']:.2f}% sparse) exceeds "
        f"{', '.join(sorted(e['fails']))}, below the safe sparsity"
        for e in below
    ]
    for name in checks:
        if name not in IN_IMAGES:
            continue
        per = (
            inp.eval_images / inp.num_classes
            if name == "worst_class_recall_drop"
            else inp.eval_images
        )
        images = checks[name][2] * per
        if images < s.min_images:
            unit = "images of a class" if name == "worst_class_recall_drop" else "test images"
            warnings.append(
                f"{name}={checks[name][2]:g} is {images:.1f} {unit} (of {per:.0f}): "
                "differences of this size are within the noise of the split"
            )
    return {
        "safe_sparsity": safe["sparsity"],
        "safe_level": safe["level"],
        "binding": binding,
        "tolerances": {n: c[2] for n, c in checks.items()},
        "levels": levels,
        "warnings": warnings,
    }
