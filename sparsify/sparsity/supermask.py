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

from sparsify.sparsity.allocation import keep_highest
from sparsify.sparsity.mask import Mask

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

    def _mask(self, s: Tensor, training: bool) -> Tensor:
        if self.kind == "bernoulli":
            p = torch.sigmoid(s)
            if training:
                # one uniform draw per weight: the same Bernoulli(p) sample, vectorised (about
                # 3x faster than torch.bernoulli on CPUs)
                m = (torch.rand_like(p) < p.detach()).to(p.dtype)
                return m + p - p.detach()  # straight-through: dm/ds = dsigmoid/ds
            if self.eval_mask == "expected":
                return (p > 0.5).float()
            gen = torch.Generator(device=s.device).manual_seed(0)
            return torch.bernoulli(p.detach(), generator=gen)
        k = max(1, round((1.0 - self.sparsity) * s.numel()))
        # exact top-k by the radix-narrowed selection: torch.topk with k ~ n/2 is slow on CPUs
        keep = keep_highest(s.detach().abs().reshape(-1).cpu(), k).to(s.device)
        m = keep.view_as(s).float()
        # straight-through to |s|, the quantity ranked (autograd adds sign(s) for the abs)
        return m + s.abs() - s.abs().detach() if training else m

    def _masked(self, w: Tensor, m: Tensor) -> Tensor:
        w = w * m
        if self.rescale:
            w = w * (m.numel() / m.detach().sum().clamp_min(1.0))
        return w

    def forward_model(self, model: nn.Module, x: Tensor) -> Tensor:
        """The model's output with w·m substituted for each prunable weight; the scores get the
        gradient, the frozen weights none. Sampled masks in training mode, evaluation masks in
        eval mode (the per-epoch validation)."""
        params = dict(model.named_parameters())
        effective = {
            n: self._masked(params[n].detach(), self._mask(s, training=model.training))
            for n, s in zip(self.names, self.scores)
        }
        return functional_call(model, effective, (x,))

    @torch.no_grad()
    def finalize(self, model: nn.Module) -> Mask:
        """Write the evaluation weights w·m (·scale) into `model`, a plain model from then on;
        returns the mask used."""
        params = dict(model.named_parameters())
        used = {}
        for name, s in zip(self.names, self.scores):
            m = self._mask(s, training=False)
            params[name].copy_(self._masked(params[name], m))
            used[name] = m.bool().cpu()
        return Mask(used)
