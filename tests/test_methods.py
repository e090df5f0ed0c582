"""The defining behaviour of each retraining method, criterion and restart, pinned on the level
plans of a tiny model (no training needed), and one real run per policy for the learning rate."""

import json

import pytest
import torch
from omegaconf import OmegaConf

from sparsify.compose import compose
from sparsify.config import ModelConfig, TrainConfig
from sparsify.methods import METHODS, Context
from sparsify.models import build_model
from sparsify.run import run
from sparsify.sparsity import Mask
from sparsify.sparsity.criteria import CRITERIA, GRADIENT_CRITERIA, criterion_scores
from sparsify.training.optim import LRSchedule

IPE, EPOCHS = 10, 4
TOTAL = IPE * EPOCHS


def _state(seed: int) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    return build_model(ModelConfig(name="lenet300_100"), 10, 1, 8).state_dict()


@pytest.fixture(scope="module")
def weights():
    """init, the step-k snapshot and level 0's final weights of LeNet-300-100 on 8x8 inputs."""
    init = _state(0)
    g = torch.Generator().manual_seed(1)
    rewind = {k: v + 0.01 * torch.randn(v.shape, generator=g) for k, v in init.items()}
    final = {k: v + 0.1 * torch.randn(v.shape, generator=g) for k, v in init.items()}
    return init, rewind, final


def _ctx(weights, schedule="multistep") -> Context:
    init, rewind, final = weights
    prunable = [n for n in init if n.endswith("weight")]
    lr = LRSchedule(TrainConfig(lr=0.1, schedule=schedule, milestones=["2ep", "3ep"]), IPE, TOTAL)
    return Context(
        init=init,
        prunable=prunable,
        iterations_per_epoch=IPE,
        total=TOTAL,
        schedule=lr,
        final=lambda lv: final,
        mask=lambda lv: Mask.ones_like({n: init[n] for n in prunable}),
        snapshot=lambda lv, name: rewind,
        seed=0,
        fresh_init=lambda key: _state(100 + key),
    )


def _plan(method: str, weights, *overrides: str, level: int = 1):
    cfg = compose([f"prune={method}", *overrides])
    return METHODS.get(method)(cfg.prune).plan(level, _ctx(weights))


def test_wr_rewinds_survivors_and_schedule_to_step_k(weights):
    init, rewind, final = weights
    plan = _plan("wr", weights, "prune.rewind=1ep")
    assert (plan.segment.start, plan.segment.end, plan.segment.fixed_lr) == (IPE, TOTAL, None)
    assert all(torch.equal(plan.weights[k], rewind[k]) for k in rewind)


def test_lth_rewinds_to_initialisation_by_default(weights):
    init, _, _ = weights
    plan = _plan("lth", weights)
    assert plan.segment.start == 0
    assert all(torch.equal(plan.weights[k], init[k]) for k in init)


def test_lrr_keeps_final_weights_and_replays_the_schedule_from_k(weights):
    _, _, final = weights
    plan = _plan("lrr", weights, "prune.rewind=1ep")
    assert (plan.segment.start, plan.segment.end, plan.segment.fixed_lr) == (IPE, TOTAL, None)
    assert all(torch.equal(plan.weights[k], final[k]) for k in final)


def test_finetune_keeps_final_weights_at_the_last_lr_for_the_same_budget(weights):
    _, _, final = weights
    plan = _plan("finetune", weights, "prune.rewind=1ep")
    assert (plan.segment.start, plan.segment.end) == (0, TOTAL - IPE)
    assert plan.segment.fixed_lr == pytest.approx(0.1 * 0.1**2)  # multistep at 2ep and 3ep
    assert all(torch.equal(plan.weights[k], final[k]) for k in final)


@pytest.mark.parametrize("method", ["lth", "wr", "lrr", "finetune", "random"])
def test_iterative_levels_follow_the_rate_and_one_shot_hits_the_sparsity(weights, method):
    m = METHODS.get(method)(compose([f"prune={method}", "prune.rate=0.5", "prune.levels=3"]).prune)
    assert m.num_levels() == 4
    assert [m.target_sparsity(lv) for lv in (1, 2, 3)] == pytest.approx([0.5, 0.75, 0.875])
    assert _plan(method, weights, "prune.rate=0.5").mask.sparsity == pytest.approx(0.5, abs=1e-4)
    one = compose([f"prune={method}", "prune.iterative=false", "prune.sparsity=0.7"])
    assert METHODS.get(method)(one.prune).num_levels() == 2
    plan = _plan(method, weights, "prune.iterative=false", "prune.sparsity=0.7")
    assert plan.mask.sparsity == pytest.approx(0.7, abs=1e-4)


def test_random_pruning_matches_magnitude_per_layer_counts_with_other_weights(weights):
    magnitude = _plan("lth", weights, "prune.rate=0.8").mask
    random = _plan("random", weights, "prune.rate=0.8").mask
    for name in magnitude:
        assert int(random[name].sum()) == int(magnitude[name].sum())
        overlap = int((random[name] & magnitude[name]).sum()) / max(1, int(magnitude[name].sum()))
        assert overlap < 0.5  # 20% density: random keeps about 20% of magnitude's choice


def test_random_pruning_refuses_structured_granularity(weights):
    from sparsify.errors import UserError

    cfg = compose(["prune=random", "prune.granularity=block"])
    with pytest.raises(UserError, match="granularity=unstructured"):
        METHODS.get("random")(cfg.prune).check(_ctx(weights))


def test_criteria_keep_what_their_names_say():
    wi = {"w": torch.tensor([1.0, -4.0, 0.1, 3.0, -0.5, 2.0])}
    wf = {"w": torch.tensor([0.2, -5.0, 3.0, 0.1, -0.6, 2.5])}
    top2 = {}
    for c in CRITERIA:
        if c == "random" or c in GRADIENT_CRITERIA:  # seeded noise; the gradient (own test)
            continue
        s = criterion_scores(c, wi, wf)["w"]
        top2[c] = sorted(s.topk(2).indices.tolist())
    assert top2["large_final"] == [1, 2]  # |wf| = 5, 3
    assert top2["small_final"] == [0, 3]  # the smallest: |wf| = 0.2 and 0.1
    assert top2["large_init"] == [1, 3]
    assert top2["large_init_large_final"] == [1, 5]  # large at both ends: -4/-5 and 2/2.5
    assert top2["magnitude_increase"] == [1, 2]  # +1.0 and +2.9
    assert top2["movement"] == [2, 3]  # 2.9 and 2.9


def test_random_criterion_is_seeded():
    w = {"w": torch.randn(100)}
    a = criterion_scores("random", w, w, torch.Generator().manual_seed(3))["w"]
    b = criterion_scores("random", w, w, torch.Generator().manual_seed(3))["w"]
    assert torch.equal(a, b)


def test_restart_reinit_draws_new_values_from_the_same_initialiser(weights):
    init, _, _ = weights
    plan = _plan("lth", weights, "prune.restart=reinit")
    w, w0 = plan.weights["fc1.weight"], init["fc1.weight"]
    assert not torch.equal(w, w0)
    assert float(w.std()) == pytest.approx(float(w0.std()), rel=0.05)
    assert torch.equal(plan.weights["fc1.bias"], init["fc1.bias"])  # only prunable weights change


def test_restart_reshuffle_permutes_survivor_values_within_each_layer(weights):
    init, _, _ = weights
    plan = _plan("lth", weights, "prune.restart=reshuffle", "prune.rate=0.5")
    for name, m in plan.mask.items():
        new, old = plan.weights[name][m], init[name][m]
        assert torch.equal(new.sort().values, old.sort().values)
        assert not torch.equal(new, old)


def test_restart_signed_constant_is_plus_minus_the_layer_std_with_the_initial_sign(weights):
    init, _, _ = weights
    plan = _plan("lth", weights, "prune.restart=signed_constant")
    w, w0 = plan.weights["fc2.weight"], init["fc2.weight"]
    assert torch.allclose(w.abs(), torch.full_like(w, float(w0.std())))
    assert torch.equal(torch.sign(w), torch.sign(w0))


def test_restart_other_than_rewind_needs_a_rewinding_method(weights):
    from sparsify.errors import UserError

    cfg = compose(["prune=lrr", "prune.restart=reinit"])
    with pytest.raises(UserError, match="rewinds weights"):
        METHODS.get("lrr")(cfg.prune).check(_ctx(weights))


@pytest.mark.parametrize("method,first_lr", [("lrr", 0.05), ("finetune", 0.05 * 0.1**2)])
def test_retraining_runs_at_the_policy_learning_rate(tmp_path, method, first_lr):
    """A real run: the first logged step of level 1 uses the step-k rate (lrr) or the final rate
    (finetune) of the digits schedule (lr 0.05, x0.1 at epochs 5 and 8)."""
    cfg = compose(
        [
            f"prune={method}",
            "prune.levels=1",
            "prune.rewind=1ep",
            "logger.log_every=1",
            "eval=accuracy",
        ]
    )
    run(cfg, tmp_path / method)
    events = [
        json.loads(line) for line in (tmp_path / method / "log.jsonl").read_text().splitlines()
    ]
    level1 = [e for e in events if e["event"] == "train" and e["level"] == 1]
    assert level1[0]["lr"] == pytest.approx(first_lr)
    assert len(level1) == (cfg.train.epochs - 1) * 21  # T - k iterations (21 per epoch)


def test_nm_granularity_is_one_shot_only(weights):
    from sparsify.errors import UserError

    cfg = compose(["prune=lth", "prune.granularity=nm"])
    with pytest.raises(UserError, match="iterative=false"):
        METHODS.get("lth")(cfg.prune).check(_ctx(weights))
    plan = _plan("lth", weights, "prune.granularity=nm", "prune.iterative=false")
    assert plan.mask.sparsity == pytest.approx(0.5)  # 2:4


@pytest.mark.parametrize("granularity", ["block", "channel"])
def test_structured_granularity_reaches_the_methods(weights, granularity):
    plan = _plan(
        "lth", weights, f"prune.granularity={granularity}", "prune.block=4", "prune.rate=0.5"
    )
    m = plan.mask["fc1.weight"].reshape(300, -1)
    if granularity == "channel":
        assert all(bool(r.all()) or not bool(r.any()) for r in m)
    else:
        tiles = m[:296, :64].reshape(74, 4, 16, 4).permute(0, 2, 1, 3).reshape(-1, 16)
        assert all(bool(t.all()) or not bool(t.any()) for t in tiles)


def _events(run_dir):
    return [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]


def test_gmp_hits_the_cubic_schedule_at_every_update(tmp_path):
    cfg = compose(
        ["prune=gmp", "prune.sparsity=0.8", "prune.initial_sparsity=0.1", "eval=accuracy"]
    )
    results = run(cfg, tmp_path / "gmp")
    updates = [e for e in _events(tmp_path / "gmp") if e["event"] == "mask"]
    t0, stop = 21, 7 * 21  # start 1ep, stop 7ep at 21 iterations per epoch
    assert [e["step"] for e in updates] == [*range(t0, stop, 10), stop]
    for e in updates:
        want = 0.8 + (0.1 - 0.8) * (1 - (e["step"] - t0) / (stop - t0)) ** 3
        assert e["sparsity"] == pytest.approx(want, abs=1e-4)
    assert results["levels"][0]["sparsity"] == pytest.approx(0.8, abs=1e-4)


def test_acdc_final_compressed_phase_continues_the_dense_phase_optimizer(tmp_path, monkeypatch):
    overrides = ["prune=acdc", "train.epochs=4", "prune.dense_warmup=1ep", "eval=accuracy"]
    overrides += ["prune.final_decompressed=1ep", "prune.final_compressed=1ep"]
    run(compose(overrides), tmp_path / "kept")
    state = torch.load(
        tmp_path / "kept/levels/level_00/optimizer.pt", map_location="cpu", weights_only=True
    )
    buffers = [s["momentum_buffer"] for s in state["state"].values()]
    assert buffers and all(b.abs().sum() > 0 for b in buffers)

    # the same run with a fresh optimizer at the final phase ends elsewhere: the state is used
    acdc = METHODS.get("acdc")
    plan = acdc.plan

    def fresh(self, level, ctx):
        out = plan(self, level, ctx)
        out.resume_optimizer_from_previous = False
        return out

    monkeypatch.setattr(acdc, "plan", fresh)
    run(compose(overrides), tmp_path / "fresh")

    def final(name, level):
        return torch.load(tmp_path / name / f"levels/level_{level:02d}/final.pt", weights_only=True)

    assert all(torch.equal(final("kept", 0)[k], v) for k, v in final("fresh", 0).items())
    assert any(not torch.equal(final("kept", 1)[k], v) for k, v in final("fresh", 1).items())


def test_acdc_switches_masks_at_the_phase_boundaries_and_ends_with_both_models(tmp_path):
    results = run(compose(["prune=acdc", "eval=accuracy"]), tmp_path / "acdc")
    changes = [
        (e["step"], round(e["sparsity"], 3), e["reset_momentum"])
        for e in _events(tmp_path / "acdc")
        if e["event"] == "mask"
    ]
    ipe = 21  # D 0-2, C 2-3, D 3-4, C 4-5, D 5-6, C 6-7, D 7-8 | level 1: C 8-10
    assert changes == [
        (2 * ipe, 0.9, False),
        (3 * ipe, 0.0, True),
        (4 * ipe, 0.9, False),
        (5 * ipe, 0.0, True),
        (6 * ipe, 0.9, False),
        (7 * ipe, 0.0, True),
    ]
    dense, sparse = results["levels"]
    assert dense["sparsity"] < 0.5 and sparse["sparsity"] == pytest.approx(0.9, abs=1e-4)
    assert (dense["iterations"], sparse["iterations"]) == (8 * ipe, 2 * ipe)
    for level in (0, 1):
        assert (tmp_path / "acdc" / f"levels/level_{level:02d}/final.pt").is_file()
        assert "accuracy" in results["levels"][level]["metrics"]


def test_a_mask_change_with_reset_clears_the_momentum_in_the_training_loop():
    """train_segment with a change that resets momentum before the last step: afterwards every
    SGD momentum buffer holds exactly that step's gradient (no history), which it would not
    without the reset."""
    from sparsify.data import build_data
    from sparsify.training.loop import LoopEvents, MaskChange, MaskState, Segment, train_segment

    def train(reset: bool) -> tuple[torch.optim.Optimizer, torch.nn.Module]:
        cfg = compose(["data=synthetic", "data.num_samples=64", "train.batch_size=16"])
        data = build_data(cfg.data, 16, 16, 0)
        torch.manual_seed(0)
        model = build_model(cfg.model, data.num_classes, data.in_channels, data.image_size)
        prunable = [n for n, _ in model.named_parameters() if n.endswith("weight")]
        mask = Mask.ones_like({n: p for n, p in model.named_parameters() if n in prunable})
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        end = 4

        def schedule(it, live, current):
            return MaskChange(current, reset_momentum=reset) if it == end - 1 else None

        events = LoopEvents(
            log=lambda e: None,
            console=lambda line: None,
            checkpoint=lambda s, o: None,
            snapshot=lambda n, s: None,
            checkpoint_every=100,
            log_every=100,
            title="t",
        )
        segment = Segment(0, end, mask_schedule=schedule)
        lr = LRSchedule(cfg.train, len(data.train), end)
        masks = MaskState(model, mask)
        train_segment(
            model,
            data.train,
            data.val,
            opt,
            masks,
            segment,
            lr,
            cfg.train,
            torch.device("cpu"),
            events,
        )
        return opt, model

    opt, model = train(reset=True)
    for p in model.parameters():
        assert torch.equal(opt.state[p]["momentum_buffer"], p.grad)
    opt, model = train(reset=False)
    assert not all(torch.equal(opt.state[p]["momentum_buffer"], p.grad) for p in model.parameters())


def test_phase_lengths_that_do_not_fit_are_user_errors(weights):
    from sparsify.errors import UserError

    cfg = compose(["prune=acdc", "prune.dense_warmup=3ep", "prune.final_compressed=2ep"])
    with pytest.raises(UserError, match="exceed training"):
        METHODS.get("acdc")(cfg.prune).check(_ctx(weights))
    cfg = compose(["prune=gmp", "prune.start=3ep", "prune.stop=2ep"])
    with pytest.raises(UserError, match="prune.start < prune.stop"):
        METHODS.get("gmp")(cfg.prune).check(_ctx(weights))


def test_grouped_granularity_refuses_signed_criteria(weights):
    from sparsify.errors import UserError

    cfg = compose(["prune=lth", "prune.granularity=block", "prune.criterion=small_final"])
    with pytest.raises(UserError, match="signed"):
        METHODS.get("lth")(cfg.prune).check(_ctx(weights))


def test_acdc_without_room_for_alternation_keeps_training_dense_until_the_final_phase(weights):
    cfg = compose(
        [
            "prune=acdc",
            "prune.dense_warmup=1ep",
            "prune.final_decompressed=1ep",
            "prune.final_compressed=2ep",
        ]
    )  # 4 epochs: warm-up 0-1, D 1-2, C 2-4
    phases = METHODS.get("acdc")(cfg.prune).phases(_ctx(weights))
    assert phases == [(2 * IPE, True)]  # no momentum reset at the end of the warm-up


@pytest.mark.parametrize(
    "overrides,key,schema",
    [
        (["prune=magnitude", "prune.rewind=1ep"], "rewind", "MagnitudeConfig"),
        (["prune=wr", "prune.start=1ep"], "start", "RetrainingConfig"),
        (["prune=lth", "prune.start=1ep"], "start", "RetrainingConfig"),
        (["prune=supermask", "prune.sparsity=0.5"], "sparsity", "SupermaskConfig"),
        (["prune=dense", "prune.allocation=erk"], "allocation", "PruneConfig"),
    ],
)
def test_a_setting_another_method_owns_is_refused_when_the_config_is_composed(
    overrides, key, schema
):
    from hydra.errors import ConfigCompositionException

    with pytest.raises(ConfigCompositionException) as caught:
        compose(overrides)
    assert f"Key '{key}' not in '{schema}'" in str(caught.value.__cause__)


def test_every_method_declares_a_schema_of_its_own_settings_and_its_dense_level():
    from sparsify.config import PruneConfig

    for name in METHODS.names():
        method = METHODS.get(name)
        assert issubclass(method.config_class, PruneConfig), name
        cfg = compose([f"prune={name}"])
        assert OmegaConf.get_type(cfg.prune) is method.config_class, name
    dense = {n for n in METHODS.names() if METHODS.get(n).dense_level == 0}
    assert dense == {"acdc", "dense", "finetune", "lrr", "lth", "magnitude", "random", "wr"}


@pytest.mark.parametrize("method", ["supermask", "edgepopup"])
def test_learnt_masks_never_change_the_weights(tmp_path, method):
    """Only scores train: every nonzero final weight is its frozen initial draw (times the
    layer's rescaling factor for supermask), biases keep their initial values, and the
    reported sparsity is the mask actually used."""
    cfg = compose([f"prune={method}", "train.epochs=2"])
    results = run(cfg, tmp_path / method)
    from sparsify.methods.supermask import _LearntMask  # noqa: F401
    from sparsify.run import prepare
    from sparsify.rundir import RunDir

    prepared = prepare(cfg, RunDir(tmp_path / "fresh"))
    frozen = METHODS.get(method)(cfg.prune).frozen_weights(prepared.ctx)
    final = torch.load(tmp_path / method / "levels/level_00/final.pt", weights_only=True)
    mask = torch.load(tmp_path / method / "levels/level_00/mask.pt", weights_only=True)
    for name, m in mask.items():
        w, w0 = final[name], frozen[name]
        scale = m.numel() / int(m.sum()) if cfg.prune.rescale else 1.0
        assert torch.allclose(w[m], w0[m] * scale) and torch.all(w[~m] == 0)
    for name in final:
        if name not in mask and name.endswith("bias"):
            assert torch.equal(final[name], prepared.init[name])
    kept = sum(int(m.sum()) for m in mask.values())
    assert results["levels"][0]["nonzero_params"] == kept


def test_edgepopup_keeps_the_top_fraction_of_scores_in_every_layer():
    from sparsify.sparsity.score_masks import ScoreMasks

    weights = {"a": torch.randn(20, 30), "b": torch.randn(10, 20)}
    scores = ScoreMasks(weights, "topk", sparsity=0.7, generator=torch.Generator().manual_seed(0))
    layers = scores.layers(scores.scores.detach())
    assert [s.shape for s in layers] == [w.shape for w in weights.values()]
    for s, m in zip(layers, scores.eval_masks()):
        assert int(m.sum()) == round(0.3 * s.numel())
        assert s.abs()[m.bool()].min() >= s.abs()[~m.bool()].max()


@pytest.mark.parametrize("kind", ["bernoulli", "topk"])
def test_the_straight_through_gradient_reaches_the_scores_and_not_the_weights(kind):
    from sparsify.sparsity.score_masks import ScoreMasks

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))
    model.requires_grad_(False)
    weights = {"0.weight": model[0].weight, "2.weight": model[2].weight}
    scores = ScoreMasks(weights, kind, sparsity=0.5, generator=torch.Generator().manual_seed(1))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    scores.forward_model(model.train(), torch.randn(32, 8)).pow(2).sum().backward()
    grads = scores.layers(scores.scores.grad)
    assert len(grads) == 2 and all(g.abs().sum() > 0 for g in grads)  # every layer's scores
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


@pytest.mark.parametrize("rescale", [False, True])
@pytest.mark.parametrize("kind", ["bernoulli", "topk"])
def test_the_fused_straight_through_gradient_equals_autograd_through_the_surrogate(kind, rescale):
    from sparsify.sparsity.score_masks import ScoreMasks

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))
    model.requires_grad_(False)
    weights = {"0.weight": model[0].weight, "2.weight": model[2].weight}
    # the factor held constant (its differentiated form: tests/test_fidelity_learnt_masks.py)
    scores = ScoreMasks(weights, kind, sparsity=0.5, rescale=rescale, rescale_gradient="constant")
    x = torch.randn(32, 8)
    torch.manual_seed(1)  # the same Bernoulli draws in both passes
    scores.forward_model(model.train(), x).pow(2).sum().backward()
    fused = scores.layers(scores.scores.grad.clone())

    # the reference: the surrogate written out layer by layer, differentiated by autograd
    torch.manual_seed(1)
    effective = {}
    masks = scores.layers(scores.train_masks()[0])
    scores.scores.grad = None
    for name, s, m in zip(scores.names, scores.layers(scores.scores), masks):
        f = torch.sigmoid(s) if kind == "bernoulli" else s.abs()
        scale = m.numel() / m.sum().clamp_min(1.0) if rescale else 1.0
        effective[name] = weights[name] * (m + f - f.detach()) * scale
    torch.func.functional_call(model, effective, (x,)).pow(2).sum().backward()
    for got, want in zip(fused, scores.layers(scores.scores.grad)):
        assert got.abs().sum() > 0
        torch.testing.assert_close(got, want)


def test_large_init_large_final_ranks_only_the_live_weights():
    wi = {"w": torch.tensor([5.0, 4.0, 3.0, 2.0, 1.0, 0.5])}
    wf = {"w": torch.tensor([0.0, 0.0, 3.0, 2.0, 1.0, 0.5])}
    alive = {"w": torch.tensor([False, False, True, True, True, True])}
    s = criterion_scores("large_init_large_final", wi, wf, mask=alive)["w"]
    assert torch.all(s[:2] == float("-inf"))
    assert s[2:].tolist() == pytest.approx([0.75, 0.5, 0.25, 0.0])  # ranks among the 4 live


def test_pruning_that_would_empty_a_layer_is_refused():
    from sparsify.errors import UserError
    from sparsify.methods.base import prune_by

    scores = {"small": torch.full((4, 8), 0.01), "big": torch.full((4, 8), 1.0)}
    dense = Mask.ones_like(scores)
    cfg = compose(["prune=magnitude", "prune.granularity=channel"]).prune
    with pytest.raises(UserError, match="remove every weight of small"):
        prune_by(cfg, scores, dense, 0.5)
    layerwise = compose(
        ["prune=magnitude", "prune.granularity=channel", "prune.allocation=layerwise"]
    )
    assert prune_by(layerwise.prune, scores, dense, 0.5).sparsity == pytest.approx(0.5)
