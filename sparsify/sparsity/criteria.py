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
- <base>_same_sign        for base large_final or magnitude_increase: the base score where
                          sign(w_f) = sign(w_i), 0 where the sign changed
- <base>_diff_sign        the base score where the sign changed, 0 where it did not
- snip                    |g · w_i|, g the gradient of the loss at initialisation (the dense
                          network, one batch of training images): SNIP's connection
                          sensitivity (Lee, Ajanthan & Torr 2019), as Zhou et al.'s
                          get_weight_init.py computes it
- grad                    |g|, the same gradient alone
- random                  uniform noise from a seeded generator

The sign variants are those of Zhou et al.'s get_weight_init.py: the other weights' scores are
set to 0, not to the lowest score, so under magnitude_increase_* a weight whose magnitude fell
(a negative score) is still pruned before them. sign(0) = 0 is a sign of its own, as np.sign's.
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
    "large_final_same_sign",
    "large_final_diff_sign",
    "magnitude_increase_same_sign",
    "magnitude_increase_diff_sign",
    "snip",
    "grad",
    "random",
)
# criteria that read the gradient at initialisation (Context.init_gradient)
GRADIENT_CRITERIA = ("snip", "grad")
SIGN_SUFFIXES = ("_same_sign", "_diff_sign")


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
    gradient: Mapping[str, Tensor] | None = None,
) -> dict[str, Tensor]:
    """Scores (float32, CPU, the weights' shapes) for the weights named in `final`; `mask` (the
    weights still alive) lets rank-based criteria rank the live weights only; `gradient` (the
    loss gradient at initialisation, per weight) is what snip and grad read."""
    assert criterion in CRITERIA, criterion
    if criterion in GRADIENT_CRITERIA:
        assert gradient is not None, f"criterion {criterion} needs the gradient at init"
        out = {}
        for name in final:
            g = gradient[name].detach().float().cpu()
            wi = init[name].detach().float().cpu()
            out[name] = (g * wi).abs() if criterion == "snip" else g.abs()
        return out
    base, variant = criterion, ""
    for suffix in SIGN_SUFFIXES:
        if criterion.endswith(suffix):
            base, variant = criterion.removesuffix(suffix), suffix
    out = {}
    for name, wf in final.items():
        wf = wf.detach().float().cpu()
        wi = init[name].detach().float().cpu()
        s = _base_score(base, wi, wf, generator, None if mask is None else mask[name])
        if variant:
            same = torch.sign(wi) == torch.sign(wf)
            s = torch.where(same if variant == "_same_sign" else ~same, s, torch.zeros_like(s))
        out[name] = s
    return out


def _base_score(
    criterion: str,
    wi: Tensor,
    wf: Tensor,
    generator: torch.Generator | None,
    alive: Tensor | None,
) -> Tensor:
    """The score of one layer's weights under a criterion without a sign variant."""
    if criterion == "large_final":
        return wf.abs()
    if criterion == "small_final":
        return -wf.abs()
    if criterion == "large_init":
        return wi.abs()
    if criterion == "small_init":
        return -wi.abs()
    if criterion in ("large_init_large_final", "small_init_small_final"):
        sign = 1.0 if criterion == "large_init_large_final" else -1.0
        return torch.minimum(_rank(sign * wi.abs(), alive), _rank(sign * wf.abs(), alive))
    if criterion == "magnitude_increase":
        return wf.abs() - wi.abs()
    if criterion == "movement":
        return (wf - wi).abs()
    assert criterion == "random", criterion
    assert generator is not None, "the random criterion needs a seeded generator"
    return torch.rand(wf.shape, generator=generator)
