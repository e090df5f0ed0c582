"""Evaluators, one file each, registered in EVALUATORS; the evaluation stage that runs them over
a run's saved levels (stage.py); summaries over all levels (summary.py: prune potential,
verdict); `python -m sparsify.evaluate RUN_DIR` to re-evaluate a run."""

from __future__ import annotations

from sparsify.evaluate import (  # noqa: F401  (registers)
    accuracy,
    calibration,
    cka,
    corruptions,
    fidelity,
    kernels,
    per_class,
    potential,
    sampled_masks,
    shift,
    speed,
    verdict,
)
from sparsify.evaluate.base import EVALUATORS, EvalResult, MetricSpec, evaluator
from sparsify.evaluate.context import EvalContext
from sparsify.evaluate.metrics import loss_and_topk

__all__ = ["EVALUATORS", "EvalContext", "EvalResult", "MetricSpec", "evaluator", "loss_and_topk"]
