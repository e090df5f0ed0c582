"""Hydra callbacks: check the config before Hydra creates any folder.

A single run is validated in `on_run_start`, before its run directory exists. A sweep (`-m`) is
expanded into its jobs and every job's config is validated in `on_multirun_start`, before the
first job runs and before Hydra writes multirun.yaml: a bad value in the third job must not let
the first two run. Checks that need the data (missing files) still happen when a job starts;
such a job records its message and the sweep goes on (sweep/failures.py), and `on_multirun_end`
writes the sweep report, then lists the failed jobs and exits with status 2.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, Optional

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from sparsify.sweep.manifest import SWEEP_ENV

# The nearest ancestor of the run directory that existed before Hydra created it: folders below
# it that are still empty when a run fails were made for that run and are removed again.
existing_ancestor: Optional[Path] = None


def _user_config(config: DictConfig) -> DictConfig:
    return OmegaConf.masked_copy(config, [k for k in config if k != "hydra"])


def _check(config: DictConfig, job: str = "") -> None:
    from sparsify.errors import UserError, exit_with
    from sparsify.validate import validate

    try:
        validate(config)
    except UserError as e:
        exit_with(e, job)


def _refuse_shared_run_dirs(config: DictConfig, jobs: list) -> None:
    """Jobs that differ only in settings outside a run's identity (eval.*, logger.*, backend.*)
    are one run in one folder. The basic launcher runs them one after the other (the second
    re-evaluates the first's run); a launcher that runs jobs side by side would have two
    processes train into the same folder: refused before anything starts."""
    from sparsify.errors import UserError, exit_with

    if str(config.hydra.launcher.get("_target_", "")).endswith("BasicLauncher"):
        return
    seen: dict[str, Any] = {}
    for job in jobs:
        if job.run in seen:
            exit_with(
                UserError(
                    f"the sweep jobs {' '.join(seen[job.run].overrides)} and "
                    f"{' '.join(job.overrides)} are the same run ({job.run}: they differ only in "
                    "settings outside a run's identity), which this launcher would train twice "
                    "into one folder at once; sweep those settings with the basic launcher, or "
                    "evaluate the finished runs with python -m sparsify.evaluate"
                )
            )
        seen[job.run] = job


class ValidateFirst(Callback):
    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        global existing_ancestor
        _check(_user_config(config))
        path = Path(str(config.hydra.run.dir)).absolute()
        while not path.exists():
            path = path.parent
        existing_ancestor = path

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        from hydra import compose
        from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
        from hydra.core.override_parser.overrides_parser import OverridesParser

        if not str(config.hydra.sweeper.get("_target_", "")).endswith("BasicSweeper"):
            return  # other sweepers choose jobs as they go; each job validates itself
        overrides = OverridesParser.create().parse_overrides(list(config.hydra.overrides.task))
        from hydra.errors import HydraException
        from omegaconf.errors import OmegaConfBaseException

        from sparsify.errors import UserError, exit_with
        from sparsify.identity import run_name
        from sparsify.sweep.manifest import Job, write_manifest

        jobs, methods = [], []
        for batch in BasicSweeper.split_arguments(overrides, max_batch_size=None):
            for job in batch:
                where = f"in the sweep job {' '.join(job)}: "
                try:
                    cfg = compose(config_name=config.hydra.job.config_name, overrides=list(job))
                except (HydraException, OmegaConfBaseException) as e:
                    # e.g. a key one swept method lacks: each method has only its own settings
                    reason = " ".join(str(e.__cause__ or e).strip().splitlines()[0].split())
                    if " not in " in reason:
                        reason += "; sweep the methods that lack this key separately"
                    exit_with(UserError(reason), where)
                _check(cfg, where)
                resolved = OmegaConf.to_container(cfg, resolve=True)
                jobs.append(Job(run_name(resolved), list(job)))
                methods.append(str(cfg.prune.name))
        _refuse_shared_run_dirs(config, jobs)
        # every job is valid: record what this command sweeps, for the sweep report
        swept = [o.key_or_group for o in overrides if o.is_sweep_override()]
        self.manifest = write_manifest(
            Path(str(config.hydra.sweep.dir)),
            list(config.hydra.overrides.task),
            swept,
            jobs,
            methods,
        )
        # the jobs' default wandb group, inherited by jobs that launchers start elsewhere
        self._previous_sweep_env = os.environ.get(SWEEP_ENV)
        os.environ[SWEEP_ENV] = self.manifest.name

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        """The sweep report of the jobs this command ran, beside its manifest."""
        manifest = getattr(self, "manifest", None)
        if manifest is None:
            return
        if self._previous_sweep_env is None:
            os.environ.pop(SWEEP_ENV, None)
        else:
            os.environ[SWEEP_ENV] = self._previous_sweep_env
        from sparsify.errors import UserError
        from sparsify.sweep.__main__ import write_sweep_report
        from sparsify.sweep.failures import failed_jobs

        try:
            path = write_sweep_report([manifest.folder], manifest.folder)
            print(f"sweep report: {path}\n              {path.with_suffix('.html')}")
        except UserError as e:
            print(f"sparsify: no sweep report: {e}", file=sys.stderr)
        except Exception as e:  # noqa: BLE001 (Hydra would turn it into a warning and exit 0,
            # hiding the failed jobs below): say so, and go on to list them
            print(f"sparsify: no sweep report: {type(e).__name__}: {e}", file=sys.stderr)
        failed = failed_jobs(manifest)
        if failed:
            print(
                f"sparsify: {len(failed)} of {len(manifest.jobs)} sweep jobs failed:",
                file=sys.stderr,
            )
            for job, message in failed:
                print(f"  {' '.join(job.overrides)}: {message}", file=sys.stderr)
            print(
                "sparsify: fix them and run the same command again: finished jobs are skipped",
                file=sys.stderr,
            )
            sys.exit(2)
