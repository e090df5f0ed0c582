"""Noise corruptions: gaussian, shot (Poisson), impulse (salt & pepper) and speckle.

All four act per element (every channel of every pixel independently), so they work for any C
and have no length in pixels: `scale` is unused. Constants: `cifar` from hendrycks/robustness
`ImageNet-C/create_c/make_cifar_c.py`, `imagenet` from `imagecorruptions/corruptions.py`
(equal to `make_imagenet_c.py`'s).
"""

from __future__ import annotations

import functools
import math

import torch
from torch import Tensor

from sparsify.corruptions import draw
from sparsify.corruptions.base import Params, register


@register(
    "gaussian_noise",
    "noise",
    cifar=((0.04,), (0.06,), (0.08,), (0.09,), (0.10,)),
    imagenet=((0.08,), (0.12,), (0.18,), (0.26,), (0.38,)),
)
def gaussian_noise(x: Tensor, p: Params, g: torch.Generator, scale: float) -> Tensor:
    """x + N(0, sigma^2), sigma = p[0] in units of the [0, 1] range."""
    return draw.normal(x.shape, g, x.device).mul_(p[0]).add_(x)  # in place: same values


@register(
    "shot_noise",
    "noise",
    cifar=((500,), (250,), (100,), (75,), (50,)),
    imagenet=((60,), (25,), (12,), (5,), (3,)),
)
def shot_noise(x: Tensor, p: Params, g: torch.Generator, scale: float) -> Tensor:
    """Poisson(x * c) / c: photon noise with c photons at full intensity (lower c = noisier).

    Values on 8-bit steps (x = l / 255, as `corrupt` makes of uint8 input) take the
    Poisson(l c / 255) law by inversion of its tabulated CDF (`_poisson_levels`), with one
    float32 uniform per value; other values go through torch.poisson. The batch goes through
    in runs of `_SHOT_CHUNK` values, each drawn in turn from `g`: the temporaries of a run stay
    in the allocator's free lists, where those of a whole batch were mapped afresh (page faults
    were half of the time)."""
    c = float(p[0])
    flat = x.reshape(-1)
    out = torch.empty_like(flat)
    for i in range(0, flat.numel(), _SHOT_CHUNK):
        v = flat[i : i + _SHOT_CHUNK]
        level = torch.round(v * 255)
        if torch.equal(level / 255, v):
            torch.div(_poisson_levels(level.int(), c, g), c, out=out[i : i + _SHOT_CHUNK])
        else:
            torch.div(draw.poisson(v * c, g), c, out=out[i : i + _SHOT_CHUNK])
    return out.view_as(x)


_SHOT_CHUNK = 1 << 16  # values per run of `shot_noise` (256 KiB of float32)
_GUIDE = 256  # guide-table buckets per level


@functools.lru_cache(maxsize=32)
def _poisson_tables(c: float, device: torch.device) -> tuple[Tensor, Tensor, int]:
    """CDFs of Poisson(l c / 255), l = 0..255, flattened (256 K,) float32 (computed in float64),
    with a last entry of 2 (the tail beyond K = c + 12 sqrt(c) + 30 has probability < 1e-25),
    and the guide table (256 G,) int32: l K + #{k: cdf_l(k) <= j / G}, the flat position where
    inversion of u in [j / G, (j + 1) / G) starts."""
    k_max = int(c + 12 * math.sqrt(c) + 30)
    lam = torch.arange(256, dtype=torch.float64).view(-1, 1) * c / 255
    k = torch.arange(k_max, dtype=torch.float64).view(1, -1)
    logp = k * torch.log(lam.clamp_min(1e-300)) - lam - torch.lgamma(k + 1)
    pmf = torch.where(lam > 0, logp.exp(), (k == 0).double())
    cdf = pmf.cumsum(1).float()
    cdf[:, -1] = 2.0
    edges = torch.arange(_GUIDE, dtype=torch.float32).view(1, -1, 1) / _GUIDE
    guide = (cdf.view(256, 1, -1) <= edges).sum(-1)  # (256, G)
    guide = guide + torch.arange(256).view(-1, 1) * k_max  # as positions in the flat CDFs
    return cdf.reshape(-1).to(device), guide.int().reshape(-1).to(device), k_max


def _poisson_levels(level: Tensor, c: float, g: torch.Generator) -> Tensor:
    """Poisson(level c / 255) draws (int32, level's shape) for int32 levels in 0..255: the
    smallest k with u < CDF(k), u ~ U[0, 1) float32, searched from the guide table onwards
    (one step or none for most values; the loop runs on the few values still searching).

    float32 u takes the values i / 2^24 and the CDF is rounded to float32, so each
    P(X <= k) is the exact one to within 2^-24 (6e-8): a tail value that rare is never drawn.
    """
    cdf, guide, k_max = _poisson_tables(c, level.device)
    flat = level.reshape(-1)
    u = draw.uniform(flat.shape, g, level.device)
    bucket = (u * _GUIDE).int().add_(flat, alpha=_GUIDE)
    pos = guide.index_select(0, bucket)
    todo = (cdf.index_select(0, pos) <= u).nonzero().view(-1)
    while todo.numel():
        moved = pos.index_select(0, todo) + 1
        pos.index_copy_(0, todo, moved)
        todo = todo[cdf.index_select(0, moved) <= u.index_select(0, todo)]
    return pos.sub_(flat, alpha=k_max).view(level.shape)


@register(
    "impulse_noise",
    "noise",
    cifar=((0.01,), (0.02,), (0.03,), (0.05,), (0.07,)),
    imagenet=((0.03,), (0.06,), (0.09,), (0.17,), (0.27,)),
)
def impulse_noise(x: Tensor, p: Params, g: torch.Generator, scale: float) -> Tensor:
    """Salt & pepper as skimage's `random_noise(mode='s&p', amount=a)`: each element is replaced
    with probability a, by 1 or 0 with equal odds (salt_vs_pepper 0.5)."""
    a = p[0]
    # One uniform per element: u < a/2 -> pepper, a/2 <= u < a -> salt; the same law as
    # skimage's two Bernoulli draws (flipped with prob. a, then salted with prob. 0.5).
    u = draw.uniform(x.shape, g, x.device)
    y = torch.where(u < a, (u >= a / 2).to(x.dtype), x)
    return y


@register(
    "speckle_noise",
    "noise",
    cifar=((0.06,), (0.10,), (0.12,), (0.16,), (0.20,)),
    imagenet=((0.15,), (0.20,), (0.35,), (0.45,), (0.60,)),
)
def speckle_noise(x: Tensor, p: Params, g: torch.Generator, scale: float) -> Tensor:
    """x + x * N(0, c^2): multiplicative noise, c = p[0]."""
    return draw.normal(x.shape, g, x.device).mul_(p[0]).mul_(x).add_(x)  # in place: same values
