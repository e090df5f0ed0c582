"""Pruning granularities: unstructured, B×B blocks, N:M and whole output channels."""

import math

import pytest
import torch

from sparsify.errors import UserError
from sparsify.sparsity import GRANULARITIES, Mask, prune_mask, sparsity_stats
from sparsify.sparsity.criteria import magnitude_scores


def _weights(seed: int = 0) -> dict[str, torch.Tensor]:
    """Conv2d, conv1d, conv3d and linear weights, most with dimensions not multiples of 4 or 8."""
    g = torch.Generator().manual_seed(seed)
    shapes = {
        "conv": (20, 6, 3, 3),  # (20, 54) as a matrix
        "conv1d": (13, 5, 7),  # (13, 35)
        "conv3d": (8, 2, 3, 3, 3),  # (8, 54)
        "fc": (10, 37),
        "square": (16, 16),
    }
    return {n: torch.randn(s, generator=g) for n, s in shapes.items()}


def _matrix(t: torch.Tensor) -> torch.Tensor:
    return t.reshape(t.shape[0], -1)


def _assert_tiles_uniform(mask: Mask, b: int) -> None:
    """Every B×B tile (smaller at the edges) of every layer is all kept or all pruned."""
    kept = pruned = 0
    for name, m in mask.items():
        mat = _matrix(m)
        for i in range(0, mat.shape[0], b):
            for j in range(0, mat.shape[1], b):
                tile = mat[i : i + b, j : j + b]
                assert bool(tile.all()) or not bool(tile.any()), (name, i, j)
                kept += bool(tile.all())
                pruned += not bool(tile.any())
    assert kept and pruned  # otherwise the check says nothing


@pytest.mark.parametrize("allocation", ["global", "layerwise", "erk"])
@pytest.mark.parametrize("b", [3, 4, 8])
def test_every_block_tile_is_all_kept_or_all_pruned(allocation, b):
    w = _weights()
    mask = prune_mask(magnitude_scores(w), Mask.ones_like(w), 0.6, allocation, "block", block=b)
    _assert_tiles_uniform(mask, b)


def test_block_pruning_keeps_the_highest_l2_norm_blocks():
    # four 4×4 blocks, (L2, L1, max): (0,0) one 10 → (10, 10, 10); (0,1) all 3 → (12, 48, 3);
    # (1,0) all 0.5 → (2, 8, 0.5); (1,1) four 4.5 → (9, 18, 4.5). Keeping two blocks, L2 keeps
    # (0,0) and (0,1); L1 would keep (0,1) and (1,1), the largest weight (0,0) and (1,1).
    w = torch.zeros(8, 8)
    w[0, 0] = 10.0
    w[:4, 4:] = 3.0
    w[4:, :4] = 0.5
    w[4:6, 4:6] = 4.5
    w = {"w": w}
    mask = prune_mask(magnitude_scores(w), Mask.ones_like(w), 0.5, granularity="block", block=4)
    assert mask["w"][::4, ::4].tolist() == [[True, True], [False, False]]
    assert torch.equal(
        mask["w"], mask["w"][::4, ::4].repeat_interleave(4, 0).repeat_interleave(4, 1)
    )
    mask = prune_mask(magnitude_scores(w), Mask.ones_like(w), 0.25, granularity="block", block=4)
    assert mask["w"][::4, ::4].tolist() == [[True, True], [False, True]]


@pytest.mark.parametrize("allocation", ["global", "layerwise", "erk"])
@pytest.mark.parametrize("target", [0.1, 0.5, 0.8, 0.95])
def test_block_target_is_met_within_half_a_block_per_allocation_unit(allocation, target):
    w, b = _weights(1), 4
    mask = prune_mask(magnitude_scores(w), Mask.ones_like(w), target, allocation, "block", block=b)
    want = (1 - target) * mask.total
    units = 1 if allocation == "global" else len(w)
    assert abs(mask.alive - want) <= units * b * b / 2 + 1e-9
    # the reported sparsity is counted from the masked weights, and it is the mask's
    stats = sparsity_stats({n: w[n] * mask[n] for n in w})
    assert stats.sparsity == pytest.approx(mask.sparsity)
    assert stats.sparsity == pytest.approx(target, abs=units * b * b / 2 / mask.total)


def test_layerwise_block_pruning_meets_the_target_in_every_layer():
    w, b = _weights(2), 4
    mask = prune_mask(magnitude_scores(w), Mask.ones_like(w), 0.7, "layerwise", "block", block=b)
    for n, m in mask.items():
        assert abs(int(m.sum()) - 0.3 * m.numel()) <= b * b / 2 + 1e-9, n


def test_pruned_blocks_stay_pruned_across_a_second_call():
    w, b = _weights(3), 4
    first = prune_mask(magnitude_scores(w), Mask.ones_like(w), 0.5, granularity="block", block=b)
    # the same scores and target again, or a lower target: nothing changes (edge blocks included)
    for target in (0.5, 0.3):
        again = prune_mask(magnitude_scores(w), first, target, granularity="block", block=b)
        assert all(torch.equal(again[n], first[n]) for n in w)
    # new scores that would prefer other blocks
    w2 = {
        n: torch.randn(t.shape, generator=torch.Generator().manual_seed(9)) * 10
        for n, t in w.items()
    }
    second = prune_mask(magnitude_scores(w2), first, 0.75, granularity="block", block=b)
    for n in w:
        assert not torch.any(second[n] & ~first[n]), n
    _assert_tiles_uniform(second, b)
    assert second.sparsity == pytest.approx(0.75, abs=b * b / 2 / second.total)


def test_a_block_holding_any_pruned_weight_is_pruned():
    w = {"w": torch.ones(8, 8)}
    mask = Mask.ones_like(w)
    mask["w"][1, 6] = False  # one weight of the top-right block
    out = prune_mask(magnitude_scores(w), mask, 0.0, granularity="block", block=4)
    assert out["w"][:4, 4:].sum() == 0
    assert out["w"].sum() == 48


def test_block_of_one_is_unstructured_pruning():
    w = _weights(4)
    s, dense = magnitude_scores(w), Mask.ones_like(w)
    a = prune_mask(s, dense, 0.6, granularity="block", block=1)
    b = prune_mask(s, dense, 0.6)
    assert all(torch.equal(a[n], b[n]) for n in w)


def _groups(mask: torch.Tensor, m: int) -> list[torch.Tensor]:
    """The runs of m consecutive columns of each row (the last run may be shorter)."""
    mat = _matrix(mask)
    return [mat[:, j : j + m] for j in range(0, mat.shape[1], m)]


@pytest.mark.parametrize(("n", "m"), [(2, 4), (1, 4), (3, 8), (1, 2)])
def test_nm_keeps_exactly_n_of_every_m_when_dense_and_never_more(n, m):
    w = _weights(5)
    mask = prune_mask(magnitude_scores(w), Mask.ones_like(w), 0.3, granularity="nm", n=n, m=m)
    for name, layer in mask.items():
        for run in _groups(layer, m):
            counts = run.sum(dim=1)
            width = run.shape[1]
            # full runs keep n; a tail run of r < m columns keeps ceil(n·r/m) <= n
            assert torch.all(counts == math.ceil(n * width / m)), (name, width)
            assert torch.all(counts <= n)


@pytest.mark.parametrize("allocation", ["global", "layerwise", "erk"])
@pytest.mark.parametrize("target", [0.0, 0.3, 0.9])
def test_nm_sparsity_is_exactly_one_minus_n_over_m_whatever_the_target(allocation, target):
    torch.manual_seed(6)
    w = {"conv": torch.randn(16, 8, 3, 3), "fc": torch.randn(10, 64)}  # 72 and 64 columns
    mask = prune_mask(magnitude_scores(w), Mask.ones_like(w), target, allocation, "nm", n=2, m=4)
    stats = sparsity_stats({k: w[k] * mask[k] for k in w})
    assert stats.sparsity == 0.5
    assert mask.sparsity == 0.5


def test_nm_keeps_the_n_largest_magnitudes_of_each_group():
    torch.manual_seed(7)
    w = {"w": torch.randn(12, 32)}
    mask = prune_mask(magnitude_scores(w), Mask.ones_like(w), 0.5, granularity="nm", n=2, m=4)
    runs = w["w"].abs().reshape(-1, 4)
    want = torch.zeros_like(runs, dtype=torch.bool)
    want.scatter_(1, runs.topk(2, dim=1).indices, True)
    assert torch.equal(mask["w"].reshape(-1, 4), want)


def test_nm_keeps_already_pruned_weights_pruned():
    torch.manual_seed(8)
    w = {"w": torch.randn(6, 16)}
    before = Mask.ones_like(w)
    before["w"][:, ::2] = False  # half of every group of 4 gone, largest or not
    before["w"][0, :4] = False  # a group with nothing alive
    mask = prune_mask(magnitude_scores(w), before, 0.5, granularity="nm", n=3, m=4)
    assert not torch.any(mask["w"] & ~before["w"])
    assert torch.equal(mask["w"], before["w"])  # every run had at most 2 <= n live weights


def _assert_whole_rows(mask: Mask) -> None:
    for name, m in mask.items():
        rows = _matrix(m)
        assert torch.all(rows.all(dim=1) | ~rows.any(dim=1)), name


@pytest.mark.parametrize("allocation", ["global", "layerwise", "erk"])
def test_channel_pruning_removes_whole_output_channels(allocation):
    w = _weights(10)
    mask = prune_mask(magnitude_scores(w), Mask.ones_like(w), 0.6, allocation, "channel")
    _assert_whole_rows(mask)
    assert any(not bool(m.all()) for m in mask.values())
    pruned = {n: w[n] * mask[n] for n in w}
    for n, t in pruned.items():  # the weights of a pruned channel are exactly zero
        zero_rows = ~_matrix(mask[n]).any(dim=1)
        assert torch.all(_matrix(t)[zero_rows] == 0)


def test_channel_pruning_keeps_the_largest_l1_channels():
    # L1 norms 4, 3.5, 2.4, 1; row 1 has the largest L2 norm (3.5 > 2) and the largest weight
    w = torch.tensor(
        [[1.0, 1.0, 1.0, 1.0], [3.5, 0.0, 0.0, 0.0], [0.6, 0.6, 0.6, 0.6], [0.25, 0.25, 0.25, 0.25]]
    )
    mask = prune_mask({"w": w.abs()}, Mask.ones_like({"w": w}), 0.5, granularity="channel")
    assert mask["w"].all(dim=1).tolist() == [True, True, False, False]
    mask = prune_mask({"w": w.abs()}, Mask.ones_like({"w": w}), 0.75, granularity="channel")
    assert mask["w"].all(dim=1).tolist() == [True, False, False, False]


@pytest.mark.parametrize("allocation", ["global", "layerwise", "erk"])
@pytest.mark.parametrize("target", [0.2, 0.5, 0.9])
def test_channel_target_is_met_within_one_channel_per_layer(allocation, target):
    w = _weights(11)
    mask = prune_mask(magnitude_scores(w), Mask.ones_like(w), target, allocation, "channel")
    want = (1 - target) * mask.total
    row = {n: _matrix(t).shape[1] for n, t in w.items()}
    slack = max(row.values()) if allocation == "global" else sum(row.values())
    assert abs(mask.alive - want) <= slack / 2 + 1e-9
    if allocation == "layerwise":
        for n, m in mask.items():
            assert abs(int(m.sum()) - (1 - target) * m.numel()) <= row[n] / 2 + 1e-9, n


def test_pruned_channels_stay_pruned_across_a_second_call():
    w = _weights(12)
    first = prune_mask(magnitude_scores(w), Mask.ones_like(w), 0.4, granularity="channel")
    again = prune_mask(magnitude_scores(w), first, 0.4, granularity="channel")
    assert all(torch.equal(again[n], first[n]) for n in w)
    w2 = {n: torch.randn(t.shape) * 5 for n, t in w.items()}
    second = prune_mask(magnitude_scores(w2), first, 0.7, granularity="channel")
    assert all(not torch.any(second[n] & ~first[n]) for n in w)
    _assert_whole_rows(second)


@pytest.mark.parametrize("allocation", ["global", "layerwise", "erk"])
def test_unstructured_is_the_default_and_unchanged(allocation):
    w = _weights(13)
    s, dense = magnitude_scores(w), Mask.ones_like(w)
    default = prune_mask(s, dense, 0.7, allocation)
    explicit = prune_mask(s, dense, 0.7, allocation, "unstructured", block=7, n=1, m=3)
    assert all(torch.equal(default[n], explicit[n]) for n in w)
    if allocation == "global":  # exactly the 70% smallest magnitudes overall
        flat = torch.cat([t.abs().reshape(-1) for t in w.values()])
        keep = flat > flat.sort().values[round(0.7 * flat.numel()) - 1]
        assert torch.equal(torch.cat([default[n].reshape(-1) for n in w]), keep)


def test_granularities_are_exported():
    assert GRANULARITIES == ("unstructured", "block", "nm", "channel")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"granularity": "block", "block": 0}, "prune.block=0"),
        ({"granularity": "block", "block": -4}, "prune.block=-4"),
        ({"granularity": "block", "block": 2.5}, "must be an integer"),
        ({"granularity": "nm", "n": 0, "m": 4}, "1 <= n < m"),
        ({"granularity": "nm", "n": 4, "m": 4}, "1 <= n < m"),
        ({"granularity": "nm", "n": 5, "m": 4}, "1 <= n < m"),
        ({"granularity": "nm", "n": 2, "m": True}, "must be an integer"),
        ({"granularity": "rows"}, "unknown; valid: unstructured, block, nm, channel"),
    ],
)
def test_invalid_granularity_arguments_are_user_errors(kwargs, message):
    w = {"w": torch.randn(4, 4)}
    with pytest.raises(UserError, match=message):
        prune_mask(magnitude_scores(w), Mask.ones_like(w), 0.5, **kwargs)
