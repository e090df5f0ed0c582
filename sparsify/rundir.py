"""The run directory contract (docs/run-directory.md): every file name, atomic saves, and loads
that check what they read. Nothing else in sparsify spells a file name of a run.

A level is *trained* once training.json exists (mask.pt and final.pt are written before it); it is
*evaluated* once metrics.json exists, written after its evaluation stage. Each evaluator's result
lives in its own folder under the level's eval/ (sparsify/evaluate/stage.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import yaml
from torch import Tensor

from sparsify.errors import UserError
from sparsify.identity import identity_differences
from sparsify.io import load_json, load_torch, save_json, save_text, save_torch
from sparsify.records import Checkpoint, LevelRecord, RunResults
from sparsify.sparsity.mask import Mask

RESULTS = "results.json"
CONFIG = "config.yaml"


def check_state(state: Any, like: dict[str, Tensor], what: str) -> dict[str, Tensor]:
    """`state` if it is a state_dict with the keys and shapes of `like`; else a UserError."""
    if not isinstance(state, dict) or set(state) != set(like):
        raise UserError(f"{what} does not match the model (different parameter names)")
    for k, v in like.items():
        if not isinstance(state[k], Tensor) or state[k].shape != v.shape:
            raise UserError(f"{what} does not match the model (shape of {k})")
    return state


class RunDir:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    # --- names --------------------------------------------------------------------------------
    @property
    def config_path(self) -> Path:
        return self.path / CONFIG

    @property
    def results_path(self) -> Path:
        return self.path / RESULTS

    @property
    def checkpoint_path(self) -> Path:
        return self.path / "checkpoint.pt"

    @property
    def init_path(self) -> Path:
        return self.path / "init.pt"

    @property
    def log_path(self) -> Path:
        return self.path / "log.jsonl"

    @property
    def wandb_dir(self) -> Path:
        return self.path / "wandb"

    def report_path(self, suffix: str) -> Path:
        """report.md (suffix "md") or report.html ("html")."""
        return self.path / f"report.{suffix}"

    def plot_path(self, name: str) -> Path:
        """A plot of the report, beside it: `<name>.png`."""
        return self.path / f"{name}.png"

    def level_dir(self, level: int) -> Path:
        return self.path / "levels" / f"level_{level:02d}"

    def final_path(self, level: int) -> Path:
        return self.level_dir(level) / "final.pt"

    def mask_path(self, level: int) -> Path:
        return self.level_dir(level) / "mask.pt"

    def snapshot_path(self, level: int, name: str) -> Path:
        """Weights saved during a level at a named iteration (`rewind.pt`)."""
        return self.level_dir(level) / f"{name}.pt"

    def artifact_path(self, level: int, stem: str) -> Path:
        """A file a method's level saves beside final.pt (supermask's `scores.pt`)."""
        return self.level_dir(level) / f"{stem}.pt"

    def optimizer_path(self, level: int) -> Path:
        """The optimizer state a level saves for the next one (LevelPlan.save_optimizer)."""
        return self.level_dir(level) / "optimizer.pt"

    def training_path(self, level: int) -> Path:
        return self.level_dir(level) / "training.json"

    def metrics_path(self, level: int) -> Path:
        return self.level_dir(level) / "metrics.json"

    def eval_dir(self, level: int, key: str) -> Path:
        """The folder of one evaluator's result at one level: eval/<name>-<settings hash>."""
        return self.level_dir(level) / "eval" / key

    def remove_stale_temporaries(self) -> None:
        """Delete the temporary files of writes that a killed process never finished."""
        for tmp in self.path.rglob(".*.tmp"):
            if tmp.is_file() and self.wandb_dir not in tmp.parents:
                tmp.unlink(missing_ok=True)

    # --- config -------------------------------------------------------------------------------
    def check_config(self, config: dict[str, Any]) -> bool:
        """True if the directory already holds this run (a resume), False if it holds none;
        a UserError if it holds a run whose training differs."""
        if not self.config_path.exists():
            if self.results_path.exists() or (self.path / "levels").exists():
                raise UserError(
                    f"{self.path} holds a run without config.yaml; use another run directory"
                )
            return False
        diff = identity_differences(self.saved_config(), config)
        if diff:
            raise UserError(
                f"{self.path} holds a run with a different config ({', '.join(diff[:5])} differ); "
                "re-run with the same settings to resume, or choose another hydra.run.dir"
            )
        return True

    def saved_config(self) -> dict[str, Any]:
        """config.yaml as written when the run started."""
        try:
            saved = yaml.safe_load(self.config_path.read_text())
        except FileNotFoundError:
            raise UserError(f"{self.path} holds no sparsify run (no config.yaml)") from None
        except (yaml.YAMLError, UnicodeDecodeError):
            raise UserError(f"{self.config_path} is corrupt; use another run directory") from None
        if not isinstance(saved, dict):
            raise UserError(f"{self.config_path} is corrupt; use another run directory")
        return saved

    def write_config(self, config: dict[str, Any]) -> None:
        save_text(yaml.safe_dump(config, sort_keys=False), self.config_path)

    # --- levels -------------------------------------------------------------------------------
    def level_trained(self, level: int) -> bool:
        # metrics.json alone: a level finished before training.json existed
        return self.training_path(level).exists() or self.metrics_path(level).exists()

    def save_trained_level(self, mask: Mask, state: dict[str, Tensor], record: LevelRecord) -> None:
        """mask.pt and final.pt, then training.json, which marks the level trained."""
        save_torch(dict(mask), self.mask_path(record.level))
        save_torch(state, self.final_path(record.level))
        save_json(record.training().to_json(), self.training_path(record.level))

    def training_record(self, level: int) -> LevelRecord:
        """What the level's training left: training.json, else (a level finished before it
        existed) metrics.json without its metrics."""
        path = self.training_path(level)
        if not path.exists():
            path = self.metrics_path(level)
        record = LevelRecord.from_json(load_json(path, "level record"), level, str(path))
        return record.training()

    def save_metrics(self, record: LevelRecord) -> bool:
        """metrics.json (the record with its evaluation); False if it already held exactly
        this."""
        path, data = self.metrics_path(record.level), record.to_json()
        if path.exists():
            try:
                if load_json(path) == data:
                    return False
            except UserError:
                pass  # damaged: rewritten below
        save_json(data, path)
        return True

    def load_state(self, path: Path, like: dict[str, Tensor], what: str) -> dict[str, Tensor]:
        """A state_dict from `path`, checked key by key and shape by shape against `like`."""
        return check_state(load_torch(path, what), like, f"{what} {path}")

    def load_final(self, level: int, like: dict[str, Tensor]) -> dict[str, Tensor]:
        return self.load_state(self.final_path(level), like, "level weights")

    def load_snapshot(self, level: int, name: str, like: dict[str, Tensor]) -> dict[str, Tensor]:
        return self.load_state(self.snapshot_path(level, name), like, "snapshot")

    def save_snapshot(self, level: int, name: str, state: dict[str, Tensor]) -> None:
        save_torch(state, self.snapshot_path(level, name))

    def save_snapshot_optimizer(self, level: int, name: str, state: dict[str, Any]) -> None:
        """The optimizer state beside snapshot `name` (written before the snapshot itself)."""
        save_torch(state, self.snapshot_path(level, f"{name}_optimizer"))

    def save_artifact(self, level: int, stem: str, content: Any) -> None:
        save_torch(content, self.artifact_path(level, stem))

    def load_mask(self, level: int, weights: dict[str, Tensor]) -> Mask:
        path = self.mask_path(level)
        return Mask.from_state_dict(load_torch(path, "mask"), weights, str(path))

    def save_optimizer(self, level: int, state: dict[str, Any]) -> None:
        save_torch(state, self.optimizer_path(level))

    def load_optimizer(self, level: int) -> dict[str, Any]:
        state = load_torch(self.optimizer_path(level), "optimizer state")
        if not isinstance(state, dict) or not {"state", "param_groups"} <= set(state):
            raise UserError(
                f"{self.optimizer_path(level)} is not an optimizer state; delete level "
                f"{level}'s folder to re-run it"
            )
        return state

    # --- checkpoint ---------------------------------------------------------------------------
    def save_checkpoint(self, ckpt: Checkpoint) -> None:
        save_torch(ckpt.to_state(), self.checkpoint_path)

    def load_checkpoint(self) -> Optional[Checkpoint]:
        if not self.checkpoint_path.exists():
            return None
        state = load_torch(self.checkpoint_path, "checkpoint")
        return Checkpoint.from_state(state, str(self.checkpoint_path))

    # --- results ------------------------------------------------------------------------------
    def save_results(self, results: RunResults) -> None:
        save_json(results.to_json(), self.results_path)

    def load_results(self) -> RunResults:
        path = self.results_path
        return RunResults.from_json(load_json(path, "results"), str(path))


class ReadOnlyRunDir(RunDir):
    """The run directory as a torchrun rank other than 0 sees it (sparsify/distributed.py): it
    reads what rank 0 wrote and writes nothing."""

    def remove_stale_temporaries(self) -> None:
        pass

    def write_config(self, config: dict[str, Any]) -> None:
        pass

    def save_trained_level(self, mask: Mask, state: dict[str, Tensor], record: LevelRecord) -> None:
        pass

    def save_metrics(self, record: LevelRecord) -> bool:
        return False

    def save_snapshot(self, level: int, name: str, state: dict[str, Tensor]) -> None:
        pass

    def save_snapshot_optimizer(self, level: int, name: str, state: dict[str, Any]) -> None:
        pass

    def save_artifact(self, level: int, stem: str, content: Any) -> None:
        pass

    def save_optimizer(self, level: int, state: dict[str, Any]) -> None:
        pass

    def save_checkpoint(self, ckpt: Checkpoint) -> None:
        pass

    def save_results(self, results: RunResults) -> None:
        pass
