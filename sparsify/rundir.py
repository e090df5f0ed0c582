"""The run directory contract (docs/run-directory.md): file names, atomic saves, loads that
check what they read, and the identity (name + config hash) that places a run.

A level is finished when its metrics.json exists: mask.pt and final.pt are written before it.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Optional

import yaml
from torch import Tensor

from sparsify.errors import UserError
from sparsify.io import load_json, load_torch, save_json, save_text, save_torch
from sparsify.sparsity.mask import Mask

# Settings that do not change a run's results: they may differ between the runs in one
# directory (a resume may add data.download=true or switch wandb on) and do not enter its name.
_NOT_IDENTITY = (
    ("logger",),
    ("data", "download"),
    ("data", "num_workers"),
    ("train", "progress"),
    ("train", "checkpoint_every"),
)


def identity_config(config: dict[str, Any]) -> dict[str, Any]:
    """`config` without the hydra node, the settings in _NOT_IDENTITY, and the backend section
    when it is `torch`."""
    out = {k: (dict(v) if isinstance(v, dict) else v) for k, v in config.items() if k != "hydra"}
    if out.get("backend", {}).get("name", "torch") == "torch":
        # backend=torch changes nothing (its other keys configure triton): runs from before the
        # backend group existed keep their names
        out.pop("backend", None)
    for path in _NOT_IDENTITY:
        node = out
        for key in path[:-1]:
            node = node.get(key, {}) if isinstance(node, dict) else {}
        if isinstance(node, dict):
            node.pop(path[-1], None)
    return out


def config_hash(config: dict[str, Any]) -> str:
    """8 hex digits identifying everything that determines a run's results."""
    text = json.dumps(identity_config(config), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def run_name(config: dict[str, Any]) -> str:
    """`<method>-<model>-<data>-s<seed>-<hash>`: readable, and the same command finds it again."""
    return (
        f"{config['prune']['name']}-{config['model']['name']}-{config['data']['name']}"
        f"-s{config['seed']}-{config_hash(config)}"
    )


def _differences(a: Any, b: Any, prefix: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b), key=str):
            key = f"{prefix}.{k}" if prefix else str(k)
            if k not in a or k not in b:
                out.append(key)
            else:
                out += _differences(a[k], b[k], key)
        return out
    return [] if a == b else [prefix]


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

    @property
    def config_path(self) -> Path:
        return self.path / "config.yaml"

    @property
    def checkpoint_path(self) -> Path:
        return self.path / "checkpoint.pt"

    @property
    def init_path(self) -> Path:
        return self.path / "init.pt"

    def level_dir(self, level: int) -> Path:
        return self.path / "levels" / f"level_{level:02d}"

    # --- config -------------------------------------------------------------------------------
    def check_config(self, config: dict[str, Any]) -> bool:
        """True if the directory already holds this config (a resume), False if it holds none;
        a UserError if it holds a different one."""
        if not self.config_path.exists():
            if (self.path / "results.json").exists() or (self.path / "levels").exists():
                raise UserError(
                    f"{self.path} holds a run without config.yaml; use another run directory"
                )
            return False
        try:
            saved = yaml.safe_load(self.config_path.read_text())
        except yaml.YAMLError:
            raise UserError(f"{self.config_path} is corrupt; use another run directory") from None
        diff = _differences(identity_config(saved or {}), identity_config(config))
        if diff:
            raise UserError(
                f"{self.path} holds a run with a different config ({', '.join(diff[:5])} differ); "
                "re-run with the same settings to resume, or choose another hydra.run.dir"
            )
        return True

    def write_config(self, config: dict[str, Any]) -> None:
        save_text(yaml.safe_dump(config, sort_keys=False), self.config_path)

    # --- levels -------------------------------------------------------------------------------
    def level_done(self, level: int) -> bool:
        return (self.level_dir(level) / "metrics.json").exists()

    def save_level(self, level: int, mask: Mask, state: dict[str, Tensor], record: dict) -> None:
        d = self.level_dir(level)
        save_torch(dict(mask), d / "mask.pt")
        save_torch(state, d / "final.pt")
        save_json(record, d / "metrics.json")

    def optimizer_path(self, level: int) -> Path:
        """The optimizer state a level keeps for the next one (LevelPlan.keep_optimizer)."""
        return self.level_dir(level) / "optimizer.pt"

    def load_optimizer(self, level: int) -> dict[str, Any]:
        state = load_torch(self.optimizer_path(level), "optimizer state")
        if not isinstance(state, dict) or not {"state", "param_groups"} <= set(state):
            raise UserError(
                f"{self.optimizer_path(level)} is not an optimizer state; delete level "
                f"{level}'s folder to re-run it"
            )
        return state

    def level_record(self, level: int) -> dict[str, Any]:
        path = self.level_dir(level) / "metrics.json"
        record = load_json(path, "level metrics")
        if not isinstance(record, dict) or record.get("level") != level or "metrics" not in record:
            raise UserError(f"{path} is not a sparsify level record; delete the level to re-run it")
        return record

    def load_state(self, path: Path, like: dict[str, Tensor], what: str) -> dict[str, Tensor]:
        """A state_dict from `path`, checked key by key and shape by shape against `like`."""
        return check_state(load_torch(path, what), like, f"{what} {path}")

    def load_mask(self, level: int, weights: dict[str, Tensor]) -> Mask:
        path = self.level_dir(level) / "mask.pt"
        return Mask.from_state_dict(load_torch(path, "mask"), weights, str(path))

    # --- checkpoint ---------------------------------------------------------------------------
    def save_checkpoint(self, state: dict[str, Any]) -> None:
        save_torch(state, self.checkpoint_path)

    def load_checkpoint(self) -> Optional[dict[str, Any]]:
        if not self.checkpoint_path.exists():
            return None
        ckpt = load_torch(self.checkpoint_path, "checkpoint")
        keys = {"level", "step", "model", "optimizer", "mask", "rng"}
        if not isinstance(ckpt, dict) or not keys <= set(ckpt):
            raise UserError(
                f"{self.checkpoint_path} is not a sparsify checkpoint; delete it to restart the level"
            )
        return ckpt
