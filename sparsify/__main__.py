"""`python -m sparsify [group=option ...] [key=value ...]`: compose the config with Hydra,
validate it, run it. User errors end in one line on stderr and exit status 2, nothing written."""

from __future__ import annotations

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
        path.rmdir()
        path = path.parent


@hydra.main(version_base="1.3", config_path=config_dir(), config_name="config")
def _main(cfg: DictConfig) -> None:
    from hydra.core.hydra_config import HydraConfig

    from sparsify.errors import UserError, exit_with

    run_dir = Path(HydraConfig.get().runtime.output_dir)
    try:
        from sparsify.run import run
        from sparsify.validate import validate

        validate(cfg)
        run(cfg, run_dir)
    except UserError as e:
        _remove_if_empty(run_dir)
        exit_with(e)
    from sparsify.rundir import RunDir

    rd = RunDir(run_dir)
    print(f"results: {rd.results_path}\nreport:  {rd.report_path('md')}")


def main() -> None:
    from sparsify.allocator import keep_freed_memory_at_start

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
