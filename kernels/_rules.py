"""Rules every kernel launch obeys, checked on the host before the launch.

Triton's interpreter (TRITON_INTERPRET=1, how the tests run on CPU) accepts shapes and dtypes that
a GPU compiler rejects, so the rules a GPU enforces are asserted here, in every environment: a
kernel that passes its CPU tests then also compiles on the GPU.

- `tl.dot` needs each of M, N, K to be at least 16 and a power of two (tensor-core tiles);
- every `tl.arange` extent is a power of two;
- inputs are fp32, fp16 or bf16; accumulation is fp32 and the output has the input's dtype.
"""

from __future__ import annotations

import contextlib

import torch
from torch import Tensor

DTYPES = (torch.float32, torch.float16, torch.bfloat16)


def is_pow2(n: int) -> bool:
    return n >= 1 and n & (n - 1) == 0


def assert_arange(*extents: int) -> None:
    """Every tl.arange extent must be a power of two."""
    for e in extents:
        assert is_pow2(e), f"tl.arange extent {e} is not a power of two (the GPU rejects it)"


def assert_dot(m: int, n: int, k: int) -> None:
    """A tl.dot of (m, k) @ (k, n) tiles compiles on a GPU only with m, n, k >= 16, powers of 2."""
    for name, v in (("M", m), ("N", n), ("K", k)):
        assert v >= 16 and is_pow2(v), f"tl.dot {name}={v}: the GPU needs a power of two >= 16"


def check_dtype(*tensors: Tensor | None) -> torch.dtype:
    """The common floating dtype of the tensors given (None skipped); ValueError if unsupported."""
    present = [t for t in tensors if t is not None]
    dtypes = {t.dtype for t in present}
    if len(dtypes) != 1:
        raise ValueError(f"tensors must share one dtype, got {sorted(map(str, dtypes))}")
    (dtype,) = dtypes
    if dtype not in DTYPES:
        raise ValueError(f"dtype {dtype} is not supported; valid: float32, float16, bfloat16")
    devices = {t.device for t in present}
    if len(devices) != 1:
        raise ValueError(f"tensors must be on one device, got {sorted(map(str, devices))}")
    return dtype


def interpreting() -> bool:
    """True when Triton runs kernels on the CPU through its interpreter (TRITON_INTERPRET=1)."""
    import os

    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


def check_device(t: Tensor) -> None:
    """Kernels run on CUDA tensors, or on CPU tensors under the interpreter; ValueError otherwise."""
    if t.is_cuda:
        return
    if t.device.type == "cpu" and interpreting():
        return
    raise ValueError(
        f"sparsify.kernels run on CUDA tensors (or on CPU with TRITON_INTERPRET=1 set before "
        f"triton is imported); got a {t.device.type} tensor"
    )


def on_device(t: Tensor) -> contextlib.AbstractContextManager:
    """Launch on `t`'s GPU: Triton launches on the current CUDA device, which need not be the
    tensor's (device=cuda:1). Entering torch.cuda.device costs microseconds a call, so the
    usual case, the tensor on the current device, skips it."""
    if not t.is_cuda or t.get_device() == torch.cuda.current_device():
        return _NO_CONTEXT
    return torch.cuda.device(t.device)


_NO_CONTEXT = contextlib.nullcontext()  # reusable: nullcontext keeps no state
