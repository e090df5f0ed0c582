"""Evaluators, one file each, registered in EVALUATORS."""

from __future__ import annotations

import torch
from torch import nn

from sparsify.data.base import DataBundle
from sparsify.errors import UserError
from sparsify.evaluate import accuracy  # noqa: F401  (registers)
from sparsify.evaluate.base import EVALUATORS, EvalContext, loss_and_topk

__all__ = ["EVALUATORS", "EvalContext", "evaluate", "loss_and_topk"]


def evaluate(
    model: nn.Module, data: DataBundle, names: list[str], split: str, device: torch.device
) -> dict[str, float]:
    """Run the evaluators `names` on `split` ('test' or 'val'); their metrics merged in order."""
    loader = data.test if split == "test" else data.val
    if loader is None:
        raise UserError("eval.split=val needs a validation split; set data.val_fraction > 0")
    ctx = EvalContext(model=model, data=data, loader=loader, device=device)
    metrics: dict[str, float] = {}
    for name in names:
        metrics.update(EVALUATORS.get(name)(ctx))
    return metrics
