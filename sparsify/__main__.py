"""`python -m sparsify [group=option ...] [key=value ...]`: compose the config with Hydra,
validate it, run it. User errors end in one line on stderr and exit status 2, nothing written."""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

from sparsify.compose import config_dir, register


def _remove_if_empty(run_dir: Path) -> None:
    """Undo the empty folders Hydra made for a run that never started: up to the nearest folder
    that existed before (recorded by the ValidateFirst callback; else the working directory)."""
    from sparsify import hydra_callbacks

    stop = (hydra_callbacks.existing_ancestor or Path.cwd()).absolute()
    path = run_dir.absolute()
    while path != stop and stop in path.parents and path.is_dir() and not any(path.iterdir()):
        try:
            path.rmdir()
        except OSError:  # another torchrun rank removed it first, or wrote into it
            return
        path = path.parent


def _job_run(cfg: DictConfig, run_dir: Path) -> str:
    """The job's run name, as the sweep's manifest lists it (the folder's name unless
    hydra.sweep.subdir placed it elsewhere)."""
    from omegaconf import OmegaConf

    from sparsify.identity import run_name

    try:
        return run_name(OmegaConf.to_container(cfg, resolve=True))
    except Exception:  # noqa: BLE001 (a config that cannot even resolve: name it by its folder)
        return run_dir.name


def _in_sweep(hc) -> bool:
    """Whether this is a job of a `-m` sweep (under any launcher, in any process)."""
    from hydra.types import RunMode

    return hc.mode == RunMode.MULTIRUN


@contextlib.contextmanager
def _own_gpu(cfg: DictConfig, hc, sweep_dir: Path | None):
    """A sweep job with device=auto on a machine with several GPUs trains on one it claimed
    (sparsify/gpus.py), so jobs that a launcher runs side by side do not share GPU 0."""
    import torch

    if sweep_dir is None or cfg.device != "auto" or not torch.cuda.is_available():
        yield
        return
    from sparsify.gpus import claimed_gpu

    with claimed_gpu(sweep_dir, torch.cuda.device_count(), int(hc.job.num)) as index:
        if index is not None:
            torch.cuda.set_device(index)  # device=auto's "cuda" is now this GPU
        try:
            yield
        finally:  # a reused worker must not keep memory on a GPU it no longer holds
            torch.cuda.empty_cache()


@hydra.main(version_base="1.3", config_path=config_dir(), config_name="config")
def _main(cfg: DictConfig) -> None:
    from hydra.core.hydra_config import HydraConfig

    from sparsify.errors import UserError, exit_with

    hc = HydraConfig.get()
    run_dir = Path(hc.runtime.output_dir)
    sweep_dir = Path(str(hc.sweep.dir)) if _in_sweep(hc) else None
    if sweep_dir is not None:  # a launcher's job process never ran main()
        from sparsify.allocator import keep_freed_memory

        keep_freed_memory()
    try:
        from sparsify.run import run
        from sparsify.validate import validate

        validate(cfg)
        world = _join_ranks(cfg)
        try:
            with _own_gpu(cfg, hc, sweep_dir):
                run(cfg, run_dir, world)
        finally:
            from sparsify.distributed import stop

            stop(world)
        if not world.main:
            return
    except UserError as e:
        _remove_if_empty(run_dir)  # (every rank: each made the folder)
        from sparsify.errors import other_rank

        if other_rank():
            sys.exit(2)  # rank 0 says it
        if sweep_dir is None:
            exit_with(e)
        # a sweep job: say so, record it and let the other jobs run (sweep/failures.py)
        from sparsify.sweep.failures import record_failure

        overrides = list(hc.overrides.task)
        print(f"sparsify: error: in the sweep job {' '.join(overrides)}: {e}", file=sys.stderr)
        record_failure(sweep_dir, _job_run(cfg, run_dir), overrides, str(e))
        return
    if sweep_dir is not None:
        from sparsify.sweep.failures import clear_failure

        clear_failure(sweep_dir, _job_run(cfg, run_dir))
    from sparsify.rundir import RunDir

    rd = RunDir(run_dir)
    print(f"results: {rd.results_path}\nreport:  {rd.report_path('md')}")


def _join_ranks(cfg: DictConfig):
    """This process's torchrun rank, in its process group (sparsify/distributed.py); a single
    process outside torchrun. A UserError for a device or backend that cannot work."""
    from sparsify import distributed

    world = distributed.from_env()
    if world.active:
        backend = distributed.backend_for(world, str(cfg.dist_backend), str(cfg.device))
        distributed.start(world, backend, distributed.device_for(world, str(cfg.device)))
        # every rank made the run's folders (Hydra): after a refusal, remove up to the
        # shallowest folder that existed before any rank started
        import torch.distributed

        from sparsify import hydra_callbacks

        ancestors: list = [None] * world.size
        torch.distributed.all_gather_object(ancestors, hydra_callbacks.existing_ancestor)
        known = [a for a in ancestors if a is not None]
        if known:
            hydra_callbacks.existing_ancestor = min(known, key=lambda a: len(a.parts))
    return world


def _refuse_distributed_sweep() -> None:
    """torchrun trains one run over several processes; a `-m` sweep under it would run every
    job in every process. Sweeps scale through Hydra's launchers instead (docs/scaling.md)."""
    world = os.environ.get("WORLD_SIZE", "1")
    multirun = any(a in ("-m", "--multirun") for a in sys.argv[1:])
    if multirun and world.isdigit() and int(world) > 1:
        if os.environ.get("RANK", "0") == "0":
            print(
                f"sparsify: error: torchrun started {world} processes for a -m sweep; torchrun "
                "trains one run data-parallel: start one torchrun per run, or run the sweep's "
                "jobs with hydra/launcher=slurm or hydra/launcher=local (docs/scaling.md)",
                file=sys.stderr,
            )
        sys.exit(2)


def main() -> None:
    from sparsify.allocator import keep_freed_memory_at_start

    _refuse_distributed_sweep()

    keep_freed_memory_at_start()  # before training allocates: see sparsify/allocator.py
    register()
    os.environ.setdefault("HYDRA_FULL_ERROR", "0")
    try:
        _main()
    except BrokenPipeError:  # e.g. `python -m sparsify --help | head`: the reader left early
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)


if __name__ == "__main__":
    main()
