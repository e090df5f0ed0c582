"""Weather corruptions: snow, frost, fog and spatter, batched in torch (brightness: color.py).

Parameter tables: `cifar` from hendrycks/robustness ImageNet-C/create_c/make_cifar_c.py,
`imagenet` from imagecorruptions (imagecorruptions-imaug 1.1.5 = ImageNet-C's constants).

Snow and spatter build a layer from per-pixel noise and then filter it; filtering noise drawn
at another resolution changes its statistics (drop sizes, coverage), so their layers are made
on the preset's reference grid (image side / scale, e.g. 32x32 for an 8x8 image at the cifar
preset) with the unscaled constants and resized to the image. At scale 1 this is the
reference's own computation.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from sparsify.corruptions import draw, filters
from sparsify.corruptions.base import register, to_gray

# (loc, std, zoom, threshold, blur radius px, blur sigma px, blend).
# make_cifar_c.py / imagecorruptions.
SNOW_CIFAR = (
    (0.1, 0.2, 1, 0.6, 8, 3, 0.95),
    (0.1, 0.2, 1, 0.5, 10, 4, 0.9),
    (0.15, 0.3, 1.75, 0.55, 10, 4, 0.9),
    (0.25, 0.3, 2.25, 0.6, 12, 6, 0.85),
    (0.3, 0.3, 1.25, 0.65, 14, 12, 0.8),
)
SNOW_IMAGENET = (
    (0.1, 0.3, 3, 0.5, 10, 4, 0.8),
    (0.2, 0.3, 2, 0.5, 12, 4, 0.7),
    (0.55, 0.3, 4, 0.9, 12, 8, 0.7),
    (0.55, 0.3, 4.5, 0.85, 12, 8, 0.65),
    (0.55, 0.3, 2.5, 0.85, 12, 12, 0.55),
)


@register("snow", "weather", cifar=SNOW_CIFAR, imagenet=SNOW_IMAGENET, colour=True)
def snow(x: Tensor, p: tuple, g: torch.Generator, scale: float) -> Tensor:
    """Snow flakes: N(loc, std) noise, centre zoomed, thresholded, motion-blurred along
    U(-135, -45) degrees (imagecorruptions' numpy motion blur; CIFAR-10-C used ImageMagick),
    8-bit rounded; the image is brightened towards 1.5 gray + 0.5 and the layer is added
    with its 180-degree rotation. x: (B, 3, H, W)."""
    loc, std, zoom, thresh, radius, sigma, blend = p
    b, _, h, w = x.shape
    hr, wr = filters.reference_grid(h, w, scale)
    layer = loc + std * draw.normal((b, 1, hr, wr), g, x.device)
    layer = filters.clipped_zoom(layer, zoom)
    layer = torch.where(layer < thresh, torch.zeros_like(layer), layer).clamp(0, 1)
    angle = draw.uniform((b,), g, torch.device("cpu")) * 90 - 135
    layer = filters.motion_blur(layer, radius, sigma, angle)
    layer = filters.resize(torch.round(layer * 255) / 255, (h, w))
    x = blend * x + (1 - blend) * torch.maximum(x, to_gray(x) * 1.5 + 0.5)
    return x + layer + layer.flip(-2, -1)


# (image weight, frost weight, frost px per photo px). The weights are make_cifar_c.py's /
# imagecorruptions'; the last entry is how the reference sizes its photos (cv2.resize by 0.2
# for CIFAR; 1.1 x "fit the image" in imagecorruptions, 1.1 for photos >= 224 px).
FROST_CIFAR = ((1, 0.2, 0.2), (1, 0.3, 0.2), (0.9, 0.4, 0.2), (0.85, 0.4, 0.2), (0.75, 0.45, 0.2))
FROST_IMAGENET = (
    (1, 0.4, 1.1),
    (0.8, 0.6, 1.1),
    (0.7, 0.7, 1.1),
    (0.65, 0.7, 1.1),
    (0.6, 0.75, 1.1),
)
# Statistics of 32x32 crops of the reference's frost photos 1-5 after its 0.2 resize: RGB
# mean .57 .66 .70 (luma mean .63, spread of crop means across photos .14), std within a
# crop .075-.16 (mean .11). The procedural texture aims at these.
FROST_TINT = (0.89, 1.02, 1.09)  # RGB / luma of the photos' mean colour (pale blue)
FROST_LEVEL = (0.42, 0.88)  # per-image luma level ~ U(lo, hi): mean .65, sd .13
FROST_AMPLITUDE = (0.06, 0.09)  # std of the cloudy base and of the crystal streaks
FROST_CRYSTAL = 40  # crystal length in photo px
FROST_SEEDS = 0.08  # fraction of the crystals' (half-resolution) pixels that seed a streak


def _unit(t: Tensor) -> Tensor:
    """Standardise each image of (B, 1, H, W) to zero mean and unit std."""
    std, mean = torch.std_mean(t, (1, 2, 3), keepdim=True)
    return (t - mean).div_(std.clamp_min(1e-6))


def frost_texture(b: int, h: int, w: int, px: float, g: torch.Generator, device) -> Tensor:
    """(b, 3, h, w) procedural frost in [0, 1]: a cloudy plasma base plus bright crystal
    streaks (sparse seeds motion-blurred along three random directions), pale blue. `px` is
    the image px per photo px (the reference's photo resize times `scale`)."""
    size = 1 << max(0, math.ceil(math.log2(max(h, w))))
    base = filters.plasma_fractal(b, size, 2.0, g, device)[:, None, :h, :w]
    # the crystals are drawn at half resolution (a quarter of the pixels and half the taps of
    # the streaks' motion blur), then resized up
    hs, ws = max(1, h // 2), max(1, w // 2)
    seeds = (draw.uniform((b, 1, hs, ws), g, device) < FROST_SEEDS).float()
    length = FROST_CRYSTAL * px / 2 * ws / w
    angles = torch.cat([draw.uniform((b,), g, torch.device("cpu")) * 360 for _ in range(3)])
    # the three directions as one batch of 3 b images
    streaks = filters.motion_blur(seeds.repeat(3, 1, 1, 1), length, length / 2, angles)
    streaks = filters.resize(streaks.view(3, b, hs, ws).amax(0)[:, None], (h, w))
    streaks = filters.gaussian_blur(streaks, 0.5 * min(1.0, 5 * px))
    level = FROST_LEVEL[0] + (FROST_LEVEL[1] - FROST_LEVEL[0]) * draw.uniform(
        (b, 1, 1, 1), g, device
    )
    luma = level + FROST_AMPLITUDE[0] * _unit(base) + FROST_AMPLITUDE[1] * _unit(streaks)
    tint = torch.tensor(FROST_TINT, device=device).view(1, 3, 1, 1)
    return (luma * tint).clamp(0, 1)


@register("frost", "weather", cifar=FROST_CIFAR, imagenet=FROST_IMAGENET, colour=True)
def frost(x: Tensor, p: tuple, g: torch.Generator, scale: float) -> Tensor:
    """w_img x + w_frost T with the reference's weights, where T is a PROCEDURAL frost
    texture (`frost_texture`), NOT Hendrycks' frost photos (their licence is unknown, so they
    are not shipped): brightness and colour statistics are matched to the photos, the
    crystal shapes are not. Frost results are therefore not comparable with CIFAR-10-C's
    or ImageNet-C's frost. x: (B, 3, H, W)."""
    b, _, h, w = x.shape
    return p[0] * x + p[1] * frost_texture(b, h, w, p[2] * scale, g, x.device)


# (strength, wibble decay). make_cifar_c.py / imagecorruptions.
FOG_CIFAR = ((0.2, 3), (0.5, 3), (0.75, 2.5), (1, 2), (1.5, 1.75))
FOG_IMAGENET = ((1.5, 2), (2.0, 2), (2.5, 1.7), (2.5, 1.5), (3.0, 1.4))


@register("fog", "weather", cifar=FOG_CIFAR, imagenet=FOG_IMAGENET)
def fog(x: Tensor, p: tuple, g: torch.Generator, scale: float) -> Tensor:
    """x + strength * plasma fractal (one per image, same on every channel), rescaled by
    max / (max + strength) with max the image's maximum. The fractal map is the next power
    of 2 >= the image side, cropped: its structure follows the image size, which is what
    `scale` would give (32 px at the cifar preset, 256 for 224 px at imagenet)."""
    strength, decay = p
    b, _, h, w = x.shape
    size = 1 << max(0, math.ceil(math.log2(max(h, w))))
    layer = filters.plasma_fractal(b, size, decay, g, x.device)[:, None, :h, :w]
    top = x.amax((1, 2, 3), keepdim=True)
    return (x + strength * layer).mul_(top).div_(top + strength)


# (loc, std, sigma px, threshold, intensity or mud sigma px, mud?).
# make_cifar_c.py / imagecorruptions.
SPATTER_CIFAR = (
    (0.62, 0.1, 0.7, 0.7, 0.5, 0),
    (0.65, 0.1, 0.8, 0.7, 0.5, 0),
    (0.65, 0.3, 1, 0.69, 0.5, 0),
    (0.65, 0.1, 0.7, 0.69, 0.6, 1),
    (0.65, 0.1, 0.5, 0.68, 0.6, 1),
)
SPATTER_IMAGENET = (
    (0.65, 0.3, 4, 0.69, 0.6, 0),
    (0.65, 0.3, 3, 0.68, 0.6, 0),
    (0.65, 0.3, 2, 0.68, 0.5, 0),
    (0.65, 0.3, 1, 0.65, 1.5, 1),
    (0.67, 0.4, 1, 0.65, 1.5, 1),
)
WATER = (175 / 255, 238 / 255, 238 / 255)  # pale turquoise, RGB
MUD = (63 / 255, 42 / 255, 20 / 255)  # brown, RGB
EMBOSS = ((-2.0, -1.0, 0.0), (-1.0, 1.0, 1.0), (0.0, 1.0, 2.0))
DIST_CAP = 20  # px at the reference grid: the reference truncates the distance map here


def _running_max(a: Tensor) -> Tensor:
    """cummax along the last axis by doubling (log2 W passes of shifted maxima): on short rows
    several times faster than torch.cummax on the CPU."""
    shift = 1
    while shift < a.shape[-1]:
        b = a.clone()
        torch.maximum(a[..., shift:], a[..., :-shift], out=b[..., shift:])
        a, shift = b, 2 * shift
    return a


def _edge_distance(edges: Tensor, cap: int) -> Tensor:
    """Euclidean distance (B, 1, H, W) from every pixel to the nearest True of `edges`,
    capped at `cap`: exact (the reference uses OpenCV's 5x5 chamfer approximation of L2).
    Along each row, the nearest edge on either side (running max / min of edge columns),
    then a min over the rows within the cap of (row distance^2 + that row's distance^2)."""
    _, _, h, w = edges.shape
    dev = edges.device
    big = float(4 * (h + w + cap) ** 2)  # stands for "no edge in this row"
    col = torch.arange(w, device=dev, dtype=torch.float32)
    far = torch.tensor(-big, device=dev)
    left = _running_max(torch.where(edges, col, far))  # nearest edge column <= c
    right = -_running_max(torch.where(edges, -col, far).flip(-1)).flip(-1)  # >= c
    rows = torch.minimum((col - left) ** 2, (right - col) ** 2)
    r = min(cap, h - 1)
    rows = torch.nn.functional.pad(rows, (0, 0, r, r), value=big)
    dist = rows[..., r : r + h, :].clone()
    for d in range(1, r + 1):  # then over the column
        if d % 4 == 1 and float(dist.max()) <= d * d:
            break  # rows d or more away add at least d^2: nothing can get nearer
        torch.minimum(dist, rows[..., r + d : r + d + h, :] + d * d, out=dist)
        torch.minimum(dist, rows[..., r - d : r - d + h, :] + d * d, out=dist)
    return dist.sqrt().clamp(max=cap)


def _equalize(v: Tensor) -> Tensor:
    """cv2.equalizeHist per image of integer-valued (B, 1, H, W) in 0..255: the CDF minus
    the lowest value's count, scaled to 0..255 and rounded; a constant image is unchanged."""
    b = v.shape[0]
    flat = v.reshape(b, -1).long()
    hist = torch.zeros(b, 256, device=v.device).scatter_add_(
        1, flat, torch.ones_like(flat, dtype=torch.float)
    )
    cdf = hist.cumsum(1)
    first = hist.gather(1, flat.amin(1, keepdim=True))
    total = float(flat.shape[1])
    lut = torch.round((cdf - first) * 255 / (total - first).clamp_min(1)).clamp(0, 255)
    lut = torch.where(first == total, torch.arange(256, device=v.device).float(), lut)
    return lut.gather(1, flat).view_as(v)


def _water(liquid: Tensor, intensity: float) -> Tensor:
    """The reference's water-drop brightness (B, 1, h, w) in [0, intensity] from the
    thresholded layer: distance to the drop edges, histogram-equalised, embossed, times the
    layer. Edges are the transitions of the drop mask on their upper/left side, where Canny
    (3x3 Sobel, non-maximum suppression) puts the edge of a step."""
    l8 = torch.floor(liquid.clamp(0, 1) * 255)  # np.uint8 truncation
    mask = l8 > 0
    edges = torch.zeros_like(mask)
    edges[..., :, :-1] |= mask[..., :, :-1] != mask[..., :, 1:]
    edges[..., :-1, :] |= mask[..., :-1, :] != mask[..., 1:, :]
    dist = _edge_distance(edges, DIST_CAP)
    third = torch.full((3,), 1 / 3, dtype=torch.float64)  # the 3x3 box, separably

    def box(t: Tensor) -> Tensor:
        return filters.separable(t, third, third, "reflect101")

    dist = _equalize(torch.floor(box(dist)))
    emboss = torch.tensor(EMBOSS, dtype=torch.float64)
    dist = torch.round(filters.filter2d(dist, emboss, "reflect101")).clamp(0, 255)
    dist = torch.round(box(dist))
    m = l8 * dist
    return m / m.amax((1, 2, 3), keepdim=True).clamp_min(1e-12) * intensity


@register("spatter", "weather", cifar=SPATTER_CIFAR, imagenet=SPATTER_IMAGENET, colour=True)
def spatter(x: Tensor, p: tuple, g: torch.Generator, scale: float) -> Tensor:
    """Water drops (pale turquoise, added) or mud (brown, blended in): N(loc, std) noise
    blurred by sigma and thresholded. Water's Canny edge detection and OpenCV distance
    transform are replaced by mask transitions and an exact Euclidean distance (close, not
    bit-identical). x: (B, 3, H, W)."""
    loc, std, sigma, thresh, strength, mud = p
    b, _, h, w = x.shape
    hr, wr = filters.reference_grid(h, w, scale)
    liquid = filters.gaussian_blur(loc + std * draw.normal((b, 1, hr, wr), g, x.device), sigma)
    liquid = torch.where(liquid < thresh, torch.zeros_like(liquid), liquid)
    if not mud:
        m = filters.resize(_water(liquid, strength), (h, w))
        return x + m * torch.tensor(WATER, device=x.device).view(1, 3, 1, 1)
    m = filters.gaussian_blur((liquid > thresh).float(), strength)
    m = filters.resize(torch.where(m < 0.8, torch.zeros_like(m), m), (h, w))
    return x * (1 - m) + m * torch.tensor(MUD, device=x.device).view(1, 3, 1, 1)
