"""`accuracy`: top-1 accuracy, mean cross-entropy loss, and top-5 accuracy when there are more
than 10 classes (keys: accuracy, loss, top5_accuracy; accuracies are fractions in [0, 1])."""

from __future__ import annotations

from sparsify.evaluate.base import EvalResult, MetricSpec, evaluator
from sparsify.evaluate.context import EvalContext
from sparsify.evaluate.metrics import loss_and_topk

METRICS = {
    "accuracy": MetricSpec(
        "accuracy", percent=True, higher_is_better=True, plot=True, headline=True
    ),
    "loss": MetricSpec("loss (cross-entropy)", higher_is_better=False),
    "top5_accuracy": MetricSpec("top-5 accuracy", percent=True, higher_is_better=True),
}


@evaluator("accuracy", metrics=METRICS)
def accuracy(ctx: EvalContext) -> EvalResult:
    ks = (1, 5) if ctx.data.num_classes > 10 else (1,)
    loss, acc = loss_and_topk(ctx.model, ctx.loader, ctx.device, ks)
    scalars = {"accuracy": acc[1], "loss": loss}
    if 5 in acc:
        scalars["top5_accuracy"] = acc[5]
    return EvalResult(scalars=scalars)
