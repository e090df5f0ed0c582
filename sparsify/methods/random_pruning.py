"""`random`: the random-pruning baseline with the same allocation as magnitude pruning.

Each level first computes the mask magnitude pruning would choose (same criterion, allocation
and granularity), then keeps, in every layer, the same number of weights chosen uniformly at
random among that layer's live weights. Per-layer sparsities therefore match magnitude
pruning's, and only the choice of weights differs. Survivors are rewound as in `lth`.
"""

from __future__ import annotations

import torch

from sparsify.errors import UserError
from sparsify.methods.base import METHODS, Context
from sparsify.methods.retraining import Retraining
from sparsify.seeding import RANDOM_PRUNING_DRAWS
from sparsify.sparsity.mask import Mask


@METHODS.register("random")
class RandomPruning(Retraining):
    policy = "rewind"

    def check(self, ctx: Context) -> None:
        super().check(ctx)
        if self.cfg.granularity != "unstructured":
            raise UserError(
                "prune=random chooses single weights; it needs prune.granularity=unstructured"
            )

    def next_mask(self, level: int, ctx: Context) -> Mask:
        reference = super().next_mask(level, ctx)
        previous = ctx.mask(level - 1)
        gen = ctx.generator(RANDOM_PRUNING_DRAWS, level)
        out = {}
        for name, ref in reference.items():
            alive = previous[name].reshape(-1).nonzero().flatten()
            keep = alive[torch.randperm(alive.numel(), generator=gen)[: int(ref.sum())]]
            m = torch.zeros(ref.numel(), dtype=torch.bool)
            m[keep] = True
            out[name] = m.view_as(ref)
        return Mask(out)
