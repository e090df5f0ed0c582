"""Blur corruptions: defocus, glass, motion, zoom and Gaussian blur, batched in torch.

Parameter tables: `cifar` from hendrycks/robustness ImageNet-C/create_c/make_cifar_c.py,
`imagenet` from imagecorruptions (imagecorruptions-imaug 1.1.5 = ImageNet-C's constants).
Lengths in pixels (radii, sigmas, displacements) are multiplied by `scale` (base.py); at tiny
scale (an 8x8 image at the cifar preset, scale 0.25) a kernel whose radius rounds to 0 becomes
the identity: at 8x8 defocus_blur is exactly the identity at all 5 severities and
gaussian_blur nearly so, as blurring the 32x32 original by <= 1.5 px and shrinking it 4x would
be. glass_blur below scale 1 works on the reference grid instead (see its docstring).
"""

from __future__ import annotations

import math
from typing import Optional

import torch
from torch import Tensor

from sparsify.corruptions import draw, filters
from sparsify.corruptions.base import register


def _arange(stop: float, step: float, start: float = 1.0) -> tuple[float, ...]:
    """np.arange(start, stop, step) value for value: ceil((stop - start) / step) values
    start + i * ((start + step) - start), so float rounding can include `stop`
    (np.arange(1, 1.06, .01) ends at 1.06) and 1 + 10 * .03 is 1.3000000000000003, whose
    zoomed crop is 1 px larger than 1.2999999999999998's."""
    n = math.ceil((stop - start) / step)
    delta = (start + step) - start
    return tuple(start + i * delta for i in range(n))


# sigma (px). make_cifar_c.py / imagecorruptions.
GAUSSIAN_CIFAR = ((0.4,), (0.6,), (0.7,), (0.8,), (1.0,))
GAUSSIAN_IMAGENET = ((1,), (2,), (3,), (4,), (6,))


@register("gaussian_blur", "blur", cifar=GAUSSIAN_CIFAR, imagenet=GAUSSIAN_IMAGENET)
def gaussian_blur(x: Tensor, p: tuple, g: torch.Generator, scale: float) -> Tensor:
    """skimage.filters.gaussian(sigma) per channel (truncate 4, edge replication); sigma
    scaled. Deterministic: `g` is not used."""
    return filters.gaussian_blur(x, p[0] * scale)


# (sigma px, max_delta px, iterations). make_cifar_c.py / imagecorruptions.
GLASS_CIFAR = ((0.05, 1, 1), (0.25, 1, 1), (0.4, 1, 1), (0.25, 1, 2), (0.4, 1, 2))
GLASS_IMAGENET = ((0.7, 1, 2), (0.9, 2, 1), (1, 2, 3), (1.1, 3, 2), (1.5, 4, 2))


def _scramble(x: Tensor, max_delta: int, g: torch.Generator) -> Tensor:
    """One pass of the reference's pixel scrambling loop, batched over images and pixels.

    The reference visits rows h = H - d .. d + 1 and, in each, columns w = W - d .. d + 1
    (descending), and does `x[h, w], x[h', w'] = x[h', w'], x[h, w]` with (h', w') =
    (h + dy, w + dx), dx, dy ~ randint(-d, d). On an (H, W, 3) array both sides are views,
    so this COPIES x[h', w'] into x[h, w] and leaves x[h', w'] as it is: each pixel takes
    the current value of a pixel at most d away, which is already rewritten when it comes
    earlier in the visiting order (a row below inside the visited box, or to the right in the
    same row). So pixel p ends with the original value of src(p) if src(p) is not rewritten
    before p, else with what src(p) ended with: chains of copies, followed for all pixels at
    once by pointer jumping. Same distribution as the reference, not its draws.
    """
    b, c, h, w = x.shape
    src = _scramble_map(b, h, w, max_delta, g, x.device)
    if src is None:
        return x
    flat = x.reshape(b, c, h * w)
    return flat.gather(2, src.unsqueeze(1).expand(b, c, h * w)).view(b, c, h, w)


def _scramble_map(b: int, h: int, w: int, d: int, g: torch.Generator, dev) -> Optional[Tensor]:
    """`_scramble`'s (B, H W) int64 source of every pixel (flat index), or None when the
    visited box is empty (the identity)."""
    lo_h, hi_h, lo_w, hi_w = d + 1, h - d, d + 1, w - d  # visited box, inclusive
    if hi_h < lo_h or hi_w < lo_w:
        return None
    # one integer per pixel of the box for (dy, dx), uniform over the (2 d)^2 pairs as two
    # randint(-d, d) are; which draw goes to which pixel does not change the law
    n = 2 * d
    dy = draw.integers(0, n * n, (b, hi_h - lo_h + 1, hi_w - lo_w + 1), g, dev)
    dx = dy.remainder(n).sub_(d) if n & (n - 1) else dy.bitwise_and(n - 1).sub_(d)
    dy = dy.div_(n, rounding_mode="floor").sub_(d)
    rows = torch.arange(lo_h, hi_h + 1, device=dev).view(1, -1, 1)
    cols = torch.arange(lo_w, hi_w + 1, device=dev).view(1, 1, -1)
    src_r, src_c = dy + rows, dx + cols
    src_in = (src_r <= hi_h) & (src_c >= lo_w) & (src_c <= hi_w)
    earlier = ((dy > 0) | ((dy == 0) & (dx > 0))) & src_in  # src rewritten before p
    here = torch.arange(h * w, device=dev).view(1, h, w)
    box = (slice(None), slice(lo_h, hi_h + 1), slice(lo_w, hi_w + 1))
    src = here.repeat(b, 1, 1)
    src[box] = src_r.mul_(w).add_(src_c)
    ptr = here.repeat(b, 1, 1)
    ptr[box] = torch.where(earlier, src[box], here[box])
    src, ptr = src.view(b, h * w), ptr.view(b, h * w)
    nxt = torch.empty_like(ptr)
    for _ in range(max(1, (h * w - 1).bit_length())):  # chains are shorter than H W
        torch.gather(ptr, 1, ptr, out=nxt)
        if torch.equal(nxt, ptr):  # every chain followed to its end
            break
        ptr, nxt = nxt, ptr
    return src.gather(1, ptr)  # the pixel whose original value p ends with


@register("glass_blur", "blur", cifar=GLASS_CIFAR, imagenet=GLASS_IMAGENET)
def glass_blur(x: Tensor, p: tuple, g: torch.Generator, scale: float) -> Tensor:
    """Gaussian blur, truncation to 8 bits, `iterations` passes of local pixel scrambling
    (`_scramble`, which follows the reference's loop exactly but draws its own offsets), Gaussian
    blur again. Sigma and max_delta are scaled (max_delta rounded, at least 1). Below scale 1
    a pixel cannot move by a fraction of itself, so the image is resized to the reference grid
    (side / scale), corrupted there with the unscaled constants, and the change is resized
    back and added (resizing the change, not the image, keeps the resize round trip's own
    blur out).
    """
    sigma, max_delta, iterations = p
    h, w = x.shape[-2:]
    if scale < 1:
        big = filters.resize(x, filters.reference_grid(h, w, scale))
        return x + filters.resize(glass_blur(big, p, g, 1.0) - big, (h, w))
    sigma, max_delta = sigma * scale, max(1, round(max_delta * scale))
    y = torch.floor(filters.gaussian_blur(x, sigma).clamp(0, 1) * 255) / 255
    # the passes do not look at the values: compose their maps, then move the pixels once
    b, c, h, w = y.shape
    src = None
    for _ in range(iterations):
        m = _scramble_map(b, h, w, max_delta, g, y.device)
        if m is not None:  # pass i reads pass i - 1 at m: y_i = y_0[src(m)]
            src = m if src is None else src.gather(1, m)
    if src is not None:
        y = y.reshape(b, c, h * w).gather(2, src.unsqueeze(1).expand(b, c, h * w))
        y = y.view(b, c, h, w)
    return filters.gaussian_blur(y, sigma)


# (radius px, alias_blur sigma px). make_cifar_c.py / imagecorruptions.
DEFOCUS_CIFAR = ((0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1, 0.2), (1.5, 0.1))
DEFOCUS_IMAGENET = ((3, 0.1), (4, 0.5), (6, 0.5), (8, 0.5), (10, 0.5))


@register("defocus_blur", "blur", cifar=DEFOCUS_CIFAR, imagenet=DEFOCUS_IMAGENET)
def defocus_blur(x: Tensor, p: tuple, g: torch.Generator, scale: float) -> Tensor:
    """Correlation with the reference's anti-aliased disk (radius, alias sigma scaled), border
    reflected as cv2.filter2D's default. Deterministic: `g` is not used. A radius below 1 px
    is the 3x3 anti-aliasing Gaussian alone."""
    kernel = filters.disk_kernel(p[0] * scale, p[1] * scale)
    return filters.filter2d(x, kernel, "reflect101")


# (radius px, sigma px); angle ~ U(-45, 45) degrees. make_cifar_c.py / imagecorruptions.
MOTION_CIFAR = ((6, 1), (6, 1.5), (6, 2), (8, 2), (9, 2.5))
MOTION_IMAGENET = ((10, 3), (15, 5), (15, 8), (15, 12), (20, 15))


@register("motion_blur", "blur", cifar=MOTION_CIFAR, imagenet=MOTION_IMAGENET)
def motion_blur(x: Tensor, p: tuple, g: torch.Generator, scale: float) -> Tensor:
    """One-sided Gaussian streak along a random angle per image (U(-45, 45) degrees), as
    imagecorruptions' numpy reimplementation of ImageMagick's MotionBlurImage (CIFAR-10-C was
    made with ImageMagick itself, so not bit-identical to the released files). Radius and
    sigma are scaled; 2 ceil(radius) + 1 taps, so at least 3 for any positive radius."""
    angle = draw.uniform((x.shape[0],), g, torch.device("cpu")) * 90 - 45
    return filters.motion_blur(x, p[0] * scale, p[1] * scale, angle)


# zoom factors = np.arange(1, stop, step). make_cifar_c.py / imagecorruptions.
ZOOM_CIFAR = tuple((_arange(s, 0.01),) for s in (1.06, 1.11, 1.16, 1.21, 1.26))
ZOOM_IMAGENET = (
    (_arange(1.11, 0.01),),
    (_arange(1.16, 0.01),),
    (_arange(1.21, 0.02),),
    (_arange(1.26, 0.02),),
    (_arange(1.31, 0.03),),
)


@register("zoom_blur", "blur", cifar=ZOOM_CIFAR, imagenet=ZOOM_IMAGENET)
def zoom_blur(x: Tensor, p: tuple, g: torch.Generator, scale: float) -> Tensor:
    """Mean of `x` and its centre zoomed by each factor (the reference's clipped_zoom, linear
    interpolation). Zoom factors are ratios, so `scale` does not enter. Deterministic."""
    out, left, both = x.clone(), torch.empty_like(x), torch.empty_like(x)
    for factor in p[0]:  # clipped_zoom into two reused buffers
        mh, mw = filters.zoom_matrices(x, factor)
        torch.matmul(mh, x, out=left)
        out += torch.matmul(left, mw, out=both)
    return out.div_(len(p[0]) + 1)
