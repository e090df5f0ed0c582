"""`magnitude`: one-shot magnitude pruning. Level 0 trains dense; level 1 prunes the smallest
weights of level 0's final model to `prune.sparsity` (allocated by `prune.allocation`) and
fine-tunes the survivors for `prune.finetune` at a fixed learning rate (`prune.finetune_lr`, by
default the schedule's last learning rate, as in Renda et al. 2020's fine-tuning baseline)."""

from __future__ import annotations

from sparsify.errors import UserError
from sparsify.methods.base import METHODS, Context, LevelPlan, Method
from sparsify.sparsity.allocation import prune_mask
from sparsify.sparsity.scoring import magnitude_scores
from sparsify.training.loop import Segment


@METHODS.register("magnitude")
class OneShotMagnitude(Method):
    def num_levels(self) -> int:
        return 2

    def check(self, ctx: Context) -> None:
        if ctx.steps(self.cfg.finetune, "prune.finetune") <= 0:
            raise UserError("prune.finetune must be a positive step count, e.g. '10ep'")

    def plan(self, level: int, ctx: Context) -> LevelPlan:
        if level == 0:
            return self.dense_level(ctx)
        final = ctx.final(0)
        scores = magnitude_scores(ctx.prunable_part(final))
        mask = prune_mask(scores, ctx.mask(0), self.cfg.sparsity, self.cfg.allocation)
        lr = self.cfg.finetune_lr
        if lr is None:
            lr = ctx.schedule(ctx.total - 1)
        budget = ctx.steps(self.cfg.finetune, "prune.finetune")
        return LevelPlan(mask, final, Segment(0, budget, fixed_lr=lr))
