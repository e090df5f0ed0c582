"""`fidelity`: how closely a level computes the function of its dense parent (Lost in Pruning,
Liebenwein et al. 2021, "functional similarity"), on identical inputs:

- agreement: the fraction of inputs whose top-1 prediction equals the dense parent's;
- softmax_l2: the mean over inputs of ‖softmax(level) − softmax(dense)‖₂;

on the clean evaluation split, under uniform noise x + U[−ε, ε] per input element in the
normalised input space for each radius ε of `eps` (`samples` noisy copies of every image), and
on the corrupted data of `eval.corruptions`. The noise is the same for the level and its parent.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sparsify.checks import check_range
from sparsify.errors import UserError
from sparsify.evaluate.base import EvalResult, MetricSpec, evaluator
from sparsify.evaluate.context import EvalContext
from sparsify.evaluate.distributions import clean, noisy
from sparsify.evaluate.outputs import Outputs


@dataclass
class FidelitySettings:
    # noise radii in normalised units; Lost in Pruning uses 15 radii from 0 to 0.7
    eps: list[float] = field(default_factory=lambda: [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7])
    samples: int = 4  # noisy copies of each image per radius (Lost in Pruning: 100)
    corrupted: bool = True  # also on the corrupted data of eval.corruptions

    def check(self, where: str) -> None:
        if len(set(self.eps)) != len(self.eps):
            raise UserError(f"{where}.eps lists a radius twice: {list(self.eps)}")
        for e in self.eps:
            check_range(f"{where}.eps", e, 0.0, 10.0, lo_open=True, hi_open=False)
        check_range(f"{where}.samples", self.samples, 1, 1000, hi_open=False)


METRICS = {
    "agreement": MetricSpec(
        "top-1 agreement with dense", percent=True, higher_is_better=True, plot=True
    ),
    "softmax_l2": MetricSpec("softmax L2 distance to dense", higher_is_better=False),
    "noise_agreement": MetricSpec(
        "agreement with dense under noise (mean over ε)", percent=True, higher_is_better=True
    ),
    "corrupted_agreement": MetricSpec(
        "agreement with dense under corruption", percent=True, higher_is_better=True
    ),
}


def agreement(a: Outputs, b: Outputs) -> float:
    return float((a.preds == b.preds).double().mean())


def softmax_l2(a: Outputs, b: Outputs) -> float:
    return float((a.probs - b.probs).norm(dim=1).mean())


@evaluator(
    "fidelity",
    metrics=METRICS,
    settings=FidelitySettings,
    needs=("dense",),
    shares=("corruptions",),
)
def fidelity(ctx: EvalContext) -> EvalResult:
    s: FidelitySettings = ctx.settings
    mine, dense = ctx.outputs(clean()), ctx.dense_outputs(clean())
    scalars = {"agreement": agreement(mine, dense), "softmax_l2": softmax_l2(mine, dense)}
    rows = [[0.0, scalars["agreement"], scalars["softmax_l2"], mine.accuracy, dense.accuracy]]
    for eps in sorted(s.eps):
        d = noisy(eps, s.samples)
        m, r = ctx.outputs(d), ctx.dense_outputs(d)
        rows.append([eps, agreement(m, r), softmax_l2(m, r), m.accuracy, r.accuracy])
    if s.eps:
        scalars["noise_agreement"] = sum(row[1] for row in rows[1:]) / len(s.eps)
    tables = {
        "noise": {
            "columns": ["eps", "agreement", "softmax_l2", "accuracy", "dense_accuracy"],
            "rows": rows,
        }
    }
    dists = ctx.corrupted() if s.corrupted else []
    if dists:
        per = {}
        for d in dists:
            per.setdefault(d.corruption, []).append(agreement(ctx.outputs(d), ctx.dense_outputs(d)))
        scalars["corrupted_agreement"] = sum(sum(v) for v in per.values()) / len(dists)
        tables["corrupted"] = {
            "columns": ["corruption", "agreement"],
            "rows": [[name, sum(v) / len(v)] for name, v in per.items()],
        }
    return EvalResult(scalars=scalars, tables=tables)
