"""`speed` (automatic under backend=triton on a CUDA GPU): milliseconds per forward pass of the
level's model on sparsify's kernels against the same weights run by torch.

Both run the same weights in `eval.speed.dtype`, channels-last weights and input, one forward
pass of `eval.speed.batch` random inputs, median of `eval.speed.reps` timed passes; torch with
`cudnn.benchmark` on (cuDNN, cuBLAS), as its users would run it. Inference only. The kernels'
model is converted with measurement: each converted layer keeps whichever of its kernel and torch
is faster at this shape; `kept_on_torch` lists those that chose torch.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch

from sparsify.errors import UserError
from sparsify.evaluate.base import EvalResult, MetricSpec, evaluator
from sparsify.evaluate.context import EvalContext
from sparsify.evaluate.kernels import convert_for_evaluation

DTYPES = ("float32", "float16", "bfloat16")


@dataclass
class SpeedSettings:
    batch: int = 64  # batch size of the timed forward pass
    dtype: str = "bfloat16"  # float32, float16 or bfloat16
    reps: int = 20  # timed forward passes (the median is reported)

    def check(self, prefix: str) -> None:
        if self.batch < 1 or self.reps < 1:
            raise UserError(f"{prefix}.batch and {prefix}.reps must be at least 1")
        if self.dtype not in DTYPES:
            raise UserError(
                f"{prefix}.dtype={self.dtype!r} is not valid; choose one of: {', '.join(DTYPES)}"
            )


def _section(inp):
    from sparsify.report.parts import speed_section

    return speed_section(inp)


@evaluator(
    "speed",
    metrics={
        "torch_ms": MetricSpec("torch ms", unit=" ms", digits=3, higher_is_better=False),
        "triton_ms": MetricSpec("kernels ms", unit=" ms", digits=3, higher_is_better=False),
        "speedup": MetricSpec(
            "speed-up", unit="x", digits=2, higher_is_better=True, plot=True, headline=True
        ),
    },
    settings=SpeedSettings,
    needs=("kernels", "cuda"),
    automatic=True,
    section=_section,
)
@torch.no_grad()
def speed(ctx: EvalContext) -> EvalResult:
    from sparsify.kernels import kept_on_torch
    from sparsify.kernels.convert import cuda_time

    s: SpeedSettings = ctx.settings
    dtype = getattr(torch, s.dtype)
    shape = (ctx.data.in_channels, ctx.data.image_size, ctx.data.image_size)
    x = torch.randn(s.batch, *shape, generator=ctx.generator()).to(ctx.device, dtype)
    x = x.contiguous(memory_format=torch.channels_last)
    reference = copy.deepcopy(ctx.torch_model).to(device=ctx.device, dtype=dtype).eval()
    reference = reference.to(memory_format=torch.channels_last)
    ours = convert_for_evaluation(reference, ctx.backend, measure=True).eval()
    benchmark = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = True
    try:
        ours(x)  # on a GPU each converted layer times itself against torch once, here
        t_torch = cuda_time(lambda: reference(x), warmup=5, reps=s.reps)
        t_ours = cuda_time(lambda: ours(x), warmup=5, reps=s.reps)
    finally:
        torch.backends.cudnn.benchmark = benchmark
    setup = [
        torch.cuda.get_device_name(ctx.device),
        s.batch,
        s.dtype,
        ", ".join(kept_on_torch(ours)),
    ]
    return EvalResult(
        scalars={"torch_ms": t_torch, "triton_ms": t_ours, "speedup": t_torch / t_ours},
        tables={
            "setup": {"columns": ["device", "batch", "dtype", "kept_on_torch"], "rows": [setup]}
        },
    )
