"""Masks, enforcement, scoring and allocation."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from sparsify.errors import UserError
from sparsify.sparsity import Mask, MaskEnforcer, prunable_weights, prune_mask, sparsity_stats
from sparsify.sparsity.allocation import erk_densities
from sparsify.sparsity.criteria import magnitude_scores
from sparsify.sparsity.select import kth_smallest


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 6 * 6, 10)
    )


def test_prunable_weights_are_conv_and_linear_weights_only():
    names = list(prunable_weights(_net()))
    assert names == ["0.weight", "4.weight"]


def test_exclude_pattern_removes_matching_weights():
    assert list(prunable_weights(_net(), ["4.*"])) == ["0.weight"]


def test_exclude_pattern_matching_nothing_is_a_user_error():
    with pytest.raises(UserError, match="matches no conv or linear weight"):
        prunable_weights(_net(), ["fc.weight"])


@pytest.mark.parametrize(
    "make_opt",
    [
        lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, weight_decay=0.1),
        lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.1),
        lambda p: torch.optim.Adam(p, lr=0.01, weight_decay=0.1),
        lambda p: torch.optim.AdamW(p, lr=0.01, weight_decay=0.1),
    ],
    ids=["sgd_momentum_wd", "sgd_nesterov", "adam", "adamw"],
)
def test_pruned_weights_stay_exactly_zero_through_optimizer_steps(make_opt):
    model = _net()
    weights = prunable_weights(model)
    mask = prune_mask(magnitude_scores(weights), Mask.ones_like(weights), 0.7)
    mask.apply_(model)
    enforcer = MaskEnforcer(model, mask)
    opt = make_opt(model.parameters())
    x, y = torch.randn(16, 1, 8, 8), torch.randint(0, 10, (16,))
    for _ in range(5):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        enforcer.mask_grads()
        opt.step()
        enforcer.mask_weights()
    for name, m in mask.items():
        w = dict(model.named_parameters())[name]
        assert torch.all(w[~m] == 0)
        assert torch.all(w[m] != 0)  # live weights did train (and none fell to exactly 0)
    for state in opt.state.values():  # momentum / moments of pruned weights stay zero too
        for name, m in mask.items():
            p = dict(model.named_parameters())[name]
            if state is opt.state.get(p):
                for v in state.values():
                    if torch.is_tensor(v) and v.shape == m.shape:
                        assert torch.all(v[~m] == 0)


def test_masked_state_dict_loads_into_the_plain_model():
    model = _net()
    weights = prunable_weights(model)
    prune_mask(magnitude_scores(weights), Mask.ones_like(weights), 0.5).apply_(model)
    fresh = _net()
    fresh.load_state_dict(model.state_dict())  # strict: no weight_orig / weight_mask keys
    assert set(fresh.state_dict()) == set(model.state_dict())


@pytest.mark.parametrize("allocation", ["global", "layerwise", "erk"])
@pytest.mark.parametrize("target", [0.0, 0.2, 0.5, 0.9, 0.99])
def test_prune_mask_hits_the_target_sparsity(allocation, target):
    torch.manual_seed(1)
    w = {"a": torch.randn(64, 32, 3, 3), "b": torch.randn(100, 300), "c": torch.randn(10, 100)}
    mask = prune_mask(magnitude_scores(w), Mask.ones_like(w), target, allocation)
    total = sum(t.numel() for t in w.values())
    want_alive = round((1 - target) * total)
    # global is exact; per-layer rounding moves at most one weight per layer
    assert abs(mask.alive - want_alive) <= (0 if allocation == "global" else len(w))


def test_global_pruning_removes_the_smallest_magnitudes():
    w = {"a": torch.tensor([[0.1, -5.0], [3.0, -0.2]]), "b": torch.tensor([[0.05, 4.0]])}
    mask = prune_mask(magnitude_scores(w), Mask.ones_like(w), 0.5)
    assert mask["a"].tolist() == [[False, True], [True, False]]
    assert mask["b"].tolist() == [[False, True]]


def test_global_pruning_is_exact_with_ties():
    w = {"a": torch.ones(10, 10), "b": torch.ones(5, 4)}
    mask = prune_mask(magnitude_scores(w), Mask.ones_like(w), 0.35)
    assert mask.alive == 120 - round(0.35 * 120)


def test_layerwise_prunes_every_layer_to_the_same_sparsity():
    torch.manual_seed(2)
    w = {"a": torch.randn(50, 20), "b": torch.randn(200, 10) * 100}
    mask = prune_mask(magnitude_scores(w), Mask.ones_like(w), 0.6, "layerwise")
    assert int(mask["a"].sum()) == 400 and int(mask["b"].sum()) == 800


def test_pruning_never_revives_pruned_weights():
    torch.manual_seed(3)
    w = {"a": torch.randn(40, 40)}
    first = prune_mask(magnitude_scores(w), Mask.ones_like(w), 0.5)
    w2 = {"a": torch.randn(40, 40) * 10}  # new scores that would pick other weights
    second = prune_mask(magnitude_scores(w2), first, 0.64)
    assert not torch.any(second["a"] & ~first["a"])
    assert second.sparsity == pytest.approx(0.64)


def test_erk_densities_meet_the_budget_and_never_exceed_one():
    shapes = {"conv1": (16, 3, 3, 3), "conv2": (64, 16, 3, 3), "fc": (10, 1024)}
    numel = {n: torch.Size(s).numel() for n, s in shapes.items()}
    for density in (0.05, 0.2, 0.6):
        dens = erk_densities(shapes, density)
        kept = sum(dens[n] * numel[n] for n in shapes)
        assert kept == pytest.approx(density * sum(numel.values()))
        assert all(0 < d <= 1 for d in dens.values())
    # densities follow (sum of dims) / (product of dims): fc > conv1 > conv2 while uncapped
    low = erk_densities(shapes, 0.05)
    assert low["fc"] > low["conv1"] > low["conv2"]
    assert low["fc"] / low["conv2"] == pytest.approx((1034 / 10240) / (86 / 9216))
    # at high density the layer with the largest ratio is capped at 1 and the rest rescaled
    assert erk_densities(shapes, 0.6)["fc"] == 1.0


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(1, 200_000),
    k_frac=st.floats(0, 1),
    scale=st.sampled_from([1e-8, 1.0, 1e6]),
    ties=st.booleans(),
)
def test_kth_smallest_equals_torch_kthvalue(n, k_frac, scale, ties):
    g = torch.Generator().manual_seed(n)
    x = torch.randn(n, generator=g) * scale
    if ties:
        x = x.round()
    k = max(1, min(n, round(k_frac * n)))
    assert kth_smallest(x, k) == torch.kthvalue(x, k).values


def test_sparsity_stats_count_zeros_in_the_weights():
    stats = sparsity_stats({"a": torch.tensor([0.0, 1.0, 0.0, 2.0]), "b": torch.zeros(6)})
    assert (stats.nonzero, stats.total) == (2, 10)
    assert stats.sparsity == pytest.approx(0.8)
    assert stats.per_layer == {"a": (2, 4), "b": (0, 6)}


def test_mask_from_state_dict_rejects_mismatched_shapes():
    w = {"a": torch.zeros(3, 3)}
    with pytest.raises(UserError):
        Mask.from_state_dict({"a": torch.ones(2, 3, dtype=torch.bool)}, w, "mask.pt")
    with pytest.raises(UserError):
        Mask.from_state_dict({"b": torch.ones(3, 3, dtype=torch.bool)}, w, "mask.pt")
