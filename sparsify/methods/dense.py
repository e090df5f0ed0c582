"""`dense`: train once, prune nothing. The baseline every pruned level is compared to."""

from __future__ import annotations

from sparsify.methods.base import METHODS, Context, LevelPlan, Method


@METHODS.register("dense")
class Dense(Method):
    prunes = False

    def num_levels(self) -> int:
        return 1

    def plan(self, level: int, ctx: Context) -> LevelPlan:
        assert level == 0
        return self.dense_plan(ctx)
