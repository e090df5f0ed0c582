"""`calibration`: whether a level's confidence means what it says (Guo et al. 2017).

- ece: expected calibration error with `bins` equal-width bins of the top-1 confidence, bins
  (lo, hi], Σ_b |B_b|/N · |accuracy(B_b) − confidence(B_b)| (tests/test_calibration.py checks it
  against torchmetrics' MulticlassCalibrationError and a loop over the definition; ours is a few
  vectorised lines in float64, where torchmetrics costs a second to import and a millisecond a
  call, for the ~100 distributions of every level);
- nll: mean negative log-likelihood of the true class; brier: mean Σ_k (p_k − 1[k = y])²;
- temperature: the scalar T minimising the NLL of logits / T on the validation split (L-BFGS on
  log T from T = 1.5, as Guo et al.'s code); ece_scaled and nll_scaled: the same metrics after
  dividing the logits by T (absent without a validation split);
- corrupted_ece: the mean ECE over the corrupted data of `eval.corruptions`;
- a reliability table (per bin: count, mean confidence, accuracy) for the report's diagram.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from sparsify.checks import check_range
from sparsify.evaluate.base import EvalResult, MetricSpec, evaluator
from sparsify.evaluate.context import EvalContext
from sparsify.evaluate.distributions import clean


@dataclass
class CalibrationSettings:
    bins: int = 15  # equal-width confidence bins (Guo et al.: 15)
    corrupted: bool = True  # also the ECE on the corrupted data of eval.corruptions

    def check(self, where: str) -> None:
        check_range(f"{where}.bins", self.bins, 2, 1000, hi_open=False)


METRICS = {
    "ece": MetricSpec("ECE", percent=True, higher_is_better=False, plot=True),
    "nll": MetricSpec("NLL", higher_is_better=False),
    "brier": MetricSpec("Brier score", higher_is_better=False),
    "temperature": MetricSpec("temperature (fitted on val)", digits=3),
    "ece_scaled": MetricSpec("ECE after temperature scaling", percent=True, higher_is_better=False),
    "nll_scaled": MetricSpec("NLL after temperature scaling", higher_is_better=False),
    "corrupted_ece": MetricSpec("ECE under corruption", percent=True, higher_is_better=False),
}


def _bins(logits: Tensor, labels: Tensor, bins: int) -> tuple[Tensor, Tensor, Tensor]:
    """Per sample: its confidence bin (lo, hi] in 0..bins-1, confidence, and whether correct."""
    conf, pred = logits.double().softmax(1).max(1)
    edges = torch.linspace(0, 1, bins + 1, dtype=torch.float64)[1:-1]
    return torch.bucketize(conf, edges), conf, (pred == labels).double()


def ece(logits: Tensor, labels: Tensor, bins: int) -> float:
    """Expected calibration error (L1, equal-width bins (lo, hi]) of softmax(logits)."""
    index, conf, correct = _bins(logits, labels, bins)
    gap = torch.zeros(bins, dtype=torch.float64).index_add_(0, index, correct - conf)
    return float(gap.abs().sum() / labels.numel())


def reliability(logits: Tensor, labels: Tensor, bins: int) -> dict:
    """Per equal-width confidence bin (lo, hi]: count, mean confidence, accuracy (empty bins
    have None)."""
    index, conf, correct = _bins(logits, labels, bins)
    edges = torch.linspace(0, 1, bins + 1, dtype=torch.float64)
    rows = []
    for b in range(bins):
        sel = index == b
        n = int(sel.sum())
        rows.append(
            [
                float(edges[b]),
                float(edges[b + 1]),
                n,
                float(conf[sel].mean()) if n else None,
                float(correct[sel].mean()) if n else None,
            ]
        )
    return {"columns": ["lo", "hi", "count", "confidence", "accuracy"], "rows": rows}


def nll(logits: Tensor, labels: Tensor) -> float:
    return float(F.cross_entropy(logits.double(), labels))


def brier(logits: Tensor, labels: Tensor) -> float:
    probs = logits.double().softmax(1)
    onehot = F.one_hot(labels, probs.shape[1]).double()
    return float(((probs - onehot) ** 2).sum(1).mean())


def fit_temperature(logits: Tensor, labels: Tensor) -> float:
    """The T > 0 minimising NLL(logits / T): L-BFGS on log T (T = 1.5 at the start, 50 steps)."""
    logits = logits.double()
    log_t = torch.tensor([1.5], dtype=torch.float64).log().requires_grad_(True)
    opt = torch.optim.LBFGS([log_t], lr=0.1, max_iter=50, line_search_fn="strong_wolfe")

    def closure() -> Tensor:
        opt.zero_grad()
        loss = F.cross_entropy(logits / log_t.exp(), labels)
        loss.backward()
        return loss

    opt.step(closure)
    return float(log_t.detach().exp())


@torch.no_grad()
def _val_logits(ctx: EvalContext) -> tuple[Tensor, Tensor] | None:
    if ctx.data.val is None:
        return None
    model = ctx.model
    logits, labels = [], []
    for x, y in ctx.data.val.batches(0):
        logits.append(model(x.to(ctx.device)).float().cpu())
        labels.append(y)
    return torch.cat(logits), torch.cat(labels)


def _section(inp):
    from sparsify.report.evaluation_parts import calibration_section

    return calibration_section(inp)


@evaluator(
    "calibration",
    metrics=METRICS,
    section=_section,
    settings=CalibrationSettings,
    shares=("corruptions",),
)
def calibration(ctx: EvalContext) -> EvalResult:
    s: CalibrationSettings = ctx.settings
    out = ctx.outputs(clean())
    scalars = {
        "ece": ece(out.logits, out.labels, s.bins),
        "nll": nll(out.logits, out.labels),
        "brier": brier(out.logits, out.labels),
    }
    val = _val_logits(ctx)
    if val is not None:
        t = fit_temperature(*val)
        scalars["temperature"] = t
        scalars["ece_scaled"] = ece(out.logits / t, out.labels, s.bins)
        scalars["nll_scaled"] = nll(out.logits / t, out.labels)
    dists = ctx.corrupted() if s.corrupted else []
    if dists:
        values = [ece(ctx.outputs(d).logits, ctx.outputs(d).labels, s.bins) for d in dists]
        scalars["corrupted_ece"] = sum(values) / len(values)
    tables = {"reliability": reliability(out.logits, out.labels, s.bins)}
    return EvalResult(scalars=scalars, tables=tables)
