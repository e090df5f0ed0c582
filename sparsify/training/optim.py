"""Optimizers and learning-rate schedules.

The learning rate is a pure function of the iteration (`LRSchedule.__call__`), set on the
optimizer before every step. Rewinding the schedule to step k is then just starting the loop at
k, and resuming needs no scheduler state beyond the step itself.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import torch
from torch import Tensor, nn

from sparsify.config import TrainConfig
from sparsify.training.steps import to_iterations

OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = ("constant", "step", "multistep", "cosine")
LR_UPDATES = ("iteration", "epoch")  # train.lr_update
WARMUP_OFFSETS = (0, 1)  # train.warmup_offset
# the modules whose parameters `train.norm_weight_decay` applies to (their scales and shifts);
# _NormBase covers BatchNorm and InstanceNorm in every dimension
NORMS = (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm)


def weight_decay_groups(model: nn.Module, cfg: TrainConfig) -> list[Any]:
    """The model's parameters for the optimizer: one list when norm layers decay like the rest
    (`train.norm_weight_decay` null), else two groups, the norm layers' parameters at
    `norm_weight_decay` (0: excluded from weight decay, as the official TF ImageNet ResNet
    excludes its batch_normalization variables). Empty groups are left out."""
    if cfg.norm_weight_decay is None:
        return list(model.parameters())
    norm_ids = {id(p) for m in model.modules() if isinstance(m, NORMS) for p in m.parameters(False)}
    norms = [p for p in model.parameters() if id(p) in norm_ids]
    others = [p for p in model.parameters() if id(p) not in norm_ids]
    groups = [{"params": others}, {"params": norms, "weight_decay": cfg.norm_weight_decay}]
    return [g for g in groups if g["params"]]


def build_optimizer(params: Iterable[nn.Parameter], cfg: TrainConfig) -> torch.optim.Optimizer:
    """A fresh optimizer over `params` as `cfg` describes (lr is overwritten every step)."""
    params = list(params)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(
            params,
            lr=cfg.lr,
            momentum=cfg.momentum,
            nesterov=cfg.nesterov,
            weight_decay=cfg.weight_decay,
        )
    betas = (float(cfg.betas[0]), float(cfg.betas[1]))
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, betas=betas, weight_decay=cfg.weight_decay)
    assert cfg.optimizer == "adamw", cfg.optimizer
    return torch.optim.AdamW(params, lr=cfg.lr, betas=betas, weight_decay=cfg.weight_decay)


class LRSchedule:
    """lr(iteration) for a run of `total` iterations with `iterations_per_epoch`.

    With `train.lr_update=epoch` every iteration of an epoch gets the lr of the epoch's first
    iteration, and the warm-up advances by one epoch per update: lr·(e + warmup_offset)/W in epoch
    e, W the warm-up in epochs (capped at lr when W is not a whole number of epochs)."""

    def __init__(self, cfg: TrainConfig, iterations_per_epoch: int, total: int) -> None:
        self.base = cfg.lr
        self.kind = cfg.schedule
        self.total = total
        self.gamma = cfg.gamma
        self.offset = cfg.warmup_offset
        ipe = iterations_per_epoch
        # iterations between lr updates
        self.update_every = ipe if cfg.lr_update == "epoch" else 1
        self.warmup = to_iterations(cfg.warmup, ipe, "train.warmup")
        self.milestones = sorted(to_iterations(m, ipe, "train.milestones") for m in cfg.milestones)
        self.step_size = max(1, to_iterations(cfg.step_size, ipe, "train.step_size"))

    def __call__(self, it: int) -> float:
        it -= it % self.update_every  # the first iteration of the update's span
        if it < self.warmup:
            return min(self.base, self.base * (it + self.offset * self.update_every) / self.warmup)
        if self.kind == "constant":
            return self.base
        if self.kind == "step":
            return self.base * self.gamma ** (it // self.step_size)
        if self.kind == "multistep":
            return self.base * self.gamma ** sum(it >= m for m in self.milestones)
        assert self.kind == "cosine", self.kind
        span = max(1, self.total - self.warmup)
        return self.base * 0.5 * (1.0 + math.cos(math.pi * min(1.0, (it - self.warmup) / span)))


def mask_optimizer_state(
    optimizer: torch.optim.Optimizer, model: nn.Module, mask: Mapping[str, Tensor]
) -> None:
    """Zero, in place, the per-weight state (SGD's momentum buffer, Adam's moments) of the weights
    `mask` ({param name: bool tensor}) prunes: state carried over from before a pruning then
    holds nothing for weights that no longer exist, as a fresh optimizer would. Scalars (Adam's
    step count) are left alone."""
    params = dict(model.named_parameters())
    with torch.no_grad():
        for name, keep in mask.items():
            state = optimizer.state.get(params[name], {})
            for value in state.values():
                if isinstance(value, Tensor) and value.shape == keep.shape:
                    value.mul_(keep.to(device=value.device, dtype=value.dtype))


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Set the schedule's lr; a param group with an `lr_scale` gets lr × lr_scale (the scores of
    supermasks follow the same schedule at their own peak lr)."""
    for group in optimizer.param_groups:
        group["lr"] = lr * group.get("lr_scale", 1.0)
