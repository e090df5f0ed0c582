"""`accuracy`: top-1 accuracy, mean cross-entropy loss, and top-5 accuracy when there are more
than 10 classes (keys: accuracy, loss, top5_accuracy; accuracies are fractions in [0, 1]), from
the level's outputs on the clean evaluation split (shared with the other evaluators)."""

from __future__ import annotations

import torch.nn.functional as F

from sparsify.evaluate.base import EvalResult, MetricSpec, evaluator
from sparsify.evaluate.context import EvalContext
from sparsify.evaluate.distributions import clean

METRICS = {
    "accuracy": MetricSpec(
        "accuracy", percent=True, higher_is_better=True, plot=True, headline=True, binomial=True
    ),
    "loss": MetricSpec("loss (cross-entropy)", higher_is_better=False),
    "top5_accuracy": MetricSpec(
        "top-5 accuracy", percent=True, higher_is_better=True, binomial=True
    ),
}


@evaluator("accuracy", metrics=METRICS)
def accuracy(ctx: EvalContext) -> EvalResult:
    out = ctx.outputs(clean())
    scalars = {
        "accuracy": out.accuracy,
        "loss": float(F.cross_entropy(out.logits.double(), out.labels)),
    }
    if ctx.data.num_classes > 10:
        top5 = out.logits.topk(5, dim=1).indices == out.labels[:, None]
        scalars["top5_accuracy"] = float(top5.any(dim=1).double().mean())
    return EvalResult(scalars=scalars)
