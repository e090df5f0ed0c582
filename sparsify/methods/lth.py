"""`lth`: iterative magnitude pruning with rewinding (Frankle & Carbin 2019; Frankle et al. 2020).

Level 0 trains dense and keeps the weights at the rewind step k (`prune.rewind`; '0it' is the
initialisation). Level L prunes `prune.rate` of the weights still alive after level L-1, by
magnitude of level L-1's final weights (allocated by `prune.allocation`, global by default), so
its sparsity is 1 - (1 - rate)^L; the survivors are rewound to their step-k values and retrained
with the original schedule from step k to the end, with a fresh optimizer.
"""

from __future__ import annotations

from sparsify.errors import UserError
from sparsify.methods.base import METHODS, Context, LevelPlan, Method
from sparsify.sparsity.allocation import prune_mask
from sparsify.sparsity.scoring import magnitude_scores
from sparsify.training.loop import Segment


@METHODS.register("lth")
class LotteryTicket(Method):
    def num_levels(self) -> int:
        return self.cfg.levels + 1

    def rewind_step(self, ctx: Context) -> int:
        return ctx.steps(self.cfg.rewind, "prune.rewind")

    def check(self, ctx: Context) -> None:
        k = self.rewind_step(ctx)
        if k >= ctx.total:
            raise UserError(
                f"prune.rewind={self.cfg.rewind} is at or past the end of training "
                f"({ctx.total} iterations = train.epochs × {ctx.iterations_per_epoch}); "
                "choose a step before the end, e.g. '0it' or '1ep'"
            )

    def target_sparsity(self, level: int) -> float:
        return 1.0 - (1.0 - self.cfg.rate) ** level

    def plan(self, level: int, ctx: Context) -> LevelPlan:
        k = self.rewind_step(ctx)
        if level == 0:
            return self.dense_level(ctx, snapshots={"rewind": k} if k > 0 else {})
        scores = magnitude_scores(ctx.prunable_part(ctx.final(level - 1)))
        mask = prune_mask(
            scores, ctx.mask(level - 1), self.target_sparsity(level), self.cfg.allocation
        )
        start = ctx.init if k == 0 else ctx.snapshot(0, "rewind")
        return LevelPlan(mask, start, Segment(k, ctx.total))
