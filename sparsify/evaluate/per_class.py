"""`per_class`: recall per class, its change against the dense parent, the most-hurt classes and
the confusion matrix (Hooker et al.'s question: does pruning hurt some classes more?).

Scalars: worst_class_recall (the lowest recall of any class) and, with a dense parent,
worst_class_recall_drop (the largest drop of one class's recall against the parent's, in
recall points; negative when every class improved). Tables: `recall` (per class: recall, the
parent's, the change) when there are at most 100 classes; arrays: recall.pt (K,) and
confusion.pt (K, K), rows the true class, columns the predicted one.
"""

from __future__ import annotations

import torch

from sparsify.evaluate.base import EvalResult, MetricSpec, evaluator
from sparsify.evaluate.context import EvalContext
from sparsify.evaluate.distributions import clean
from sparsify.evaluate.outputs import Outputs

MAX_TABLE_CLASSES = 100

METRICS = {
    "worst_class_recall": MetricSpec(
        "worst-class recall", percent=True, higher_is_better=True, plot=True
    ),
    "worst_class_recall_drop": MetricSpec(
        "largest class recall drop vs dense", percent=True, higher_is_better=False
    ),
}


def class_recall(out: Outputs, num_classes: int) -> torch.Tensor:
    """Recall per class (K,) float64; a class absent from the labels has recall 0, as
    torchmetrics' MulticlassRecall(average=None) (tests/test_calibration.py compares them)."""
    matrix = confusion(out, num_classes).double()
    return matrix.diagonal() / matrix.sum(1).clamp_min(1)


def confusion(out: Outputs, num_classes: int) -> torch.Tensor:
    """(K, K) int64 counts, rows the true class, columns the predicted one."""
    flat = out.labels * num_classes + out.preds
    return torch.bincount(flat, minlength=num_classes**2).view(num_classes, num_classes)


def _section(inp):
    from sparsify.report.evaluation_parts import per_class_section

    return per_class_section(inp)


@evaluator("per_class", metrics=METRICS, section=_section)
def per_class(ctx: EvalContext) -> EvalResult:
    k = ctx.data.num_classes
    out = ctx.outputs(clean())
    recall = class_recall(out, k)
    scalars = {"worst_class_recall": float(recall.min())}
    dense_out = ctx.dense_outputs(clean())
    dense = class_recall(dense_out, k) if dense_out is not None else None
    if dense is not None:
        scalars["worst_class_recall_drop"] = float((dense - recall).max())
    tables = {}
    if k <= MAX_TABLE_CLASSES:
        rows = []
        for c in range(k):
            ref = None if dense is None else float(dense[c])
            change = None if dense is None else float(recall[c] - dense[c])
            rows.append([c, float(recall[c]), ref, change])
        tables["recall"] = {"columns": ["class", "recall", "dense", "change"], "rows": rows}
    arrays = {"recall": recall, "confusion": confusion(out, k)}
    return EvalResult(scalars=scalars, tables=tables, arrays=arrays)
