"""The fast paths of the batched corruptions against their direct definitions."""

from __future__ import annotations

import math

import torch

from sparsify.corruptions import filters
from sparsify.corruptions.blur import _scramble, _scramble_map
from sparsify.corruptions.noise import _poisson_levels


def test_poisson_levels_law():
    """Inversion of the tabulated CDF draws Poisson(l c / 255): frequencies of k within a few
    standard errors of the pmf, for a dark, a mid and a full level."""
    n, c = 200_000, 12.0
    for level in (3, 128, 255):
        lam = level * c / 255
        k = _poisson_levels(torch.full((n,), level, dtype=torch.int32), c, torch.Generator())
        for j in range(int(lam + 4 * math.sqrt(lam)) + 1):
            p = math.exp(j * math.log(lam) - lam - math.lgamma(j + 1))
            freq = (k == j).double().mean().item()
            assert abs(freq - p) < 5 * math.sqrt(p * (1 - p) / n) + 1e-4, (level, j, freq, p)


def test_scramble_maps_compose_like_passes():
    x = torch.rand(3, 2, 12, 14)
    a = _scramble(_scramble(x, 2, torch.Generator().manual_seed(4)), 2, torch.Generator())
    g = torch.Generator().manual_seed(4)
    m1 = _scramble_map(3, 12, 14, 2, g, x.device)
    m2 = _scramble_map(3, 12, 14, 2, torch.Generator(), x.device)
    src = m1.gather(1, m2)
    b = x.reshape(3, 2, -1).gather(2, src.unsqueeze(1).expand(3, 2, -1)).view_as(x)
    assert torch.equal(a, b)


def test_filter2d_matches_direct_correlation():
    """Matrix (SVD) and tap-by-tap filtering equal the direct correlation on a padded image."""
    x = torch.rand(2, 3, 9, 11, dtype=torch.float64)
    for kernel in (torch.rand(5, 4, dtype=torch.float64), torch.rand(3, 3, dtype=torch.float64)):
        for mode in ("nearest", "reflect101", "wrap"):
            kh, kw = kernel.shape
            xp = filters.pad(x, kh // 2, (kh - 1) // 2, kw // 2, (kw - 1) // 2, mode)
            want = sum(
                kernel[i, j] * xp[..., i : i + 9, j : j + 11] for i in range(kh) for j in range(kw)
            )
            assert torch.allclose(filters.filter2d(x, kernel, mode), want, atol=1e-12)
