"""A Loader over images held in memory: the whole dataset is one tensor, a batch is one gather.

Small datasets (digits, synthetic, CIFAR, MNIST) are faster this way than through a torch
DataLoader: no per-sample Python, no worker processes, and augmentation on whole batches.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Optional

import torch
from torch import Tensor

from sparsify.config import DataConfig
from sparsify.data.base import DataBundle
from sparsify.data.sampling import batches_per_epoch, epoch_order, stratified_split
from sparsify.data.transforms import BatchAugment, Normalize, Stats
from sparsify.seeding import AUGMENT_STREAM, seeded_generator


class TensorLoader:
    """Batches of (x, y) from in-memory images (the `Loader` protocol of sparsify.data.base).

    images: (N, C, H, W), uint8 in 0..255 or float in [0, 1]; labels: int64 of shape (N,).
    A training loader (`shuffle=True`) visits the samples in an order fixed by (seed, epoch) and
    augments batch k with draws fixed by (seed, epoch, k), so `batches(epoch, start=k)` yields
    exactly the batches k, k+1, ... of `batches(epoch)`. An evaluation loader (`shuffle=False`,
    `augment=None`) yields the samples in stored order, unchanged. The last batch may be smaller
    than `batch_size`; no sample is dropped, except a lone last sample of a training epoch (see
    `batches_per_epoch`).
    """

    def __init__(
        self,
        images: Tensor,
        labels: Tensor,
        batch_size: int,
        stats: Stats,
        *,
        shuffle: bool = False,
        augment: Optional[BatchAugment] = None,
        seed: int = 0,
    ) -> None:
        assert images.ndim == 4 and labels.shape == (images.shape[0],), (images.shape, labels.shape)
        assert labels.dtype == torch.int64 and batch_size >= 1
        assert images.shape[1] == len(stats.mean), "one mean / std per channel"
        self.images = images.contiguous()
        self.labels = labels
        self.batch_size = batch_size
        self.num_samples = images.shape[0]
        self.shuffle = shuffle
        self.augment = augment
        self.seed = seed
        self.normalize = Normalize(stats)

    def __len__(self) -> int:
        return batches_per_epoch(self.num_samples, self.batch_size, training=self.shuffle)

    def batches(self, epoch: int = 0, start: int = 0) -> Iterator[tuple[Tensor, Tensor]]:
        """Yield (x, y) for batches start, start+1, ... of `epoch`.

        x: float32 (B, C, H, W), normalised; y: int64 (B,); B = batch_size except maybe last.
        """
        assert start >= 0, start
        order = epoch_order(self.num_samples, self.seed, epoch) if self.shuffle else None
        for k in range(start, len(self)):
            lo = k * self.batch_size
            hi = min(lo + self.batch_size, self.num_samples)
            if order is None:
                x, y = self.images[lo:hi], self.labels[lo:hi]
            else:
                idx = order[lo:hi]
                x, y = self.images[idx], self.labels[idx]
            if self.augment is not None:
                x = self.augment(x, seeded_generator(AUGMENT_STREAM, self.seed, epoch, k))
            yield self.normalize(x), y


def tensor_bundle(
    name: str,
    train: tuple[Tensor, Tensor],
    test: tuple[Tensor, Tensor],
    cfg: DataConfig,
    batch_size: int,
    eval_batch_size: int,
    seed: int,
    *,
    stats: Stats,
    augment: Optional[BatchAugment],
    num_classes: int,
) -> DataBundle:
    """The DataBundle of an in-memory dataset given its (images, labels) train and test sets.

    The validation split is a stratified `cfg.val_fraction` of `train`, fixed by
    `cfg.split_seed`; None when val_fraction is 0. Only the training loader shuffles and augments
    (with `augment`, and only when `cfg.augment`).
    """
    images, labels = train
    kept, held = stratified_split(labels, cfg.val_fraction, cfg.split_seed, f"data={name}")
    val = None
    if held.numel() > 0:
        val = TensorLoader(images[held], labels[held], eval_batch_size, stats)
    return DataBundle(
        name=name,
        train=TensorLoader(
            images[kept],
            labels[kept],
            batch_size,
            stats,
            shuffle=True,
            augment=augment if cfg.augment else None,
            seed=seed,
        ),
        val=val,
        test=TensorLoader(test[0], test[1], eval_batch_size, stats),
        num_classes=num_classes,
        in_channels=images.shape[1],
        image_size=images.shape[-1],
        stats=stats,
    )
