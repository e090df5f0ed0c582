"""Evaluation as a stage over saved levels.

A level is evaluated from its saved files (final.pt, mask.pt, training.json), never from the
training process's memory, so `python -m sparsify` (after each level) and
`python -m sparsify.evaluate RUN_DIR` (any time later) evaluate exactly the same thing. Each
evaluator's result is kept in `levels/level_XX/eval/<name>-<hash>/result.json` (plus its arrays
and artefacts), where the hash covers what determines the result: the evaluator's settings that
differ from their defaults, the split, the evaluation batch size, the device type (the GPU's name
for evaluators that need one) and (backend=triton) the kernel settings. A result that exists is
read back, not recomputed (OpenLTH's existence rule), so turning an evaluator on for a finished
sweep computes only that evaluator.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any, Optional

import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

from sparsify.data.base import DataBundle
from sparsify.errors import UserError
from sparsify.evaluate.base import EVALUATORS, NEEDS, EvalResult, Evaluator, MetricSpec
from sparsify.evaluate.context import EvalContext, LevelModels
from sparsify.evaluate.distributions import Distribution, Inputs
from sparsify.evaluate.outputs import Outputs, compute_outputs
from sparsify.identity import field_defaults
from sparsify.io import load_json, save_json, save_torch
from sparsify.records import LevelRecord
from sparsify.runview import RunView

RESULT = "result.json"


def _plain(node: Any) -> Any:
    return OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else node


def settings_of(entry: Evaluator, eval_cfg: Any) -> Any:
    """The evaluator's settings dataclass filled from `eval.<name>`, or None if it has none."""
    if entry.settings is None:
        return None
    return entry.settings(**(_plain(eval_cfg.get(entry.name)) or {}))


def _non_default(settings: Any) -> dict[str, Any]:
    """The evaluator settings that differ from their defaults (the key's part of them, so that
    a new setting with a default keeps every stored result)."""
    if settings is None:
        return {}
    defaults = field_defaults(type(settings))
    return {
        f.name: getattr(settings, f.name)
        for f in dataclasses.fields(settings)
        if f.name not in defaults or getattr(settings, f.name) != defaults[f.name]
    }


def needs_met(need: str, cfg: Any) -> bool:
    """Whether the composed config `cfg` provides `need` (evaluate/base.py NEEDS)."""
    if need == "kernels":
        return cfg.backend.name == "triton"
    if need == "cuda":
        return str(cfg.device).startswith("cuda") or (
            cfg.device == "auto" and torch.cuda.is_available()
        )
    if need == "dense":
        return reference_level(cfg) is not None
    if need == "scores":
        return cfg.prune.name == "supermask"
    assert need == "val", need
    return cfg.data.val_fraction > 0


def reference_level(cfg: Any) -> Optional[int]:
    """The dense parent's level: `eval.dense_level`, else the method's dense level (None for the
    methods without one)."""
    chosen = cfg.eval.get("dense_level")
    if chosen is not None:
        return int(chosen)
    from sparsify.methods import METHODS

    if cfg.prune.name not in METHODS:
        return None
    return METHODS.get(cfg.prune.name).dense_level


def corruption_settings(eval_cfg: Any) -> Any:
    """`eval.corruptions` (read by every evaluator that scores corrupted data), or None."""
    if "corruptions" not in EVALUATORS:
        return None
    return settings_of(EVALUATORS.get("corruptions"), eval_cfg)


def _entry(where: str, name: str) -> Evaluator:
    if name not in EVALUATORS:
        raise UserError(
            f"{where}: {name!r} is not valid; choose one of: {', '.join(EVALUATORS.names())}"
        )
    return EVALUATORS.get(name)


def unmet(entry: Evaluator, cfg: Any) -> list[str]:
    """What `entry` needs that the config `cfg` does not provide (NEEDS' words)."""
    return [NEEDS[n] for n in sorted(entry.needs) if not needs_met(n, cfg)]


def selected(cfg: Any) -> list[Evaluator]:
    """The evaluators a run with config `cfg` runs: those listed in `eval.evaluators`, in order,
    then those of `eval.if_possible` whose needs are met, then the automatic ones whose needs are
    met. A UserError for an unknown name, one listed twice, one of `eval.evaluators` whose needs
    are not met, or two that report the same key."""
    names = list(cfg.eval.evaluators)
    if not names:
        raise UserError(
            f"eval.evaluators is empty; list at least one of: {', '.join(EVALUATORS.names())}"
        )
    entries: list[Evaluator] = []
    for where in ("eval.evaluators", "eval.if_possible"):
        for name in cfg.eval.get(where.split(".")[1], []):
            entry = _entry(where, name)
            if entry in entries:
                raise UserError(
                    f"{where} lists {name} again (eval.evaluators and eval.if_possible "
                    "together name each evaluator once)"
                )
            missing = unmet(entry, cfg)
            if missing and where == "eval.evaluators":
                raise UserError(f"evaluator {name} needs {missing[0]}")
            if not missing:
                entries.append(entry)
    for name in EVALUATORS.names():
        entry = EVALUATORS.get(name)
        if entry.automatic and entry not in entries and not unmet(entry, cfg):
            entries.append(entry)
    owner: dict[str, str] = {}
    for entry in entries:
        for key in entry.metrics:
            if key in owner:
                raise UserError(
                    f"evaluators {owner[key]} and {entry.name} both report {key!r}; "
                    "evaluate with one of them, or rename the key in one"
                )
            owner[key] = entry.name
    return entries


def skipped(cfg: Any) -> list[str]:
    """One line per evaluator of `eval.if_possible` that this run cannot run, and why."""
    out = []
    for name in cfg.eval.get("if_possible", []):
        missing = unmet(_entry("eval.if_possible", name), cfg)
        if missing:
            out.append(f"{name} is not run: it needs {missing[0]}")
    return out


def metric_specs(entries: list[Evaluator]) -> dict[str, MetricSpec]:
    """Every selected evaluator's declared scalars, in evaluator order."""
    return {k: spec for entry in entries for k, spec in entry.metrics.items()}


class EvaluationStage:
    """Evaluates the saved levels of one run with the evaluators a config selects."""

    def __init__(
        self,
        cfg: Any,
        data: DataBundle,
        run: RunView,
        device: torch.device,
    ) -> None:
        self.cfg, self.data, self.run, self.device = cfg, data, run, device
        self.dense_level = reference_level(cfg)
        self.entries = selected(cfg)
        self.specs = metric_specs(self.entries)
        from sparsify.evaluate.summary import selected_summaries

        self.summaries = selected_summaries(cfg)
        self.split = str(cfg.eval.split)
        self._settings = {e.name: settings_of(e, cfg.eval) for e in self.entries}
        self._dense: Optional[nn.Module] = None
        self._dense_outputs: dict[str, Outputs] = {}
        loader = data.test if self.split == "test" else data.val
        assert loader is not None, "eval.split=val without a validation split passed validation"
        cs = corruption_settings(cfg.eval)
        preset = "auto" if cs is None else cs.preset
        self.inputs = Inputs(loader, data.stats, int(cfg.seed), device, preset)
        self.corrupted = [] if cs is None else cs.distributions()
        if cs is not None and cs.released is not None and self.corrupted:
            self.inputs.released = _released_source(cs, data, int(cfg.eval.batch_size))
        for entry in self.entries:
            if entry.prepare is not None:
                entry.prepare(self._settings[entry.name], data, self.inputs, cfg.eval.batch_size)
        backend = _plain(cfg.backend)
        self._backend = backend if backend.get("name") == "triton" else {}
        self._keys = {e.name: self._key(e) for e in self.entries}  # the same at every level

    def key(self, entry: Evaluator) -> str:
        """`<name>-<8 hex>`: the folder of this evaluator's results under each level's eval/."""
        return self._keys[entry.name]

    def _key(self, entry: Evaluator) -> str:
        shared = {
            name: _non_default(settings_of(EVALUATORS.get(name), self.cfg.eval))
            for name in entry.shares
        }
        identity = {
            "settings": _non_default(self._settings[entry.name]),
            **({"shared": shared} if any(shared.values()) else {}),
            "split": self.split,
            "batch_size": int(self.cfg.eval.batch_size),
            "backend": self._backend,
            "device": self.device.type,  # CPU and GPU arithmetic differ in the last bits
        }
        if "cuda" in entry.needs:  # timings belong to the GPU they were measured on
            identity["gpu"] = torch.cuda.get_device_name(self.device)
        text = json.dumps(identity, sort_keys=True, default=str)
        return f"{entry.name}-{hashlib.sha256(text.encode()).hexdigest()[:8]}"

    def _convert(self) -> Optional[Callable[[nn.Module], nn.Module]]:
        if not self._backend:
            return None
        from sparsify.evaluate.kernels import convert_for_evaluation

        return partial(convert_for_evaluation, backend=self.cfg.backend)

    def dense(self) -> Optional[nn.Module]:
        if self.dense_level is None:
            return None
        if self._dense is None:
            self._dense = self.run.model(self.dense_level, self.device)
        return self._dense

    def dense_outputs(self, dist: Distribution) -> Optional[Outputs]:
        """The dense parent's outputs on `dist`, computed once per run (None without one)."""
        model = self.dense()
        if model is None:
            return None
        if dist.name not in self._dense_outputs:
            self._dense_outputs[dist.name] = compute_outputs(model, self.inputs, dist)
        return self._dense_outputs[dist.name]

    def ready(self, level: int) -> bool:
        """Whether `level` can be evaluated now: its dense parent is trained (a later reference
        level, `eval.dense_level`, makes the levels before it wait for it)."""
        return self.dense_level is None or self.run.rd.level_trained(self.dense_level)

    @property
    def eval_images(self) -> int:
        """Images in the evaluated split."""
        return self.inputs.loader.num_samples

    def summarize(self, records: list[LevelRecord]) -> dict[str, Any]:
        """Every selected summary of the evaluated `records` (all levels), by name."""
        from sparsify.evaluate.summary import SummaryInput

        out = {}
        for entry in self.summaries:
            inp = SummaryInput(
                records=records,
                dense_level=self.dense_level,
                specs=self.specs,
                settings=settings_of(entry, self.cfg.eval),
                eval_images=self.eval_images,
                num_classes=self.data.num_classes,
            )
            out[entry.name] = entry.fn(inp)
        return out

    def evaluate(self, record: LevelRecord) -> LevelRecord:
        """`record` (a trained level's) with every selected evaluator's scalars and tables,
        computing only the results not yet on disk."""
        level = record.level
        models = LevelModels(self.run, level, self.device, self._convert())
        metrics: dict[str, float] = {}
        tables: dict[str, Any] = {}
        for entry in self.entries:
            key = self.key(entry)
            folder = self.run.rd.eval_dir(level, key)
            result = _load(folder, entry) if (folder / RESULT).exists() else None
            if result is None:
                ctx = EvalContext(
                    level=level,
                    record=record,
                    models=models,
                    data=self.data,
                    split=self.split,
                    device=self.device,
                    settings=self._settings[entry.name],
                    run=self.run,
                    dense=self.dense,
                    dense_outputs=self.dense_outputs,
                    dense_level=self.dense_level,
                    inputs=self.inputs,
                    corrupted=self.corrupted,
                    artifact_dir=folder,
                    seed=int(self.cfg.seed),
                    key=key,
                    backend=self.cfg.backend,
                )
                result = entry(ctx)
                _save(folder, entry, self._settings[entry.name], self.split, result)
            metrics.update(result.scalars)
            tables.update({f"{entry.name}/{name}": t for name, t in result.tables.items()})
        return dataclasses.replace(record, metrics=metrics, tables=tables)


def _released_source(cs: Any, data: DataBundle, batch_size: int) -> Callable:
    """The loader of each corrupted distribution from the released set `cs.released`, checked
    now (before any work) and opened when first used."""
    from sparsify.data import released

    folder = Path(cs.released).expanduser()
    kind = released.check_corrupted_set(
        folder, list(cs.names), list(cs.severities), data.image_size, data.num_classes
    )

    def source(dist: Distribution):
        if kind == "cifar":
            return released.cifar_c(
                folder,
                dist.corruption,
                dist.severity,
                side=data.image_size,
                num_classes=data.num_classes,
                stats=data.stats,
                batch_size=batch_size,
            )
        return released.imagenet_c(
            folder,
            dist.corruption,
            dist.severity,
            side=data.image_size,
            classes=data.num_classes,
            batch_size=batch_size,
        )

    return source


def _save(folder, entry: Evaluator, settings: Any, split: str, result: EvalResult) -> None:
    for name, array in result.arrays.items():
        save_torch(array, folder / f"{name}.pt")
    data = {
        "evaluator": entry.name,
        "settings": dataclasses.asdict(settings) if settings is not None else {},
        "split": split,
        "scalars": result.scalars,
        "tables": result.tables,
        "arrays": sorted(result.arrays),
    }
    save_json(data, folder / RESULT)  # last: its existence marks the result complete


def _load(folder, entry: Evaluator) -> EvalResult:
    path = folder / RESULT
    data = load_json(path, "evaluation result")
    bad = UserError(f"{path} is not a sparsify evaluation result; delete {folder} to re-evaluate")
    if not isinstance(data, dict) or data.get("evaluator") != entry.name:
        raise bad
    scalars, tables = data.get("scalars"), data.get("tables", {})
    if not isinstance(scalars, dict) or not isinstance(tables, dict):
        raise bad
    if set(scalars) - set(entry.metrics):
        raise bad
    # the arrays stay on disk: the stage needs scalars and tables, and arrays can be large
    if not all((folder / f"{n}.pt").is_file() for n in data.get("arrays", [])):
        raise bad
    return EvalResult(scalars=scalars, tables=tables)
