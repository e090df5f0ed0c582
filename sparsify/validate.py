"""Checks that types cannot express: ranges, registered names, step strings. Run on the composed
config before any work; the first problem found becomes a one-line UserError."""

from __future__ import annotations

import dataclasses
import re
from typing import Any, get_type_hints

from omegaconf import DictConfig

from sparsify.config import Config
from sparsify.data import DATASETS
from sparsify.errors import UserError
from sparsify.evaluate import EVALUATORS
from sparsify.methods import METHODS
from sparsify.methods.restart import RESTARTS
from sparsify.methods.supermask import WEIGHT_INITS
from sparsify.models import MODELS
from sparsify.registry import Registry
from sparsify.sparsity import ALLOCATIONS
from sparsify.sparsity.criteria import CRITERIA
from sparsify.sparsity.granularity import GRANULARITIES
from sparsify.sparsity.score_masks import EVAL_MASKS
from sparsify.tracking import LOGGERS, WANDB_MODES
from sparsify.training.optim import OPTIMIZERS, SCHEDULES
from sparsify.training.steps import check_step


def _range(
    key: str, value: Any, lo: float, hi: float | None, lo_open: bool = False, hi_open: bool = True
) -> None:
    ok = (value > lo if lo_open else value >= lo) and (
        hi is None or (value < hi if hi_open else value <= hi)
    )
    if not ok:
        left = "(" if lo_open else "["
        right = "∞)" if hi is None else (f"{hi})" if hi_open else f"{hi}]")
        raise UserError(f"{key}={value} is out of range; valid: {left}{lo}, {right}")


def _choice(key: str, value: Any, valid: tuple[str, ...] | list[str]) -> None:
    if value not in valid:
        raise UserError(
            f"{key}={value!r} is not valid; choose one of: {', '.join(map(str, valid))}"
        )


def _registered(key: str, value: str, registry: Registry) -> None:
    _choice(key, value, registry.names())


def _known_keys(node: Any, schema: type, prefix: str = "") -> None:
    """Keys added with Hydra's `+key=value` bypass the schema: refuse any the schema lacks."""
    fields = {f.name: f for f in dataclasses.fields(schema)}
    hints = get_type_hints(schema)
    for key in node:
        name = f"{prefix}{key}"
        if key not in fields:
            raise UserError(f"unknown key {name!r}; valid keys here: {', '.join(fields)}")
        sub = hints[key]
        if dataclasses.is_dataclass(sub) and isinstance(node[key], DictConfig):
            _known_keys(node[key], sub, f"{name}.")


def validate(cfg: DictConfig) -> None:
    """Raise UserError for the first unknown key, out-of-range value, unknown name or malformed
    step."""
    _known_keys(cfg, Config)
    d, m, p, t, e, lg = cfg.data, cfg.model, cfg.prune, cfg.train, cfg.eval, cfg.logger
    _range("seed", cfg.seed, 0, 2**32)
    if not re.fullmatch(r"auto|cpu|cuda(:\d+)?|mps", cfg.device):
        raise UserError(f"device={cfg.device!r} is not valid; use auto, cpu, cuda, cuda:N or mps")

    _registered("data.name", d.name, DATASETS)
    _range("data.val_fraction", d.val_fraction, 0.0, 1.0)
    if d.image_size is not None:
        _range("data.image_size", d.image_size, 1, None)
    _range("data.num_workers", d.num_workers, 0, None)
    _range("data.num_samples", d.num_samples, 1, None)
    _range("data.num_classes", d.num_classes, 2, None)
    _range("data.channels", d.channels, 1, None)

    _registered("model.name", m.name, MODELS)

    _registered("prune.name", p.name, METHODS)
    _range("prune.sparsity", p.sparsity, 0.0, 1.0)
    _range("prune.rate", p.rate, 0.0, 1.0, lo_open=True)
    _range("prune.levels", p.levels, 0, None)
    _choice("prune.allocation", p.allocation, ALLOCATIONS)
    _choice("prune.granularity", p.granularity, GRANULARITIES)
    _range("prune.block", p.block, 1, None)
    _range("prune.m", p.m, 2, None)
    _range("prune.n", p.n, 1, p.m)
    for key in (
        "start",
        "stop",
        "frequency",
        "dense_warmup",
        "compressed",
        "decompressed",
        "final_decompressed",
        "final_compressed",
    ):
        check_step(getattr(p, key), f"prune.{key}")
    _range("prune.initial_sparsity", p.initial_sparsity, 0.0, 1.0)
    _choice("prune.weight_init", p.weight_init, WEIGHT_INITS)
    if p.score_lr is not None:
        _range("prune.score_lr", p.score_lr, 0.0, None, lo_open=True)
    if p.score_weight_decay is not None:
        _range("prune.score_weight_decay", p.score_weight_decay, 0.0, None)
    _choice("prune.eval_mask", p.eval_mask, EVAL_MASKS)
    _choice("prune.criterion", p.criterion, CRITERIA)
    _choice("prune.restart", p.restart, RESTARTS)
    check_step(p.rewind, "prune.rewind")
    check_step(p.finetune, "prune.finetune")
    if p.finetune_lr is not None:
        _range("prune.finetune_lr", p.finetune_lr, 0.0, None, lo_open=True)

    _range("train.epochs", t.epochs, 1, None)
    _range("train.batch_size", t.batch_size, 1, None)
    _choice("train.optimizer", t.optimizer, OPTIMIZERS)
    _range("train.lr", t.lr, 0.0, None, lo_open=True)
    _range("train.momentum", t.momentum, 0.0, 1.0)
    if t.optimizer == "sgd" and t.nesterov and t.momentum == 0:
        raise UserError("train.nesterov=true needs train.momentum > 0 (Nesterov momentum)")
    _range("train.weight_decay", t.weight_decay, 0.0, None)
    if len(t.betas) != 2:
        raise UserError(f"train.betas={list(t.betas)} must hold two numbers, e.g. [0.9,0.999]")
    for i, b in enumerate(t.betas):
        _range(f"train.betas[{i}]", b, 0.0, 1.0)
    _choice("train.schedule", t.schedule, SCHEDULES)
    for i, milestone in enumerate(t.milestones):
        check_step(milestone, f"train.milestones[{i}]")
    check_step(t.step_size, "train.step_size")
    check_step(t.warmup, "train.warmup")
    check_step(t.checkpoint_every, "train.checkpoint_every")
    _range("train.gamma", t.gamma, 0.0, 1.0, lo_open=True, hi_open=False)
    _range("train.label_smoothing", t.label_smoothing, 0.0, 1.0)

    if len(e.evaluators) == 0:
        raise UserError(
            f"eval.evaluators is empty; list at least one of: {', '.join(EVALUATORS.names())}"
        )
    for name in e.evaluators:
        _registered("eval.evaluators", name, EVALUATORS)
    if "accuracy" not in e.evaluators:
        raise UserError(
            "eval.evaluators must include 'accuracy' (the report plots it against sparsity)"
        )
    _range("eval.batch_size", e.batch_size, 1, None)
    _choice("eval.split", e.split, ("test", "val"))
    if e.split == "val" and d.val_fraction == 0:
        raise UserError("eval.split=val needs data.val_fraction > 0")

    check_backend(cfg)

    _choice("logger.name", lg.name, LOGGERS)
    _choice("logger.mode", lg.mode, WANDB_MODES)
    _range("logger.log_every", lg.log_every, 1, None)


BACKENDS = ("torch", "triton")
KERNEL_MODES = ("auto", "winograd", "sparse")  # sparsify.kernels.convert.MODES
SPEED_DTYPES = ("float32", "float16", "bfloat16")


def check_backend(cfg: DictConfig) -> None:
    """The backend group's values, and that `triton` can run here: Triton kernels need a CUDA GPU
    (or the interpreter, TRITON_INTERPRET=1, which runs them slowly on the CPU)."""
    b = cfg.backend
    _choice("backend.name", b.name, BACKENDS)
    _choice("backend.mode", b.mode, KERNEL_MODES)
    _choice("backend.block", b.block, (16, 32, 64, 128))
    _choice("backend.tile", b.tile, (2, 4))
    _range("backend.bsr_max_density", b.bsr_max_density, 0.0, 1.0, hi_open=False)
    _range("backend.csr_max_density", b.csr_max_density, 0.0, 1.0, hi_open=False)
    _range("backend.speed_batch", b.speed_batch, 1, None)
    _choice("backend.speed_dtype", b.speed_dtype, SPEED_DTYPES)
    _range("backend.speed_reps", b.speed_reps, 1, None)
    if b.name != "triton":
        return
    import os

    import torch

    if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", cfg.device):
        raise UserError(
            f"backend=triton runs on CUDA GPUs (or the CPU with TRITON_INTERPRET=1); "
            f"device={cfg.device} is neither: use device=auto, cuda, cuda:N or cpu"
        )
    interpreting = os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")
    on_gpu = cfg.device.startswith("cuda") or (cfg.device == "auto" and torch.cuda.is_available())
    if not on_gpu and not interpreting:
        raise UserError(
            f"backend=triton runs Triton kernels on a CUDA GPU, and device={cfg.device} gives "
            "none here; use backend=torch, or set TRITON_INTERPRET=1 to run the kernels "
            "(slowly) on the CPU"
        )
    try:
        import triton  # noqa: F401
    except ImportError:
        raise UserError("backend=triton needs the triton package (pip install triton)") from None
