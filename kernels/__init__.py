"""sparsify.kernels: Triton kernels that run pruned models (docs/kernels.md).

- `winograd_conv2d`: 3×3 stride-1 convolution by Winograd minimal filtering, F(2×2,3×3) and
  F(4×4,3×3);
- `pack` → `PackedWeight`, then `sparse_linear` / `sparse_conv2d`: block-sparse (bsr, tensor
  cores on the blocks that remain) and unstructured (csr) weights;
- `convert(model)`: the model with its eligible layers on these kernels.

Each function keeps the calling convention of its torch counterpart and returns its result within
documented tolerances. They run on CUDA GPUs and, for tests, on the CPU through Triton's
interpreter (TRITON_INTERPRET=1, set before triton is imported).

This folder installs as `sparsify.kernels` (never as a top-level `kernels`, which is another PyPI
package).
"""

from .convert import KernelLayer, convert, kept_on_torch, kernel_layers
from .pack import PackedWeight, pack
from .sparse_conv import sparse_conv2d
from .sparse_linear import sparse_linear
from .winograd import winograd_conv2d, winograd_filter

__all__ = [
    "KernelLayer",
    "PackedWeight",
    "convert",
    "kept_on_torch",
    "kernel_layers",
    "pack",
    "sparse_conv2d",
    "sparse_linear",
    "winograd_conv2d",
    "winograd_filter",
]
