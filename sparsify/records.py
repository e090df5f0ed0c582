"""The typed records a run writes and reads back: what a level's training left (`LevelRecord`,
levels/level_XX/training.json and, with its evaluation, metrics.json), the run's summary
(`RunResults`, results.json) and the resumable state (`Checkpoint`, checkpoint.pt).

Each has `to_json` / `from_json` (or `to_state` / `from_state`), and `from_*` checks what it
reads: a damaged or foreign file is a UserError naming it, never a KeyError later on. The keys are
spelled here only; docs/run-directory.md documents them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from torch import Tensor

from sparsify.errors import UserError

StateDict = dict[str, Tensor]
# A small table: {"columns": [...], "rows": [[...], ...]} with JSON scalars in the cells.
TableJSON = dict[str, list]


@dataclass(frozen=True)
class LayerCount:
    nonzero: int  # nonzero weights of one prunable tensor
    total: int  # its weights

    @property
    def sparsity(self) -> float:
        return 1.0 - self.nonzero / self.total if self.total else 0.0


@dataclass
class LevelRecord:
    """One level: its sparsity counted from the saved weights, how long it trained, and (once
    evaluated) the evaluators' scalars and small tables."""

    level: int
    sparsity: float  # fraction of prunable weights that are exactly zero in final.pt
    nonzero_params: int
    prunable_params: int
    iterations: int  # training iterations of this level
    layers: dict[str, LayerCount]  # per prunable weight, in module order
    metrics: dict[str, float] = field(default_factory=dict)  # every evaluator's scalars
    tables: dict[str, TableJSON] = field(default_factory=dict)  # "<evaluator>/<name>" -> table

    def to_json(self, layers: bool = True) -> dict[str, Any]:
        """The record as JSON: metrics.json with `layers`, results.json's entry without."""
        out: dict[str, Any] = {
            "level": self.level,
            "sparsity": self.sparsity,
            "nonzero_params": self.nonzero_params,
            "prunable_params": self.prunable_params,
            "metrics": dict(self.metrics),
        }
        if self.tables:
            out["tables"] = dict(self.tables)
        out["iterations"] = self.iterations
        if layers:
            out["layers"] = {
                n: {"nonzero": c.nonzero, "total": c.total} for n, c in self.layers.items()
            }
        return out

    def training(self) -> LevelRecord:
        """The record without evaluation results (training.json)."""
        return LevelRecord(
            self.level,
            self.sparsity,
            self.nonzero_params,
            self.prunable_params,
            self.iterations,
            dict(self.layers),
        )

    @classmethod
    def from_json(cls, data: Any, level: int, what: str) -> LevelRecord:
        """Check and read a record of level `level`; `what` names the file in the error."""
        bad = UserError(f"{what} is not a sparsify level record; delete the level to re-run it")
        if not isinstance(data, dict) or data.get("level") != level:
            raise bad
        try:
            layers = {
                str(n): LayerCount(int(c["nonzero"]), int(c["total"]))
                for n, c in data.get("layers", {}).items()
            }
            metrics = data.get("metrics", {})
            tables = data.get("tables", {})
            if not isinstance(metrics, dict) or not isinstance(tables, dict):
                raise bad
            return cls(
                level=level,
                sparsity=float(data["sparsity"]),
                nonzero_params=int(data["nonzero_params"]),
                prunable_params=int(data["prunable_params"]),
                iterations=int(data.get("iterations", 0)),
                layers=layers,
                metrics={str(k): v for k, v in metrics.items()},
                tables=dict(tables),
            )
        except (KeyError, TypeError, ValueError, AttributeError):
            raise bad from None


@dataclass
class RunResults:
    """results.json: who the run is, and every level's record (without per-layer counts)."""

    method: str
    model: str
    data: str
    seed: int
    split: str  # the split the metrics were computed on
    run: str  # the run's name, <method>-<model>-<data>-s<seed>-<hash> (sparsify/identity.py)
    study: str  # the run's identity without the seed: the seeds of one experiment share it
    dense_level: Optional[int]  # the dense parent the evaluators compared with, or None
    levels: list[LevelRecord]
    # what needs every level (evaluate/summary.py): {"prune_potential": ..., "verdict": ...}
    summary: dict[str, Any] = field(default_factory=dict)
    # images in the evaluated split: the n of every accuracy's binomial interval (None: a file
    # written before it was recorded)
    eval_images: Optional[int] = None

    def to_json(self) -> dict[str, Any]:
        out = {
            "method": self.method,
            "model": self.model,
            "data": self.data,
            "seed": self.seed,
            "split": self.split,
            "run": self.run,
            "study": self.study,
            "dense_level": self.dense_level,
            "eval_images": self.eval_images,
            "levels": [lv.to_json(layers=False) for lv in self.levels],
        }
        if self.summary:
            out["summary"] = dict(self.summary)
        return out

    @classmethod
    def from_json(cls, data: Any, what: str) -> RunResults:
        """Check and read results.json. Files written before `run`, `study` and `dense_level`
        existed read with empty strings and None there."""
        bad = UserError(f"{what} is not a sparsify results.json")
        if not isinstance(data, dict) or not isinstance(data.get("levels"), list):
            raise bad
        try:
            levels = [
                LevelRecord.from_json(lv, i, f"{what} (level {i})")
                for i, lv in enumerate(data["levels"])
            ]
            return cls(
                method=str(data["method"]),
                model=str(data["model"]),
                data=str(data["data"]),
                seed=int(data["seed"]),
                split=str(data.get("split", "test")),
                run=str(data.get("run", "")),
                study=str(data.get("study", "")),
                dense_level=data.get("dense_level"),
                levels=levels,
                summary=dict(data.get("summary", {})),
                eval_images=None if data.get("eval_images") is None else int(data["eval_images"]),
            )
        except (KeyError, TypeError, ValueError):
            raise bad from None


_CHECKPOINT_KEYS = ("level", "step", "model", "optimizer", "mask", "rng")


@dataclass
class Checkpoint:
    """The state of a level interrupted at iteration `step` of its schedule."""

    level: int
    step: int
    model: StateDict
    optimizer: dict[str, Any]
    mask: dict[str, Tensor]  # the mask in force (methods may change it mid-level)
    rng: dict[str, Any]  # {"torch": CPU RNG state, "cuda": [one state per GPU]}
    extra: dict[str, Any] = field(default_factory=dict)  # what else trains: {"scores": ...}

    def to_state(self) -> dict[str, Any]:
        return {
            "level": self.level,
            "step": self.step,
            "model": self.model,
            "optimizer": self.optimizer,
            "mask": self.mask,
            **self.extra,
            "rng": self.rng,
        }

    @classmethod
    def from_state(cls, state: Any, what: str) -> Checkpoint:
        if not isinstance(state, dict) or not set(_CHECKPOINT_KEYS) <= set(state):
            raise UserError(f"{what} is not a sparsify checkpoint; delete it to restart the level")
        return cls(
            **{k: state[k] for k in _CHECKPOINT_KEYS},
            extra={k: v for k, v in state.items() if k not in _CHECKPOINT_KEYS},
        )
