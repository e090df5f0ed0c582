"""Keeping pruned weights at exactly zero while training.

Before each optimizer step the gradients of pruned weights are zeroed, so momentum and Adam's
moment estimates of those weights stay zero; weight decay adds wd·w = 0 for a zero weight. After
the step the weights are multiplied by the mask once more, which makes the guarantee independent
of the optimizer's arithmetic. Both are one fused `_foreach_mul_` over all masked tensors: the
cost is one elementwise pass over the weights per step, small against forward and backward.

The model keeps its plain parameters (no parametrization, no `weight_orig` keys), so state_dicts
load into the unpruned architecture.
"""

from __future__ import annotations

import torch
from torch import nn

from sparsify.sparsity.mask import Mask


class MaskEnforcer:
    """Holds the mask as multiplicative tensors on the parameters' device and dtype."""

    def __init__(self, model: nn.Module, mask: Mask) -> None:
        params = dict(model.named_parameters())
        # Fully dense layers need no work; skip them so a dense level costs nothing.
        live = [(name, m) for name, m in mask.items() if not bool(m.all())]
        self.params = [params[name] for name, _ in live]
        self.masks = [m.to(device=params[n].device, dtype=params[n].dtype) for n, m in live]

    def mask_weights(self) -> None:
        """Zero pruned weights in place."""
        if self.params:
            with torch.no_grad():
                torch._foreach_mul_(self.params, self.masks)

    def mask_grads(self) -> None:
        """Zero the gradients of pruned weights in place (call before optimizer.step)."""
        grads = [p.grad for p in self.params if p.grad is not None]
        if grads:
            masks = [m for p, m in zip(self.params, self.masks) if p.grad is not None]
            torch._foreach_mul_(grads, masks)
