"""Digital corruptions: contrast, pixelate, jpeg_compression, elastic_transform.

All work channel-wise (any C). Constants: `cifar` from hendrycks/robustness
`ImageNet-C/create_c/make_cifar_c.py`, `imagenet` from `imagecorruptions/corruptions.py`
(equal to `make_imagenet_c.py`'s, except elastic_transform, see there).
"""

from __future__ import annotations

import functools
import warnings

import torch
import torch.nn.functional as F
from torch import Tensor
from torchvision.io import decode_jpeg, encode_jpeg

from sparsify.corruptions import draw
from sparsify.corruptions.base import Params, register


@register(
    "contrast",
    "digital",
    cifar=((0.75,), (0.5,), (0.4,), (0.3,), (0.15,)),
    imagenet=((0.4,), (0.3,), (0.2,), (0.1,), (0.05,)),
)
def contrast(x: Tensor, p: Params, g: torch.Generator, scale: float) -> Tensor:
    """(x - m) * c + m, m the mean of each channel of each image."""
    m = x.mean((-2, -1), keepdim=True)
    return (x - m).mul_(p[0]).add_(m)


# ------------------------------------------------------------------------------------- pixelate


_BITS = 22  # PIL's fixed-point precision for 8-bit resampling (PRECISION_BITS = 32 - 8 - 2)


def _pil_resize_matrix(n_in: int, n_out: int, nearest: bool, device) -> Tensor:
    """(n_out, n_in) float64 matrix of PIL's 1-D `resize`, BOX or NEAREST, with PIL's
    fixed-point weights (integers summing to about 2^22; equal within a row).

    BOX (ImagingResample): output i averages the inputs j whose centre j + 0.5 lies in
    (c - w/2, c + w/2], c = (i + 0.5) * n_in / n_out, w = max(n_in / n_out, 1); upscaling thus
    picks one input, like NEAREST's j = floor(c) except when c is an integer.
    """
    s = n_in / n_out
    c = (torch.arange(n_out, dtype=torch.float64) + 0.5) * s
    j = torch.arange(n_in, dtype=torch.float64)
    if nearest:
        w = (j[None, :] == torch.floor(c)[:, None].clamp(max=n_in - 1)).double()
    else:
        t = (j[None, :] + 0.5 - c[:, None]) / max(s, 1.0)
        w = ((t > -0.5) & (t <= 0.5)).double()
    return torch.floor(0.5 + w / w.sum(1, keepdim=True) * 2**_BITS).to(device)


def _pil_resize(z: Tensor, size: tuple[int, int], nearest: bool) -> Tensor:
    """PIL's `resize` of the 8-bit values z (B, C, H, W; float integers) to size (h, w): the
    horizontal pass, then the vertical one, each rounded back to 8 bits as PIL does:
    (2^21 + sum k z) >> 22, clipped."""
    cols = _pil_plan(z.shape[-1], size[1], nearest, z.device)
    rows = _pil_plan(z.shape[-2], size[0], nearest, z.device)
    if cols[0] == rows[0] == "pick":  # both axes in one index of the flattened image
        flat = (rows[1].view(-1, 1) * z.shape[-1] + cols[1].view(1, -1)).view(-1)
        return z.flatten(-2).index_select(-1, flat).unflatten(-1, size)
    return _pil_pass(_pil_pass(z, cols, -1), rows, -2)


@functools.lru_cache(maxsize=128)
def _pil_plan(n_in: int, n_out: int, nearest: bool, device) -> tuple[str, Tensor, Tensor]:
    """How `_pil_pass` computes one axis: ("pick", source index, k) when every output is one
    input of weight 2^22 (upsampling), else ("window", 0/1 window matrix, weight k per
    output): BOX and NEAREST weigh the inputs of an output equally. Cached."""
    m = _pil_resize_matrix(n_in, n_out, nearest, "cpu")
    window = m > 0
    k = m.amax(1)
    # rows are normalised 0/1 windows, so their weights are equal
    assert torch.equal(torch.where(window, m, k[:, None]), k[:, None].expand_as(m))
    if bool((window.sum(1) == 1).all()) and bool((k == 2**_BITS).all()):
        return "pick", window.double().argmax(1).to(device), k
    return "window", window.double().to(device), k.to(device)


def _pil_pass(z: Tensor, plan: tuple[str, Tensor, Tensor], axis: int) -> Tensor:
    """One pass of `_pil_resize` along `axis` (-1 or -2), in z's dtype, exactly: a pick is an
    index; a window is the 0/1 sum S (exact: at most 255 n_in < 2^24), then
    (2^21 + k S) >> 22 in float64 (k S < 2^53)."""
    how, m, k = plan
    if how == "pick":
        return z.index_select(axis, m)
    w = m.to(z.dtype)
    sums = (z @ w.T if axis == -1 else w @ z).double()
    k = k.view(-1) if axis == -1 else k.view(-1, 1)
    out = sums.mul_(k).add_(2 ** (_BITS - 1)).div_(2**_BITS).floor_().clamp_(0, 255)
    return out.to(z.dtype)


@register(
    "pixelate",
    "digital",
    # make_cifar_c.py upsamples with BOX, imagecorruptions with NEAREST (make_imagenet_c.py: BOX).
    cifar=((0.95, "box"), (0.9, "box"), (0.85, "box"), (0.75, "box"), (0.65, "box")),
    imagenet=tuple((f, "nearest") for f in (0.6, 0.5, 0.4, 0.3, 0.25)),
)
def pixelate(x: Tensor, p: Params, g: torch.Generator, scale: float) -> Tensor:
    """PIL BOX downsampling to int(side * f) per axis, then back up (BOX or NEAREST), on 8-bit
    values with PIL's integer arithmetic (horizontal pass first, each pass rounded to 8 bits),
    so the output equals PIL's exactly.

    The factor f is relative to the image side, so `scale` is unused; int() truncates as the
    reference does, so small images lose relatively more (8 px at f = 0.95 goes to 7 px), and
    never less than one pixel.
    """
    f, up = p
    h, w = x.shape[-2:]
    z = (x * 255).round_()
    z = _pil_resize(z, (max(int(h * f), 1), max(int(w * f), 1)), nearest=False)
    z = _pil_resize(z, (h, w), nearest=up == "nearest")
    return z.div_(255)


# ------------------------------------------------------------------------------------- jpeg


@register(
    "jpeg_compression",
    "digital",
    cifar=((80,), (65,), (58,), (50,), (40,)),
    imagenet=((25,), (18,), (15,), (10,), (7,)),
)
def jpeg_compression(x: Tensor, p: Params, g: torch.Generator, scale: float) -> Tensor:
    """JPEG encode/decode at quality q (libjpeg through torchvision, equal to PIL's).

    Runs on the CPU (the same libjpeg on every device), one C call per image: torchvision's
    encode/decode take lists, not batches. C = 1 is coded as a greyscale JPEG, C = 3 as YCbCr
    4:2:0. Any size works (an 8x8 image is one block, padded inside libjpeg when smaller).
    """
    u8 = (x.detach() * 255).round().clamp(0, 255).to(torch.uint8).cpu()
    with warnings.catch_warnings():  # torchvision 0.29 points to TorchCodec; same libjpeg
        warnings.simplefilter("ignore", DeprecationWarning)
        y = torch.stack(decode_jpeg(encode_jpeg(list(u8), quality=int(p[0]))))
    return y.to(x.device, torch.float32) / 255


# ------------------------------------------------------------------------------------- elastic


def _fold(c: Tensor, n: int, about_edge: bool) -> Tensor:
    """Fold pixel coordinates into [0, n - 1] by mirroring: about the image edge (-0.5, n - 0.5;
    scipy/skimage "reflect") or about the edge pixels' centres (0, n - 1; OpenCV REFLECT_101)."""
    if n == 1:
        return torch.zeros_like(c)
    if about_edge:
        period = 2 * n
        c = torch.remainder(c + 0.5, period)
        return (torch.where(c > n, period - c, c) - 0.5).clamp(0, n - 1)
    period = 2 * (n - 1)
    c = torch.remainder(c, period)
    return torch.where(c > n - 1, period - c, c)


def _gauss_matrix(n: int, sigma: float, device) -> Tensor:
    """(n, n) float64 matrix of skimage's `gaussian(mode='reflect', truncate=3)` on one axis."""
    if sigma <= 0:
        return torch.eye(n, dtype=torch.float64, device=device)
    r = int(3 * sigma + 0.5)
    k = torch.arange(-r, r + 1, dtype=torch.float64)
    w = torch.exp(-0.5 * (k / sigma) ** 2)
    w = w / w.sum()
    i = torch.arange(n, dtype=torch.float64)[:, None]
    j = _fold(i + k[None, :], n, about_edge=True).round().long()  # reflect the taps
    m = torch.zeros(n, n, dtype=torch.float64)
    m.scatter_add_(1, j, w.expand(n, -1).contiguous())
    return m.to(device)


def _sample(x: Tensor, row: Tensor, col: Tensor) -> Tensor:
    """Bilinear samples of x (B, C, H, W) at pixel coordinates row, col (B, H, W), which are
    already folded into the image."""
    h, w = x.shape[-2:]
    grid = torch.stack((col * 2 / max(w - 1, 1) - 1, row * 2 / max(h - 1, 1) - 1), -1)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=True)


# (alpha, sigma, affine) in pixels at the preset's reference side.
_IM = 32  # make_cifar_c.py: IMSIZE * (alpha, sigma, affine)
_K = 250 * 0.005 * 224  # imagecorruptions: alpha = 250 k over U(-0.005 side, ..), sigma 0.01 side


@register(
    "elastic_transform",
    "digital",
    cifar=(
        (_IM * 0, _IM * 0, _IM * 0.08),
        (_IM * 0.05, _IM * 0.2, _IM * 0.07),
        (_IM * 0.08, _IM * 0.06, _IM * 0.06),
        (_IM * 0.1, _IM * 0.04, _IM * 0.05),
        (_IM * 0.1, _IM * 0.03, _IM * 0.03),
    ),
    # imagecorruptions' scale-free rewrite (no affine), not make_imagenet_c.py's (244 * (2, .7,
    # .1), ...): the package is our reference, and ImageNet-C's affine is 24 px at severity 1.
    imagenet=tuple((_K * k, 0.01 * 224, 0.0) for k in (0.05, 0.065, 0.085, 0.1, 0.12)),
)
def elastic_transform(x: Tensor, p: Params, g: torch.Generator, scale: float) -> Tensor:
    """Random affine warp, then a smooth random displacement field, both bilinear.

    As make_cifar_c.py: the three points (centre +- side // 3) move by U(-affine, affine) each
    (warp with OpenCV's REFLECT_101 border), then every pixel moves by alpha * G_sigma * U(-1, 1)
    per axis (skimage gaussian, truncate 3; scipy "reflect" border). Both are drawn at the
    reference side (side / scale) in reference pixels and mapped onto the image, so a
    thumbnail is deformed as its full-size image would be (scaling alpha and sigma alone
    would not do: the smoothed field's amplitude goes as alpha / sigma).
    """
    alpha, sigma, affine = p
    b, _, h, w = x.shape
    hr, wr = max(round(h / scale), 1), max(round(w / scale), 1)
    kh, kw = h / hr, w / wr  # image pixels per reference pixel
    # float64 throughout: bilinear weights summing to 1 - 1e-7 in float32 would turn flat
    # regions 1 LSB darker once `corrupt` truncates to 8 bits (the reference does not).
    y, f64, dev = x.double(), torch.float64, x.device
    rows = torch.arange(h, dtype=f64, device=dev)[:, None].expand(h, w)
    cols = torch.arange(w, dtype=f64, device=dev)[None, :].expand(h, w)
    if affine > 0:
        s = min(hr, wr) // 3
        cx, cy = wr // 2, hr // 2
        pts = torch.tensor([[cx + s, cy + s], [cx + s, cy - s], [cx - s, cy - s]], dtype=f64)
        moved = pts + (2 * draw.uniform((b, 3, 2), g, "cpu").double() - 1) * affine
        # (x', y') = A (x, y) + t through the three point pairs; we need its inverse map.
        mt = torch.linalg.solve(torch.cat([pts, torch.ones(3, 1, dtype=f64)], 1), moved)
        a_inv = torch.linalg.inv(mt[:, :2].transpose(1, 2)).to(dev)  # (B, 2, 2)
        t = mt[:, 2].to(dev)  # (B, 2)
        # output pixel -> reference coordinates -> source -> image pixel coordinates
        u = torch.stack(((cols + 0.5) / kw - 0.5, (rows + 0.5) / kh - 0.5), -1)  # (H, W, 2)
        src = torch.einsum("bij,bhwj->bhwi", a_inv, u - t[:, None, None, :])
        c_src = _fold((src[..., 0] + 0.5) * kw - 0.5, w, about_edge=False)
        r_src = _fold((src[..., 1] + 0.5) * kh - 0.5, h, about_edge=False)
        y = _sample(y, r_src, c_src)
    if alpha > 0:
        noise = 2 * draw.uniform((b, 2, hr, wr), g, dev).double() - 1  # (dx, dy)
        d = alpha * (_gauss_matrix(hr, sigma, dev) @ noise @ _gauss_matrix(wr, sigma, dev).T)
        if (hr, wr) != (h, w):
            d = F.interpolate(d, size=(h, w), mode="bilinear", align_corners=False)
            d = d * torch.tensor([kw, kh], dtype=f64, device=dev).view(1, 2, 1, 1)
        c_src = _fold(cols + d[:, 0], w, about_edge=True)
        r_src = _fold(rows + d[:, 1], h, about_edge=True)
        y = _sample(y, r_src, c_src)
    return y.to(x.dtype)
