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

import functools
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


_TORCH_PAD = {"nearest": "replicate", "reflect101": "reflect", "wrap": "circular"}


def pad(x: Tensor, top: int, bottom: int, left: int, right: int, mode: str) -> Tensor:
    """Pad the last two axes of `x` by the given amounts with border `mode`."""
    h, w = x.shape[-2:]
    if mode == "nearest" or (max(top, bottom) < h and max(left, right) < w):
        return F.pad(x, (left, right, top, bottom), mode=_TORCH_PAD[mode])
    rows = border_index(h, top, bottom, mode).to(x.device)  # pads longer than the axis
    cols = border_index(w, left, right, mode).to(x.device)
    return x.index_select(-2, rows).index_select(-1, cols)


@functools.lru_cache(maxsize=256)
def _axis_matrix_cpu(n: int, taps: tuple[float, ...], before: int, mode: str) -> Tensor:
    m = torch.zeros(n, n, dtype=torch.float64)
    k = len(taps)
    cols = border_index(n, before, k - 1 - before, mode).unfold(0, k, 1)  # (n, k)
    rows = torch.arange(n).view(-1, 1).expand(n, k)
    w = torch.tensor(taps, dtype=torch.float64).expand(n, k)
    m.index_put_((rows.reshape(-1), cols.reshape(-1)), w.reshape(-1), accumulate=True)
    return m


@functools.lru_cache(maxsize=256)
def _axis_matrix(n, taps, before, mode, device, dtype) -> Tensor:
    return _axis_matrix_cpu(n, taps, before, mode).to(device, dtype)


def axis_matrix(n: int, kernel: Tensor, mode: str, device, dtype) -> Tensor:
    """(n, n) matrix M of the 1-D correlation of an axis of length `n` with `kernel` (k,),
    centred at k // 2, border `mode`: (M v)[i] = sum_j kernel[j] v[border(i + j - k // 2)].
    Cached per kernel, border, device and dtype (do not modify it)."""
    taps = tuple(float(t) for t in kernel.reshape(-1))
    return _axis_matrix(n, taps, len(taps) // 2, mode, torch.device(device), dtype)


def filter2d(x: Tensor, kernel: Tensor, mode: str) -> Tensor:
    """Correlate every channel of `x` (B, C, H, W) with `kernel` (kh, kw), centred at
    (kh // 2, kw // 2) as `cv2.filter2D`'s default anchor; same-size output, in x's dtype.

    Kernels of at most 3x3 are applied tap by tap (sums of integer values with integer weights
    stay exact); larger ones as the sum of the separable terms of their singular value
    decomposition, each a pair of (n, n) border-aware matrix products."""
    kh, kw = kernel.shape
    if kh == 1 or kw == 1:
        k = kernel.reshape(-1)
        return _rows(x, k, mode) if kw == 1 else _cols(x, k, mode)
    if kh * kw <= 9:
        h, w = x.shape[-2:]
        xp = pad(x, kh // 2, (kh - 1) // 2, kw // 2, (kw - 1) // 2, mode)
        out = None
        for i in range(kh):
            for j in range(kw):
                k = float(kernel[i, j])
                if k == 0:
                    continue
                term = xp[..., i : i + h, j : j + w] * k
                out = term if out is None else out.add_(term)
        return out if out is not None else torch.zeros_like(x)
    key = tuple(map(tuple, kernel.tolist()))
    mh, mw = _svd_matrices(key, x.shape[-2], x.shape[-1], mode, x.device, x.dtype)
    return _low_rank(x, mh, mw)


@functools.lru_cache(maxsize=64)
def _svd_matrices(kernel: tuple, h: int, w: int, mode: str, device, dtype) -> tuple[Tensor, Tensor]:
    """Stacked axis matrices of the rank-1 terms of `kernel` (kh, kw) for an (h, w) image:
    [Mh_1 .. Mh_r] (h, r h) and [Mw_1^T .. Mw_r^T] (w, r w), on `device` in `dtype`."""
    k = torch.tensor(kernel, dtype=torch.float64)
    u, s, vh = torch.linalg.svd(k)
    r = max(1, int((s > s[0] * 1e-12).sum()))
    mh, mw = [], []
    for i in range(r):
        scale = s[i].sqrt()
        mh.append(_axis_matrix_cpu(h, tuple((u[:, i] * scale).tolist()), k.shape[0] // 2, mode))
        mw.append(_axis_matrix_cpu(w, tuple((vh[i] * scale).tolist()), k.shape[1] // 2, mode))
    mh = torch.cat(mh, 1).to(device, dtype)
    return mh, torch.cat([m.T for m in mw], 1).to(device, dtype)


_LOW_RANK_CHUNK = 1 << 18  # values of the (r H, W) intermediate per chunk of `_low_rank`


def _low_rank(x: Tensor, mh: Tensor, mw: Tensor) -> Tensor:
    """sum_i Mh_i x Mw_i^T with mh = [Mh_1 .. Mh_r] (H, r H), mw = [Mw_1^T .. Mw_r^T] (W, r W):
    two matrix products per chunk of images. The intermediate is r times the image, so the
    batch goes through in chunks of about `_LOW_RANK_CHUNK` values of it: defocus_blur's
    15 x 15 disk (rank 5) on a whole 256-image CIFAR batch would allocate 16 MB, whose first
    touch made its time vary from 5 to 60 ms."""
    b, c, h, w = x.shape
    r = mh.shape[1] // h
    if r == 1:
        return mh @ x @ mw
    step = max(1, _LOW_RANK_CHUNK // (r * c * h * w))
    if step < b:
        return torch.cat([_low_rank(x[i : i + step], mh, mw) for i in range(0, b, step)])
    z = (x @ mw).view(b, c, h, r, w).transpose(2, 3).reshape(b, c, r * h, w)
    return mh @ z


def _rows(x: Tensor, k: Tensor, mode: str) -> Tensor:
    return axis_matrix(x.shape[-2], k, mode, x.device, x.dtype) @ x


def _cols(x: Tensor, k: Tensor, mode: str) -> Tensor:
    return x @ axis_matrix(x.shape[-1], k, mode, x.device, x.dtype).T


def separable(x: Tensor, k_rows: Tensor, k_cols: Tensor, mode: str) -> Tensor:
    """`filter2d` with the outer product kernel k_rows (kh,) x k_cols (kw,): two (n, n)
    border-aware matrix products, in x's dtype."""
    return _cols(_rows(x, k_rows, mode), k_cols, mode)


@functools.lru_cache(maxsize=64)
def gaussian_kernel1d(sigma: float, truncate: float = 4.0) -> Tensor:
    """scipy.ndimage's Gaussian: radius int(truncate * sigma + 0.5), normalised to sum 1.
    A sigma so small that the radius is 0 gives the identity (1,). Cached: do not modify."""
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


@functools.lru_cache(maxsize=64)
def disk_kernel(radius: float, alias_blur: float) -> Tensor:
    """The reference's defocus kernel: the pixels of a (2L+1)^2 grid with x^2 + y^2 <= radius^2
    (L = 8, or floor(radius) beyond 8), normalised, then smoothed by a 3x3 (5x5 beyond 8)
    OpenCV Gaussian of sigma `alias_blur` with the grid's border reflected. float64 (k, k),
    cropped to its non-zero support (the zeros do not change the correlation). Cached: do not
    modify."""
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


def motion_taps(
    radius: float, sigma: float, angle: Tensor, h: int, w: int
) -> tuple[Tensor, Tensor, Tensor]:
    """The taps of `motion_blur` for images of (h, w): weights (B, T) float64 and offsets dy,
    dx (B, T) int64, on the CPU; dropped taps have weight 0 and offset 0."""
    width = 2 * math.ceil(radius) + 1
    i = torch.arange(width, dtype=torch.float64)
    k = torch.exp(-(i**2) / (2 * max(sigma, 1e-12) ** 2))
    k = k / k.sum()
    a = torch.deg2rad(angle.detach().double().cpu())
    dy = torch.ceil(i.view(1, -1) * torch.sin(a).view(-1, 1) - 0.5).long()  # (B, width)
    dx = torch.ceil(i.view(1, -1) * torch.cos(a).view(-1, 1) - 0.5).long()
    keep = (dy.abs() < h) & (dx.abs() < w)
    keep = keep.cumprod(1).bool()  # the reference stops at the first tap that leaves
    return k.view(1, -1) * keep, dy * keep, dx * keep


def motion_blur(x: Tensor, radius: float, sigma: float, angle: Tensor) -> Tensor:
    """imagecorruptions' reimplementation of ImageMagick's MotionBlurImage, per image.

    `angle` (B,) in degrees. Tap i = 0 .. 2 ceil(radius) has weight exp(-i^2 / 2 sigma^2)
    (normalised over all taps) and reads the pixel i px along the angle, rounded as
    ceil(. - 0.5), with edge replication; taps that leave the image are dropped, as in the
    reference (it `break`s), so their weight is lost. A radius <= 0 returns `x`.

    Each tap is one batched copy of image rows: in the flattened, edge-padded batch, the
    shifted row r of an image is the contiguous run of w values starting at a per-image
    offset, read through an overlapping `unfold` view with `index_select`. The batch goes
    through in chunks of about `_MOTION_CHUNK` values, so that each tap's copy and sum stay in
    the CPU's cache (a 256-image CIFAR batch in 4 chunks takes 2/3 of the time of one).
    """
    if 2 * math.ceil(radius) + 1 <= 1:
        return x
    b, c, h, w = x.shape
    weight, dy, dx = motion_taps(radius, sigma, angle, h, w)
    used = weight.abs().amax(0) > 0
    weight, dy, dx = weight[:, used], dy[:, used], dx[:, used]
    step = max(1, _MOTION_CHUNK // (c * h * w))
    if step >= b:
        return _motion_taps_apply(x, weight, dy, dx)
    parts = [
        _motion_taps_apply(
            x[i : i + step], weight[i : i + step], dy[i : i + step], dx[i : i + step]
        )
        for i in range(0, b, step)
    ]
    return torch.cat(parts)


_MOTION_CHUNK = 3 << 16  # values per chunk of `motion_blur` (768 KiB of float32)


def _motion_taps_apply(x: Tensor, weight: Tensor, dy: Tensor, dx: Tensor) -> Tensor:
    """sum_t weight[:, t] * x shifted by (dy[:, t], dx[:, t]) with edge replication; the taps
    (B, T) on the CPU."""
    b, c, h, w = x.shape
    top, bottom = max(0, -int(dy.min())), max(0, int(dy.max()))
    left, right = max(0, -int(dx.min())), max(0, int(dx.max()))
    hp, wp = h + top + bottom, w + left + right
    flat = pad(x, top, bottom, left, right, "nearest").reshape(-1)
    runs = flat.unfold(0, w, 1)  # runs[s] = flat[s : s + w], a view
    dev = x.device
    plane = torch.arange(b * c, device=dev).view(b, c, 1) * (hp * wp)
    start = plane + ((torch.arange(h, device=dev) + top) * wp + left).view(1, 1, h)  # (B, C, H)
    offset = (dy * wp + dx).to(dev)
    weight = weight.to(dev, x.dtype)
    out = torch.zeros(b, c * h * w, device=dev, dtype=x.dtype)
    rows = torch.empty(b * c * h, w, device=dev, dtype=x.dtype)  # reused by every tap
    for t in range(weight.shape[1]):
        torch.index_select(runs, 0, (start + offset[:, t].view(b, 1, 1)).view(-1), out=rows)
        out.addcmul_(rows.view(b, c * h * w), weight[:, t : t + 1])
    return out.view(b, c, h, w)


@functools.lru_cache(maxsize=256)
def _zoom_matrix(n: int, factor: float) -> Tensor:
    """(n, n) float64 linear map of one axis of the reference's `clipped_zoom`: crop the central
    ceil(n / factor) pixels, zoom them by `factor` as scipy.ndimage.zoom(order=1) (corner-
    aligned: output j samples input j (in - 1) / (out - 1)), keep the central n. Cached."""
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
    mh, mw = zoom_matrices(x, factor)
    return mh @ x @ mw


def zoom_matrices(x: Tensor, factor: float) -> tuple[Tensor, Tensor]:
    """(Mh, Mw^T) of `clipped_zoom(x, factor)` = Mh x Mw^T, on x's device and dtype. Cached."""
    mh = _zoom_matrix_on(x.shape[-2], factor, x.device, x.dtype)
    return mh, _zoom_matrix_on(x.shape[-1], factor, x.device, x.dtype).T


@functools.lru_cache(maxsize=256)
def _zoom_matrix_on(n: int, factor: float, device, dtype) -> Tensor:
    return _zoom_matrix(n, factor).to(device, dtype)


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
