"""Plain metrics over a loader, shared by the evaluators and the training loop's validation."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from sparsify.data.base import Loader


@torch.no_grad()
def loss_and_topk(
    model: nn.Module,
    loader: Loader,
    device: torch.device,
    ks: tuple[int, ...] = (1,),
    forward: Callable[[nn.Module, torch.Tensor], torch.Tensor] | None = None,
) -> tuple[float, dict[int, float]]:
    """Mean cross-entropy and top-k accuracies (fractions in [0, 1]) of `model` over `loader`
    (through `forward(model, x)` instead of `model(x)` when given), in eval mode."""
    was_training = model.training
    model.eval()
    loss_sum, n = 0.0, 0
    correct = dict.fromkeys(ks, 0)
    for x, y in loader.batches(0):
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        logits = (model(x) if forward is None else forward(model, x)).float()
        loss_sum += float(F.cross_entropy(logits, y, reduction="sum"))
        top = logits.topk(max(ks), dim=1).indices
        hits = top == y[:, None]
        for k in ks:
            correct[k] += int(hits[:, :k].any(dim=1).sum())
        n += y.numel()
    model.train(was_training)
    assert n > 0, "empty evaluation split"
    return loss_sum / n, {k: c / n for k, c in correct.items()}
