"""Masks learnt over frozen weights: a score per prunable weight, trained while the weights keep
their initial values.

- `bernoulli` (Zhou, Lan, Liu & Yosinski 2019, supermasks): in training each forward samples
  m ~ Bernoulli(sigmoid(s)); the gradient passes straight through the sample to sigmoid(s).
  At evaluation the mask is the expected one, sigmoid(s) > 0.5, or one sample drawn from a fixed
  seed (`eval_mask`).
- `topk` (Ramanujan et al. 2020, edge-popup): each layer keeps the weights with the top
  (1 − sparsity) fraction of |s|; the gradient passes straight through to the scores.

With `rescale` (Zhou et al.'s dynamic weight rescaling) a layer's weights are multiplied by
(weights in the layer / weights kept), so the layer's output keeps its scale whatever the mask.
The model's own parameters are never changed during training: the forward pass substitutes
w·m (·scale) for each prunable weight through torch.func.functional_call.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.func import functional_call

from sparsify.sparsity.mask import Mask
from sparsify.sparsity.topk import TrackedTopK

KINDS = ("bernoulli", "topk")
EVAL_MASKS = ("expected", "sampled")


class ScoreMasks(nn.Module):
    """Trainable scores for the prunable weights `names` of a model, and the masks they give."""

    def __init__(
        self,
        weights: dict[str, Tensor],
        kind: str,
        sparsity: float = 0.5,
        rescale: bool = False,
        eval_mask: str = "expected",
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        assert kind in KINDS and eval_mask in EVAL_MASKS
        self.names = list(weights)
        self.kind, self.sparsity, self.rescale, self.eval_mask = kind, sparsity, rescale, eval_mask
        scores = []
        for w in weights.values():
            if kind == "bernoulli":  # sigmoid(s) starts near 1/2: every weight equally likely
                s = 0.01 * torch.randn(w.shape, generator=generator)
            else:  # edge-popup: Kaiming-uniform scores
                bound = math.sqrt(6.0 / (w[0].numel() if w.dim() > 1 else w.numel()))
                s = (torch.rand(w.shape, generator=generator) * 2 - 1) * bound
            scores.append(nn.Parameter(s.to(w.device)))
        self.scores = nn.ParameterList(scores)
        self._topk: dict[tuple[int, int], TrackedTopK] = {}  # per (size, k): a cache, not state

    def eval_masks(self) -> list[Tensor]:
        """The float 0/1 masks used outside training (evaluation and the final model), one per
        score tensor."""
        scores = [s.detach() for s in self.scores]
        if self.kind == "topk":
            return self._top(scores)
        if self.eval_mask == "expected":
            return [(s > 0).float() for s in scores]  # sigmoid(s) > 1/2
        gen = torch.Generator(device=scores[0].device).manual_seed(0)
        return [torch.bernoulli(torch.sigmoid(s), generator=gen) for s in scores]

    def train_masks(self) -> list[tuple[Tensor, Tensor]]:
        """(mask, dmask/ds) per score tensor: the masks of one training forward and the surrogate
        derivative the straight-through estimator passes back to the scores."""
        scores = [s.detach() for s in self.scores]
        if self.kind == "topk":
            # edge-popup: straight through to |s|, the quantity ranked
            return list(zip(self._top(scores), (torch.sign(s) for s in scores)))
        out = []
        for s in scores:
            p = torch.sigmoid(s)
            # one uniform draw per weight: the same Bernoulli(p) sample, vectorised (about 3x
            # faster than torch.bernoulli on CPUs); straight through the sample to sigmoid(s)
            out.append(((torch.rand_like(p) < p).to(p.dtype), p * (1.0 - p)))
        return out

    def _top(self, scores: list[Tensor]) -> list[Tensor]:
        """Float 0/1 masks keeping exactly the top (1 - sparsity) fraction of |s| in each layer.

        Layers of one size are selected together, one batched top-k per size (a ResNet-20 has
        22 layers but 9 sizes): per-call overhead, not arithmetic, dominates top-k on layers
        this small. Exactly k kept, the entries torch.topk keeps; from step to step the cut is
        tracked rather than recomputed (sparsity/topk.py)."""
        out: list[Tensor] = [torch.empty(0)] * len(scores)
        by_size: dict[int, list[int]] = {}
        for i, s in enumerate(scores):
            by_size.setdefault(s.numel(), []).append(i)
        for n, members in by_size.items():
            k = max(1, round((1.0 - self.sparsity) * n))
            if (n, k) not in self._topk:
                self._topk[n, k] = TrackedTopK(k)
            keep = self._topk[n, k](torch.stack([scores[i].reshape(-1) for i in members]).abs_())
            for row, i in enumerate(members):
                out[i] = keep[row].view_as(scores[i])
        return out

    def _scale(self, m: Tensor) -> float | Tensor:
        """Dynamic weight rescaling: (weights in the layer / weights kept), 1 without it."""
        if not self.rescale:
            return 1.0
        return m.numel() / m.sum().clamp_min(1.0)

    def freeze(self, model: nn.Module) -> None:
        """Stop gradients to the weights the scores mask, for training the scores.

        The other parameters (BatchNorm's, biases) keep requires_grad: their gradients are
        computed and never applied, since no optimizer holds them. On CPUs, BatchNorm's backward
        without its parameters' gradients takes a slower path: freezing them made a ResNet-20
        step 14-30% slower (torch 2.15, two cores), more than the whole mask work."""
        params = dict(model.named_parameters())
        for name in self.names:
            params[name].requires_grad_(False)

    @staticmethod
    def release(model: nn.Module) -> None:
        """Undo `freeze` and drop the gradients no optimizer used: a plain model again."""
        model.requires_grad_(True)
        model.zero_grad(set_to_none=True)

    def forward_model(self, model: nn.Module, x: Tensor) -> Tensor:
        """The model's output with w·m substituted for each prunable weight; the scores get the
        gradient, the frozen weights none. Sampled masks in training mode, evaluation masks in
        eval mode (the per-epoch validation)."""
        params = dict(model.named_parameters())
        effective = {}
        if model.training:
            for name, s, (m, dm_ds) in zip(self.names, self.scores, self.train_masks()):
                w = params[name].detach()
                effective[name] = _MaskedWeight.apply(s, w, m, dm_ds, self._scale(m))
        else:
            for name, m in zip(self.names, self.eval_masks()):
                effective[name] = params[name].detach() * m * self._scale(m)
        return functional_call(model, effective, (x,))

    @torch.no_grad()
    def finalize(self, model: nn.Module) -> Mask:
        """Write the evaluation weights w·m (·scale) into `model`, a plain model from then on;
        returns the mask used."""
        params = dict(model.named_parameters())
        used = {}
        for name, m in zip(self.names, self.eval_masks()):
            params[name].copy_(params[name] * m * self._scale(m))
            used[name] = m.bool().cpu()
        return Mask(used)


class _MaskedWeight(torch.autograd.Function):
    """w·m·scale forward; backward sends grad · w · scale · dm/ds to the scores and nothing to
    w, m or the scale (constants of the step). One fused product each way: the same gradient as
    autograd through `m + f(s) - f(s).detach()`, in a fraction of the elementwise passes over
    weight-sized tensors, which are most of these methods' cost beyond a plain step."""

    @staticmethod
    def forward(ctx, s: Tensor, w: Tensor, m: Tensor, dm_ds: Tensor, scale: float | Tensor):
        ws = w if isinstance(scale, float) and scale == 1.0 else w * scale
        ctx.save_for_backward(ws * dm_ds)
        return ws * m

    @staticmethod
    def backward(ctx, grad: Tensor):
        (ws_dm,) = ctx.saved_tensors
        return grad * ws_dm, None, None, None, None
