"""The evaluator contract: what an evaluator declares, what it receives, what it returns.

An evaluator is a function `(ctx: EvalContext) -> EvalResult` registered with `@evaluator(...)`,
which declares

- `metrics`: every scalar it may report, with a `MetricSpec` (label, unit, format, higher is
  better, plotted against sparsity, shown in the level's console line). Two selected evaluators
  that declare the same key are refused before any work: keys never overwrite each other;
- `settings`: a dataclass of its own settings, exposed as `eval.<name>.*` in the config;
- `needs`: what it cannot run without (`NEEDS`), checked before any work;
- `automatic`: run whenever its needs are met, without being listed in `eval.evaluators`
  (the kernel evaluators under `backend=triton`);
- `section`: an optional report section of its own (sparsify/report/parts.py);
- `shares`: other evaluators whose settings change its result (e.g. `corruptions`, whose names
  and severities are the corrupted data that `fidelity` and `calibration` also score): their
  settings are part of its result's key;
- `prepare`: called once per run before any work with (settings, data, inputs, batch size), to
  open and check files of its own (`shift` registers its released test sets there).

Results are stored per level and per evaluator under `levels/level_XX/eval/<key>/` and reused
when present (sparsify/evaluate/stage.py): an evaluator runs once per level and settings.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Optional

from torch import Tensor

from sparsify.records import TableJSON
from sparsify.registry import Registry

if TYPE_CHECKING:
    from sparsify.evaluate.context import EvalContext

# What an evaluator may need, and what provides it (the words of the refusal).
NEEDS = {
    "kernels": "backend=triton (the model converted to sparsify's kernels)",
    "cuda": "a CUDA GPU (device=cuda, or device=auto on a machine with one)",
    "dense": "a dense reference level (the methods whose level 0 trains dense: not gmp, "
    "supermask, edgepopup; or eval.dense_level=L to compare with level L)",
    "val": "a validation split (data.val_fraction > 0)",
    "scores": "masks sampled from learnt scores (prune=supermask, whose levels save scores.pt)",
}


@dataclass(frozen=True)
class MetricSpec:
    """How to read and show one scalar."""

    label: str  # words for tables and axes, e.g. "accuracy"
    percent: bool = False  # a fraction in [0, 1], shown as a percentage
    unit: str = ""  # shown after the number: " ms", "x"
    digits: int = 4  # decimals shown (2 for percentages)
    higher_is_better: Optional[bool] = None
    plot: bool = False  # one figure of it against sparsity in the report
    headline: bool = False  # in the level's console line
    # a proportion of the evaluated split's images (an accuracy): reports show its Wilson 95%
    # interval on that many images, the noise of the test set itself
    binomial: bool = False

    def format(self, value: Any) -> str:
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            return "" if value is None else str(value)
        if isinstance(value, float) and not math.isfinite(value):
            return str(value)
        if self.percent:
            return f"{100 * value:.{min(self.digits, 2)}f}%"
        return f"{value:.{self.digits}f}{self.unit}"


@dataclass
class EvalResult:
    """What an evaluator returns for one level."""

    scalars: dict[str, float] = field(default_factory=dict)  # keys declared in `metrics`
    tables: dict[str, TableJSON] = field(default_factory=dict)  # small: kept in results.json
    arrays: dict[str, Tensor] = field(default_factory=dict)  # large: <name>.pt beside the result


@dataclass(frozen=True)
class Evaluator:
    name: str
    fn: Callable[[EvalContext], EvalResult]
    metrics: dict[str, MetricSpec]
    settings: Optional[type] = None
    needs: frozenset[str] = frozenset()
    automatic: bool = False
    section: Optional[Callable[..., Any]] = None  # (ReportInput) -> list[Section]
    shares: tuple[str, ...] = ()
    prepare: Optional[Callable[..., None]] = None  # (settings, data, inputs, batch_size)

    def __call__(self, ctx: EvalContext) -> EvalResult:
        result = self.fn(ctx)
        undeclared = sorted(set(result.scalars) - set(self.metrics))
        assert not undeclared, f"evaluator {self.name} returned undeclared keys {undeclared}"
        return result


EVALUATORS: Registry[Evaluator] = Registry("evaluator")


def evaluator(
    name: str,
    *,
    metrics: dict[str, MetricSpec],
    settings: Optional[type] = None,
    needs: tuple[str, ...] = (),
    automatic: bool = False,
    section: Optional[Callable[..., Any]] = None,
    shares: tuple[str, ...] = (),
    prepare: Optional[Callable[..., None]] = None,
    registry: Registry[Evaluator] = EVALUATORS,
) -> Callable[[Callable[[EvalContext], EvalResult]], Callable[[EvalContext], EvalResult]]:
    """Decorator: register `fn` as the evaluator `name` (see the module docstring)."""
    unknown = set(needs) - set(NEEDS)
    assert not unknown, f"evaluator {name}: unknown needs {sorted(unknown)}; known: {sorted(NEEDS)}"

    def decorate(fn: Callable[[EvalContext], EvalResult]) -> Callable[[EvalContext], EvalResult]:
        entry = Evaluator(
            name,
            fn,
            dict(metrics),
            settings,
            frozenset(needs),
            automatic,
            section,
            tuple(shares),
            prepare,
        )
        registry.register(name)(entry)
        return fn

    return decorate
