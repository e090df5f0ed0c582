"""supermask and edgepopup against their authors' code (issue 12; review section 6): Zhou et al.'s
frozen weights, score start, rescaling gradient and sampled evaluation
(uber-research/deconstructing-lottery-tickets @ dbad201), hidden-networks' score start and
non-affine BatchNorm (allenai/hidden-networks @ dddf2d0). Expected numbers are written out or
come from the reference logic re-written here, never from sparsify's own functions."""

import math

import pytest
import torch
from omegaconf import OmegaConf
from torch import nn

from sparsify.compose import compose
from sparsify.config import ModelConfig, TrainConfig
from sparsify.errors import UserError
from sparsify.identity import run_name
from sparsify.methods import METHODS, Context
from sparsify.models import build_model
from sparsify.models.registry import MODELS
from sparsify.sparsity import Mask
from sparsify.sparsity.prunable import prunable_weights
from sparsify.sparsity.score_masks import ScoreMasks
from sparsify.training.optim import LRSchedule


def _ctx(model: nn.Module) -> Context:
    init = {k: v.clone() for k, v in model.state_dict().items()}
    prunable = list(prunable_weights(model))
    schedule = LRSchedule(TrainConfig(lr=0.1, schedule="constant"), 10, 10)
    return Context(
        init=init,
        prunable=prunable,
        iterations_per_epoch=10,
        total=10,
        schedule=schedule,
        final=lambda lv: init,
        mask=lambda lv: Mask.ones_like({n: init[n] for n in prunable}),
        snapshot=lambda lv, name: init,
        seed=0,
    )


def _frozen(weight_init: str, model: nn.Module) -> dict[str, torch.Tensor]:
    cfg = compose(["prune=supermask", f"prune.weight_init={weight_init}"]).prune
    return METHODS.get("supermask")(cfg).frozen_weights(_ctx(model))


# --- frozen weights ------------------------------------------------------------------------


def test_supermask_defaults_are_the_authors():
    prune = compose(["prune=supermask"]).prune
    assert (prune.weight_init, prune.rescale) == ("signed_glorot_constant", True)
    assert (prune.rescale_gradient, prune.eval_mask) == ("differentiated", "sampled")
    exp = compose(["experiment=supermask_conv4_cifar10"])
    assert exp.prune.weight_init == "signed_glorot_constant"
    assert (exp.prune.rescale_gradient, exp.prune.eval_mask) == ("differentiated", "sampled")
    assert (exp.train.batch_size, exp.train.momentum, exp.train.schedule) == (250, 0.9, "constant")


def test_signed_glorot_constant_is_the_std_of_zhous_glorot_kernels():
    """Conv 3->64 3x3: fan_in 27, fan_out 576, sqrt(2/603) = 0.0575912; linear 64->300:
    sqrt(2/364) = 0.0741249; half the signs positive."""
    model = nn.Sequential(nn.Conv2d(3, 64, 3), nn.Flatten(), nn.Linear(64, 300))
    frozen = _frozen("signed_glorot_constant", model)
    for name, want in (("0.weight", 0.05759122837), ("2.weight", 0.07412493167)):
        w = frozen[name]
        assert torch.allclose(w.abs(), torch.full_like(w, want), rtol=1e-6, atol=0), name
        assert 0.45 < float((w > 0).double().mean()) < 0.55, name


def test_signed_kaiming_constant_stays_one_option_away():
    """hidden-networks' signed constant: sqrt(2/fan_in) = sqrt(2/27) = 0.2721655."""
    model = nn.Sequential(nn.Conv2d(3, 64, 3), nn.Flatten(), nn.Linear(64, 300))
    w = _frozen("signed_kaiming_constant", model)["0.weight"]
    assert torch.allclose(w.abs(), torch.full_like(w, 0.2721655270), rtol=1e-6, atol=0)


# --- score initialisation ------------------------------------------------------------------


def test_supermask_scores_start_at_zero_as_zhous_constant_initialiser():
    scores = ScoreMasks({"w": torch.randn(30, 20)}, "bernoulli")
    assert torch.equal(scores.scores.detach(), torch.zeros(600))


def test_edgepopup_scores_start_as_hidden_networks_kaiming_uniform_a_sqrt5():
    """kaiming_uniform_(a=sqrt(5)): bound gain·sqrt(3/fan_in) with gain sqrt(2/(1+5)), i.e.
    1/sqrt(fan_in): 0.0441942 for fan_in 512; std·sqrt(fan_in) = 1/sqrt(3) = 0.577."""
    w = torch.empty(256, 512)
    scores = ScoreMasks({"w": w}, "topk", generator=torch.Generator().manual_seed(0))
    s = scores.scores.detach()
    gain = math.sqrt(2.0 / (1 + 5))  # torch's leaky_relu gain at a = sqrt(5)
    bound = gain * math.sqrt(3.0 / 512)
    assert bound == pytest.approx(0.04419417382)
    assert float(s.abs().max()) <= bound and float(s.abs().max()) > 0.999 * bound
    assert float(s.std()) * math.sqrt(512) == pytest.approx(0.5773503, rel=0.01)


# --- the rescaling gradient ----------------------------------------------------------------


def test_rescale_gradient_by_hand_on_a_two_weight_layer(monkeypatch):
    """w = [1, 2], x = [1, 1], L = W·x, sampled m = [1, 0] at s = 0 (dm/ds = 1/4).
    Zhou: L = n·Σ w_j m_j / Σ m, dL/dm_j = n·w_j/S − n·Σ w m / S² = [0, 2]; times 1/4: [0, 0.5].
    Constant factor n/S = 2: dL/dm_j = 2·w_j = [2, 4]; times 1/4: [0.5, 1.0]."""
    for how, want in (("differentiated", [0.0, 0.5]), ("constant", [0.5, 1.0])):
        layer = nn.Linear(2, 1, bias=False)
        with torch.no_grad():
            layer.weight.copy_(torch.tensor([[1.0, 2.0]]))
        layer.requires_grad_(False)
        scores = ScoreMasks(
            {"weight": layer.weight}, "bernoulli", rescale=True, rescale_gradient=how
        )
        sample = (torch.tensor([1.0, 0.0]), torch.tensor([0.25, 0.25]))
        monkeypatch.setattr(scores, "train_masks", lambda sample=sample: sample)
        out = scores.forward_model(layer.train(), torch.ones(1, 2))
        assert float(out.detach()) == 2.0  # 2 · (1·1 + 2·0)
        out.sum().backward()
        assert scores.scores.grad.tolist() == want, how


def _zhou_layer(w, s, sample):
    """masked_networks.py's MaskedDense with dynamic_scaling, in torch: the effective mask is
    the sample plus sigmoid(s) − stop_gradient(sigmoid(s)); the multiplier size / reduce_sum of
    the effective mask is part of the graph."""
    p = torch.sigmoid(s)
    effective = sample + p - p.detach()
    multiplier = effective.numel() / effective.sum()
    return multiplier * (w * effective)


def test_rescale_gradient_matches_zhous_graph_on_a_tiny_mlp():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3))
    model.requires_grad_(False)
    weights = {"0.weight": model[0].weight, "2.weight": model[2].weight}
    scores = ScoreMasks(weights, "bernoulli", rescale=True)  # the default: differentiated
    with torch.no_grad():  # scores away from 0, so the layers' probabilities differ
        scores.scores.normal_(0.0, 1.0, generator=torch.Generator().manual_seed(2))
    x = torch.randn(32, 8)
    torch.manual_seed(1)
    scores.forward_model(model.train(), x).pow(2).sum().backward()
    ours = [g.clone() for g in scores.layers(scores.scores.grad)]

    torch.manual_seed(1)  # the same Bernoulli draws
    masks = [m.clone() for m in scores.layers(scores.train_masks()[0])]
    ref_scores = [s.detach().clone().requires_grad_(True) for s in scores.layers(scores.scores)]
    effective = {
        name: _zhou_layer(weights[name], s, m)
        for name, s, m in zip(scores.names, ref_scores, masks)
    }
    torch.func.functional_call(model, effective, (x,)).pow(2).sum().backward()
    for got, s in zip(ours, ref_scores):
        torch.testing.assert_close(got, s.grad, rtol=1e-5, atol=1e-7)

    # the constant factor is a different gradient (what sparsify computed before)
    const = ScoreMasks(weights, "bernoulli", rescale=True, rescale_gradient="constant")
    with torch.no_grad():
        const.scores.copy_(scores.scores)
    torch.manual_seed(1)
    const.forward_model(model.train(), x).pow(2).sum().backward()
    for got, c in zip(ours, const.layers(const.scores.grad)):
        assert float((got - c).norm() / got.norm()) > 0.01


# --- evaluation ----------------------------------------------------------------------------


def test_sampled_evaluation_is_a_fresh_bernoulli_sample_from_seed_0():
    """Zhou et al. evaluate fresh samples of Bernoulli(sigmoid(s)); sparsify's one is drawn
    layer by layer (in the order of names) from a generator seeded 0, the same every call."""
    weights = {"a": torch.randn(20, 30), "b": torch.randn(10, 20)}
    scores = ScoreMasks(weights, "bernoulli", eval_mask="sampled")
    with torch.no_grad():
        scores.scores.normal_(0.0, 2.0, generator=torch.Generator().manual_seed(5))
    layers = [s.detach() for s in scores.layers(scores.scores)]
    gen = torch.Generator().manual_seed(0)
    want = [torch.bernoulli(torch.sigmoid(s), generator=gen) for s in layers]
    for _ in range(2):
        for got, w in zip(scores.eval_masks(), want):
            assert torch.equal(got, w)
    rounded = ScoreMasks(weights, "bernoulli", eval_mask="rounded")
    with torch.no_grad():
        rounded.scores.copy_(scores.scores)
    for got, s in zip(rounded.eval_masks(), layers):
        assert torch.equal(got, (s > 0).float())  # the MAP mask, not an expectation


@pytest.mark.parametrize(
    "override,valid",
    [
        ("prune.eval_mask=expected", "sampled, rounded"),
        ("prune.rescale_gradient=through", "differentiated, constant"),
        ("prune.weight_init=glorot", "signed_glorot_constant"),
    ],
)
def test_bad_learnt_mask_settings_are_refused_with_the_valid_choices(override, valid):
    with pytest.raises(UserError, match=valid):
        compose(["prune=supermask", override])


# --- BatchNorm: every layer learns ---------------------------------------------------------


def test_learnt_masks_put_every_batchnorm_at_scale_1_and_shift_0():
    """hidden-networks' NonAffineBatchNorm; resnet18's zero-initialised residual scales too."""
    model = build_model(ModelConfig(name="resnet18"), 10, 3, 32)
    assert any(
        bool((m.weight == 0).all()) for m in model.modules() if isinstance(m, nn.BatchNorm2d)
    )
    plan = METHODS.get("edgepopup")(compose(["prune=edgepopup"]).prune).plan(0, _ctx(model))
    for name, module in model.named_modules():
        if isinstance(module, nn.BatchNorm2d):
            assert torch.equal(plan.weights[f"{name}.weight"], torch.ones(module.num_features))
            assert torch.equal(plan.weights[f"{name}.bias"], torch.zeros(module.num_features))


@pytest.mark.parametrize("method", ["supermask", "edgepopup"])
@pytest.mark.parametrize("name", MODELS.names())
def test_every_masked_layer_of_every_model_gets_a_score_gradient(name, method):
    torch.manual_seed(0)
    side = 16
    model = build_model(ModelConfig(name=name), 10, 3, side)
    ctx = _ctx(model)
    plan = METHODS.get(method)(compose([f"prune={method}"]).prune).plan(0, ctx)
    model.load_state_dict(plan.weights)
    trains = plan.trains
    trains.start(model)
    x = torch.randn(4, 3, side, side, generator=torch.Generator().manual_seed(1))
    y = torch.arange(4)
    torch.manual_seed(2)
    nn.functional.cross_entropy(trains.forward(model.train(), x), y).backward()
    grads = trains.scores.layers(trains.scores.scores.grad)
    dead = [n for n, g in zip(trains.scores.names, grads) if not bool(g.abs().sum() > 0)]
    assert not dead, f"{name}/{method}: no score gradient in {dead}"


# --- edge-popup: the count kept and the scaled fan (hidden-networks @ dddf2d0) --------------


def _getsubnet(scores: torch.Tensor, k: float) -> torch.Tensor:
    """utils/conv_type.py:16-27, GetSubnet.forward: zero the int((1 - k)·n) lowest scores, k
    being the prune rate (the fraction kept)."""
    out = scores.clone()
    _, idx = scores.flatten().sort()
    j = int((1 - k) * scores.numel())
    flat = out.flatten()
    flat[idx[:j]] = 0
    flat[idx[j:]] = 1
    return flat.view_as(scores)


def _edgepopup(*overrides: str):
    return METHODS.get("edgepopup")(compose(["prune=edgepopup", *overrides]).prune)


def test_edgepopup_new_settings_default_to_sparsifys_behaviour():
    prune = compose(["prune=edgepopup"]).prune
    assert (prune.kept_count, prune.scale_fan) == ("round", False)


@pytest.mark.parametrize(
    "sparsity,rounded,authors",
    [(0.3, 2150, 2151), (0.9, 307, 308), (0.5, 1536, 1536)],  # review section 6's numbers
)
def test_edgepopup_kept_count_round_or_as_hidden_networks_getsubnet(sparsity, rounded, authors):
    """A 64×48 layer (3,072 weights): round((1 − s)·n) against GetSubnet's n − int((1 − k)·n)
    at k = 1 − s; 0.7·3072 = 2150.4 and 0.1·3072 = 307.2, so the authors keep one more."""
    model = nn.Sequential(nn.Linear(48, 64, bias=False))
    ctx = _ctx(model)
    for how, want in (("round", rounded), ("hidden_networks", authors)):
        method = _edgepopup(f"prune.sparsity={sparsity}", f"prune.kept_count={how}")
        scores = method.plan(0, ctx).trains.scores
        assert int(scores.train_masks()[0].sum()) == want, how
        assert int(scores.eval_masks()[0].sum()) == want, how
        if how == "hidden_networks":  # the very weights GetSubnet keeps (no ties in U(±b))
            s = scores.layers(scores.scores.detach())[0].abs()
            ref = _getsubnet(s, 1.0 - sparsity)
            assert int(ref.sum()) == want
            assert torch.equal(scores.eval_masks()[0], ref)


def test_edgepopup_kept_count_hidden_networks_on_small_layers():
    """n = 7 at s = 0.5: round(3.5) = 4 (banker's rounding, to even), GetSubnet 7 − int(3.5) = 4;
    n = 5 at s = 0.5: round(2.5) = 2, GetSubnet 5 − int(2.5) = 3; n = 9 at s = 0.95: round(0.45)
    = 0, lifted to 1, and GetSubnet 9 − int(8.55) = 1."""
    for n, s, rounded, authors in ((7, 0.5, 4, 4), (5, 0.5, 2, 3), (9, 0.95, 1, 1)):
        for how, want in (("round", rounded), ("hidden_networks", authors)):
            w = {"w": torch.ones(1, n)}
            gen = torch.Generator().manual_seed(0)
            scores = ScoreMasks(w, "topk", sparsity=s, generator=gen, kept_count=how)
            assert int(scores.eval_masks()[0].sum()) == want, (n, s, how)


def test_edgepopup_scale_fan_multiplies_the_fan_by_the_sparsity():
    """utils/builder.py:93-98: fan = fan_in · (1 − prune_rate), std = gain/sqrt(fan), gain
    sqrt(2) (relu); prune_rate is the fraction kept, so the factor is the sparsity. Conv 3→8
    3×3, fan_in 27: unscaled sqrt(2/27) = 0.2721655; s = 0.5: sqrt(2/13.5) = 0.3849002;
    s = 0.9: sqrt(2/24.3) = 0.2868877 (reading the factor as the fraction kept would give
    sqrt(2/2.7) = 0.8606630)."""
    model = nn.Sequential(nn.Conv2d(3, 8, 3, bias=False))
    ctx = _ctx(model)
    cases = [
        (("prune.sparsity=0.9",), 0.2721655270),
        (("prune.sparsity=0.5", "prune.scale_fan=true"), 0.3849001795),
        (("prune.sparsity=0.9", "prune.scale_fan=true"), 0.2868876553),
    ]
    for overrides, want in cases:
        method = _edgepopup("prune.weight_init=signed_kaiming_constant", *overrides)
        w = method.frozen_weights(ctx)["0.weight"]
        assert torch.allclose(w.abs(), torch.full_like(w, want), rtol=1e-6, atol=0), overrides
        assert 0.3 < float((w > 0).double().mean()) < 0.7, overrides


def test_edgepopup_scale_fan_scales_kaiming_normal_as_builder_py():
    """utils/builder.py:110-118: normal_(0, gain/sqrt(fan_in · (1 − prune_rate))); linear
    1000→500 at s = 0.5: std sqrt(2/500) = 0.0632456 (unscaled sqrt(2/1000) = 0.0447214)."""
    model = nn.Sequential(nn.Linear(1000, 500, bias=False))
    method = _edgepopup(
        "prune.weight_init=kaiming_normal", "prune.sparsity=0.5", "prune.scale_fan=true"
    )
    w = method.frozen_weights(_ctx(model))["0.weight"]
    assert float(w.std()) == pytest.approx(0.0632455532, rel=0.01)
    assert abs(float(w.mean())) < 0.001


@pytest.mark.parametrize(
    "overrides,valid",
    [
        (("prune.kept_count=ceil",), "choose one of: round, hidden_networks"),
        (
            ("prune.scale_fan=true", "prune.weight_init=signed_glorot_constant"),
            "kaiming_normal or signed_kaiming_constant",
        ),
        (("prune.scale_fan=true", "prune.sparsity=0.0"), r"prune.sparsity in \(0, 1\)"),
    ],
)
def test_bad_edgepopup_settings_are_refused_in_one_line(overrides, valid):
    with pytest.raises(UserError, match=valid) as err:
        compose(["prune=edgepopup", *overrides])
    assert "\n" not in str(err.value)


def test_edgepopup_new_settings_at_their_defaults_keep_the_run_name():
    def name(*overrides: str) -> str:
        cfg = compose(["prune=edgepopup", *overrides])
        return run_name(OmegaConf.to_container(cfg, resolve=True))

    default = name()
    assert name("prune.kept_count=round", "prune.scale_fan=false") == default
    assert name("prune.kept_count=hidden_networks") != default
    assert name("prune.scale_fan=true") != default
