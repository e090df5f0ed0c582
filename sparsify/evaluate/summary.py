"""Summaries: what needs every level of a run (prune potential, the safe-sparsity verdict).

A summary is a function `(SummaryInput) -> dict` registered with `@summary(name, settings=...)`;
it reads only the evaluated level records (their scalars and small tables, as saved on disk), so
it runs after the last level and again whenever the run is re-evaluated, and costs nothing to
recompute. Its result lands in results.json under `summary.<name>`; its settings are
`eval.<name>.*`; `eval.summaries` lists the ones a run computes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Optional

from sparsify.errors import UserError
from sparsify.evaluate.base import MetricSpec
from sparsify.records import LevelRecord
from sparsify.registry import Registry

NO_PARENT = (
    "no dense parent: this method trains no dense level (eval.dense_level=L compares with level L)"
)


@dataclass(frozen=True)
class SummaryInput:
    records: list[LevelRecord]  # every level, evaluated, in order
    dense_level: Optional[int]  # the dense parent's level, or None
    specs: dict[str, MetricSpec]  # the selected evaluators' scalars
    settings: Any  # the summary's own settings, or None
    eval_images: int  # images in the evaluated split
    num_classes: int

    @property
    def dense(self) -> Optional[LevelRecord]:
        if self.dense_level is None or self.dense_level >= len(self.records):
            return None
        return self.records[self.dense_level]


@dataclass(frozen=True)
class Summary:
    name: str
    fn: Callable[[SummaryInput], dict[str, Any]]
    settings: Optional[type] = None
    section: Optional[Callable[..., Any]] = None  # (ReportInput) -> list[Section]


SUMMARIES: Registry[Summary] = Registry("summary")


def summary(
    name: str, *, settings: Optional[type] = None, section: Optional[Callable[..., Any]] = None
) -> Callable[[Callable[[SummaryInput], dict[str, Any]]], Callable[[SummaryInput], dict]]:
    """Decorator: register `fn` as the summary `name`."""

    def decorate(fn: Callable[[SummaryInput], dict[str, Any]]) -> Callable:
        SUMMARIES.register(name)(Summary(name, fn, settings, section))
        return fn

    return decorate


def selected_summaries(cfg: Any) -> list[Summary]:
    """The summaries `eval.summaries` lists, in order (a UserError for an unknown name)."""
    out = []
    for name in cfg.eval.get("summaries", []):
        if name not in SUMMARIES:
            raise UserError(
                f"eval.summaries: {name!r} is not valid; choose from: {', '.join(SUMMARIES.names())}"
            )
        entry = SUMMARIES.get(name)
        if entry in out:
            raise UserError(f"eval.summaries lists {name} twice")
        out.append(entry)
    return out
