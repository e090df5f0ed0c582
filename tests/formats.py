"""Writers of small datasets in their real on-disk formats (CIFAR pickle batches, MNIST idx files,
an ImageFolder tree of PNGs), shared by the tests that run the real loaders on them."""

from __future__ import annotations

import pickle
import struct
from pathlib import Path

import numpy as np
from PIL import Image

CIFAR_TRAIN_PER_BATCH, CIFAR_TEST = 8, 10  # CIFAR-10: 5 training batch files
CIFAR100_TRAIN, MNIST_TRAIN, SMALL_TEST = 40, 40, 10
TREE_CLASSES = ("cat", "dog", "fish")  # folder tree: images per class in each split
TREE_TRAIN, TREE_HELD = 8, 2


def _images(rng: np.random.Generator, n: int, shape: tuple[int, ...]) -> np.ndarray:
    return rng.integers(0, 256, size=(n, *shape), dtype=np.uint8)


def _pickle(path: Path, obj: dict) -> None:
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=2)  # the official files are Python 2 pickles (protocol 2)


def write_cifar10(root: Path, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """cifar-10-batches-py/ as in the official archive; data rows are R, G, B planes of 32x32."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    written = {}
    for name, n in [(f"data_batch_{i}", CIFAR_TRAIN_PER_BATCH) for i in range(1, 6)] + [
        ("test_batch", CIFAR_TEST)
    ]:
        images = _images(rng, n, (3, 32, 32))
        labels = rng.integers(0, 10, size=n)
        _pickle(
            folder / name,
            {
                "batch_label": f"{name} of 5",
                "labels": labels.tolist(),
                "data": images.reshape(n, 3072),
                "filenames": [f"img_{i}.png" for i in range(n)],
            },
        )
        written[name] = images
        written[name + "_labels"] = labels
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship"]
    _pickle(
        folder / "batches.meta",
        {"label_names": [*names, "truck"], "num_cases_per_batch": 8, "num_vis": 3072},
    )
    return written


def write_cifar100(root: Path, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """cifar-100-python/{train, test, meta} with fine and coarse labels."""
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)
    written = {}
    for name, n in (("train", CIFAR100_TRAIN), ("test", SMALL_TEST)):
        images = _images(rng, n, (3, 32, 32))
        fine = rng.integers(0, 100, size=n)
        _pickle(
            folder / name,
            {
                "filenames": [f"img_{i}.png" for i in range(n)],
                "batch_label": name,
                "fine_labels": fine.tolist(),
                "coarse_labels": (fine // 5).tolist(),
                "data": images.reshape(n, 3072),
            },
        )
        written[name], written[name + "_labels"] = images, fine
    _pickle(
        folder / "meta",
        {
            "fine_label_names": [f"fine_{i}" for i in range(100)],
            "coarse_label_names": [f"coarse_{i}" for i in range(20)],
        },
    )
    return written


def write_mnist_idx(folder: Path, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """<Class>/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte, uncompressed, big-endian."""
    folder.mkdir(parents=True)
    written = {}
    for prefix, n in (("train", MNIST_TRAIN), ("t10k", SMALL_TEST)):
        images = _images(rng, n, (28, 28))
        labels = rng.integers(0, 10, size=n).astype(np.uint8)
        header = struct.pack(">IIII", 0x0803, n, 28, 28)  # magic: ubyte data, 3 dimensions
        (folder / f"{prefix}-images-idx3-ubyte").write_bytes(header + images.tobytes())
        header = struct.pack(">II", 0x0801, n)  # magic: ubyte data, 1 dimension
        (folder / f"{prefix}-labels-idx1-ubyte").write_bytes(header + labels.tobytes())
        written[prefix], written[prefix + "_labels"] = images, labels
    return written


def write_tree(root: Path, rng: np.random.Generator, splits: dict[str, int]) -> None:
    """root/<split>/<class>/<i>.png; odd-numbered images are grayscale, sizes vary."""
    for split, per_class in splits.items():
        for c in TREE_CLASSES:
            (root / split / c).mkdir(parents=True)
            for i in range(per_class):
                h, w = 10 + i % 3, 12 + i % 4
                if i % 2:
                    image = Image.fromarray(_images(rng, 1, (h, w))[0], mode="L")
                else:
                    image = Image.fromarray(_images(rng, 1, (h, w, 3))[0], mode="RGB")
                image.save(root / split / c / f"{i}.png")


def write_cifar10_1(folder: Path, n: int, side: int = 32, channels: int = 3, seed: int = 0):
    """cifar10.1_v6_data.npy (n, side, side, channels) uint8 and cifar10.1_v6_labels.npy (n,),
    as the CIFAR-10.1 release (which is 2000 x 32 x 32 x 3)."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    images = _images(rng, n, (side, side, channels))
    labels = rng.integers(0, 10, size=n).astype(np.int64)
    np.save(folder / "cifar10.1_v6_data.npy", images)
    np.save(folder / "cifar10.1_v6_labels.npy", labels)
    return images, labels


def write_cifar_c(folder: Path, names: list[str], per: int, side: int = 32, seed: int = 0):
    """CIFAR-10-C: <name>.npy (5 * per, side, side, 3) uint8 per corruption (severities 1..5 in
    order) and labels.npy (5 * per,), the test labels repeated 5 times (the release has
    per = 10000)."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    labels = rng.integers(0, 10, size=per).astype(np.int64)
    np.save(folder / "labels.npy", np.tile(labels, 5))
    written = {}
    for name in names:
        written[name] = _images(rng, 5 * per, (side, side, 3))
        np.save(folder / f"{name}.npy", written[name])
    return written, labels
