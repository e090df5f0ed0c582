"""Structured config: one small dataclass per config group, registered with Hydra's ConfigStore so
that unknown keys and wrong types fail when the config is composed, and `validate` for the ranges
and names that types cannot express.

Every field documents its unit. Steps are strings like '160ep' or '500it' (see training/steps.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field, make_dataclass
from typing import Any, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING

from sparsify.checks import check_choice, check_range
from sparsify.errors import UserError


@dataclass
class DataConfig:
    name: str = MISSING  # registered dataset: digits, cifar10, cifar100, mnist, ...
    root: str = "data"  # folder holding the dataset's files (not used by digits / synthetic)
    download: bool = False  # let torchvision download missing files (needs a network)
    image_size: Optional[int] = None  # resize images to this many pixels per side; None: native
    val_fraction: float = 0.1  # fraction of the training set held out for validation, in [0, 1)
    split_seed: int = 0  # seed of the fixed train/val (and digits' test) split
    augment: bool = True  # the dataset's standard training augmentation
    num_workers: int = 0  # loader processes for datasets read from files per batch (folders)
    # synthetic only: a generated, learnable dataset for tests and smoke runs
    num_samples: int = 512
    num_classes: int = 10
    channels: int = 3


@dataclass
class ModelConfig:
    name: str = MISSING  # registered model: lenet300_100, conv2, resnet20, resnet50, ...
    # extra keyword arguments of the model's builder (checked against its signature)
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass
class PruneConfig:
    """The settings every method has. Each method adds its own in a subclass (its
    `config_class`, e.g. methods/retraining.py), which `prune=<name>` selects, so a setting
    another method owns is refused when the config is composed."""

    name: str = MISSING  # registered method: dense, magnitude, lth, wr, lrr, finetune, random, ...
    exclude: list[str] = field(default_factory=list)  # fnmatch patterns of weights never pruned

    def check(self) -> None:
        """A UserError for the first value out of its range (after composing; the data is not
        known yet: methods check the rest in Method.check)."""


@dataclass
class ScoredPruneConfig(PruneConfig):
    """Methods that keep the highest-scoring weights: how the kept weights are allocated over
    layers and grouped."""

    # how sparsity is spread over layers: global, layerwise, erk, erk_rigl (RigL's counts)
    allocation: str = "global"
    granularity: str = "unstructured"  # unstructured, block (B×B), nm (N:M), channel (filters)
    block: int = 32  # granularity=block: block side B
    n: int = 2  # granularity=nm: N weights kept ...
    m: int = 4  # ... in every group of M along the input dimension
    # granularity=channel: a channel's score, mean |w| (l1) or root mean square (l2, the order of
    # torch's ln_structured(n=2) in a layer)
    channel_norm: str = "l1"

    def check(self) -> None:
        from sparsify.sparsity.allocation import ALLOCATIONS
        from sparsify.sparsity.granularity import CHANNEL_NORMS, GRANULARITIES

        super().check()
        check_choice("prune.allocation", self.allocation, ALLOCATIONS)
        check_choice("prune.granularity", self.granularity, GRANULARITIES)
        check_choice("prune.channel_norm", self.channel_norm, CHANNEL_NORMS)
        if self.channel_norm != "l1" and self.granularity != "channel":
            raise UserError(
                f"prune.channel_norm={self.channel_norm} scores whole channels; it needs "
                f"prune.granularity=channel, not {self.granularity}"
            )
        check_range("prune.block", self.block, 1, None)
        check_range("prune.m", self.m, 2, None)
        check_range("prune.n", self.n, 1, self.m)


@dataclass
class TrainConfig:
    epochs: int = 20  # length of one training run (one level), in epochs
    batch_size: int = 64
    optimizer: str = "sgd"  # sgd, adam, adamw
    lr: float = 0.1
    momentum: float = 0.9  # sgd only
    nesterov: bool = False  # sgd only
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])  # adam/adamw only
    weight_decay: float = 1e-4
    # weight decay of norm layers' scales and shifts (BatchNorm, GroupNorm, LayerNorm); None: as
    # weight_decay, 0: not decayed (the official TF ImageNet ResNet's loss_filter_fn)
    norm_weight_decay: Optional[float] = None
    schedule: str = "multistep"  # constant, step, multistep, cosine
    milestones: list[str] = field(default_factory=list)  # multistep: steps where lr *= gamma
    step_size: str = "30ep"  # step: lr *= gamma every step_size
    gamma: float = 0.1  # step / multistep decay factor
    warmup: str = "0it"  # linear warm-up over this many iterations (see warmup_offset)
    # the warm-up's lr at update u < warmup is lr·(u + warmup_offset)/warmup: 1 reaches lr at the
    # last warm-up update; 0 is OpenLTH's min(1, it/warmup), lr 0 at iteration 0
    warmup_offset: int = 1
    # how often the lr changes: every iteration, or once per epoch at the value of the epoch's
    # first iteration (the warm-up counted in epochs: (e + warmup_offset)/warmup epochs), as
    # IST-DASLab/ACDC steps its scheduler
    lr_update: str = "iteration"
    label_smoothing: float = 0.0  # in [0, 1)
    # autocast on CUDA (fp32 on the CPU): bf16; fp16 with a dynamic loss scaler (AC/DC's
    # --fp16); fp32 (none). See training/precision.py
    precision: str = "bf16"
    checkpoint_every: str = "1ep"  # how often the resumable checkpoint is written
    progress: bool = True  # tqdm bar on a terminal; plain lines otherwise


@dataclass
class EvalConfig:
    """Evaluation settings. Each evaluator with settings of its own adds `eval.<name>` (its
    settings dataclass) to this schema when it registers (see `eval_schema`)."""

    evaluators: list[str] = field(default_factory=lambda: ["accuracy"])  # registered evaluators
    # evaluators run where their needs are met (fidelity: a dense parent), else skipped with a note
    if_possible: list[str] = field(default_factory=list)
    batch_size: int = 512  # evaluation batch size
    split: str = "test"  # the split evaluated after each level: test or val
    # the dense parent evaluators compare each level with: a level of this run; null: the
    # method's dense level (level 0; none for gmp, supermask, edgepopup)
    dense_level: Optional[int] = None
    # what needs every level, after the last one (evaluate/summary.py): prune_potential, verdict
    summaries: list[str] = field(default_factory=list)


@dataclass
class LoggerConfig:
    name: str = "none"  # none or wandb (the local log.jsonl is always written)
    project: str = "sparsify"
    entity: Optional[str] = None
    group: Optional[str] = None  # None: the sweep's name in a -m sweep, else no group
    job_type: Optional[str] = None  # None: the method (prune.name)
    tags: list[str] = field(default_factory=list)
    mode: str = "online"  # wandb mode: online, offline, disabled
    log_every: int = 1  # train metrics every this many iterations (each costs a GPU sync)
    artifacts: bool = False  # every level's mask.pt and final.pt as one wandb Artifact


@dataclass
class BackendConfig:
    name: str = "torch"  # torch, or triton: evaluation (and speed on a GPU) on sparsify.kernels
    mode: str = "auto"  # triton: which layers convert() moves to kernels: auto, winograd, sparse
    block: int = 32  # triton: block side of the block-sparse (bsr) layout: 16, 32, 64 or 128
    tile: int = 2  # triton: Winograd output tile: 2 (F(2x2,3x3)) or 4 (F(4x4,3x3))
    bsr_max_density: float = 0.5  # auto: bsr when at most this fraction of blocks is nonzero
    csr_max_density: float = 0.1  # auto: else csr when at most this fraction of weights is


@dataclass
class Config:
    data: DataConfig = MISSING
    model: ModelConfig = MISSING
    prune: PruneConfig = MISSING
    train: TrainConfig = MISSING
    eval: EvalConfig = MISSING
    logger: LoggerConfig = MISSING
    backend: BackendConfig = MISSING
    seed: int = 0  # seeds the initialisation, data order and augmentation
    device: str = "auto"  # auto (cuda if available), cpu, cuda, cuda:N
    # torchrun's process-group backend: auto (nccl on CUDA, gloo on the CPU), nccl, gloo
    dist_backend: str = "auto"


def eval_settings() -> tuple[tuple[str, type], ...]:
    """(name, settings class) of every registered evaluator and summary that has settings."""
    from sparsify.evaluate import EVALUATORS
    from sparsify.evaluate.summary import SUMMARIES

    out = []
    for registry in (EVALUATORS, SUMMARIES):
        for name in registry.names():
            settings = registry.get(name).settings
            if settings is not None:
                out.append((name, settings))
    return tuple(out)


def eval_schema(settings: tuple[tuple[str, type], ...] | None = None) -> type:
    """EvalConfig with a field `<name>` for every evaluator and summary with settings (by
    default the registered ones)."""
    extra = [(n, cls, field(default_factory=cls)) for n, cls in settings or eval_settings()]
    return make_dataclass("EvalSchema", extra, bases=(EvalConfig,))


def register_configs() -> None:
    """Register the schemas with Hydra: the whole config (`sparsify_schema`, listed first in
    conf/config.yaml) and each method's prune schema as `schema/prune/<name>` (listed first in
    conf/prune/<name>.yaml)."""
    from sparsify.methods import METHODS
    from sparsify.schema import current

    cs = ConfigStore.instance()
    cs.store(name="sparsify_schema", node=current())
    for name in METHODS.names():
        cs.store(group="schema/prune", name=name, node=METHODS.get(name).config_class)
