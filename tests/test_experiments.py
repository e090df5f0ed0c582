"""Every named experiment under conf/experiment composes and starts far enough to build its
data (from tiny files written in the dataset's real format), its model and its method, and to
plan level 0, without writing anything. Parametrized over the folder: a new experiment file is
tested here without a new test."""

from pathlib import Path

import numpy as np
import pytest

from sparsify.compose import compose
from sparsify.run import prepare
from sparsify.rundir import RunDir
from tests.formats import write_cifar10, write_mnist_idx, write_tree

CONF = Path(__file__).resolve().parents[1] / "conf"
EXPERIMENTS = sorted(p.stem for p in (CONF / "experiment").glob("*.yaml"))


@pytest.fixture(scope="module")
def roots(tmp_path_factory) -> dict[str, Path]:
    rng = np.random.default_rng(0)
    files = tmp_path_factory.mktemp("datasets")
    write_cifar10(files, rng)
    write_mnist_idx(files / "MNIST" / "raw", rng)
    tree = tmp_path_factory.mktemp("imagenet")
    write_tree(tree, rng, {"train": 8, "val": 2})
    return {"cifar10": files, "mnist": files, "imagenet": tree}


def test_the_papers_experiments_are_all_there():
    assert {
        "lth_resnet20_cifar10",
        "renda_resnet20_cifar10",
        "renda_resnet50_imagenet",
        "acdc_resnet50_imagenet",
        "gmp_resnet50_imagenet",
        "lth_lenet_mnist",
        "supermask_conv4_cifar10",
    } <= set(EXPERIMENTS)


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_every_experiment_builds_its_data_model_and_method(name, roots, tmp_path):
    dataset = compose([f"experiment={name}"]).data.name
    cfg = compose([f"experiment={name}", f"data.root={roots[dataset]}", "data.num_workers=0"])
    prepared = prepare(cfg, RunDir(tmp_path / "run"))
    assert prepared.data.name == dataset and prepared.data.num_classes > 1
    assert prepared.ctx.prunable and prepared.method.num_levels() >= 1
    plan = prepared.method.plan(0, prepared.ctx)
    assert plan.segment.end > plan.segment.start
    x, y = next(prepared.data.train.batches(0))
    assert x.shape[1:] == (
        prepared.data.in_channels,
        prepared.data.image_size,
        prepared.data.image_size,
    )
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("policy", ["wr", "lrr", "finetune"])
def test_renda_experiments_take_the_retraining_policy_from_the_command_line(policy):
    cfg = compose(["experiment=renda_resnet20_cifar10", f"prune={policy}"])
    assert (cfg.prune.name, cfg.prune.rate, cfg.prune.levels, cfg.train.epochs) == (
        policy,
        0.2,
        10,
        182,
    )
