"""Where a run's events go: always `log.jsonl` in the run directory, and wandb when
`logger=wandb`; and the console lines a person watches (epochs, levels), printed so that they
never break a progress bar.

wandb layout: the resolved config once, flattened (`prune.rate`, ...: wandb's config, so its
parallel coordinates and grouping reach every key); train metrics under `train/*` against
`train/global_step` (iterations summed over levels); one summary per level under `level/*` against
`level/sparsity`, so dashboards plot metrics over sparsity; at the end the levels table, the
report's plots and the run summary (wandb_results.py). The run's display name says method, model,
data, target and seed; its group is the sweep's name in a `-m` sweep (the environment variable
SWEEP_ENV of sweep/manifest.py, set for the jobs by the sweep's callback), its job type the
method. wandb's files go to `<run_dir>/wandb/`.

The wandb run id is `<config hash>-<random>`, chosen when a run directory first starts and kept in
its `start` event in log.jsonl: re-running in the same directory (a resume) continues the same
wandb run, while the same config in another (or a re-created) directory gets a run of its own
instead of being appended to the old one. `finish()` is always called (the runner does it in a
`finally`) and every run is opened with `reinit="create_new"`, so multirun jobs never merge into
one wandb run, even if an earlier run in the process was left open.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from pathlib import Path
from typing import Any, Optional

from tqdm import tqdm

from sparsify.config import LoggerConfig
from sparsify.errors import UserError
from sparsify.records import LevelRecord, RunResults
from sparsify.rundir import RunDir
from sparsify.sweep.manifest import SWEEP_ENV

LOGGERS = ("none", "wandb")
WANDB_MODES = ("online", "offline", "disabled")


class Tracker:
    """The event sink of one run (or one resumption of it): log.jsonl, plus wandb if configured.

    `config` is the resolved config (sent to wandb once, at start); `run_id` is the config hash
    (the prefix of the wandb run id); `run_name` is the wandb display name.
    """

    def __init__(
        self,
        run_dir: Path | RunDir,
        cfg: LoggerConfig,
        config: dict[str, Any],
        run_id: str,
        run_name: str,
    ) -> None:
        rd = run_dir if isinstance(run_dir, RunDir) else RunDir(Path(run_dir))
        self.cfg = cfg
        self.level = 0
        self.offset = 0  # iterations of the levels before this one, for train/global_step
        self._wandb: Optional[Any] = None
        log_path = rd.log_path
        start: dict[str, Any] = {"event": "start"}
        self._rd, self._name = rd, run_name
        if cfg.name == "wandb":
            start["wandb_id"] = _previous_wandb_id(log_path) or f"{run_id}-{secrets.token_hex(4)}"
            self._wandb = _start_wandb(rd.path, cfg, config, start["wandb_id"])
        try:
            self._log = open(log_path, "a", encoding="utf-8")  # noqa: SIM115 (closed in finish)
        except BaseException:
            # The runner calls finish() only once the constructor has returned.
            if self._wandb is not None:
                self._wandb.finish(exit_code=1)
            raise
        self.write(start)

    def start_level(self, level: int, offset: int) -> None:
        """Events from now on belong to `level`; `offset` iterations were trained before it."""
        self.level, self.offset = level, offset

    def write(self, event: dict[str, Any]) -> None:
        """Append one event to log.jsonl (with the level and wall-clock time)."""
        record = {"time": round(time.time(), 3), "level": self.level, **event}
        self._log.write(json.dumps(record) + "\n")
        self._log.flush()

    def log(self, event: dict[str, Any]) -> None:
        """A training event from the loop ('train' step or 'epoch' summary). `event["step"]` is
        the iteration in the current level's schedule; wandb gets it plus the levels before."""
        self.write(event)
        if self._wandb is None:
            return
        values = {f"train/{k}": v for k, v in event.items() if k not in ("event", "step")}
        values["train/global_step"] = self.offset + event["step"]
        values["train/level"] = self.level
        self._wandb.log(values)

    def log_level(self, record: LevelRecord) -> None:
        """The summary of an evaluated level (its metrics.json)."""
        self.write({"event": "level", **record.to_json()})
        if self._wandb is None:
            return
        values = {
            "level/level": record.level,
            "level/sparsity": record.sparsity,
            "level/nonzero_params": record.nonzero_params,
            "level/prunable_params": record.prunable_params,
        }
        values.update({f"level/{k}": v for k, v in record.metrics.items()})
        self._wandb.log(values)

    def log_results(self, results: RunResults) -> None:
        """The finished run: levels table, report plots, summary and artifacts on wandb."""
        if self._wandb is None:
            return
        from sparsify.wandb_results import publish

        artifacts = bool(getattr(self.cfg, "artifacts", False))
        publish(self._wandb, results, self._rd, artifacts, self._name)

    @staticmethod
    def console(line: str) -> None:
        """One line for the person watching, above any progress bar."""
        tqdm.write(line)

    def finish(self, ok: bool) -> None:
        """Close the local log and end the wandb run: exit code 0 if `ok`, else 1, which wandb
        shows as a failed run. Safe to call more than once."""
        try:
            if not self._log.closed:
                try:
                    self.write({"event": "finish" if ok else "abort"})
                finally:
                    self._log.close()
        finally:
            # Even if the local log cannot be written, the wandb run must end here: an open run
            # would swallow the next run of a multirun.
            run, self._wandb = self._wandb, None
            if run is not None:
                run.finish(exit_code=0 if ok else 1)


def _previous_wandb_id(log_path: Path) -> Optional[str]:
    """The wandb id of the last `start` event in log.jsonl, or None (no log, or never wandb)."""
    if not log_path.exists():
        return None
    found = None
    with open(log_path, encoding="utf-8") as f:
        for line in f:
            if '"wandb_id"' not in line:  # skip decoding the many train events
                continue
            try:
                event = json.loads(line)
            except json.JSONDecodeError:  # a line cut short by a crash
                continue
            if event.get("event") == "start" and event.get("wandb_id"):
                found = str(event["wandb_id"])
    return found


def _start_wandb(run_dir: Path, cfg: LoggerConfig, config: dict[str, Any], wandb_id: str) -> Any:
    """Start the wandb run (a no-op run in `disabled` mode) and declare the metric axes."""
    import wandb

    from sparsify.wandb_results import display_name, flatten

    try:
        run = wandb.init(
            project=cfg.project,
            entity=cfg.entity,
            group=cfg.group or os.environ.get(SWEEP_ENV) or None,
            job_type=getattr(cfg, "job_type", None)
            or str(config.get("prune", {}).get("name", ""))
            or None,
            tags=list(cfg.tags),
            mode=cfg.mode,
            config=flatten(config),
            dir=str(run_dir),
            id=wandb_id,
            name=display_name(config),
            # "allow": continue the run if the server has it (a resume), else create it.
            resume="allow",
            # Never hand back (default) or finish ("finish_previous") a run that is already open
            # in this process: either would merge or cut short someone else's run.
            reinit="create_new",
            # Keep the banner to the essentials (where the run lives); WANDB_SILENT=true hides
            # all of it.
            settings=wandb.Settings(quiet=True),
        )
    except wandb.Error as e:
        # Not logged in, no network, unknown entity: the user's environment, not a bug.
        reason = str(e).strip().rstrip(".")
        raise UserError(
            f"wandb could not start a run: {reason}. Without a W&B server, use "
            "logger.mode=offline (sync later with `wandb sync`) or logger=none"
        ) from e
    try:
        run.define_metric("train/global_step")
        run.define_metric("train/*", step_metric="train/global_step")
        run.define_metric("level/sparsity")
        run.define_metric("level/*", step_metric="level/sparsity")
    except BaseException:
        run.finish(exit_code=1)
        raise
    return run


class SilentTracker(Tracker):
    """The tracker of a torchrun rank other than 0: rank 0 logs and prints for the run."""

    def __init__(self) -> None:  # noqa: D107 (opens nothing)
        self.level, self.offset = 0, 0

    def write(self, event: dict[str, Any]) -> None:
        pass

    def log(self, event: dict[str, Any]) -> None:
        pass

    def log_level(self, record: LevelRecord) -> None:
        pass

    def log_results(self, results: RunResults) -> None:
        pass

    @staticmethod
    def console(line: str) -> None:
        pass

    def finish(self, ok: bool) -> None:
        pass
