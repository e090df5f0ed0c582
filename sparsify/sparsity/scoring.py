"""Scores for deciding which weights to prune: the lowest-scoring weights go first."""

from __future__ import annotations

from collections.abc import Mapping

from torch import Tensor


def magnitude_scores(weights: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """|w| per weight, float32 on the CPU (the criterion of magnitude pruning and LTH)."""
    return {name: w.detach().abs().float().cpu() for name, w in weights.items()}
