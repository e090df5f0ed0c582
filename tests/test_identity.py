"""A run's identity: names pinned so a later change cannot rename runs silently; growth of the
schema, evaluation and the backend never rename a run; the seeds of one experiment share a study
key; a run named by an earlier sparsify is found and refused with how to continue it."""

import dataclasses
import json
from pathlib import Path

import pytest
import yaml
from omegaconf import OmegaConf

from sparsify import config as schema
from sparsify.compose import compose
from sparsify.errors import UserError
from sparsify.identity import RETIRED_DEFAULTS, run_name, study_key
from sparsify.methods import METHODS
from sparsify.run import run

# Change these only on purpose: every existing run of these configs would lose its folder.
PINNED = {
    (): "lth-lenet300_100-digits-s0-7c780519",
    ("prune=gmp",): "gmp-lenet300_100-digits-s0-82343c60",  # layerwise, Zhu & Gupta (issue 12)
    ("prune=supermask",): "supermask-lenet300_100-digits-s0-10641065",  # Zhou et al.'s settings (issue 12)
    ("prune=edgepopup", "seed=2"): "edgepopup-lenet300_100-digits-s2-a0b0b4dd",
    ("model=resnet20", "prune=magnitude", "prune.sparsity=0.8"): "magnitude-resnet20-digits-s0-ea46c9c5",
    ("data=synthetic", "prune=acdc", "seed=3"): "acdc-lenet300_100-synthetic-s3-868c7de6",
    ("experiment=lth_lenet_mnist",): "lth-lenet300_100-mnist-s0-aaa9064e",
    ("prune=wr", "train.epochs=4"): "wr-lenet300_100-digits-s0-7c9b13de",
}  # fmt: skip


def _config(*overrides: str) -> dict:
    return OmegaConf.to_container(compose(list(overrides)), resolve=True)


@pytest.mark.parametrize("overrides", PINNED)
def test_pinned_configs_keep_their_run_names(overrides):
    assert run_name(_config(*overrides)) == PINNED[overrides]


def test_adding_a_defaulted_field_to_a_config_dataclass_keeps_every_pinned_run_name(monkeypatch):
    """A new knob (here one in train and one in every method's schema) at its default value is
    not part of any run's identity."""
    grown_train = dataclasses.make_dataclass(
        "GrownTrain",
        [("new_knob", float, dataclasses.field(default=0.5))],
        bases=(schema.TrainConfig,),
    )
    monkeypatch.setattr(schema, "TrainConfig", grown_train)
    for name in METHODS.names():
        method = METHODS.get(name)
        grown = dataclasses.make_dataclass(
            f"Grown{name}",
            [("new_knob", int, dataclasses.field(default=3))],
            bases=(method.config_class,),
        )
        monkeypatch.setattr(method, "config_class", grown)
    for overrides, name in PINNED.items():
        config = _config(*overrides)
        config["train"]["new_knob"] = 0.5  # what composing the grown schema would add
        config["prune"]["new_knob"] = 3
        assert run_name(config) == name
        config["prune"]["new_knob"] = 4  # a value that differs from the default: a new run
        assert run_name(config) != name


def test_evaluation_backend_logging_and_progress_leave_the_name_alone():
    base = run_name(_config())
    assert run_name(_config("eval.split=val", "eval.batch_size=7", "backend=triton")) == base
    assert run_name(_config("eval.evaluators=[accuracy]", "eval.speed.reps=3")) == base
    assert run_name(_config("logger=wandb", "train.progress=false", "data.num_workers=2")) == base
    assert run_name(_config("train.checkpoint_every=3ep", "data.download=true")) == base
    assert run_name(_config("train.lr=0.01")) != base and run_name(_config("device=cpu")) != base


def test_the_seeds_of_one_experiment_share_a_study_key_and_other_settings_do_not():
    a, b = _config("seed=0"), _config("seed=5")
    assert run_name(a) != run_name(b)
    assert study_key(a) == study_key(b) == "lth-lenet300_100-digits-7c780519"
    assert study_key(_config("prune.rate=0.3")) != study_key(a)


def _legacy(run_dir: Path) -> None:
    """Make a run directory look as sparsify before this identity rule wrote it: every schema
    default in config.yaml (all methods' knobs under prune, the backend's speed settings), one
    metrics.json per level and no training.json or eval/."""
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    retired = {k.split(".", 1)[1]: v for k, v in RETIRED_DEFAULTS.items()}
    config["prune"] = {**retired, **config["prune"]}
    config["backend"].update(speed_batch=64, speed_dtype="bfloat16", speed_reps=20)
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    for level in (run_dir / "levels").iterdir():
        (level / "training.json").unlink()
        for result in (level / "eval").rglob("*"):
            if result.is_file():
                result.unlink()
    (run_dir / "results.json").unlink()


TINY = ["train.epochs=1", "prune.levels=1", "eval=accuracy"]


def test_a_run_named_by_an_earlier_sparsify_is_refused_with_how_to_continue_it(tmp_path):
    cfg = compose(TINY)
    name = run_name(OmegaConf.to_container(cfg, resolve=True))
    first = run(cfg, tmp_path / name)
    old = tmp_path / (name.rsplit("-", 1)[0] + "-0badc0de")
    (tmp_path / name).rename(old)
    _legacy(old)
    (tmp_path / name).mkdir()  # as Hydra makes it before the run starts
    with pytest.raises(UserError, match=f"{old} holds this run.*mv {old} {tmp_path / name}"):
        run(cfg, tmp_path / name)
    assert list((tmp_path / name).iterdir()) == []

    # with hydra.run.dir pointing at it, the old folder resumes: nothing is trained again
    trained = (old / "log.jsonl").read_text().count('"event": "train"')
    again = run(cfg, old)
    assert (old / "log.jsonl").read_text().count('"event": "train"') == trained
    assert [lv["metrics"] for lv in again["levels"]] == [lv["metrics"] for lv in first["levels"]]
    assert json.loads((old / "results.json").read_text())["study"] == first["study"]
    # and a different training setting is still refused there
    with pytest.raises(UserError, match="different config.*prune.rate"):
        run(compose([*TINY, "prune.rate=0.5"]), old)
