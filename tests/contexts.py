"""A method Context for mask tests on hand-written tensors: every level ended with the same
weights, so next_mask's arithmetic is all that is under test."""

from __future__ import annotations

from torch import Tensor

from sparsify.methods.base import Context


def fixed_context(
    weights: dict[str, Tensor],
    prunable: list[str],
    masks: dict,
    init: dict[str, Tensor] | None = None,
    seed: int = 0,
) -> Context:
    """A Context whose every level ended with `weights` (initialised at `init`, by default the
    same) and whose masks are `masks[level]`."""
    return Context(
        init=init if init is not None else weights,
        prunable=prunable,
        iterations_per_epoch=10,
        total=100,
        schedule=None,
        final=lambda level: weights,
        mask=lambda level: masks[level],
        snapshot=None,
        seed=seed,
    )
