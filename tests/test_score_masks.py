"""ScoreMasks' flat layout: one parameter for all layers' scores, views per layer, and the
frozen weights it copies once."""

import math

import pytest
import torch

from sparsify.sparsity.score_masks import ScoreMasks


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    # sizes 600, 200, 600: the two layers of one size sit side by side in the flat parameter
    return torch.nn.Sequential(
        torch.nn.Linear(30, 20),
        torch.nn.ReLU(),
        torch.nn.Linear(20, 10),
        torch.nn.ReLU(),
        torch.nn.Flatten(),
        torch.nn.Linear(10, 60),
    )


def _weights(model) -> dict[str, torch.Tensor]:
    return {n: p for n, p in model.named_parameters() if n.endswith("weight")}


@pytest.mark.parametrize("kind", ["bernoulli", "topk"])
def test_each_layers_scores_are_drawn_in_the_order_of_names(kind):
    """The flat layout changes nothing a seed gives: layer i's scores are the i-th draws."""
    weights = _weights(_model())
    scores = ScoreMasks(weights, kind, generator=torch.Generator().manual_seed(3))
    gen = torch.Generator().manual_seed(3)
    assert len(list(scores.parameters())) == 1
    for (name, w), s in zip(weights.items(), scores.layers(scores.scores.detach())):
        if kind == "bernoulli":  # Zhou et al.'s constant 0
            want = torch.zeros(w.shape)
        else:  # hidden-networks' kaiming_uniform_(a=sqrt(5)): U(±1/sqrt(fan_in))
            bound = 1.0 / math.sqrt(w[0].numel())
            want = (torch.rand(w.shape, generator=gen) * 2 - 1) * bound
        assert torch.equal(s, want), name
    assert scores.scores.numel() == sum(w.numel() for w in weights.values())


def test_the_layout_groups_sizes_and_layers_are_views_of_the_flat_tensor():
    weights = _weights(_model())
    scores = ScoreMasks(weights, "topk")
    flat = torch.arange(1400.0)
    parts = scores.layers(flat)
    assert [p.shape for p in parts] == [w.shape for w in weights.values()]
    storage = flat.untyped_storage().data_ptr()
    assert all(p.untyped_storage().data_ptr() == storage for p in parts)  # views, no copies
    # the 200-weight layer first, then the two 600-weight layers in the order of names
    assert parts[1].reshape(-1)[0] == 0 and parts[0].reshape(-1)[0] == 200
    assert parts[2].reshape(-1)[0] == 800
    assert sorted(torch.cat([p.reshape(-1) for p in parts]).tolist()) == flat.tolist()


@pytest.mark.parametrize("kind", ["bernoulli", "topk"])
def test_masked_weights_are_the_frozen_weights_times_the_masks(kind):
    model = _model().eval()
    weights = _weights(model)
    scores = ScoreMasks(weights, kind, sparsity=0.6)
    got = scores.masked_weights(model)
    for (name, w), m in zip(weights.items(), scores.eval_masks()):
        assert torch.equal(got[name], w.detach() * m), name
    # a weight changed in place (a resume loads a state_dict so), or replaced, is seen at the
    # next call
    with torch.no_grad():
        model[2].weight.mul_(-2.0)
    got = scores.masked_weights(model)
    for (name, w), m in zip(weights.items(), scores.eval_masks()):
        assert torch.equal(got[name], w.detach() * m), name
    model[0].weight.data = torch.randn(20, 30)  # a new storage, the version counter as it was
    got = scores.masked_weights(model)
    for (name, w), m in zip(weights.items(), scores.eval_masks()):
        assert torch.equal(got[name], w.detach() * m), name


def test_training_masks_keep_exactly_the_top_fraction_of_each_layer():
    model = _model().train()
    scores = ScoreMasks(_weights(model), "topk", sparsity=0.7)
    opt = torch.optim.SGD(scores.parameters(), lr=0.5)
    for _ in range(5):  # the scores move: the tracked cut must follow exactly
        opt.zero_grad()
        scores.forward_model(model, torch.randn(16, 30)).pow(2).sum().backward()
        opt.step()
        mask, _ = scores.train_masks()
        for s, m in zip(scores.layers(scores.scores.detach()), scores.layers(mask)):
            k = round(0.3 * m.numel())
            top = s.abs().reshape(-1).topk(k).indices
            assert torch.equal(m.reshape(-1), torch.zeros(m.numel()).scatter_(0, top, 1.0))
