"""`cifar10`, `cifar100`, `mnist`, `fashion_mnist`: torchvision's readers, served from memory.

Files are read once through the torchvision dataset classes (from `cfg.root`, in torchvision's
layout; `cfg.download` lets torchvision fetch them), converted to uint8 tensors (N, C, H, W) and
served by TensorLoader. Validation is a stratified, `split_seed`-fixed `val_fraction` of the
official training set; test is the official test set.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import torch
from torch import Tensor
from torchvision import datasets

from sparsify.config import DataConfig
from sparsify.data.base import DATASETS, DataBundle
from sparsify.data.tensor_loader import tensor_bundle
from sparsify.data.transforms import (
    CIFAR10_STATS,
    CIFAR100_STATS,
    FASHION_MNIST_STATS,
    MNIST_STATS,
    BatchAugment,
    Stats,
    resize_images,
)
from sparsify.errors import UserError


def _without_md5(files: list[list[Any]]) -> list[list[Any]]:
    return [[name, None] for name, _ in files]


# torchvision's CIFAR classes accept a batch file only if its md5 equals that of the official
# release, which rejects any other file in the identical format (a re-packed subset, the small
# files the tests write). These subclasses change nothing but the per-file md5 (None: torchvision's
# check_integrity then only asks that the file exists); the reading code is torchvision's own. A
# damaged file still fails, when it is unpickled, and becomes a UserError below; a download is
# still verified against the archive's md5 (tgz_md5 is kept).
class _CIFAR10Files(datasets.CIFAR10):
    train_list = _without_md5(datasets.CIFAR10.train_list)
    test_list = _without_md5(datasets.CIFAR10.test_list)
    meta = {**datasets.CIFAR10.meta, "md5": None}


class _CIFAR100Files(datasets.CIFAR100):
    train_list = _without_md5(datasets.CIFAR100.train_list)
    test_list = _without_md5(datasets.CIFAR100.test_list)
    meta = {**datasets.CIFAR100.meta, "md5": None}


@dataclass(frozen=True)
class TorchvisionSet:
    """What differs between the torchvision-backed datasets."""

    title: str  # the dataset's usual name, for messages
    reader: type  # torchvision dataset class: reader(root, train=..., download=...)
    folder: str  # where the reader looks, relative to root
    files: tuple[str, ...]  # the files it needs in `folder`
    stats: Stats
    num_classes: int
    flip: bool  # horizontal flips keep the label (objects yes, digits no)
    crop: bool  # random crop after zero padding by 1/8 of the side


def _cifar(title: str, reader: type, stats: Stats, num_classes: int) -> TorchvisionSet:
    names = [name for name, _ in reader.train_list + reader.test_list] + [reader.meta["filename"]]
    return TorchvisionSet(
        title, reader, reader.base_folder, tuple(names), stats, num_classes, flip=True, crop=True
    )


def _mnist(title: str, reader: type, stats: Stats) -> TorchvisionSet:
    # torchvision reads the uncompressed idx files from <root>/<class name>/raw.
    names = tuple(url.removesuffix(".gz") for url, _ in reader.resources)
    return TorchvisionSet(
        title, reader, f"{reader.__name__}/raw", names, stats, 10, flip=False, crop=False
    )


SETS = {
    "cifar10": _cifar("CIFAR-10", _CIFAR10Files, CIFAR10_STATS, 10),
    "cifar100": _cifar("CIFAR-100", _CIFAR100Files, CIFAR100_STATS, 100),
    "mnist": _mnist("MNIST", datasets.MNIST, MNIST_STATS),
    "fashion_mnist": _mnist("Fashion-MNIST", datasets.FashionMNIST, FASHION_MNIST_STATS),
}

# What a damaged or foreign file makes torchvision's readers (pickle, numpy, idx parser) or a
# failed download raise.
_READ_ERRORS = (
    OSError,
    RuntimeError,
    ValueError,
    KeyError,
    TypeError,
    EOFError,
    AssertionError,
    pickle.UnpicklingError,
)


def _as_tensors(ds: Any) -> tuple[Tensor, Tensor]:
    """A torchvision dataset's images as uint8 (N, C, H, W) and labels as int64 (N,)."""
    data = ds.data
    if isinstance(data, torch.Tensor):  # MNIST family: (N, H, W) uint8
        images = data.unsqueeze(1)
    else:  # CIFAR family: numpy (N, H, W, C) uint8
        images = torch.from_numpy(data).permute(0, 3, 1, 2)
    labels = torch.as_tensor(ds.targets, dtype=torch.int64)
    return images.contiguous(), labels


def load_tensors(name: str, cfg: DataConfig) -> tuple[tuple[Tensor, Tensor], tuple[Tensor, Tensor]]:
    """(train, test) as (uint8 images (N, C, H, W), int64 labels (N,)) at native size.

    Raises UserError naming the expected paths when files are missing and download is off,
    before anything is read or written.
    """
    spec = SETS[name]
    root = Path(cfg.root).expanduser().absolute()
    folder = root / spec.folder
    missing = [f for f in spec.files if not (folder / f).is_file()]
    if missing and not cfg.download:
        found = "no" if len(missing) == len(spec.files) else "incomplete"
        absent = "" if found == "no" else f", missing {', '.join(missing)}"
        raise UserError(
            f"data={name}: {found} {spec.title} files under {root} (expected {folder}/"
            f"{{{', '.join(spec.files)}}}{absent}); put them there or set data.download=true on "
            "a machine with a network"
        )
    try:
        train = spec.reader(str(root), train=True, download=bool(missing))
        test = spec.reader(str(root), train=False, download=False)
        tensors = _as_tensors(train), _as_tensors(test)
    except _READ_ERRORS as e:
        action = "downloading" if missing else "reading"
        detail = " ".join(str(e).split())  # one line, whatever the library's message looks like
        raise UserError(
            f"data={name}: {action} {spec.title} under {folder} failed "
            f"({type(e).__name__}: {detail}); replace the files with intact ones"
        ) from e
    for split, (_, labels) in zip(("train", "test"), tensors):
        if labels.numel() and not 0 <= int(labels.min()) <= int(labels.max()) < spec.num_classes:
            raise UserError(
                f"data={name}: {split} labels under {folder} are outside 0..{spec.num_classes - 1}"
            )
    return tensors


def build(
    name: str, cfg: DataConfig, batch_size: int, eval_batch_size: int, seed: int
) -> DataBundle:
    """The DataBundle of torchvision dataset `name`, resized once to cfg.image_size if set."""
    spec = SETS[name]
    train, test = load_tensors(name, cfg)
    size = cfg.image_size or train[0].shape[-1]
    train = (resize_images(train[0], size), train[1])
    test = (resize_images(test[0], size), test[1])
    augment: Optional[BatchAugment] = None
    if spec.crop or spec.flip:
        augment = BatchAugment(pad=max(1, size // 8) if spec.crop else 0, flip=spec.flip)
    return tensor_bundle(
        name,
        train,
        test,
        cfg,
        batch_size,
        eval_batch_size,
        seed,
        stats=spec.stats,
        augment=augment,
        num_classes=spec.num_classes,
    )


def _register(name: str) -> None:
    def builder(cfg: DataConfig, batch_size: int, eval_batch_size: int, seed: int) -> DataBundle:
        return build(name, cfg, batch_size, eval_batch_size, seed)

    builder.__name__ = builder.__qualname__ = f"build_{name}"
    builder.__doc__ = f"{SETS[name].title} through torchvision; see `build`."
    DATASETS.register(name)(builder)


for _name in SETS:
    _register(_name)
