"""Learning-rate schedules and AC/DC's threshold against the authors' code (issue 12; review
sections 1.5, 4 and 7): OpenLTH's warm-up (facebookresearch/open_lth @ 2ce732f,
`training/optimizers.py`), IST-DASLab/ACDC's per-epoch `CosineLR` and `utils.percentile` cut
(@ ac53210), and the TF boundaries of Renda et al.'s CIFAR ResNet
(rewinding-iclr20-public @ 273e67d, `resnet_run_loop.learning_rate_with_decay`). Expected numbers
are written out or come from the reference logic re-written here, never from sparsify's own
functions."""

import json
import math
import subprocess
import sys

import pytest
import torch
from omegaconf import OmegaConf

from sparsify.compose import compose
from sparsify.config import ModelConfig, TrainConfig
from sparsify.errors import UserError
from sparsify.identity import run_name
from sparsify.methods import METHODS, Context
from sparsify.methods.acdc import acdc_mask
from sparsify.models import build_model
from sparsify.run import run
from sparsify.sparsity import Mask, prune_mask
from sparsify.sparsity.prunable import prunable_weights
from sparsify.tracking import Tracker
from sparsify.training.optim import LRSchedule

# --- OpenLTH's warm-up: lr · min(1, it / W) --------------------------------------------------


def _openlth_lr(it: int, base: float, warmup: int, milestones: list[int], gamma: float) -> float:
    """open_lth get_lr_schedule: LambdaLR of the product of the milestone and warm-up lambdas."""
    drops = sum(m <= it for m in milestones)  # bisect.bisect(milestones, it)
    return base * gamma**drops * min(1.0, it / warmup)


def test_warmup_offset_0_is_openlths_warmup_from_lr_0():
    cfg = TrainConfig(
        lr=0.1, schedule="multistep", milestones=["8ep"], warmup="50it", warmup_offset=0
    )
    lr = LRSchedule(cfg, iterations_per_epoch=10, total=100)
    assert [lr(i) for i in (0, 1, 25, 49, 50, 79, 80)] == pytest.approx(
        [0.0, 0.002, 0.05, 0.098, 0.1, 0.1, 0.01], abs=1e-15
    )
    for it in range(100):
        assert lr(it) == pytest.approx(_openlth_lr(it, 0.1, 50, [80], 0.1), abs=1e-15), it


def test_the_default_warmup_is_openlths_one_iteration_ahead():
    lr = LRSchedule(TrainConfig(lr=0.1, schedule="constant", warmup="50it"), 10, 100)
    assert (lr(0), lr(49)) == pytest.approx((0.002, 0.1))
    for it in range(50):  # the review: sparsify(it) == open_lth(it + 1) over the warm-up
        assert lr(it) == pytest.approx(_openlth_lr(it + 1, 0.1, 50, [], 0.1), abs=1e-15), it


def test_the_lth_experiments_do_not_warm_up_so_they_keep_the_default_offset():
    # OpenLTH's mnist_lenet_300_100 and cifar_resnet_20 defaults have no warmup_steps
    for name in ("lth_lenet_mnist", "lth_resnet20_cifar10"):
        train = compose([f"experiment={name}"]).train
        assert (train.warmup, train.warmup_offset) == ("0it", 1), name


# --- AC/DC: the schedule stepped once per epoch -----------------------------------------------

IPE = 5005  # ImageNet at batch 256: ceil(1,281,167 / 256)


def _acdc_lr(epoch: int) -> float:
    """IST-DASLab/ACDC CosineLR(warmup_length=5, end_epoch=100), stepped per epoch, base 0.256."""
    if epoch < 5:
        return 0.256 * (epoch + 1) / 5
    return 0.5 * (1 + math.cos(math.pi * (epoch - 5) / 95)) * 0.256


def _acdc_schedule(lr_update: str) -> LRSchedule:
    cfg = TrainConfig(lr=0.256, schedule="cosine", warmup="5ep", lr_update=lr_update)
    return LRSchedule(cfg, IPE, 100 * IPE)


def test_lr_update_epoch_gives_acdcs_lr_for_every_iteration_of_every_epoch():
    lr = _acdc_schedule("epoch")
    for epoch in range(100):
        want = _acdc_lr(epoch)
        for it in (epoch * IPE, epoch * IPE + 2502, (epoch + 1) * IPE - 1):
            assert lr(it) == pytest.approx(want, rel=1e-12, abs=1e-15), (epoch, it)
    # written out: warm-up epochs 0.0512, 0.1024, ..., 0.256; the cosine's last epoch 7.0e-5
    assert [lr(e * IPE + 7) for e in range(6)] == pytest.approx(
        [0.0512, 0.1024, 0.1536, 0.2048, 0.256, 0.256]
    )
    assert lr(100 * IPE - 1) == pytest.approx(6.998e-5, rel=1e-3)


def test_the_review_numbers_per_epoch_against_per_iteration():
    """Mean lr over the 5 warm-up epochs: the reference 0.256 · (1+2+3+4+5)/25 = 0.1536, per
    iteration 0.256 · (W + 1)/(2W) with W = 25,025 = 0.128005; last epoch 7.0e-5 against about 0;
    mean |Δlr| over the run 2.6e-3."""
    per_epoch, per_it = _acdc_schedule("epoch"), _acdc_schedule("iteration")
    w = 5 * IPE
    assert sum(per_epoch(i) for i in range(w)) / w == pytest.approx(0.1536, rel=1e-9)
    assert sum(per_it(i) for i in range(w)) / w == pytest.approx(0.256 * (w + 1) / (2 * w))
    assert 0.256 * (w + 1) / (2 * w) == pytest.approx(0.128005, abs=1e-6)
    assert per_it(100 * IPE - 1) < 1e-11
    total = 100 * IPE
    mean_abs = sum(abs(per_epoch(i) - per_it(i)) for i in range(total)) / total
    assert mean_abs == pytest.approx(2.56e-3, abs=5e-5)


def test_lr_update_epoch_with_other_schedules_holds_each_epochs_first_value():
    base = dict(lr=1.0, gamma=0.5, lr_update="epoch")
    step = LRSchedule(TrainConfig(schedule="step", step_size="15it", **base), 10, 100)
    # the value at iterations 0, 10, 20, 30 (it // 15 = 0, 0, 1, 2) for the whole epoch
    assert [step(i) for i in (9, 19, 29, 39)] == [1.0, 1.0, 0.5, 0.25]
    multi = LRSchedule(TrainConfig(schedule="multistep", milestones=["25it"], **base), 10, 100)
    assert [multi(i) for i in (25, 29, 30)] == [1.0, 1.0, 0.5]
    # a warm-up of 2.5 epochs: epochs 0, 1, 2 at 10/25, 20/25 and (capped) 1 of the lr
    warm = LRSchedule(TrainConfig(schedule="constant", warmup="25it", **base), 10, 100)
    assert [warm(i) for i in (0, 9, 10, 19, 20, 29)] == pytest.approx(
        [0.4, 0.4, 0.8, 0.8, 1.0, 1.0]
    )
    openlth = TrainConfig(schedule="constant", warmup="2ep", warmup_offset=0, **base)
    zero = LRSchedule(openlth, 10, 100)  # e / W epochs: the whole first epoch at 0
    assert [zero(i) for i in (0, 9, 10, 19, 20)] == pytest.approx([0.0, 0.0, 0.5, 0.5, 1.0])


def test_the_acdc_experiment_sets_the_authors_schedule_and_threshold():
    cfg = compose(["experiment=acdc_resnet50_imagenet"])
    assert (cfg.train.lr_update, cfg.train.warmup_offset) == ("epoch", 1)
    assert (cfg.train.schedule, cfg.train.warmup, cfg.train.lr) == ("cosine", "5ep", 0.256)
    assert cfg.prune.threshold == "acdc"


# a tiny acdc run: 256 synthetic samples, 6 iterations per epoch at batch 32
TINY_ACDC = [
    "prune=acdc",
    "data=synthetic",
    "data.num_samples=256",
    "train.batch_size=32",
    "train.epochs=6",
    "train.schedule=cosine",
    "train.warmup=2ep",
    "train.lr_update=epoch",
    "train.checkpoint_every=5it",
    "eval=accuracy",
    "logger.log_every=1",
    "prune.dense_warmup=1ep",
    "prune.final_decompressed=1ep",
    "prune.final_compressed=1ep",
    "prune.threshold=acdc",
]


class Interrupted(Exception):
    pass


def test_an_acdc_run_steps_the_lr_per_epoch_and_resumes_exactly(tmp_path, monkeypatch):
    cfg = compose(TINY_ACDC)
    reference = run(cfg, tmp_path / "reference")
    events = [json.loads(x) for x in (tmp_path / "reference/log.jsonl").read_text().splitlines()]
    lrs: dict[int, float] = {}  # iteration -> lr (a train event's step is the iteration + 1)
    for e in events:
        if e["event"] == "train":
            lrs[e["step"] - 1] = e["lr"]
    ipe = next(e["step"] for e in events if e["event"] == "epoch")
    assert ipe == 6 and sorted(lrs) == list(range(6 * ipe))
    # lr 0.05 (conf/train/default.yaml): warm-up (e + 1)/2 of it in epochs 0 and 1, then the
    # cosine at (e - 2)/4 of the way
    want = [0.025, 0.05] + [0.025 * (1 + math.cos(math.pi * (e - 2) / 4)) for e in range(2, 6)]
    for it, lr in lrs.items():
        assert lr == pytest.approx(want[it // ipe], rel=1e-12, abs=1e-15), it
    # level 1 (the final compressed epoch) keeps ceil(0.1 · N) - 1 weights
    mask = torch.load(tmp_path / "reference/levels/level_01/mask.pt", weights_only=True)
    n = sum(m.numel() for m in mask.values())
    assert sum(int(m.sum()) for m in mask.values()) == math.ceil(0.1 * n) - 1

    original, seen = Tracker.log, {"n": 0}

    def log_then_interrupt(self, event):
        original(self, event)
        if event["event"] == "train":
            seen["n"] += 1
            if seen["n"] == 11:  # mid-epoch 1, inside the warm-up, past the checkpoint at 10
                raise Interrupted

    monkeypatch.setattr(Tracker, "log", log_then_interrupt)
    with pytest.raises(Interrupted):
        run(cfg, tmp_path / "resumed")
    monkeypatch.setattr(Tracker, "log", original)
    assert run(cfg, tmp_path / "resumed") == reference
    assert '"event": "resume"' in (tmp_path / "resumed/log.jsonl").read_text()
    for level in (0, 1):
        path = f"levels/level_{level:02d}/final.pt"
        a = torch.load(tmp_path / "resumed" / path, weights_only=True)
        b = torch.load(tmp_path / "reference" / path, weights_only=True)
        assert all(torch.equal(a[k], b[k]) for k in b), level


# --- AC/DC's threshold: stat > the k-th largest -----------------------------------------------


def _resnet20_magnitudes() -> dict[str, torch.Tensor]:
    model = build_model(ModelConfig(name="resnet20"), 10, 3, 32)
    state = model.state_dict()
    return {n: state[n].abs() for n in prunable_weights(model)}


def _reference_global(scores: dict[str, torch.Tensor], p: float) -> dict[str, torch.Tensor]:
    """UnstructuredMagnitudePruner: stat = (|w| + 1e-4) · mask over every layer, threshold =
    utils.percentile (topk's k-th value, k = ceil(numel · (1 − p))), keep stat > threshold."""
    stat = {n: s + 1e-4 for n, s in scores.items()}
    flat = torch.cat([s.reshape(-1) for s in stat.values()])
    k = math.ceil(flat.numel() * (1 - p))
    threshold = torch.topk(flat, k)[0][-1]
    return {n: s > threshold for n, s in stat.items()}


def test_acdc_threshold_keeps_one_weight_fewer_on_resnet20_shapes():
    scores = _resnet20_magnitudes()
    dense = Mask.ones_like(scores)
    theirs = acdc_mask(scores, dense, 0.9, "global")
    ours = prune_mask(scores, dense, 0.9, "global")
    assert sum(int(m.sum()) for m in theirs.values()) == 27_089  # ceil(27,089.6) - 1
    assert sum(int(m.sum()) for m in ours.values()) == 27_090  # round(27,089.6)
    reference = _reference_global(scores, 0.9)
    assert all(torch.equal(theirs[n], reference[n]) for n in scores)
    assert sum(int((theirs[n] ^ ours[n]).sum()) for n in scores) == 1  # Hamming 1
    assert all(bool((theirs[n] <= ours[n]).all()) for n in scores)


def test_acdc_threshold_layerwise_is_their_per_layer_magnitude_pruner():
    scores = _resnet20_magnitudes()
    theirs = acdc_mask(scores, Mask.ones_like(scores), 0.9, "layerwise")
    for name, s in scores.items():
        k = math.ceil(s.numel() * (1 - 0.9))
        want = s + 1e-4 > torch.topk((s + 1e-4).reshape(-1), k)[0][-1]
        assert torch.equal(theirs[name], want), name
    # conv.weight (432 weights): ceil(43.2) - 1 = 43; fc.weight (640): ceil(64.0) - 1 = 63
    assert (int(theirs["conv.weight"].sum()), int(theirs["fc.weight"].sum())) == (43, 63)


def test_acdc_threshold_prunes_every_weight_tied_at_the_cut():
    scores = {"w": torch.tensor([0.1, 0.2, 0.2, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8])}
    dense = Mask.ones_like(scores)
    # k = ceil(10 · 0.7) = 7: the 7th largest is 0.2, so the three 0.2 go: 6 kept (ours: 7)
    assert acdc_mask(scores, dense, 0.3)["w"].tolist() == [False] * 4 + [True] * 6
    assert int(prune_mask(scores, dense, 0.3)["w"].sum()) == 7
    assert acdc_mask(scores, dense, 0.0)["w"].all()  # their percentile of 0 keeps everything


def _ctx(init: dict[str, torch.Tensor], ipe: int, total: int) -> Context:
    prunable = list(init)
    return Context(
        init=init,
        prunable=prunable,
        iterations_per_epoch=ipe,
        total=total,
        schedule=LRSchedule(TrainConfig(), ipe, total),
        final=lambda lv: init,
        mask=lambda lv: Mask.ones_like(init),
        snapshot=lambda lv, name: init,
        seed=0,
    )


def test_acdc_threshold_acdc_cuts_both_the_compressed_phases_and_the_final_mask():
    weights = _resnet20_magnitudes()  # nonnegative: magnitude scores are the weights themselves
    ctx = _ctx(weights, 10, 100)
    cfg = compose(["prune=acdc", "prune.threshold=acdc"]).prune
    method = METHODS.get("acdc")(cfg)
    final = method.plan(1, ctx).mask
    assert sum(int(m.sum()) for m in final.values()) == 27_089
    first_compressed = method.phases(ctx)[0]
    assert first_compressed == (20, True)  # dense_warmup 2ep
    change = method.plan(0, ctx).segment.mask_schedule(20, weights, Mask.ones_like(weights))
    assert sum(int(m.sum()) for m in change.mask.values()) == 27_089
    exact = METHODS.get("acdc")(compose(["prune=acdc"]).prune).plan(1, ctx).mask
    assert sum(int(m.sum()) for m in exact.values()) == 27_090


def test_the_acdc_experiment_alternates_and_resets_momentum_at_the_authors_epochs():
    """IST-DASLab/ACDC @ ac53210, its ResNet-50 recipe: dense until epoch 10, then 5 compressed
    and 5 decompressed epochs in turn, the momentum zeroed at every decompression (15, 25, ...,
    75), decompressed from 75 to 85 and compressed for the last 15 epochs (85-100). One
    iteration per epoch here, so iterations read as epochs."""
    cfg = compose(["experiment=acdc_resnet50_imagenet"]).prune
    method = METHODS.get("acdc")(cfg)
    ctx = _ctx({"w": torch.rand(20, 20, generator=torch.Generator().manual_seed(0))}, 1, 100)
    compressed = [10, 20, 30, 40, 50, 60, 70, 85]
    decompressed = [15, 25, 35, 45, 55, 65, 75]
    expected = sorted([(e, True) for e in compressed] + [(e, False) for e in decompressed])
    assert method.phases(ctx) == expected
    schedule = method.plan(0, ctx).segment.mask_schedule
    live, dense = {"w": torch.rand(20, 20)}, Mask.ones_like({"w": torch.ones(20, 20)})
    resets = [e for e in range(100) if (c := schedule(e, live, dense)) and c.reset_momentum]
    assert resets == decompressed
    assert method.plan(1, ctx).segment.start == 85


# --- Renda et al.'s TF boundaries -------------------------------------------------------------


def _renda_lr(global_step: int) -> float:
    """learning_rate_with_decay(batch 128, batch_denom 128, 50,000 images, boundary_epochs
    [91, 136, 182], decay_rates [1, 0.1, 0.01, 0.01]): tf.train.piecewise_constant, whose value
    changes *after* each boundary (x <= boundary keeps the earlier value)."""
    batches_per_epoch = 50_000 / 128  # 390.625
    boundaries = [int(batches_per_epoch * e) for e in (91, 136, 182)]
    values = [0.1 * d for d in (1, 0.1, 0.01, 0.01)]
    return values[sum(global_step > b for b in boundaries)]


def test_milestones_in_iterations_give_rendas_lr_at_every_iteration():
    assert [int(50_000 / 128 * e) for e in (91, 136)] == [35_546, 53_125]
    ipe, total = 391, 182 * 391  # ceil(50,000 / 128) iterations per epoch; 71,162 in all
    theirs = TrainConfig(lr=0.1, schedule="multistep", milestones=["35547it", "53126it"])
    lr = LRSchedule(theirs, ipe, total)
    assert all(math.isclose(lr(it), _renda_lr(it), rel_tol=1e-12) for it in range(total))
    assert (lr(35_546), lr(35_547), lr(53_125), lr(53_126)) == pytest.approx(
        (0.1, 0.01, 0.01, 0.001)
    )
    default = LRSchedule(TrainConfig(lr=0.1, milestones=["91ep", "136ep"]), ipe, total)
    differ = [it for it in range(total) if not math.isclose(default(it), _renda_lr(it))]
    # ours drop at 91 × 391 = 35,581 and 136 × 391 = 53,176: 34 + 50 iterations earlier in theirs
    assert differ == [*range(35_547, 35_581), *range(53_126, 53_176)]
    assert len(differ) == 84


def test_the_renda_experiment_keeps_epoch_milestones_and_takes_the_override():
    base = compose(["experiment=renda_resnet20_cifar10"])
    assert list(base.train.milestones) == ["91ep", "136ep"]
    assert (base.train.batch_size, base.data.val_fraction) == (128, 0.0)
    tf = compose(["experiment=renda_resnet20_cifar10", "train.milestones=[35547it,53126it]"])
    assert list(tf.train.milestones) == ["35547it", "53126it"]


# --- run names and bad input ------------------------------------------------------------------


def test_new_schedule_and_threshold_settings_at_their_defaults_keep_the_run_name():
    def name(*overrides: str) -> str:
        return run_name(OmegaConf.to_container(compose(list(overrides)), resolve=True))

    default = name("prune=acdc")
    at_defaults = ("train.warmup_offset=1", "train.lr_update=iteration", "prune.threshold=exact")
    assert name("prune=acdc", *at_defaults) == default
    assert name("prune=acdc", "train.warmup_offset=0") != default
    assert name("prune=acdc", "train.lr_update=epoch") != default
    assert name("prune=acdc", "prune.threshold=acdc") != default
    assert name("prune=lth", "train.warmup_offset=1", "train.lr_update=iteration") == name(
        "prune=lth"
    )


@pytest.mark.parametrize(
    "overrides,message",
    [
        (["train.warmup_offset=2"], "train.warmup_offset=2 is not valid; choose one of: 0, 1"),
        (["train.lr_update=step"], "train.lr_update='step' is not valid; choose one of: iter"),
        (["prune=acdc", "prune.threshold=openlth"], "prune.threshold='openlth' is not valid"),
        (["prune=acdc", "prune.threshold=acdc", "prune.allocation=erk"], "needs prune.alloc"),
        (["prune=acdc", "prune.threshold=acdc", "prune.granularity=block"], "unstructured"),
    ],
)
def test_bad_schedule_or_threshold_settings_are_refused(overrides, message):
    with pytest.raises(UserError, match=message):
        compose(overrides)


def test_bad_lr_update_on_the_command_line_exits_before_any_work(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "sparsify", "train.lr_update=epochs"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode != 0
    assert "train.lr_update='epochs' is not valid; choose one of: iteration, epoch" in out.stderr
    assert "Traceback" not in out.stderr
    assert list(tmp_path.iterdir()) == []  # nothing written
