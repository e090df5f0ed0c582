"""Counting sparsity from the weights themselves (a weight is pruned iff it is exactly zero)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from torch import Tensor


@dataclass
class SparsityStats:
    nonzero: int  # nonzero prunable weights
    total: int  # prunable weights
    per_layer: dict[str, tuple[int, int]]  # name -> (nonzero, total)

    @property
    def sparsity(self) -> float:
        """Fraction of prunable weights that are zero."""
        return 1.0 - self.nonzero / self.total if self.total else 0.0


def sparsity_stats(weights: Mapping[str, Tensor]) -> SparsityStats:
    """Counts over `weights` ({name: tensor}, e.g. the prunable entries of a state_dict)."""
    per_layer = {n: (int(w.count_nonzero()), w.numel()) for n, w in weights.items()}
    return SparsityStats(
        nonzero=sum(nz for nz, _ in per_layer.values()),
        total=sum(t for _, t in per_layer.values()),
        per_layer=per_layer,
    )
