"""The shipped wandb Sweep spec (sweeps/wandb_lth.yaml): every run an agent would start is a
command that composes and validates. The arguments are formatted by wandb's own agent code
(`create_sweep_command_args`, what `wandb agent` calls for `${args_no_hyphens}`); no sweep
server is needed (one cannot be created offline) and none is mocked: the grid is expanded here
as wandb's grid search expands it, every combination of the `values`."""

from __future__ import annotations

import itertools
from pathlib import Path

import yaml
from wandb.sdk.launch.sweeps.utils import create_sweep_command_args

from sparsify.compose import compose

SPEC = Path(__file__).resolve().parents[1] / "sweeps" / "wandb_lth.yaml"


def _grid(parameters: dict) -> list[dict]:
    keys = list(parameters)
    choices = [parameters[k]["values"] if "values" in parameters[k] else [parameters[k]["value"]]
               for k in keys]  # fmt: skip
    return [dict(zip(keys, combo)) for combo in itertools.product(*choices)]


def test_the_sweep_command_runs_sparsify_with_hydra_overrides():
    spec = yaml.safe_load(SPEC.read_text())
    assert spec["command"] == ["${env}", "${interpreter}", "-m", "sparsify", "${args_no_hyphens}"]
    assert spec["method"] == "grid" and spec["metric"]["name"] == "final/accuracy"


def test_every_run_of_the_sweep_composes_and_validates():
    spec = yaml.safe_load(SPEC.read_text())
    runs = _grid(spec["parameters"])
    assert len(runs) == 6  # 2 rates x 3 seeds
    seen = set()
    for params in runs:
        args = create_sweep_command_args({"args": {k: {"value": v} for k, v in params.items()}})
        cfg = compose(args["args_no_hyphens"])  # validates too
        assert cfg.prune.name == "lth" and cfg.logger.name == "wandb"
        assert (cfg.prune.rate, cfg.seed) == (params["prune.rate"], params["seed"])
        assert cfg.train.progress is False
        seen.add((cfg.prune.rate, cfg.seed))
    assert len(seen) == 6
