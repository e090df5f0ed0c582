"""A Mask says which prunable weights live: {state_dict name: bool tensor of the weight's shape}."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

from sparsify.errors import UserError


class Mask(dict[str, Tensor]):
    """{param name: bool tensor}; True = the weight lives. Names are those of model.state_dict()."""

    @classmethod
    def ones_like(cls, weights: Mapping[str, Tensor]) -> Mask:
        """A mask keeping every weight."""
        return cls(
            {
                name: torch.ones_like(w, dtype=torch.bool, device="cpu")
                for name, w in weights.items()
            }
        )

    @classmethod
    def from_state_dict(
        cls, state: Mapping[str, Tensor], weights: Mapping[str, Tensor], what: str
    ) -> Mask:
        """Check a loaded {name: bool tensor} against the model's prunable weights."""
        if not isinstance(state, Mapping) or set(state) != set(weights):
            raise UserError(
                f"{what} does not match the model's prunable weights ({len(weights)} expected)"
            )
        for name, w in weights.items():
            t = state[name]
            if not isinstance(t, Tensor) or t.dtype != torch.bool or t.shape != w.shape:
                raise UserError(
                    f"{what}: entry {name} is not a bool tensor of shape {tuple(w.shape)}"
                )
        return cls({name: state[name].clone() for name in weights})

    @property
    def total(self) -> int:
        return sum(m.numel() for m in self.values())

    @property
    def alive(self) -> int:
        return int(sum(int(m.sum()) for m in self.values()))

    @property
    def sparsity(self) -> float:
        """Fraction of masked-out weights."""
        total = self.total
        return 1.0 - self.alive / total if total else 0.0

    def apply_(self, model: nn.Module) -> None:
        """Zero the masked-out weights of `model` in place."""
        params = dict(model.named_parameters())
        with torch.no_grad():
            for name, m in self.items():
                p = params[name]
                p.mul_(m.to(device=p.device, dtype=p.dtype))
