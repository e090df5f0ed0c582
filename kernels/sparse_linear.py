"""`sparse_linear`: F.linear with a packed sparse weight, on Triton kernels.

A linear layer is the conv GEMM with a 1×1 image and a 1×1 kernel, so it runs the same kernels
as `sparse_conv2d` (kernels/_sparse_gemm.py): every row of the input is one "pixel".
"""

from __future__ import annotations

import torch
from torch import Tensor

from ._rules import check_device
from ._sparse_gemm import Geometry, bias_key, check_operands, plan, remember, run
from .pack import PackedWeight


def sparse_linear(input: Tensor, packed: PackedWeight, bias: Tensor | None = None) -> Tensor:
    """F.linear(input, packed.to_dense(), bias) without touching the skipped weights.

    input: (..., C), any leading dims and strides; packed: from pack() of a (K, C) weight;
    bias: (K,) or None. Returns (..., K) in input's dtype (fp32 accumulation), contiguous.
    """
    try:  # the signature of this call; a repeat finds its validated plan in the packed weight
        key = (input.shape, input.stride(), input.dtype, input.device, bias_key(bias))
        cached = packed.plans.get(key)
    except (AttributeError, TypeError):  # not tensors: the checks below say what is wrong
        key, cached = None, None
    if cached is not None:
        check_device(input)  # depends on the environment (TRITON_INTERPRET), not the signature
        rows_n, p = cached
        rows = input.reshape(rows_n, packed.cols)
        out = torch.empty(rows_n, packed.rows, dtype=input.dtype, device=input.device)
        run(p, rows, out, packed, bias)
        return out.view(*input.shape[:-1], packed.rows)
    check_operands(input, packed, bias, "sparse_linear")
    if len(packed.shape) != 2:
        raise ValueError(
            f"sparse_linear needs a packed linear weight (K, C), got {packed.shape}: "
            f"use sparse_conv2d for a conv weight"
        )
    k, c = packed.shape
    if input.dim() < 1 or input.shape[-1] != c:
        raise ValueError(f"sparse_linear: input {tuple(input.shape)} must end in C={c}")
    rows = input.reshape(-1, c)  # a view when the leading dims allow it; strides go to the kernel
    out = torch.empty(rows.shape[0], k, dtype=input.dtype, device=input.device)
    g = Geometry(n=rows.shape[0], h=1, w=1, p=1, q=1, r=1, s=1)
    x_strides = (rows.stride(0), rows.stride(1), 0, 0)
    out_strides = (out.stride(0), out.stride(1), 0, 0)
    planned = plan(x_strides, out_strides, input.element_size(), packed, bias is not None, g)
    if key is not None:
        remember(packed, key, (rows.shape[0], planned))
    run(planned, rows, out, packed, bias)
    return out.view(*input.shape[:-1], k)
