"""Pruning methods, one file each, registered in METHODS."""

from sparsify.methods import dense, lth, magnitude  # noqa: F401  (registers)
from sparsify.methods.base import METHODS, Context, LevelPlan, Method

__all__ = ["METHODS", "Context", "LevelPlan", "Method"]
