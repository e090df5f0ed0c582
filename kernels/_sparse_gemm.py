"""The implicit-GEMM kernels behind `sparse_linear` and `sparse_conv2d`.

A conv2d is the GEMM out[(n, p, q), k] = Σ_j X[(n, p, q), j] · W[k, j] with j = (c, r, s) in
PyTorch's native order and X the input patches. The patch matrix is never built: each program
gathers the X tile it needs straight from the input tensor through its strides (any memory
format; padding is a masked-off load). A linear layer is the same GEMM with H = W = P = Q = 1 and
R = S = 1, so both ops share these two kernels:

- bsr: program = (BLOCK_P output pixels) × (one block-row of B output channels). It walks that
  block-row's stored blocks from the index table and multiplies each with one tensor-core
  `tl.dot(X tile [BLOCK_P × B], block^T [B × B])`. Skipped blocks cost nothing; a block-row
  with no stored blocks writes the bias alone.
- csr: program = (BLOCK_P output pixels) × (BLOCK_K output channels). The BLOCK_K rows step
  through their nonzeros in lockstep, STEP at a time (row k's nonzeros t·STEP … t·STEP+STEP−1
  at step t, rows that ran out masked), each step gathering STEP input columns per channel and
  accumulating value × column; no tl.dot, since single nonzeros have nothing for a tensor core
  to share.

Accumulation is fp32 and the output has the input's dtype. fp32 dots use input_precision="ieee":
the default on a GPU is tf32 (10-bit mantissa, ~1e-3 relative error), which would make a sparse
fp32 layer disagree with its dense twin far beyond fp32 rounding; for fp16/bf16 operands the
setting changes nothing. Block sizes come from small host rules (`_bsr_config`, `_csr_config`),
not autotuning, which the interpreter the CPU tests run under cannot do.

Host cost per call is what bounds small layers (a GPU finishes them in a few µs): `plan` does the
launch arithmetic once per input signature and the wrappers keep the result in the packed weight,
so a repeated call is a dict lookup, one torch.empty and the Triton launch.
"""

from __future__ import annotations

from dataclasses import dataclass

import triton
import triton.language as tl
from torch import Tensor

from ._rules import assert_arange, assert_dot, check_device, check_dtype, on_device
from .pack import PackedWeight


@dataclass(frozen=True)
class Geometry:
    """Shapes and conv parameters of one launch: input (N, C, H, W), output (N, K, P, Q),
    kernel R × S (all 1 for a linear layer)."""

    n: int
    h: int
    w: int
    p: int
    q: int
    r: int
    s: int
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    dilation: tuple[int, int] = (1, 1)


def check_operands(input: Tensor, packed: PackedWeight, bias: Tensor | None, op: str) -> None:
    """ValueError unless input, packed values and bias share a supported dtype and a device the
    kernels run on, and bias is (K,). Shape checks specific to `op` are the caller's."""
    if not isinstance(packed, PackedWeight):
        raise ValueError(f"{op} needs a PackedWeight from pack(), got {type(packed).__name__}")
    if not isinstance(input, Tensor):
        raise ValueError(f"{op}: input must be a tensor, got {type(input).__name__}")
    if input.dtype != packed.dtype:
        raise ValueError(
            f"{op}: input dtype {input.dtype} differs from the packed weight's {packed.dtype}; "
            f"pack the weight in the input's dtype"
        )
    check_dtype(input, packed.values, bias)
    check_device(input)
    k = packed.rows
    if bias is not None and tuple(bias.shape) != (k,):
        raise ValueError(f"{op}: bias must have shape ({k},), got {tuple(bias.shape)}")


@triton.jit
def _gather(x_ptr, base, h0, w0, pix_ok, cols, col_ok, H, W, sxc, sxh, sxw, dil_h, dil_w,
            R: tl.constexpr, S: tl.constexpr):  # fmt: skip
    """X[pixels, cols] as a [len(pixels), len(cols)] tile: column j = (c, r, s) reads input
    (c, h0 + r·dil_h, w0 + s·dil_w) of each pixel's image; out-of-image taps (padding) read 0."""
    c = cols // (R * S)
    rs = cols % (R * S)
    h = h0[:, None] + (rs // S * dil_h)[None, :]
    w = w0[:, None] + (rs % S * dil_w)[None, :]
    ok = pix_ok[:, None] & col_ok[None, :] & (h >= 0) & (h < H) & (w >= 0) & (w < W)
    ptrs = x_ptr + base[:, None] + (c * sxc)[None, :] + h * sxh + w * sxw
    return tl.load(ptrs, mask=ok, other=0.0)


@triton.jit
def _pixels(pid, NPQ, PQ, Q, stride_h, stride_w, pad_h, pad_w, sxn, son, sop, soq,
            BLOCK_P: tl.constexpr):  # fmt: skip
    """This program's output pixels: validity, top-left input tap (h0, w0), the int64 offsets of
    their image in the input and of the pixel in the output (int64: a batch can pass 2³¹)."""
    m = pid * BLOCK_P + tl.arange(0, BLOCK_P)
    ok = m < NPQ
    n = m // PQ
    pq = m % PQ
    p = pq // Q
    q = pq % Q
    n64 = n.to(tl.int64)
    out_base = n64 * son + p * sop + q * soq
    return ok, p * stride_h - pad_h, q * stride_w - pad_w, n64 * sxn, out_base


@triton.jit
def _bsr_kernel(x_ptr, crow_ptr, col_ptr, val_ptr, bias_ptr, out_ptr,
                NPQ, PQ, Q, K, CRS, H, W,
                sxn, sxc, sxh, sxw, son, sok, sop, soq,
                stride_h, stride_w, pad_h, pad_w, dil_h, dil_w,
                R: tl.constexpr, S: tl.constexpr, B: tl.constexpr, BLOCK_P: tl.constexpr,
                HAS_BIAS: tl.constexpr):  # fmt: skip
    pid_p = tl.program_id(0)
    brow = tl.program_id(1)
    pix_ok, h0, w0, x_base, out_base = _pixels(
        pid_p, NPQ, PQ, Q, stride_h, stride_w, pad_h, pad_w, sxn, son, sop, soq, BLOCK_P
    )
    lane = tl.arange(0, B)
    acc = tl.zeros((BLOCK_P, B), dtype=tl.float32)
    # int64 bounds make the loop index int64, so i·B² below cannot overflow
    start = tl.load(crow_ptr + brow).to(tl.int64)
    end = tl.load(crow_ptr + brow + 1).to(tl.int64)
    for i in range(start, end):
        cols = tl.load(col_ptr + i) * B + lane
        x = _gather(x_ptr, x_base, h0, w0, pix_ok, cols, cols < CRS, H, W, sxc, sxh, sxw,
                    dil_h, dil_w, R, S)  # fmt: skip
        # block i is stored row-major [k, j]; reading it with j as the fast index gives the
        # transposed [j, k] tile the dot needs without a separate transpose
        blk = val_ptr + i * (B * B)
        wt = tl.load(blk + lane[:, None] + lane[None, :] * B)
        acc = tl.dot(x, wt, acc, input_precision="ieee")
    ks = brow * B + lane
    k_ok = ks < K
    if HAS_BIAS:
        acc += tl.load(bias_ptr + ks, mask=k_ok, other=0.0).to(tl.float32)[None, :]
    ptrs = out_ptr + out_base[:, None] + (ks * sok)[None, :]
    tl.store(ptrs, acc.to(out_ptr.dtype.element_ty), mask=pix_ok[:, None] & k_ok[None, :])


@triton.jit
def _csr_kernel(x_ptr, crow_ptr, col_ptr, val_ptr, bias_ptr, out_ptr,
                NPQ, PQ, Q, K, H, W,
                sxn, sxc, sxh, sxw, son, sok, sop, soq,
                stride_h, stride_w, pad_h, pad_w, dil_h, dil_w,
                R: tl.constexpr, S: tl.constexpr, BLOCK_P: tl.constexpr, BLOCK_K: tl.constexpr,
                STEP: tl.constexpr, HAS_BIAS: tl.constexpr):  # fmt: skip
    pid_p = tl.program_id(0)
    pid_k = tl.program_id(1)
    pix_ok, h0, w0, x_base, out_base = _pixels(
        pid_p, NPQ, PQ, Q, stride_h, stride_w, pad_h, pad_w, sxn, son, sop, soq, BLOCK_P
    )
    ks = pid_k * BLOCK_K + tl.arange(0, BLOCK_K)
    k_ok = ks < K
    start = tl.load(crow_ptr + ks, mask=k_ok, other=0)
    count = tl.load(crow_ptr + ks + 1, mask=k_ok, other=0) - start
    acc = tl.zeros((BLOCK_P, BLOCK_K), dtype=tl.float32)
    # STEP nonzeros of each row per iteration, as a third tile axis: [pixel, channel, step]
    step = tl.arange(0, STEP)
    pix3 = pix_ok[:, None, None]
    h03, w03, base3 = h0[:, None, None], w0[:, None, None], x_base[:, None, None]
    for t0 in range(0, tl.max(count, axis=0), STEP):
        t = t0 + step[None, :]
        live = t < count[:, None]  # [BLOCK_K, STEP]
        at = start[:, None] + t
        cols = tl.load(col_ptr + at, mask=live, other=0)
        v = tl.load(val_ptr + at, mask=live, other=0.0).to(tl.float32)
        c = cols // (R * S)
        rs = cols % (R * S)
        h = h03 + (rs // S * dil_h)[None, :, :]
        w = w03 + (rs % S * dil_w)[None, :, :]
        ok = pix3 & live[None, :, :] & (h >= 0) & (h < H) & (w >= 0) & (w < W)
        x = tl.load(x_ptr + base3 + (c * sxc)[None, :, :] + h * sxh + w * sxw, mask=ok, other=0.0)
        acc += tl.sum(x.to(tl.float32) * v[None, :, :], axis=2)
    if HAS_BIAS:
        acc += tl.load(bias_ptr + ks, mask=k_ok, other=0.0).to(tl.float32)[None, :]
    ptrs = out_ptr + out_base[:, None] + (ks * sok)[None, :]
    tl.store(ptrs, acc.to(out_ptr.dtype.element_ty), mask=pix_ok[:, None] & k_ok[None, :])


def _pow2_at_least(n: int, floor: int) -> int:
    """The smallest power of two >= max(n, floor) (plain Python: triton.next_power_of_2 is a
    jit-wrapped function that costs microseconds per call on the host)."""
    return max(floor, 1 << max(0, n - 1).bit_length())


def _cdiv(a: int, b: int) -> int:
    return -(-a // b)


def _bsr_config(b: int, itemsize: int, npq: int) -> tuple[int, int, int]:
    """(BLOCK_P, num_warps, num_stages) for bsr: the largest pixel tile <= 128 whose X tile and
    weight block, times the pipeline stages, fit in ~160 KiB of shared memory (a Hopper SM has
    228), no larger than the pixels there are, and at least 16 (the tl.dot minimum). Three
    stages: each step of the block loop is a gather whose address depends on a loaded index, so
    the loop is latency-bound and gains from more loads in flight."""
    block_p, stages = 128, 3
    while block_p > 16 and stages * (block_p * b + b * b) * itemsize > 160 * 1024:
        block_p //= 2
    return min(block_p, _pow2_at_least(npq, 16)), (8 if b >= 64 else 4), stages


def _csr_config(npq: int, k: int) -> tuple[int, int, int]:
    """(BLOCK_P, BLOCK_K, STEP) for csr: 128 pixels (coalesced along a row of an NCHW image) × 8
    channels, fewer when small; each loop step takes STEP nonzeros of every row at once, up to
    8192 gathered inputs a step, so that many independent loads are in flight (one nonzero a
    step made the loop a chain of dependent load latencies, ~1 µs each on an H200)."""
    block_p, block_k = min(128, _pow2_at_least(npq, 16)), min(8, _pow2_at_least(k, 2))
    step = max(1, min(8, 8192 // (block_p * block_k)))
    return block_p, block_k, step


@dataclass(frozen=True)
class Plan:
    """Everything about one launch that depends only on the packed weight and the input's
    shape, strides and dtype: computed once per input signature and kept in `packed.plans`.
    `kernel` None: nothing to launch (no output pixel, or no stored entry: out = bias)."""

    kernel: object
    grid: tuple[int, int]
    args: tuple[int, ...]
    consts: dict


def plan(
    x_strides: tuple[int, int, int, int],
    out_strides: tuple[int, int, int, int],
    itemsize: int,
    packed: PackedWeight,
    has_bias: bool,
    g: Geometry,
) -> Plan:
    """The launch of the sparse implicit GEMM for an input with `x_strides` (N, C, H, W order)
    writing an output with `out_strides` (N, K, P, Q order); see `run`."""
    k, npq = packed.rows, g.n * g.p * g.q
    if npq == 0 or packed.stored == 0:
        return Plan(None, (0, 0), (), {})
    common = (*x_strides, *out_strides, *g.stride, *g.padding, *g.dilation)
    if packed.layout == "bsr":
        b = packed.block
        block_p, warps, stages = _bsr_config(b, itemsize, npq)
        assert_arange(block_p, b)
        assert_dot(block_p, b, b)
        return Plan(
            _bsr_kernel,
            (_cdiv(npq, block_p), _cdiv(k, b)),
            (npq, g.p * g.q, g.q, k, packed.cols, g.h, g.w, *common),
            dict(R=g.r, S=g.s, B=b, BLOCK_P=block_p, HAS_BIAS=has_bias,
                 num_warps=warps, num_stages=stages),
        )  # fmt: skip
    block_p, block_k, step = _csr_config(npq, k)
    assert_arange(block_p, block_k, step)
    return Plan(
        _csr_kernel,
        (_cdiv(npq, block_p), _cdiv(k, block_k)),
        (npq, g.p * g.q, g.q, k, g.h, g.w, *common),
        dict(R=g.r, S=g.s, BLOCK_P=block_p, BLOCK_K=block_k, STEP=step, HAS_BIAS=has_bias,
             num_warps=4),
    )  # fmt: skip


def run(p: Plan, x: Tensor, out: Tensor, packed: PackedWeight, bias: Tensor | None) -> None:
    """Write the GEMM of `x` with `packed` (+ bias) into `out` as planned by `plan` for these
    shapes and strides. Inputs are already validated by the caller."""
    if p.kernel is None:
        if out.numel() == 0:
            return
        if bias is None:  # nothing stored: no value buffer to hand a kernel, output = bias
            out.zero_()
        else:
            out.copy_((bias.view(1, -1, 1, 1) if out.dim() == 4 else bias).expand_as(out))
        return
    # the kernels read bias[k] at k: a strided view (b[::2]) must be made contiguous first;
    # packed.values stands in when there is none (never read when HAS_BIAS is False)
    bias_arg = bias.contiguous() if bias is not None else packed.values
    with on_device(x):
        p.kernel[p.grid](
            x, packed.crow, packed.col, packed.values, bias_arg, out, *p.args, **p.consts
        )


# plans kept per packed weight; past this many input signatures the oldest go (a model fed
# ever-changing shapes must not grow without bound)
MAX_PLANS = 64


def remember(packed: PackedWeight, key: object, value: object) -> None:
    """Keep `value` under `key` in packed.plans, dropping the oldest entry when full."""
    plans = packed.plans
    if len(plans) >= MAX_PLANS:
        del plans[next(iter(plans))]
    plans[key] = value


def bias_key(bias: Tensor | None) -> tuple | None:
    """What of `bias` a cached plan depends on (and was validated for)."""
    return None if bias is None else (bias.shape, bias.dtype, bias.device)
