"""The corruption contract: batched torch corruptions of Hendrycks & Dietterich's benchmark.

A corruption is a function `fn(x, p, g, scale) -> y`:

- `x`: float32 (B, C, H, W) in [0, 1] on any device, C = 1 or 3 (1-channel images reach
  corruptions declared `colour=True` as gray RGB, and are returned as ITU-R 601 luma);
- `p`: the parameter tuple of one severity, from the preset's table (`cifar` or `imagenet`);
- `g`: a CPU `torch.Generator`; every random draw comes from it (`draw.py`), on the CPU, and is
  moved to x's device, so CPU and CUDA see the same draws;
- `scale`: the image side over the preset's reference side (32 px for `cifar`, 224 for
  `imagenet`); lengths in pixels (blur radii, displacements, fractal sizes) are multiplied by it,
  so an 8x8 digit is corrupted like the 32x32 image it is a thumbnail of;
- `y`: float32, same shape and device, in [0, 1] (clamped by `corrupt`).

`corrupt` quantises the result to 8 bits as the released datasets store it (the reference code
writes `np.uint8(y * 255)`, which truncates).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Optional

import torch
from torch import Tensor

from sparsify.registry import Registry

Params = tuple
CorruptionFn = Callable[[Tensor, Params, torch.Generator, float], Tensor]

FAMILIES = ("noise", "blur", "weather", "digital")
PRESETS = {"cifar": 32, "imagenet": 224}  # parameter set -> the image side it was tuned for
SEVERITIES = (1, 2, 3, 4, 5)
# Images up to this side get the CIFAR parameters under preset=auto, larger ones ImageNet's.
AUTO_CIFAR_MAX_SIDE = 64


@dataclass(frozen=True)
class Corruption:
    name: str
    family: str  # one of FAMILIES
    benchmark: bool  # one of the 15 of mCE; False for the 4 held-out extras
    fn: CorruptionFn
    cifar: tuple[Params, ...]  # severities 1..5, make_cifar_c.py's constants
    imagenet: tuple[Params, ...]  # severities 1..5, imagenet_c's constants
    colour: bool = False  # works on RGB: 1-channel input goes through gray RGB

    def params(self, preset: str, severity: int) -> Params:
        table = self.cifar if preset == "cifar" else self.imagenet
        return table[severity - 1]


CORRUPTIONS: Registry[Corruption] = Registry("corruption")

# Hendrycks & Dietterich's order (imagenet_c's corruption_tuple): reports list them this way.
ORDER = (
    "gaussian_noise",
    "shot_noise",
    "impulse_noise",
    "defocus_blur",
    "glass_blur",
    "motion_blur",
    "zoom_blur",
    "snow",
    "frost",
    "fog",
    "brightness",
    "contrast",
    "elastic_transform",
    "pixelate",
    "jpeg_compression",
    "speckle_noise",
    "gaussian_blur",
    "spatter",
    "saturate",
)
BENCHMARK = ORDER[:15]
EXTRA = ORDER[15:]


def register(
    name: str,
    family: str,
    *,
    cifar: tuple[Params, ...],
    imagenet: tuple[Params, ...],
    colour: bool = False,
) -> Callable[[CorruptionFn], CorruptionFn]:
    """Decorator: register `fn` as the corruption `name` with its two parameter tables."""
    assert name in ORDER and family in FAMILIES, (name, family)
    assert len(cifar) == len(imagenet) == len(SEVERITIES), name

    def decorate(fn: CorruptionFn) -> CorruptionFn:
        entry = Corruption(name, family, name in BENCHMARK, fn, cifar, imagenet, colour)
        CORRUPTIONS.register(name)(entry)
        return fn

    return decorate


def preset_for(side: int, preset: str = "auto") -> str:
    """The parameter set for images of `side` pixels: `preset`, or by size when "auto"."""
    if preset == "auto":
        return "cifar" if side <= AUTO_CIFAR_MAX_SIDE else "imagenet"
    assert preset in PRESETS, preset
    return preset


LUMA = (0.299, 0.587, 0.114)  # ITU-R 601-2, as PIL's convert("L")


def to_gray(x: Tensor) -> Tensor:
    """(B, 3, H, W) -> (B, 1, H, W) luma."""
    w = torch.tensor(LUMA, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x * w).sum(1, keepdim=True)


def corrupt(
    x: Tensor,
    name: str,
    severity: int,
    generator: torch.Generator,
    preset: str = "auto",
    reference_side: Optional[int] = None,
) -> Tensor:
    """`x` (B, C, H, W), uint8 in 0..255 or float in [0, 1], corrupted by `name` at `severity`
    (1..5): float32 of the same shape in [0, 1], on 8-bit steps.

    `preset` chooses the parameter table ("cifar", "imagenet", or "auto" by image side);
    `reference_side` overrides the side the parameters are scaled from (the preset's own by
    default; give the image side to apply the constants unscaled, as imagecorruptions does).
    """
    entry = CORRUPTIONS.get(name)
    assert severity in SEVERITIES, severity
    assert x.ndim == 4 and x.shape[1] in (1, 3), tuple(x.shape)
    caller = x.untyped_storage().data_ptr()
    # in place on the fresh copies: the same values, without allocating per step
    x = x.float().div_(255) if x.dtype == torch.uint8 else x.float()
    side = min(x.shape[-2:])
    preset = preset_for(side, preset)
    scale = side / (reference_side or PRESETS[preset])
    gray = x.shape[1] == 1 and entry.colour
    y = entry.fn(
        x.expand(-1, 3, -1, -1) if gray else x, entry.params(preset, severity), generator, scale
    )
    if gray:
        y = to_gray(y.clamp(0, 1))
    assert y.shape == x.shape, (name, tuple(y.shape), tuple(x.shape))
    if y.untyped_storage().data_ptr() in (caller, x.untyped_storage().data_ptr()):
        y = y.clone()  # an identity or a view: the caller's tensor and x stay as they are
    return y.clamp_(0, 1).mul_(255).floor_().div_(255)
