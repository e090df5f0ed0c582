"""The data package: registry, loaders, splits, augmentation and the real on-disk formats.

No dataset can be downloaded here, so the tests write small files in each dataset's real format
(CIFAR pickle batches, MNIST idx files, a tree of PNGs) and read them with the real loaders.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sparsify.config import DataConfig
from sparsify.data import DATASETS, DataBundle, build_data
from sparsify.data.folder import FolderLoader
from sparsify.data.sampling import stratified_split
from sparsify.data.tensor_loader import TensorLoader
from sparsify.data.transforms import (
    CIFAR10_STATS,
    CIFAR100_STATS,
    FASHION_MNIST_STATS,
    MNIST_STATS,
    BatchAugment,
    Normalize,
    Stats,
)
from sparsify.errors import UserError
from tests.formats import (
    CIFAR100_TRAIN,
    MNIST_TRAIN,
    TREE_CLASSES,
    TREE_HELD,
    TREE_TRAIN,
    write_cifar10,
    write_cifar100,
    write_mnist_idx,
    write_tree,
)

BATCH, EVAL_BATCH = 8, 16


@pytest.fixture(scope="module")
def roots(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """One folder holding every torchvision dataset's files, one image tree, and what was written."""
    rng = np.random.default_rng(0)
    files = tmp_path_factory.mktemp("datasets")
    tree = tmp_path_factory.mktemp("tree")
    write_tree(tree, rng, {"train": TREE_TRAIN, "val": TREE_HELD})
    return {
        "files": files,
        "tree": tree,
        "cifar10": write_cifar10(files, rng),
        "cifar100": write_cifar100(files, rng),
        "mnist": write_mnist_idx(files / "MNIST" / "raw", rng),
        "fashion_mnist": write_mnist_idx(files / "FashionMNIST" / "raw", rng),
    }


def cfg_for(name: str, roots: dict[str, object], **overrides: object) -> DataConfig:
    """A small config of every registered dataset; a new dataset needs an entry here."""
    base: dict[str, object] = {
        "digits": {},
        "synthetic": {"num_samples": 120, "num_classes": 4, "channels": 3},
        "cifar10": {"root": str(roots["files"])},
        "cifar100": {"root": str(roots["files"])},
        "mnist": {"root": str(roots["files"])},
        "fashion_mnist": {"root": str(roots["files"])},
        "imagenet": {"root": str(roots["tree"]), "image_size": 8},
        "folder": {"root": str(roots["tree"]), "image_size": 8},
    }[name]
    return DataConfig(name=name, **{**base, **overrides})


def build(cfg: DataConfig, seed: int = 0) -> DataBundle:
    return build_data(cfg, BATCH, EVAL_BATCH, seed)


def epoch(loader, epoch: int = 0, start: int = 0) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return list(loader.batches(epoch, start))


def same_batches(a: list, b: list) -> bool:
    return len(a) == len(b) and all(
        torch.equal(xa, xb) and torch.equal(ya, yb) for (xa, ya), (xb, yb) in zip(a, b)
    )


def normalized(images: np.ndarray, stats: Stats) -> torch.Tensor:
    """Reference normalisation of uint8 images (N, C, H, W), computed independently."""
    mean = torch.tensor(stats.mean).view(1, -1, 1, 1)
    std = torch.tensor(stats.std).view(1, -1, 1, 1)
    return (torch.from_numpy(images).float() / 255 - mean) / std


# --------------------------------------------------------------------------- every dataset


def test_registry_lists_all_eight_datasets() -> None:
    assert DATASETS.names() == [
        "cifar10",
        "cifar100",
        "digits",
        "fashion_mnist",
        "folder",
        "imagenet",
        "mnist",
        "synthetic",
    ]


def test_unknown_dataset_is_a_user_error_listing_valid_names() -> None:
    with pytest.raises(UserError, match="unknown dataset 'svhn'.*digits"):
        build(DataConfig(name="svhn"))


@pytest.mark.parametrize("name", DATASETS.names())
def test_every_split_yields_normalised_float_batches_of_the_bundle_shape(name, roots) -> None:
    bundle = build(cfg_for(name, roots))
    assert bundle.name == name
    for loader in (bundle.train, bundle.val, bundle.test):
        assert loader is not None
        batches = epoch(loader)
        assert len(batches) == len(loader) == -(-loader.num_samples // loader.batch_size)
        assert sum(y.numel() for _, y in batches) == loader.num_samples
        for x, y in batches:
            assert x.dtype == torch.float32 and y.dtype == torch.int64
            size = bundle.image_size
            assert x.shape == (y.numel(), bundle.in_channels, size, size)
            assert torch.isfinite(x).all()
            assert 0 <= y.min() and y.max() < bundle.num_classes
        # Normalised, not raw pixels: values well outside [0, 1] on both sides.
        xs = torch.cat([x for x, _ in batches])
        assert xs.min() < -0.3 and xs.max() > 1.2


@pytest.mark.parametrize("name", DATASETS.names())
def test_every_dataset_resumed_at_batch_k_yields_the_tail_of_the_full_epoch(name, roots) -> None:
    train = build(cfg_for(name, roots, augment=True), seed=3).train
    k = max(1, len(train) // 2)
    full = epoch(train, epoch=2)
    assert same_batches(epoch(train, epoch=2, start=k), full[k:])
    assert epoch(train, epoch=2, start=len(train)) == []


@pytest.mark.parametrize("name", DATASETS.names())
def test_every_dataset_with_val_fraction_zero_has_no_val_loader(name, roots) -> None:
    bundle = build(cfg_for(name, roots, val_fraction=0.0))
    assert bundle.val is None
    assert bundle.train.num_samples > 0 and bundle.test.num_samples > 0


# --------------------------------------------------------------------------- order and loaders


def test_training_order_is_fixed_by_seed_and_epoch() -> None:
    cfg = DataConfig(name="digits")
    assert same_batches(epoch(build(cfg, seed=1).train, 4), epoch(build(cfg, seed=1).train, 4))
    assert not same_batches(epoch(build(cfg, seed=1).train, 4), epoch(build(cfg, seed=2).train, 4))


def test_different_epochs_visit_samples_in_different_orders() -> None:
    train = build(DataConfig(name="digits")).train
    y0 = torch.cat([y for _, y in train.batches(0)])
    y1 = torch.cat([y for _, y in train.batches(1)])
    assert not torch.equal(y0, y1)
    assert torch.equal(y0.sort().values, y1.sort().values)  # same samples, new order


def test_cifar_training_batches_are_augmented_only_when_augment_is_on(roots) -> None:
    written = roots["cifar10"]
    stored = normalized(
        np.concatenate([written[f"data_batch_{i}"] for i in range(1, 6)]), CIFAR10_STATS
    )

    def unchanged(x: torch.Tensor) -> int:  # batch images identical to some stored image
        return int(sum(any(torch.allclose(img, s, atol=1e-5) for s in stored) for img in x))

    for augment in (False, True):
        x, _ = next(build(cfg_for("cifar10", roots, augment=augment)).train.batches(0))
        assert (unchanged(x) == len(x)) == (not augment)


def test_eval_loaders_serve_the_stored_order_unaugmented_every_time(roots) -> None:
    test = build(cfg_for("cifar10", roots)).test
    written = roots["cifar10"]
    assert same_batches(epoch(test, 0), epoch(test, 5))
    x = torch.cat([x for x, _ in test.batches()])
    y = torch.cat([y for _, y in test.batches()])
    torch.testing.assert_close(x, normalized(written["test_batch"], CIFAR10_STATS))
    assert y.tolist() == written["test_batch_labels"].tolist()


def test_last_partial_batch_is_kept() -> None:
    images, labels = torch.rand(10, 1, 2, 2), torch.arange(10)
    for shuffle in (False, True):
        loader = TensorLoader(images, labels, 4, Stats((0.5,), (0.5,)), shuffle=shuffle)
        assert len(loader) == 3
        assert [y.numel() for _, y in loader.batches()] == [4, 4, 2]


def test_normalize_maps_uint8_and_float_pixels_to_the_same_standard_units() -> None:
    norm = Normalize(Stats((0.5, 0.25), (0.25, 0.5)))
    as_uint8 = torch.tensor([0, 255], dtype=torch.uint8).view(1, 1, 1, 2).expand(1, 2, 1, 2)
    expected = torch.tensor([[[[-2.0, 2.0]], [[-0.5, 1.5]]]])
    torch.testing.assert_close(norm(as_uint8), expected)
    torch.testing.assert_close(norm(as_uint8.float() / 255), expected)


# --------------------------------------------------------------------------- augmentation


def test_batch_augment_is_a_zero_padded_crop_possibly_flipped_covering_every_draw() -> None:
    pad, h, w = 2, 5, 6
    x = torch.randint(0, 256, (400, 3, h, w), dtype=torch.uint8)
    out = BatchAugment(pad=pad, flip=True)(x, torch.Generator().manual_seed(0))
    assert out.shape == x.shape and out.dtype == x.dtype
    padded = torch.nn.functional.pad(x, (pad,) * 4)
    seen = set()
    for i in range(len(x)):
        matches = [
            (dy, dx, flip)
            for dy in range(2 * pad + 1)
            for dx in range(2 * pad + 1)
            for flip in (False, True)
            if torch.equal(
                out[i],
                padded[i, :, dy : dy + h, dx : dx + w].flip(-1)
                if flip
                else padded[i, :, dy : dy + h, dx : dx + w],
            )
        ]
        assert matches, f"sample {i} is not a padded crop of its input"
        seen.update(matches)
    assert len(seen) == 2 * (2 * pad + 1) ** 2  # every offset, flipped and not


def test_batch_augment_draws_are_fixed_by_the_generator_seed() -> None:
    x = torch.rand(32, 3, 8, 8)
    aug = BatchAugment(pad=1, flip=True)
    a = aug(x, torch.Generator().manual_seed(7))
    assert torch.equal(a, aug(x, torch.Generator().manual_seed(7)))
    assert not torch.equal(a, aug(x, torch.Generator().manual_seed(8)))


# --------------------------------------------------------------------------- splits


def test_stratified_split_partitions_indices_in_class_proportion() -> None:
    labels = torch.cat([torch.zeros(100), torch.ones(50), torch.full((10,), 2)]).long()
    kept, held = stratified_split(labels, 0.2, seed=0, what="test")
    assert torch.equal(torch.cat([kept, held]).sort().values, torch.arange(160))
    assert torch.bincount(labels[held]).tolist() == [20, 10, 2]
    again, _ = stratified_split(labels, 0.2, seed=0, what="test")
    other, _ = stratified_split(labels, 0.2, seed=1, what="test")
    assert torch.equal(kept, again) and not torch.equal(kept, other)


def test_digits_has_1797_samples_over_three_stratified_splits() -> None:
    bundle = build(DataConfig(name="digits", val_fraction=0.1))
    sizes = [bundle.train.num_samples, bundle.val.num_samples, bundle.test.num_samples]
    assert sizes == [1294, 144, 359] and sum(sizes) == 1797
    per_class = torch.bincount(bundle.test.labels)
    assert per_class.min() >= 34 and per_class.max() <= 37  # 20 % of 174..183 per class
    assert (bundle.num_classes, bundle.in_channels, bundle.image_size) == (10, 1, 8)
    x = torch.cat([x for x, _ in bundle.test.batches()])
    assert abs(x.mean()) < 0.1 and abs(x.std() - 1) < 0.1


def test_splits_are_disjoint(roots) -> None:
    # Synthetic images carry continuous noise, so equal rows would mean a shared sample.
    bundle = build(cfg_for("synthetic", roots, val_fraction=0.2))
    rows = [split.images.flatten(1) for split in (bundle.train, bundle.val, bundle.test)]
    assert sum(len(r) for r in rows) == 120
    assert len(torch.unique(torch.cat(rows), dim=0)) == 120


def test_splits_are_fixed_by_split_seed_not_by_the_run_seed() -> None:
    def test_images(split_seed: int, seed: int) -> torch.Tensor:
        return build(DataConfig(name="digits", split_seed=split_seed), seed=seed).test.images

    assert torch.equal(test_images(0, seed=0), test_images(0, seed=5))
    assert not torch.equal(test_images(0, seed=0), test_images(1, seed=0))


def test_synthetic_data_is_learnable_by_nearest_class_mean(roots) -> None:
    bundle = build(cfg_for("synthetic", roots, num_samples=400))
    x, y = bundle.train.images.flatten(1), bundle.train.labels
    means = torch.stack([x[y == c].mean(0) for c in range(bundle.num_classes)])
    test_x, test_y = bundle.test.images.flatten(1), bundle.test.labels
    accuracy = (torch.cdist(test_x, means).argmin(1) == test_y).float().mean()
    assert accuracy > 0.9


@pytest.mark.parametrize("name", ["digits", "cifar10", "mnist"])
def test_image_size_resizes_the_stored_images_once(name, roots) -> None:
    bundle = build(cfg_for(name, roots, image_size=12))
    assert bundle.image_size == 12
    assert bundle.train.images.shape[-2:] == (12, 12)
    x, _ = next(bundle.train.batches())
    assert x.shape[-2:] == (12, 12)


# --------------------------------------------------------------------------- real file formats


def test_cifar10_reads_the_official_pickle_batches(roots) -> None:
    bundle = build(cfg_for("cifar10", roots, val_fraction=0.0))
    written = roots["cifar10"]
    assert (bundle.num_classes, bundle.in_channels, bundle.image_size) == (10, 3, 32)
    assert bundle.train.images.dtype == torch.uint8  # held as bytes, normalised per batch
    train = np.concatenate([written[f"data_batch_{i}"] for i in range(1, 6)])
    assert torch.equal(bundle.train.images, torch.from_numpy(train))
    assert torch.equal(bundle.test.images, torch.from_numpy(written["test_batch"]))


def test_cifar100_reads_fine_labels(roots) -> None:
    bundle = build(cfg_for("cifar100", roots, val_fraction=0.0))
    written = roots["cifar100"]
    assert bundle.num_classes == 100
    assert bundle.test.labels.tolist() == written["test_labels"].tolist()
    x = torch.cat([x for x, _ in bundle.test.batches()])
    torch.testing.assert_close(x, normalized(written["test"], CIFAR100_STATS))
    assert bundle.train.num_samples == CIFAR100_TRAIN


@pytest.mark.parametrize(
    "name, stats", [("mnist", MNIST_STATS), ("fashion_mnist", FASHION_MNIST_STATS)]
)
def test_mnist_family_reads_uncompressed_idx_files(name, stats, roots) -> None:
    bundle = build(cfg_for(name, roots))
    written = roots[name]
    assert (bundle.num_classes, bundle.in_channels, bundle.image_size) == (10, 1, 28)
    assert bundle.train.num_samples + bundle.val.num_samples == MNIST_TRAIN
    x = torch.cat([x for x, _ in bundle.test.batches()])
    torch.testing.assert_close(x, normalized(written["t10k"][:, None], stats))
    assert bundle.test.labels.tolist() == written["t10k_labels"].tolist()


def test_folder_tree_without_test_dir_tests_on_val_and_holds_out_val_from_train(roots) -> None:
    bundle = build(cfg_for("folder", roots, val_fraction=0.1))
    n_train = len(TREE_CLASSES) * TREE_TRAIN
    assert (bundle.num_classes, bundle.in_channels, bundle.image_size) == (3, 3, 8)
    assert bundle.test.num_samples == len(TREE_CLASSES) * TREE_HELD
    assert bundle.val.num_samples == round(0.1 * n_train)
    assert bundle.train.num_samples + bundle.val.num_samples == n_train
    y = torch.cat([y for _, y in bundle.test.batches()])
    assert y.tolist() == [c for c in range(3) for _ in range(TREE_HELD)]  # sorted class folders


def test_folder_tree_with_test_dir_validates_on_val_dir(tmp_path) -> None:
    write_tree(tmp_path, np.random.default_rng(1), {"train": 4, "val": 3, "test": 2})
    bundle = build(DataConfig(name="folder", root=str(tmp_path), image_size=8))
    sizes = [bundle.train.num_samples, bundle.val.num_samples, bundle.test.num_samples]
    assert sizes == [12, 9, 6]


def test_folder_batches_do_not_depend_on_num_workers(roots) -> None:
    full = epoch(build(cfg_for("folder", roots, num_workers=0)).train, 1)
    tail = epoch(build(cfg_for("folder", roots, num_workers=2)).train, 1, start=1)
    assert same_batches(tail, full[1:])


def test_folder_augmentation_draws_differ_between_samples_and_epochs(roots) -> None:
    # 16 visits of one image: every visit must get its own crop and flip.
    samples = build(cfg_for("folder", roots)).train.samples
    loader = FolderLoader(samples, torch.zeros(16, dtype=torch.long), 16, shuffle=True)
    views = next(loader.batches(0))[0]
    assert len(torch.unique(views, dim=0)) > 8
    assert not torch.equal(views, next(loader.batches(1))[0])


def test_folder_augmentation_leaves_the_global_rng_untouched(roots) -> None:
    train = build(cfg_for("folder", roots)).train
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    epoch(train)
    assert torch.equal(torch.rand(3), expected)


# --------------------------------------------------------------------------- user errors


@pytest.mark.parametrize(
    "name, expected",
    [
        ("cifar10", "cifar-10-batches-py"),
        ("cifar100", "cifar-100-python"),
        ("mnist", "MNIST/raw"),
        ("fashion_mnist", "FashionMNIST/raw"),
        ("imagenet", "train"),
        ("folder", "train"),
    ],
)
def test_missing_files_are_a_one_line_user_error_naming_the_path(name, expected, tmp_path):
    root = tmp_path / "nothing_here"
    with pytest.raises(UserError) as info:
        build(DataConfig(name=name, root=str(root)))
    message = str(info.value)
    assert f"data={name}" in message and str(root / expected) in message
    assert "\n" not in message
    assert not root.exists()  # nothing written


def test_folder_without_val_or_test_dir_is_a_user_error(tmp_path) -> None:
    write_tree(tmp_path, np.random.default_rng(0), {"train": 2})
    with pytest.raises(UserError, match="neither .*val nor .*test"):
        build(DataConfig(name="folder", root=str(tmp_path)))


def test_folder_with_different_classes_per_split_is_a_user_error(tmp_path) -> None:
    write_tree(tmp_path, np.random.default_rng(0), {"train": 2, "val": 1})
    (tmp_path / "val" / "fish").rename(tmp_path / "val" / "bird")
    with pytest.raises(UserError, match="not in train/: \\['bird'\\]; missing: \\['fish'\\]"):
        build(DataConfig(name="folder", root=str(tmp_path)))


def test_damaged_cifar_file_is_a_user_error(tmp_path) -> None:
    write_cifar10(tmp_path, np.random.default_rng(0))
    (tmp_path / "cifar-10-batches-py" / "data_batch_3").write_bytes(b"not a pickle")
    with pytest.raises(UserError, match="reading CIFAR-10 .* failed"):
        build(DataConfig(name="cifar10", root=str(tmp_path)))


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"val_fraction": 1.0}, "val_fraction=1.0 is out of range"),
        ({"val_fraction": -0.1}, "val_fraction=-0.1 is out of range"),
        ({"image_size": 0}, "image_size=0"),
        ({"name": "synthetic", "num_classes": 1}, "num_classes=1"),
        ({"name": "synthetic", "num_samples": 1}, "leaves none to train on"),
    ],
)
def test_out_of_range_values_are_user_errors(overrides, message) -> None:
    with pytest.raises(UserError, match=message):
        build(DataConfig(**{"name": "digits", **overrides}))


def test_zero_batch_size_is_a_user_error() -> None:
    with pytest.raises(UserError, match="train.batch_size=0"):
        build_data(DataConfig(name="digits"), 0, 8, 0)


def test_a_training_epoch_never_ends_in_a_batch_of_one_sample():
    """BatchNorm cannot train on a single sample; such a trailing batch is dropped (training
    only), and each epoch's reshuffle leaves a different sample out."""
    from sparsify.data.tensor_loader import TensorLoader
    from sparsify.data.transforms import Stats

    images, labels = torch.rand(9, 1, 2, 2), torch.arange(9) % 3
    train = TensorLoader(images, labels, 4, Stats((0.5,), (0.5,)), shuffle=True, seed=0)
    assert len(train) == 2 and [y.numel() for _, y in train.batches(0)] == [4, 4]
    left_out = {int(labels.sum() - sum(y.sum() for _, y in train.batches(e))) for e in range(6)}
    assert len(left_out) > 1
    evaluation = TensorLoader(images, labels, 4, Stats((0.5,), (0.5,)))
    assert [y.numel() for _, y in evaluation.batches(0)] == [4, 4, 1]
    assert len(TensorLoader(images, labels, 5, Stats((0.5,), (0.5,)), shuffle=True)) == 2


def test_a_torchvision_resnet_trains_on_digits_with_a_batch_size_that_leaves_one_sample(tmp_path):
    from sparsify.compose import compose
    from sparsify.run import run

    # 1294 training digits = 3 * 431 + 1: the last batch would hold one sample at 1x1 maps
    cfg = compose(
        ["prune=dense", "model=resnet18", "train.epochs=1", "train.batch_size=431", "eval=accuracy"]
    )
    assert run(cfg, tmp_path / "r")["levels"][0]["iterations"] == 3
