"""Datasets: every module below registers its builders in `DATASETS`; `build_data` picks one.

digits (embedded default), synthetic, cifar10, cifar100, mnist, fashion_mnist, imagenet, folder.
"""

from __future__ import annotations

from sparsify.config import DataConfig
from sparsify.data import digits, folder, synthetic, torchvision_sets  # noqa: F401 (registration)
from sparsify.data.base import DATASETS, DataBundle, Loader
from sparsify.errors import UserError

__all__ = ["DATASETS", "DataBundle", "Loader", "build_data"]


def build_data(cfg: DataConfig, batch_size: int, eval_batch_size: int, seed: int) -> DataBundle:
    """Load dataset `cfg.name` and wrap its splits in loaders.

    batch_size is the training batch, eval_batch_size that of val and test; seed fixes the
    training order and augmentation (cfg.split_seed fixes the splits). Raises UserError for an
    unknown name, out-of-range values or missing files, before any heavy work.
    """
    builder = DATASETS.get(cfg.name)
    if not 0 <= cfg.val_fraction < 1:
        raise UserError(f"data.val_fraction={cfg.val_fraction} is out of range; use [0, 1)")
    if cfg.image_size is not None and cfg.image_size < 1:
        raise UserError(f"data.image_size={cfg.image_size} must be a positive number of pixels")
    if cfg.num_workers < 0:
        raise UserError(f"data.num_workers={cfg.num_workers} must be >= 0")
    for key, value in (("train.batch_size", batch_size), ("eval.batch_size", eval_batch_size)):
        if value < 1:
            raise UserError(f"{key}={value} must be >= 1")
    return builder(cfg, batch_size, eval_batch_size, seed)
