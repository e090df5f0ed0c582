"""Magnitude pruning and lottery tickets against the authors' code: OpenLTH's counting with
excluded layers and its threshold (pruning/sparse_global.py), its initialisation of LeNet biases
and BatchNorm scales (models/initializers.py, bn_initializers.py), Zhou et al.'s small-weight
criteria and per-layer rates (get_weight_init.py), and the channel tie rule. Expected numbers are
written out by hand, or come from a re-implementation of the reference logic here in the test."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from torch import nn

from sparsify.compose import compose
from sparsify.config import ModelConfig
from sparsify.errors import UserError
from sparsify.methods.base import Context
from sparsify.methods.lth import LotteryTicket
from sparsify.methods.retraining import RetrainingConfig
from sparsify.models import build_model
from sparsify.run import run
from sparsify.sparsity import Mask, prune_mask
from sparsify.sparsity.criteria import criterion_scores
from tests.contexts import fixed_context


def _context(weights: dict[str, torch.Tensor], prunable: list[str], masks: dict) -> Context:
    """A Context whose every level ended with `weights` and whose masks are `masks[level]`."""
    return fixed_context(weights, prunable, masks)


def _levels(cfg: RetrainingConfig, weights, prunable, levels: int) -> list[dict[str, int]]:
    """Live weights per prunable layer after levels 1..`levels` of `lth` with `cfg`."""
    method = LotteryTicket(cfg)
    masks = {0: Mask.ones_like({n: weights[n] for n in prunable})}
    ctx = _context(weights, prunable, masks)
    out = []
    for level in range(1, levels + 1):
        masks[level] = method.next_mask(level, ctx)
        out.append({n: int(m.sum()) for n, m in masks[level].items()})
    return out


def _tiny() -> dict[str, torch.Tensor]:
    """a: 20 weights 2, 4, ..., 40; b: 12 weights 1, 3, ..., 23; c (excluded): 6 weights. In
    magnitude order the small ones alternate b, a, b, a, ... up to 24."""
    return {
        "a.weight": torch.arange(2.0, 41.0, 2.0).view(4, 5),
        "b.weight": torch.arange(1.0, 24.0, 2.0).view(3, 4),
        "c.weight": torch.ones(2, 3),
        "c.bias": torch.ones(2),
    }


# counts by hand, rate 0.2, N = 32 prunable weights, E = 6 excluded:
# openlth + count_excluded: level 1 prunes ceil(0.2·38) + 1 = 9 (1..9: five of b, four of a),
#                           level 2 ceil(0.2·29) + 1 = 7 (10..16: four of a, three of b);
# exact + count_excluded:   keeps round(0.8·38) − 6 = 24, then round(0.64·38) − 6 = 18;
# exact (default):          keeps round(0.8·32) = 26, then round(0.64·32) = 20;
# openlth alone:            prunes ceil(0.2·32) + 1 = 8, then ceil(0.2·24) + 1 = 6.
@pytest.mark.parametrize(
    "count_excluded, threshold, expected",
    [
        (True, "openlth", [{"a.weight": 16, "b.weight": 7}, {"a.weight": 12, "b.weight": 4}]),
        (True, "exact", [{"a.weight": 16, "b.weight": 8}, {"a.weight": 13, "b.weight": 5}]),
        (False, "exact", [{"a.weight": 17, "b.weight": 9}, {"a.weight": 14, "b.weight": 6}]),
        (False, "openlth", [{"a.weight": 16, "b.weight": 8}, {"a.weight": 13, "b.weight": 5}]),
    ],
)
def test_lth_counts_per_layer_with_an_excluded_layer(count_excluded, threshold, expected):
    cfg = RetrainingConfig(
        name="lth", exclude=["c.weight"], count_excluded=count_excluded, threshold=threshold
    )
    assert _levels(cfg, _tiny(), ["a.weight", "b.weight"], 2) == expected


def _open_lth_prune(weights: dict, mask: dict, fraction: float, ignored: set) -> dict:
    """OpenLTH's sparse_global Strategy.prune, re-implemented in numpy: the remaining count runs
    over every layer of the mask, ignored ones included; the cut over the prunable ones."""
    remaining = np.sum([np.sum(v) for v in mask.values()])
    n = np.ceil(fraction * remaining).astype(int)
    prunable = {k: v for k, v in weights.items() if k not in ignored}
    vector = np.concatenate([v[mask[k] == 1] for k, v in prunable.items()])
    threshold = np.sort(np.abs(vector))[n]
    new = {
        k: np.where(np.abs(v) > threshold, mask[k], np.zeros_like(v)) for k, v in prunable.items()
    }
    return {**mask, **new}


def test_the_openlth_threshold_matches_sparse_global_with_ties_and_an_ignored_layer():
    gen = torch.Generator().manual_seed(0)
    # bfloat16-valued weights: many ties at the threshold, which OpenLTH prunes all of
    weights = {
        "fc1.weight": torch.randn(30, 40, generator=gen).bfloat16().float(),
        "fc2.weight": torch.randn(20, 30, generator=gen).bfloat16().float(),
        "fc3.weight": torch.randn(10, 20, generator=gen).bfloat16().float(),
    }
    prunable = ["fc1.weight", "fc2.weight"]
    cfg = RetrainingConfig(
        name="lth", exclude=["fc3.weight"], count_excluded=True, threshold="openlth"
    )
    ours = _levels(cfg, weights, prunable, 4)
    ref = {k: np.ones(tuple(v.shape)) for k, v in weights.items()}
    for level in range(4):
        ref = _open_lth_prune({k: v.numpy() for k, v in weights.items()}, ref, 0.2, {"fc3.weight"})
        assert ours[level] == {k: int(ref[k].sum()) for k in prunable}
    assert ref["fc3.weight"].all()


def _lenet_mnist() -> tuple[dict[str, torch.Tensor], list[str]]:
    torch.manual_seed(0)
    model = build_model(ModelConfig(name="lenet300_100"), 10, 1, 28)
    weights = {k: v.detach() for k, v in model.state_dict().items()}
    return weights, ["fc1.weight", "fc2.weight"]


def test_lth_lenet_mnist_keeps_openlths_weights_at_levels_1_and_15():
    # the review's OpenLTH numbers: fc1+fc2 keep 211,959 weights after level 1 and 8,359 after
    # level 15 (fc3's 1,000 counted in the remaining weights); sparsify's exact count over the
    # prunable weights alone keeps 0.8·265,200 = 212,160 and round(0.8^15·265,200) = 9,331
    cfg = OmegaConf.to_object(compose(["experiment=lth_lenet_mnist"]).prune)
    weights, prunable = _lenet_mnist()
    alive = [sum(c.values()) for c in _levels(cfg, weights, prunable, 15)]
    assert (alive[0], alive[14]) == (211_959, 8_359)
    default = RetrainingConfig(name="lth", exclude=["fc3.weight"], levels=15)
    alive = [sum(c.values()) for c in _levels(default, weights, prunable, 15)]
    assert (alive[0], alive[14]) == (212_160, 9_331)


def test_lth_lenet_mnist_trains_on_the_whole_training_set_with_openlths_biases():
    cfg = compose(["experiment=lth_lenet_mnist"])
    assert cfg.data.val_fraction == 0.0
    assert dict(cfg.model.kwargs) == {"bias_init": "pytorch"}
    cfg = compose(["experiment=lth_resnet20_cifar10"])
    assert cfg.data.val_fraction == 0.0
    assert dict(cfg.model.kwargs) == {"bias_init": "pytorch", "batchnorm_init": "uniform"}
    assert cfg.prune.threshold == "openlth" and not cfg.prune.exclude


def test_a_digits_run_without_validation_split_counts_as_openlth(tmp_path):
    # digits: fc1 64·300 + fc2 300·100 = 49,200 prunable, fc3 1,000 excluded;
    # OpenLTH prunes ceil(0.2·50,200) + 1 = 10,041, leaving 39,159
    overrides = [
        "train.epochs=1",
        "prune.levels=1",
        "data.val_fraction=0",
        "eval.evaluators=[accuracy,calibration]",
        "eval.if_possible=[]",
        "eval.summaries=[]",
        "prune.exclude=[fc3.weight]",
        "prune.count_excluded=true",
        "prune.threshold=openlth",
    ]
    results = run(compose(overrides), tmp_path / "run")
    first, second = results["levels"]
    assert (first["prunable_params"], first["nonzero_params"]) == (49_200, 49_200)
    assert (second["prunable_params"], second["nonzero_params"]) == (49_200, 39_159)
    assert second["sparsity"] == pytest.approx(1 - 39_159 / 49_200)
    assert "accuracy" in second["metrics"]
    saved = json.loads((tmp_path / "run" / "results.json").read_text())
    assert saved["levels"][1]["nonzero_params"] == 39_159


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["prune.count_excluded=true", "prune.allocation=layerwise"], "allocation=global"),
        (["prune.threshold=openlth", "prune.iterative=false"], "iterative=true"),
        (["prune.threshold=openlth", "prune.granularity=channel"], "unstructured"),
        (["prune.threshold=ceil"], "exact, openlth"),
        (["+prune.layer_rates={fc3.weight:0.1}"], "allocation=layerwise"),
        (["prune.allocation=layerwise", "+prune.layer_rates={fc3.weight:1.5}"], "(0.0, 1.0)"),
    ],
)
def test_bad_openlth_and_layer_rate_settings_are_refused_before_any_work(overrides, message):
    with pytest.raises(UserError, match=message.replace("(", r"\(").replace(")", r"\)")):
        compose(overrides)


def test_channel_ties_at_half_a_group_are_kept_on_every_allocation():
    # 10 channels of 4 weights, channel scores 1..10: at 0.05 the target is 2 weights, half a
    # channel, so no channel is pruned; at 0.15 it is 6, tied between 1 and 2 channels, so 1
    w = {"w": torch.arange(1.0, 11.0).view(10, 1).expand(10, 4).contiguous()}
    for allocation in ("global", "layerwise", "erk"):
        pruned = [
            int((~prune_mask(w, Mask.ones_like(w), t, allocation, "channel")["w"][:, 0]).sum())
            for t in (0.05, 0.15)
        ]
        assert pruned == [0, 1], allocation


def test_small_init_keeps_the_smallest_initial_weights():
    init = {"w": torch.tensor([[0.5, -0.1], [0.3, -0.7]])}
    final = {"w": torch.tensor([[9.0, 9.0], [9.0, 9.0]])}
    scores = criterion_scores("small_init", init, final)
    mask = prune_mask(scores, Mask.ones_like(init), 0.5, "layerwise")
    assert mask["w"].tolist() == [[False, True], [True, False]]


def test_small_init_small_final_keeps_weights_small_at_both_ends():
    # |w_i| = 1, 2, 3, 4 and |w_f| = 4, 1, 2, 3: ranks of −|w_i| are 3/4, 2/4, 1/4, 0, of −|w_f|
    # 0, 3/4, 2/4, 1/4; their minima 0, 2/4, 1/4, 0 keep weights 1 and 2 at 50%
    init = {"w": torch.tensor([1.0, -2.0, 3.0, -4.0]).view(2, 2)}
    final = {"w": torch.tensor([-4.0, 1.0, 2.0, 3.0]).view(2, 2)}
    scores = criterion_scores("small_init_small_final", init, final)
    assert scores["w"].flatten().tolist() == [0.0, 0.5, 0.25, 0.0]
    mask = prune_mask(scores, Mask.ones_like(init), 0.5, "layerwise")
    assert mask["w"].flatten().tolist() == [False, True, True, False]
    # a weight already pruned is ranked out: among the three live ones the ranks of −|w_i| are
    # 2/3, 1/3, 0 and of −|w_f| 0, 2/3, 1/3, so the minima are 0, 1/3, 0
    alive = {"w": torch.tensor([[True, True], [True, False]])}
    ranked = criterion_scores("small_init_small_final", init, final, mask=alive)["w"].flatten()
    assert ranked[:3].tolist() == pytest.approx([0.0, 1 / 3, 0.0])
    assert ranked[3] == -math.inf


def test_layer_rates_prune_matching_layers_at_their_own_rate():
    # Zhou et al.: hidden layers 20% per round, the output layer 10%: fc1 (100 weights) keeps
    # round(0.8·100) = 80, then 64; fc3 (20) keeps round(0.9·20) = 18, then round(0.81·20) = 16
    gen = torch.Generator().manual_seed(1)
    weights = {
        "fc1.weight": torch.randn(10, 10, generator=gen),
        "fc3.weight": torch.randn(2, 10, generator=gen),
    }
    cfg = RetrainingConfig(name="lth", allocation="layerwise", layer_rates={"fc3.weight": 0.1})
    assert _levels(cfg, weights, list(weights), 2) == [
        {"fc1.weight": 80, "fc3.weight": 18},
        {"fc1.weight": 64, "fc3.weight": 16},
    ]


def test_a_layer_rate_pattern_that_matches_no_weight_is_refused_at_start():
    weights = {"fc1.weight": torch.ones(4, 4)}
    cfg = RetrainingConfig(name="lth", allocation="layerwise", layer_rates={"fc9.weight": 0.1})
    ctx = _context(weights, ["fc1.weight"], {})
    with pytest.raises(UserError, match="fc9.weight.*matches no prunable weight"):
        LotteryTicket(cfg).check(ctx)


def _open_lth_lenet(seed: int) -> dict[str, torch.Tensor]:
    """OpenLTH's mnist_lenet_300_100 built as its code builds it: the layers constructed in
    order (weights and biases drawn by PyTorch), then kaiming_normal_ on every linear weight in
    module order, biases left as drawn."""
    torch.manual_seed(seed)
    layers = [nn.Linear(784, 300), nn.Linear(300, 100), nn.Linear(100, 10)]
    for layer in layers:
        nn.init.kaiming_normal_(layer.weight)
    return {
        f"fc{i + 1}.{p}": getattr(layer, p)
        for i, layer in enumerate(layers)
        for p in ("weight", "bias")
    }


def test_lenet_with_pytorch_biases_is_openlths_initialisation_exactly():
    reference = _open_lth_lenet(3)
    torch.manual_seed(3)
    model = build_model(
        ModelConfig(name="lenet300_100", kwargs={"bias_init": "pytorch"}), 10, 1, 28
    )
    state = model.state_dict()
    for name, value in reference.items():
        assert torch.equal(state[name], value.detach()), name
    bound = 1 / math.sqrt(784)  # PyTorch's default bias: U(-1/sqrt(fan_in), 1/sqrt(fan_in))
    assert 0 < state["fc1.bias"].abs().max() <= bound
    torch.manual_seed(3)
    zeros = build_model(ModelConfig(name="lenet300_100"), 10, 1, 28).state_dict()
    assert not zeros["fc1.bias"].any() and torch.equal(zeros["fc1.weight"], state["fc1.weight"])


@pytest.mark.parametrize("name", ["resnet20", "vgg11"])
def test_uniform_batchnorm_init_draws_scales_in_zero_one(name):
    kwargs = {"batchnorm_init": "uniform", "bias_init": "pytorch"}
    model = build_model(ModelConfig(name=name, kwargs=kwargs), 10, 3, 32)
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    scales = torch.cat([m.weight.detach() for m in bns])
    assert 0.0 <= float(scales.min()) and float(scales.max()) < 1.0 and scales.std() > 0.1
    assert not torch.cat([m.bias.detach() for m in bns]).any()
    assert model.fc.bias.detach().abs().max() > 0
    plain = build_model(ModelConfig(name=name), 10, 3, 32)
    assert all(
        bool((m.weight == 1).all()) for m in plain.modules() if isinstance(m, nn.BatchNorm2d)
    )
    assert not plain.fc.bias.detach().any()


def test_an_unknown_init_option_is_a_user_error_naming_the_valid_ones():
    with pytest.raises(
        UserError, match="bias_init='uniform' is not valid; choose one of: zeros, pytorch"
    ):
        build_model(ModelConfig(name="lenet300_100", kwargs={"bias_init": "uniform"}), 10, 1, 8)
    with pytest.raises(UserError, match="batchnorm_init='rand'.*ones, uniform"):
        build_model(ModelConfig(name="resnet20", kwargs={"batchnorm_init": "rand"}), 10, 3, 8)


def test_small_init_is_signed_so_grouped_granularity_refuses_it():
    weights = {"fc1.weight": torch.ones(4, 4)}
    cfg = RetrainingConfig(name="lth", granularity="channel", criterion="small_init")
    with pytest.raises(UserError, match="criterion=small_init is signed"):
        LotteryTicket(cfg).check(_context(weights, ["fc1.weight"], {}))


@pytest.mark.parametrize("name", ["wr", "lrr", "finetune", "random"])
def test_the_whole_retraining_family_counts_as_openlth_when_asked(name):
    # the same hand counts as lth's above (openlth + count_excluded: 16 + 7, then 12 + 4);
    # random keeps magnitude's number per layer of its own (random) survivors: level 1 as lth,
    # level 2 ceil(0.2 · (23 + 6)) + 1 = 7 pruned again, split by where its survivors lie
    from sparsify.methods.base import METHODS

    cfg = RetrainingConfig(
        name=name, exclude=["c.weight"], count_excluded=True, threshold="openlth"
    )
    method = METHODS.get(name)(cfg)
    weights, prunable = _tiny(), ["a.weight", "b.weight"]
    masks = {0: Mask.ones_like({n: weights[n] for n in prunable})}
    ctx = _context(weights, prunable, masks)
    counts = []
    for level in (1, 2):
        masks[level] = method.next_mask(level, ctx)
        counts.append({n: int(m.sum()) for n, m in masks[level].items()})
    assert counts[0] == {"a.weight": 16, "b.weight": 7}
    if name == "random":
        assert sum(counts[1].values()) == 16
    else:
        assert counts[1] == {"a.weight": 12, "b.weight": 4}


def test_layer_rates_work_for_weight_rewinding_too():
    from sparsify.methods.base import METHODS

    weights, prunable = _tiny(), ["a.weight", "b.weight"]
    cfg = RetrainingConfig(name="wr", allocation="layerwise", layer_rates={"b.*": 0.5})
    method = METHODS.get("wr")(cfg)
    masks = {0: Mask.ones_like({n: weights[n] for n in prunable})}
    masks[1] = method.next_mask(1, _context(weights, prunable, masks))
    # a: 20 weights at 0.2 keeps 16; b: 12 weights at 0.5 keeps 6 (its largest: 13..23)
    assert {n: int(m.sum()) for n, m in masks[1].items()} == {"a.weight": 16, "b.weight": 6}
    assert masks[1]["b.weight"].flatten().tolist() == [False] * 6 + [True] * 6
