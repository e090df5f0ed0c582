"""Spreading a sparsity target over layers, then choosing weights by score.

- `global`: one threshold over all prunable weights (the lottery-ticket default);
- `layerwise`: every layer pruned to the same sparsity;
- `erk`: Erdős–Rényi-Kernel densities (Evci et al. 2020, RigL): a layer's density is proportional
  to (sum of its dimensions) / (product of its dimensions), scaled to meet the target; layers that
  would exceed density 1 are kept dense and the rest rescaled. Each layer keeps
  round(density · n) weights, so the total lands within a weight per layer of the target.
- `erk_rigl`: the same rule with RigL's counts (`sparse_utils.get_sparsities_erdos_renyi`): the
  budget is Σ (n − floor(s · n)) kept weights, the layer of highest raw density is made dense one
  at a time, and each layer keeps ceil(density · n): a few weights above the target
  (54,199 kept against 54,176 for `erk` on ResNet-20 at 0.8).

Counts are exact: ties at the threshold are broken by position (or, given a generator, at random
as Zhou et al.'s lexsort with a random key does), and weights already pruned (mask False) stay
pruned, so pruning never revives a weight. `global` can also count weights
outside the mask (excluded layers, always alive) in the total, as OpenLTH does, so that the whole
target is taken from the prunable layers; `openlth_mask` is OpenLTH's own rule for one level,
`zhou_pruned` Zhou et al.'s count per layer and round.

With `block` or `channel` granularity (see granularity.py) the same allocations act on groups,
B×B blocks or output channels, and the target still counts weights: groups go lowest score first
(ties by position, later kept) until the pruned weight count is closest to target × weights. So
the kept count is within half a group of (1 - target) × weights, unrounded: overall for `global`,
in every layer for `layerwise` and `erk` (at most B²/2 weights per layer for blocks, rest/2 for
channels). Groups holding an already-pruned weight are dead and always pruned, which can only
make a layer sparser. `block` with B = 1 is unstructured pruning and takes its exact path. `nm`
ignores target and allocation: its sparsity is 1 - N/M by construction (sparser where weights were
already pruned, slightly denser in tail runs).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
from torch import Tensor

from sparsify.sparsity.granularity import (
    block_groups,
    channel_groups,
    check_granularity,
    expand_blocks,
    expand_channels,
    nm_mask,
)
from sparsify.sparsity.mask import Mask
from sparsify.sparsity.select import kth_smallest

ALLOCATIONS = ("global", "layerwise", "erk", "erk_rigl")


def keep_highest(scores: Tensor, n_keep: int, ties: torch.Generator | None = None) -> Tensor:
    """Bool tensor (flat) keeping exactly the `n_keep` highest scores; of the scores tied at the
    cut, those at the latest positions are kept, or a uniformly random subset drawn from `ties`."""
    n = scores.numel()
    if n_keep >= n:
        return torch.ones(n, dtype=torch.bool)
    if n_keep <= 0:
        return torch.zeros(n, dtype=torch.bool)
    threshold = kth_smallest(scores, n - n_keep)  # the highest score that is pruned
    keep = scores > threshold
    deficit = n_keep - int(keep.sum())
    if deficit > 0:
        tied = (scores == threshold).nonzero().flatten()
        if ties is not None:
            tied = tied[torch.randperm(tied.numel(), generator=ties)]
        keep[tied[-deficit:]] = True
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


def rigl_erk_kept(shapes: Mapping[str, tuple[int, ...]], sparsity: float) -> dict[str, int]:
    """Weights each layer keeps under RigL's ERK at overall `sparsity` (erk_power_scale 1): the
    kept budget is Σ (n − floor(s · n)); while the highest raw density (Σ dims / Π dims) scaled to
    the budget exceeds 1, the layers with that raw density are made dense (their own
    floor(s · n) taken off the budget); each layer keeps ceil(n · density)."""
    numel = {n: math.prod(s) for n, s in shapes.items()}
    raw = {n: sum(s) / math.prod(s) for n, s in shapes.items()}
    pruned = {n: int(numel[n] * sparsity) for n in shapes}
    dense: set[str] = set()
    while True:
        live = [n for n in shapes if n not in dense]
        budget = sum(numel[n] - pruned[n] for n in live) - sum(pruned[n] for n in dense)
        divisor = sum(raw[n] * numel[n] for n in live)
        eps = budget / divisor if divisor > 0 else 0.0
        top = max((raw[n] for n in live), default=0.0)
        if top * eps <= 1.0:
            break
        dense |= {n for n in live if raw[n] == top}
    return {n: numel[n] if n in dense else math.ceil(numel[n] * eps * raw[n]) for n in shapes}


def _layer_targets(
    mask: Mask, target: float, allocation: str, layer_targets: Mapping[str, float] | None
) -> dict[str, float]:
    """Per-layer sparsities for `layerwise` (`layer_targets` overriding `target` for the layers it
    names), `erk` and `erk_rigl` (by the weights' shapes). Layerwise keeps the target itself, not
    1 − (1 − target): the round trip turns 0.05 × 40 weights into 2.0000000000000018."""
    if allocation == "layerwise":
        return {n: (layer_targets or {}).get(n, target) for n in mask}
    if allocation == "erk_rigl":
        kept = rigl_erk_kept({n: tuple(mask[n].shape) for n in mask}, target)
        return {n: 1.0 - kept[n] / mask[n].numel() for n in mask}
    densities = erk_densities({n: tuple(mask[n].shape) for n in mask}, 1.0 - target)
    return {n: 1.0 - d for n, d in densities.items()}


def prune_mask(
    scores: Mapping[str, Tensor],
    mask: Mask,
    target: float,
    allocation: str = "global",
    granularity: str = "unstructured",
    block: int = 32,
    n: int = 2,
    m: int = 4,
    layer_targets: Mapping[str, float] | None = None,
    excluded: int = 0,
    ties: torch.Generator | None = None,
    channel_norm: str = "l1",
) -> Mask:
    """A new mask with overall sparsity `target` (fraction of prunable weights pruned, in [0, 1)),
    keeping the highest-scoring live weights, blocks or channels. Weights pruned in `mask` stay
    pruned; if `mask` is already sparser than `target` in some layer, that layer is left as it is.

    `layer_targets` ({name: sparsity in [0, 1)}, `layerwise` only) gives some layers their own
    target. `excluded` (`global` only) is a number of weights outside `mask`, never pruned, that
    count in the total as OpenLTH counts excluded layers: target × (prunable + excluded) weights
    are then pruned, all from the prunable layers. `ties` (unstructured only): a generator that
    breaks ties at the cut at random instead of by position.

    `scores` and `mask` map state_dict names to tensors of the weights' shapes. `granularity` is
    one of GRANULARITIES: `block` prunes B×B tiles (B = `block`) of each weight's (K, rest) matrix
    by L2 norm, `channel` whole output channels by `channel_norm` (l1 or l2), `nm` keeps `n` of every `m` weights
    along the rows (target and allocation are then ignored). Invalid granularity, block, n or m
    raise UserError.
    """
    check_granularity(granularity, block, n, m)
    assert 0.0 <= target < 1.0, target
    assert allocation in ALLOCATIONS, allocation
    assert layer_targets is None or allocation == "layerwise", allocation
    assert excluded == 0 or allocation == "global", allocation
    assert ties is None or granularity == "unstructured", granularity
    if granularity == "nm":
        return Mask({name: nm_mask(scores[name], mask[name], n, m) for name in mask})
    targets = (
        None if allocation == "global" else _layer_targets(mask, target, allocation, layer_targets)
    )
    if granularity == "unstructured" or (granularity == "block" and block == 1):
        return _prune_weights(scores, mask, target, targets, excluded, ties)
    return _prune_groups(scores, mask, target, targets, excluded, granularity, block, channel_norm)


def _prune_weights(
    scores: Mapping[str, Tensor],
    mask: Mask,
    target: float,
    targets: dict[str, float] | None,
    excluded: int,
    ties: torch.Generator | None = None,
) -> Mask:
    """Unstructured pruning: exact weight counts through the k-th smallest score; `targets` are
    per-layer sparsities, or None for one global count (with `excluded` weights in the total);
    `ties` as in `keep_highest`."""
    names = list(mask)
    flat = {n: _masked_scores(scores[n], mask[n]) for n in names}
    alive = {n: int(mask[n].count_nonzero()) for n in names}
    if targets is None:
        total = sum(t.numel() for t in flat.values()) + excluded
        n_keep = min(max(round((1.0 - target) * total) - excluded, 0), sum(alive.values()))
        keep = keep_highest(torch.cat([flat[n] for n in names]), n_keep, ties)
        parts = keep.split([flat[n].numel() for n in names])
        return Mask({n: p.view_as(mask[n]) for n, p in zip(names, parts)})
    out = {}
    for n in names:
        n_keep = min(round((1.0 - targets[n]) * flat[n].numel()), alive[n])
        out[n] = keep_highest(flat[n], n_keep, ties).view_as(mask[n])
    return Mask(out)


def openlth_mask(scores: Mapping[str, Tensor], mask: Mask, rate: float, excluded: int = 0) -> Mask:
    """One level of OpenLTH's `sparse_global` pruning: with n = ceil(rate × remaining), where
    remaining counts the live weights of `mask` plus `excluded` (weights of excluded layers, all
    alive), the new mask keeps the live weights whose score is strictly above the n-th smallest
    live score (0-based). So it prunes n + 1 weights when no scores tie, and every weight tied at
    the threshold. Assumes n is below the number of live weights (else every weight is pruned)."""
    names = list(mask)
    flat = torch.cat([_masked_scores(scores[n], mask[n]) for n in names])
    alive = torch.cat([mask[n].reshape(-1) for n in names])
    live = int(alive.count_nonzero())
    n_prune = math.ceil(rate * (live + excluded))
    if n_prune >= live:
        keep = torch.zeros_like(alive)
    else:  # dead weights score -inf: they are the first len - live of the sorted scores
        threshold = kth_smallest(flat, flat.numel() - live + n_prune + 1)
        keep = alive & (flat > threshold)
    parts = keep.split([mask[n].numel() for n in names])
    return Mask({n: p.view_as(mask[n]) for n, p in zip(names, parts)})


def zhou_pruned(alive: int, rate: float) -> int:
    """Weights one round of Zhou et al.'s get_weight_init.py prunes from a layer with `alive` live
    weights at `rate` per round: int(alive · p / 100) with p = (1 − (1 − rate)¹) · 100, in their
    float arithmetic. So 0.2 gives p = 19.999999999999996 and prunes one weight fewer than
    0.2 · alive wherever that is whole (1 of 10, 47,039 of 235,200)."""
    percentile = (1.0 - (1.0 - rate) ** 1) * 100.0  # prune_base = 1 − rate, prune_power 1
    return int(alive * percentile / 100)


def _keep_groups(scores: Tensor, sizes: Tensor, n_prune: float) -> Tensor:
    """Bool keep-flag per group: prune the lowest-scoring groups (dead ones, at -inf, first; ties
    pruned earliest position first) so that the pruned weight count is closest to `n_prune` (a
    real number, so the result is within half a group of it; on a tie the group is kept)."""
    # float noise (6.000000000000001 for 0.15 of 40 weights) must not break a half-group tie
    n_prune = round(n_prune, 6)
    order = torch.sort(scores, stable=True).indices
    pruned = torch.cat([torch.zeros(1, dtype=torch.int64), sizes[order].cumsum(0)])
    # the first prefix pruning at least n_prune weights, or the one before it if that is closer
    i = int(torch.searchsorted(pruned, torch.tensor(math.ceil(n_prune))))
    if i == len(pruned) or (i > 0 and n_prune - int(pruned[i - 1]) <= int(pruned[i]) - n_prune):
        i -= 1
    i = max(i, int(torch.isneginf(scores).sum()))  # dead groups are always pruned
    keep = torch.ones_like(scores, dtype=torch.bool)
    keep[order[:i]] = False
    return keep


def _prune_groups(
    scores: Mapping[str, Tensor],
    mask: Mask,
    target: float,
    targets: dict[str, float] | None,
    excluded: int,
    granularity: str,
    block: int,
    channel_norm: str = "l1",
) -> Mask:
    """Block or channel pruning: allocation over groups, target counted in weights; `targets`
    per layer, or None for one global count (with `excluded` weights in the total)."""
    names = list(mask)
    if granularity == "block":
        groups = {n: block_groups(scores[n], mask[n], block) for n in names}
    else:
        assert granularity == "channel", granularity
        groups = {n: channel_groups(scores[n], mask[n], channel_norm) for n in names}
    if targets is None:
        total = sum(mask[n].numel() for n in names) + excluded
        flat = _keep_groups(
            torch.cat([groups[n][0] for n in names]),
            torch.cat([groups[n][1] for n in names]),
            target * total,
        )
        keep = dict(zip(names, flat.split([groups[n][0].numel() for n in names])))
    else:
        keep = {n: _keep_groups(*groups[n], targets[n] * mask[n].numel()) for n in names}
    if granularity == "block":
        return Mask({n: expand_blocks(keep[n], mask[n].shape, block) for n in names})
    return Mask({n: expand_channels(keep[n], mask[n].shape) for n in names})
