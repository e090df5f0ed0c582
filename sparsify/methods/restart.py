"""What the surviving weights restart from after pruning (Zhou et al. 2019's "mask-1 actions").
Only the prunable weights change; biases and norms keep their rewind-point values.

- rewind           the rewind point's values (initialisation when prune.rewind is 0it)
- reinit           fresh values from the model's own initialiser (another seed)
- reshuffle        the rewind point's values permuted among the survivors of each layer
- signed_constant  ±σ_l with the rewind point's sign, σ_l the std of the layer's initial weights
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from sparsify.methods.base import StateDict
from sparsify.sparsity.mask import Mask

RESTARTS = ("rewind", "reinit", "reshuffle", "signed_constant")


def restart_weights(
    kind: str,
    start: StateDict,
    mask: Mask,
    init: StateDict,
    fresh: Callable[[], StateDict],
    generator: torch.Generator,
) -> StateDict:
    """The state_dict a pruned level starts from, given the rewind point's `start`."""
    assert kind in RESTARTS, kind
    out = dict(start)
    if kind == "rewind":
        return out
    if kind == "reinit":
        new = fresh()
        out.update({n: new[n].clone() for n in mask})
        return out
    for n, m in mask.items():
        w = start[n].clone()
        if kind == "reshuffle":
            alive = w[m]
            w[m] = alive[torch.randperm(alive.numel(), generator=generator)]
        else:
            w = torch.sign(w) * init[n].float().std().to(w.dtype)
        out[n] = w
    return out
