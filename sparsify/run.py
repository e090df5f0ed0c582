"""One run: build everything and check it, then for each level of the method: train (level.py),
evaluate (evaluate/stage.py), record; then results.json and the report.

Everything the user can get wrong is checked before the first file is written. Re-running in the
same directory resumes: trained levels are read back, an unfinished level continues from
checkpoint.pt, and on the CPU with a fixed seed the results equal an uninterrupted run's.
Evaluators whose results a level already holds are not run again.
"""

from __future__ import annotations

import functools
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from sparsify.data import build_data
from sparsify.data.base import DataBundle
from sparsify.distributed import SINGLE, World, check_batches, device_for
from sparsify.errors import UserError
from sparsify.evaluate.stage import EvaluationStage, skipped
from sparsify.identity import config_hash, find_renamed_run, run_name, study_key
from sparsify.io import save_torch
from sparsify.level import RunState, train_level
from sparsify.methods import METHODS, Context, Method
from sparsify.models import build_model
from sparsify.records import LevelRecord, RunResults
from sparsify.report import write_report
from sparsify.rundir import ReadOnlyRunDir, RunDir, check_state
from sparsify.runview import RunView
from sparsify.seeding import FRESH_INIT, METHOD_STREAM, seeded_generator
from sparsify.sparsity import prunable_weights
from sparsify.sparsity.gradient import init_gradient
from sparsify.tracking import SilentTracker, Tracker
from sparsify.training.loop import cpu_state
from sparsify.training.optim import LRSchedule
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


@dataclass
class Prepared:
    """Everything a run builds before it writes anything."""

    data: DataBundle
    model: torch.nn.Module  # on the CPU, initialised
    init: dict[str, torch.Tensor]
    method: Method
    ctx: Context
    view: RunView


def prepare(cfg: DictConfig, rd: RunDir) -> Prepared:
    """Build data, model and method and check them together; reads `rd` (a resumed run's initial
    weights and levels) but writes nothing. UserError for anything the user can fix."""
    data = build_data(cfg.data, cfg.train.batch_size, cfg.eval.batch_size, cfg.seed)

    def build() -> torch.nn.Module:
        return build_model(cfg.model, data.num_classes, data.in_channels, data.image_size)

    torch.manual_seed(cfg.seed)
    model = build()
    init = cpu_state(model)
    if rd.init_path.exists():  # a resumed run starts from the weights it started from
        init = rd.load_state(rd.init_path, init, "initial weights")
    method = METHODS.get(cfg.prune.name)(cfg.prune)
    prunable = list(prunable_weights(model, cfg.prune.exclude))
    if not prunable and method.prunes:
        raise UserError(
            f"prune.exclude={list(cfg.prune.exclude)} leaves no conv or linear weight to prune"
        )
    view = RunView(rd, init, prunable, build)
    ipe = len(data.train)
    total = cfg.train.epochs * ipe
    ctx = Context(
        init=init,
        prunable=prunable,
        iterations_per_epoch=ipe,
        total=total,
        schedule=LRSchedule(cfg.train, ipe, total),
        final=view.final,
        mask=view.mask,
        snapshot=view.snapshot,
        seed=cfg.seed,
        fresh_init=lambda key: _fresh_init(cfg, build, key),
        init_gradient=functools.cache(
            lambda count: init_gradient(build, init, prunable, data.train, count)
        ),
    )
    method.check(ctx)
    chosen = cfg.eval.get("dense_level")
    if chosen is not None and not 0 <= chosen < method.num_levels():
        raise UserError(
            f"eval.dense_level={chosen} is not a level of this run; choose one of "
            f"0..{method.num_levels() - 1}, or null for the method's dense level"
        )
    return Prepared(data, model, init, method, ctx, view)


def _fresh_init(cfg: DictConfig, build, key: int) -> dict[str, torch.Tensor]:
    """Another initialisation of the same model (for prune.restart=reinit), seeded by (seed, key),
    without touching the global RNG that training draws from."""
    seed = seeded_generator(METHOD_STREAM, cfg.seed, FRESH_INIT, key).initial_seed()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return cpu_state(build())


def _refuse_renamed(rd: RunDir, config: dict[str, Any]) -> None:
    """A new run whose training an earlier sparsify already ran under another name: refused, with
    how to continue it, rather than trained again beside it."""
    if rd.path.name != run_name(config):
        return  # placed by hand (hydra.run.dir): the user chose the folder
    old = find_renamed_run(rd.path, config)
    if old is not None:
        raise UserError(
            f"{old} holds this run under the name an earlier sparsify gave it (names now hash "
            f"only training settings that differ from their defaults); to continue it, rename "
            f"it: mv {old} {rd.path}, or delete it to start over"
        )


def level_line(record: LevelRecord, stage: EvaluationStage, num_levels: int) -> str:
    """The console line of an evaluated level: sparsity, then every headline metric."""
    line = (
        f"[level {record.level}/{num_levels - 1}] sparsity {100 * record.sparsity:.2f}%  "
        f"({record.nonzero_params}/{record.prunable_params} weights)"
    )
    for key, spec in stage.specs.items():
        if spec.headline and key in record.metrics:
            line += f"  {stage.split} {spec.label} {spec.format(record.metrics[key])}"
    return line


def publish(
    rd: RunDir,
    config: dict[str, Any],
    stage: EvaluationStage,
    records: list[LevelRecord],
) -> RunResults:
    """results.json and the report, from the evaluated records."""
    results = RunResults(
        method=config["prune"]["name"],
        model=config["model"]["name"],
        data=config["data"]["name"],
        seed=int(config.get("seed", 0)),
        split=stage.split,
        run=run_name(config),
        study=study_key(config),
        dense_level=stage.dense_level,
        levels=records,
        summary=stage.summarize(records),
        eval_images=stage.eval_images,
    )
    rd.save_results(results)
    write_report(rd, results, records, stage.entries, stage.summaries)
    return results


def _agree(world: World, setup) -> Any:
    """`setup()` on every rank; under torchrun, a UserError on any rank stops them all (rank 0
    prints it), so no rank waits forever for one that gave up."""
    if not world.active:
        return setup()
    try:
        out = setup()
    except UserError as e:
        world.agree(str(e))
        raise
    other = world.agree(None)
    if other is not None:
        raise UserError(other)
    return out


def run(cfg: DictConfig, run_dir: Path, world: World = SINGLE) -> dict[str, Any]:
    """Run (or resume) the experiment `cfg` in `run_dir`; returns the results.json content.
    Under torchrun (`world`, sparsify/distributed.py) every rank calls it; rank 0 writes and
    evaluates, and the others train their shards and return {}."""
    config = OmegaConf.to_container(cfg, resolve=True)
    assert isinstance(config, dict)
    rd = RunDir(run_dir) if world.main else ReadOnlyRunDir(run_dir)

    def setup() -> tuple:
        device = device_for(world, cfg.device) if world.active else resolve_device(cfg.device)
        resuming = rd.check_config(config)
        if not resuming:
            _refuse_renamed(rd, config)
        prepared = prepare(cfg, rd)
        train = prepared.data.train
        check_batches(world, train.batch_size, train.num_samples, len(train))
        n_levels = prepared.method.num_levels()
        # Only an unfinished run needs its checkpoint (a finished run's may be stale or damaged).
        unfinished = any(not rd.level_trained(lv) for lv in range(n_levels))
        ckpt = rd.load_checkpoint() if resuming and unfinished else None
        if ckpt is not None:
            check_state(ckpt.model, prepared.init, f"{rd.checkpoint_path}")
            prepared.method.check_checkpoint(ckpt, prepared.ctx, f"{rd.checkpoint_path}")
        # evaluation runs on rank 0 (it can still refuse: missing corruption data, say)
        stage = EvaluationStage(cfg, prepared.data, prepared.view, device) if world.main else None
        return device, resuming, prepared, ckpt, stage

    device, resuming, prepared, ckpt, stage = _agree(world, setup)
    method, ctx = prepared.method, prepared.ctx
    for note in skipped(cfg) if world.main else []:  # eval.if_possible entries it cannot run
        print(f"sparsify: {note}")
    model = prepared.model.to(device)
    n_levels = method.num_levels()
    ckpt_every = max(
        1,
        to_iterations(
            cfg.train.checkpoint_every, ctx.iterations_per_epoch, "train.checkpoint_every"
        ),
    )

    # ---- from here on, files are written (by rank 0) ----
    def start_tracker() -> Tracker:
        if not world.main:
            return SilentTracker()
        rd.path.mkdir(parents=True, exist_ok=True)
        try:  # first, since wandb can still refuse to start (not logged in, no network)
            return Tracker(rd, cfg.logger, config, config_hash(config), run_name(config))
        except UserError:
            if not resuming:
                shutil.rmtree(rd.wandb_dir, ignore_errors=True)
            raise

    tracker = _agree(world, start_tracker)
    ok = False
    try:
        rd.remove_stale_temporaries()
        if not resuming:
            rd.write_config(config)
        if world.main and not rd.init_path.exists():
            save_torch(prepared.init, rd.init_path)
        state = RunState(
            model=model,
            train=prepared.data.train,
            val=prepared.data.val if world.main else None,
            train_cfg=cfg.train,
            schedule=ctx.schedule,
            device=device,
            rd=rd,
            tracker=tracker,
            prunable=ctx.prunable,
            checkpoint_every=ckpt_every,
            log_every=cfg.logger.log_every,
            num_levels=n_levels,
            world=world,
        )
        records, waiting, offset = [], [], 0
        for level in range(n_levels):
            tracker.start_level(level, offset)
            if rd.level_trained(level):
                record = rd.training_record(level)
            else:
                plan = method.plan(level, ctx)
                world.check_same(
                    f"starting weights and mask of level {level}",
                    {**plan.weights, **{f"mask:{n}": m for n, m in plan.mask.items()}},
                )
                record = train_level(state, level, plan, ckpt)
                ckpt = None
                world.barrier()  # rank 0 has saved the level: the others may read it
            offset += record.iterations
            if stage is None:  # not rank 0: rank 0 evaluates
                continue
            waiting.append(record)
            if not stage.ready(level):  # eval.dense_level: a later level is the dense parent
                continue
            for record in waiting:
                record = stage.evaluate(record)
                if rd.save_metrics(record):  # new results: a level event and a console line
                    tracker.log_level(record)
                    tracker.console(level_line(record, stage, n_levels))
                records.append(record)
            waiting = []
        if stage is None:
            ok = True
            return {}
        published = publish(rd, config, stage, records)
        ok = True
        try:  # the run is done and on disk: wandb failing at the end must not undo that
            tracker.log_results(published)
        except Exception as e:  # noqa: BLE001
            print(f"sparsify: warning: wandb did not take the run's results: {e}")
        return published.to_json()
    finally:
        tracker.finish(ok)
