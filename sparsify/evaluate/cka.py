"""`cka`: linear CKA (Kornblith et al. 2019) between each prunable layer's output in the level
and in its dense parent, on the first `images` images of the evaluation split: where pruning
changed the representation. When those images fit in one evaluation batch, CKA is computed
exactly from the whole set (biased HSIC, as Kornblith et al.); otherwise by the minibatch
estimator (unbiased HSIC averaged over batches, Nguyen et al. 2021). Both models run as torch
models (the layers are found by name).

Scalars: cka_mean, cka_min over the layers; table `layers`: per layer, in model order.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from sparsify.checks import check_range
from sparsify.evaluate.base import EvalResult, MetricSpec, evaluator
from sparsify.evaluate.context import EvalContext
from sparsify.evaluate.similarity import MinibatchCKA, linear_cka


@dataclass
class CKASettings:
    images: int = 512  # evaluation images compared (the first ones of the split)

    def check(self, where: str) -> None:
        check_range(f"{where}.images", self.images, 4, None)


METRICS = {
    "cka_mean": MetricSpec("CKA with dense (mean over layers)", digits=3, higher_is_better=True),
    "cka_min": MetricSpec("CKA with dense (lowest layer)", digits=3, higher_is_better=True),
}


@torch.no_grad()
def _features(model: nn.Module, layers: list[str], x: Tensor) -> dict[str, Tensor]:
    """The outputs of the named modules on `x`, flattened per example."""
    found: dict[str, Tensor] = {}
    modules = dict(model.named_modules())
    hooks = [
        modules[name].register_forward_hook(
            lambda _m, _i, out, name=name: found.__setitem__(name, out.flatten(1).double().cpu())
        )
        for name in layers
    ]
    try:
        model(x)
    finally:
        for h in hooks:
            h.remove()
    return found


def _section(inp):
    from sparsify.report.evaluation_parts import cka_section

    return cka_section(inp)


@evaluator("cka", metrics=METRICS, settings=CKASettings, needs=("dense",), section=_section)
def cka(ctx: EvalContext) -> EvalResult:
    s: CKASettings = ctx.settings
    layers = [n.rsplit(".", 1)[0] for n in ctx.run.prunable]
    model, dense = ctx.torch_model, ctx.dense()
    batches, taken = [], 0
    for x, _ in ctx.loader.batches(0):
        x = x[: s.images - taken].to(ctx.device)
        batches.append(x)
        taken += x.shape[0]
        if taken >= s.images:
            break
    values: dict[str, float] = {}
    if len(batches) == 1:
        mine, ref = _features(model, layers, batches[0]), _features(dense, layers, batches[0])
        values = {n: linear_cka(mine[n], ref[n]) for n in layers}
    else:
        acc = {n: MinibatchCKA() for n in layers}
        for x in batches:
            mine, ref = _features(model, layers, x), _features(dense, layers, x)
            for n in layers:
                acc[n].update(mine[n], ref[n])
        values = {n: a.value() for n, a in acc.items()}
    scalars = {"cka_mean": sum(values.values()) / len(values), "cka_min": min(values.values())}
    table = {"columns": ["layer", "cka"], "rows": [[n, v] for n, v in values.items()]}
    return EvalResult(scalars=scalars, tables={"layers": table})
