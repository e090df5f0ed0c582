"""Evaluate a user's own pruned state_dict against a dense one, without sparsify having trained
either: `python -m sparsify.evaluate --weights PRUNED.pt --dense DENSE.pt --out DIR [model=...
data=... eval=...]`.

The two state_dicts (loaded with weights_only=True, checked key by key and shape by shape against
the model that `model=` and `data=` build) become a run directory at DIR as one-shot magnitude
pruning would have left it: level 0 the dense weights (all-ones mask), level 1 the pruned weights
(the mask is where they are nonzero; sparsity is counted from them). It is then evaluated like
any run, and can be evaluated again later with `python -m sparsify.evaluate DIR eval=...`.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, Optional

import torch
from omegaconf import OmegaConf

from sparsify.errors import UserError
from sparsify.io import load_torch, save_torch

ALLOWED = ("data", "model", "seed", "eval", "backend", "device")


def import_and_evaluate(
    weights: Path, dense: Path, out: Path, overrides: list[str]
) -> Optional[dict[str, Any]]:
    """Write (or find again) the run directory `out` for `weights` against `dense`, and evaluate
    it with the evaluation settings of `overrides`; returns the results.json content."""
    from sparsify.compose import compose
    from sparsify.evaluate.__main__ import evaluate_run
    from sparsify.level import level_record
    from sparsify.run import prepare
    from sparsify.rundir import RunDir, check_state
    from sparsify.sparsity.mask import Mask

    for override in overrides:
        key = override.split("=", 1)[0].lstrip("+~").split(".", 1)[0].split("/", 1)[0]
        if key not in ALLOWED:
            raise UserError(
                f"{override!r}: with --weights only {', '.join(ALLOWED)} and their keys may be "
                "given (the weights were not trained by sparsify)"
            )
    evaluation = [o for o in overrides if o.split("=", 1)[0].split(".")[0] in ALLOWED[3:]]
    cfg = compose(["prune=magnitude", *overrides])
    rd = RunDir(Path(out))
    fresh = not rd.config_path.exists()
    if fresh and rd.path.exists() and any(rd.path.iterdir()):
        raise UserError(f"{rd.path} exists and is not an imported run; choose another --out")
    # everything checked as a run checks it (data, model, method) before a file is written
    prepared = prepare(cfg, RunDir(rd.path / "unused") if fresh else rd)
    like, prunable = prepared.init, prepared.view.prunable
    states = []
    for path, what in ((dense, "dense weights"), (weights, "pruned weights")):
        state = check_state(load_torch(Path(path), what), like, f"{what} {path}")
        states.append({k: v.detach().to(like[k].dtype).contiguous() for k, v in state.items()})
    if not fresh:
        for level, state in enumerate(states):
            saved = rd.load_final(level, like) if rd.level_trained(level) else None
            if saved is None or any(not torch.equal(saved[k], state[k]) for k in state):
                raise UserError(
                    f"{rd.path} holds other weights than those given; choose another --out"
                )
    else:  # written beside, then renamed into place: an interrupted import leaves no run
        tmp = RunDir(rd.path.with_name(f".{rd.path.name}.importing"))
        shutil.rmtree(tmp.path, ignore_errors=True)
        tmp.path.mkdir(parents=True)
        tmp.write_config(OmegaConf.to_container(cfg, resolve=True))
        save_torch(states[0], tmp.init_path)
        for level, state in enumerate(states):
            kept = {
                n: state[n] != 0 if level else torch.ones_like(state[n], dtype=torch.bool)
                for n in prunable
            }
            tmp.save_trained_level(Mask(kept), state, level_record(level, state, prunable, 0))
        if rd.path.exists():
            rd.path.rmdir()  # empty (checked above)
        tmp.path.rename(rd.path)
    return evaluate_run(rd.path, evaluation)
