"""One run: build everything, then for each level of the method plan → train → evaluate → save,
then results.json and the report.

Everything the user can get wrong is checked before the first file is written. Re-running in the
same directory resumes: finished levels are read back, an unfinished level continues from
checkpoint.pt, and on the CPU with a fixed seed the results equal an uninterrupted run's.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import torch
from omegaconf import DictConfig, OmegaConf

from sparsify.backend import evaluate_level
from sparsify.data import build_data
from sparsify.data.base import DataBundle
from sparsify.errors import UserError
from sparsify.io import remove_stale_temporaries, save_json, save_torch
from sparsify.methods import METHODS, Context, LevelPlan, Method
from sparsify.models import build_model
from sparsify.report import write_report
from sparsify.rundir import RunDir, check_state, config_hash, run_name
from sparsify.seeding import FRESH_INIT, METHOD_STREAM, seeded_generator
from sparsify.sparsity import Mask, MaskEnforcer, prunable_weights, sparsity_stats
from sparsify.tracking import Tracker
from sparsify.training.loop import Hooks, MaskChange, train_segment
from sparsify.training.optim import LRSchedule, build_optimizer
from sparsify.training.steps import to_iterations


def resolve_device(name: str) -> torch.device:
    """The torch device for `device=...`; a UserError if this machine does not have it."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda"):
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        index = int(name.split(":")[1]) if ":" in name else 0
        if index >= count:
            raise UserError(
                f"device={name} but this machine has {count} CUDA GPU(s); "
                "use device=cpu, device=auto" + (", or cuda:0" if count else "")
            )
    if name == "mps" and not torch.backends.mps.is_available():
        raise UserError("device=mps but Apple's MPS backend is not available; use cpu or auto")
    return torch.device(name)


def _cpu_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


@dataclass
class Prepared:
    """Everything a run builds before it writes anything."""

    data: DataBundle
    model: torch.nn.Module  # on the CPU, initialised
    init: dict[str, torch.Tensor]
    prunable: list[str]
    method: Method
    ctx: Context


def prepare(cfg: DictConfig, rd: RunDir) -> Prepared:
    """Build data, model and method and check them together; reads `rd` (a resumed run's initial
    weights and levels) but writes nothing. UserError for anything the user can fix."""
    data = build_data(cfg.data, cfg.train.batch_size, cfg.eval.batch_size, cfg.seed)
    torch.manual_seed(cfg.seed)
    model = build_model(cfg.model, data.num_classes, data.in_channels, data.image_size)
    init = _cpu_state(model)
    if rd.init_path.exists():  # a resumed run starts from the weights it started from
        init = rd.load_state(rd.init_path, init, "initial weights")
    prunable = list(prunable_weights(model, cfg.prune.exclude))
    if not prunable and cfg.prune.name != "dense":
        raise UserError(
            f"prune.exclude={list(cfg.prune.exclude)} leaves no conv or linear weight to prune"
        )
    ipe = len(data.train)
    total = cfg.train.epochs * ipe
    method = METHODS.get(cfg.prune.name)(cfg.prune)
    weights_like = {n: init[n] for n in prunable}
    ctx = Context(
        init=init,
        prunable=prunable,
        iterations_per_epoch=ipe,
        total=total,
        schedule=LRSchedule(cfg.train, ipe, total),
        final=lambda lv: rd.load_state(rd.level_dir(lv) / "final.pt", init, "level weights"),
        mask=lambda lv: rd.load_mask(lv, weights_like),
        snapshot=lambda lv, name: rd.load_state(rd.level_dir(lv) / f"{name}.pt", init, "snapshot"),
        seed=cfg.seed,
        fresh_init=lambda key: _fresh_init(cfg, data, key),
    )
    method.check(ctx)
    return Prepared(data, model, init, prunable, method, ctx)


def run(cfg: DictConfig, run_dir: Path) -> dict[str, Any]:
    """Run (or resume) the experiment `cfg` in `run_dir`; returns the results.json content."""
    config = OmegaConf.to_container(cfg, resolve=True)
    assert isinstance(config, dict)
    device = resolve_device(cfg.device)
    rd = RunDir(run_dir)
    resuming = rd.check_config(config)

    prepared = prepare(cfg, rd)
    data, model, init, prunable = prepared.data, prepared.model, prepared.init, prepared.prunable
    method, ctx, schedule = prepared.method, prepared.ctx, prepared.ctx.schedule
    model.to(device)
    ipe = ctx.iterations_per_epoch
    ckpt_every = max(1, to_iterations(cfg.train.checkpoint_every, ipe, "train.checkpoint_every"))
    # Only an unfinished run needs its checkpoint (a finished run's may be stale or damaged).
    unfinished = any(not rd.level_done(lv) for lv in range(method.num_levels()))
    ckpt = rd.load_checkpoint() if resuming and unfinished else None
    if ckpt is not None:
        check_state(ckpt["model"], init, f"{rd.checkpoint_path}")
        method.check_checkpoint(ckpt, ctx, f"{rd.checkpoint_path}")

    # ---- from here on, files are written ----
    rd.path.mkdir(parents=True, exist_ok=True)
    try:  # first, since wandb can still refuse to start (not logged in, no network)
        tracker = Tracker(rd.path, cfg.logger, config, config_hash(config), run_name(config))
    except UserError:
        if not resuming:
            shutil.rmtree(rd.path / "wandb", ignore_errors=True)
        raise
    ok = False
    try:
        remove_stale_temporaries(rd.path)
        if not resuming:
            rd.write_config(config)
        if not rd.init_path.exists():
            save_torch(init, rd.init_path)
        records, offset = [], 0
        n_levels = method.num_levels()
        for level in range(n_levels):
            tracker.start_level(level, offset)
            if rd.level_done(level):
                record = rd.level_record(level)
                records.append(record)
                offset += record.get("iterations", 0)
                continue
            plan = method.plan(level, ctx)
            record = _run_level(
                level,
                n_levels,
                plan,
                model,
                data,
                cfg,
                device,
                rd,
                tracker,
                ckpt,
                ckpt_every,
                schedule,
                prunable,
            )
            ckpt = None
            records.append(record)
            offset += record["iterations"]
            tracker.log_level(record)
        results = {
            "method": cfg.prune.name,
            "model": cfg.model.name,
            "data": cfg.data.name,
            "seed": cfg.seed,
            "split": cfg.eval.split,
            "levels": [{k: v for k, v in r.items() if k != "layers"} for r in records],
        }
        save_json(results, rd.path / "results.json")
        write_report(rd.path, results, records, config)
        ok = True
        return results
    finally:
        tracker.finish(ok)


def _fresh_init(cfg: DictConfig, data, key: int) -> dict[str, torch.Tensor]:
    """Another initialisation of the same model (for prune.restart=reinit), seeded by (seed, key),
    without touching the global RNG that training draws from."""
    seed = seeded_generator(METHOD_STREAM, cfg.seed, FRESH_INIT, key).initial_seed()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = build_model(cfg.model, data.num_classes, data.in_channels, data.image_size)
    return _cpu_state(model)


def _load_optimizer(optimizer: torch.optim.Optimizer, state: Any, path: Any, remedy: str) -> None:
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


def _run_level(
    level: int,
    n_levels: int,
    plan: LevelPlan,
    model: torch.nn.Module,
    data,
    cfg: DictConfig,
    device: torch.device,
    rd: RunDir,
    tracker: Tracker,
    ckpt: Optional[dict[str, Any]],
    ckpt_every: int,
    schedule: LRSchedule,
    prunable: list[str],
) -> dict[str, Any]:
    """Train, evaluate and save one level; returns its record (metrics.json)."""
    model.load_state_dict(plan.weights)
    mask = plan.mask
    mask.apply_(model)
    scores = plan.scores
    if scores is not None:  # only the scores train; the model's weights stay as they are
        scores.to(device)
        scores.freeze(model)
    if scores is None:
        optimizer = build_optimizer(model.parameters(), cfg.train)
    else:
        p = cfg.prune
        group = {
            "params": list(scores.parameters()),
            "lr_scale": (p.score_lr if p.score_lr is not None else cfg.train.lr) / cfg.train.lr,
            "weight_decay": p.score_weight_decay
            if p.score_weight_decay is not None
            else cfg.train.weight_decay,
        }
        optimizer = build_optimizer([group], cfg.train)
    enforcer = MaskEnforcer(model, mask)
    if plan.continue_optimizer:  # (a checkpoint of this level, below, supersedes it)
        assert level > 0
        _load_optimizer(
            optimizer,
            rd.load_optimizer(level - 1),
            rd.optimizer_path(level - 1),
            f"delete level {level - 1}'s folder to re-run it",
        )
    resume_from = None
    if (
        ckpt is not None
        and ckpt["level"] == level
        and plan.segment.start < ckpt["step"] < plan.segment.end
    ):
        # the model's and the scores' keys and shapes were checked before anything was written
        model.load_state_dict(ckpt["model"])
        if scores is not None:
            scores.load_state_dict(ckpt["scores"])
        _load_optimizer(
            optimizer, ckpt["optimizer"], rd.checkpoint_path, f"delete it to restart level {level}"
        )
        # the mask in force when the checkpoint was written (methods may change it mid-level)
        mask = Mask.from_state_dict(ckpt["mask"], plan.mask, str(rd.checkpoint_path))
        enforcer = MaskEnforcer(model, mask)
        torch.set_rng_state(ckpt["rng"]["torch"])
        cuda_states = ckpt["rng"].get("cuda") or []
        if torch.cuda.is_available() and len(cuda_states) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda_states)  # nothing draws from it today; kept exact
        resume_from = ckpt["step"]
        tracker.write({"event": "resume", "step": resume_from})

    def checkpoint(step: int, opt: torch.optim.Optimizer) -> None:
        rd.save_checkpoint(
            {
                "level": level,
                "step": step,
                "model": _cpu_state(model),
                "optimizer": opt.state_dict(),
                "mask": dict(mask),
                **({"scores": scores.state_dict()} if scores is not None else {}),
                "rng": {
                    "torch": torch.get_rng_state(),
                    "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
                },
            }
        )

    def snapshot(name: str, state: dict[str, torch.Tensor]) -> None:
        save_torch(state, rd.level_dir(level) / f"{name}.pt")

    def change_mask(step: int, change: MaskChange) -> MaskEnforcer:
        nonlocal mask
        mask = change.mask
        mask.apply_(model)
        tracker.log(
            {
                "event": "mask",
                "step": step,
                "sparsity": mask.sparsity,
                "reset_momentum": change.reset_momentum,
            }
        )
        return MaskEnforcer(model, mask)

    hooks = Hooks(
        log=tracker.log,
        checkpoint=checkpoint,
        snapshot=snapshot,
        change_mask=change_mask,
        mask=lambda: mask,
        prunable=prunable,
        checkpoint_every=ckpt_every,
        log_every=cfg.logger.log_every,
        title=f"level {level}/{n_levels - 1}",
    )
    train_segment(
        model,
        data,
        optimizer,
        enforcer,
        plan.segment,
        schedule,
        cfg.train,
        device,
        hooks,
        resume_from,
    )

    if scores is not None:
        mask = scores.finalize(model)  # the model now holds the weights the learnt mask keeps
        scores.release(model)
    final = _cpu_state(model)
    if plan.keep_optimizer:  # before metrics.json, which marks the level finished
        save_torch(optimizer.state_dict(), rd.optimizer_path(level))
    stats = sparsity_stats({n: final[n] for n in prunable})
    evaluated = evaluate_level(model, data, cfg, device)  # metrics (+ kernels, speed)
    metrics = evaluated["metrics"]
    record = {
        "level": level,
        "sparsity": stats.sparsity,
        "nonzero_params": stats.nonzero,
        "prunable_params": stats.total,
        **evaluated,
        "iterations": plan.segment.end - plan.segment.start,
        "layers": {n: {"nonzero": nz, "total": t} for n, (nz, t) in stats.per_layer.items()},
    }
    rd.save_level(level, mask, final, record)
    acc = metrics.get("accuracy")
    print(
        f"[level {level}/{n_levels - 1}] sparsity {100 * stats.sparsity:.2f}%  "
        f"({stats.nonzero}/{stats.total} weights)"
        + (f"  {cfg.eval.split} accuracy {100 * acc:.2f}%" if acc is not None else "")
        + (_speed_line(record["speed"]) if "speed" in record else "")
    )
    return record


def _speed_line(speed: dict) -> str:
    return (
        f"  kernels {speed['triton_ms']:.3f} ms vs torch {speed['torch_ms']:.3f} ms "
        f"({speed['speedup']:.2f}x, batch {speed['batch']}, {speed['dtype']})"
    )
