"""TrackedTopK: the same masks as torch.topk at every call, while scores drift slowly, jump,
tie, and at the edges of k."""

import pytest
import torch

from sparsify.sparsity.topk import TrackedTopK


def reference(a: torch.Tensor, k: int) -> torch.Tensor:
    return torch.zeros_like(a).scatter_(1, a.topk(k, dim=1, sorted=False).indices, 1.0)


class Counting(TrackedTopK):
    """Counts the calls the bracket answered, to show the tracked path is the one tested."""

    tracked = 0

    def _tracked(self, a):
        mask = super()._tracked(a)
        self.tracked += mask is not None
        return mask


@pytest.mark.parametrize(("rows", "n", "k"), [(5, 2304, 1152), (1, 432, 216), (3, 640, 64)])
def test_drifting_scores_give_torch_topks_masks(rows, n, k):
    gen = torch.Generator().manual_seed(0)
    a = torch.rand(rows, n, generator=gen)
    top = Counting(k, margin=16)
    for step in range(150):
        # mostly a drift a few entries cross; now and then a jump far past the bracket
        noise = 0.5 if step % 25 == 12 else 1e-4
        a = a + noise * torch.randn(rows, n, generator=gen)
        assert torch.equal(top(a), reference(a, k)), step
    # the bracket answered most calls, and the jumps sent some to the full top-k
    assert 120 < top.tracked < 150


def test_entries_tied_below_and_above_the_cut_and_nan():
    gen = torch.Generator().manual_seed(3)
    a = torch.rand(2, 500, generator=gen)
    top = TrackedTopK(200, margin=8)
    for step in range(40):
        a = a + 1e-4 * torch.randn(2, 500, generator=gen)
        picks = torch.randint(0, 500, (2, 6), generator=gen)
        a[0, picks[0, :3]] = a[0, picks[0, 3:]]  # a few duplicated values anywhere
        if step % 10 == 7:
            a[1, picks[1, 0]] = float("nan")  # torch.topk ranks NaN first
        assert torch.equal(top(a), reference(a, 200)), step
        a = torch.nan_to_num(a, nan=0.5)


def test_ties_at_the_cut_are_broken_as_torch_topk_breaks_them():
    gen = torch.Generator().manual_seed(1)
    a = torch.randint(0, 8, (4, 300), generator=gen).float()  # many equal values
    top = TrackedTopK(150, margin=8)
    for _ in range(20):
        a[:, torch.randint(0, 300, (3,), generator=gen)] += 1.0
        assert torch.equal(top(a), reference(a, 150))


@pytest.mark.parametrize(("n", "k"), [(10, 10), (10, 1), (2, 1), (10, 9)])
def test_edges_of_k(n, k):
    gen = torch.Generator().manual_seed(2)
    a = torch.randn(3, n, generator=gen)
    top = TrackedTopK(k, margin=4)
    for _ in range(10):
        a = a + 0.01 * torch.randn(3, n, generator=gen)
        assert torch.equal(top(a), reference(a, k))


def test_a_change_in_rows_rebuilds_the_bracket():
    top = TrackedTopK(5)
    for rows in (2, 3, 3, 1):
        a = torch.randn(rows, 20)
        assert torch.equal(top(a), reference(a, 5))
