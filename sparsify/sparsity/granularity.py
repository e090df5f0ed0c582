"""What is pruned together: single weights, B×B blocks, N of every M weights, or whole channels.

Every weight is seen as the 2-D matrix (K, rest) the GPU kernels multiply with: row k is output
channel k, the columns are the flattened input channels × kernel positions (reshape(K, -1); conv1d,
conv2d, conv3d and linear alike). Groups are defined on that matrix:

- `unstructured`: every weight is its own group.
- `block`: the matrix is tiled into B×B blocks from the top-left corner; tiles at the bottom and
  right edges are smaller when K or rest is not a multiple of B. A block's score is the root mean
  square of the scores inside it, sqrt(sum(score²) / size), its size the number of weights it
  covers.
- `channel`: one group per row (output channel); its score is the mean |score| of the row (L1
  norm / rest; `channel_norm=l1`) or the root mean square (L2 norm / √rest; `l2`, the order of
  torch's `ln_structured(n=2, dim=0)` within a layer), and its size is `rest`.

Scores are per-weight averages so that global allocation compares groups of different sizes on
one scale, as unstructured pruning compares weights: raw norms grow with group size, and with
them a layer with many inputs per channel would keep all its channels while a small layer (the
output layer, say) lost all of its.
- `nm`: in every run of M consecutive columns of a row keep the N highest scores (N:M sparsity,
  e.g. 2:4). If rest is not a multiple of M, the last run of r < M columns keeps ceil(N·r/M)
  weights: padded with zeros to M it still has at most N nonzeros, as the kernels require.

A block or channel is alive only if every weight in it is alive in the incoming mask, so the
pruned mask is always made of whole groups and a group, once pruned, never revives. A mask that
is not group-structured (e.g. from unstructured pruning) therefore loses every group touching a
pruned weight. N:M keeps the N best live weights per run and never revives a weight.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from sparsify.errors import UserError

GRANULARITIES = ("unstructured", "block", "nm", "channel")
CHANNEL_NORMS = ("l1", "l2")


def check_granularity(granularity: str, block: int, n: int, m: int) -> None:
    """UserError unless `granularity` is known, block ≥ 1 and 1 ≤ n < m (all plain ints)."""
    if granularity not in GRANULARITIES:
        raise UserError(
            f"prune.granularity={granularity!r} is unknown; valid: {', '.join(GRANULARITIES)}"
        )
    ints = {"block": block, "n": n, "m": m}
    for key, value in ints.items():
        if not isinstance(value, int) or isinstance(value, bool):
            raise UserError(f"prune.{key}={value!r} must be an integer")
    if block < 1:
        raise UserError(f"prune.block={block} must be a block side of at least 1 weight, e.g. 32")
    if not 1 <= n < m:
        raise UserError(f"prune.n={n}, prune.m={m}: N:M sparsity needs 1 <= n < m, e.g. 2:4")


def as_matrix(t: Tensor) -> Tensor:
    """The (K, rest) GEMM view of a weight (or of its scores or mask)."""
    assert t.dim() >= 2, f"a prunable weight has at least 2 dimensions, got {tuple(t.shape)}"
    return t.reshape(t.shape[0], -1)


def block_groups(scores: Tensor, mask: Tensor, b: int) -> tuple[Tensor, Tensor]:
    """(scores, sizes) of the B×B blocks of one weight, flat in row-major block order.

    Scores are float32 RMS of the scores, -inf for blocks holding any pruned weight; sizes are int64
    weight counts (b² inside, fewer at the edges). Padding with zeros leaves norms unchanged and
    padding the mask with True leaves aliveness unchanged.
    """
    s, alive = as_matrix(scores).float(), as_matrix(mask)
    k, c = s.shape
    kb, cb = -(-k // b), -(-c // b)
    pad = (0, cb * b - c, 0, kb * b - k)
    sq = F.pad(s * s, pad).view(kb, b, cb, b)
    rows = torch.full((kb,), b, dtype=torch.int64)
    cols = torch.full((cb,), b, dtype=torch.int64)
    rows[-1], cols[-1] = k - (kb - 1) * b, c - (cb - 1) * b
    sizes = torch.outer(rows, cols)
    norms = (sq.sum(dim=(1, 3)) / sizes).sqrt_()  # RMS over the block's real weights
    if not bool(alive.all()):
        whole = F.pad(alive, pad, value=True).view(kb, b, cb, b).all(dim=(1, 3))
        norms.masked_fill_(~whole, float("-inf"))
    return norms.reshape(-1), sizes.reshape(-1)


def expand_blocks(keep: Tensor, shape: torch.Size, b: int) -> Tensor:
    """Bool mask of `shape` from a flat keep/prune decision per B×B block (row-major)."""
    k = shape[0]
    c = shape.numel() // k
    kb, cb = -(-k // b), -(-c // b)
    tiles = keep.view(kb, 1, cb, 1).expand(kb, b, cb, b).reshape(kb * b, cb * b)
    return tiles[:k, :c].reshape(shape)


def channel_groups(scores: Tensor, mask: Tensor, norm: str = "l1") -> tuple[Tensor, Tensor]:
    """(scores, sizes) of the output channels of one weight: mean |score| (`l1`) or root mean
    square (`l2`), float32, -inf for a channel holding any pruned weight; and int64 weight counts
    per channel."""
    assert norm in CHANNEL_NORMS, norm
    s, alive = as_matrix(scores).float(), as_matrix(mask)
    norms = s.abs().mean(dim=1) if norm == "l1" else s.square().mean(dim=1).sqrt_()
    norms.masked_fill_(~alive.all(dim=1), float("-inf"))
    return norms, torch.full_like(norms, s.shape[1], dtype=torch.int64)


def expand_channels(keep: Tensor, shape: torch.Size) -> Tensor:
    """Bool mask of `shape` from a keep/prune decision per output channel."""
    k = shape[0]
    return keep.view(k, 1).expand(k, shape.numel() // k).reshape(shape)


def _keep_top_per_row(x: Tensor, k: int) -> Tensor:
    """Bool mask of x's shape (rows, width) keeping the k highest of each row; ties go to later
    columns (a stable ascending sort puts them last)."""
    keep = torch.zeros_like(x, dtype=torch.bool)
    if k > 0:
        order = torch.sort(x, dim=1, stable=True).indices
        keep.scatter_(1, order[:, x.shape[1] - k :], True)
    return keep


def nm_mask(scores: Tensor, mask: Tensor, n: int, m: int) -> Tensor:
    """Bool mask of the weight's shape keeping the n highest live scores in every run of m
    consecutive columns of each row (ceil(n·r/m) in a tail run of r < m columns)."""
    assert 1 <= n < m, (n, m)
    s = as_matrix(scores).float().masked_fill(~as_matrix(mask), float("-inf"))
    k, c = s.shape
    full = c - c % m
    keep = torch.empty_like(s, dtype=torch.bool)
    if full:
        runs = s[:, :full].reshape(-1, m)
        keep[:, :full] = _keep_top_per_row(runs, n).view(k, full)
    if full < c:
        r = c - full
        keep[:, full:] = _keep_top_per_row(s[:, full:], -(-n * r // m))
    # a run with fewer than n live weights keeps only those: never revive
    return (keep & as_matrix(mask)).reshape(mask.shape)
