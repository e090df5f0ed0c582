"""`acdc`: alternating compressed / decompressed training (Peste et al. 2021, AC/DC).

One schedule of T iterations in phases: a dense warm-up (`prune.dense_warmup`); then compressed
phases (`prune.compressed`: the mask is recomputed by magnitude of the current weights at
`prune.sparsity`, allocation and granularity as configured) alternating with decompressed ones
(`prune.decompressed`: every weight trains again, pruned ones restarting from zero, and the
optimizer's state is cleared; the authors' code zeroes SGD's momentum buffers, which gives the
same next SGD step); a last decompressed phase
(`prune.final_decompressed`); and a final compressed phase (`prune.final_compressed`). An
alternation that does not fit is cut short where the last decompressed phase begins.

The run ends with both models, as two levels: level 0 trains up to the end of the last
decompressed phase, so its final weights are the dense model; level 1 is the final compressed
phase, continuing the schedule and the optimizer (its momentum: level 0 keeps the optimizer's
state in optimizer.pt; the pruned weights' entries zeroed, which changes no live weight) from
there, with level 0's magnitudes as mask. Compressing keeps the momentum, as one uninterrupted
run of the authors' code does. Both models are saved, evaluated
and listed in results.json.

Masks keep exactly round((1 − sparsity) · N) weights (`prune.threshold=exact`), or, with
`prune.threshold=acdc`, the weights strictly above the k-th largest magnitude, k =
ceil((1 − sparsity) · N), as the authors' pruners do (`acdc_mask`): one weight fewer.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import Tensor

from sparsify.checks import check_choice, check_range
from sparsify.config import ScoredPruneConfig
from sparsify.errors import UserError
from sparsify.methods.base import METHODS, Context, LevelPlan, Method, prune_by
from sparsify.sparsity.criteria import magnitude_scores
from sparsify.sparsity.mask import Mask
from sparsify.sparsity.select import kth_smallest
from sparsify.training.loop import MaskChange, Segment

_PHASES = ("dense_warmup", "compressed", "decompressed", "final_decompressed", "final_compressed")
THRESHOLDS = ("exact", "acdc")


def acdc_mask(
    scores: Mapping[str, Tensor], mask: Mask, target: float, allocation: str = "global"
) -> Mask:
    """IST-DASLab/ACDC's magnitude pruners at sparsity `target` in [0, 1): with
    k = ceil((1 − target) · n) over the n weights of all layers (`global`, their
    `UnstructuredMagnitudePruner`) or of each layer (`layerwise`, `MagnitudePruner`), keep the live
    weights whose score is strictly above the k-th largest. So k − 1 weights are kept when no
    scores tie, and none of those tied at the threshold; weights pruned in `mask` rank last, as
    their zero statistic does. `target` 0 keeps `mask` (their percentile of 0 keeps everything)."""
    assert 0.0 <= target < 1.0, target
    assert allocation in ("global", "layerwise"), allocation
    names = list(mask)
    if target == 0.0:
        return Mask({n: mask[n].clone() for n in names})
    out = {}
    for group in [names] if allocation == "global" else [[n] for n in names]:
        alive = torch.cat([mask[n].reshape(-1) for n in group])
        flat = torch.cat([scores[n].reshape(-1).float() for n in group])
        flat = flat.masked_fill(~alive, float("-inf"))
        k = math.ceil(flat.numel() * (1.0 - target))  # their utils.percentile
        keep = alive & (flat > kth_smallest(flat, flat.numel() - k + 1))  # > the k-th largest
        parts = keep.split([mask[n].numel() for n in group])
        out.update({n: p.view_as(mask[n]) for n, p in zip(group, parts)})
    return Mask(out)


@dataclass
class ACDCConfig(ScoredPruneConfig):
    sparsity: float = 0.9  # the sparsity of the compressed phases, in [0, 1)
    dense_warmup: str = "2ep"
    compressed: str = "1ep"
    decompressed: str = "1ep"
    final_decompressed: str = "1ep"
    final_compressed: str = "2ep"
    # exact: keep round((1 - sparsity) · N), ties by position; acdc: the authors' strict cut
    # above the ceil((1 - sparsity) · N)-th largest magnitude (one weight fewer)
    threshold: str = "exact"

    def check(self) -> None:
        from sparsify.training.steps import check_step

        super().check()
        check_range("prune.sparsity", self.sparsity, 0.0, 1.0)
        for key in _PHASES:
            check_step(getattr(self, key), f"prune.{key}")
        check_choice("prune.threshold", self.threshold, THRESHOLDS)
        if self.threshold == "acdc" and not (
            self.allocation in ("global", "layerwise") and self.granularity == "unstructured"
        ):
            raise UserError(
                "prune.threshold=acdc is the authors' cut of single weights; it needs "
                "prune.allocation=global or layerwise and prune.granularity=unstructured"
            )


@METHODS.register("acdc")
class ACDC(Method):
    config_class = ACDCConfig

    def num_levels(self) -> int:
        return 2

    def lengths(self, ctx: Context) -> dict[str, int]:
        return {k: ctx.steps(getattr(self.cfg, k), f"prune.{k}") for k in _PHASES}

    def phases(self, ctx: Context) -> list[tuple[int, bool]]:
        """[(first iteration, compressed?)] of every phase after the warm-up, in order."""
        n = self.lengths(ctx)
        final_start = ctx.total - n["final_compressed"]
        last_dense = final_start - n["final_decompressed"]
        out, it, compressed = [], n["dense_warmup"], True
        while it < last_dense:
            out.append((it, compressed))
            it += n["compressed"] if compressed else n["decompressed"]
            compressed = not compressed
        if out and out[-1][1]:  # the last decompressed phase (merged with a running one, or
            # with the warm-up itself when no alternation fits)
            out.append((last_dense, False))
        out.append((final_start, True))
        return out

    def check(self, ctx: Context) -> None:
        n = self.lengths(ctx)
        if any(v <= 0 for v in n.values()):
            bad = [f"prune.{k}" for k, v in n.items() if v <= 0]
            raise UserError(f"acdc phase lengths must be positive: {', '.join(bad)}")
        if self.cfg.granularity == "nm":
            raise UserError(
                "acdc prunes to prune.sparsity; prune.granularity=nm fixes it at 1 - n/m"
            )
        fixed = n["dense_warmup"] + n["final_decompressed"] + n["final_compressed"]
        if fixed > ctx.total:
            raise UserError(
                f"acdc: dense_warmup + final_decompressed + final_compressed = {fixed} iterations "
                f"exceed training ({ctx.total} = train.epochs × {ctx.iterations_per_epoch})"
            )

    def compress(self, scores: Mapping[str, Tensor], dense: Mask) -> Mask:
        """The mask of a compressed phase from the weights' `scores` (magnitudes)."""
        cfg = self.cfg
        if cfg.threshold == "exact":
            return prune_by(cfg, scores, dense, cfg.sparsity)
        mask = acdc_mask(scores, dense, cfg.sparsity, cfg.allocation)
        emptied = [n for n, m in mask.items() if not bool(m.any())]
        if emptied:  # as prune_by refuses it: the network could no longer compute through it
            raise UserError(
                f"acdc at sparsity {cfg.sparsity:.4g} would remove every weight of "
                f"{', '.join(emptied)}; use a lower sparsity or prune.exclude for the layer"
            )
        return mask

    def plan(self, level: int, ctx: Context) -> LevelPlan:
        phases = self.phases(ctx)
        final_start = phases[-1][0]
        if level == 1:
            final = ctx.final(0)
            mask = self.compress(magnitude_scores(ctx.prunable_part(final)), ctx.dense_mask())
            return LevelPlan(
                mask, final, Segment(final_start, ctx.total), resume_optimizer_from_previous=True
            )
        starts = dict(phases[:-1])  # iteration -> compressed?
        dense = ctx.dense_mask()

        def schedule(it, live, mask):
            compressed = starts.get(it)
            if compressed is None:
                return None
            if compressed:
                return MaskChange(self.compress(magnitude_scores(live), dense))
            return MaskChange(dense, reset_momentum=True)

        return LevelPlan(
            dense,
            ctx.init,
            Segment(0, final_start, mask_schedule=schedule),
            save_optimizer=True,
        )
