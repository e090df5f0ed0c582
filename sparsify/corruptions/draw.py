"""Random draws for corruptions: taken on the CPU from the generator given, then moved to the
image's device, so a corruption draws the same numbers on every device."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor


def uniform(
    shape: Sequence[int], g: torch.Generator, device: torch.device, dtype=torch.float32
) -> Tensor:
    """U[0, 1) of `shape`, float32 (or `dtype`)."""
    return torch.rand(tuple(shape), generator=g, dtype=dtype).to(device)


def normal(shape: Sequence[int], g: torch.Generator, device: torch.device) -> Tensor:
    """float32 N(0, 1) of `shape`."""
    return torch.randn(tuple(shape), generator=g).to(device)


def poisson(rates: Tensor, g: torch.Generator) -> Tensor:
    """Poisson draws with the given rates (any shape), on the rates' device."""
    return torch.poisson(rates.detach().float().cpu(), generator=g).to(rates.device)


def integers(low: int, high: int, shape: Sequence[int], g: torch.Generator, device) -> Tensor:
    """int64 uniform in [low, high)."""
    return torch.randint(low, high, tuple(shape), generator=g).to(device)
