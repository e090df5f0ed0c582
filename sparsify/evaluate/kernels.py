"""`kernels` (automatic under backend=triton): which layers the evaluated model runs on
sparsify's kernels, and the conversion every evaluator's `ctx.model` goes through.

Under backend=triton `sparsify.kernels.convert` moves block-sparse layers to the bsr kernel, very
sparse ones to csr and dense 3×3 convs to Winograd (docs/kernels.md), and every converted layer
runs its kernel (no timing against torch), so the metrics the other evaluators report are those
of the model the kernels run, and this evaluator's table names exactly those layers.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from sparsify.evaluate.base import EvalResult, MetricSpec, evaluator
from sparsify.evaluate.context import EvalContext


def convert_for_evaluation(model: nn.Module, backend: Any, measure: bool = False) -> nn.Module:
    """`model` converted by the `backend` settings (a copy; `measure`: each layer keeps the
    faster of its kernel and torch, timed on a GPU)."""
    from sparsify.kernels import convert

    return convert(
        model,
        backend.mode,
        block=backend.block,
        tile=backend.tile,
        bsr_max_density=backend.bsr_max_density,
        csr_max_density=backend.csr_max_density,
        measure=measure,
    )


def _section(inp):
    from sparsify.report.parts import kernels_section

    return kernels_section(inp)


@evaluator(
    "kernels",
    metrics={"kernel_layers": MetricSpec("layers on kernels", digits=0)},
    needs=("kernels",),
    automatic=True,
    section=_section,
)
def kernels(ctx: EvalContext) -> EvalResult:
    from sparsify.kernels import kernel_layers

    assert ctx.kernel_model is not None
    layers = kernel_layers(ctx.kernel_model)
    return EvalResult(
        scalars={"kernel_layers": float(len(layers))},
        tables={
            "layers": {"columns": ["layer", "kernel"], "rows": [[n, k] for n, k in layers.items()]}
        },
    )
