"""`accuracy`: top-1 accuracy, mean cross-entropy loss, and top-5 accuracy when there are more
than 10 classes (keys: accuracy, loss, top5_accuracy; accuracies are fractions in [0, 1])."""

from __future__ import annotations

from sparsify.evaluate.base import EVALUATORS, EvalContext, loss_and_topk


@EVALUATORS.register("accuracy")
def accuracy(ctx: EvalContext) -> dict[str, float]:
    ks = (1, 5) if ctx.data.num_classes > 10 else (1,)
    loss, acc = loss_and_topk(ctx.model, ctx.loader, ctx.device, ks)
    metrics = {"accuracy": acc[1], "loss": loss}
    if 5 in acc:
        metrics["top5_accuracy"] = acc[5]
    return metrics
