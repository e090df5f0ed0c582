"""`lth`: lottery tickets, iterative magnitude pruning with rewinding (Frankle & Carbin 2019).

Level 0 trains dense; level L prunes `prune.rate` of the weights still alive by magnitude of level
L-1's final weights (global by default) and rewinds the survivors to initialisation
(`prune.rewind=0it`, the default) or to their values at step k (Frankle et al. 2020), then
retrains with the original schedule from k. Zhou et al.'s ablations: `prune.criterion`,
`prune.restart`, `prune.layer_rates`. See methods/retraining.py for the shared machinery.

Two options reproduce OpenLTH's counting (`pruning/sparse_global.py`): `prune.count_excluded`
counts the weights of excluded layers in the remaining weights, so the whole level is taken from
the prunable layers, and `prune.threshold=openlth` drops every live weight at or below the n-th
smallest live score, n = ceil(rate · remaining) (n + 1 weights, and all ties). By default the
count is exact over the prunable weights: round((1 − rate)^L · N) kept, ties broken by position.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from fnmatch import fnmatchcase

from sparsify.checks import check_choice, check_range
from sparsify.errors import UserError
from sparsify.methods.base import METHODS, Context
from sparsify.methods.retraining import Retraining, RetrainingConfig
from sparsify.seeding import MASK_DRAWS
from sparsify.sparsity.allocation import openlth_mask, prune_mask
from sparsify.sparsity.criteria import criterion_scores
from sparsify.sparsity.mask import Mask

THRESHOLDS = ("exact", "openlth")


@dataclass
class LotteryTicketConfig(RetrainingConfig):
    # global: count the (never pruned) weights of prune.exclude in the remaining weights (OpenLTH)
    count_excluded: bool = False
    # exact: keep round((1 - rate)^L · N), ties by position; openlth: OpenLTH's strict cut
    threshold: str = "exact"
    # layerwise, iterative: {weight name pattern: rate per level} overriding prune.rate (Zhou)
    layer_rates: dict[str, float] = field(default_factory=dict)

    def check(self) -> None:
        super().check()
        check_choice("prune.threshold", self.threshold, THRESHOLDS)
        if self.count_excluded and self.allocation != "global":
            raise UserError(
                "prune.count_excluded=true counts excluded weights in one global total; it needs "
                f"prune.allocation=global, not {self.allocation}"
            )
        if self.threshold == "openlth" and not (
            self.iterative and self.allocation == "global" and self.granularity == "unstructured"
        ):
            raise UserError(
                "prune.threshold=openlth is OpenLTH's per-level global cut of single weights; it "
                "needs prune.iterative=true, prune.allocation=global, "
                "prune.granularity=unstructured"
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


@METHODS.register("lth")
class LotteryTicket(Retraining):
    config_class = LotteryTicketConfig
    policy = "rewind"

    def layer_rate(self, name: str) -> float:
        """The rate per level of weight `name`: the first matching prune.layer_rates entry, else
        prune.rate."""
        for pattern, rate in self.cfg.layer_rates.items():
            if fnmatchcase(name, pattern):
                return float(rate)
        return self.cfg.rate

    def check(self, ctx: Context) -> None:
        super().check(ctx)
        cfg, last = self.cfg, self.num_levels() - 1
        for pattern in cfg.layer_rates:
            if not any(fnmatchcase(n, pattern) for n in ctx.prunable):
                raise UserError(
                    f"prune.layer_rates pattern {pattern!r} matches no prunable weight; they are "
                    f"named like: {', '.join(ctx.prunable[:8])}"
                )
        for name in ctx.prunable if cfg.layer_rates else []:
            if round((1.0 - self.layer_rate(name)) ** last * ctx.init[name].numel()) < 1:
                raise UserError(
                    f"the last level would prune every weight of {name}; use fewer "
                    "prune.levels or a smaller rate for it in prune.layer_rates"
                )
        excluded = excluded_weights(ctx, cfg.exclude) if cfg.count_excluded else 0
        if self._kept_at_last_level(ctx.prunable_count, excluded) < 1:
            raise UserError(
                f"the last level would prune every weight (counting {excluded} excluded weights "
                "in the remaining ones); use fewer prune.levels or a smaller prune.rate"
            )

    def _kept_at_last_level(self, n: int, excluded: int) -> int:
        """Prunable weights alive after the last level with these counts (no ties assumed)."""
        last = self.num_levels() - 1
        if self.cfg.threshold == "exact":
            return round((1.0 - self.target_sparsity(last)) * (n + excluded)) - excluded
        alive = n
        for _ in range(last):
            alive -= math.ceil(self.cfg.rate * (alive + excluded)) + 1
        return alive

    def next_mask(self, level: int, ctx: Context) -> Mask:
        cfg = self.cfg
        if not (cfg.count_excluded or cfg.threshold == "openlth" or cfg.layer_rates):
            return super().next_mask(level, ctx)
        previous = ctx.mask(level - 1)
        scores = criterion_scores(
            cfg.criterion,
            ctx.prunable_part(ctx.init),
            ctx.prunable_part(ctx.final(level - 1)),
            ctx.generator(MASK_DRAWS, level),
            mask=previous,
        )
        excluded = excluded_weights(ctx, cfg.exclude) if cfg.count_excluded else 0
        if cfg.threshold == "openlth":
            mask = openlth_mask(scores, previous, cfg.rate, excluded)
        else:
            targets = None
            if cfg.layer_rates:
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
                layer_targets=targets,
                excluded=excluded,
            )
        emptied = [n for n, m in mask.items() if not bool(m.any()) and bool(previous[n].any())]
        if emptied:  # as prune_by refuses it: the network could no longer compute through it
            raise UserError(
                f"pruning level {level} would remove every weight of {', '.join(emptied)}; use "
                "fewer prune.levels, a lower rate, or prune.exclude for the layer"
            )
        return mask
