"""Colour corruptions through HSV: brightness (V + c) and saturate (S * a + b).

`rgb_to_hsv` / `hsv_to_rgb` are batched torch ports of skimage's `rgb2hsv` / `hsv2rgb` (the
conversions the reference code uses), on (B, 3, H, W) tensors, with the same tie rules. The two
corruptions do not call them: changing V alone or S alone has a closed form in RGB (see each),
one pass instead of two conversions, which the tests check against the round trip. Both work in
the input's float32, so a value that is an integer in 8 bits may truncate to the level below
where skimage's float64 does not, or the other way round: at most 1 LSB apart.
Constants: `cifar` from hendrycks/robustness `ImageNet-C/create_c/make_cifar_c.py`, `imagenet`
from `imagecorruptions/corruptions.py`.
"""

from __future__ import annotations

import torch
from torch import Tensor

from sparsify.corruptions.base import Params, register

# For each output channel (r, g, b) and hue sector hi = floor(6 h) in 0..5, which of the
# candidates (v, p, q, t) it takes; the table of skimage's hsv2rgb.
_V, _P, _Q, _T = range(4)
_SECTORS = (
    (_V, _Q, _P, _P, _T, _V),
    (_T, _V, _V, _Q, _P, _P),
    (_P, _P, _T, _V, _V, _Q),
)


def rgb_to_hsv(x: Tensor) -> Tensor:
    """(B, 3, H, W) RGB in [0, 1] -> (B, 3, H, W) HSV, each in [0, 1] (hue in turns)."""
    r, g, b = x.unbind(1)
    v = x.amax(1)
    delta = v - x.amin(1)
    grey = delta == 0
    d = torch.where(grey, torch.ones_like(delta), delta)  # no 0/0; grey pixels get h = s = 0
    s = torch.where(grey, torch.zeros_like(v), delta / torch.where(grey, d, v))
    # skimage assigns red, then green, then blue: on ties for the max the later one wins.
    h = torch.where(b == v, 4 + (r - g) / d, torch.where(g == v, 2 + (b - r) / d, (g - b) / d))
    h = torch.where(grey, torch.zeros_like(h), torch.remainder(h / 6, 1.0))
    return torch.stack((h, s, v), 1)


def hsv_to_rgb(hsv: Tensor) -> Tensor:
    """Inverse of `rgb_to_hsv`: (B, 3, H, W) HSV -> RGB."""
    h, s, v = hsv.unbind(1)
    hi = torch.floor(h * 6)
    f = h * 6 - hi
    p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    hi = torch.where(hi >= 6, hi - 6, hi)  # h = 1 is sector 0, as hi % 6
    # _SECTORS, row by row, as selections (no arithmetic, so the same values as a lookup)
    r = torch.where(hi == 1, q, torch.where((hi == 2) | (hi == 3), p, torch.where(hi == 4, t, v)))
    g = torch.where(hi == 0, t, torch.where(hi == 3, q, torch.where(hi >= 4, p, v)))
    b = torch.where(hi <= 1, p, torch.where(hi == 2, t, torch.where(hi == 5, q, v)))
    return torch.stack((r, g, b), 1)


@register(
    "brightness",
    "weather",
    cifar=((0.05,), (0.10,), (0.15,), (0.20,), (0.30,)),
    imagenet=((0.1,), (0.2,), (0.3,), (0.4,), (0.5,)),
    colour=True,
)
def brightness(x: Tensor, p: Params, g: torch.Generator, scale: float) -> Tensor:
    """HSV value + c, clipped to [0, 1] (hue and saturation kept).

    With h and s fixed, hsv_to_rgb is linear in v (v, p, q and t all carry the factor v), so
    the round trip through HSV is the pixel scaled by v' / v, and a black pixel (v = 0, grey,
    hue 0) becomes (v', v', v'). Computed so, in one pass, rather than through
    `rgb_to_hsv` / `hsv_to_rgb`; the two agree up to float rounding (`test_color_closed_forms`).
    """
    v = x.amax(1, keepdim=True)
    v_new = (v + p[0]).clamp(0, 1)
    black = v == 0
    ratio = v_new / torch.where(black, torch.ones_like(v), v)
    return torch.where(black, v_new, x * ratio)


@register(
    "saturate",
    "digital",
    cifar=((0.3, 0), (0.1, 0), (1.5, 0), (2, 0.1), (2.5, 0.2)),
    imagenet=((0.3, 0), (0.1, 0), (2, 0), (5, 0.1), (20, 0.2)),
    colour=True,
)
def saturate(x: Tensor, p: Params, g: torch.Generator, scale: float) -> Tensor:
    """HSV saturation * a + b, clipped to [0, 1]; (a, b) = p. Grey pixels (S = 0) only change
    when b > 0, and then towards red (hue 0), as in the reference.

    With h and v fixed, every channel is v (1 - s w) with w in [0, 1] set by the hue alone, so
    w = (v - x) / (v - min) and the new pixel is v - s' v (v - x) / (v - min); a grey pixel
    (hue 0) becomes (v, v (1 - s'), v (1 - s')). Computed so, in one pass; equal to the HSV
    round trip up to float rounding (`test_color_closed_forms`)."""
    v = x.amax(1, keepdim=True)
    delta = v - x.amin(1, keepdim=True)
    grey = delta == 0
    s = torch.where(grey, torch.zeros_like(v), delta / torch.where(grey, torch.ones_like(v), v))
    s_new = (s * p[0] + p[1]).clamp(0, 1)
    coloured = v - s_new * v * (v - x) / torch.where(grey, torch.ones_like(delta), delta)
    red = torch.cat((v, v * (1 - s_new), v * (1 - s_new)), 1)  # hue 0, as skimage's
    return torch.where(grey, red, coloured)
