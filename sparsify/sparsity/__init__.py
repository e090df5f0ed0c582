"""Masks over conv and linear weights: which weights are prunable, how a mask is kept enforced,
how weights are scored, grouped (blocks, N:M, channels) and how a sparsity target is spread
over layers, and counting."""

from sparsify.sparsity.allocation import ALLOCATIONS, prune_mask
from sparsify.sparsity.enforce import MaskEnforcer
from sparsify.sparsity.granularity import GRANULARITIES
from sparsify.sparsity.mask import Mask
from sparsify.sparsity.prunable import prunable_weights
from sparsify.sparsity.stats import SparsityStats, sparsity_stats

__all__ = [
    "ALLOCATIONS",
    "GRANULARITIES",
    "Mask",
    "MaskEnforcer",
    "SparsityStats",
    "prunable_weights",
    "prune_mask",
    "sparsity_stats",
]
