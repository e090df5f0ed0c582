"""A run's identity: which settings make two runs the same run, and the names built from it.

The identity covers **training only** (data, model, prune, train, seed, device) and only the values
that differ from the schema's defaults (OpenLTH's rule). Adding a defaulted field to a config
dataclass therefore keeps every existing run's name; the price is that a default must never change
its meaning: a changed default becomes a new field. Evaluation (`eval.*`), the execution backend,
logging and the settings in `NOT_IDENTITY` never enter it: they may differ between the commands
that work on one run directory, and evaluating a run another way never retrains it.

- run name: `<method>-<model>-<data>-s<seed>-<hash>`, the hash over the whole identity;
- study key: `<method>-<model>-<data>-<hash>`, the hash over the identity without the seed, so
  the seeds of one experiment share it by construction (OpenLTH's replicates).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any, Optional

import yaml

from sparsify import config as schema

TRAINING_GROUPS = ("data", "model", "prune", "train")
TOP_LEVEL = {"seed": 0, "device": "auto"}  # top-level training settings and their defaults
# Training settings that cannot change results: a resume may turn on downloads or switch the
# progress bar off.
NOT_IDENTITY = frozenset(
    {"data.download", "data.num_workers", "train.progress", "train.checkpoint_every"}
)

_ABSENT = object()  # a key the schema lacks and that never had a default

# Fields that left a schema, with the default they had: a config that still carries one at that
# value (a run directory written before the field moved) means what the schema means without it.
# Per-method prune schemas took every method's knobs out of the other methods' schemas.
RETIRED_DEFAULTS: dict[str, Any] = {
    "prune.iterative": True,
    "prune.sparsity": 0.9,
    "prune.rate": 0.2,
    "prune.levels": 8,
    "prune.rewind": "0it",
    "prune.allocation": "global",
    "prune.granularity": "unstructured",
    "prune.block": 32,
    "prune.n": 2,
    "prune.m": 4,
    "prune.criterion": "large_final",
    "prune.restart": "rewind",
    "prune.finetune": "10ep",
    "prune.weight_init": "kaiming_normal",
    "prune.rescale": False,
    "prune.eval_mask": "expected",
    "prune.score_lr": None,
    "prune.score_weight_decay": None,
    "prune.initial_sparsity": 0.0,
    "prune.start": "1ep",
    "prune.stop": "7ep",
    "prune.frequency": "10it",
    "prune.dense_warmup": "2ep",
    "prune.compressed": "1ep",
    "prune.decompressed": "1ep",
    "prune.final_decompressed": "1ep",
    "prune.final_compressed": "2ep",
    "prune.finetune_lr": None,
}


def _schema(group: str, section: dict[str, Any]) -> type:
    if group == "prune":
        from sparsify.methods import METHODS

        name = section.get("name")
        if name in METHODS:
            return METHODS.get(name).config_class
        return schema.PruneConfig
    return {"data": schema.DataConfig, "model": schema.ModelConfig, "train": schema.TrainConfig}[
        group
    ]


def field_defaults(cls: type) -> dict[str, Any]:
    """{field: default} of a dataclass (fields without a default are left out)."""
    out = {}
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            out[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:
            out[f.name] = f.default_factory()
    return out


def training_identity(config: dict[str, Any]) -> dict[str, Any]:
    """{"group.key": value} of every training setting of the resolved `config` that differs from
    its schema's default, sorted by key. Names (data.name, model.name, prune.name) have no default
    and are always in it."""
    out: dict[str, Any] = {}
    for key, default in TOP_LEVEL.items():
        if key in config and config[key] != default:
            out[key] = config[key]
    for group in TRAINING_GROUPS:
        section = config.get(group) or {}
        defaults = field_defaults(_schema(group, section))
        for key, value in section.items():
            path = f"{group}.{key}"
            if path in NOT_IDENTITY:
                continue
            default = defaults[key] if key in defaults else RETIRED_DEFAULTS.get(path, _ABSENT)
            if value != default:
                out[path] = value
    return dict(sorted(out.items()))


def _hash(values: dict[str, Any]) -> str:
    text = json.dumps(values, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def config_hash(config: dict[str, Any]) -> str:
    """8 hex digits identifying everything that determines a run's training."""
    return _hash(training_identity(config))


def _prefix(config: dict[str, Any]) -> str:
    return f"{config['prune']['name']}-{config['model']['name']}-{config['data']['name']}"


def run_name(config: dict[str, Any]) -> str:
    """`<method>-<model>-<data>-s<seed>-<hash>`: readable, and the same command finds it again."""
    return f"{_prefix(config)}-s{config.get('seed', 0)}-{config_hash(config)}"


def study_key(config: dict[str, Any]) -> str:
    """`<method>-<model>-<data>-<hash>` over the identity without the seed: shared by the runs
    of one experiment that differ only in their seed."""
    identity = {k: v for k, v in training_identity(config).items() if k != "seed"}
    return f"{_prefix(config)}-{_hash(identity)}"


def identity_differences(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    """The training settings (dotted keys) in which configs `a` and `b` differ."""
    ia, ib = training_identity(a), training_identity(b)
    return sorted(k for k in set(ia) | set(ib) if ia.get(k, _ABSENT) != ib.get(k, _ABSENT))


def find_renamed_run(run_dir: Path, config: dict[str, Any]) -> Optional[Path]:
    """A folder beside `run_dir` that holds this run under the name an earlier sparsify gave it
    (names once hashed the whole config, defaults and evaluation included), or None."""
    pattern = f"{_prefix(config)}-s{config.get('seed', 0)}-" + "[0-9a-f]" * 8
    mine = training_identity(config)
    for folder in sorted(Path(run_dir).parent.glob(pattern)):
        if folder.name == Path(run_dir).name or not (folder / "config.yaml").is_file():
            continue
        try:
            saved = yaml.safe_load((folder / "config.yaml").read_text())
        except (yaml.YAMLError, OSError, UnicodeDecodeError):
            continue
        if isinstance(saved, dict) and training_identity(saved) == mine:
            return folder
    return None
