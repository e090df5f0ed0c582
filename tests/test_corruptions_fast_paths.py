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


def test_edge_distance_is_the_capped_euclidean_distance():
    """The row-then-column distance (which stops once no farther row can help) equals the
    brute-force Euclidean distance to the nearest edge, capped, on sparse and dense masks and on
    an image without edges."""
    from sparsify.corruptions.weather import _edge_distance

    g = torch.Generator().manual_seed(0)
    h, w, cap = 23, 31, 9
    masks = [torch.rand(1, h, w, generator=g) < p for p in (0.002, 0.02, 0.3)]
    masks.append(torch.zeros(1, h, w, dtype=torch.bool))
    edges = torch.stack(masks)  # (4, 1, H, W)
    yy, xx = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    got = _edge_distance(edges, cap)
    for k, m in enumerate(masks):
        pts = m[0].nonzero().float()  # (n, 2)
        if len(pts) == 0:
            want = torch.full((h, w), float(cap))
        else:
            grid = torch.stack((yy, xx), -1).float().view(-1, 1, 2)
            want = (grid - pts).pow(2).sum(-1).amin(1).sqrt().view(h, w).clamp(max=cap)
        assert torch.allclose(got[k, 0], want, atol=1e-5), k


def test_motion_blur_chunks_equal_one_pass(monkeypatch):
    """Chunking the batch (to stay in cache) changes nothing: taps and draws are per image."""
    x = torch.rand(7, 3, 10, 12)
    angle = torch.linspace(-45, 45, 7)
    whole = filters.motion_blur(x, 5, 2.0, angle)
    monkeypatch.setattr(filters, "_MOTION_CHUNK", 2 * 3 * 10 * 12)  # 2 images per chunk
    assert torch.equal(filters.motion_blur(x, 5, 2.0, angle), whole)


def test_running_max_is_cummax():
    from sparsify.corruptions.weather import _running_max

    for w in (1, 2, 5, 32, 33):
        a = torch.randn(3, 2, 4, w)
        assert torch.equal(_running_max(a), a.cummax(-1).values), w


def test_corrupt_leaves_float_input_alone():
    """`corrupt` finishes in place; the caller's float tensor is never written, also where the
    corruption is the identity (defocus_blur on 8x8 at the cifar preset returns its input)."""
    from sparsify.corruptions import ORDER, corrupt

    x = torch.rand(2, 3, 8, 8)
    keep = x.clone()
    for name in ORDER:
        y = corrupt(x, name, 1, torch.Generator().manual_seed(0), "cifar")
        assert torch.equal(x, keep), name
        assert y.untyped_storage().data_ptr() != x.untyped_storage().data_ptr(), name
