"""Packing a pruned weight into the compressed form the sparse kernels read.

A weight is seen as its GEMM matrix (K, C·R·S) = `weight.reshape(K, -1)`, columns in PyTorch's
native (c, r, s) order. That is the matrix block pruning (sparsify/sparsity/granularity.py) tiles
into B×B blocks from the top-left corner, so the blocks a block-pruned model zeroed are exactly
the blocks skipped here and the kernel does no work for them.

Two layouts, both CSR-shaped (row pointers + column indices + values), chosen by sparsity pattern:

- `bsr` (block sparse rows): the matrix is cut into B×B blocks, all-zero blocks are dropped and
  the rest stored densely, so each stored block is one tensor-core `tl.dot`. Edge blocks (K or
  C·R·S not a multiple of B) are padded with zeros, which multiply to nothing. Pays off when the
  zeros come in whole blocks; an unstructured mask at moderate sparsity leaves almost every
  block alive and then bsr is just a slower dense GEMM.
- `csr`: one entry per nonzero weight. No tensor cores, but the work is proportional to the
  nonzeros, which wins at the very high unstructured sparsity (~99%) where blocks do not empty.

Index tables are int32 (a weight needs < 2³¹ stored entries, checked) and stay on the weight's
device. Packing is a one-off host-side step done with torch ops, not a kernel.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor

from ._rules import check_dtype, is_pow2

LAYOUTS = ("bsr", "csr")
BLOCKS = (16, 32, 64, 128)


@dataclass(frozen=True)
class PackedWeight:
    """A sparse weight: `weight * mask` of `shape` in `layout`.

    Index tables (all int32, on `device`):
    - bsr: `crow` (KB+1,) with KB = ceil(K/B): block-row i owns stored blocks crow[i]:crow[i+1];
      `col` (nblocks,) the column-block index of each stored block (ascending within a row);
      `values` (nblocks, B, B) the blocks, values[b, i, j] = W[row·B + i, col[b]·B + j], zero
      where that lies outside the matrix.
    - csr: `crow` (K+1,), `col` (nnz,) the column of each nonzero in the GEMM matrix,
      `values` (nnz,).
    `block` is B for bsr and 1 for csr (the side of one stored tile); `nnz` counts the nonzero
    weights (not stored padding).
    """

    layout: str
    block: int
    shape: tuple[int, ...]
    dtype: torch.dtype
    crow: Tensor
    col: Tensor
    values: Tensor
    nnz: int
    # launch plans of the kernels, per input signature (kernels/_sparse_gemm.py): they depend
    # only on this weight and the input's shape and strides, so a repeated call skips the host
    # arithmetic. Not an init field: dataclasses.replace() and to() start with an empty one.
    plans: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    @property
    def device(self) -> torch.device:
        return self.values.device

    @property
    def rows(self) -> int:
        """K, the output channels (rows of the GEMM matrix)."""
        return self.shape[0]

    @property
    def cols(self) -> int:
        """C·R·S, the reduction length (columns of the GEMM matrix)."""
        return _numel(self.shape) // self.shape[0]

    @property
    def density(self) -> float:
        """Fraction of the weights that are nonzero, in [0, 1]."""
        return self.nnz / _numel(self.shape)

    @property
    def stored(self) -> int:
        """Stored entries: blocks for bsr, weights for csr (the work the kernel does)."""
        return self.col.numel()

    def to(self, device: torch.device | str) -> PackedWeight:
        """The same packed weight with its tables moved to `device`."""
        move = {f: getattr(self, f).to(device) for f in ("crow", "col", "values")}
        return dataclasses.replace(self, **move)

    def to_dense(self) -> Tensor:
        """The dense masked weight, in the original shape and dtype."""
        k, c = self.rows, self.cols
        nrows = self.crow.numel() - 1
        counts = (self.crow[1:] - self.crow[:-1]).long()
        row = torch.repeat_interleave(torch.arange(nrows, device=self.device), counts)
        col = self.col.long()
        if self.layout == "csr":
            dense = torch.zeros(k * c, dtype=self.dtype, device=self.device)
            dense[row * c + col] = self.values
            return dense.view(self.shape)
        b = self.block
        cb = -(-c // b)
        tiles = torch.zeros(nrows, cb, b, b, dtype=self.dtype, device=self.device)
        tiles[row, col] = self.values
        dense = tiles.permute(0, 2, 1, 3).reshape(nrows * b, cb * b)
        return dense[:k, :c].reshape(self.shape).contiguous()


def _numel(shape: tuple[int, ...]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def _row_pointers(counts: Tensor) -> Tensor:
    """int32 CSR row pointers (len(counts)+1,) from per-row entry counts."""
    crow = torch.zeros(counts.numel() + 1, dtype=torch.int64, device=counts.device)
    torch.cumsum(counts, dim=0, out=crow[1:])
    if int(crow[-1]) >= 2**31:
        raise ValueError(f"{int(crow[-1])} stored entries: the int32 index tables hold < 2^31")
    return crow.to(torch.int32)


def pack(
    weight: Tensor, mask: Tensor | None = None, layout: str = "bsr", block: int = 32
) -> PackedWeight:
    """Pack `weight * mask` for `sparse_linear` / `sparse_conv2d`.

    weight: linear (K, C) or conv2d (K, C, R, S), float32/float16/bfloat16.
    mask: optional bool tensor of weight's shape (True = kept); without one, the zeros of the
        weight are the sparsity. Zero weights under a True mask are skipped as well.
    layout: "bsr" (B×B blocks, tensor cores; for block-pruned weights) or "csr" (single
        nonzeros; for very high unstructured sparsity).
    block: B for bsr, one of 16, 32, 64, 128 (a tl.dot operand side); ignored for csr.
    """
    if layout not in LAYOUTS:
        raise ValueError(f"layout={layout!r} is unknown; valid: {', '.join(LAYOUTS)}")
    if layout == "bsr" and (
        not isinstance(block, int) or isinstance(block, bool) or block not in BLOCKS
    ):
        valid = ", ".join(map(str, BLOCKS))
        raise ValueError(f"block={block!r}: bsr needs a power of two >= 16, one of {valid}")
    assert layout == "csr" or is_pow2(block)
    if not isinstance(weight, Tensor) or weight.dim() not in (2, 4):
        got = tuple(weight.shape) if isinstance(weight, Tensor) else type(weight).__name__
        raise ValueError(f"weight must be linear (K, C) or conv2d (K, C, R, S), got {got}")
    if weight.numel() == 0:
        raise ValueError(f"weight {tuple(weight.shape)} is empty")
    dtype = check_dtype(weight)
    w = weight.detach()
    if mask is not None:
        if not isinstance(mask, Tensor) or mask.dtype != torch.bool:
            raise ValueError("mask must be a bool tensor (True = weight kept)")
        if mask.shape != weight.shape:
            raise ValueError(
                f"mask shape {tuple(mask.shape)} must equal weight shape {tuple(weight.shape)}"
            )
        # where, not multiply: a pruned weight that is inf or nan still becomes an exact 0
        w = torch.where(mask.to(w.device), w, torch.zeros((), dtype=dtype, device=w.device))
    mat = w.reshape(w.shape[0], -1)
    k, c = mat.shape
    nnz = int(torch.count_nonzero(mat))
    shape = tuple(weight.shape)
    if layout == "csr":
        rows, cols = mat.nonzero(as_tuple=True)  # row-major order: rows ascending
        crow = _row_pointers(torch.bincount(rows, minlength=k))
        values = mat[rows, cols].contiguous()
        return PackedWeight("csr", 1, shape, dtype, crow, cols.to(torch.int32), values, nnz)
    b = block
    kb, cb = -(-k // b), -(-c // b)
    padded = F.pad(mat, (0, cb * b - c, 0, kb * b - k))
    tiles = padded.view(kb, b, cb, b).permute(0, 2, 1, 3)  # (block-row, block-col, i, j)
    alive = (tiles != 0).any(dim=3).any(dim=2)
    rows, cols = alive.nonzero(as_tuple=True)
    crow = _row_pointers(alive.sum(dim=1))
    values = tiles[rows, cols].contiguous()
    return PackedWeight("bsr", b, shape, dtype, crow, cols.to(torch.int32), values, nnz)
