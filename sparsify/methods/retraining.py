"""Prune, then retrain: the family Renda, Frankle & Carbin (2020) compare, on shared pieces.

Level 0 trains dense. Each further level scores the weights of the previous level's final model
(`prune.criterion`, magnitude by default), keeps the highest scores at the level's target
sparsity (`prune.allocation`, `prune.granularity`; weights pruned before stay pruned) and then
retrains by the method's policy for the original schedule from step k = `prune.rewind` (T − k
iterations), from a fresh optimizer or (`prune.optimizer_state=carry`, Renda et al.'s code) the
optimizer state saved with the starting weights, pruned weights' entries zeroed:

| policy   | surviving weights start from      | learning rate                     | carried state  |
|----------|-----------------------------------|-----------------------------------|----------------|
| rewind   | their values at step k (lth, wr)  | the schedule replayed from step k | level 0's at k |
| lrr      | the previous level's final values | the schedule replayed from step k | previous final |
| finetune | the previous level's final values | fixed: the schedule's last lr     | previous final |

Iterative (`prune.iterative=true`, the default): level L has sparsity 1 − (1 − rate)^L for L =
1..levels. One shot (`prune.iterative=false`): a single pruned level at `prune.sparsity`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import ClassVar, Optional

from torch import Tensor

from sparsify.checks import check_choice, check_range
from sparsify.config import ScoredPruneConfig
from sparsify.errors import UserError
from sparsify.methods.base import Context, LevelPlan, Method, prune_by
from sparsify.methods.restart import restart_weights
from sparsify.seeding import MASK_DRAWS, RESTART_DRAWS, TIE_DRAWS
from sparsify.sparsity.allocation import openlth_mask, prune_mask, zhou_pruned
from sparsify.sparsity.criteria import CRITERIA, GRADIENT_CRITERIA, criterion_scores
from sparsify.sparsity.mask import Mask
from sparsify.training.loop import MaskChange, MaskSchedule, Segment

# scores that can be negative
SIGNED = (
    "small_final",
    "small_init",
    "magnitude_increase",
    "magnitude_increase_same_sign",
    "magnitude_increase_diff_sign",
)
THRESHOLDS = ("exact", "openlth", "zhou")
TIES = ("position", "random")
FINETUNE_DATA = ("replay", "continue")


# the thresholds other than exact: (the allocation each needs, what it is), for the check below
_THRESHOLD_NEEDS = {
    "openlth": ("global", "OpenLTH's per-level global cut of single weights"),
    "zhou": ("layerwise", "Zhou et al.'s int(rate · alive) per layer and level"),
}


@dataclass
class RetrainingConfig(ScoredPruneConfig):
    iterative: bool = True  # levels of `rate`; false: one shot to `sparsity`
    sparsity: float = 0.9  # one-shot target: fraction of prunable weights set to zero, in [0, 1)
    rate: float = 0.2  # iterative: fraction of the remaining weights pruned per level, in (0, 1)
    levels: int = 8  # iterative: pruning levels after the dense level 0
    rewind: str = "0it"  # step k: weights (lth, wr) or schedule (lrr) rewound to; '0it' = init
    criterion: str = "large_final"  # mask criterion (Zhou et al. 2019), see sparsity/criteria.py
    gradient_batch: int = 100  # snip, grad: training images of the gradient at init (Zhou: 100)
    restart: str = (
        "rewind"  # what survivors restart from: rewind, reinit, reshuffle, signed_constant
    )
    finetune_lr: Optional[float] = None  # finetune: fixed lr; None = the schedule's last
    # finetune: the batches level L sees: replay the data order from epoch 0, or continue it
    # past the previous levels (iterations T + (L - 1)(T - k) on: a continued global step, as
    # Renda et al.'s fine-tuning restores the final checkpoint and trains steps T to 2T - k)
    finetune_data: str = "replay"
    # the optimizer state a pruned level starts from: fresh (zero momentum), or carry the state
    # saved with its starting weights (Renda et al.'s code): lth/wr/random at step k,
    # lrr/finetune at the end of the previous level; pruned weights' entries zeroed
    optimizer_state: str = "fresh"
    # global: count the (never pruned) weights of prune.exclude in the remaining weights (OpenLTH)
    count_excluded: bool = False
    # exact: keep round((1 - rate)^L · N); openlth: OpenLTH's strict cut; zhou (layerwise):
    # prune int(rate · alive) of each layer per level, as Zhou et al.'s get_weight_init.py
    threshold: str = "exact"
    # which of the weights tied at the cut are kept: position (the latest), or random (Zhou et
    # al.'s lexsort with a random key), drawn from the run's seed and the level
    ties: str = "position"
    # layerwise, iterative: {weight name pattern: rate per level} overriding prune.rate (Zhou)
    layer_rates: dict[str, float] = field(default_factory=dict)
    # rewinding methods with k > 0: level 0 starts a fresh optimizer at step k, as OpenLTH trains
    # it in two runs (a pretraining run to k, then a new run from k to the end)
    reset_optimizer_at_rewind: bool = False

    def check(self) -> None:
        from sparsify.methods.restart import RESTARTS
        from sparsify.training.steps import check_step

        super().check()
        check_range("prune.sparsity", self.sparsity, 0.0, 1.0)
        check_range("prune.rate", self.rate, 0.0, 1.0, lo_open=True)
        check_range("prune.levels", self.levels, 0, None)
        check_choice("prune.criterion", self.criterion, CRITERIA)
        check_range("prune.gradient_batch", self.gradient_batch, 1, None)
        check_choice("prune.restart", self.restart, RESTARTS)
        check_step(self.rewind, "prune.rewind")
        check_choice("prune.optimizer_state", self.optimizer_state, ("fresh", "carry"))
        check_choice("prune.finetune_data", self.finetune_data, FINETUNE_DATA)
        if self.finetune_data != "replay" and self.name != "finetune":
            raise UserError(
                f"prune.finetune_data={self.finetune_data} sets the data order of fine-tuning; "
                f"it needs prune=finetune, not {self.name}"
            )
        if self.finetune_lr is not None:
            check_range("prune.finetune_lr", self.finetune_lr, 0.0, None, lo_open=True)
        check_choice("prune.threshold", self.threshold, THRESHOLDS)
        check_choice("prune.ties", self.ties, TIES)
        if self.count_excluded and self.allocation != "global":
            raise UserError(
                "prune.count_excluded=true counts excluded weights in one global total; it needs "
                f"prune.allocation=global, not {self.allocation}"
            )
        if self.threshold in _THRESHOLD_NEEDS:
            allocation, what = _THRESHOLD_NEEDS[self.threshold]
            if not (
                self.iterative
                and self.allocation == allocation
                and self.granularity == "unstructured"
            ):
                raise UserError(
                    f"prune.threshold={self.threshold} is {what}; it needs prune.iterative=true, "
                    f"prune.allocation={allocation}, prune.granularity=unstructured"
                )
        if self.ties == "random" and (
            self.granularity != "unstructured" or self.threshold == "openlth"
        ):
            raise UserError(
                "prune.ties=random picks among single weights tied at the cut; it needs "
                "prune.granularity=unstructured and prune.threshold=exact or zhou"
            )
        for pattern, rate in self.layer_rates.items():
            check_range(f"prune.layer_rates.{pattern}", rate, 0.0, 1.0, lo_open=True)
        if self.layer_rates and not (self.iterative and self.allocation == "layerwise"):
            raise UserError(
                "prune.layer_rates gives layers their own rate per level; it needs "
                "prune.allocation=layerwise and prune.iterative=true"
            )


def excluded_weights(ctx: Context, patterns: list[str]) -> int:
    """The number of weights in conv and linear layers that `patterns` (prune.exclude) keep from
    pruning: the state_dict entries of two or more dimensions outside `ctx.prunable` that a
    pattern matches (biases and norms have one)."""
    prunable = set(ctx.prunable)
    return sum(
        t.numel()
        for name, t in ctx.init.items()
        if name not in prunable and t.dim() >= 2 and any(fnmatchcase(name, p) for p in patterns)
    )


class Retraining(Method):
    config_class = RetrainingConfig
    policy: ClassVar[str]
    # whether the method has prune.rewind and prune.restart (magnitude: no; it never rewinds)
    has_rewind: ClassVar[bool] = True

    def num_levels(self) -> int:
        return self.cfg.levels + 1 if self.cfg.iterative else 2

    def target_sparsity(self, level: int) -> float:
        if not self.cfg.iterative:
            return self.cfg.sparsity
        return 1.0 - (1.0 - self.cfg.rate) ** level

    def rewind_step(self, ctx: Context) -> int:
        return ctx.steps(self.cfg.rewind, "prune.rewind")

    def budget(self, ctx: Context) -> int:
        """Iterations of retraining per pruned level: the schedule from step k to its end."""
        return ctx.total - self.rewind_step(ctx)

    def check(self, ctx: Context) -> None:
        k = self.rewind_step(ctx)
        if k >= ctx.total and self.has_rewind:
            raise UserError(
                f"prune.rewind={self.cfg.rewind} is at or past the end of training "
                f"({ctx.total} iterations = train.epochs × {ctx.iterations_per_epoch}); "
                "choose a step before the end, e.g. '0it' or '1ep'"
            )
        last = self.target_sparsity(self.num_levels() - 1)
        excluded = excluded_weights(ctx, self.cfg.exclude) if self.counts_excluded() else 0
        # zhou never empties a layer: int(rate · alive) < alive
        zhou = self.threshold() == "zhou"
        if last >= 1.0 or (not zhou and self._kept_at_last_level(ctx.prunable_count, excluded) < 1):
            counting = f" (counting {excluded} excluded weights)" if excluded else ""
            raise UserError(
                f"the last level's sparsity {last:.6g}{counting} would prune every weight; use "
                "fewer prune.levels or a smaller prune.rate / prune.sparsity"
            )
        self._check_layer_rates(ctx)
        if getattr(self.cfg, "reset_optimizer_at_rewind", False) and (
            self.policy != "rewind" or k == 0
        ):
            raise UserError(
                "prune.reset_optimizer_at_rewind=true restarts level 0's optimizer at the rewind "
                f"step; it needs a method that rewinds weights (lth, wr, random) and "
                f"prune.rewind after 0it (prune={self.cfg.name}, prune.rewind={self.cfg.rewind})"
            )
        if self.cfg.granularity in ("block", "channel") and self.cfg.criterion in SIGNED:
            raise UserError(
                f"prune.granularity={self.cfg.granularity} scores groups by the norm of their "
                f"weights' scores; prune.criterion={self.cfg.criterion} is signed, so use "
                "granularity=unstructured or a criterion of magnitudes ("
                + ", ".join(c for c in CRITERIA if c not in SIGNED)
                + ")"
            )
        if self.cfg.granularity == "nm" and self.num_levels() > 2:
            raise UserError(
                f"prune.granularity=nm fixes the sparsity at 1 - n/m = {1 - self.cfg.n / self.cfg.m:g}; "
                "prune once with prune.iterative=false (or prune=magnitude)"
            )
        if self.has_rewind and self.cfg.restart != "rewind" and self.policy != "rewind":
            raise UserError(
                f"prune.restart={self.cfg.restart} needs a method that rewinds weights (lth, wr, "
                f"random); prune={self.cfg.name} keeps the previous level's weights"
            )

    # OpenLTH's and Zhou et al.'s counting (RetrainingConfig; magnitude's schema has none of it)

    def counts_excluded(self) -> bool:
        return getattr(self.cfg, "count_excluded", False)

    def threshold(self) -> str:
        return getattr(self.cfg, "threshold", "exact")

    def ties(self) -> str:
        return getattr(self.cfg, "ties", "position")

    def gradient(self, ctx: Context) -> dict[str, Tensor] | None:
        """The loss gradient at initialisation when the criterion scores it (snip, grad)."""
        if self.cfg.criterion not in GRADIENT_CRITERIA:
            return None
        assert ctx.init_gradient is not None, f"prune.criterion={self.cfg.criterion} needs it"
        return ctx.init_gradient(self.cfg.gradient_batch)

    def layer_rates(self) -> dict[str, float]:
        return getattr(self.cfg, "layer_rates", {})

    def layer_rate(self, name: str) -> float:
        """The rate per level of weight `name`: the first matching prune.layer_rates entry, else
        prune.rate."""
        for pattern, rate in self.layer_rates().items():
            if fnmatchcase(name, pattern):
                return float(rate)
        return self.cfg.rate

    def _check_layer_rates(self, ctx: Context) -> None:
        last = self.num_levels() - 1
        for pattern in self.layer_rates():
            if not any(fnmatchcase(n, pattern) for n in ctx.prunable):
                raise UserError(
                    f"prune.layer_rates pattern {pattern!r} matches no prunable weight; they are "
                    f"named like: {', '.join(ctx.prunable[:8])}"
                )
        for name in ctx.prunable if self.layer_rates() and self.threshold() != "zhou" else []:
            if round((1.0 - self.layer_rate(name)) ** last * ctx.init[name].numel()) < 1:
                raise UserError(
                    f"the last level would prune every weight of {name}; use fewer "
                    "prune.levels or a smaller rate for it in prune.layer_rates"
                )

    def _kept_at_last_level(self, n: int, excluded: int) -> int:
        """Prunable weights alive after the last level with these counts (no ties assumed)."""
        last = self.num_levels() - 1
        if self.threshold() == "exact":
            return round((1.0 - self.target_sparsity(last)) * (n + excluded)) - excluded
        alive = n
        for _ in range(last):
            alive -= math.ceil(self.cfg.rate * (alive + excluded)) + 1
        return alive

    def next_mask(self, level: int, ctx: Context) -> Mask:
        """The mask of pruned level `level` from the previous level's final weights."""
        cfg = self.cfg
        previous = ctx.mask(level - 1)
        scores = criterion_scores(
            cfg.criterion,
            ctx.prunable_part(ctx.init),
            ctx.prunable_part(ctx.final(level - 1)),
            ctx.generator(MASK_DRAWS, level),
            mask=previous,
            gradient=self.gradient(ctx),
        )
        ties = ctx.generator(TIE_DRAWS, level) if self.ties() == "random" else None
        plain = not (self.counts_excluded() or self.threshold() != "exact" or self.layer_rates())
        if plain and ties is None:
            return prune_by(cfg, scores, previous, self.target_sparsity(level))
        excluded = excluded_weights(ctx, cfg.exclude) if self.counts_excluded() else 0
        if self.threshold() == "openlth":
            mask = openlth_mask(scores, previous, cfg.rate, excluded)
        else:
            targets = None
            if self.threshold() == "zhou":  # the kept count per layer, as a sparsity
                targets = {n: 1.0 - self._zhou_kept(n, m) / m.numel() for n, m in previous.items()}
            elif self.layer_rates():
                targets = {n: 1.0 - (1.0 - self.layer_rate(n)) ** level for n in previous}
            mask = prune_mask(
                scores,
                previous,
                self.target_sparsity(level),
                cfg.allocation,
                granularity=cfg.granularity,
                block=cfg.block,
                n=cfg.n,
                m=cfg.m,
                channel_norm=cfg.channel_norm,
                layer_targets=targets,
                excluded=excluded,
                ties=ties,
            )
        emptied = [n for n, m in mask.items() if not bool(m.any()) and bool(previous[n].any())]
        if emptied:  # as prune_by refuses it: the network could no longer compute through it
            raise UserError(
                f"pruning level {level} would remove every weight of {', '.join(emptied)}; use "
                "fewer prune.levels, a lower rate, or prune.exclude for the layer"
            )
        return mask

    def _zhou_kept(self, name: str, previous: Tensor) -> int:
        """Weights layer `name` keeps at a level of prune.threshold=zhou, from its mask before."""
        alive = int(previous.count_nonzero())
        return alive - zhou_pruned(alive, self.layer_rate(name))

    def carries_optimizer(self) -> bool:
        """Whether pruned levels start from the optimizer state saved with their starting weights
        (magnitude's schema has no `optimizer_state`: it always starts fresh)."""
        return getattr(self.cfg, "optimizer_state", "fresh") == "carry"

    def plan(self, level: int, ctx: Context) -> LevelPlan:
        plan = self._plan(level, ctx)
        if not self.carries_optimizer():
            return plan
        k = self.rewind_step(ctx)
        if self.policy == "rewind":
            # the state at step k; at k = 0 that is a fresh optimizer's, so nothing is saved
            plan.save_optimizer = level == 0 and k > 0
            plan.optimizer_snapshot = "rewind" if level > 0 and k > 0 else None
        else:  # lrr, finetune: the state at the end of the previous level
            plan.save_optimizer = level < self.num_levels() - 1
            plan.resume_optimizer_from_previous = level > 0
        return plan

    def _plan(self, level: int, ctx: Context) -> LevelPlan:
        k = self.rewind_step(ctx)
        if level == 0:
            snapshot = self.policy == "rewind" and k > 0
            plan = self.dense_plan(ctx, snapshots={"rewind": k} if snapshot else {})
            if snapshot and getattr(self.cfg, "reset_optimizer_at_rewind", False):
                plan.segment.mask_schedule = _fresh_optimizer_at(k)
            return plan
        mask = self.next_mask(level, ctx)
        if self.policy == "rewind":
            start = ctx.init if k == 0 else ctx.snapshot(0, "rewind")

            def fresh() -> dict:
                assert ctx.fresh_init is not None, "prune.restart=reinit needs Context.fresh_init"
                return ctx.fresh_init(level)

            weights = restart_weights(
                self.cfg.restart, start, mask, ctx.init, fresh, ctx.generator(RESTART_DRAWS, level)
            )
            return LevelPlan(mask, weights, Segment(k, ctx.total))
        previous = ctx.final(level - 1)
        if self.policy == "lrr":
            return LevelPlan(mask, previous, Segment(k, ctx.total))
        assert self.policy == "finetune", self.policy
        lr = (
            self.cfg.finetune_lr
            if self.cfg.finetune_lr is not None
            else ctx.schedule(ctx.total - 1)
        )
        budget = self.budget(ctx)
        start = 0
        if getattr(self.cfg, "finetune_data", "replay") == "continue":
            start = ctx.total + (level - 1) * budget  # where the previous level's steps ended
        return LevelPlan(mask, previous, Segment(start, start + budget, fixed_lr=lr))


def _fresh_optimizer_at(step: int) -> MaskSchedule:
    """A mask schedule that keeps the mask and clears the optimizer's state at `step` (after
    the rewind snapshot there is saved): OpenLTH's second run of level 0, from step k."""

    def schedule(it: int, live: dict, mask: Mask) -> Optional[MaskChange]:
        return MaskChange(mask, reset_momentum=True) if it == step else None

    return schedule
