"""3x3 convolution by Winograd minimal filtering (Lavin & Gray 2016), as one fused Triton kernel.

F(m x m, 3 x 3) turns each m x m output tile into alpha^2 = (m + 2)^2 independent products:
Y = A^T [U ⊙ V] A with U = G g G^T (filter) and V = B^T d B (input tile), summed over input
channels. Summing over channels first makes each of the alpha^2 positions (xi, nu) a GEMM,
M[xi nu] (tiles x K) = V[xi nu] (tiles x C) @ U[xi nu] (C x K), which is where tensor cores work.

How the transforms are placed, for both F(2x2) (tile=2) and F(4x4) (tile=4):
- filter: transformed on the host (torch, float64, then rounded once to the GEMM dtype). It is
  O(K C) work per call against O(N H W K C) for the convolution, and doing it in float64 keeps
  its 1/6 and 1/24 entries (F(4x4)) from adding a second rounding.
- input and output: fused into the one kernel. A program owns BLOCK_T output tiles (across
  N x tilesH x tilesW) and BLOCK_K output channels. For each BLOCK_C slice of input channels it
  loads the alpha x alpha raw input tiles straight from `input` (masked: zero padding, ragged
  edges, C not a multiple of BLOCK_C), transforms them in fp32 registers and feeds alpha^2 `tl.dot`s
  into alpha^2 fp32 accumulators; after the channel loop it applies A^T . A, adds the bias and
  stores the output tiles, masked at the ragged edges. V and M never touch memory.

Triton has no register arrays, so the alpha^2 accumulators and the transform arithmetic are
straight-line code, generated (on first use) from the exact matrices of `winograd_transforms` (zero
entries skipped, +-1 as additions): no transform coefficient is typed in by hand.

Block sizes (`_blocks`) are what keeps alpha^2 accumulators in registers. BLOCK_T is 16, one
tensor-core row tile, so Triton spreads the warps along K: each warp then owns its own columns of
every accumulator. With BLOCK_T = 32 and 4 warps Triton lays the warps along the tile rows, two
warps hold copies of the same rows, and the accumulators no longer fit. Checked by compiling for
sm_90 without a GPU (triton.compile + ptxas): F(2x2) spills 0-100 bytes a thread, F(4x4) (36
accumulators, 144 registers a thread for them alone) spills ~0.6 KB (fp32) to ~1.3 KB (fp16/bf16).

GEMM precision (accumulation is fp32 throughout; the output is rounded to the input dtype):
- fp32: `input_precision="ieee"`. TF32 keeps 10 mantissa bits, and the Winograd transforms
  already amplify rounding errors (F(4x4) by ~100x), so TF32 would make an fp32 Winograd
  convolution no more accurate than an fp16 one.
- fp16: F(2x2) rounds V and U to fp16 for fp16 tensor cores. F(4x4) multiplies fp32 V and U as
  TF32, like bf16: its B^T has row sums up to 10, so V reaches 100x the input and an fp16 V
  would overflow for inputs of magnitude ~655.
- bf16: V and U stay fp32 and are multiplied as TF32. bf16's 8-bit mantissa on V and U would make
  F(4x4) errors reach ~30% of the output's typical size (measured by emulation); TF32 has fp16's
  10 bits with bf16's exponent range, so bf16 gets fp16-level Winograd errors at half the
  tensor-core rate of bf16.

Forward only: the result carries no autograd graph.
"""

from __future__ import annotations

import functools
import linecache
from fractions import Fraction

import torch
import triton
import triton.language as tl
from torch import Tensor

from ._rules import assert_arange, assert_dot, check_device, check_dtype, on_device
from .winograd_transforms import winograd_fractions, winograd_matrices

__all__ = ["winograd_conv2d", "winograd_filter"]

TILES = (2, 4)
R = 3  # filter size


def _combo(terms: list[tuple[Fraction, str]]) -> str:
    """Source of sum(coef * name), skipping zeros and writing +-1 as additions."""
    parts = []
    for coef, name in terms:
        if coef == 0:
            continue
        mag = abs(coef)
        term = name if mag == 1 else f"{float(mag)!r} * {name}"
        parts.append(("- " if coef < 0 else "+ ") + term)
    if not parts:
        raise ValueError("a transform row is all zeros")
    first = parts[0]
    src = (first[2:] if first[0] == "+" else "-" + first[2:]) + " " + " ".join(parts[1:])
    return src.strip()


def _kernel_source(m: int) -> str:
    """Python source of the fused F(m x m, 3 x 3) kernel, unrolled over the transform matrices."""
    a_t, _, b_t = winograd_fractions(m, R)
    al = m + R - 1
    rng2 = [(i, j) for i in range(al) for j in range(al)]
    o = [
        f"def winograd_f{m}_kernel(",
        "    x_ptr, u_ptr, bias_ptr, y_ptr, T, C, K, H, W, HO, WO, TILES_W, TILES_PER_IMG,",
        "    PAD_H, PAD_W, sxn, sxc, sxh, sxw, su0, suc, suk, syn, syk, syh, syw,",
        "    HAS_BIAS: tl.constexpr, DOT_PRECISION: tl.constexpr,",
        "    BLOCK_T: tl.constexpr, BLOCK_C: tl.constexpr, BLOCK_K: tl.constexpr,",
        "):",
        # int64 tile and channel indices: offsets of large batches overflow int32.
        "    t = (tl.program_id(0) * BLOCK_T + tl.arange(0, BLOCK_T)).to(tl.int64)",
        "    k = (tl.program_id(1) * BLOCK_K + tl.arange(0, BLOCK_K)).to(tl.int64)",
        "    t_ok = t < T",
        "    k_ok = k < K",
        "    n = t // TILES_PER_IMG",
        "    rem = t % TILES_PER_IMG",
        f"    oy = (rem // TILES_W) * {m}",
        f"    ox = (rem % TILES_W) * {m}",
        "    x_tile = x_ptr + n * sxn",
    ]
    # Row/column offsets and padding masks of the alpha x alpha input window, hoisted out of
    # the channel loop (they depend only on the tile); alpha of each, not alpha^2, stay live.
    for i in range(al):
        o += [
            f"    iy{i} = oy + ({i} - PAD_H)",
            f"    ry{i} = iy{i} * sxh",
            f"    iy_ok{i} = t_ok & (iy{i} >= 0) & (iy{i} < H)",
            f"    ix{i} = ox + ({i} - PAD_W)",
            f"    rx{i} = ix{i} * sxw",
            f"    ix_ok{i} = (ix{i} >= 0) & (ix{i} < W)",
        ]
    o += [f"    acc_{a}_{b} = tl.zeros((BLOCK_T, BLOCK_K), dtype=tl.float32)" for a, b in rng2]
    o += [
        "    for c0 in range(0, C, BLOCK_C):",
        "        c = c0 + tl.arange(0, BLOCK_C).to(tl.int64)",
        "        c_ok = c[None, :] < C",
        "        x_c = x_tile[:, None] + (c * sxc)[None, :]",
        "        u_c = u_ptr + c[:, None] * suc + k[None, :] * suk",
        "        u_msk = (c < C)[:, None] & k_ok[None, :]",
    ]
    # S = B^T d, streamed one input row at a time so only a row of d is live, not alpha^2 tiles.
    # Masked-off elements load 0: the zero padding, and channels past C (which then add 0).
    started: set[tuple[int, int]] = set()
    for i in range(al):
        for j in range(al):
            o.append(
                f"        d_{j} = tl.load(x_c + (ry{i} + rx{j})[:, None],"
                f" mask=(iy_ok{i} & ix_ok{j})[:, None] & c_ok, other=0.0).to(tl.float32)"
            )
        for a, j in rng2:
            if b_t[a][i] != 0:
                prev = [(Fraction(1), f"s_{a}_{j}")] if (a, j) in started else []
                o.append(f"        s_{a}_{j} = " + _combo([*prev, (b_t[a][i], f"d_{j}")]))
                started.add((a, j))
    # V = S B: alpha^3 terms in all, against alpha^4 for applying B^T (x) B^T at once.
    # U[a b] is reached by stepping the pointer, not as u_c + (a * alpha + b) * su0: that
    # product is computed in int32 and overflows once 36 C K passes 2^31.
    for a, b in rng2:
        v = _combo([(b_t[b][j], f"s_{a}_{j}") for j in range(al)])
        o += [
            "        u = tl.load(u_c, mask=u_msk, other=0.0)",
            "        u_c += su0",
            f"        acc_{a}_{b} = tl.dot(({v}).to(u.dtype), u, acc_{a}_{b},"
            " input_precision=DOT_PRECISION)",
        ]
    o += [
        "    bias = tl.zeros((1, BLOCK_K), dtype=tl.float32)",
        "    if HAS_BIAS:",
        "        bias = tl.load(bias_ptr + k, mask=k_ok, other=0.0).to(tl.float32)[None, :]",
        "    y_tile = y_ptr + (n * syn)[:, None] + (k * syk)[None, :]",
    ]
    for i in range(m):
        o += [f"    oy_ok{i} = t_ok & (oy + {i} < HO)", f"    ox_ok{i} = ox + {i} < WO"]
    # Y = A^T M A, again in two passes.
    for i in range(m):
        for b in range(al):
            o.append(f"    q_{i}_{b} = " + _combo([(a_t[i][a], f"acc_{a}_{b}") for a in range(al)]))
    for i in range(m):
        for j in range(m):
            y = _combo([(a_t[j][b], f"q_{i}_{b}") for b in range(al)])
            o.append(
                f"    tl.store(y_tile + ((oy + {i}) * syh + (ox + {j}) * syw)[:, None],"
                f" ({y} + bias).to(y_ptr.dtype.element_ty),"
                f" mask=(oy_ok{i} & ox_ok{j})[:, None] & k_ok[None, :])"
            )
    return "\n".join(o) + "\n"


@functools.cache
def _kernel(m: int) -> triton.JITFunction:
    """The jitted kernel for F(m x m, 3 x 3), built from generated source on first use."""
    src = _kernel_source(m)
    # Triton (compiler and interpreter) reads a kernel's source through `inspect`, which finds
    # generated code only through linecache; an entry with mtime None is never evicted.
    filename = f"{__file__}:generated_f{m}"
    linecache.cache[filename] = (len(src), None, src.splitlines(keepends=True), filename)
    namespace = {"tl": tl, "triton": triton, "__name__": __name__}
    exec(compile(src, filename, "exec"), namespace)
    return triton.jit(namespace[f"winograd_f{m}_kernel"])


def _pair(value: object, name: str) -> tuple[int, int]:
    if isinstance(value, int) and not isinstance(value, bool):
        return value, value
    if (
        isinstance(value, (tuple, list))
        and len(value) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
    ):
        return value[0], value[1]
    raise ValueError(f"{name} must be an int or a pair of ints, got {value!r}")


def _check(input: Tensor, weight: Tensor, bias: Tensor | None, tile: int) -> None:
    if tile not in TILES:
        raise ValueError(f"tile must be 2 (F(2x2,3x3)) or 4 (F(4x4,3x3)), got {tile!r}")
    if input.dim() != 4:
        raise ValueError(f"input must be 4-D (N, C, H, W), got shape {tuple(input.shape)}")
    if weight.dim() != 4 or tuple(weight.shape[2:]) != (R, R):
        raise ValueError(
            f"weight must be (K, C, 3, 3): only 3x3 filters, got {tuple(weight.shape)}"
        )
    if weight.shape[1] != input.shape[1]:
        raise ValueError(
            f"weight has {weight.shape[1]} input channels, input has {input.shape[1]} "
            "(groups=1 only)"
        )
    if input.shape[1] == 0:
        raise ValueError("input has no channels")
    if bias is not None and tuple(bias.shape) != (weight.shape[0],):
        raise ValueError(f"bias must be ({weight.shape[0]},), got {tuple(bias.shape)}")
    check_dtype(input, weight, bias)
    check_device(input)


def _blocks(m: int, k: int) -> tuple[int, int, int, int]:
    """(BLOCK_T, BLOCK_C, BLOCK_K, num_warps); see "Block sizes" in the module docstring."""
    if m == 2 and k > 32:  # 8 warps along K: twice the output channels a program, no spills
        return 16, 16, 64, 8
    return 16, 16, 32, 4


def winograd_conv2d(
    input: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    padding: int | tuple[int, int] | str = 1,
    tile: int = 2,
    *,
    stride: int | tuple[int, int] = 1,
    dilation: int | tuple[int, int] = 1,
    transformed: Tensor | None = None,
) -> Tensor:
    """3x3 convolution (cross-correlation), equal to `F.conv2d(input, weight, bias, 1, padding)`.

    input (N, C, H, W), weight (K, C, 3, 3), bias (K,) or None, all one dtype (fp32, fp16 or
    bf16) on one CUDA device (or CPU under TRITON_INTERPRET=1). `padding` is zero padding in
    pixels: an int, an (h, w) pair, or "same"/"valid". `tile` picks F(2x2, 3x3) or F(4x4, 3x3).
    `stride` and `dilation` exist only to refuse anything but 1, for callers that forward a conv
    layer's settings. Any input strides work; a channels-last input gives a channels-last
    output. `transformed`: `winograd_filter(weight, tile, input.dtype)`, computed once by a
    caller that convolves with the same weight again (the filter transform is O(K C) work and
    memory per call otherwise). Returns (N, K, H + 2 pad_h - 2, W + 2 pad_w - 2) in the input
    dtype.
    """
    if _pair(stride, "stride") != (1, 1) or _pair(dilation, "dilation") != (1, 1):
        raise ValueError(
            f"winograd_conv2d supports stride 1 and dilation 1 only, got stride={stride!r}, "
            f"dilation={dilation!r}"
        )
    if isinstance(padding, str):
        if padding not in ("same", "valid"):
            raise ValueError(f"padding must be 'same', 'valid' or ints, got {padding!r}")
        padding = 1 if padding == "same" else 0
    pad_h, pad_w = _pair(padding, "padding")
    if pad_h < 0 or pad_w < 0:
        raise ValueError(f"padding must be >= 0, got {padding!r}")
    _check(input, weight, bias, tile)
    n, c, h, w = input.shape
    k = weight.shape[0]
    ho, wo = h + 2 * pad_h - 2, w + 2 * pad_w - 2
    if ho < 1 or wo < 1:
        raise ValueError(f"input {h}x{w} with padding {padding!r} is smaller than the 3x3 filter")

    channels_last = not input.is_contiguous() and input.is_contiguous(
        memory_format=torch.channels_last
    )
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    out = torch.empty((n, k, ho, wo), dtype=input.dtype, device=input.device, memory_format=fmt)
    if out.numel() == 0:
        return out

    m, al = tile, tile + R - 1
    # U = G g G^T for all (k, c), as (alpha^2, C, K): row-major in K for coalesced tile loads,
    # in the GEMM operand dtype: fp16 for fp16 F(2x2), fp32 otherwise. F(4x4)'s B^T has row sums
    # up to 10, so V = B^T d B reaches 100x the input: an fp16 input of magnitude ~655 would
    # overflow fp16 V, so fp16 F(4x4) multiplies fp32 V and U as TF32, like bf16. (F(2x2):
    # row sums <= 2, V <= 4x the input.)
    if transformed is None:
        u = winograd_filter(weight, tile, input.dtype)
    else:
        want = (al * al, c, k)
        if (
            tuple(transformed.shape) != want
            or transformed.dtype != _operand_dtype(input.dtype, m)
            or transformed.device != input.device
        ):
            raise ValueError(
                f"transformed must be winograd_filter(weight, {tile}, {input.dtype}): shape "
                f"{want}, dtype {_operand_dtype(input.dtype, m)}, on {input.device}; got "
                f"{tuple(transformed.shape)}, {transformed.dtype}, on {transformed.device}"
            )
        u = transformed

    tiles_h, tiles_w = triton.cdiv(ho, m), triton.cdiv(wo, m)
    t = n * tiles_h * tiles_w
    block_t, block_c, block_k, num_warps = _blocks(m, k)
    assert_arange(block_t, block_c, block_k)
    assert_dot(block_t, block_k, block_c)
    grid = (triton.cdiv(t, block_t), triton.cdiv(k, block_k))
    with on_device(input):
        _kernel(m)[grid](
            input, u, bias if bias is not None else u, out,
            t, c, k, h, w, ho, wo, tiles_w, tiles_h * tiles_w, pad_h, pad_w,
            *input.stride(), *u.stride(), *out.stride(),
            HAS_BIAS=bias is not None,
            # ieee: exact products for fp32; bf16 (and fp16 F(4x4)) inputs run fp32 operands as
            # TF32 (module docstring); for fp16 operands the setting has no effect.
            DOT_PRECISION="ieee" if input.dtype == torch.float32 else "tf32",
            BLOCK_T=block_t, BLOCK_C=block_c, BLOCK_K=block_k,
            num_warps=num_warps, num_stages=2,
        )  # fmt: skip
    return out


def _operand_dtype(dtype: torch.dtype, m: int) -> torch.dtype:
    """The dtype of the GEMM operands V and U for inputs of `dtype` (module docstring)."""
    return torch.float16 if dtype == torch.float16 and m == 2 else torch.float32


def winograd_filter(weight: Tensor, tile: int = 2, dtype: torch.dtype | None = None) -> Tensor:
    """U = G g G^T of a (K, C, 3, 3) weight for F(tile x tile, 3 x 3), as (alpha^2, C, K) in the
    GEMM operand dtype for inputs of `dtype` (default: the weight's): fp16 for fp16 F(2x2),
    fp32 otherwise. Computed in float64 and rounded once."""
    if tile not in TILES:
        raise ValueError(f"tile must be 2 (F(2x2,3x3)) or 4 (F(4x4,3x3)), got {tile!r}")
    if weight.dim() != 4 or tuple(weight.shape[2:]) != (R, R):
        raise ValueError(f"weight must be (K, C, 3, 3), got {tuple(weight.shape)}")
    k, c = weight.shape[:2]
    al = tile + R - 1
    g = _g_on(tile, weight.device)  # cached per device: a host-to-GPU copy would stall each call
    with torch.no_grad():  # the kernel has no backward, so no graph for this either
        u = torch.einsum("ai,kcij,bj->abck", g, weight.double(), g).reshape(al * al, c, k)
        return u.to(_operand_dtype(dtype or weight.dtype, tile)).contiguous()


@functools.cache
def _g_on(m: int, device: torch.device) -> Tensor:
    """G of F(m x m, 3 x 3), float64, on `device`."""
    return _matrices(m)[1].to(device)


@functools.cache
def _matrices(m: int) -> tuple[Tensor, Tensor, Tensor]:
    return winograd_matrices(m, R)
