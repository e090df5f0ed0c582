"""`digits`: scikit-learn's bundled handwritten digits, the embedded default dataset.

1,797 grayscale 8x8 images (pixel values 0..16), 10 classes, shipped inside scikit-learn, so it
needs no download. There is no official split: a stratified 20 % is the test set and a stratified
`val_fraction` of the rest the validation set, both fixed by `split_seed`.
"""

from __future__ import annotations

import torch
from sklearn.datasets import load_digits

from sparsify.config import DataConfig
from sparsify.data.base import DATASETS, DataBundle
from sparsify.data.sampling import stratified_split
from sparsify.data.tensor_loader import tensor_bundle
from sparsify.data.transforms import DIGITS_STATS, resize_images

TEST_FRACTION = 0.2
NATIVE_SIZE = 8


@DATASETS.register("digits")
def build_digits(cfg: DataConfig, batch_size: int, eval_batch_size: int, seed: int) -> DataBundle:
    """Digits as float images (N, 1, S, S) in [0, 1], S = cfg.image_size or 8.

    No training augmentation (cfg.augment has no effect). Flips would change a digit's identity,
    and a random 1-pixel translation, measured over 5 seeds with a small CNN and an MLP (SGD,
    cosine schedule), did not help: about equal after 60 epochs, 1 point worse for the MLP after
    30. The digits are already centred and size-normalised, so at 8x8 a shift is a large change.
    """
    digits = load_digits()
    images = torch.from_numpy(digits.images).to(torch.float32).div_(16.0).unsqueeze(1)
    labels = torch.from_numpy(digits.target).to(torch.int64)
    size = cfg.image_size or NATIVE_SIZE
    images = resize_images(images, size)
    rest, test = stratified_split(labels, TEST_FRACTION, cfg.split_seed, "data=digits")
    return tensor_bundle(
        "digits",
        (images[rest], labels[rest]),
        (images[test], labels[test]),
        cfg,
        batch_size,
        eval_batch_size,
        seed,
        stats=DIGITS_STATS,
        augment=None,
        num_classes=10,
    )
