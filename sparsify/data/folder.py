"""`imagenet` and `folder`: class-per-folder image trees read through torchvision's ImageFolder.

Layout under `cfg.root` (one sub-folder per class in each split, the same classes in each):

    train/<class>/<image>   required
    val/<class>/<image>     optional
    test/<class>/<image>    optional; one of val/ and test/ must exist

Which folder serves which split:
- test: `test/` if it exists, else `val/` (ImageNet's official validation set is the set everyone
  reports, so it doubles as the test set);
- val (only when val_fraction > 0): `val/` if `test/` also exists; otherwise a stratified
  `val_fraction` of `train/`, fixed by `split_seed` and removed from training. When val_fraction
  is 0 there is no validation split.

Images are decoded and transformed per sample in a torch DataLoader (`cfg.num_workers`
processes): training with RandomResizedCrop(S) and a horizontal flip, evaluation with
Resize(S * 256 / 224) and CenterCrop(S), S = cfg.image_size or 224; ImageNet mean and std.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Optional

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms
from torchvision.datasets import ImageFolder

from sparsify.config import DataConfig
from sparsify.data.base import DATASETS, DataBundle
from sparsify.data.sampling import batches_per_epoch, epoch_order, stratified_split
from sparsify.data.transforms import IMAGENET_STATS
from sparsify.errors import UserError
from sparsify.seeding import ORDER_STREAM, SAMPLE_SEED_STREAM, seeded_generator

DEFAULT_SIZE = 224
NO_SEED = -1  # sample seed of evaluation samples: their transform draws nothing


class _Samples(Dataset):
    """Images of one folder addressed by (index, sample seed) → (float (3, S, S), label).

    A sample's random transform draws from torch's global RNG (torchvision's transforms do), so
    it runs inside fork_rng seeded with the sample's own seed: the draws are then fixed by the
    sample's position in the epoch, whichever worker process handles it, and the caller's RNG
    state is left as it was.
    """

    def __init__(self, folder: ImageFolder, transform: Callable[[Any], Tensor]) -> None:
        self.folder = folder
        self.transform = transform

    def __len__(self) -> int:
        return len(self.folder.samples)

    def __getitem__(self, item: tuple[int, int]) -> tuple[Tensor, int]:
        index, sample_seed = item
        path, label = self.folder.samples[index]
        image = self.folder.loader(path)  # PIL image converted to RGB
        if sample_seed == NO_SEED:
            return self.transform(image), label
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(sample_seed)
            return self.transform(image), label


class FolderLoader:
    """Batches of (x, y) from image files (the `Loader` protocol of sparsify.data.base).

    `indices` selects the folder's samples this split uses. With `shuffle`, epoch e visits them
    in an order fixed by (seed, e) and every sample's augmentation is fixed by (seed, e, its
    position), so `batches(e, start=k)` yields exactly batches k.. of `batches(e)`, and the first
    k batches are skipped without being read. x: float32 (B, 3, S, S); y: int64 (B,).
    """

    def __init__(
        self,
        samples: _Samples,
        indices: Tensor,
        batch_size: int,
        *,
        shuffle: bool = False,
        seed: int = 0,
        num_workers: int = 0,
    ) -> None:
        self.samples = samples
        self.indices = indices
        self.batch_size = batch_size
        self.num_samples = indices.numel()
        self.shuffle = shuffle
        self.seed = seed
        self.num_workers = num_workers

    def __len__(self) -> int:
        return batches_per_epoch(self.num_samples, self.batch_size, training=self.shuffle)

    def batches(self, epoch: int = 0, start: int = 0) -> Iterator[tuple[Tensor, Tensor]]:
        """Yield (x, y) for batches start, start+1, ... of `epoch`."""
        assert start >= 0, start
        first = start * self.batch_size
        end = min(self.num_samples, len(self) * self.batch_size)
        if self.shuffle:
            order = self.indices[epoch_order(self.num_samples, self.seed, epoch)]
            gen = seeded_generator(SAMPLE_SEED_STREAM, self.seed, epoch)
            seeds = torch.randint(0, 2**62, (self.num_samples,), generator=gen)
            items = list(zip(order[first:end].tolist(), seeds[first:end].tolist()))
        else:
            items = [(i, NO_SEED) for i in self.indices[first:].tolist()]
        loader = DataLoader(
            self.samples,
            batch_size=self.batch_size,
            sampler=items,
            num_workers=self.num_workers,
            # The DataLoader seeds its workers from this generator; without one it would take a
            # draw from the caller's global RNG on every epoch.
            generator=seeded_generator(ORDER_STREAM, self.seed, epoch, start),
        )
        yield from loader


def _image_folder(name: str, path: Path) -> ImageFolder:
    try:
        return ImageFolder(str(path))
    except (FileNotFoundError, OSError) as e:  # no class folders, or a class without images
        detail = " ".join(str(e).split())
        raise UserError(
            f"data={name}: cannot read images from {path} ({detail}); expected "
            f"{path}/<class>/<image> with at least one image per class"
        ) from e


def _same_classes(name: str, train: ImageFolder, other: ImageFolder, path: Path) -> None:
    if other.classes != train.classes:
        extra = sorted(set(other.classes) - set(train.classes))
        lacking = sorted(set(train.classes) - set(other.classes))
        raise UserError(
            f"data={name}: the class folders of {path} differ from those of train/ "
            f"(not in train/: {extra or 'none'}; missing: {lacking or 'none'}); "
            "every split needs the same class folders"
        )


def _eval_transform(size: int) -> Callable[[Any], Tensor]:
    """Resize to 256/224 of `size`, centre crop `size`, ImageNet normalisation."""
    return transforms.Compose(
        [
            transforms.Resize(round(size * 256 / 224)),
            transforms.CenterCrop(size),
            transforms.ToTensor(),
            transforms.Normalize(IMAGENET_STATS.mean, IMAGENET_STATS.std),
        ]
    )


def eval_loader(what: str, path: Path, size: int, classes: int, batch_size: int) -> FolderLoader:
    """An evaluation loader of the class-per-folder tree at `path` (e.g. one ImageNet-C
    corruption and severity), which must hold `classes` class folders."""
    folder = _image_folder(what, path)
    if len(folder.classes) != classes:
        raise UserError(
            f"{what}: {path} has {len(folder.classes)} class folders; the model has {classes} classes"
        )
    indices = torch.arange(len(folder.samples))
    return FolderLoader(_Samples(folder, _eval_transform(size)), indices, batch_size)


def build_folder(
    name: str, cfg: DataConfig, batch_size: int, eval_batch_size: int, seed: int
) -> DataBundle:
    """The DataBundle of the class-per-folder tree under cfg.root (see the module docstring)."""
    root = Path(cfg.root).expanduser().absolute()
    train_dir, val_dir, test_dir = root / "train", root / "val", root / "test"
    if not train_dir.is_dir():
        raise UserError(
            f"data={name}: no training images: {train_dir} is not a folder (expected "
            f"{train_dir}/<class>/<image>, and {val_dir} or {test_dir} likewise)"
        )
    if not test_dir.is_dir() and not val_dir.is_dir():
        raise UserError(
            f"data={name}: no held-out images: neither {val_dir} nor {test_dir} is a folder "
            "(expected <class>/<image> inside one of them)"
        )
    size = cfg.image_size or DEFAULT_SIZE
    normalize = transforms.Normalize(IMAGENET_STATS.mean, IMAGENET_STATS.std)
    eval_tf = _eval_transform(size)
    train_tf = eval_tf
    if cfg.augment:
        train_tf = transforms.Compose(
            [
                transforms.RandomResizedCrop(size),
                transforms.RandomHorizontalFlip(),
                transforms.ToTensor(),
                normalize,
            ]
        )

    train = _image_folder(name, train_dir)
    test_path = test_dir if test_dir.is_dir() else val_dir
    test = _image_folder(name, test_path)
    _same_classes(name, train, test, test_path)
    train_indices = torch.arange(len(train.samples))
    val: Optional[FolderLoader] = None
    if cfg.val_fraction > 0 and test_path == test_dir and val_dir.is_dir():
        val_folder = _image_folder(name, val_dir)
        _same_classes(name, train, val_folder, val_dir)
        val = FolderLoader(
            _Samples(val_folder, eval_tf),
            torch.arange(len(val_folder.samples)),
            eval_batch_size,
            num_workers=cfg.num_workers,
        )
    elif cfg.val_fraction > 0:
        labels = torch.as_tensor(train.targets, dtype=torch.int64)
        train_indices, held = stratified_split(
            labels, cfg.val_fraction, cfg.split_seed, f"data={name} ({train_dir})"
        )
        val = FolderLoader(
            _Samples(train, eval_tf), held, eval_batch_size, num_workers=cfg.num_workers
        )
    return DataBundle(
        name=name,
        train=FolderLoader(
            _Samples(train, train_tf),
            train_indices,
            batch_size,
            shuffle=True,
            seed=seed,
            num_workers=cfg.num_workers,
        ),
        val=val,
        test=FolderLoader(
            _Samples(test, eval_tf),
            torch.arange(len(test.samples)),
            eval_batch_size,
            num_workers=cfg.num_workers,
        ),
        num_classes=len(train.classes),
        in_channels=3,
        image_size=size,
        stats=IMAGENET_STATS,
    )


def _register(name: str) -> None:
    def builder(cfg: DataConfig, batch_size: int, eval_batch_size: int, seed: int) -> DataBundle:
        return build_folder(name, cfg, batch_size, eval_batch_size, seed)

    builder.__name__ = builder.__qualname__ = f"build_{name}"
    builder.__doc__ = "An ImageFolder tree under cfg.root; see `build_folder`."
    DATASETS.register(name)(builder)


# Two names for one reader: `imagenet` for an ImageNet copy (train/ and val/, as distributed),
# `folder` for any other dataset in the same layout.
for _name in ("imagenet", "folder"):
    _register(_name)
