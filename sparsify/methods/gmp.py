"""`gmp`: gradual magnitude pruning (Zhu & Gupta 2017). One training run in which the mask is
recomputed by magnitude every Δt = `prune.frequency` iterations from t0 = `prune.start` to
`prune.stop`, following the cubic schedule

    s_t = s_f + (s_i − s_f) · (1 − (t − t0) / (stop − t0))³

from s_i = `prune.initial_sparsity` to s_f = `prune.sparsity`, which is reached exactly at
`prune.stop`; training then continues at s_f to the end of the schedule. Weights once pruned stay
pruned (allocation and granularity as configured). Each update is a `mask` event in log.jsonl.
"""

from __future__ import annotations

from dataclasses import dataclass

from sparsify.checks import check_range
from sparsify.config import ScoredPruneConfig
from sparsify.errors import UserError
from sparsify.methods.base import METHODS, Context, LevelPlan, Method, prune_by
from sparsify.sparsity.criteria import magnitude_scores
from sparsify.training.loop import MaskChange, Segment


@dataclass
class GMPConfig(ScoredPruneConfig):
    sparsity: float = 0.9  # s_f: the final sparsity, in [0, 1)
    initial_sparsity: float = 0.0  # s_i, in [0, sparsity]
    start: str = "1ep"  # t0: first mask update
    stop: str = "7ep"  # t0 + nΔt: last update, where `sparsity` is reached
    frequency: str = "10it"  # Δt: iterations between mask updates

    def check(self) -> None:
        from sparsify.training.steps import check_step

        super().check()
        check_range("prune.sparsity", self.sparsity, 0.0, 1.0)
        check_range("prune.initial_sparsity", self.initial_sparsity, 0.0, 1.0)
        for key in ("start", "stop", "frequency"):
            check_step(getattr(self, key), f"prune.{key}")
        # checked with the config (before any sweep job starts), not in the run: no data needed
        if not 0.0 <= self.initial_sparsity <= self.sparsity:
            raise UserError(
                f"prune.initial_sparsity={self.initial_sparsity} must lie in "
                f"[0, prune.sparsity={self.sparsity}]"
            )
        if self.granularity == "nm":
            raise UserError(
                "gmp raises sparsity gradually; prune.granularity=nm fixes it at 1 - n/m"
            )


@METHODS.register("gmp")
class GradualMagnitude(Method):
    config_class = GMPConfig
    dense_level = None  # it prunes during its only training

    def num_levels(self) -> int:
        return 1

    def updates(self, ctx: Context) -> dict[int, float]:
        """{iteration: sparsity} of every mask update."""
        t0 = ctx.steps(self.cfg.start, "prune.start")
        stop = ctx.steps(self.cfg.stop, "prune.stop")
        dt = ctx.steps(self.cfg.frequency, "prune.frequency")
        si, sf = self.cfg.initial_sparsity, self.cfg.sparsity
        points = list(range(t0, stop, dt)) + [stop]
        return {t: sf + (si - sf) * (1 - (t - t0) / (stop - t0)) ** 3 for t in points}

    def check(self, ctx: Context) -> None:
        t0 = ctx.steps(self.cfg.start, "prune.start")
        stop = ctx.steps(self.cfg.stop, "prune.stop")
        if not t0 < stop < ctx.total:
            raise UserError(
                f"gmp needs prune.start < prune.stop < the end of training ({ctx.total} "
                f"iterations); got start={self.cfg.start} ({t0}), stop={self.cfg.stop} ({stop})"
            )
        if ctx.steps(self.cfg.frequency, "prune.frequency") < 1:
            raise UserError("prune.frequency must be at least '1it'")

    def plan(self, level: int, ctx: Context) -> LevelPlan:
        assert level == 0
        updates = self.updates(ctx)

        def schedule(it, live, mask):
            target = updates.get(it)
            if target is None:
                return None
            return MaskChange(prune_by(self.cfg, magnitude_scores(live), mask, target))

        return LevelPlan(ctx.dense_mask(), ctx.init, Segment(0, ctx.total, mask_schedule=schedule))
