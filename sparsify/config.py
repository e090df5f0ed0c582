"""Structured config: one small dataclass per config group, registered with Hydra's ConfigStore so
that unknown keys and wrong types fail when the config is composed, and `validate` for the ranges
and names that types cannot express.

Every field documents its unit. Steps are strings like '160ep' or '500it' (see training/steps.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING


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
    name: str = MISSING  # registered method: dense, magnitude, lth, wr, lrr, finetune, random, ...
    iterative: bool = True  # lth/wr/lrr/finetune/random: levels of `rate`; false: one shot
    sparsity: float = 0.9  # one-shot target: fraction of prunable weights set to zero, in [0, 1)
    rate: float = 0.2  # iterative: fraction of the remaining weights pruned per level, in (0, 1)
    levels: int = 8  # iterative: pruning levels after the dense level 0
    rewind: str = "0it"  # step k: weights (lth, wr) or schedule (lrr) rewound to; '0it' = init
    allocation: str = "global"  # how sparsity is spread over layers: global, layerwise, erk
    granularity: str = "unstructured"  # unstructured, block (B×B), nm (N:M), channel (filters)
    block: int = 32  # granularity=block: block side B
    n: int = 2  # granularity=nm: N weights kept ...
    m: int = 4  # ... in every group of M along the input dimension
    criterion: str = "large_final"  # mask criterion (Zhou et al. 2019), see sparsity/criteria.py
    restart: str = (
        "rewind"  # what survivors restart from: rewind, reinit, reshuffle, signed_constant
    )
    exclude: list[str] = field(default_factory=list)  # fnmatch patterns of weights never pruned
    finetune: str = "10ep"  # magnitude: fine-tuning budget after pruning
    # supermask / edgepopup: masks learnt over frozen random weights
    weight_init: str = "kaiming_normal"  # kaiming_normal or signed_kaiming_constant
    rescale: bool = False  # supermask: dynamic weight rescaling by (weights / weights kept)
    eval_mask: str = "expected"  # supermask: expected (sigmoid(s) > 0.5) or sampled (seed 0)
    score_lr: Optional[float] = None  # peak lr of the scores (the schedule's shape); None: train.lr
    score_weight_decay: Optional[float] = None  # None: train.weight_decay
    # gmp (Zhu & Gupta 2017): sparsity rises from initial_sparsity to `sparsity` along a cubic
    initial_sparsity: float = 0.0  # s_i, in [0, sparsity]
    start: str = "1ep"  # t0: first mask update
    stop: str = "7ep"  # t0 + nΔt: last update, where `sparsity` is reached
    frequency: str = "10it"  # Δt: iterations between mask updates
    # acdc (Peste et al. 2021): dense warm-up, then compressed / decompressed phases alternating,
    # a last decompressed phase and a final compressed one; sparsity `sparsity` when compressed
    dense_warmup: str = "2ep"
    compressed: str = "1ep"
    decompressed: str = "1ep"
    final_decompressed: str = "1ep"
    final_compressed: str = "2ep"
    finetune_lr: Optional[float] = None  # magnitude/finetune: fixed lr; None = schedule's last


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
    schedule: str = "multistep"  # constant, step, multistep, cosine
    milestones: list[str] = field(default_factory=list)  # multistep: steps where lr *= gamma
    step_size: str = "30ep"  # step: lr *= gamma every step_size
    gamma: float = 0.1  # step / multistep decay factor
    warmup: str = "0it"  # linear warm-up: lr·(i+1)/warmup at iteration i < warmup
    label_smoothing: float = 0.0  # in [0, 1)
    bf16: bool = True  # bf16 autocast on CUDA (ignored on CPU)
    checkpoint_every: str = "1ep"  # how often the resumable checkpoint is written
    progress: bool = True  # tqdm bar on a terminal; plain lines otherwise


@dataclass
class EvalConfig:
    evaluators: list[str] = field(default_factory=lambda: ["accuracy"])  # registered evaluators
    batch_size: int = 512  # evaluation batch size
    split: str = "test"  # the split evaluated at the end of each level: test or val


@dataclass
class LoggerConfig:
    name: str = "none"  # none or wandb (the local log.jsonl is always written)
    project: str = "sparsify"
    entity: Optional[str] = None
    group: Optional[str] = None
    tags: list[str] = field(default_factory=list)
    mode: str = "online"  # wandb mode: online, offline, disabled
    log_every: int = 1  # train metrics every this many iterations (each costs a GPU sync)


@dataclass
class BackendConfig:
    name: str = "torch"  # torch, or triton: evaluation (and speed on a GPU) on sparsify.kernels
    mode: str = "auto"  # triton: which layers convert() moves to kernels: auto, winograd, sparse
    block: int = 32  # triton: block side of the block-sparse (bsr) layout: 16, 32, 64 or 128
    tile: int = 2  # triton: Winograd output tile: 2 (F(2x2,3x3)) or 4 (F(4x4,3x3))
    bsr_max_density: float = 0.5  # auto: bsr when at most this fraction of blocks is nonzero
    csr_max_density: float = 0.1  # auto: else csr when at most this fraction of weights is
    speed_batch: int = 64  # GPU speed measurement: batch size
    speed_dtype: str = "bfloat16"  # GPU speed measurement: float32, float16 or bfloat16
    speed_reps: int = 20  # GPU speed measurement: timed forward passes (median reported)


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


def register_configs() -> None:
    """Register the schema with Hydra (conf/config.yaml lists `sparsify_schema` first)."""
    cs = ConfigStore.instance()
    cs.store(name="sparsify_schema", node=Config)
