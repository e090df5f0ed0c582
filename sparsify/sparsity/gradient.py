"""The loss gradient at initialisation, per prunable weight: what the `snip` and `grad` criteria
score (sparsity/criteria.py).

As Zhou et al.'s train.py computes it before the first step (`calc_one_iter_grads`): the dense
network at its initial weights, one batch of training images (theirs: 100 drawn at random on
MNIST, 128 on CIFAR-10; ours: the first `count` images of epoch 0's seeded shuffle, augmented as
training sees them), BatchNorm on the batch's statistics, dropout off, the mean cross-entropy
(without label smoothing or weight decay). Computed on the CPU in float32, so a resumed run
scores exactly as an uninterrupted one; computed once per run, since every level scores the same
initialisation.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sparsify.data.base import Loader


def first_images(loader: Loader, count: int) -> tuple[Tensor, Tensor]:
    """The first `count` training images of epoch 0 (all of them when the split is smaller)."""
    xs, ys, have = [], [], 0
    for x, y in loader.batches(epoch=0):
        xs.append(x[: count - have])
        ys.append(y[: count - have])
        have += len(xs[-1])
        if have >= count:
            break
    return torch.cat(xs), torch.cat(ys)


def init_gradient(
    build: Callable[[], nn.Module],
    init: dict[str, Tensor],
    prunable: list[str],
    loader: Loader,
    count: int,
) -> dict[str, Tensor]:
    """d(mean cross-entropy)/dw at `init` for every weight in `prunable`, float32 on the CPU."""
    # building draws initial weights (overwritten below) and a model may draw in forward: none
    # of it may move the global RNG that training draws from
    with torch.random.fork_rng(devices=[]):
        model = build()
        model.load_state_dict(init)
        model.float().train()
        for m in model.modules():
            if isinstance(m, nn.modules.dropout._DropoutNd):
                m.eval()
        x, y = first_images(loader, count)
        params = dict(model.named_parameters())
        weights = [params[n] for n in prunable]
        loss = F.cross_entropy(model(x), y)
        grads = torch.autograd.grad(loss, weights)
    return {n: g.detach().float() for n, g in zip(prunable, grads)}
