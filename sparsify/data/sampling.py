"""Seeded index selection: which samples form a split, and in which order an epoch visits them.

Every random choice in the data package comes from a generator of sparsify/seeding.py, seeded by a
tuple of integers (a stream tag, the seed, the epoch, ...), never from global RNG state.
"""

from __future__ import annotations

import torch
from torch import Tensor

from sparsify.errors import UserError
from sparsify.seeding import ORDER_STREAM, SPLIT_STREAM, seeded_generator


def epoch_order(n: int, seed: int, epoch: int) -> Tensor:
    """The permutation (int64, shape (n,)) in which a training epoch visits n samples."""
    return torch.randperm(n, generator=seeded_generator(ORDER_STREAM, seed, epoch))


def stratified_split(
    labels: Tensor, fraction: float, seed: int, what: str
) -> tuple[Tensor, Tensor]:
    """Hold out `fraction` of the samples, in proportion within every class.

    labels: int64 of shape (n,), class indices >= 0. Returns (kept, held): sorted int64 index
    tensors that partition range(n), with len(held) = round(fraction * n) (at least 1 when
    fraction > 0). The choice depends only on (labels, fraction, seed). `what` names the data in
    the error raised when n is too small to leave samples on both sides.
    """
    n = labels.numel()
    if fraction == 0:
        return torch.arange(n), torch.empty(0, dtype=torch.long)
    assert 0 < fraction < 1, fraction
    k = max(1, round(fraction * n))
    if k >= n:
        raise UserError(
            f"{what}: holding out {fraction:g} of {n} samples leaves none to train on; "
            "use more samples or a smaller fraction"
        )
    # n is part of the key so that two successive splits of one dataset with one split_seed (test,
    # then val from the rest) draw from different streams.
    perm = torch.randperm(n, generator=seeded_generator(SPLIT_STREAM, seed, n))
    shuffled = labels[perm]
    # Rank of every sample within its class (in shuffled order), scaled to [0, 1): taking the k
    # smallest scaled ranks takes about the same share of every class, and the tie-break between
    # classes of equal size follows the shuffle, so it is random too.
    by_class = torch.argsort(shuffled, stable=True)
    counts = torch.bincount(shuffled)
    starts = torch.cumsum(counts, 0) - counts
    rank = torch.empty(n, dtype=torch.long)
    rank[by_class] = torch.arange(n) - starts[shuffled[by_class]]
    key = (rank.double() + 0.5) / counts[shuffled].double()
    held_mask = torch.zeros(n, dtype=torch.bool)
    held_mask[perm[torch.argsort(key, stable=True)[:k]]] = True
    return torch.nonzero(~held_mask).flatten(), torch.nonzero(held_mask).flatten()


def batches_per_epoch(num_samples: int, batch_size: int, training: bool) -> int:
    """Batches in one epoch: every sample is used, except that a training epoch drops a final
    batch of a single sample, on which BatchNorm cannot compute batch statistics (it raises for
    1x1 feature maps). Training orders are reshuffled every epoch, so no sample is always left out.
    """
    n = -(-num_samples // batch_size)
    if training and n > 1 and num_samples % batch_size == 1:
        n -= 1
    return n
