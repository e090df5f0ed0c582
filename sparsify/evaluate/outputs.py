"""A model's outputs on one test distribution, computed once and shared by every evaluator that
reads them (the level's per level, the dense parent's once per run)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import torch
from torch import Tensor, nn

from sparsify.evaluate.distributions import Distribution, Inputs


@dataclass(frozen=True)
class Outputs:
    """logits: float32 (N, K) on the CPU; labels: int64 (N,), in the distribution's order."""

    logits: Tensor
    labels: Tensor

    @cached_property
    def probs(self) -> Tensor:
        return self.logits.double().softmax(1)

    @cached_property
    def preds(self) -> Tensor:
        return self.logits.argmax(1)

    @property
    def accuracy(self) -> float:
        return float((self.preds == self.labels).double().mean())

    @property
    def error(self) -> float:
        return 1.0 - self.accuracy


@torch.no_grad()
def compute_outputs(model: nn.Module, inputs: Inputs, dist: Distribution) -> Outputs:
    """`model`'s logits (in eval mode) on every batch of `dist`."""
    was_training = model.training
    model.eval()
    logits, labels = [], []
    for x, y in inputs.batches(dist):
        logits.append(model(x).float().cpu())
        labels.append(y.cpu())
    model.train(was_training)
    assert logits, "empty evaluation split"
    return Outputs(torch.cat(logits), torch.cat(labels))
