"""Pruning methods, one file each, registered in METHODS."""

from sparsify.methods import (  # noqa: F401  (registers)
    acdc,
    dense,
    finetune,
    gmp,
    lrr,
    lth,
    magnitude,
    random_pruning,
    supermask,
    wr,
)
from sparsify.methods.base import METHODS, Context, LevelPlan, Method

__all__ = ["METHODS", "Context", "LevelPlan", "Method"]
