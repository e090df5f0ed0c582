"""Batched tensor transforms for in-memory datasets, and per-dataset normalisation constants.

Images are (B, C, H, W) tensors, either uint8 in 0..255 or floating point in [0, 1]. Augmentation
works on whole batches with a handful of torch ops (no per-sample Python loop) and takes every
random draw from the generator it is given.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor


@dataclass(frozen=True)
class Stats:
    """Per-channel mean and standard deviation of a dataset's pixels, in [0, 1] intensity units."""

    mean: tuple[float, ...]
    std: tuple[float, ...]


# Computed over each dataset's training images. For CIFAR-10 these are the true per-pixel
# standard deviations (0.247, 0.243, 0.262), not the often-copied (0.2023, 0.1994, 0.2010), which
# are averages of per-image deviations.
CIFAR10_STATS = Stats((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616))
CIFAR100_STATS = Stats((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762))
MNIST_STATS = Stats((0.1307,), (0.3081,))
FASHION_MNIST_STATS = Stats((0.2860,), (0.3530,))
IMAGENET_STATS = Stats((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
# sklearn's digits (values 0..16 scaled to [0, 1]), over all 1,797 images.
DIGITS_STATS = Stats((0.3053,), (0.3760,))


class Normalize:
    """x ↦ (x / full_scale − mean) / std per channel; full_scale is 255 for uint8, else 1.

    Input (B, C, H, W) uint8 or float; output float32 of the same shape (a new tensor).
    """

    def __init__(self, stats: Stats) -> None:
        assert len(stats.mean) == len(stats.std)
        mean = torch.tensor(stats.mean, dtype=torch.float32).view(-1, 1, 1)
        std = torch.tensor(stats.std, dtype=torch.float32).view(-1, 1, 1)
        self.shift = -mean / std
        self.scale_float = 1.0 / std
        self.scale_uint8 = self.scale_float / 255.0

    def __call__(self, x: Tensor) -> Tensor:
        scale = self.scale_uint8 if x.dtype == torch.uint8 else self.scale_float
        # One fused multiply-add that also does the dtype conversion into a fresh tensor.
        return torch.addcmul(self.shift, x.to(torch.float32), scale)


@dataclass(frozen=True)
class BatchAugment:
    """Random crop after zero padding by `pad` pixels per side, then a horizontal flip with
    probability 1/2 when `flip`: the standard CIFAR augmentation, applied to a whole batch.

    Padding is zero in pixel space (black), as torchvision's RandomCrop pads before Normalize.
    """

    pad: int = 0
    flip: bool = False

    def __call__(self, x: Tensor, generator: torch.Generator) -> Tensor:
        """x: (B, C, H, W), any dtype → a new tensor of the same shape and dtype."""
        if self.pad == 0 and not self.flip:
            return x
        b, c, h, w = x.shape
        p = self.pad
        rows = torch.arange(h).expand(b, h)
        cols = torch.arange(w).expand(b, w)
        if p > 0:
            offsets = torch.randint(0, 2 * p + 1, (2, b, 1), generator=generator)
            rows = rows + offsets[0]
            cols = cols + offsets[1]
        if self.flip:
            flipped = torch.rand(b, 1, generator=generator) < 0.5
            cols = torch.where(flipped, cols.flip(1), cols)
        # Crop and flip together as one gather from the padded images: the source pixel of output
        # (i, j) in sample n is (rows[n, i], cols[n, j]).
        padded = F.pad(x, (p, p, p, p)) if p > 0 else x
        index = (rows[:, :, None] * (w + 2 * p) + cols[:, None, :]).view(b, 1, h * w)
        return padded.flatten(2).gather(2, index.expand(b, c, h * w)).view(b, c, h, w)


def resize_images(images: Tensor, size: int, chunk: int = 1024) -> Tensor:
    """Resize (N, C, H, W) images to (N, C, size, size), keeping the dtype.

    Bilinear with antialiasing (which matters when shrinking); uint8 images are rounded back to
    uint8 so they stay 4x smaller in memory than float. Done once when a dataset is loaded, in
    chunks of `chunk` images so the float copy never holds the whole dataset at once.
    """
    n, c = images.shape[:2]
    if images.shape[-2:] == (size, size):
        return images
    out = torch.empty((n, c, size, size), dtype=images.dtype)
    for i in range(0, n, chunk):
        part = F.interpolate(
            images[i : i + chunk].to(torch.float32),
            size=(size, size),
            mode="bilinear",
            antialias=True,
        )
        if images.dtype == torch.uint8:
            part = part.round_().clamp_(0, 255)
        out[i : i + chunk] = part.to(images.dtype)
    return out
