"""`sparse_conv2d`: F.conv2d with a packed sparse weight, as an implicit GEMM on Triton kernels.

Output pixels (N·P·Q) × output channels K, reduced over C·R·S in PyTorch's (c, r, s) order; the
kernels (kernels/_sparse_gemm.py) gather input patches straight from the input through its
strides, so NCHW, channels-last and strided views all work without a copy. The output follows
the input's memory format (channels-last in, channels-last out; anything else gives contiguous
NCHW), as torch's own conv does for these two formats.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ._rules import check_device
from ._sparse_gemm import Geometry, bias_key, check_operands, plan, remember, run
from .pack import PackedWeight

IntPair = int | tuple[int, int]


def _pair(value: IntPair, name: str, least: int) -> tuple[int, int]:
    """(a, b) from an int or a 2-sequence of ints, each >= least; ValueError otherwise."""
    pair = (value, value) if isinstance(value, int) else tuple(value)
    if len(pair) != 2 or any(isinstance(v, bool) or not isinstance(v, int) for v in pair):
        raise ValueError(f"sparse_conv2d: {name}={value!r} must be an int or a pair of ints")
    if min(pair) < least:
        raise ValueError(f"sparse_conv2d: {name}={value!r} must be >= {least}")
    return pair  # type: ignore[return-value]


def sparse_conv2d(
    input: Tensor,
    packed: PackedWeight,
    bias: Tensor | None = None,
    stride: IntPair = 1,
    padding: IntPair = 0,
    dilation: IntPair = 1,
) -> Tensor:
    """F.conv2d(input, packed.to_dense(), bias, stride, padding, dilation), groups=1.

    input: (N, C, H, W) in any memory format; packed: from pack() of a (K, C, R, S) weight;
    bias: (K,) or None; stride, dilation >= 1 and padding >= 0 (zeros), int or (h, w) pair.
    Returns (N, K, P, Q), P = (H + 2·pad_h − dil_h·(R−1) − 1) // stride_h + 1 (Q alike), in
    input's dtype (fp32 accumulation), channels-last if input is, else contiguous NCHW.
    """
    try:  # the signature of this call; a repeat finds its validated plan in the packed weight
        key = (input.shape, input.stride(), input.dtype, input.device, bias_key(bias),
               stride, padding, dilation)  # fmt: skip
        cached = packed.plans.get(key)
    except (AttributeError, TypeError):  # not tensors, or unhashable arguments: no fast path
        key, cached = None, None
    if cached is not None:
        check_device(input)  # depends on the environment (TRITON_INTERPRET), not the signature
        shape, fmt, p = cached
        out = torch.empty(shape, dtype=input.dtype, device=input.device, memory_format=fmt)
        run(p, input, out, packed, bias)
        return out
    check_operands(input, packed, bias, "sparse_conv2d")
    if len(packed.shape) != 4:
        raise ValueError(
            f"sparse_conv2d needs a packed conv2d weight (K, C, R, S), got {packed.shape}: "
            f"use sparse_linear for a linear weight"
        )
    k, c, r, s = packed.shape
    if input.dim() != 4 or input.shape[1] != c:
        raise ValueError(f"sparse_conv2d: input {tuple(input.shape)} must be (N, C={c}, H, W)")
    st, pad = _pair(stride, "stride", 1), _pair(padding, "padding", 0)
    dil = _pair(dilation, "dilation", 1)
    n, _, h, w = input.shape
    p = (h + 2 * pad[0] - dil[0] * (r - 1) - 1) // st[0] + 1
    q = (w + 2 * pad[1] - dil[1] * (s - 1) - 1) // st[1] + 1
    if p < 1 or q < 1:
        raise ValueError(
            f"sparse_conv2d: input {h}x{w} with padding {pad} is smaller than the dilated "
            f"{r}x{s} kernel (dilation {dil}): no output pixel"
        )
    channels_last = input.is_contiguous(memory_format=torch.channels_last) and not (
        input.is_contiguous()
    )
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    out = torch.empty(n, k, p, q, dtype=input.dtype, device=input.device, memory_format=fmt)
    g = Geometry(n=n, h=h, w=w, p=p, q=q, r=r, s=s, stride=st, padding=pad, dilation=dil)
    planned = plan(tuple(input.stride()), tuple(out.stride()), input.element_size(), packed,
                   bias is not None, g)  # fmt: skip
    if key is not None:
        remember(packed, key, ((n, k, p, q), fmt, planned))
    run(planned, input, out, packed, bias)
    return out
