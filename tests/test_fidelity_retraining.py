"""Fidelity of the retraining family, GMP and the Renda experiments to the authors' code
(issue 12): the optimizer state Renda et al.'s TF Saver carries into a pruned level, weight
decay without the norm layers (the official TF ResNets' loss_filter_fn), GMP's per-layer
allocation (Zhu & Gupta), and the experiment files that set them. Expected numbers are written
out or computed here from the saved files, never by the code path under test."""

import pytest
import torch
from torch import nn

from sparsify.compose import compose
from sparsify.config import TrainConfig
from sparsify.errors import UserError
from sparsify.methods import METHODS, Context
from sparsify.run import run
from sparsify.sparsity import Mask
from sparsify.tracking import Tracker
from sparsify.training.optim import (
    LRSchedule,
    build_optimizer,
    mask_optimizer_state,
    weight_decay_groups,
)

# 96 synthetic samples: 76 to train at batch 32 = 3 iterations per epoch; no validation split,
# as the Renda experiments train on the whole training set (calibration then skips temperature)
TINY = [
    "data=synthetic",
    "data.num_samples=96",
    "data.val_fraction=0",
    "train.batch_size=32",
    "eval.evaluators=[accuracy,calibration]",
    "eval.if_possible=[]",
    "eval.summaries=[]",
    "prune.levels=1",
]


def _load(path):
    return torch.load(path, map_location="cpu", weights_only=True)


def _record_start_state(monkeypatch):
    """{level: {param name: momentum buffer}} of the optimizer as each level's loop begins."""
    import sparsify.level as level_module

    seen: dict[int, dict[str, torch.Tensor]] = {}
    original = level_module.train_segment

    def recording(model, train, val, optimizer, masks, segment, *args, **kwargs):
        buffers = {}
        for name, p in model.named_parameters():
            state = optimizer.state.get(p, {})
            if "momentum_buffer" in state:
                buffers[name] = state["momentum_buffer"].clone()
        seen[len(seen)] = buffers
        return original(model, train, val, optimizer, masks, segment, *args, **kwargs)

    monkeypatch.setattr(level_module, "train_segment", recording)
    return seen


def _buffers_by_name(saved: dict, names: list[str]) -> dict[str, torch.Tensor]:
    """The momentum buffers of an optimizer state_dict, by parameter name (one param group, the
    model's parameters in order)."""
    (group,) = saved["param_groups"]
    return {names[i]: saved["state"][i]["momentum_buffer"] for i in group["params"]}


def test_lrr_with_carry_starts_level_1_from_level_0s_final_momentum_with_pruned_entries_zeroed(
    tmp_path, monkeypatch
):
    seen = _record_start_state(monkeypatch)
    cfg = compose([*TINY, "prune=lrr", "prune.optimizer_state=carry", "train.epochs=2"])
    results = run(cfg, tmp_path / "carry")
    level0 = tmp_path / "carry/levels/level_00"
    names = list(_load(level0 / "final.pt"))  # LeNet has no buffers: parameters in order
    saved = _buffers_by_name(_load(level0 / "optimizer.pt"), names)
    mask = _load(tmp_path / "carry/levels/level_01/mask.pt")

    assert seen[0] == {}  # level 0: a fresh optimizer
    assert set(seen[1]) == set(names)
    pruned_had_momentum = 0
    for name in names:
        expected = saved[name] * mask[name] if name in mask else saved[name]
        assert torch.equal(seen[1][name], expected), name
        if name in mask:
            pruned_had_momentum += int((saved[name][~mask[name]] != 0).sum())
    assert pruned_had_momentum > 0  # the zeroing was exercised
    final1 = _load(tmp_path / "carry/levels/level_01/final.pt")
    assert all(int((final1[n][~m] != 0).sum()) == 0 for n, m in mask.items())
    assert results["levels"][1]["sparsity"] == pytest.approx(0.2, abs=1e-3)

    # the carried state is used: a fresh optimizer ends level 1 elsewhere (level 0 the same)
    fresh = run(compose([*TINY, "prune=lrr", "train.epochs=2"]), tmp_path / "fresh")
    assert not (tmp_path / "fresh/levels/level_00/optimizer.pt").exists()
    assert fresh["levels"][0] == results["levels"][0]
    final1_fresh = _load(tmp_path / "fresh/levels/level_01/final.pt")
    assert any(not torch.equal(final1[k], final1_fresh[k]) for k in final1)


def test_wr_with_carry_starts_level_1_from_the_momentum_at_the_rewind_step(tmp_path, monkeypatch):
    seen = _record_start_state(monkeypatch)
    # wr rewinding to 1ep = 3it of a 2-epoch run ...
    carry = [*TINY, "prune.optimizer_state=carry"]
    run(compose([*carry, "prune=wr", "prune.rewind=1ep", "train.epochs=2"]), tmp_path / "wr")
    at_k = _load(tmp_path / "wr/levels/level_00/rewind_optimizer.pt")
    # ... and a run that stops at 1ep (same seed, data order and lr up to there): its level 0's
    # final optimizer state is the state at step k, reached by another path
    run(compose([*carry, "prune=lrr", "train.epochs=1"]), tmp_path / "upto_k")
    names = list(_load(tmp_path / "wr/levels/level_00/final.pt"))
    got = _buffers_by_name(at_k, names)
    want = _buffers_by_name(_load(tmp_path / "upto_k/levels/level_00/optimizer.pt"), names)
    assert all(torch.equal(got[n], want[n]) for n in names)

    mask = _load(tmp_path / "wr/levels/level_01/mask.pt")
    for name in names:
        expected = want[name] * mask[name] if name in mask else want[name]
        assert torch.equal(seen[1][name], expected), name
    assert seen[1] != {} and seen[0] == {}


def test_wr_with_carry_and_rewind_to_init_starts_from_a_fresh_optimizer(tmp_path, monkeypatch):
    # the state at step 0 is a fresh optimizer's: Renda's checkpoint_iter_0 holds zero momentum
    seen = _record_start_state(monkeypatch)
    cfg = compose([*TINY, "prune=wr", "prune.rewind=0it", "prune.optimizer_state=carry"])
    run(cfg, tmp_path / "wr0")
    assert seen == {0: {}, 1: {}}
    assert not list((tmp_path / "wr0/levels/level_00").glob("*optimizer.pt"))


class Interrupted(Exception):
    pass


RESUME = [
    "data=synthetic",
    "data.num_samples=256",
    "train.batch_size=32",
    "train.epochs=4",
    "eval=accuracy",
    "prune.levels=2",
    "prune.optimizer_state=carry",
    "train.checkpoint_every=5it",
]


@pytest.mark.parametrize(
    "method,level,extra",
    [
        ("wr", 2, ["prune.rewind=3it"]),
        ("lrr", 2, ["prune.rewind=3it"]),
        ("finetune", 1, ["prune.rewind=3it"]),
        ("wr", 0, ["prune.rewind=8it"]),  # interrupted at 7it, before the rewind point
        ("lth", 0, ["prune.rewind=3it", "prune.reset_optimizer_at_rewind=true"]),  # after it
        ("lth", 0, ["prune.rewind=8it", "prune.reset_optimizer_at_rewind=true"]),  # before it
    ],
)
def test_a_run_with_carried_optimizer_state_resumes_to_the_uninterrupted_result(
    tmp_path, monkeypatch, method, level, extra
):
    cfg = compose([f"prune={method}", *RESUME, *extra])
    reference = run(cfg, tmp_path / "reference")
    stop_at = 7 if level == 0 else reference["levels"][level]["iterations"] // 2 + 3
    original = Tracker.log
    seen = {"n": 0}

    def log_then_interrupt(self, event):
        original(self, event)
        if self.level == level and event["event"] == "train":
            seen["n"] += 1
            if seen["n"] == stop_at:
                raise Interrupted

    monkeypatch.setattr(Tracker, "log", log_then_interrupt)
    with pytest.raises(Interrupted):
        run(cfg, tmp_path / "resumed")
    monkeypatch.setattr(Tracker, "log", original)
    resumed = run(cfg, tmp_path / "resumed")
    assert resumed == reference
    for lv in range(len(reference["levels"])):
        a = _load(tmp_path / f"resumed/levels/level_{lv:02d}/final.pt")
        b = _load(tmp_path / f"reference/levels/level_{lv:02d}/final.pt")
        assert all(torch.equal(a[k], b[k]) for k in b), lv


def test_mask_optimizer_state_zeroes_pruned_entries_of_adam_and_keeps_its_step():
    model = nn.Linear(3, 2, bias=False)
    opt = torch.optim.Adam(model.parameters(), lr=0.1)
    model.weight.grad = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    opt.step()
    keep = torch.tensor([[True, False, True], [False, True, True]])
    mask_optimizer_state(opt, model, {"weight": keep})
    state = opt.state[model.weight]
    # after one Adam step: exp_avg = 0.1 g, exp_avg_sq = 0.001 g²
    assert torch.allclose(state["exp_avg"], torch.tensor([[0.1, 0.0, 0.3], [0.0, 0.5, 0.6]]))
    want_sq = torch.tensor([[0.001, 0.0, 0.009], [0.0, 0.025, 0.036]])
    assert torch.allclose(state["exp_avg_sq"], want_sq)
    assert float(state["step"]) == 1.0


class ConvBNLinear(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3)
        self.bn = nn.BatchNorm2d(2)
        self.fc = nn.Linear(2, 3)


def _decay_by_name(model: nn.Module, cfg: TrainConfig) -> dict[str, float]:
    opt = build_optimizer(weight_decay_groups(model, cfg), cfg)
    name_of = {id(p): n for n, p in model.named_parameters()}
    return {name_of[id(p)]: g["weight_decay"] for g in opt.param_groups for p in g["params"]}


def test_norm_weight_decay_zero_leaves_batchnorm_out_of_weight_decay():
    cfg = TrainConfig(weight_decay=2e-4, norm_weight_decay=0.0, momentum=0.0)
    assert _decay_by_name(ConvBNLinear(), cfg) == {
        "conv.weight": 2e-4,
        "conv.bias": 2e-4,
        "bn.weight": 0.0,
        "bn.bias": 0.0,
        "fc.weight": 2e-4,
        "fc.bias": 2e-4,
    }
    # one SGD step with zero gradients at lr 0.1: w ← w − 0.1·wd·w, so 1 → 0.99998 where decayed
    model = ConvBNLinear()
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(1.0)
            p.grad = torch.zeros_like(p)
    opt = build_optimizer(weight_decay_groups(model, cfg), cfg)
    for group in opt.param_groups:
        group["lr"] = 0.1
    opt.step()
    after = {n: float(p.detach().flatten()[0]) for n, p in model.named_parameters()}
    assert after == pytest.approx(
        {
            "conv.weight": 0.99998,
            "conv.bias": 0.99998,
            "bn.weight": 1.0,
            "bn.bias": 1.0,
            "fc.weight": 0.99998,
            "fc.bias": 0.99998,
        },
        abs=1e-7,  # float32; the decay itself is 2e-5
    )


def test_norm_weight_decay_null_decays_every_parameter_alike():
    cfg = TrainConfig(weight_decay=2e-4)
    assert set(_decay_by_name(ConvBNLinear(), cfg).values()) == {2e-4}


def _gmp_ctx(init: dict[str, torch.Tensor]) -> Context:
    prunable = list(init)
    return Context(
        init=init,
        prunable=prunable,
        iterations_per_epoch=2,
        total=10,
        schedule=LRSchedule(TrainConfig(), 2, 10),
        final=lambda lv: init,
        mask=lambda lv: Mask.ones_like(init),
        snapshot=lambda lv, name: init,
    )


def test_gmp_prunes_every_layer_to_s_t_by_default():
    # a: 80 weights valued 1..80; b: 20 weights valued 100..2000, all larger than a's
    live = {
        "a": torch.arange(1, 81, dtype=torch.float32).reshape(8, 10),
        "b": 100.0 * torch.arange(1, 21, dtype=torch.float32).reshape(4, 5),
    }
    overrides = ["prune.sparsity=0.5", "prune.start=2it", "prune.stop=6it", "prune.frequency=2it"]
    cfg = compose(["prune=gmp", *overrides])
    assert cfg.prune.allocation == "layerwise"
    ctx = _gmp_ctx(live)
    schedule = METHODS.get("gmp")(cfg.prune).plan(0, ctx).segment.mask_schedule
    dense = Mask.ones_like(live)
    # s_t = 0.5 + (0 − 0.5)(1 − (t − 2)/4)³: t=4 → 0.4375, kept 0.5625·80 = 45 and
    # round(0.5625·20) = 11; t=6 → 0.5, kept 40 and 10
    at4 = schedule(4, live, dense).mask
    assert torch.equal(at4["a"], live["a"] >= 36)
    assert torch.equal(at4["b"], live["b"] >= 1000)
    at6 = schedule(6, live, at4).mask
    assert (int(at6["a"].sum()), int(at6["b"].sum())) == (40, 10)
    assert torch.equal(at6["a"], live["a"] >= 41)

    # global (the AC/DC repo's GMP baseline) keeps round(0.5625·100) = 56: all of b, 36 of a
    glob = compose(["prune=gmp", *overrides, "prune.allocation=global"])
    schedule = METHODS.get("gmp")(glob.prune).plan(0, ctx).segment.mask_schedule
    at4 = schedule(4, live, dense).mask
    assert (int(at4["a"].sum()), int(at4["b"].sum())) == (36, 20)


def test_the_renda_and_gmp_experiments_set_the_authors_training():
    cifar = compose(["experiment=renda_resnet20_cifar10", "prune=wr"])
    assert cifar.data.val_fraction == 0.0  # all 50,000 training images
    # cifar10_main.py: weight_decay = 2e-4 and a loss_filter_fn that keeps BatchNorm
    assert (cifar.train.weight_decay, cifar.train.norm_weight_decay) == (2e-4, None)
    assert (cifar.train.nesterov, cifar.prune.optimizer_state) == (False, "carry")

    imagenet = compose(["experiment=renda_resnet50_imagenet", "prune=finetune"])
    # resnet_main.py: weight_decay 1e-4 on non-batch_normalization variables, Nesterov momentum
    assert (imagenet.train.weight_decay, imagenet.train.norm_weight_decay) == (1e-4, 0.0)
    assert (imagenet.train.nesterov, imagenet.train.momentum) == (True, 0.9)
    assert imagenet.prune.optimizer_state == "carry"

    gmp = compose(["experiment=gmp_resnet50_imagenet"])
    assert (gmp.prune.allocation, list(gmp.prune.exclude)) == ("layerwise", ["conv1.weight"])


@pytest.mark.parametrize(
    "override,message",
    [
        ("prune.optimizer_state=keep", "prune.optimizer_state='keep' is not valid; choose one"),
        ("train.norm_weight_decay=-1", "train.norm_weight_decay=-1.0 is out of range"),
    ],
)
def test_bad_optimizer_state_or_norm_weight_decay_is_refused(override, message):
    with pytest.raises(UserError, match=message.replace("(", r"\(")):
        compose(["prune=lrr", override])


def test_openlths_two_run_level_0_is_a_fresh_optimizer_from_the_rewind_step(tmp_path):
    # OpenLTH trains level 0 with k > 0 as a run to k, then a new run (fresh optimizer) from k.
    # Built another way: wr without the option, pruning nothing (rate 1e-6 keeps round(0.99..·N)
    # = N weights), trains level 1 from level 0's weights at k with a fresh optimizer on the
    # schedule and data order from k; its final weights must be level 0's of the two-run lth.
    two = [*TINY, "train.epochs=2", "prune.rewind=1ep"]
    run(compose([*two, "prune=lth", "prune.reset_optimizer_at_rewind=true"]), tmp_path / "lth")
    run(compose([*two, "prune=wr", "prune.rate=1e-6"]), tmp_path / "wr")
    assert bool(_load(tmp_path / "wr/levels/level_01/mask.pt")["fc1.weight"].all())
    got = _load(tmp_path / "lth/levels/level_00/final.pt")
    want = _load(tmp_path / "wr/levels/level_01/final.pt")
    assert all(torch.equal(got[k], want[k]) for k in want)
    one = _load(tmp_path / "wr/levels/level_00/final.pt")  # one run: momentum kept at k
    assert any(not torch.equal(got[k], one[k]) for k in one)
    import json

    events = [json.loads(line) for line in (tmp_path / "lth/log.jsonl").read_text().splitlines()]
    resets = [e for e in events if e.get("event") == "mask" and e.get("reset_momentum")]
    assert [(e["level"], e["step"]) for e in resets] == [(0, 3)]


@pytest.mark.parametrize(
    "overrides",
    [
        ["prune=lth", "prune.reset_optimizer_at_rewind=true"],  # rewind 0it: no second run
        ["prune=lrr", "prune.rewind=1ep", "prune.reset_optimizer_at_rewind=true"],
    ],
)
def test_reset_optimizer_at_rewind_without_a_rewind_point_is_refused(tmp_path, overrides):
    with pytest.raises(UserError, match="reset_optimizer_at_rewind"):
        run(compose([*TINY, *overrides]), tmp_path / "run")
    assert not (tmp_path / "run/levels").exists()


def test_finetune_continuing_the_data_order_is_a_longer_dense_run(tmp_path):
    # Renda et al.'s fine-tuning restores the final checkpoint (momentum included) and trains on
    # from step T at a fixed lr. Built another way: pruning nothing (rate 1e-6) on a constant lr,
    # level 1 with prune.finetune_data=continue and carried state trains iterations [T, 2T) of
    # the data order from level 0's end, so its weights are those of one dense run of 2T.
    common = [*TINY, "train.schedule=constant", "train.milestones=[]"]
    tuned = [*common, "prune=finetune", "prune.rate=1e-6", "train.epochs=2",
             "prune.optimizer_state=carry", "prune.finetune_data=continue"]  # fmt: skip
    run(compose(tuned), tmp_path / "ft")
    dense = [o for o in common if o != "prune.levels=1"]
    run(compose([*dense, "prune=dense", "train.epochs=4"]), tmp_path / "dense")
    got = _load(tmp_path / "ft/levels/level_01/final.pt")
    want = _load(tmp_path / "dense/levels/level_00/final.pt")
    assert all(torch.equal(got[k], want[k]) for k in want)
    import json

    events = [json.loads(line) for line in (tmp_path / "ft/log.jsonl").read_text().splitlines()]
    steps = [e["step"] for e in events if e.get("event") == "train" and e.get("level") == 1]
    assert steps == list(range(7, 13))  # T = 2 epochs × 3 iterations
    # replaying the order from epoch 0 (the default) trains other batches
    run(compose([*tuned[:-1]]), tmp_path / "replay")
    replayed = _load(tmp_path / "replay/levels/level_01/final.pt")
    assert any(not torch.equal(replayed[k], want[k]) for k in want)


def test_finetune_data_needs_finetune():
    with pytest.raises(UserError, match="prune.finetune_data=continue .* needs prune=finetune"):
        compose(["prune=lrr", "prune.finetune_data=continue"])
