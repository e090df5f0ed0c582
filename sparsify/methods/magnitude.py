"""`magnitude`: one-shot magnitude pruning. Level 0 trains dense; level 1 prunes the smallest
weights of level 0's final model to `prune.sparsity` (allocated by `prune.allocation`, grouped by
`prune.granularity`) and fine-tunes the survivors for `prune.finetune` at a fixed learning rate
(`prune.finetune_lr`, by default the schedule's last learning rate, as in Renda et al. 2020's
fine-tuning baseline). `prune=finetune prune.iterative=false` is the same with the budget of
rewinding (T − k) instead of `prune.finetune`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from sparsify.checks import check_choice, check_range
from sparsify.config import ScoredPruneConfig
from sparsify.errors import UserError
from sparsify.methods.base import METHODS, Context
from sparsify.methods.retraining import Retraining
from sparsify.sparsity.criteria import CRITERIA


@dataclass
class MagnitudeConfig(ScoredPruneConfig):
    sparsity: float = 0.9  # fraction of prunable weights set to zero, in [0, 1)
    criterion: str = "large_final"  # mask criterion (Zhou et al. 2019), see sparsity/criteria.py
    gradient_batch: int = 100  # snip, grad: training images of the gradient at init (Zhou: 100)
    finetune: str = "10ep"  # fine-tuning budget after pruning
    finetune_lr: Optional[float] = None  # fixed lr of the fine-tuning; None = the schedule's last

    def check(self) -> None:
        from sparsify.training.steps import check_step

        super().check()
        check_range("prune.sparsity", self.sparsity, 0.0, 1.0)
        check_choice("prune.criterion", self.criterion, CRITERIA)
        check_range("prune.gradient_batch", self.gradient_batch, 1, None)
        check_step(self.finetune, "prune.finetune")
        if self.finetune_lr is not None:
            check_range("prune.finetune_lr", self.finetune_lr, 0.0, None, lo_open=True)


@METHODS.register("magnitude")
class OneShotMagnitude(Retraining):
    config_class = MagnitudeConfig
    policy = "finetune"
    has_rewind = False

    def num_levels(self) -> int:
        return 2

    def target_sparsity(self, level: int) -> float:
        return self.cfg.sparsity

    def rewind_step(self, ctx: Context) -> int:
        return 0

    def budget(self, ctx: Context) -> int:
        return ctx.steps(self.cfg.finetune, "prune.finetune")

    def check(self, ctx: Context) -> None:
        super().check(ctx)
        if self.budget(ctx) <= 0:
            raise UserError("prune.finetune must be a positive step count, e.g. '10ep'")
