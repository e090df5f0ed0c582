"""Released shifted test sets, read in their published on-disk formats:

- CIFAR-10-C / CIFAR-100-C (Hendrycks & Dietterich): a folder of `<corruption>.npy`, each
  (5N, 32, 32, 3) uint8 = severities 1..5 × the N test images in order (N = 10,000 in the
  release), and `labels.npy` (5N,) (the test labels repeated 5 times);
- CIFAR-10.1 (Recht et al.): `cifar10.1_v6_data.npy` (2000, 32, 32, 3) uint8 and
  `cifar10.1_v6_labels.npy` (2000,) (v4 files are accepted too);
- ImageNet-C: a folder tree `<corruption>/<severity>/<class>/<image>` (JPEG, 224 px).

Each becomes a Loader of the evaluation split's kind (normalised with the dataset's statistics);
every check runs when the set is opened, before any work.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from sparsify.data.base import Loader
from sparsify.data.tensor_loader import TensorLoader
from sparsify.data.transforms import Stats
from sparsify.errors import UserError


def _npy(path: Path, what: str) -> np.ndarray:
    if not path.is_file():
        raise UserError(f"{what}: {path} does not exist")
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError) as e:
        raise UserError(f"{what}: {path} is not a .npy file ({e})") from None


def _images(array: np.ndarray, path: Path, side: int, what: str) -> torch.Tensor:
    """(N, H, W, C) uint8 -> (N, C, H, W), checked against the side the model takes."""
    if array.ndim != 4 or array.shape[3] not in (1, 3) or array.dtype != np.uint8:
        raise UserError(
            f"{what}: {path} holds {array.dtype} {tuple(array.shape)}; expected uint8 "
            f"(N, {side}, {side}, 3)"
        )
    if array.shape[1:3] != (side, side):
        raise UserError(
            f"{what}: {path} holds {array.shape[1]}x{array.shape[2]} images; the model takes "
            f"{side}x{side} (data.image_size)"
        )
    return torch.from_numpy(np.array(array)).permute(0, 3, 1, 2).contiguous()  # read, copied


def _labels(path: Path, n: int, num_classes: int, what: str) -> torch.Tensor:
    labels = _npy(path, what)
    if labels.shape != (n,) or labels.dtype.kind not in "iu":
        raise UserError(f"{what}: {path} holds {labels.dtype} {labels.shape}; expected ({n},) ints")
    out = torch.from_numpy(np.array(labels, dtype=np.int64))  # a copy: the file stays read-only
    if n and (int(out.min()) < 0 or int(out.max()) >= num_classes):
        raise UserError(f"{what}: {path} has labels outside 0..{num_classes - 1}")
    return out


def cifar_c(
    folder: Path,
    corruption: str,
    severity: int,
    *,
    side: int,
    num_classes: int,
    stats: Stats,
    batch_size: int,
) -> Loader:
    """The test images of CIFAR-10-C (or -100-C) corrupted by `corruption` at `severity`."""
    what = "eval.corruptions.released"
    path = Path(folder) / f"{corruption}.npy"
    data = _npy(path, what)
    labels = _labels(Path(folder) / "labels.npy", data.shape[0], num_classes, what)
    per = data.shape[0] // 5
    lo, hi = (severity - 1) * per, severity * per
    images = _images(data[lo:hi], path, side, what)
    return TensorLoader(images, labels[lo:hi], batch_size, stats)


def cifar10_1(folder: Path, *, side: int, stats: Stats, batch_size: int) -> Loader:
    """CIFAR-10.1 (v6, else v4) from its two .npy files."""
    what = "eval.shift.cifar10_1"
    folder = Path(folder)
    for version in ("v6", "v4"):
        data_path = folder / f"cifar10.1_{version}_data.npy"
        if data_path.exists():
            break
    else:
        raise UserError(f"{what}: no cifar10.1_v6_data.npy (or v4) in {folder}")
    data = _npy(data_path, what)
    images = _images(data, data_path, side, what)
    labels = _labels(folder / f"cifar10.1_{version}_labels.npy", images.shape[0], 10, what)
    return TensorLoader(images, labels, batch_size, stats)


def imagenet_c(
    folder: Path, corruption: str, severity: int, *, side: int, classes: int, batch_size: int
) -> Loader:
    """ImageNet-C's `<corruption>/<severity>/` class-per-folder images, through the evaluation
    transform of `data=imagenet` (resize, centre crop to `side`, ImageNet statistics)."""
    from sparsify.data.folder import eval_loader

    path = Path(folder) / corruption / str(severity)
    if not path.is_dir():
        raise UserError(
            f"eval.corruptions.released: {path} is not a folder (expected "
            f"{folder}/<corruption>/<severity>/<class>/<image>)"
        )
    return eval_loader("eval.corruptions.released", path, side, classes, batch_size)


def check_corrupted_set(
    folder: Path, names: list[str], severities: list[int], side: int, num_classes: int
) -> str:
    """The format of the released corrupted set at `folder` ("cifar" or "imagenet"), after
    checking that it holds every corruption and severity asked for, in the right shape (file
    headers and folders only: nothing is read into memory). A UserError otherwise."""
    folder = Path(folder).expanduser()
    what = "eval.corruptions.released"
    if (folder / "labels.npy").is_file():
        labels = _npy(folder / "labels.npy", what)
        for name in names:
            data = _npy(folder / f"{name}.npy", what)
            if data.ndim != 4 or data.shape[1:3] != (side, side) or data.dtype != np.uint8:
                raise UserError(
                    f"{what}: {folder / f'{name}.npy'} holds {data.dtype} {tuple(data.shape)}; "
                    f"expected uint8 (50000, {side}, {side}, 3)"
                )
            n = data.shape[0]
            if n == 0 or n % 5 or labels.shape != (n,):
                raise UserError(
                    f"{what}: {folder} holds {n} images of {name} and {labels.shape[0]} labels; "
                    "CIFAR-10-C files hold 5 severities x N images and 5N labels (N = 10000)"
                )
        return "cifar"
    missing = [
        f"{name}/{s}" for name in names for s in severities if not (folder / name / str(s)).is_dir()
    ]
    if missing:
        raise UserError(
            f"{what}: {folder} holds neither CIFAR-10-C files (labels.npy, <corruption>.npy) nor "
            f"the ImageNet-C folders {', '.join(missing[:3])}{' ...' if len(missing) > 3 else ''}"
        )
    return "imagenet"
