"""Zhou et al.'s gradient criteria (get_weight_init.py @ dbad201: `snip` = |g · w_i|, `grad` =
|g|, g from train.py's `calc_one_iter_grads`: the dense network at its initial weights, one
batch of training images, BatchNorm on batch statistics, dropout off). Expected numbers are
written out by hand or computed here from the textbook softmax gradient, never by sparsify."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from torch import nn

from sparsify.compose import compose
from sparsify.errors import UserError
from sparsify.identity import run_name
from sparsify.run import run
from sparsify.sparsity.criteria import CRITERIA, criterion_scores
from sparsify.sparsity.gradient import first_images, init_gradient


def test_snip_and_grad_score_the_gradient_at_init_as_get_weight_init_does():
    wi = {"w": torch.tensor([1.0, -2.0, 0.5, 0.0])}
    wf = {"w": torch.tensor([9.0, 9.0, 9.0, 9.0])}  # never read
    g = {"w": torch.tensor([0.3, 0.1, -4.0, 7.0])}
    snip = criterion_scores("snip", wi, wf, gradient=g)["w"]
    grad = criterion_scores("grad", wi, wf, gradient=g)["w"]
    assert snip.tolist() == pytest.approx([0.3, 0.2, 2.0, 0.0])
    assert grad.tolist() == pytest.approx([0.3, 0.1, 4.0, 7.0])
    assert {"snip", "grad"} <= set(CRITERIA)


class _Batches:
    """A loader whose epoch 0 is the given batches, in order."""

    def __init__(self, batches):
        self._batches = batches

    def batches(self, epoch=0, start=0):
        assert epoch == 0
        yield from self._batches


def test_the_first_images_span_batches_and_stop_at_the_count():
    batches = [(torch.full((3, 1), float(i)), torch.tensor([i, i, i])) for i in range(4)]
    x, y = first_images(_Batches(batches), 7)
    assert y.tolist() == [0, 0, 0, 1, 1, 1, 2]
    x, y = first_images(_Batches(batches), 100)  # fewer images than asked: all of them
    assert len(y) == 12


def test_the_gradient_at_init_is_the_softmax_gradient_of_the_mean_cross_entropy():
    rng = np.random.default_rng(0)
    w = rng.standard_normal((3, 4)).astype(np.float32)
    x = rng.standard_normal((5, 4)).astype(np.float32)
    y = np.array([0, 2, 1, 2, 0])

    def build():
        return nn.Sequential(nn.Linear(4, 3, bias=False), nn.Dropout(0.9))

    init = {"0.weight": torch.from_numpy(w)}
    loader = _Batches([(torch.from_numpy(x[:2]), torch.from_numpy(y[:2])),
                       (torch.from_numpy(x[2:]), torch.from_numpy(y[2:]))])  # fmt: skip
    got = init_gradient(build, init, ["0.weight"], loader, 5)["0.weight"].numpy()
    logits = x @ w.T
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    p[np.arange(5), y] -= 1.0  # d(CE)/d(logits) = softmax - onehot
    expected = p.T @ x / 5  # dropout off: it would have zeroed 90% of the outputs
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_batchnorm_uses_the_batch_statistics_and_the_model_is_left_as_built():
    torch.manual_seed(0)

    def build():
        return nn.Sequential(nn.Linear(4, 3, bias=False), nn.BatchNorm1d(3), nn.Linear(3, 2))

    model = build()
    init = {k: v.clone() for k, v in model.state_dict().items()}
    x, y = torch.randn(8, 4) * 5 + 3, torch.tensor([0, 1] * 4)
    got = init_gradient(build, init, ["0.weight", "2.weight"], _Batches([(x, y)]), 8)
    ref = build()
    ref.load_state_dict(init)
    ref.train()
    loss = nn.functional.cross_entropy(ref(x), y)
    want = torch.autograd.grad(loss, [ref[0].weight, ref[2].weight])
    assert torch.allclose(got["0.weight"], want[0]) and torch.allclose(got["2.weight"], want[1])
    ref.eval()  # the running statistics (mean 0, var 1 at init) give another gradient
    loss = nn.functional.cross_entropy(ref(x), y)
    other = torch.autograd.grad(loss, [ref[0].weight])[0]
    assert not torch.allclose(got["0.weight"], other, atol=1e-3)


def test_snip_on_the_digits_keeps_the_largest_gradient_times_init(tmp_path):
    """A whole magnitude run with prune.criterion=snip: level 1's mask is the top 50% of
    |g · w_i| (global), g recomputed here with torch autograd from init.pt and the first 100
    training images of epoch 0."""
    from sparsify.data import build_data
    from sparsify.models import build_model

    overrides = ["prune=magnitude", "prune.criterion=snip", "prune.sparsity=0.5",
                 "prune.finetune=2it", "train.epochs=1", "train.batch_size=64",
                 "eval=accuracy"]  # fmt: skip
    cfg = compose(overrides)
    results = run(cfg, tmp_path / "run")
    assert results["levels"][1]["sparsity"] == pytest.approx(0.5, abs=1e-5)
    data = build_data(cfg.data, cfg.train.batch_size, cfg.eval.batch_size, cfg.seed)
    model = build_model(cfg.model, data.num_classes, data.in_channels, data.image_size)
    model.load_state_dict(torch.load(tmp_path / "run" / "init.pt", weights_only=True))
    model.train()
    batches = data.train.batches(epoch=0)
    x, y = zip(*[next(batches) for _ in range(2)])
    x, y = torch.cat(x)[:100], torch.cat(y)[:100]
    names = [n for n, p in model.named_parameters() if n.endswith("weight")]
    params = dict(model.named_parameters())
    grads = torch.autograd.grad(
        nn.functional.cross_entropy(model(x), y), [params[n] for n in names]
    )
    scores = torch.cat([(g * params[n]).abs().flatten() for n, g in zip(names, grads)])
    keep = scores.numel() - int(round(0.5 * scores.numel()))
    cut = scores.sort(descending=True).values[keep - 1]
    mask = torch.load(tmp_path / "run" / "levels" / "level_01" / "mask.pt", weights_only=True)
    kept = torch.cat([mask[n].flatten() for n in names])
    flat = scores.detach()
    assert bool((flat[kept] >= cut - 1e-12).all()) and bool((flat[~kept] <= cut + 1e-12).all())
    large_final = torch.load(tmp_path / "run" / "levels" / "level_00" / "final.pt",
                             weights_only=True)  # fmt: skip
    magnitude = torch.cat([large_final[n].abs().flatten() for n in names])
    assert not torch.equal(kept, magnitude >= magnitude.median())  # not magnitude pruning


def test_gradient_batch_is_checked_and_kept_out_of_the_run_name_at_its_default():
    with pytest.raises(UserError, match="prune.gradient_batch"):
        compose(["prune=lth", "prune.gradient_batch=0"])

    def run_id(*overrides: str) -> str:
        return run_name(OmegaConf.to_container(compose(["prune=lth", *overrides]), resolve=True))

    assert run_id("prune.gradient_batch=100") == run_id()
    assert run_id("prune.criterion=snip", "prune.gradient_batch=128") != run_id(
        "prune.criterion=snip"
    )
