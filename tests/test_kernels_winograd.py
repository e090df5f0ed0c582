"""Winograd convolution: the derived transforms, and the fused Triton kernel against float64 conv2d.

Errors are measured in units that make one tolerance fit every shape: the absolute error of an
output is compared with sqrt(L) * rms(x) * rms(w), L = 9 C the reduction length. Rounding errors of
an L-term sum grow like sqrt(L) (a random walk) for random data, and so does the output itself, so
the measured ratio stays near (growth of the algorithm) x (machine epsilon) whatever C is, while a
wrong result (a missing tap, a shifted window, a channel dropped) is O(1) in the same units.
"""

from __future__ import annotations

import itertools
from fractions import Fraction

import pytest
import torch
import torch.nn.functional as F
from sparsify.kernels import winograd
from sparsify.kernels.winograd import winograd_conv2d
from sparsify.kernels.winograd_transforms import winograd_fractions, winograd_matrices

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

# Allowed error in machine epsilons of the dtype, in the units of the module docstring. Measured
# worst cases over 3 seeds of the shapes below (bf16 by a float64 emulation of the kernel's
# roundings; the interpreter cannot run bf16): F(2x2) fp32 7 eps, fp16 2.7, bf16 1.4;
# F(4x4) fp32 89, fp16 50, bf16 4.7. Each tolerance is 4-7x its measurement.
# - F(4x4) is looser than F(2x2): its transforms have entries up to 5 (B^T) and 8 (A^T), which
#   amplify the rounding of V, U and the products ~10x more than F(2x2)'s entries of 1.
# - fp16 is looser than fp32 (in absolute terms): V and U are rounded to fp16 before the GEMM.
# - bf16 is multiplied as TF32 (fp16's 10 mantissa bits) and dominated by the final rounding to
#   bf16, so it needs fewer of its own (larger) epsilons.
TOL_EPS = {
    (2, torch.float32): 32,
    (4, torch.float32): 512,
    (2, torch.float16): 16,
    (4, torch.float16): 200,
    (2, torch.bfloat16): 8,
    (4, torch.bfloat16): 32,
}


def _tolerance(tile: int, dtype: torch.dtype) -> float:
    return TOL_EPS[(tile, dtype)] * torch.finfo(dtype).eps


def _error(out: torch.Tensor, ref: torch.Tensor, x: torch.Tensor, w: torch.Tensor) -> float:
    """max |out - ref| in units of sqrt(9 C) * rms(x) * rms(w), the typical output magnitude."""

    def rms(t: torch.Tensor) -> torch.Tensor:
        return t.double().pow(2).mean().sqrt()

    scale = (9 * x.shape[1]) ** 0.5 * rms(x) * rms(w)
    return float((out.double() - ref).abs().max() / scale)


def _data(n, c, h, w, k, dtype, seed=0, bias=True):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, c, h, w, generator=g).to(DEVICE, dtype)
    wt = torch.randn(k, c, 3, 3, generator=g).to(DEVICE, dtype)
    b = torch.randn(k, generator=g).to(DEVICE, dtype) if bias else None
    return x, wt, b


def _reference(x, w, b, padding):
    return F.conv2d(x.double(), w.double(), None if b is None else b.double(), padding=padding)


# ---- the transforms ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "m,points",
    [(2, None), (4, None), (3, None), (2, (0, 2, Fraction(-1, 2))), (6, None)],
)
def test_transform_is_exact_correlation(m, points):
    """sum_j A^T[i,j] G[j,k] B^T[j,l] == [l == i + k] in exact arithmetic: y = correlation."""
    a_t, g, b_t = winograd_fractions(m, 3, points)
    alpha = m + 2
    for i, k, ll in itertools.product(range(m), range(3), range(alpha)):
        coef = sum(a_t[i][j] * g[j][k] * b_t[j][ll] for j in range(alpha))
        assert coef == (1 if ll == i + k else 0), (i, k, ll)


@pytest.mark.parametrize("m", [2, 4])
def test_transform_1d_and_2d_match_direct_correlation(m):
    a_t, g, b_t = winograd_matrices(m)
    gen = torch.Generator().manual_seed(m)
    d, f = (
        torch.randn(m + 2, generator=gen, dtype=torch.float64),
        torch.randn(3, dtype=torch.float64, generator=gen),
    )
    direct = torch.stack([(d[i : i + 3] * f).sum() for i in range(m)])
    torch.testing.assert_close(a_t @ ((g @ f) * (b_t @ d)), direct, rtol=1e-12, atol=1e-12)

    d2 = torch.randn(m + 2, m + 2, generator=gen, dtype=torch.float64)
    f2 = torch.randn(3, 3, generator=gen, dtype=torch.float64)
    y = a_t @ ((g @ f2 @ g.T) * (b_t @ d2 @ b_t.T)) @ a_t.T
    torch.testing.assert_close(
        y, F.conv2d(d2[None, None], f2[None, None])[0, 0], rtol=1e-12, atol=1e-12
    )


def test_transform_rejects_bad_points():
    with pytest.raises(ValueError, match="distinct"):
        winograd_fractions(2, 3, (0, 1, 1))
    with pytest.raises(ValueError, match="distinct"):
        winograd_fractions(2, 3, (0, 1))


# ---- the kernel ------------------------------------------------------------------------------

# (N, C, H, W, K, padding, bias): each line is there for an edge the masks must get right.
SHAPES = [
    (1, 3, 5, 7, 5, 1, True),  # H, W not multiples of the tile; C, K below one block
    (2, 17, 6, 6, 65, 0, False),  # C, K one past a block: two channel steps, several K programs
    (1, 1, 1, 1, 1, 1, True),  # a 1x1 image, all but one tap in the padding
    (2, 4, 3, 3, 2, 0, True),  # 3x3 without padding: a single output pixel
    (1, 2, 9, 4, 3, (1, 0), False),  # padding differs between H and W
    (1, 2, 4, 4, 3, 2, True),  # padding 2: whole tiles read only padding
    (2, 5, 12, 11, 33, 1, True),  # more tiles than one BLOCK_T: several tile programs
]


@pytest.mark.parametrize("layout", ["nchw", "channels_last"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=["fp32", "fp16"])
@pytest.mark.parametrize("tile", [2, 4])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s[:5])) + f"-p{s[5]}")
def test_matches_conv2d(shape, tile, dtype, layout):
    n, c, h, w, k, padding, bias = shape
    x, wt, b = _data(n, c, h, w, k, dtype, bias=bias)
    if layout == "channels_last":
        x = x.to(memory_format=torch.channels_last)
    out = winograd_conv2d(x, wt, b, padding=padding, tile=tile)
    ref = _reference(x, wt, b, padding)
    assert out.shape == ref.shape and out.dtype == dtype and out.device == x.device
    if layout == "channels_last" and c > 1 and h * w > 1:
        assert out.is_contiguous(memory_format=torch.channels_last)
    else:
        assert out.is_contiguous()
    assert _error(out, ref, x, wt) <= _tolerance(tile, dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=["fp32", "fp16"])
@pytest.mark.parametrize("tile", [2, 4])
def test_tolerance_rejects_wrong_results(tile, dtype):
    """The tolerance is far below the error of each plausible bug, so those bugs fail the tests."""
    n, c, h, w, k = 2, 17, 6, 5, 9
    x, wt, b = _data(n, c, h, w, k, dtype, seed=1)
    # A bias as large as a typical output (as when batch norm is folded into the conv), so that
    # dropping it is an O(1) error like the other bugs.
    b = b * (9 * c) ** 0.5
    out = winograd_conv2d(x, wt, b, padding=1, tile=tile)
    tol = _tolerance(tile, dtype)
    assert _error(out, _reference(x, wt, b, 1), x, wt) <= tol
    dropped = x.clone()
    dropped[:, -1] = 0  # the last input channel lost (an off-by-one channel mask)
    wrong = {
        "window shifted by one column": F.conv2d(
            F.pad(x.double(), (2, 0, 1, 1)), wt.double(), b.double()
        ),
        "last channel dropped": _reference(dropped, wt, b, 1),
        "bias missing": _reference(x, wt, None, 1),
        "filter flipped (convolution)": _reference(x, wt.flip(-1, -2), b, 1),
    }
    for name, ref in wrong.items():
        assert _error(out, ref, x, wt) > 3 * tol, name


def test_a_one_percent_transform_error_is_detected(monkeypatch):
    """A filter transform off by 1% in one coefficient fails the fp32 tolerances (both tiles)."""
    x, wt, b = _data(1, 6, 7, 6, 5, torch.float32, seed=2)
    ref = _reference(x, wt, b, 1)
    for tile in (2, 4):
        _, g, _ = winograd_matrices(tile)
        g_bad = g.clone()
        g_bad[1, 0] *= 1.01
        with monkeypatch.context() as mp:
            mp.setattr(winograd, "_g_on", lambda m, device, bad=g_bad: bad.to(device))
            out = winograd_conv2d(x, wt, b, padding=1, tile=tile)
        assert _error(out, ref, x, wt) > 10 * _tolerance(tile, torch.float32), tile


def test_general_strides_and_padding_forms():
    x_big, wt, b = _data(2, 8, 9, 10, 4, torch.float32)
    x = x_big[:, ::2, 1:, :-1]  # neither NCHW- nor channels-last-contiguous
    assert not x.is_contiguous() and not x.is_contiguous(memory_format=torch.channels_last)
    wt = wt[:, ::2]
    ref = _reference(x, wt, b, 1)
    out = winograd_conv2d(x, wt, b, padding="same")
    assert _error(out, ref, x, wt) <= _tolerance(2, torch.float32)
    valid = winograd_conv2d(x, wt, b, padding="valid", tile=4)
    assert _error(valid, _reference(x, wt, b, 0), x, wt) <= _tolerance(4, torch.float32)


def test_empty_batch():
    x, wt, b = _data(0, 3, 5, 5, 4, torch.float32)
    assert winograd_conv2d(x, wt, b).shape == (0, 4, 5, 5)


@pytest.mark.gpu
@gpu
@pytest.mark.parametrize("tile", [2, 4])
@pytest.mark.parametrize("shape", SHAPES[:3] + SHAPES[-1:], ids=str)
def test_bf16_on_gpu(shape, tile):
    n, c, h, w, k, padding, bias = shape
    x, wt, b = _data(n, c, h, w, k, torch.bfloat16, bias=bias)
    out = winograd_conv2d(x, wt, b, padding=padding, tile=tile)
    assert out.dtype == torch.bfloat16
    assert _error(out, _reference(x, wt, b, padding), x, wt) <= _tolerance(tile, torch.bfloat16)


# ---- errors ----------------------------------------------------------------------------------


def _bad_calls():
    x, wt, b = _data(1, 3, 6, 6, 4, torch.float32)
    return {
        "5x5 filter": (lambda: winograd_conv2d(x, torch.zeros(4, 3, 5, 5, device=DEVICE)), "3x3"),
        "1x3 filter": (lambda: winograd_conv2d(x, wt[..., :1, :]), "3x3"),
        "stride 2": (lambda: winograd_conv2d(x, wt, stride=2), "stride"),
        "dilation 2": (lambda: winograd_conv2d(x, wt, dilation=(1, 2)), "dilation"),
        "3-D input": (lambda: winograd_conv2d(x[0], wt), "4-D"),
        "channel mismatch": (lambda: winograd_conv2d(x, wt[:, :2]), "channels"),
        "tile 3": (lambda: winograd_conv2d(x, wt, tile=3), "tile"),
        "tile 6": (lambda: winograd_conv2d(x, wt, tile=6), "tile"),
        "dtype mismatch": (lambda: winograd_conv2d(x, wt.half()), "dtype"),
        "bias dtype": (lambda: winograd_conv2d(x, wt, b.double()), "dtype"),
        "float64": (lambda: winograd_conv2d(x.double(), wt.double()), "float64"),
        "bias shape": (lambda: winograd_conv2d(x, wt, b[:3]), "bias"),
        "negative padding": (lambda: winograd_conv2d(x, wt, padding=-1), "padding"),
        "float padding": (lambda: winograd_conv2d(x, wt, padding=1.5), "padding"),
        "padding string": (lambda: winograd_conv2d(x, wt, padding="full"), "padding"),
        "too small": (lambda: winograd_conv2d(x[..., :2, :2], wt, padding=0), "smaller"),
    }


@pytest.mark.parametrize("case", list(_bad_calls()))
def test_bad_input_raises_value_error(case):
    call, match = _bad_calls()[case]
    with pytest.raises(ValueError, match=match):
        call()


def test_cpu_tensor_without_interpreter_is_refused(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    x, wt = torch.randn(1, 2, 4, 4), torch.randn(3, 2, 3, 3)
    with pytest.raises(ValueError, match="CUDA"):
        winograd_conv2d(x, wt)


def test_fp16_f4_does_not_overflow_on_large_inputs():
    """F(4x4)'s input transform grows values up to 100x (B^T's largest row sum is 10): an input
    tile of magnitude 1000 signed like that row's outer product gives V = 1e5, past fp16's 65504,
    so fp16 F(4x4) keeps V in fp32. The result itself stays well inside fp16's range."""
    _, _, b_t = winograd_matrices(4)
    row = b_t[b_t.abs().sum(dim=1).argmax()]
    tile = 1000 * torch.outer(row.sign(), row.sign())  # one 6x6 window, padding 0
    x = tile.expand(1, 4, 6, 6).to(DEVICE, torch.float16)
    wt = torch.full((3, 4, 3, 3), 1 / 36, device=DEVICE).half()  # |outputs| <= 1000
    out = winograd_conv2d(x, wt, None, padding=0, tile=4)
    assert torch.isfinite(out).all()
    ref = _reference(x, wt, None, 0)
    assert _error(out, ref, x, wt) <= _tolerance(4, torch.float16)


def test_a_transformed_filter_computed_once_gives_the_same_result():
    from sparsify.kernels import winograd_filter

    x, wt, b = _data(1, 5, 6, 7, 3, torch.float16)
    for tile in (2, 4):
        u = winograd_filter(wt, tile, x.dtype)
        direct = winograd_conv2d(x, wt, b, padding=1, tile=tile)
        assert torch.equal(winograd_conv2d(x, wt, b, 1, tile, transformed=u), direct)
        with pytest.raises(ValueError, match="transformed must be"):
            winograd_conv2d(x, wt, b, 1, 6 - tile, transformed=u)  # the other tile's shape
