"""Linear CKA (Kornblith et al. 2019), in float64.

`linear_cka(X, Y)`: X (n, p1), Y (n, p2), one row per example; columns are centred over the
examples, then CKA = ‖Ycᵀ Xc‖²_F / (‖Xcᵀ Xc‖_F ‖Ycᵀ Yc‖_F). Equivalently, from the Gram
matrices K = X Xᵀ and L = Y Yᵀ: HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L)) with the biased
HSIC tr(K H L H) (`gram_cka`). `unbiased=True` uses Song et al.'s unbiased HSIC, which the
minibatch estimator (Nguyen et al. 2021) averages over batches (`MinibatchCKA`).
"""

from __future__ import annotations

import torch
from torch import Tensor


def linear_cka(x: Tensor, y: Tensor, unbiased: bool = False) -> float:
    x, y = x.flatten(1).double(), y.flatten(1).double()
    assert x.shape[0] == y.shape[0], (tuple(x.shape), tuple(y.shape))
    return gram_cka(x @ x.T, y @ y.T, unbiased)


def _center(k: Tensor) -> Tensor:
    return k - k.mean(0, keepdim=True) - k.mean(1, keepdim=True) + k.mean()


def hsic(k: Tensor, l: Tensor, unbiased: bool = False) -> Tensor:  # noqa: E741
    """HSIC of two (n, n) Gram matrices, up to a factor common to all three in CKA."""
    if not unbiased:
        return (_center(k) * _center(l)).sum()
    n = k.shape[0]
    assert n > 3, "the unbiased HSIC needs more than 3 examples"
    k, l = k.clone(), l.clone()  # noqa: E741
    k.fill_diagonal_(0)
    l.fill_diagonal_(0)
    ones = torch.ones(n, 1, dtype=k.dtype, device=k.device)
    kl = (k * l).sum()
    sums = (ones.T @ k @ ones) * (ones.T @ l @ ones) / ((n - 1) * (n - 2))
    cross = 2 * (ones.T @ k @ l @ ones) / (n - 2)
    return (kl + sums - cross).squeeze() / (n * (n - 3))


def gram_cka(k: Tensor, l: Tensor, unbiased: bool = False) -> float:  # noqa: E741
    k, l = k.double(), l.double()  # noqa: E741
    denom = (hsic(k, k, unbiased) * hsic(l, l, unbiased)).sqrt()
    return float(hsic(k, l, unbiased) / denom) if denom > 0 else 0.0


class MinibatchCKA:
    """CKA over batches of the same examples through two models: the unbiased HSIC terms are
    averaged over batches (Nguyen et al. 2021), so memory is one batch's Gram matrices."""

    def __init__(self) -> None:
        self.kl = self.kk = self.ll = 0.0

    def update(self, x: Tensor, y: Tensor) -> None:
        """Add one batch: x (b, ...) and y (b, ...) of the same b examples (b <= 3 is skipped:
        the unbiased HSIC needs 4)."""
        if x.shape[0] <= 3:
            return
        x, y = x.flatten(1).double(), y.flatten(1).double()
        k, l = x @ x.T, y @ y.T  # noqa: E741
        self.kl += float(hsic(k, l, True))
        self.kk += float(hsic(k, k, True))
        self.ll += float(hsic(l, l, True))

    def value(self) -> float:
        denom = (self.kk * self.ll) ** 0.5 if self.kk > 0 and self.ll > 0 else 0.0
        return self.kl / denom if denom > 0 else 0.0
