"""Optimizers and learning-rate schedules.

The learning rate is a pure function of the iteration (`LRSchedule.__call__`), set on the
optimizer before every step. Rewinding the schedule to step k is then just starting the loop at
k, and resuming needs no scheduler state beyond the step itself.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch import nn

from sparsify.config import TrainConfig
from sparsify.training.steps import to_iterations

OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = ("constant", "step", "multistep", "cosine")


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
    """lr(iteration) for a run of `total` iterations with `iterations_per_epoch`."""

    def __init__(self, cfg: TrainConfig, iterations_per_epoch: int, total: int) -> None:
        self.base = cfg.lr
        self.kind = cfg.schedule
        self.total = total
        self.gamma = cfg.gamma
        ipe = iterations_per_epoch
        self.warmup = to_iterations(cfg.warmup, ipe, "train.warmup")
        self.milestones = sorted(to_iterations(m, ipe, "train.milestones") for m in cfg.milestones)
        self.step_size = max(1, to_iterations(cfg.step_size, ipe, "train.step_size"))

    def __call__(self, it: int) -> float:
        if it < self.warmup:
            return self.base * (it + 1) / self.warmup
        if self.kind == "constant":
            return self.base
        if self.kind == "step":
            return self.base * self.gamma ** (it // self.step_size)
        if self.kind == "multistep":
            return self.base * self.gamma ** sum(it >= m for m in self.milestones)
        assert self.kind == "cosine", self.kind
        span = max(1, self.total - self.warmup)
        return self.base * 0.5 * (1.0 + math.cos(math.pi * min(1.0, (it - self.warmup) / span)))


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Set the schedule's lr; a param group with an `lr_scale` gets lr × lr_scale (the scores of
    supermasks follow the same schedule at their own peak lr)."""
    for group in optimizer.param_groups:
        group["lr"] = lr * group.get("lr_scale", 1.0)
