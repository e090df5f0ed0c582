"""Zhou et al.'s mask criteria as their released code computes them (issue 12; review section 6,
uber-research/deconstructing-lottery-tickets @ dbad201, get_weight_init.py): the sign variants of
large_final and magnitude_increase, random tie-breaking (prune.ties=random) and their count per
layer and round (prune.threshold=zhou). Expected numbers are written out by hand, or come from the
reference rule re-written here in numpy, never from sparsify's own functions."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from sparsify.compose import compose
from sparsify.errors import UserError
from sparsify.identity import run_name
from sparsify.methods.base import METHODS, Context
from sparsify.methods.lth import LotteryTicket
from sparsify.methods.retraining import RetrainingConfig
from sparsify.sparsity import Mask, prune_mask
from sparsify.sparsity.allocation import zhou_pruned
from sparsify.sparsity.criteria import CRITERIA, criterion_scores
from tests.contexts import fixed_context

# one layer, by hand: sign(wi) = sign(wf) at 0, 3 and 5; at 4 w_i is 0, a sign of its own
WI = torch.tensor([1.0, -2.0, 0.5, -0.3, 0.0, 2.0])
WF = torch.tensor([3.0, 1.5, -0.2, -0.9, 0.4, 2.5])


def _context(weights: dict, init: dict | None = None, seed: int = 0) -> tuple[Context, dict]:
    """fixed_context with every layer prunable; the masks dict starts with level 0's, all
    alive."""
    masks = {0: Mask.ones_like(weights)}
    return fixed_context(weights, list(weights), masks, init, seed), masks


def _masks(cfg: RetrainingConfig, weights, levels: int, init=None, seed: int = 0) -> list[dict]:
    """The masks of levels 1..`levels` of `lth` with `cfg`."""
    method = LotteryTicket(cfg)
    ctx, masks = _context(weights, init, seed)
    for level in range(1, levels + 1):
        masks[level] = method.next_mask(level, ctx)
    return [masks[level] for level in range(1, levels + 1)]


def _alive(masks: list[dict]) -> list[dict[str, int]]:
    return [{n: int(m.sum()) for n, m in mask.items()} for mask in masks]


# --- the sign variants ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "criterion, expected",
    [
        # |wf| = 3, 1.5, 0.2, 0.9, 0.4, 2.5; the other sign class set to 0
        ("large_final_same_sign", [3.0, 0.0, 0.0, 0.9, 0.0, 2.5]),
        ("large_final_diff_sign", [0.0, 1.5, 0.2, 0.0, 0.4, 0.0]),
        # |wf| - |wi| = 2, -0.5, -0.3, 0.6, 0.4, 0.5
        ("magnitude_increase_same_sign", [2.0, 0.0, 0.0, 0.6, 0.0, 0.5]),
        ("magnitude_increase_diff_sign", [0.0, -0.5, -0.3, 0.0, 0.4, 0.0]),
    ],
)
def test_sign_variants_zero_the_other_sign_class_as_get_weight_init_does(criterion, expected):
    scores = criterion_scores(criterion, {"w": WI}, {"w": WF})["w"]
    assert torch.allclose(scores, torch.tensor(expected))


def test_every_sign_variant_of_zhous_code_is_a_criterion():
    # get_weight_init.py's --method choices ending in _same_sign / _diff_sign (the *_single ones
    # set a whole mask, not scores)
    for name in ("large_final", "magnitude_increase"):
        for variant in ("same_sign", "diff_sign"):
            assert f"{name}_{variant}" in CRITERIA


def test_a_zeroed_score_is_not_the_lowest_under_magnitude_increase_diff_sign():
    # scores 0, -0.5, -0.3, 0, 0.4, 0: keeping 4 of 6 prunes the two that shrank (1 and 2), not
    # the same-sign weights set to 0; Zhou's lowest-first sort prunes the same two
    scores = criterion_scores("magnitude_increase_diff_sign", {"w": WI}, {"w": WF})
    mask = prune_mask(scores, Mask.ones_like({"w": WI}), 2 / 6, "layerwise")
    assert mask["w"].tolist() == [True, False, False, True, True, True]


def test_sign_variants_match_the_reference_formula_on_random_weights():
    gen = torch.Generator().manual_seed(5)
    wi, wf = torch.randn(7, 9, generator=gen), torch.randn(7, 9, generator=gen)
    a, b = wi.numpy().astype(np.float64), wf.numpy().astype(np.float64)
    same = np.sign(a) == np.sign(b)
    base = {"large_final": np.abs(b), "magnitude_increase": np.abs(b) - np.abs(a)}
    for name, score in base.items():
        ours = criterion_scores(f"{name}_same_sign", {"w": wi}, {"w": wf})["w"].numpy()
        assert np.allclose(ours, np.where(same, score, 0.0), atol=1e-6)
        ours = criterion_scores(f"{name}_diff_sign", {"w": wi}, {"w": wf})["w"].numpy()
        assert np.allclose(ours, np.where(same, 0.0, score), atol=1e-6)


def test_lth_with_large_final_same_sign_keeps_large_weights_that_kept_their_sign():
    # level 1 keeps round(0.8 · 6) = 5 of the scores 3, 0, 0, 0.9, 0, 2.5: the three same-sign
    # weights and two of the three zeros (by position, the later ones: 2 and 4)
    cfg = RetrainingConfig(name="lth", criterion="large_final_same_sign")
    (mask,) = _masks(cfg, {"w": WF}, 1, init={"w": WI})
    assert mask["w"].tolist() == [True, False, True, True, True, True]


def test_magnitude_increase_sign_variants_are_signed_so_grouped_granularity_refuses_them():
    weights = {"fc1.weight": torch.ones(4, 4)}
    ctx, _ = _context(weights)
    for criterion in ("magnitude_increase_same_sign", "magnitude_increase_diff_sign"):
        cfg = RetrainingConfig(name="lth", granularity="channel", criterion=criterion)
        with pytest.raises(UserError, match=f"criterion={criterion} is signed"):
            LotteryTicket(cfg).check(ctx)
    cfg = RetrainingConfig(name="lth", granularity="channel", criterion="large_final_same_sign")
    LotteryTicket(cfg).check(ctx)  # magnitudes: allowed


# --- ties ---------------------------------------------------------------------------------------


def _tied() -> dict[str, torch.Tensor]:
    """5 large weights 10..14 and 40 tied at 1: keeping round(0.8 · 45) = 36 keeps the 5 and 31
    of the 40 tied ones."""
    return {"w": torch.cat([torch.arange(10.0, 15.0), torch.ones(40)])}


def test_position_ties_keep_the_latest_tied_weights():
    (mask,) = _masks(RetrainingConfig(name="lth"), _tied(), 1)
    assert mask["w"].tolist() == [True] * 5 + [False] * 9 + [True] * 31


def test_random_ties_keep_the_count_and_the_untied_weights_and_draw_the_rest():
    cfg = RetrainingConfig(name="lth", ties="random")
    (mask,) = _masks(cfg, _tied(), 1)
    keep = mask["w"].tolist()
    assert keep[:5] == [True] * 5 and sum(keep) == 36
    assert keep[5:] != [False] * 9 + [True] * 31  # not the positional choice


def test_random_ties_are_seeded_by_the_run_seed_and_the_level():
    cfg = RetrainingConfig(name="lth", ties="random")
    a = _masks(cfg, _tied(), 2, seed=0)
    b = _masks(cfg, _tied(), 2, seed=0)
    c = _masks(cfg, _tied(), 2, seed=1)
    assert all(torch.equal(x["w"], y["w"]) for x, y in zip(a, b))
    assert not torch.equal(a[0]["w"], c[0]["w"])
    assert _alive(a) == [{"w": 36}, {"w": 29}]  # round(0.64 · 45) = 29


def test_random_ties_choose_a_uniform_subset_as_a_random_lexsort_key_does():
    # 1 large weight, 4 tied; keeping 3 of 5 (layerwise 0.4) keeps 2 of the 4 tied ones, each
    # with probability 1/2 over seeds; positional ties would always keep the last two
    weights = {"w": torch.tensor([5.0, 1.0, 1.0, 1.0, 1.0])}
    cfg = RetrainingConfig(
        name="lth", iterative=False, sparsity=0.4, allocation="layerwise", ties="random"
    )
    kept = torch.zeros(5)
    for seed in range(400):
        (mask,) = _masks(cfg, weights, 1, seed=seed)
        assert int(mask["w"].sum()) == 3 and bool(mask["w"][0])
        kept += mask["w"].float()
    assert all(0.4 < f < 0.6 for f in (kept[1:] / 400).tolist())


def test_random_ties_work_across_layers_with_global_allocation():
    # 2 + 4 tied weights over two layers, global 0.5 keeps 3: the two large ones and 1 tied
    weights = {"a": torch.tensor([3.0, 1.0, 1.0]), "b": torch.tensor([1.0, 2.0, 1.0])}
    seen = set()
    for seed in range(20):
        cfg = RetrainingConfig(name="lth", iterative=False, sparsity=0.5, ties="random")
        (mask,) = _masks(cfg, weights, 1, seed=seed)
        assert bool(mask["a"][0]) and bool(mask["b"][1])
        assert int(mask["a"].sum() + mask["b"].sum()) == 3
        seen.add((tuple(mask["a"].tolist()), tuple(mask["b"].tolist())))
    assert len(seen) > 1  # the tied survivor moves between layers with the seed


# --- Zhou's count: int(rate · alive) per layer and round -------------------------------------


def test_zhou_pruned_uses_get_weight_init_float_arithmetic():
    # int(alive · p / 100), p = (1 − (1 − rate)) · 100: 19.999999999999996 for 0.2,
    # 9.999999999999998 for 0.1, 15.000000000000002 for 0.15
    assert zhou_pruned(10, 0.2) == 1  # 1.9999999999999996, not 2
    assert zhou_pruned(9, 0.2) == 1
    assert zhou_pruned(20, 0.1) == 1  # 1.9999999999999996
    assert zhou_pruned(235_200, 0.2) == 47_039  # LeNet fc1: one fewer than 0.2 · 235,200
    assert zhou_pruned(100, 0.15) == 15
    assert zhou_pruned(1, 0.2) == 0


def test_zhou_threshold_counts_each_layer_per_round_with_its_own_rate():
    # a: 10 weights at 0.2: 10 − 1 = 9, 9 − 1 = 8, 8 − 1 = 7 (exact: round(0.8^L · 10) = 8, 6, 5)
    # b: 20 weights at 0.1 (layer_rates): 19, 18, 17 (exact: 18, 16, 15)
    gen = torch.Generator().manual_seed(0)
    weights = {"a": torch.randn(2, 5, generator=gen), "b": torch.randn(4, 5, generator=gen)}
    cfg = RetrainingConfig(
        name="lth", allocation="layerwise", threshold="zhou", layer_rates={"b": 0.1}
    )
    assert _alive(_masks(cfg, weights, 3)) == [
        {"a": 9, "b": 19},
        {"a": 8, "b": 18},
        {"a": 7, "b": 17},
    ]
    exact = RetrainingConfig(name="lth", allocation="layerwise", layer_rates={"b": 0.1})
    assert _alive(_masks(exact, weights, 3)) == [
        {"a": 8, "b": 18},
        {"a": 6, "b": 16},
        {"a": 5, "b": 15},
    ]


def test_zhou_threshold_keeps_the_count_on_a_lenet_sized_layer():
    # 235,200 weights: 188,161 after one round, 150,529 after two (reference formula by hand:
    # 235,200 − 47,039; 188,161 − int(37,632.19...) = 188,161 − 37,632)
    weights = {"fc1.weight": torch.randn(300, 784, generator=torch.Generator().manual_seed(1))}
    cfg = RetrainingConfig(name="lth", allocation="layerwise", threshold="zhou")
    assert _alive(_masks(cfg, weights, 2)) == [{"fc1.weight": 188_161}, {"fc1.weight": 150_529}]


def _reference_rounds(init, final, criterion: str, rates: dict, rounds: int) -> list[dict]:
    """get_weight_init.py's rule, re-written: each round, per layer, already-pruned weights are
    moved above every score and the int(alive · p / 100) lowest scores pruned (no ties here)."""
    masks, alive = [], {n: np.ones(w.numel(), dtype=bool) for n, w in final.items()}
    for _ in range(rounds):
        for name, wf in final.items():
            a = init[name].numpy().astype(np.float64).ravel()
            b = wf.numpy().astype(np.float64).ravel()
            score = {"large_final": np.abs(b), "movement": np.abs(b - a)}[criterion].copy()
            score[~alive[name]] = 9999
            percentile = (1 - (1 - rates[name]) ** 1) * 100.0
            n_prune = int(alive[name].sum() * percentile / 100)
            alive[name] = alive[name].copy()
            alive[name][np.argsort(score, kind="stable")[:n_prune]] = False
        masks.append({n: m.copy() for n, m in alive.items()})
    return masks


@pytest.mark.parametrize("criterion", ["large_final", "movement"])
def test_zhou_threshold_reproduces_get_weight_init_masks_over_three_rounds(criterion):
    gen = torch.Generator().manual_seed(2)
    shapes = {"fc1.weight": (30, 40), "fc2.weight": (20, 30), "fc3.weight": (10, 20)}
    init = {n: torch.randn(s, generator=gen) for n, s in shapes.items()}
    final = {n: w + 0.5 * torch.randn(w.shape, generator=gen) for n, w in init.items()}
    cfg = RetrainingConfig(
        name="lth",
        criterion=criterion,
        allocation="layerwise",
        threshold="zhou",
        ties="random",
        layer_rates={"fc3.weight": 0.1},
    )
    ours = _masks(cfg, final, 3, init=init)
    rates = {"fc1.weight": 0.2, "fc2.weight": 0.2, "fc3.weight": 0.1}
    want = _reference_rounds(init, final, criterion, rates, 3)
    for got, expected in zip(ours, want):
        assert {n: m.flatten().tolist() for n, m in got.items()} == {
            n: m.tolist() for n, m in expected.items()
        }


def test_zhou_threshold_never_empties_a_layer_so_many_levels_are_allowed():
    # exact counting refuses 4 weights at 0.5 for 3 levels (round(0.125 · 4) = 0); Zhou's
    # int(0.5 · alive) leaves 4 → 2 → 1 → 1
    weights = {"w": torch.tensor([1.0, 2.0, 3.0, 4.0])}
    ctx, _ = _context(weights)
    exact = RetrainingConfig(name="lth", allocation="layerwise", rate=0.5, levels=3)
    with pytest.raises(UserError, match="would prune every weight"):
        LotteryTicket(exact).check(ctx)
    cfg = RetrainingConfig(name="lth", allocation="layerwise", rate=0.5, levels=3, threshold="zhou")
    LotteryTicket(cfg).check(ctx)
    assert _alive(_masks(cfg, weights, 3)) == [{"w": 2}, {"w": 1}, {"w": 1}]


@pytest.mark.parametrize("name", ["wr", "lrr", "finetune"])
def test_the_retraining_family_takes_zhous_count_and_random_ties(name):
    weights = {"a": torch.arange(1.0, 11.0)}
    cfg = RetrainingConfig(name=name, allocation="layerwise", threshold="zhou", ties="random")
    method = METHODS.get(name)(cfg)
    ctx, masks = _context(weights)
    masks[1] = method.next_mask(1, ctx)
    assert masks[1]["a"].tolist() == [False] + [True] * 9  # int(1.99...) = 1: the smallest


# --- bad input and run names ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["prune.criterion=bogus"], "prune.criterion='bogus' is not valid; choose one of: "),
        (["prune.criterion=large_init_same_sign"], "large_final_same_sign"),
        (["prune.ties=bogus"], "prune.ties='bogus' is not valid; choose one of: position, random"),
        (["prune.threshold=bogus"], "choose one of: exact, openlth, zhou"),
        (["prune.threshold=zhou"], "prune.threshold=zhou .* needs prune.iterative=true, "),
        (
            ["prune.threshold=zhou", "prune.allocation=layerwise", "prune.iterative=false"],
            "prune.allocation=layerwise",
        ),
        (["prune.ties=random", "prune.granularity=channel"], "prune.granularity=unstructured"),
        (["prune.ties=random", "prune.threshold=openlth"], "prune.threshold=exact or zhou"),
    ],
)
def test_bad_criteria_ties_or_threshold_are_refused_in_one_line(overrides, message):
    with pytest.raises(UserError, match=message.replace("(", r"\(")) as err:
        compose(["prune=lth", *overrides])
    assert "\n" not in str(err.value)


def test_the_new_options_compose_for_the_family():
    for name in ("lth", "wr", "lrr", "finetune", "random"):
        cfg = compose(
            [
                f"prune={name}",
                "prune.criterion=magnitude_increase_diff_sign",
                "prune.allocation=layerwise",
                "prune.threshold=zhou",
                "prune.ties=random",
            ]
        )
        assert (cfg.prune.threshold, cfg.prune.ties) == ("zhou", "random")


@pytest.mark.parametrize("name", ["lth", "wr", "lrr", "finetune", "random"])
def test_criteria_settings_at_their_defaults_keep_the_run_name(name):
    def run_id(*overrides: str) -> str:
        cfg = compose([f"prune={name}", *overrides])
        return run_name(OmegaConf.to_container(cfg, resolve=True))

    default = run_id()
    assert run_id("prune.ties=position", "prune.threshold=exact") == default
    assert run_id("prune.ties=random") != default
    assert run_id("prune.allocation=layerwise", "prune.threshold=zhou") != run_id(
        "prune.allocation=layerwise"
    )
    assert run_id("prune.criterion=large_final_same_sign") != default
