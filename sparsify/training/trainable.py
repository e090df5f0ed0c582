"""What a level's optimizer trains. By default the model's own weights (`Trainable()`); a
method that learns something else over a frozen model (the scores of supermasks and edge-popup,
methods/supermask.py) plans a level with a `Trainable` subclass, and the runner treats both alike:
it never needs to know which one it holds."""

from __future__ import annotations

from typing import Any, Optional

from torch import nn

from sparsify.config import TrainConfig
from sparsify.sparsity.mask import Mask
from sparsify.training.loop import Forward
from sparsify.training.optim import weight_decay_groups


class Trainable:
    """The model's own parameters: the plain case every other trainable departs from."""

    # the checkpoint.pt entry holding this trainable's own state, if it has any
    state_key: Optional[str] = None

    @property
    def forward(self) -> Optional[Forward]:
        """(model, x) -> logits in place of model(x), in training and validation; None: model(x)."""
        return None

    def param_groups(self, model: nn.Module, train: TrainConfig) -> list[Any]:
        """What the optimizer steps: parameters, or param groups (dicts; `lr_scale` scales the
        schedule's lr). The plain case: the model's parameters, norm layers in their own group
        when `train.norm_weight_decay` is set."""
        return weight_decay_groups(model, train)

    def start(self, model: nn.Module) -> None:
        """Before the first step (or the first step after a resume), with `model` on its device."""

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the state saved under `state_key` (checked before anything was written)."""

    def finish(self, model: nn.Module, mask: Mask) -> Mask:
        """After the last step: leave `model` holding the level's final weights and return the
        mask the level ends with (`mask`, the mask in force, for the plain case)."""
        return mask

    def artifacts(self) -> dict[str, dict[str, Any]]:
        """After `finish`: files the level saves beside final.pt, {file stem: what torch.save
        writes} (supermask's `scores`); none in the plain case."""
        return {}
