"""ERK allocation against RigL's `sparse_utils.get_sparsities_erdos_renyi` (google-research/rigl
@ d39fc7d; jaxpruner @ f133ee5 is the same rule), re-written here in plain Python on the
weights' shapes. Both densify the same layers; RigL budgets floor(s · n) pruned weights per
layer and rounds kept counts up, sparsify budgets real-valued densities and rounds, so it lands
closer to the target (the review's check 5: 54,199 against 54,176 kept at 0.8 on ResNet-20)."""

from __future__ import annotations

import math

import pytest
import torch

from sparsify.config import ModelConfig
from sparsify.models import build_model
from sparsify.sparsity import Mask, prunable_weights, prune_mask
from sparsify.sparsity.allocation import erk_densities


def _rigl_erk(shapes: dict[str, tuple[int, ...]], sparsity: float) -> tuple[dict, set]:
    """get_sparsities_erdos_renyi (erk_power_scale 1): the layer with the largest raw density
    is made dense, one at a time, until eps · raw <= 1 everywhere; kept = ceil(n · density)."""
    dense: set[str] = set()
    while True:
        divisor, rhs, raw = 0.0, 0.0, {}
        for name, shape in shapes.items():
            n = math.prod(shape)
            n_zeros = int(n * sparsity)
            if name in dense:
                rhs -= n_zeros
            else:
                rhs += n - n_zeros
                raw[name] = sum(shape) / n
                divisor += raw[name] * n
        eps = rhs / divisor
        top = max(raw.values())
        if top * eps <= 1:
            break
        dense |= {name for name, r in raw.items() if r == top}
    density = {n: 1.0 if n in dense else eps * raw[n] for n in shapes}
    return {n: math.ceil(math.prod(shapes[n]) * density[n]) for n in shapes}, dense


@pytest.mark.parametrize(
    "sparsity, rigl_kept, ours_kept, dense_layers",
    [
        (0.8, 54_199, 54_176, {"conv.weight", "blocks.3.shortcut.0.weight",
                               "blocks.6.shortcut.0.weight", "fc.weight"}),
        (0.9, 27_111, 27_087, {"blocks.3.shortcut.0.weight", "fc.weight"}),
    ],
)  # fmt: skip
def test_erk_densifies_rigls_layers_and_is_within_two_weights_a_layer_of_its_counts(
    sparsity, rigl_kept, ours_kept, dense_layers
):
    model = build_model(ModelConfig(name="resnet20"), 10, 3, 32)
    shapes = {n: tuple(p.shape) for n, p in prunable_weights(model).items()}
    assert sum(math.prod(s) for s in shapes.values()) == 270_896
    rigl, rigl_dense = _rigl_erk(shapes, sparsity)
    assert sum(rigl.values()) == rigl_kept and rigl_dense == dense_layers
    ours_density = erk_densities(shapes, 1.0 - sparsity)
    assert {n for n, d in ours_density.items() if d == 1.0} == dense_layers
    scores = {
        n: torch.rand(s, generator=torch.Generator().manual_seed(1)) for n, s in shapes.items()
    }
    mask = prune_mask(scores, Mask.ones_like(scores), sparsity, allocation="erk")
    kept = {n: int(m.sum()) for n, m in mask.items()}
    assert sum(kept.values()) == ours_kept
    assert max(abs(kept[n] - rigl[n]) for n in shapes) <= 2
    total = sum(math.prod(s) for s in shapes.values())
    assert abs(1 - ours_kept / total - sparsity) < abs(1 - rigl_kept / total - sparsity)


@pytest.mark.parametrize("sparsity, rigl_kept", [(0.8, 54_199), (0.9, 27_111)])
def test_erk_rigl_keeps_rigls_count_in_every_layer(sparsity, rigl_kept):
    """`prune.allocation=erk_rigl` is RigL's rounding: the plain-Python re-write above, layer by
    layer, and RigL's totals written out."""
    model = build_model(ModelConfig(name="resnet20"), 10, 3, 32)
    shapes = {n: tuple(p.shape) for n, p in prunable_weights(model).items()}
    rigl, _ = _rigl_erk(shapes, sparsity)
    scores = {
        n: torch.rand(s, generator=torch.Generator().manual_seed(2)) for n, s in shapes.items()
    }
    mask = prune_mask(scores, Mask.ones_like(scores), sparsity, allocation="erk_rigl")
    kept = {n: int(m.sum()) for n, m in mask.items()}
    assert kept == rigl
    assert sum(kept.values()) == rigl_kept
    # each layer keeps its highest scores
    for n, m in mask.items():
        if 0 < kept[n] < m.numel():
            assert scores[n][m].min() > scores[n][~m].max()
