"""Checks that types cannot express: ranges, registered names, step strings. Run on the composed
config before any work; the first problem found becomes a one-line UserError."""

from __future__ import annotations

import dataclasses
import re

from omegaconf import DictConfig, OmegaConf

from sparsify.checks import check_choice as _choice
from sparsify.checks import check_range as _range
from sparsify.config import Config
from sparsify.data import DATASETS
from sparsify.errors import UserError
from sparsify.methods import METHODS
from sparsify.models import MODELS
from sparsify.registry import Registry
from sparsify.tracking import LOGGERS, WANDB_MODES
from sparsify.training.optim import LR_UPDATES, OPTIMIZERS, SCHEDULES, WARMUP_OFFSETS
from sparsify.training.precision import PRECISIONS
from sparsify.training.steps import check_step


def _registered(key: str, value: str, registry: Registry) -> None:
    _choice(key, value, registry.names())


def known_keys(node: DictConfig, schema: type | None = None, prefix: str = "") -> None:
    """Keys added with Hydra's `+key=value` bypass the schema: refuse any the node's schema (the
    dataclass it was composed from, e.g. the chosen method's prune schema) lacks."""
    schema = schema or OmegaConf.get_type(node)
    if schema is None or not dataclasses.is_dataclass(schema):
        return
    fields = [f.name for f in dataclasses.fields(schema)]
    for key in node:
        name = f"{prefix}{key}"
        if key not in fields:
            raise UserError(f"unknown key {name!r}; valid keys here: {', '.join(fields)}")
        if isinstance(node[key], DictConfig):
            known_keys(node[key], prefix=f"{name}.")


def validate(cfg: DictConfig) -> None:
    """Raise UserError for the first unknown key, out-of-range value, unknown name or malformed
    step."""
    known_keys(cfg, Config)
    d, t, lg = cfg.data, cfg.train, cfg.logger
    _range("seed", cfg.seed, 0, 2**32)
    check_device(cfg)

    _registered("data.name", d.name, DATASETS)
    _range("data.val_fraction", d.val_fraction, 0.0, 1.0)
    if d.image_size is not None:
        _range("data.image_size", d.image_size, 1, None)
    _range("data.num_workers", d.num_workers, 0, None)
    _range("data.num_samples", d.num_samples, 1, None)
    _range("data.num_classes", d.num_classes, 2, None)
    _range("data.channels", d.channels, 1, None)

    _registered("model.name", cfg.model.name, MODELS)

    _registered("prune.name", cfg.prune.name, METHODS)
    OmegaConf.to_object(cfg.prune).check()  # the method's own schema checks its settings

    _range("train.epochs", t.epochs, 1, None)
    _range("train.batch_size", t.batch_size, 1, None)
    _choice("train.optimizer", t.optimizer, OPTIMIZERS)
    _range("train.lr", t.lr, 0.0, None, lo_open=True)
    _range("train.momentum", t.momentum, 0.0, 1.0)
    if t.optimizer == "sgd" and t.nesterov and t.momentum == 0:
        raise UserError("train.nesterov=true needs train.momentum > 0 (Nesterov momentum)")
    _range("train.weight_decay", t.weight_decay, 0.0, None)
    if t.norm_weight_decay is not None:
        _range("train.norm_weight_decay", t.norm_weight_decay, 0.0, None)
    if len(t.betas) != 2:
        raise UserError(f"train.betas={list(t.betas)} must hold two numbers, e.g. [0.9,0.999]")
    for i, b in enumerate(t.betas):
        _range(f"train.betas[{i}]", b, 0.0, 1.0)
    _choice("train.schedule", t.schedule, SCHEDULES)
    for i, milestone in enumerate(t.milestones):
        check_step(milestone, f"train.milestones[{i}]")
    check_step(t.step_size, "train.step_size")
    check_step(t.warmup, "train.warmup")
    _choice("train.warmup_offset", t.warmup_offset, WARMUP_OFFSETS)
    _choice("train.lr_update", t.lr_update, LR_UPDATES)
    _choice("train.precision", t.precision, PRECISIONS)
    check_step(t.checkpoint_every, "train.checkpoint_every")
    _range("train.gamma", t.gamma, 0.0, 1.0, lo_open=True, hi_open=False)
    _range("train.label_smoothing", t.label_smoothing, 0.0, 1.0)

    check_eval(cfg)
    check_backend(cfg)

    _choice("logger.name", lg.name, LOGGERS)
    _choice("logger.mode", lg.mode, WANDB_MODES)
    _range("logger.log_every", lg.log_every, 1, None)


def check_device(cfg: DictConfig) -> None:
    if not re.fullmatch(r"auto|cpu|cuda(:\d+)?|mps", str(cfg.device)):
        raise UserError(f"device={cfg.device!r} is not valid; use auto, cpu, cuda, cuda:N or mps")
    from sparsify.distributed import BACKENDS, backend_for, from_env

    _choice("dist_backend", cfg.get("dist_backend", "auto"), BACKENDS)
    world = from_env()
    if world.active:  # under torchrun: a backend and device that can work, before any folder
        backend_for(world, str(cfg.get("dist_backend", "auto")), str(cfg.device))
        if cfg.data.get("download", False):
            raise UserError(
                "data.download=true under torchrun would have every process download into the "
                "same folder; download once with python -m sparsify data.download=true (or by "
                "hand), then start torchrun without it"
            )


def check_eval(cfg: DictConfig) -> None:
    """The evaluators (registered, needs met, no two reporting one key), every evaluator's own
    settings (also of those not selected: a wrong value is wrong input), and the split."""
    from sparsify.evaluate import EVALUATORS
    from sparsify.evaluate.stage import selected, settings_of
    from sparsify.evaluate.summary import SUMMARIES, selected_summaries

    e = cfg.eval
    selected(cfg)
    selected_summaries(cfg)
    for registry in (EVALUATORS, SUMMARIES):
        for name in registry.names():
            settings = settings_of(registry.get(name), e)
            if hasattr(settings, "check"):
                settings.check(f"eval.{name}")
    if e.dense_level is not None:
        _range("eval.dense_level", e.dense_level, 0, None)
    _range("eval.batch_size", e.batch_size, 1, None)
    _choice("eval.split", e.split, ("test", "val"))
    if e.split == "val" and cfg.data.val_fraction == 0:
        raise UserError("eval.split=val needs data.val_fraction > 0")


BACKENDS = ("torch", "triton")
KERNEL_MODES = ("auto", "winograd", "sparse")  # sparsify.kernels.convert.MODES


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
