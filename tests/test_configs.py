"""Every shipped config composes and validates; every registered method and evaluator runs.
Parametrized over conf/ and the registries, so a new YAML, method or evaluator is tested here
without a new test."""

import json
import math
import os
from pathlib import Path

import pytest

from sparsify.compose import compose
from sparsify.data import build_data
from sparsify.evaluate import EVALUATORS
from sparsify.identity import run_name
from sparsify.methods import METHODS
from sparsify.run import run
from tests.tiny import for_method

CONF = Path(__file__).resolve().parents[1] / "conf"
GROUPS = ["data", "model", "prune", "train", "eval", "logger"]
TINY = ["train.epochs=1", "data=synthetic", "data.num_samples=96", "eval=accuracy"]
TINY_PRUNE = ["prune.levels=1", "prune.finetune=2it"]
# phase lengths of gmp and acdc that fit a 3-epoch schedule of 2 iterations per epoch
PHASES = [
    "train.epochs=3",
    "prune.start=1it",
    "prune.stop=4it",
    "prune.frequency=1it",
    "prune.dense_warmup=1ep",
    "prune.final_decompressed=1ep",
    "prune.final_compressed=1ep",
]


def _options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


@pytest.mark.parametrize(
    "override",
    [f"{g}={o}" for g in GROUPS for o in _options(g)]
    + [f"experiment={o}" for o in _options("experiment")],
)
def test_every_shipped_config_option_composes_and_validates(override):
    cfg = compose([override])
    group, option = override.split("=")
    if group in ("data", "model", "prune", "logger"):
        assert cfg[group].name == option


def test_the_experiment_mnist_lenet_follows_the_openlth_protocol():
    cfg = compose(["experiment=lth_lenet_mnist"])
    assert (cfg.data.name, cfg.model.name, cfg.prune.name) == ("mnist", "lenet300_100", "lth")
    assert (cfg.train.epochs, cfg.train.lr, cfg.prune.rate) == (40, 0.1, 0.2)
    assert list(cfg.prune.exclude) == ["fc3.weight"]


@pytest.mark.parametrize("method", METHODS.names())
def test_every_method_runs_end_to_end(tmp_path, method):
    # wr rewinds to 1ep by default
    overrides = for_method(method, [*TINY, *TINY_PRUNE, *PHASES, "prune.rewind=1it"])
    results = run(compose(overrides), tmp_path / method)
    n_levels = METHODS.get(method)(compose(overrides).prune).num_levels()
    assert [lv["level"] for lv in results["levels"]] == list(range(n_levels))
    _matches_expected(method, results)


EXPECTED = Path(__file__).parent / "expect" / "methods.json"


def _matches_expected(method: str, results: dict) -> None:
    """torchvision's expect files: every method's tiny run is pinned (counts exactly, accuracy
    within one test image, loss to 1e-4), so a change in what a method computes cannot pass
    unseen. SPARSIFY_ACCEPT=1 rewrites the entry after a change made on purpose."""
    got = [
        {k: lv[k] for k in ("sparsity", "nonzero_params", "iterations")}
        | {k: lv["metrics"][k] for k in ("accuracy", "loss")}
        for lv in results["levels"]
    ]
    expected = json.loads(EXPECTED.read_text()) if EXPECTED.exists() else {}
    if os.environ.get("SPARSIFY_ACCEPT") == "1":
        expected[method] = got
        EXPECTED.parent.mkdir(exist_ok=True)
        EXPECTED.write_text(json.dumps(expected, indent=1, sort_keys=True) + "\n")
        return
    assert method in expected, f"no expected results for {method}: run with SPARSIFY_ACCEPT=1"
    assert len(got) == len(expected[method])
    for ours, theirs in zip(got, expected[method]):
        assert ours["nonzero_params"] == theirs["nonzero_params"], method
        assert ours["iterations"] == theirs["iterations"], method
        one_image = 1.01 / 19  # the tiny run's test split holds 19 images
        assert ours["accuracy"] == pytest.approx(theirs["accuracy"], abs=one_image), method
        assert ours["loss"] == pytest.approx(theirs["loss"], rel=1e-4), method


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """A finished two-level run, for evaluating again."""
    run_dir = tmp_path_factory.mktemp("trained") / "run"
    run(compose([*TINY, "prune=magnitude", "prune.finetune=2it"]), run_dir)
    return run_dir


@pytest.mark.parametrize("name", EVALUATORS.names())
def test_every_evaluator_returns_finite_declared_numbers_on_a_saved_run(
    name, trained_run, tmp_path
):
    from sparsify.evaluate.__main__ import evaluate_run
    from sparsify.evaluate.stage import needs_met

    entry = EVALUATORS.get(name)
    overrides = [f"eval.evaluators=[{name}]", "eval.if_possible=[]", "device=cpu"]
    if name == "shift":  # a released test set in CIFAR-10.1's format, of the run's image shape
        from tests.formats import write_cifar10_1

        data = build_data(compose(TINY).data, 32, 32, 0)
        write_cifar10_1(tmp_path, 40, data.image_size, data.in_channels)
        overrides.append(f"eval.shift.cifar10_1={tmp_path}")
    if "kernels" in entry.needs:
        overrides.append("backend=triton")  # the kernels run in Triton's interpreter here
    cfg = compose(overrides, validate=False)
    unmet = [n for n in sorted(entry.needs) if not needs_met(n, cfg)]
    if unmet == ["scores"]:  # the fixture is not a supermask run
        pytest.skip(f"{name} needs a supermask run: tests/test_sampled_masks.py runs one")
    if unmet:
        pytest.skip(f"{name} needs {', '.join(unmet)}, which this machine does not have")
    results = evaluate_run(trained_run, overrides)
    for level in results["levels"]:
        metrics = level["metrics"]
        assert metrics and set(metrics) <= set(entry.metrics)
        assert all(isinstance(v, float) and math.isfinite(v) for v in metrics.values())


def test_settings_that_do_not_change_results_keep_the_run_name():
    from omegaconf import OmegaConf

    def name(*overrides):
        return run_name(OmegaConf.to_container(compose(list(overrides)), resolve=True))

    base = name()
    assert name("data.download=true", "data.num_workers=4", "train.progress=false") == base
    assert name("logger=wandb", "train.checkpoint_every=3ep") == base
    assert name("seed=1") != base and name("prune.rate=0.3") != base
    assert base.startswith("lth-lenet300_100-digits-s0-")


def test_a_finished_run_reruns_even_if_its_checkpoint_was_damaged(tmp_path):
    first = run(compose([*TINY, "prune=dense"]), tmp_path / "r")
    (tmp_path / "r" / "checkpoint.pt").write_bytes(b"garbage")
    assert run(compose([*TINY, "prune=dense"]), tmp_path / "r") == first
