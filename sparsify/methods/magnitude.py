"""`magnitude`: one-shot magnitude pruning. Level 0 trains dense; level 1 prunes the smallest
weights of level 0's final model to `prune.sparsity` (allocated by `prune.allocation`, grouped by
`prune.granularity`) and fine-tunes the survivors for `prune.finetune` at a fixed learning rate
(`prune.finetune_lr`, by default the schedule's last learning rate, as in Renda et al. 2020's
fine-tuning baseline). `prune=finetune prune.iterative=false` is the same with the budget of
rewinding (T − k) instead of `prune.finetune`."""

from __future__ import annotations

from sparsify.errors import UserError
from sparsify.methods.base import METHODS, Context
from sparsify.methods.retraining import Retraining


@METHODS.register("magnitude")
class OneShotMagnitude(Retraining):
    policy = "finetune"
    uses_rewind = False

    def num_levels(self) -> int:
        return 2

    def target_sparsity(self, level: int) -> float:
        return self.cfg.sparsity

    def budget(self, ctx: Context) -> int:
        return ctx.steps(self.cfg.finetune, "prune.finetune")

    def check(self, ctx: Context) -> None:
        super().check(ctx)
        if self.budget(ctx) <= 0:
            raise UserError("prune.finetune must be a positive step count, e.g. '10ep'")
