"""Mask criteria: how weights are scored before the highest scores are kept (Zhou, Lan, Liu &
Yosinski 2019, "Deconstructing Lottery Tickets"). w_i is a weight's value at initialisation, w_f
its value at the end of the previous level's training.

- large_final             |w_f|            (magnitude pruning; the default)
- small_final             −|w_f|
- large_init              |w_i|
- small_init              −|w_i|
- large_init_large_final  min(rank |w_i|, rank |w_f|): kept only if large at both ends. Zhou et
                          al. keep the weights above one percentile in both |w_i| and |w_f|; a
                          threshold on the smaller of the two within-layer ranks is that rule.
- small_init_small_final  min(rank −|w_i|, rank −|w_f|): kept only if small at both ends (the
                          same rule on negated magnitudes, as Zhou et al.'s get_weight_init.py).
- magnitude_increase      |w_f| − |w_i|
- movement                |w_f − w_i|
- random                  uniform noise from a seeded generator
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor

CRITERIA = (
    "large_final",
    "small_final",
    "large_init",
    "small_init",
    "large_init_large_final",
    "small_init_small_final",
    "magnitude_increase",
    "movement",
    "random",
)


def _rank(x: Tensor, alive: Tensor | None = None) -> Tensor:
    """Rank of each live element among the live elements of its tensor, scaled to [0, 1) (ties
    broken by position); -inf for pruned ones, so earlier pruning does not shift the ranks."""
    flat = x.reshape(-1)
    live = torch.arange(flat.numel()) if alive is None else alive.reshape(-1).nonzero().flatten()
    ranks = torch.full_like(flat, float("-inf"), dtype=torch.float32)
    order = flat[live].argsort(stable=True)
    ranks[live[order]] = torch.arange(live.numel(), dtype=torch.float32) / max(1, live.numel())
    return ranks.view_as(x)


def magnitude_scores(weights: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """|w| per weight, float32 on the CPU: criterion `large_final` of the weights `weights`, the
    score of magnitude pruning (gmp, acdc) and of lottery tickets."""
    return {name: w.detach().abs().float().cpu() for name, w in weights.items()}


def criterion_scores(
    criterion: str,
    init: Mapping[str, Tensor],
    final: Mapping[str, Tensor],
    generator: torch.Generator | None = None,
    mask: Mapping[str, Tensor] | None = None,
) -> dict[str, Tensor]:
    """Scores (float32, CPU, the weights' shapes) for the weights named in `final`; `mask` (the
    weights still alive) lets rank-based criteria rank the live weights only."""
    assert criterion in CRITERIA, criterion
    out = {}
    for name, wf in final.items():
        wf = wf.detach().float().cpu()
        wi = init[name].detach().float().cpu()
        if criterion == "large_final":
            s = wf.abs()
        elif criterion == "small_final":
            s = -wf.abs()
        elif criterion == "large_init":
            s = wi.abs()
        elif criterion == "small_init":
            s = -wi.abs()
        elif criterion in ("large_init_large_final", "small_init_small_final"):
            alive = None if mask is None else mask[name]
            sign = 1.0 if criterion == "large_init_large_final" else -1.0
            s = torch.minimum(_rank(sign * wi.abs(), alive), _rank(sign * wf.abs(), alive))
        elif criterion == "magnitude_increase":
            s = wf.abs() - wi.abs()
        elif criterion == "movement":
            s = (wf - wi).abs()
        else:
            assert generator is not None, "the random criterion needs a seeded generator"
            s = torch.rand(wf.shape, generator=generator)
        out[name] = s
    return out
