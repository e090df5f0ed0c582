"""The execution backend of a level's evaluation (config group `backend`, docs/kernels.md).

`torch` evaluates the trained model as it is. `triton` evaluates it through
`sparsify.kernels.convert`: block-sparse layers on the bsr kernel, very sparse ones on csr, dense
3×3 convs on Winograd, every converted layer on its kernel, so the accuracy reported is the
accuracy of the model the kernels run. On a CUDA GPU it also measures the level's speed: the
converted model (where each layer keeps whichever of its kernel and torch is faster) against the
same weights run by torch (cuDNN with `cudnn.benchmark` and channels-last, cuBLAS), one forward
pass of `speed_batch` random inputs in `speed_dtype`, median of `speed_reps` timed passes.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from omegaconf import DictConfig
from torch import nn

from sparsify.data.base import DataBundle
from sparsify.evaluate import evaluate


def _convert(model: nn.Module, b: DictConfig, measure: bool) -> nn.Module:
    from sparsify.kernels import convert

    return convert(
        model,
        b.mode,
        block=b.block,
        tile=b.tile,
        bsr_max_density=b.bsr_max_density,
        csr_max_density=b.csr_max_density,
        measure=measure,
    )


def evaluate_level(
    model: nn.Module, data: DataBundle, cfg: DictConfig, device: torch.device
) -> dict[str, Any]:
    """{"metrics": ...} for backend=torch; with backend=triton also "kernels" ({layer: kernel})
    and, on a CUDA GPU, "speed" (see speed())."""
    b = cfg.backend
    if b.name == "torch":
        return {"metrics": evaluate(model, data, list(cfg.eval.evaluators), cfg.eval.split, device)}
    from sparsify.kernels import kernel_layers

    # every converted layer runs its kernel here (no timing against torch), so `kernels` names
    # exactly the layers the reported metrics come from
    converted = _convert(model, b, measure=False).eval()
    out: dict[str, Any] = {
        "metrics": evaluate(converted, data, list(cfg.eval.evaluators), cfg.eval.split, device),
        "kernels": kernel_layers(converted),
    }
    if device.type == "cuda":
        shape = (data.in_channels, data.image_size, data.image_size)
        out["speed"] = speed(model, shape, b, device)
    return out


@torch.no_grad()
def speed(
    model: nn.Module, sample_shape: tuple[int, ...], b: DictConfig, device: torch.device
) -> dict[str, Any]:
    """Milliseconds per forward pass of `model` on torch and on the kernels, and their ratio.

    Both run the same weights in `b.speed_dtype`, channels-last weights and input; torch with
    `cudnn.benchmark` on, as its users would run it. Inference only (no autograd). The kernels'
    model is converted in mode `b.mode` with measurement: each converted layer keeps whichever
    of its kernel and torch is faster at this shape; `kept_on_torch` lists those that chose
    torch."""
    from sparsify.kernels import kept_on_torch
    from sparsify.kernels.convert import cuda_time

    dtype = getattr(torch, b.speed_dtype)
    x = torch.randn(b.speed_batch, *sample_shape, device=device, dtype=dtype)
    x = x.contiguous(memory_format=torch.channels_last)
    reference = copy.deepcopy(model).to(device=device, dtype=dtype).eval()
    reference = reference.to(memory_format=torch.channels_last)
    ours = _convert(reference, b, measure=True).eval()  # convert() works on a copy
    benchmark = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = True
    try:
        ours(x)  # on a GPU each converted layer times itself against torch once, here
        t_torch = cuda_time(lambda: reference(x), warmup=5, reps=b.speed_reps)
        t_ours = cuda_time(lambda: ours(x), warmup=5, reps=b.speed_reps)
    finally:
        torch.backends.cudnn.benchmark = benchmark
    return {
        "batch": b.speed_batch,
        "dtype": b.speed_dtype,
        "torch_ms": t_torch,
        "triton_ms": t_ours,
        "speedup": t_torch / t_ours,
        "kept_on_torch": kept_on_torch(ours),
        "device": torch.cuda.get_device_name(device),
    }
