"""TrackedTopK: the same masks as torch.topk at every call, while scores drift slowly, jump,
tie, hold NaN or infinities, and at the edges of k; several groups of rows at once."""

import pytest
import torch

from sparsify.sparsity.topk import TrackedTopK


def reference(a: torch.Tensor, k: int) -> torch.Tensor:
    return torch.zeros_like(a).scatter_(1, a.topk(k, dim=1, sorted=False).indices, 1.0)


def check(top: TrackedTopK, groups: list[torch.Tensor], step) -> None:
    masks = top(groups)
    for a, k, m in zip(groups, top.ks, masks):
        assert torch.equal(m, reference(a, k)), (step, tuple(a.shape), k)


@pytest.mark.parametrize(
    "shapes",
    [
        [((5, 2304), 1152)],
        [((1, 432), 216)],
        [((3, 640), 64)],
        [((1, 432), 216), ((6, 2304), 1152), ((2, 640), 320), ((1, 10), 10)],  # a model
    ],
)
def test_drifting_scores_give_torch_topks_masks(shapes):
    gen = torch.Generator().manual_seed(0)
    groups = [torch.rand(*shape, generator=gen) for shape, _ in shapes]
    top = TrackedTopK([k for _, k in shapes], margin=16)
    for step in range(150):
        # mostly a drift a few entries cross; now and then a jump far past the bracket
        noise = 0.5 if step % 25 == 12 else 1e-4
        groups = [a + noise * torch.randn(a.shape, generator=gen) for a in groups]
        check(top, groups, step)
    # the bracket answered most calls, and the jumps sent some to the full top-k
    ranked = sum(k < shape[1] for shape, k in shapes)
    assert top.answered + top.full == 150 * ranked
    assert 120 * ranked < top.answered < 150 * ranked


@pytest.mark.parametrize("raise_at", [8, 0])
def test_a_cut_moving_steadily_one_way_is_followed(raise_at):
    """Scores shrinking or growing every step (weight decay, a large learning rate) move the
    cut by a few ranks a step: the bound follows it down from the entries below it and up
    from those above it; never raising it (raise_at 0) sends every few calls to the full
    top-k. The masks are exact either way."""
    gen = torch.Generator().manual_seed(4)
    a = torch.rand(4, 1000, generator=gen)
    top = TrackedTopK([300], margin=16)
    top.raise_at = raise_at
    for step in range(60):
        a = a * (0.995 if step < 30 else 1.005) + 1e-3 * torch.randn(a.shape, generator=gen)
        check(top, [a], step)
    if raise_at:
        assert top.full == 1 and top.answered == 59 and top.raised > 10
    else:
        assert top.full > 5


def test_masks_are_written_into_the_given_tensors():
    gen = torch.Generator().manual_seed(5)
    flat, mask = torch.rand(3 * 100 + 2 * 40, generator=gen), torch.full((380,), 7.0)
    groups = [flat[:300].view(3, 100), flat[300:].view(2, 40)]
    out = [mask[:300].view(3, 100), mask[300:].view(2, 40)]
    top = TrackedTopK([30, 40])
    for step in range(3):
        got = top(groups, out=out)
        assert all(g.data_ptr() == o.data_ptr() for g, o in zip(got, out))
        assert torch.equal(mask[:300].view(3, 100), reference(groups[0], 30)), step
        assert torch.equal(mask[300:], torch.ones(80)), step  # k == n keeps everything
        flat.add_(1e-3 * torch.randn(380, generator=gen))


def test_entries_tied_below_and_above_the_cut_nan_and_infinities():
    gen = torch.Generator().manual_seed(3)
    a = torch.rand(2, 500, generator=gen)
    top = TrackedTopK([200], margin=8)
    for step in range(40):
        a = a + 1e-4 * torch.randn(2, 500, generator=gen)
        picks = torch.randint(0, 500, (2, 6), generator=gen)
        a[0, picks[0, :3]] = a[0, picks[0, 3:]]  # a few duplicated values anywhere
        if step % 10 == 7:
            a[1, picks[1, 0]] = float("nan")  # torch.topk ranks NaN first
        if step % 10 == 3:
            a[0, picks[0, 0]] = float("inf")
            a[1, picks[1, 1]] = float("-inf")
        check(top, [a], step)
        a = torch.nan_to_num(a, nan=0.5, posinf=0.9, neginf=0.1)
    assert top.answered > 20  # the duplicates away from the cut did not stop the tracking


def test_ties_at_the_cut_are_broken_as_torch_topk_breaks_them():
    gen = torch.Generator().manual_seed(1)
    a = torch.randint(0, 8, (4, 300), generator=gen).float()  # many equal values
    top = TrackedTopK([150], margin=8)
    for step in range(20):
        a[:, torch.randint(0, 300, (3,), generator=gen)] += 1.0
        check(top, [a], step)


@pytest.mark.parametrize(("n", "k"), [(10, 10), (10, 1), (2, 1), (10, 9), (40, 2)])
def test_edges_of_k(n, k):
    gen = torch.Generator().manual_seed(2)
    a = torch.randn(3, n, generator=gen)
    top = TrackedTopK([k], margin=4)
    for step in range(10):
        a = a + 0.01 * torch.randn(3, n, generator=gen)
        check(top, [a], step)


def test_a_change_of_shapes_rebuilds_the_bracket():
    top = TrackedTopK([5, 3])
    for rows, n in ((2, 20), (3, 20), (3, 20), (1, 20), (1, 30)):
        check(top, [torch.randn(rows, n), torch.randn(2, n)], (rows, n))


def test_negative_and_huge_values_stay_exact():
    """The entries above the bound are replaced by the lowest finite value: values near it must
    not be confused with them."""
    gen = torch.Generator().manual_seed(6)
    big = torch.finfo(torch.float32).max
    a = torch.randn(2, 300, generator=gen) * 1e37
    a[:, :5] = -big
    top = TrackedTopK([295], margin=8)
    for step in range(10):
        a[:, 5:] += 1e34 * torch.randn(2, 295, generator=gen)
        check(top, [a], step)


@pytest.mark.parametrize(
    ("dtype", "n", "k"), [(torch.float16, 5000, 834), (torch.bfloat16, 600, 100)]
)
def test_half_precision_rows_longer_than_their_exact_integers(dtype, n, k):
    """Counting in the entries' own dtype would round above 2048 (float16) or 256 (bfloat16)
    and keep k ± 1 entries: here the entries at or below the bound number n - (k - 33), odd,
    which neither dtype holds exactly."""
    gen = torch.Generator().manual_seed(7)
    first = 0x3C00 if dtype == torch.float16 else 0x3F80  # the bit pattern of 1.0
    values = torch.arange(first, first + n, dtype=torch.int16).view(dtype)  # distinct
    a = values[torch.randperm(n, generator=gen)].view(1, n)
    top = TrackedTopK([k], margin=32)
    for step in range(3):
        check(top, [a], step)
    assert top.answered == 2
