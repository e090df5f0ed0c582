"""Spreading a sparsity target over layers, then choosing weights by score.

- `global`: one threshold over all prunable weights (the lottery-ticket default);
- `layerwise`: every layer pruned to the same sparsity;
- `erk`: Erdős–Rényi-Kernel densities (Evci et al. 2020, RigL): a layer's density is proportional
  to (sum of its dimensions) / (product of its dimensions), scaled to meet the target; layers that
  would exceed density 1 are kept dense and the rest rescaled.

Counts are exact: ties at the threshold are broken by position, and weights already pruned
(mask False) stay pruned, so pruning never revives a weight.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
from torch import Tensor

from sparsify.sparsity.mask import Mask
from sparsify.sparsity.select import kth_smallest

ALLOCATIONS = ("global", "layerwise", "erk")


def _keep_highest(scores: Tensor, n_keep: int) -> Tensor:
    """Bool tensor (flat) keeping exactly the `n_keep` highest scores; ties go to later positions."""
    n = scores.numel()
    if n_keep >= n:
        return torch.ones(n, dtype=torch.bool)
    if n_keep <= 0:
        return torch.zeros(n, dtype=torch.bool)
    threshold = kth_smallest(scores, n - n_keep)  # the highest score that is pruned
    keep = scores > threshold
    deficit = n_keep - int(keep.sum())
    if deficit > 0:
        ties = (scores == threshold).nonzero().flatten()
        keep[ties[-deficit:]] = True
    return keep


def _masked_scores(scores: Tensor, mask: Tensor) -> Tensor:
    """Flat float32 scores with already-pruned weights at -inf, so they are pruned first."""
    flat = scores.reshape(-1).float()
    if bool(mask.all()):
        return flat
    return flat.masked_fill(~mask.reshape(-1), float("-inf"))


def erk_densities(shapes: Mapping[str, tuple[int, ...]], density: float) -> dict[str, float]:
    """Per-layer densities whose weighted mean is `density` (ERK; capped at 1 per layer)."""
    numel = {n: math.prod(s) for n, s in shapes.items()}
    raw = {n: sum(s) / math.prod(s) for n, s in shapes.items()}
    total = sum(numel.values())
    dense: set[str] = set()
    while True:
        budget = density * total - sum(numel[n] for n in dense)
        divisor = sum(raw[n] * numel[n] for n in shapes if n not in dense)
        eps = budget / divisor if divisor > 0 else 0.0
        over = {n for n in shapes if n not in dense and eps * raw[n] > 1.0}
        if not over:
            break
        dense |= over
    return {n: 1.0 if n in dense else eps * raw[n] for n in shapes}


def prune_mask(
    scores: Mapping[str, Tensor], mask: Mask, target: float, allocation: str = "global"
) -> Mask:
    """A new mask with overall sparsity `target` (fraction of prunable weights pruned, in [0, 1)),
    keeping the highest-scoring live weights. Weights pruned in `mask` stay pruned; if `mask` is
    already sparser than `target` in some layer, that layer is left as it is."""
    assert 0.0 <= target < 1.0, target
    assert allocation in ALLOCATIONS, allocation
    names = list(mask)
    flat = {n: _masked_scores(scores[n], mask[n]) for n in names}
    alive = {n: int(mask[n].sum()) for n in names}
    if allocation == "global":
        total = sum(t.numel() for t in flat.values())
        n_keep = min(round((1.0 - target) * total), sum(alive.values()))
        keep = _keep_highest(torch.cat([flat[n] for n in names]), n_keep)
        parts = keep.split([flat[n].numel() for n in names])
        return Mask({n: p.view_as(mask[n]) for n, p in zip(names, parts)})
    if allocation == "layerwise":
        density = {n: 1.0 - target for n in names}
    else:
        density = erk_densities({n: tuple(mask[n].shape) for n in names}, 1.0 - target)
    return Mask(
        {
            n: _keep_highest(flat[n], min(round(density[n] * flat[n].numel()), alive[n])).view_as(
                mask[n]
            )
            for n in names
        }
    )
