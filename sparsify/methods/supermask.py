"""`supermask` (Zhou, Lan, Liu & Yosinski 2019) and `edgepopup` (Ramanujan et al. 2020): masks
learnt over weights that are never trained.

The prunable weights are drawn at initialisation (`prune.weight_init`: `kaiming_normal`,
N(0, 2/fan_in); `signed_kaiming_constant`, ±sqrt(2/fan_in), hidden-networks' signed constant;
or `signed_glorot_constant`, ±sqrt(2/(fan_in + fan_out)), the std of Zhou et al.'s Glorot-normal
kernels; random signs) and frozen, and so is every other parameter; every BatchNorm is put at
scale 1 and shift 0 first, as hidden-networks' non-affine BatchNorm (a model's zero-initialised
residual scales would otherwise stay 0 and cut its residual branches off the scores'
gradient). Only a score per weight is trained, with the configured optimizer and schedule.
`supermask` samples Bernoulli(sigmoid(score)) masks, with optional dynamic weight rescaling
(`prune.rescale`, its factor differentiated as in Zhou et al.'s graph or held constant:
`prune.rescale_gradient`), and evaluates one seeded Bernoulli sample or the rounded mask
(sigmoid > 0.5) (`prune.eval_mask`); `edgepopup` keeps the top (1 − `prune.sparsity`) of
|score| in every layer, the count rounded or as hidden-networks computes it
(`prune.kept_count`), and can scale the Kaiming fan as hidden-networks' `--scale-fan`
(`prune.scale_fan`). One level; at its end the model holds the initial weights times the
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
from sparsify.errors import UserError
from sparsify.methods.base import METHODS, Context, LevelPlan, Method
from sparsify.records import Checkpoint
from sparsify.seeding import FROZEN_WEIGHTS, SCORE_INIT
from sparsify.sparsity.mask import Mask
from sparsify.sparsity.score_masks import EVAL_MASKS, KEPT_COUNTS, RESCALE_GRADIENTS, ScoreMasks
from sparsify.training.loop import Forward, Segment
from sparsify.training.trainable import Trainable

WEIGHT_INITS = ("kaiming_normal", "signed_kaiming_constant", "signed_glorot_constant")


def frozen_std(init: str, w: torch.Tensor, fan_scale: float = 1.0) -> float:
    """The std of the frozen draw `init` for a weight of w's shape (out, in, *kernel): Kaiming's
    sqrt(2/(fan_in · fan_scale)), or for `signed_glorot_constant` Glorot's
    sqrt(2/(fan_in + fan_out)), the std of the Glorot-normal kernel whose signs Zhou et al. keep
    (their `make_signed_consts` takes the drawn kernel's std, which is this up to sampling
    noise). `fan_scale` is hidden-networks' `--scale-fan` factor; Glorot's std has none."""
    field = w[0][0].numel() if w.dim() > 2 else 1  # the receptive field of a conv kernel
    fan_in = w.shape[1] * field if w.dim() > 1 else w.numel()
    fan_out = w.shape[0] * field if w.dim() > 1 else w.numel()
    if init == "signed_glorot_constant":
        return math.sqrt(2.0 / (fan_in + fan_out))
    return math.sqrt(2.0 / (fan_in * fan_scale))


def non_affine_norms(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """`state` with every BatchNorm (a module with running statistics) at scale 1 and shift 0:
    frozen there, it computes what hidden-networks' non-affine BatchNorm computes."""
    out = dict(state)
    for key in state:
        if key.rpartition(".")[2] != "running_var":
            continue
        prefix = key[: -len("running_var")]
        if prefix + "weight" in out:
            out[prefix + "weight"] = torch.ones_like(out[prefix + "weight"])
        if prefix + "bias" in out:
            out[prefix + "bias"] = torch.zeros_like(out[prefix + "bias"])
    return out


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
        if self.scores.kind == "bernoulli":  # what the sampled_masks evaluator draws from
            self._saved = {
                "scores": self.scores.scores.detach().cpu().clone(),
                "frozen": self.scores.frozen_flat(model).cpu(),
                "rescale": bool(self.scores.rescale),
            }
        used = self.scores.finalize(model)  # the model now holds the weights the mask keeps
        self.scores.release(model)
        return used

    def artifacts(self) -> dict[str, dict[str, Any]]:
        """supermask: `scores.pt`, the learnt scores and the frozen weights (both flat, laid out
        as ScoreMasks lays them out) and whether the weights are rescaled: every mask the
        scores can sample can be rebuilt from it."""
        saved = getattr(self, "_saved", None)
        return {} if saved is None else {"scores": saved}


@dataclass
class LearntMaskConfig(PruneConfig):
    weight_init: str = "kaiming_normal"  # kaiming_normal, signed_kaiming/glorot_constant
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
    eval_mask: str = "rounded"  # sampled (one Bernoulli sample, seed 0) or rounded (s > 0)
    # with rescale: differentiate the factor through the mask (Zhou et al.) or hold it constant
    rescale_gradient: str = "constant"

    def check(self) -> None:
        super().check()
        check_choice("prune.eval_mask", self.eval_mask, EVAL_MASKS)
        check_choice("prune.rescale_gradient", self.rescale_gradient, RESCALE_GRADIENTS)


@dataclass
class EdgePopupConfig(LearntMaskConfig):
    sparsity: float = 0.5  # each layer keeps the top (1 - sparsity) of |score|, in [0, 1)
    # weights kept per layer of n: round ((1 - sparsity)·n) or hidden_networks (GetSubnet's
    # n - int(sparsity·n), about ceil); at least 1
    kept_count: str = "round"
    # hidden-networks' --scale-fan: the Kaiming fan_in times (1 - prune_rate) = sparsity
    scale_fan: bool = False

    def check(self) -> None:
        super().check()
        check_range("prune.sparsity", self.sparsity, 0.0, 1.0)
        check_choice("prune.kept_count", self.kept_count, KEPT_COUNTS)
        if self.scale_fan and self.weight_init == "signed_glorot_constant":
            raise UserError(
                "prune.scale_fan=true scales a Kaiming fan; valid with prune.weight_init="
                "kaiming_normal or signed_kaiming_constant, not signed_glorot_constant"
            )
        if self.scale_fan and self.sparsity == 0.0:
            raise UserError(
                "prune.scale_fan=true multiplies the fan by prune.sparsity, so it needs "
                "prune.sparsity in (0, 1); got 0.0"
            )


class _LearntMask(Method):
    kind: ClassVar[str]
    dense_level = None  # the weights are never trained

    def num_levels(self) -> int:
        return 1

    def check_checkpoint(self, ckpt: Checkpoint, ctx: Context, what: str) -> None:
        ScoreMasks.check_state(ckpt.extra.get(LearntScores.state_key), ctx.prunable_count, what)

    def fan_scale(self) -> float:
        """The factor of the Kaiming fan of the frozen weights (1: unscaled)."""
        return 1.0

    def frozen_weights(self, ctx: Context) -> dict[str, torch.Tensor]:
        gen = ctx.generator(FROZEN_WEIGHTS)
        out = non_affine_norms(ctx.init)
        for name in ctx.prunable:
            w = ctx.init[name]
            std = frozen_std(self.cfg.weight_init, w, self.fan_scale())
            draw = torch.randn(w.shape, generator=gen)
            if self.cfg.weight_init.startswith("signed_"):
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
        return {"eval_mask": self.cfg.eval_mask, "rescale_gradient": self.cfg.rescale_gradient}


@METHODS.register("edgepopup")
class EdgePopup(_LearntMask):
    config_class = EdgePopupConfig
    kind = "topk"

    def fan_scale(self) -> float:
        # builder.py: fan * (1 - args.prune_rate), where prune_rate is the fraction GetSubnet
        # keeps; so the fan is multiplied by the fraction pruned, sparsify's sparsity
        return self.cfg.sparsity if self.cfg.scale_fan else 1.0

    def mask_settings(self) -> dict[str, Any]:
        return {"sparsity": self.cfg.sparsity, "kept_count": self.cfg.kept_count}
