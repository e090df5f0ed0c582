"""Released shifted test sets in their real on-disk formats (CIFAR-10-C / -100-C .npy files,
CIFAR-10.1 .npy files, the ImageNet-C folder tree), used instead of generated corruptions, and
refused before any work when missing or of the wrong shape."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

from sparsify.compose import compose
from sparsify.data.released import check_corrupted_set, cifar_c, imagenet_c
from sparsify.data.transforms import CIFAR10_STATS, Normalize
from sparsify.errors import UserError
from sparsify.run import run
from tests.formats import TREE_CLASSES, write_cifar10_1, write_cifar_c, write_tree

# a 32x32 RGB, 10-class run, the shape CIFAR-10-C and CIFAR-10.1 hold
RUN = [
    "data=synthetic",
    "data.image_size=32",
    "data.num_samples=96",
    "train.epochs=1",
    "prune=magnitude",
    "prune.finetune=1it",
    "eval=accuracy",
]


def test_cifar_c_reads_each_severity_from_its_block_of_the_file(tmp_path):
    written, labels = write_cifar_c(tmp_path, ["fog"], per=6)
    loader = cifar_c(tmp_path, "fog", 4, side=32, num_classes=10, stats=CIFAR10_STATS, batch_size=4)
    xs, ys = zip(*loader.batches(0))
    expected = torch.from_numpy(written["fog"][18:24]).permute(0, 3, 1, 2)
    assert torch.allclose(torch.cat(xs), Normalize(CIFAR10_STATS)(expected))
    assert torch.cat(ys).tolist() == labels.tolist()


def test_a_released_set_that_lacks_a_corruption_or_has_the_wrong_shape_is_refused(tmp_path):
    write_cifar_c(tmp_path, ["fog"], per=2)
    assert check_corrupted_set(tmp_path, ["fog"], [1, 5], 32, 10) == "cifar"
    with pytest.raises(UserError, match="contrast.npy does not exist"):
        check_corrupted_set(tmp_path, ["fog", "contrast"], [1], 32, 10)
    with pytest.raises(UserError, match=r"expected uint8 \(50000, 8, 8, 3\)"):
        check_corrupted_set(tmp_path, ["fog"], [1], 8, 10)
    np.save(tmp_path / "labels.npy", np.zeros(7, dtype=np.int64))
    with pytest.raises(UserError, match="5 severities x N images"):
        check_corrupted_set(tmp_path, ["fog"], [1], 32, 10)
    with pytest.raises(UserError, match="neither CIFAR-10-C files"):
        check_corrupted_set(tmp_path / "elsewhere", ["fog"], [1], 32, 10)


def test_imagenet_c_reads_one_corruption_and_severity_folder(tmp_path):
    write_tree(tmp_path / "fog", np.random.default_rng(0), {"3": 2})
    assert check_corrupted_set(tmp_path, ["fog"], [3], 16, 3) == "imagenet"
    loader = imagenet_c(tmp_path, "fog", 3, side=16, classes=len(TREE_CLASSES), batch_size=4)
    x, y = next(loader.batches(0))
    assert x.shape == (4, 3, 16, 16) and loader.num_samples == 2 * len(TREE_CLASSES)
    with pytest.raises(UserError, match="class folders; the model has 10 classes"):
        imagenet_c(tmp_path, "fog", 3, side=16, classes=10, batch_size=4)
    with pytest.raises(UserError, match="ImageNet-C folders fog/1"):
        check_corrupted_set(tmp_path, ["fog"], [1, 3], 16, 3)


def _accuracy(run_dir, level, images, labels):
    """The level's accuracy computed here, independently of the evaluators."""
    from sparsify.data import build_data
    from sparsify.models import build_model

    cfg = compose(RUN)
    data = build_data(cfg.data, 32, 32, 0)
    model = build_model(cfg.model, 10, 3, 32)
    state = torch.load(run_dir / f"levels/level_0{level}/final.pt", weights_only=True)
    model.load_state_dict(state)
    x = Normalize(data.stats)(torch.from_numpy(images).permute(0, 3, 1, 2))
    with torch.no_grad():
        return float((model.eval()(x).argmax(1) == torch.from_numpy(labels)).double().mean())


def test_released_corruptions_replace_the_generated_ones(tmp_path):
    written, labels = write_cifar_c(tmp_path / "c10c", ["gaussian_noise", "fog"], per=20)
    overrides = [
        *RUN,
        "eval.evaluators=[accuracy,corruptions]",
        "eval.corruptions.names=[gaussian_noise,fog]",
        "eval.corruptions.severities=[2,5]",
        f"eval.corruptions.released={tmp_path / 'c10c'}",
    ]
    results = run(compose(overrides), tmp_path / "run")
    grid = results["levels"][1]["tables"]["corruptions/grid"]
    rows = {r[0]: r for r in grid["rows"]}
    for name in ("gaussian_noise", "fog"):
        for column, severity in ((2, 2), (3, 5)):
            block = written[name][(severity - 1) * 20 : severity * 20]
            expected = _accuracy(tmp_path / "run", 1, block, labels)
            assert rows[name][column] == pytest.approx(expected)


def test_cifar10_1_is_scored_by_the_shift_evaluator_and_counts_in_prune_potential(tmp_path):
    images, labels = write_cifar10_1(tmp_path / "c101", 30)
    overrides = [
        *RUN,
        "eval.evaluators=[accuracy,shift]",
        f"eval.shift.cifar10_1={tmp_path / 'c101'}",
        "eval.summaries=[prune_potential]",
    ]
    results = run(compose(overrides), tmp_path / "run")
    dense, pruned = results["levels"]
    assert pruned["metrics"]["shift_accuracy"] == pytest.approx(
        _accuracy(tmp_path / "run", 1, images, labels)
    )
    assert dense["metrics"]["shift_excess_error"] == 0.0
    rows = results["summary"]["prune_potential"]["table"]["rows"]
    assert [r[:2] for r in rows] == [["clean", "clean"], ["cifar10_1", "shift"]]


@pytest.mark.parametrize(
    "override,needle",
    [
        ("eval.evaluators=[accuracy,shift]", "evaluator shift needs a released test set"),
        ("eval.shift.cifar10_1=/nonexistent", "eval.shift.cifar10_1=/nonexistent: not a folder"),
        ("eval.corruptions.released=/nonexistent", "eval.corruptions.released=/nonexistent: not"),
    ],
)
def test_missing_released_files_are_refused_before_any_work(tmp_path, override, needle):
    proc = subprocess.run(
        [sys.executable, "-m", "sparsify", *RUN, override, f"hydra.run.dir={tmp_path}/run"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2 and needle in proc.stderr, proc.stderr
    assert not (tmp_path / "run").exists()


def test_released_files_of_another_image_size_are_refused_before_any_work(tmp_path):
    write_cifar_c(tmp_path / "c10c", ["fog"], per=2)
    write_cifar10_1(tmp_path / "c101", 4)
    digits = ["train.epochs=1", "prune.levels=1", "eval=accuracy"]
    for override, needle in [
        (
            [
                "eval.evaluators=[accuracy,corruptions]",
                "eval.corruptions.names=[fog]",
                f"eval.corruptions.released={tmp_path / 'c10c'}",
            ],
            "expected uint8 (50000, 8, 8, 3)",
        ),
        (
            ["eval.evaluators=[accuracy,shift]", f"eval.shift.cifar10_1={tmp_path / 'c101'}"],
            "the model takes 8x8",
        ),
    ]:
        with pytest.raises(UserError, match=re_escape(needle)):
            run(compose([*digits, *override]), tmp_path / "run")
        assert not (tmp_path / "run").exists()


def re_escape(text: str) -> str:
    import re

    return re.escape(text)
