"""What every dataset hands to the rest of sparsify: loaders for train / val / test and the shape
facts models are built from. Datasets register a builder in `DATASETS`."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Optional, Protocol

from torch import Tensor

from sparsify.config import DataConfig
from sparsify.data.transforms import Stats
from sparsify.registry import Registry


class Loader(Protocol):
    """Batches of one split.

    `batches(epoch, start)` yields `(x, y)`: x float32 of shape (B, C, H, W), normalised, on the
    CPU; y int64 of shape (B,). The training split is shuffled and augmented with an order and
    random draws fixed by (seed, epoch, batch index), so a run resumed at batch `start` sees
    exactly the batches an uninterrupted run would; evaluation splits are neither.
    """

    batch_size: int
    num_samples: int

    def __len__(self) -> int:  # batches per epoch
        ...

    def batches(self, epoch: int = 0, start: int = 0) -> Iterator[tuple[Tensor, Tensor]]: ...


@dataclass
class DataBundle:
    name: str
    train: Loader
    val: Optional[Loader]  # None when data.val_fraction == 0
    test: Loader
    num_classes: int
    in_channels: int
    image_size: int  # pixels per side of the images the model sees
    stats: Stats  # the normalisation: pixels = x * std + mean (corruptions work on pixels)


# builder(cfg, batch_size, eval_batch_size, seed) -> DataBundle
DatasetBuilder = Callable[[DataConfig, int, int, int], DataBundle]
DATASETS: Registry[DatasetBuilder] = Registry("dataset")
