"""Training one level: from the method's plan to the level's saved files.

`train_level` loads the plan's starting weights and mask, builds the optimizer over what the plan
trains, resumes from checkpoint.pt when it belongs to this level, runs the loop and saves mask.pt,
final.pt (and optimizer.pt when the plan asks) and then training.json, which marks the level
trained. Evaluation is a separate stage (sparsify/evaluate/stage.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import torch
from torch import nn

from sparsify.config import TrainConfig
from sparsify.data.base import Loader
from sparsify.distributed import SINGLE, World
from sparsify.errors import UserError
from sparsify.io import load_torch
from sparsify.methods import LevelPlan
from sparsify.records import Checkpoint, LayerCount, LevelRecord
from sparsify.rundir import RunDir
from sparsify.sparsity import Mask, sparsity_stats
from sparsify.tracking import Tracker
from sparsify.training.loop import LoopEvents, MaskChange, MaskState, cpu_state, train_segment
from sparsify.training.optim import LRSchedule, build_optimizer, mask_optimizer_state
from sparsify.training.precision import Precision
from sparsify.training.trainable import Trainable


@dataclass
class RunState:
    """What stays the same over the levels of one run."""

    model: nn.Module  # on `device`; each level loads its starting weights into it
    train: Loader
    val: Optional[Loader]
    train_cfg: TrainConfig
    schedule: LRSchedule
    device: torch.device
    rd: RunDir
    tracker: Tracker
    prunable: list[str]
    checkpoint_every: int  # iterations
    log_every: int  # iterations
    num_levels: int
    world: World = SINGLE  # torchrun's ranks (sparsify/distributed.py); one process by default


def load_optimizer(optimizer: torch.optim.Optimizer, state: Any, path: Any, remedy: str) -> None:
    """Load a saved optimizer state; a UserError naming `path` and `remedy` if it does not fit:
    other parameter groups or counts, or a per-parameter state tensor (a momentum buffer, say)
    of another shape than its parameter, which load_state_dict accepts and the first step
    would fail on. RuntimeError is not caught: running out of memory is no mismatch."""
    try:
        optimizer.load_state_dict(state)
        for group in optimizer.param_groups:
            for i, p in enumerate(group["params"]):
                for key, value in optimizer.state.get(p, {}).items():
                    shaped = isinstance(value, torch.Tensor) and value.dim() > 0
                    if shaped and value.shape != p.shape:
                        raise ValueError(
                            f"optimizer state {key} of parameter {i} has shape "
                            f"{tuple(value.shape)}, not {tuple(p.shape)}"
                        )
    except (ValueError, KeyError) as e:
        reason = " ".join(str(e).split())[:200]
        raise UserError(f"{path} does not fit this run's optimizer ({reason}); {remedy}") from None


def resume_level(
    state: RunState,
    level: int,
    plan: LevelPlan,
    ckpt: Optional[Checkpoint],
    optimizer: torch.optim.Optimizer,
    precision: Precision,
) -> Optional[tuple[Mask, int]]:
    """Restore the model, what trains, the optimizer, the loss scale and the RNG from `ckpt` if
    it was written
    inside this level's segment; returns (the mask in force then, the iteration reached), or
    None when the level starts from its beginning. The model's and the trainable's state were
    checked against the run before anything was written."""
    if ckpt is None or ckpt.level != level or not plan.segment.start < ckpt.step < plan.segment.end:
        return None
    rd, model, trains = state.rd, state.model, plan.trains
    model.load_state_dict(ckpt.model)
    if trains.state_key is not None:
        trains.load_state_dict(ckpt.extra[trains.state_key])
    load_optimizer(
        optimizer, ckpt.optimizer, rd.checkpoint_path, f"delete it to restart level {level}"
    )
    precision.load_state_dict(ckpt.extra)
    # the mask in force when the checkpoint was written (methods may change it mid-level)
    mask = Mask.from_state_dict(ckpt.mask, plan.mask, str(rd.checkpoint_path))
    torch.set_rng_state(ckpt.rng["torch"])
    cuda_states = ckpt.rng.get("cuda") or []
    if torch.cuda.is_available() and len(cuda_states) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda_states)  # nothing draws from it today; kept exact
    state.tracker.write({"event": "resume", "step": ckpt.step})
    return mask, ckpt.step


def _checkpoint(
    state: RunState,
    level: int,
    step: int,
    opt: torch.optim.Optimizer,
    masks: MaskState,
    trains: Trainable,
    precision: Precision,
) -> Checkpoint:
    extra = {trains.state_key: trains.state_dict()} if trains.state_key is not None else {}
    return Checkpoint(
        level=level,
        step=step,
        model=cpu_state(state.model),
        optimizer=opt.state_dict(),
        mask=dict(masks.mask),
        rng={
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        },
        extra={**extra, **precision.state_dict()},
    )


def _snapshot(
    rd: RunDir,
    level: int,
    name: str,
    weights: dict[str, torch.Tensor],
    opt: torch.optim.Optimizer,
    plan: LevelPlan,
) -> None:
    """The weights at a named iteration and, when the plan keeps it, the optimizer's state
    beside them (written first: the weights' file is what later levels look for)."""
    if plan.save_optimizer:
        rd.save_snapshot_optimizer(level, name, opt.state_dict())
    rd.save_snapshot(level, name, weights)


def level_record(
    level: int, final: dict[str, torch.Tensor], prunable: list[str], iterations: int
) -> LevelRecord:
    """The training record of a level, its sparsity counted from the saved weights."""
    stats = sparsity_stats({n: final[n] for n in prunable})
    return LevelRecord(
        level=level,
        sparsity=stats.sparsity,
        nonzero_params=stats.nonzero,
        prunable_params=stats.total,
        iterations=iterations,
        layers={n: LayerCount(nz, t) for n, (nz, t) in stats.per_layer.items()},
    )


def train_level(
    state: RunState, level: int, plan: LevelPlan, ckpt: Optional[Checkpoint]
) -> LevelRecord:
    """Train `level` as `plan` says (resuming from `ckpt` where it belongs to it) and save it;
    returns its training record."""
    model, rd, trains = state.model, state.rd, plan.trains
    model.load_state_dict(plan.weights)
    plan.mask.apply_(model)
    trains.start(model)
    optimizer = build_optimizer(trains.param_groups(model, state.train_cfg), state.train_cfg)
    if plan.resume_optimizer_from_previous:  # (a checkpoint of this level, below, supersedes it)
        assert level > 0 and plan.optimizer_snapshot is None
        load_optimizer(
            optimizer,
            rd.load_optimizer(level - 1),
            rd.optimizer_path(level - 1),
            f"delete level {level - 1}'s folder to re-run it",
        )
        mask_optimizer_state(optimizer, model, plan.mask)
    if plan.optimizer_snapshot is not None:
        assert level > 0
        path = rd.snapshot_path(0, f"{plan.optimizer_snapshot}_optimizer")
        remedy = "delete level 0's folder to re-run it"
        saved = load_torch(path, "optimizer state")
        if not isinstance(saved, dict) or not {"state", "param_groups"} <= set(saved):
            raise UserError(f"{path} is not an optimizer state; {remedy}")
        load_optimizer(optimizer, saved, path, remedy)
        mask_optimizer_state(optimizer, model, plan.mask)
    precision = Precision.for_device(state.train_cfg.precision, state.device)
    resumed = resume_level(state, level, plan, ckpt, optimizer, precision)
    mask, resume_from = resumed if resumed is not None else (plan.mask, None)

    def mask_changed(step: int, change: MaskChange) -> None:
        event = {"event": "mask", "step": step, "sparsity": change.mask.sparsity}
        state.tracker.log({**event, "reset_momentum": change.reset_momentum})

    masks = MaskState(model, mask, on_change=mask_changed)
    events = LoopEvents(
        log=state.tracker.log,
        console=state.tracker.console,
        checkpoint=lambda step, opt: (
            rd.save_checkpoint(_checkpoint(state, level, step, opt, masks, trains, precision))
            if state.world.main
            else None
        ),
        snapshot=lambda name, weights, opt: _snapshot(rd, level, name, weights, opt, plan),
        checkpoint_every=state.checkpoint_every,
        log_every=state.log_every,
        title=f"level {level}/{state.num_levels - 1}",
    )
    train_segment(
        model,
        state.train,
        state.val,
        optimizer,
        masks,
        plan.segment,
        state.schedule,
        state.train_cfg,
        state.device,
        events,
        forward=trains.forward,
        resume_from=resume_from,
        precision=precision,
        world=state.world,
    )
    mask = trains.finish(model, masks.mask)
    final = cpu_state(model)
    if plan.save_optimizer:  # before training.json, which marks the level trained
        rd.save_optimizer(level, optimizer.state_dict())
    for stem, content in trains.artifacts().items():  # as well
        rd.save_artifact(level, stem, content)
    record = level_record(level, final, state.prunable, plan.segment.end - plan.segment.start)
    rd.save_trained_level(mask, final, record)
    return record
