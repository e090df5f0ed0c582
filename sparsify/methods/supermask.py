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
from dataclasses import dataclass
from typing import Any, ClassVar, Optional

import torch
from torch import nn

from sparsify.checks import check_choice, check_range
from sparsify.config import PruneConfig, TrainConfig
from sparsify.methods.base import METHODS, Context, LevelPlan, Method
from sparsify.records import Checkpoint
from sparsify.seeding import FROZEN_WEIGHTS, SCORE_INIT
from sparsify.sparsity.mask import Mask
from sparsify.sparsity.score_masks import EVAL_MASKS, ScoreMasks
from sparsify.training.loop import Forward, Segment
from sparsify.training.trainable import Trainable

WEIGHT_INITS = ("kaiming_normal", "signed_kaiming_constant")


class LearntScores(Trainable):
    """A level that trains `scores` over the frozen model: the optimizer holds only the scores,
    at `prune.score_lr` (through the group's `lr_scale`, so they follow the schedule's shape) with
    `prune.score_weight_decay`; at the end the model holds the weights the learnt mask keeps."""

    state_key = "scores"

    def __init__(self, scores: ScoreMasks, cfg: PruneConfig) -> None:
        self.scores, self.cfg = scores, cfg

    @property
    def forward(self) -> Forward:
        return self.scores.forward_model

    def param_groups(self, model: nn.Module, train: TrainConfig) -> list[Any]:
        lr = self.cfg.score_lr if self.cfg.score_lr is not None else train.lr
        wd = self.cfg.score_weight_decay
        return [
            {
                "params": list(self.scores.parameters()),
                "lr_scale": lr / train.lr,
                "weight_decay": wd if wd is not None else train.weight_decay,
            }
        ]

    def start(self, model: nn.Module) -> None:
        self.scores.to(next(model.parameters()).device)
        self.scores.freeze(model)

    def state_dict(self) -> dict[str, Any]:
        return self.scores.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.scores.load_state_dict(state)

    def finish(self, model: nn.Module, mask: Mask) -> Mask:
        used = self.scores.finalize(model)  # the model now holds the weights the mask keeps
        self.scores.release(model)
        return used


@dataclass
class LearntMaskConfig(PruneConfig):
    weight_init: str = "kaiming_normal"  # kaiming_normal or signed_kaiming_constant
    rescale: bool = False  # dynamic weight rescaling by (weights / weights kept)
    score_lr: Optional[float] = None  # peak lr of the scores (the schedule's shape); None: train.lr
    score_weight_decay: Optional[float] = None  # None: train.weight_decay

    def check(self) -> None:
        super().check()
        check_choice("prune.weight_init", self.weight_init, WEIGHT_INITS)
        if self.score_lr is not None:
            check_range("prune.score_lr", self.score_lr, 0.0, None, lo_open=True)
        if self.score_weight_decay is not None:
            check_range("prune.score_weight_decay", self.score_weight_decay, 0.0, None)


@dataclass
class SupermaskConfig(LearntMaskConfig):
    eval_mask: str = "expected"  # expected (sigmoid(s) > 0.5) or sampled (seed 0)

    def check(self) -> None:
        super().check()
        check_choice("prune.eval_mask", self.eval_mask, EVAL_MASKS)


@dataclass
class EdgePopupConfig(LearntMaskConfig):
    sparsity: float = 0.5  # each layer keeps the top (1 - sparsity) of |score|, in [0, 1)

    def check(self) -> None:
        super().check()
        check_range("prune.sparsity", self.sparsity, 0.0, 1.0)


class _LearntMask(Method):
    kind: ClassVar[str]
    dense_level = None  # the weights are never trained

    def num_levels(self) -> int:
        return 1

    def check_checkpoint(self, ckpt: Checkpoint, ctx: Context, what: str) -> None:
        ScoreMasks.check_state(ckpt.extra.get(LearntScores.state_key), ctx.prunable_count, what)

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
            rescale=self.cfg.rescale,
            generator=ctx.generator(SCORE_INIT),
            **self.mask_settings(),
        )
        trains = LearntScores(scores, self.cfg)
        return LevelPlan(ctx.dense_mask(), weights, Segment(0, ctx.total), trains=trains)


@METHODS.register("supermask")
class Supermask(_LearntMask):
    config_class = SupermaskConfig
    kind = "bernoulli"

    def mask_settings(self) -> dict[str, Any]:
        return {"eval_mask": self.cfg.eval_mask}


@METHODS.register("edgepopup")
class EdgePopup(_LearntMask):
    config_class = EdgePopupConfig
    kind = "topk"

    def mask_settings(self) -> dict[str, Any]:
        return {"sparsity": self.cfg.sparsity}
