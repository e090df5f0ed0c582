"""Mixed precision (`train.precision`): fp16 with a dynamic loss scaler, as AC/DC's `--fp16`.
On the CPU training is fp32 whatever the setting; these tests switch CPU autocast on (torch
runs fp16 autocast and its GradScaler on the CPU too) to exercise the real scaler."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from sparsify.compose import compose
from sparsify.errors import UserError
from sparsify.records import Checkpoint
from sparsify.run import run
from sparsify.tracking import Tracker
from sparsify.training.precision import SCALER_KEY, Precision


def test_on_the_cpu_every_precision_trains_in_fp32():
    for name in ("bf16", "fp16", "fp32"):
        amp = Precision.for_device(name, torch.device("cpu"))
        assert not amp.enabled and amp.scaler is None


def test_fp16_skips_a_step_whose_gradients_overflow_and_halves_the_scale():
    torch.manual_seed(0)
    layer = nn.Linear(4, 2)
    opt = torch.optim.SGD(layer.parameters(), lr=0.1)
    amp = Precision("fp16", "cpu")
    assert amp.scaler is not None and amp.scaler.get_scale() == 2.0**16
    x = torch.randn(3, 4)
    before = [p.detach().clone() for p in layer.parameters()]
    with amp.autocast():
        out = layer(x)
    assert out.dtype == torch.float16
    amp.backward(out.float().sum() * 1e36)  # × 2¹⁶ overflows fp32: inf gradients
    amp.step(opt)
    assert all(torch.equal(p, b) for p, b in zip(layer.parameters(), before))
    assert amp.scaler.get_scale() == 2.0**15
    opt.zero_grad()
    with amp.autocast():
        out = layer(x)
    amp.backward(out.float().mean() * 1e-3)
    grads = [p.grad.clone() / 2.0**15 for p in layer.parameters()]  # scaled, as backward left it
    amp.step(opt)
    assert amp.scaler.get_scale() == 2.0**15  # one clean step: no growth before 2,000
    for p, b, g in zip(layer.parameters(), before, grads):
        torch.testing.assert_close(p.detach(), b - 0.1 * g)


def test_the_scalers_state_survives_a_checkpoint_file(tmp_path):
    amp = Precision("fp16", "cpu")
    amp.scaler = torch.amp.GradScaler("cpu", init_scale=1024.0)  # as after 6 skipped steps
    ckpt = Checkpoint(0, 5, {}, {}, {}, {"torch": torch.get_rng_state()}, amp.state_dict())
    torch.save(ckpt.to_state(), tmp_path / "c.pt")
    loaded = Checkpoint.from_state(torch.load(tmp_path / "c.pt", weights_only=True), "c.pt")
    again = Precision("fp16", "cpu")
    again.load_state_dict(loaded.extra)
    assert SCALER_KEY in loaded.extra and again.scaler.get_scale() == 1024.0


class Interrupted(Exception):
    pass


def test_a_fp16_acdc_run_interrupted_mid_level_resumes_to_the_uninterrupted_result(
    tmp_path, monkeypatch
):
    """A scale that doubles after every clean step (growth_interval 1) from 2¹⁰ overflows every
    few steps, so which steps are skipped depends on the scale carried through the checkpoint: a
    resumed run that restarted its scaler would end with other weights."""

    def on_cpu(cls, name, device):
        amp = cls(name, device.type, enabled=True)
        amp.scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10, growth_interval=1)
        return amp

    monkeypatch.setattr(Precision, "for_device", classmethod(on_cpu))
    overrides = ["prune=acdc", "train.precision=fp16", "data=synthetic", "data.num_samples=256",
                 "train.batch_size=32", "train.epochs=6", "eval=accuracy",
                 "train.checkpoint_every=5it", "prune.dense_warmup=1ep",
                 "prune.final_decompressed=1ep", "prune.final_compressed=1ep"]  # fmt: skip
    cfg = compose(overrides)
    reference = run(cfg, tmp_path / "reference")
    original, seen = Tracker.log, {"n": 0, "skipped": 0}

    def log_then_interrupt(self, event):
        original(self, event)
        if event["event"] == "train":
            seen["n"] += 1
            if seen["n"] == 23:
                raise Interrupted

    monkeypatch.setattr(Tracker, "log", log_then_interrupt)
    with pytest.raises(Interrupted):
        run(cfg, tmp_path / "resumed")
    monkeypatch.setattr(Tracker, "log", original)
    saved = torch.load(tmp_path / "resumed/checkpoint.pt", weights_only=True)
    assert saved["step"] == 20 and saved[SCALER_KEY]["scale"] not in (2.0**10, 2.0**30)
    assert run(cfg, tmp_path / "resumed") == reference
    a = torch.load(tmp_path / "resumed/levels/level_00/final.pt", weights_only=True)
    b = torch.load(tmp_path / "reference/levels/level_00/final.pt", weights_only=True)
    assert all(torch.equal(a[k], b[k]) for k in b)


def test_an_unknown_precision_is_refused():
    with pytest.raises(UserError, match="train.precision='fp8'.*bf16, fp16, fp32"):
        compose(["train.precision=fp8"])
