"""`synthetic`: a generated, learnable dataset for tests and smoke runs (no files, instant).

Every class has a smooth random prototype image; a sample is its class prototype plus Gaussian
pixel noise, clipped to [0, 1]. A small model learns it to high accuracy in a few epochs.
"""

from __future__ import annotations

import torch

from sparsify.config import DataConfig
from sparsify.data.base import DATASETS, DataBundle
from sparsify.data.sampling import stratified_split
from sparsify.data.tensor_loader import tensor_bundle
from sparsify.data.transforms import Stats, resize_images
from sparsify.errors import UserError
from sparsify.seeding import SYNTHETIC_STREAM, seeded_generator

DEFAULT_SIZE = 8
TEST_FRACTION = 0.2
NOISE_STD = 0.25  # pixel noise, in [0, 1] intensity units
PATTERN_CELLS = 4  # prototypes are random on a 4x4 grid, upsampled: smooth, so convs can see them


@DATASETS.register("synthetic")
def build_synthetic(
    cfg: DataConfig, batch_size: int, eval_batch_size: int, seed: int
) -> DataBundle:
    """`cfg.num_samples` float images (N, cfg.channels, S, S) in [0, 1], S = cfg.image_size or 8,
    labels balanced over `cfg.num_classes`; all fixed by `cfg.split_seed`.

    Split like digits: a stratified 20 % test set, then `val_fraction` of the rest as validation.
    Normalised with the generated images' own per-channel mean and std. No augmentation: shifting
    or flipping a random prototype would blur the classes rather than teach an invariance.
    """
    for key, value, low in (
        ("num_samples", cfg.num_samples, 1),
        ("num_classes", cfg.num_classes, 2),
        ("channels", cfg.channels, 1),
    ):
        if value < low:
            raise UserError(f"data.{key}={value} is too small for data=synthetic; use >= {low}")
    size = cfg.image_size or DEFAULT_SIZE
    gen = seeded_generator(SYNTHETIC_STREAM, cfg.split_seed)
    cells = min(PATTERN_CELLS, size)
    coarse = torch.rand(cfg.num_classes, cfg.channels, cells, cells, generator=gen)
    prototypes = resize_images(coarse, size)
    labels = torch.arange(cfg.num_samples) % cfg.num_classes
    labels = labels[torch.randperm(cfg.num_samples, generator=gen)]
    noise = torch.randn(cfg.num_samples, cfg.channels, size, size, generator=gen)
    images = (prototypes[labels] + NOISE_STD * noise).clamp_(0.0, 1.0)
    std, mean = torch.std_mean(images, dim=(0, 2, 3), correction=0)
    stats = Stats(tuple(mean.tolist()), tuple(std.clamp_min(1e-6).tolist()))
    rest, test = stratified_split(labels, TEST_FRACTION, cfg.split_seed, "data=synthetic")
    return tensor_bundle(
        "synthetic",
        (images[rest], labels[rest]),
        (images[test], labels[test]),
        cfg,
        batch_size,
        eval_batch_size,
        seed,
        stats=stats,
        augment=None,
        num_classes=cfg.num_classes,
    )
