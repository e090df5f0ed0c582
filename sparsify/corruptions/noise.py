"""Noise corruptions: gaussian, shot (Poisson), impulse (salt & pepper) and speckle.

All four act per element (every channel of every pixel independently), so they work for any C
and have no length in pixels: `scale` is unused. Constants: `cifar` from hendrycks/robustness
`ImageNet-C/create_c/make_cifar_c.py`, `imagenet` from `imagecorruptions/corruptions.py`
(equal to `make_imagenet_c.py`'s).
"""

from __future__ import annotations

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
    return x + p[0] * draw.normal(x.shape, g, x.device)


@register(
    "shot_noise",
    "noise",
    cifar=((500,), (250,), (100,), (75,), (50,)),
    imagenet=((60,), (25,), (12,), (5,), (3,)),
)
def shot_noise(x: Tensor, p: Params, g: torch.Generator, scale: float) -> Tensor:
    """Poisson(x * c) / c: photon noise with c photons at full intensity (lower c = noisier)."""
    c = float(p[0])
    return draw.poisson(x * c, g) / c


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
    return x + x * (p[0] * draw.normal(x.shape, g, x.device))
