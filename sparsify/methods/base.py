"""A pruning method is a sequence of levels. Each level is planned from what earlier levels left
on disk: which weights live (mask), the weights training starts from, and the stretch of the
schedule to train. The runner does the rest (train, evaluate, save), the same for every method."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar, Optional

import torch
from torch import Tensor

from sparsify.config import PruneConfig
from sparsify.errors import UserError
from sparsify.records import Checkpoint
from sparsify.registry import Registry
from sparsify.seeding import METHOD_STREAM, seeded_generator
from sparsify.sparsity.allocation import prune_mask
from sparsify.sparsity.mask import Mask
from sparsify.training.loop import Segment
from sparsify.training.optim import LRSchedule
from sparsify.training.steps import to_iterations
from sparsify.training.trainable import Trainable

StateDict = dict[str, Tensor]


@dataclass
class LevelPlan:
    mask: Mask
    weights: StateDict  # the state_dict training starts from (the runner applies the mask)
    segment: Segment
    # what the optimizer trains: the model's weights, or (supermask, edgepopup) scores over the
    # frozen model that at the end write the weights they select into it
    trains: Trainable = field(default_factory=Trainable)
    # save the optimizer's state with the level (optimizer.pt) and with each of its snapshots
    # (<name>_optimizer.pt), for a later level to start from it
    save_optimizer: bool = False
    # start from the optimizer state the previous level saved (its momentum, say), not a fresh one
    resume_optimizer_from_previous: bool = False
    # start from the optimizer state saved with level 0's snapshot of this name (wr's rewind point)
    optimizer_snapshot: Optional[str] = None


@dataclass
class Context:
    """What a method may read when planning a level."""

    init: StateDict  # the weights at initialisation (level 0, iteration 0)
    prunable: list[str]  # names of the prunable weights, in module order
    iterations_per_epoch: int
    total: int  # iterations of one full training run (train.epochs)
    schedule: LRSchedule
    final: Callable[[int], StateDict]  # level -> its final weights
    mask: Callable[[int], Mask]  # level -> its mask
    snapshot: Callable[[int, str], StateDict]  # (level, name) -> weights saved during that level
    seed: int = 0  # the run's seed, for methods' own random draws
    fresh_init: Callable[[int], StateDict] | None = None  # key -> another initialisation
    # images -> the loss gradient at init per prunable weight, on that many training images
    # (sparsity/gradient.py; the snip and grad criteria)
    init_gradient: Callable[[int], StateDict] | None = None

    def generator(self, *keys: int) -> torch.Generator:
        """A generator seeded by (run seed, *keys): the same draws on every resume."""
        return seeded_generator(METHOD_STREAM, self.seed, *keys)

    def steps(self, text: str, key: str) -> int:
        return to_iterations(text, self.iterations_per_epoch, key)

    @property
    def prunable_count(self) -> int:
        return sum(self.init[n].numel() for n in self.prunable)

    def dense_mask(self) -> Mask:
        return Mask.ones_like({n: self.init[n] for n in self.prunable})

    def prunable_part(self, state: StateDict) -> StateDict:
        return {n: state[n] for n in self.prunable}


class Method(ABC):
    # the schema of this method's `prune.*` settings (conf/prune/<name>.yaml selects it)
    config_class: ClassVar[type[PruneConfig]] = PruneConfig
    # the level that trains the dense model, the reference pruned levels are compared with;
    # None for methods that never train one (gmp prunes during its only training)
    dense_level: ClassVar[Optional[int]] = 0
    # whether it prunes at all (dense: no, so it runs even when prune.exclude leaves nothing)
    prunes: ClassVar[bool] = True

    def __init__(self, cfg: PruneConfig) -> None:
        self.cfg = cfg

    @abstractmethod
    def num_levels(self) -> int:
        """Levels this method runs, level 0 included."""

    @abstractmethod
    def plan(self, level: int, ctx: Context) -> LevelPlan:
        """The plan of `level`, given that levels < `level` are finished."""

    def check(self, ctx: Context) -> None:
        """Raise UserError for settings that only make sense once the data is known.

        The default accepts everything; methods with step-valued settings override it."""
        return None

    def check_checkpoint(self, ckpt: Checkpoint, ctx: Context, what: str) -> None:
        """Raise UserError if the mid-level checkpoint `ckpt` holds state of this method that
        does not fit the run (checked before anything is written). The default has none."""
        return None

    def dense_plan(self, ctx: Context, snapshots: dict[str, int] | None = None) -> LevelPlan:
        """The plain first level: every weight alive, from initialisation, the whole schedule."""
        return LevelPlan(
            ctx.dense_mask(), ctx.init, Segment(0, ctx.total, snapshots=snapshots or {})
        )


def prune_by(cfg: PruneConfig, scores: StateDict, previous: Mask, target: float) -> Mask:
    """`prune_mask` with the allocation and granularity the config asks for. A UserError if it
    would leave a layer with no weight at all: the network could no longer compute through it."""
    mask = prune_mask(
        scores,
        previous,
        target,
        cfg.allocation,
        granularity=cfg.granularity,
        block=cfg.block,
        n=cfg.n,
        m=cfg.m,
        channel_norm=cfg.channel_norm,
    )
    emptied = [n for n, m in mask.items() if not bool(m.any()) and bool(previous[n].any())]
    if emptied:
        raise UserError(
            f"pruning to {target:.4g} ({cfg.allocation} allocation, {cfg.granularity} "
            f"granularity) would remove every weight of {', '.join(emptied)}; use "
            "prune.allocation=layerwise or erk, a lower sparsity, or prune.exclude for the layer"
        )
    return mask


METHODS: Registry[type[Method]] = Registry("pruning method")
