"""Batched filtering helpers for the blur and weather corruptions.

Images are float (B, C, H, W) tensors; kernels are built on the CPU in float64 (so they do not
depend on the device) and moved to the image's device. Lengths (radii, sigmas) are in pixels of
the image they are applied to: the callers scale them.

Border modes follow the libraries the reference code calls:
- "nearest": edge replication (scipy/skimage `mode="nearest"`, the reference's shifts);
- "reflect101": mirror without repeating the edge (OpenCV's default, `cv2.filter2D`);
- "wrap": periodic (numpy `roll`).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from sparsify.corruptions import draw


def border_index(n: int, before: int, after: int, mode: str) -> Tensor:
    """int64 (before + n + after,) source indices of a padded axis of length `n`; works for
    pads longer than the axis (reflection is applied repeatedly)."""
    i = torch.arange(-before, n + after)
    if mode == "nearest":
        return i.clamp(0, n - 1)
    if mode == "wrap":
        return i % n
    assert mode == "reflect101", mode
    if n == 1:
        return torch.zeros_like(i)
    period = 2 * (n - 1)
    i = i % period
    return torch.where(i < n, i, period - i)


def pad(x: Tensor, top: int, bottom: int, left: int, right: int, mode: str) -> Tensor:
    """Pad the last two axes of `x` by the given amounts with border `mode`."""
    rows = border_index(x.shape[-2], top, bottom, mode).to(x.device)
    cols = border_index(x.shape[-1], left, right, mode).to(x.device)
    return x.index_select(-2, rows).index_select(-1, cols)


def filter2d(x: Tensor, kernel: Tensor, mode: str) -> Tensor:
    """Correlate every channel of `x` (B, C, H, W) with `kernel` (kh, kw), centred at
    (kh // 2, kw // 2) as `cv2.filter2D`'s default anchor; same-size output."""
    kh, kw = kernel.shape
    xp = pad(x, kh // 2, (kh - 1) // 2, kw // 2, (kw - 1) // 2, mode)
    b, c, h, w = xp.shape
    weight = kernel.to(x.device, x.dtype).expand(c, 1, kh, kw)
    return F.conv2d(xp, weight, groups=c)


def separable(x: Tensor, k_rows: Tensor, k_cols: Tensor, mode: str) -> Tensor:
    """`filter2d` with the outer product kernel k_rows (kh,) x k_cols (kw,), as two passes."""
    x = filter2d(x, k_rows.view(-1, 1), mode)
    return filter2d(x, k_cols.view(1, -1), mode)


def gaussian_kernel1d(sigma: float, truncate: float = 4.0) -> Tensor:
    """scipy.ndimage's Gaussian: radius int(truncate * sigma + 0.5), normalised to sum 1.
    A sigma so small that the radius is 0 gives the identity (1,)."""
    radius = int(truncate * sigma + 0.5)
    x = torch.arange(-radius, radius + 1, dtype=torch.float64)
    k = torch.exp(-0.5 * (x / max(sigma, 1e-12)) ** 2)
    return k / k.sum()


def gaussian_blur(x: Tensor, sigma: float) -> Tensor:
    """skimage.filters.gaussian (scipy gaussian_filter, truncate 4, border "nearest") over
    H and W of every channel; sigma in pixels."""
    if sigma <= 0:
        return x
    k = gaussian_kernel1d(sigma)
    return separable(x, k, k, "nearest")


def cv2_gaussian_kernel1d(ksize: int, sigma: float) -> Tensor:
    """cv2.getGaussianKernel(ksize, sigma) for sigma > 0: taps at i - (ksize - 1) / 2."""
    x = torch.arange(ksize, dtype=torch.float64) - (ksize - 1) / 2
    k = torch.exp(-(x**2) / (2 * max(sigma, 1e-12) ** 2))
    return k / k.sum()


def disk_kernel(radius: float, alias_blur: float) -> Tensor:
    """The reference's defocus kernel: the pixels of a (2L+1)^2 grid with x^2 + y^2 <= radius^2
    (L = 8, or floor(radius) beyond 8), normalised, then smoothed by a 3x3 (5x5 beyond 8)
    OpenCV Gaussian of sigma `alias_blur` with the grid's border reflected. float64 (k, k),
    cropped to its non-zero support (the zeros do not change the correlation)."""
    big = radius > 8
    half = int(math.floor(radius)) if big else 8
    grid = torch.arange(-half, half + 1, dtype=torch.float64)
    disk = ((grid.view(-1, 1) ** 2 + grid.view(1, -1) ** 2) <= radius**2).double()
    disk = disk / disk.sum()
    g = cv2_gaussian_kernel1d(5 if big else 3, alias_blur)
    k = separable(disk[None, None], g, g, "reflect101")[0, 0]
    nz = (k.abs() > 0).nonzero()
    r = int((nz - half).abs().max())  # symmetric support keeps the kernel centred
    return k[half - r : half + r + 1, half - r : half + r + 1]


def motion_blur(x: Tensor, radius: float, sigma: float, angle: Tensor) -> Tensor:
    """imagecorruptions' reimplementation of ImageMagick's MotionBlurImage, per image.

    `angle` (B,) in degrees. Tap i = 0 .. 2 ceil(radius) has weight exp(-i^2 / 2 sigma^2)
    (normalised over all taps) and reads the pixel i px along the angle, rounded as
    ceil(. - 0.5), with edge replication; taps that leave the image are dropped, as in the
    reference (it `break`s), so their weight is lost. A radius <= 0 returns `x`.
    """
    width = 2 * math.ceil(radius) + 1
    if width <= 1:
        return x
    b, c, h, w = x.shape
    i = torch.arange(width, dtype=torch.float64)
    k = torch.exp(-(i**2) / (2 * max(sigma, 1e-12) ** 2))
    k = k / k.sum()
    a = torch.deg2rad(angle.detach().double().cpu())
    dy = torch.ceil(i.view(1, -1) * torch.sin(a).view(-1, 1) - 0.5).long()  # (B, width)
    dx = torch.ceil(i.view(1, -1) * torch.cos(a).view(-1, 1) - 0.5).long()
    keep = (dy.abs() < h) & (dx.abs() < w)
    keep = keep.cumprod(1).bool()  # the reference stops at the first tap that leaves
    weight = (k.view(1, -1) * keep).to(x.device, x.dtype)
    dy, dx = dy.to(x.device), dx.to(x.device)
    rows = torch.arange(h, device=x.device).view(1, h, 1)
    cols = torch.arange(w, device=x.device).view(1, 1, w)
    flat = x.reshape(b, c, h * w)
    out = torch.zeros_like(flat)
    for t in range(width):  # a handful of taps; each is one batched gather
        r = (rows + dy[:, t].view(b, 1, 1)).clamp(0, h - 1)
        q = (cols + dx[:, t].view(b, 1, 1)).clamp(0, w - 1)
        idx = (r * w + q).view(b, 1, h * w).expand(b, c, h * w)
        out += weight[:, t].view(b, 1, 1) * flat.gather(2, idx)
    return out.view(b, c, h, w)


def _zoom_matrix(n: int, factor: float) -> Tensor:
    """(n, n) float64 linear map of one axis of the reference's `clipped_zoom`: crop the central
    ceil(n / factor) pixels, zoom them by `factor` as scipy.ndimage.zoom(order=1) (corner-
    aligned: output j samples input j (in - 1) / (out - 1)), keep the central n."""
    ch = int(math.ceil(n / factor))
    top = (n - ch) // 2
    out = int(round(ch * factor))
    trim = (out - n) // 2
    j = torch.arange(trim, trim + n, dtype=torch.float64)
    pos = j * (ch - 1) / max(out - 1, 1)
    lo = pos.floor().clamp(0, ch - 1)
    frac = pos - lo
    hi = (lo + 1).clamp(max=ch - 1)
    m = torch.zeros(n, n, dtype=torch.float64)
    rows = torch.arange(n)
    m.index_put_((rows, top + lo.long()), 1 - frac, accumulate=True)
    m.index_put_((rows, top + hi.long()), frac, accumulate=True)
    return m


def clipped_zoom(x: Tensor, factor: float) -> Tensor:
    """The reference's `clipped_zoom` of (B, C, H, W) by `factor` >= 1: the centre magnified,
    same size; separable, so two small matrix products."""
    mh = _zoom_matrix(x.shape[-2], factor).to(x.device, x.dtype)
    mw = _zoom_matrix(x.shape[-1], factor).to(x.device, x.dtype)
    return mh @ x @ mw.T


def resize(x: Tensor, size: tuple[int, int]) -> Tensor:
    """Bilinear resize of (B, C, H, W) to `size`, antialiased when shrinking."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)


def reference_grid(h: int, w: int, scale: float) -> tuple[int, int]:
    """The size (H / scale, W / scale) that an image of (h, w) has at its preset's reference
    resolution, at least 1 px."""
    return max(1, round(h / scale)), max(1, round(w / scale))


def plasma_fractal(
    batch: int, mapsize: int, wibbledecay: float, g: torch.Generator, device
) -> Tensor:
    """(batch, mapsize, mapsize) diamond-square height maps in [0, 1], one per image, as the
    reference's `plasma_fractal` (periodic, corner value 0, wibble 100 divided by
    `wibbledecay` per octave). `mapsize` must be a power of 2."""
    assert mapsize > 0 and mapsize & (mapsize - 1) == 0, mapsize
    m = torch.zeros(batch, mapsize, mapsize, device=device)
    step, wibble = mapsize, 100.0

    def wibbled_mean(total: Tensor) -> Tensor:
        u = draw.uniform(total.shape, g, device)
        return total / 4 + wibble * wibble * (2 * u - 1)

    while step >= 2:
        half = step // 2
        # squares: centre of each square = mean of its 4 corners + noise
        corners = m[:, ::step, ::step]
        acc = corners + corners.roll(-1, 1)
        acc = acc + acc.roll(-1, 2)
        m[:, half::step, half::step] = wibbled_mean(acc)
        # diamonds: edge midpoints = mean of 2 corners and 2 square centres + noise
        centres = m[:, half::step, half::step]
        corners = m[:, ::step, ::step]
        total = centres + centres.roll(1, 1) + corners + corners.roll(-1, 2)
        m[:, ::step, half::step] = wibbled_mean(total)
        total = centres + centres.roll(1, 2) + corners + corners.roll(-1, 1)
        m[:, half::step, ::step] = wibbled_mean(total)
        step //= 2
        wibble /= wibbledecay
    m = m - m.amin((1, 2), keepdim=True)
    return m / m.amax((1, 2), keepdim=True).clamp_min(1e-12)
