"""`supermask` (Zhou, Lan, Liu & Yosinski 2019) and `edgepopup` (Ramanujan et al. 2020): masks
learnt over weights that are never trained.

The prunable weights are drawn at initialisation (`prune.weight_init`: `kaiming_normal`,
N(0, 2/fan_in), or `signed_kaiming_constant`, ±sqrt(2/fan_in) with random signs) and frozen,
and so is every other parameter; only a score per weight is trained, with the configured
optimizer and schedule. `supermask` samples Bernoulli(sigmoid(score)) masks, with optional
dynamic weight rescaling (`prune.rescale`), and evaluates the expected mask (sigmoid > 0.5) or
one seeded sample (`prune.eval_mask`); `edgepopup` keeps the top (1 − `prune.sparsity`) of
|score| in every layer. One level; at its end the model holds the initial weights times the
mask used, so final.pt is a plain state_dict and the sparsity is counted from it. See
sparsity/score_masks.py.
"""

from __future__ import annotations

import math
from typing import ClassVar

import torch

from sparsify.errors import UserError
from sparsify.methods.base import METHODS, Context, LevelPlan, Method
from sparsify.seeding import FROZEN_WEIGHTS, SCORE_INIT
from sparsify.sparsity.score_masks import ScoreMasks
from sparsify.training.loop import Segment

WEIGHT_INITS = ("kaiming_normal", "signed_kaiming_constant")


class _LearntMask(Method):
    kind: ClassVar[str]

    def num_levels(self) -> int:
        return 1

    def check(self, ctx: Context) -> None:
        if self.cfg.granularity != "unstructured":
            raise UserError(
                f"prune={self.cfg.name} learns one score per weight; use granularity=unstructured"
            )

    def check_checkpoint(self, ckpt: dict, ctx: Context, what: str) -> None:
        ScoreMasks.check_state(ckpt.get("scores"), ctx.prunable_count, what)

    def frozen_weights(self, ctx: Context) -> dict[str, torch.Tensor]:
        gen = ctx.generator(FROZEN_WEIGHTS)
        out = dict(ctx.init)
        for name in ctx.prunable:
            w = ctx.init[name]
            std = math.sqrt(2.0 / (w[0].numel() if w.dim() > 1 else w.numel()))
            draw = torch.randn(w.shape, generator=gen)
            if self.cfg.weight_init == "signed_kaiming_constant":
                draw = torch.sign(draw)
            out[name] = (draw * std).to(w.dtype)
        return out

    def plan(self, level: int, ctx: Context) -> LevelPlan:
        assert level == 0
        weights = self.frozen_weights(ctx)
        scores = ScoreMasks(
            {n: weights[n] for n in ctx.prunable},
            self.kind,
            sparsity=self.cfg.sparsity,
            rescale=self.cfg.rescale,
            eval_mask=self.cfg.eval_mask,
            generator=ctx.generator(SCORE_INIT),
        )
        segment = Segment(0, ctx.total, forward=scores.forward_model)
        return LevelPlan(ctx.dense_mask(), weights, segment, scores=scores)


@METHODS.register("supermask")
class Supermask(_LearntMask):
    kind = "bernoulli"


@METHODS.register("edgepopup")
class EdgePopup(_LearntMask):
    kind = "topk"
