"""Masks learnt over frozen weights: a score per prunable weight, trained while the weights keep
their initial values.

- `bernoulli` (Zhou, Lan, Liu & Yosinski 2019, supermasks): the scores start at 0 (p = 1/2, as
  Zhou et al.'s `Constant(sigmoid_bias=0)`); in training each forward samples
  m ~ Bernoulli(sigmoid(s)) and the gradient passes straight through the sample to sigmoid(s).
  At evaluation the mask is a fresh Bernoulli sample drawn from a fixed seed (`sampled`, what
  Zhou et al. evaluate) or the rounded mask sigmoid(s) > 1/2 (`rounded`, the MAP mask).
- `topk` (Ramanujan et al. 2020, edge-popup): the scores start U(±1/sqrt(fan_in)) (the authors'
  `kaiming_uniform_(a=sqrt(5))`); each layer keeps the weights with the top (1 − sparsity)
  fraction of |s|; the gradient passes straight through to the scores. A layer of n weights
  keeps round((1 − sparsity)·n) (`kept_count="round"`) or, as hidden-networks' `GetSubnet`,
  n − int(sparsity·n), which is ceil((1 − sparsity)·n) up to float rounding
  (`"hidden_networks"`); at least 1 either way.

With `rescale` (Zhou et al.'s dynamic weight rescaling) a layer's weights are multiplied by
(weights in the layer / weights kept), so the layer's output keeps its scale whatever the mask.
For `bernoulli` the factor is differentiated through the straight-through mask as in Zhou et
al.'s graph (`rescale_gradient="differentiated"`) or held constant within a step (`constant`);
for `topk` the count kept is fixed, so the factor is a constant.
The model's own parameters are never changed during training: the forward pass substitutes
w·m (·scale) for each prunable weight through torch.func.functional_call.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.func import functional_call

from sparsify.errors import UserError
from sparsify.sparsity.mask import Mask
from sparsify.sparsity.topk import TrackedTopK

KINDS = ("bernoulli", "topk")
EVAL_MASKS = ("sampled", "rounded")
RESCALE_GRADIENTS = ("differentiated", "constant")
KEPT_COUNTS = ("round", "hidden_networks")


def count_kept(n: int, sparsity: float, how: str = "round") -> int:
    """Weights a top-k layer of `n` weights keeps at `sparsity`, at least 1: round((1 − s)·n),
    or (`hidden_networks`) what `GetSubnet` keeps at prune_rate k = 1 − s, the fraction kept:
    it zeroes the int((1 − k)·n) lowest scores, in the same float arithmetic."""
    assert how in KEPT_COUNTS
    if how == "hidden_networks":
        k = 1.0 - sparsity
        return max(1, n - int((1 - k) * n))
    return max(1, round((1.0 - sparsity) * n))


class ScoreMasks(nn.Module):
    """Trainable scores for the prunable weights `names` of a model, and the masks they give.

    All the scores are one flat parameter, the layers' scores in turn (grouped by size, in the
    order of `names` within a size), and so are the masks, the frozen weights and every
    quantity of a step: the mask work of a step is a few operations over the whole model, not a
    dozen per layer, whose per-operation overhead dominated (docs/performance.md)."""

    def __init__(
        self,
        weights: dict[str, Tensor],
        kind: str,
        sparsity: float = 0.5,
        rescale: bool = False,
        eval_mask: str = "sampled",
        rescale_gradient: str = "differentiated",
        generator: torch.Generator | None = None,
        kept_count: str = "round",
    ) -> None:
        super().__init__()
        assert kind in KINDS and eval_mask in EVAL_MASKS and weights
        assert rescale_gradient in RESCALE_GRADIENTS
        self.names = list(weights)
        self.kind, self.sparsity, self.rescale, self.eval_mask = kind, sparsity, rescale, eval_mask
        # the count a top-k layer keeps is fixed, so only Bernoulli masks move the factor
        self._through = rescale and kind == "bernoulli" and rescale_gradient == "differentiated"
        shapes = [w.shape for w in weights.values()]
        sizes = [w.numel() for w in weights.values()]
        # layout: layers of one size side by side, so that each size is one (layers, size) view
        self._order = sorted(range(len(sizes)), key=lambda i: sizes[i])
        self._sizes = [sizes[i] for i in self._order]
        self._shapes = shapes
        self._groups: list[tuple[int, int, int]] = []  # (offset, layers, size) per size
        offsets, at = [0] * len(sizes), 0
        for i in self._order:
            offsets[i] = at
            if self._groups and self._groups[-1][2] == sizes[i]:
                o, r, n = self._groups[-1]
                self._groups[-1] = (o, r + 1, n)
            else:
                self._groups.append((at, 1, sizes[i]))
            at += sizes[i]
        flat = torch.empty(at)  # the default dtype, whatever the weights' (as torch.randn)
        for i, w in enumerate(weights.values()):  # drawn layer by layer, in the order of names
            if kind == "bernoulli":  # Zhou et al.: sigmoid(0) = 1/2, every weight equally likely
                s = torch.zeros(w.shape)
            else:  # hidden-networks' kaiming_uniform_(a=sqrt(5)): U(±1/sqrt(fan_in))
                bound = 1.0 / math.sqrt(w[0].numel() if w.dim() > 1 else w.numel())
                s = (torch.rand(w.shape, generator=generator) * 2 - 1) * bound
            flat[offsets[i] : offsets[i] + sizes[i]] = s.reshape(-1)
        self.scores = nn.Parameter(flat.to(next(iter(weights.values())).device))
        # caches, not state: the top-k tracker, and the frozen weights laid out as the scores
        ks = [count_kept(n, sparsity, kept_count) for _, _, n in self._groups]
        self._topk = TrackedTopK(ks)
        self._frozen: tuple[list[Tensor], list[int], Tensor] | None = None

    @staticmethod
    def check_state(state: object, total: int, what: str) -> None:
        """UserError unless `state` is a ScoreMasks state_dict for `total` prunable weights."""
        scores = state.get("scores") if isinstance(state, dict) else None
        if not (
            isinstance(state, dict)
            and set(state) == {"scores"}
            and isinstance(scores, Tensor)
            and tuple(scores.shape) == (total,)
        ):
            raise UserError(
                f"{what} does not hold this run's scores (one flat tensor of {total} values; "
                "older versions of sparsify wrote one per layer); delete it to restart the level"
            )

    def layers(self, flat: Tensor) -> list[Tensor]:
        """The per-layer tensors of a flat one laid out as the scores, in the order of `names`:
        views, and one autograd node (a split) where `flat` requires grad."""
        parts = flat.split(self._sizes)
        out: list[Tensor] = [torch.empty(0)] * len(parts)
        for i, part in zip(self._order, parts):
            out[i] = part.view(self._shapes[i])
        return out

    def _rows(self, flat: Tensor) -> list[Tensor]:
        """`flat` as one (layers, size) view per size."""
        return [flat[o : o + r * n].view(r, n) for o, r, n in self._groups]

    def eval_masks(self) -> list[Tensor]:
        """The float 0/1 masks used outside training (evaluation and the final model), one per
        layer, in the order of `names`."""
        return self.layers(self._eval_mask())

    def _eval_mask(self) -> Tensor:
        s = self.scores.detach()
        if self.kind == "topk":
            return self._top(s)
        if self.eval_mask == "rounded":
            return torch.gt(s, 0.0, out=torch.empty_like(s))  # sigmoid(s) > 1/2
        # a fresh sample, as Zhou et al. evaluate, from a fixed seed: the same mask in every
        # validation, in final.pt and on every resume
        return self.sampled_mask(0)

    def sampled_mask(self, seed: int) -> Tensor:
        """A fresh Bernoulli(sigmoid(score)) sample of every mask, flat float 0/1 laid out as the
        scores, from a generator seeded `seed` drawn layer by layer in the order of `names`.
        Seed 0 is the `sampled` evaluation mask (final.pt); the `sampled_masks` evaluator
        averages seeds 0, 1, .. as Zhou et al. average 10 samples."""
        s = self.scores.detach()
        gen = torch.Generator(device=s.device).manual_seed(seed)
        m = torch.empty_like(s)
        for ms, ss in zip(self.layers(m), self.layers(s)):
            ms.copy_(torch.bernoulli(torch.sigmoid(ss), generator=gen))
        return m

    def weights_with(self, frozen: Tensor, m: Tensor) -> dict[str, Tensor]:
        """{name: w·m (·scale)} of the flat frozen weights and flat mask (both laid out as the
        scores): what the model computes with mask m outside training."""
        flat = frozen * m
        scale = self._scale(m)
        if isinstance(scale, Tensor):  # no pass for a scale of 1
            flat = flat * scale
        return dict(zip(self.names, self.layers(flat)))

    def frozen_flat(self, model: nn.Module) -> Tensor:
        """A copy of the model's weights at `names`, flat and laid out as the scores."""
        return self._frozen_weights(model).clone()

    def train_masks(self) -> tuple[Tensor, Tensor]:
        """(mask, dmask/ds), flat and laid out as the scores: the masks of one training forward
        and the surrogate derivative the straight-through estimator passes back to the scores."""
        s = self.scores.detach()
        if self.kind == "topk":
            # edge-popup: straight through to |s|, the quantity ranked
            return self._top(s), torch.sign(s)
        p = torch.sigmoid(s)
        # one uniform draw per weight, layer by layer in the order of names: the same Bernoulli
        # sample as torch.bernoulli, vectorised (about 3x faster on CPUs); straight through the
        # sample to sigmoid(s)
        u = torch.empty_like(p)
        for part in self.layers(u):
            part.uniform_()
        return torch.lt(u, p, out=u), p * (1.0 - p)

    def _top(self, s: Tensor) -> Tensor:
        """Float 0/1 mask keeping exactly the top `count_kept` entries of |s| in each layer:
        the entries torch.topk keeps, all layers of one size selected together, the cut tracked
        from call to call rather than recomputed (sparsity/topk.py)."""
        a, mask = s.abs(), torch.empty_like(s)
        self._topk(self._rows(a), out=self._rows(mask))
        return mask

    def _scale(self, m: Tensor) -> float | Tensor:
        """Dynamic weight rescaling for a flat mask, per element: (weights in the layer /
        weights kept); 1 without it."""
        if not self.rescale:
            return 1.0
        return self._factors(m)[0]

    def _factors(self, m: Tensor) -> tuple[Tensor, Tensor]:
        """(weights in the layer / weights kept, 1 / weights kept) per element of a flat mask,
        the count kept at least 1."""
        scale, inverse = [], []
        for rows in self._rows(m):
            kept = rows.sum(1, keepdim=True).clamp_min(1.0)
            scale.append((rows.shape[1] / kept).expand_as(rows).reshape(-1))
            inverse.append((1.0 / kept).expand_as(rows).reshape(-1))
        return torch.cat(scale), torch.cat(inverse)

    def _layer_sums(self, flat: Tensor) -> Tensor:
        """Each element's layer total of `flat`, flat and laid out as the scores."""
        return torch.cat(
            [r.sum(1, keepdim=True).expand_as(r).reshape(-1) for r in self._rows(flat)]
        )

    def _frozen_weights(self, model: nn.Module) -> Tensor:
        """The model's weights at `names`, detached and laid out as the scores. Copied once and
        again whenever a weight is replaced or changed in place: the cache holds an alias of
        each weight (so no replaced storage's address can be reused) and the version counter
        each had. Writes through `.data` bypass version counters, as they bypass autograd's
        own checks, and are not seen; sparsify makes none to the frozen weights. (Copying at
        every step measured slower: docs/performance.md.)"""
        params = dict(model.named_parameters())
        ws = [params[name] for name in self.names]
        if self._frozen is not None:
            aliases, versions, flat = self._frozen
            if all(
                w.data_ptr() == a.data_ptr() and w._version == v and w.shape == a.shape
                for w, a, v in zip(ws, aliases, versions)
            ):
                return flat
        flat = torch.cat([ws[i].detach().reshape(-1) for i in self._order])
        self._frozen = ([w.detach() for w in ws], [w._version for w in ws], flat)
        return flat

    def freeze(self, model: nn.Module) -> None:
        """Stop gradients to the weights the scores mask, for training the scores.

        The other parameters (BatchNorm's, biases) keep requires_grad: their gradients are
        computed and never applied, since no optimizer holds them. On CPUs, BatchNorm's backward
        without its parameters' gradients takes a slower path, which costs more than the whole
        mask work (docs/performance.md)."""
        params = dict(model.named_parameters())
        for name in self.names:
            params[name].requires_grad_(False)

    @staticmethod
    def release(model: nn.Module) -> None:
        """Undo `freeze` and drop the gradients no optimizer used: a plain model again."""
        model.requires_grad_(True)
        model.zero_grad(set_to_none=True)

    def masked_weights(self, model: nn.Module) -> dict[str, Tensor]:
        """w·m (·scale) for each weight at `names`: in training mode with sampled masks and the
        straight-through gradient to the scores (none to the frozen weights), in eval mode with
        the evaluation masks."""
        w = self._frozen_weights(model)
        if model.training:
            m, dm_ds = self.train_masks()
            if self._through:
                scale, inverse = self._factors(m)
                through = (self._layer_sums, inverse)
            else:
                scale, through = self._scale(m), None
            flat = _MaskedWeight.apply(self.scores, w, m, dm_ds, scale, through)
        else:
            return self.weights_with(w, self._eval_mask())
        return dict(zip(self.names, self.layers(flat)))

    def forward_model(self, model: nn.Module, x: Tensor) -> Tensor:
        """The model's output with w·m substituted for each prunable weight; the scores get the
        gradient, the frozen weights none. Sampled masks in training mode, evaluation masks in
        eval mode (the per-epoch validation)."""
        return functional_call(model, self.masked_weights(model), (x,))

    @torch.no_grad()
    def finalize(self, model: nn.Module) -> Mask:
        """Write the evaluation weights w·m (·scale) into `model`, a plain model from then on;
        returns the mask used."""
        params = dict(model.named_parameters())
        m = self._eval_mask()
        scale = self._scale(m)
        scales = self.layers(scale) if isinstance(scale, Tensor) else [scale] * len(self.names)
        used = {}
        for name, mi, si in zip(self.names, self.layers(m), scales):
            params[name].copy_(params[name] * mi * si)
            used[name] = mi.bool().cpu()
        return Mask(used)


class _MaskedWeight(torch.autograd.Function):
    """w·m·scale forward; backward sends the straight-through gradient to the scores and nothing
    to w or m. One fused product each way: the same gradient as autograd through
    `m + f(s) - f(s).detach()`, in a fraction of the elementwise passes over weight-sized
    tensors, which are most of these methods' cost beyond a plain step.

    With `through` (the per-layer sum of a flat tensor, and 1/Σm per element) the factor n/Σm is
    differentiated as well, as in Zhou et al.'s graph, where it is built from the
    straight-through mask: for W = w·m·n/S with S = Σm,
    dL/dm_j = (n/S)·(g_j·w_j − Σ_i g_i·w_i·m_i / S) = (n/S)·g_j·w_j − Σ_i g_i·W_i / S,
    times dm_j/ds_j. Without it the factor is a constant of the step."""

    @staticmethod
    def forward(ctx, s: Tensor, w: Tensor, m: Tensor, dm_ds: Tensor, scale, through):
        ws = w if isinstance(scale, float) and scale == 1.0 else w * scale
        out = ws * m
        if through is None:
            ctx.save_for_backward(ws * dm_ds)
            ctx.layer_sums = None
        else:
            ctx.layer_sums, inverse = through
            ctx.save_for_backward(ws * dm_ds, dm_ds * inverse, out)
        return out

    @staticmethod
    def backward(ctx, grad: Tensor):
        ws_dm, *rest = ctx.saved_tensors
        out = grad * ws_dm
        if ctx.layer_sums is not None:
            dm_over_kept, weights = rest
            out = out - dm_over_kept * ctx.layer_sums(grad * weights)
        return out, None, None, None, None, None
