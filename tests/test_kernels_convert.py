"""convert(): which layers move to which kernel, that the converted model computes what the torch
model computes, and the `backend` config group that evaluates runs through it."""

import copy
import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from sparsify.kernels import KernelLayer, convert, kernel_layers
from sparsify.kernels.convert import block_density
from torch import nn

from sparsify.compose import compose
from sparsify.identity import config_hash
from sparsify.run import run

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


def _model() -> nn.Module:
    """One layer for each rule: dense 3×3 conv (winograd), block-pruned 3×3 stride-2 conv (bsr),
    very sparse linear (csr), a half-pruned unstructured linear and a 1×1 conv (torch)."""
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1),  # 0: dense 3×3 s1 → winograd
        nn.ReLU(),
        nn.Conv2d(16, 32, 3, stride=2, padding=1),  # 2: 3/4 of its 16×16 blocks zero → bsr
        nn.Conv2d(32, 16, 1),  # 3: dense 1×1 → torch
        nn.Flatten(),
        nn.Linear(16 * 4 * 4, 64),  # 5: 97% zeros, no empty block → csr
        nn.ReLU(),
        nn.Linear(64, 10),  # 7: half zeros, unstructured → torch under auto
    )
    with torch.no_grad():
        w = model[2].weight.view(32, -1)  # (32, 144): 2 × 9 blocks of 16×16
        keep = torch.zeros(2, 9, dtype=torch.bool)
        keep[0, :3] = keep[1, 4:7] = True
        w *= keep.repeat_interleave(16, 0).repeat_interleave(16, 1)[:, :144]
        model[5].weight *= torch.rand(model[5].weight.shape) < 0.03
        model[7].weight *= torch.rand(model[7].weight.shape) < 0.5
    return model.to(DEVICE).eval()


def test_block_density_counts_blocks_holding_any_nonzero():
    w = torch.zeros(40, 20)
    w[0, 0] = w[39, 19] = 1.0  # first block and the ragged last block
    assert block_density(w, 16) == pytest.approx(2 / 6)  # 3 block rows × 2 block columns


def test_auto_puts_each_layer_on_the_kernel_its_weights_call_for():
    converted = convert(_model(), block=16)
    assert kernel_layers(converted) == {"0": "winograd", "2": "bsr", "5": "csr"}


def test_modes_narrow_the_choice():
    model = _model()
    assert kernel_layers(convert(model, "winograd", block=16)) == {"0": "winograd"}
    # sparse: every layer with a zero weight; bsr where a block is empty, csr otherwise
    assert kernel_layers(convert(model, "sparse", block=16)) == {"2": "bsr", "5": "csr", "7": "csr"}


@pytest.mark.parametrize("mode", ["auto", "sparse", "winograd"])
def test_the_converted_model_computes_what_the_torch_model_computes(mode):
    model = _model()
    x = torch.randn(2, 3, 8, 8, device=DEVICE)
    with torch.no_grad():
        expected = model.double()(x.double())
        model.float()
        got = convert(model, mode, block=16)(x)
        assert got.dtype == torch.float32
        # fp32 throughout: errors of order 1e-6 of the outputs' scale; 1e-4 is far below what a
        # wrong kernel, layer or padding would give (of the order of the outputs themselves)
        scale = expected.abs().max()
        assert (got.double() - expected).abs().max() <= 1e-4 * scale


def test_convert_copies_unless_inplace_and_keeps_the_torch_layer():
    model = _model()
    before = copy.deepcopy(model.state_dict())
    converted = convert(model, block=16)
    assert not any(isinstance(m, KernelLayer) for m in model.modules())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    layer = converted[2]
    assert isinstance(layer, KernelLayer) and isinstance(layer.torch_layer, nn.Conv2d)
    assert layer.packed.stored == 6  # the 6 nonzero blocks, nothing else
    convert(model, block=16, inplace=True)
    assert isinstance(model[0], KernelLayer)


@pytest.mark.skipif(DEVICE == "cuda", reason="on a GPU the kernels always run")
def test_without_a_gpu_or_the_interpreter_nothing_is_converted(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    assert kernel_layers(convert(_model(), block=16)) == {}


@pytest.mark.parametrize(
    "kwargs,needle",
    [
        ({"mode": "fast"}, "mode='fast' is not valid"),
        ({"tile": 3}, "tile=3"),
        ({"bsr_max_density": 1.5}, "bsr_max_density=1.5"),
    ],
)
def test_bad_arguments_are_refused(kwargs, needle):
    with pytest.raises(ValueError, match=needle.replace("(", r"\(")):
        convert(_model(), **kwargs)


# ---- the backend config group ----

TINY_BLOCK_RUN = [
    "data=synthetic",
    "data.num_samples=128",
    "data.image_size=8",
    "model=conv2",
    "prune=magnitude",
    "prune.sparsity=0.9",
    "prune.granularity=block",
    "prune.block=16",
    "prune.allocation=layerwise",
    "train.epochs=1",
    "prune.finetune=1ep",
    "device=cpu",
    "eval=accuracy",
]


@pytest.mark.slow
@pytest.mark.skipif(
    os.environ.get("TRITON_INTERPRET", "0") in ("", "0"),
    reason="runs device=cpu through the interpreter, where the choice of kernel is by rule",
)
def test_backend_triton_evaluates_every_level_on_the_kernels(tmp_path):
    torch_results = run(compose(TINY_BLOCK_RUN), tmp_path / "torch")
    results = run(compose([*TINY_BLOCK_RUN, "backend=triton", "backend.block=16"]), tmp_path / "t")
    dense, pruned = (
        dict(map(tuple, lv["tables"]["kernels/layers"]["rows"])) for lv in results["levels"]
    )
    assert dense == {"features.0": "winograd", "features.2": "winograd"}
    assert set(pruned.values()) == {"bsr"} and len(pruned) == 5
    assert results["levels"][1]["metrics"]["kernel_layers"] == 5
    assert "speedup" not in results["levels"][1]["metrics"]  # speed is measured on a GPU only
    for ours, theirs in zip(results["levels"], torch_results["levels"]):
        assert ours["sparsity"] == theirs["sparsity"]  # the same trained weights
        assert ours["metrics"]["accuracy"] == theirs["metrics"]["accuracy"]
        assert ours["metrics"]["loss"] == pytest.approx(theirs["metrics"]["loss"], rel=1e-5)
    saved = json.loads((tmp_path / "t" / "results.json").read_text())
    assert saved["levels"][1]["tables"] == results["levels"][1]["tables"]
    assert "tables" not in torch_results["levels"][1]  # backend=torch converts nothing


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_backend_triton_without_a_gpu_is_refused_before_any_work(tmp_path):
    env = {**os.environ, "TRITON_INTERPRET": "0"}
    proc = subprocess.run(
        [sys.executable, "-m", "sparsify", "backend=triton"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 2
    assert "backend=triton runs Triton kernels on a CUDA GPU" in proc.stderr
    assert "TRITON_INTERPRET=1" in proc.stderr
    assert list(Path(tmp_path).iterdir()) == []


@pytest.mark.parametrize(
    "override,needle",
    [
        ("backend.block=24", "backend.block=24 is not valid; choose one of: 16, 32, 64, 128"),
        ("backend.mode=fast", "backend.mode='fast' is not valid"),
        ("eval.speed.dtype=int8", "eval.speed.dtype='int8' is not valid"),
        ("eval.speed.batch=0", "eval.speed.batch and eval.speed.reps must be at least 1"),
    ],
)
def test_bad_backend_values_are_refused(override, needle):
    from sparsify.errors import UserError
    from sparsify.validate import validate

    with pytest.raises(UserError, match=needle.replace("(", r"\(").replace("[", r"\[")):
        validate(compose(["backend=triton", override]))


# ---- the GPU-only paths, run on the CPU with a stand-in clock ----


class _Clock:
    """Stands in for cuda_time: runs the function once and returns the next scripted time."""

    def __init__(self, times):
        self.times, self.calls = list(times), 0

    def __call__(self, fn, warmup=3, reps=10):
        fn()
        self.calls += 1
        return self.times.pop(0) if self.times else 1.0


def test_measured_layers_keep_the_faster_of_kernel_and_torch(monkeypatch):
    from sparsify.kernels import kept_on_torch

    convert_module = importlib.import_module(
        "sparsify.kernels.convert"
    )  # the attribute is convert()

    # per converted layer, in forward order (0, 2, 5): (kernel ms, torch ms)
    clock = _Clock([2.0, 1.0, 1.0, 2.0, 1.0, 2.0])
    monkeypatch.setattr(convert_module, "cuda_time", clock)
    model = _model()
    converted = convert(model, block=16, measure=True)
    x = torch.randn(2, 3, 8, 8, device=DEVICE)
    with torch.no_grad():
        first = converted(x)
        assert clock.calls == 6
        second = converted(x)  # the same input signature: no new measurement
        assert clock.calls == 6
        expected = model(x)
    assert kept_on_torch(converted) == ["0"]
    assert list(converted[0].choices.values()) == ["torch"]
    assert list(converted[2].choices.values()) == ["bsr"]
    assert torch.equal(first, second)
    torch.testing.assert_close(first, expected, rtol=1e-4, atol=1e-5)


def test_inputs_the_kernels_do_not_take_go_to_the_torch_layer():
    model = _model()
    converted = convert(model, block=16)
    x = torch.randn(2, 3, 8, 8, device=DEVICE)
    # under autocast the torch layers hand bf16 activations to the next layer; converted layers
    # (fp32 kernels) pass those to their torch layer, which autocasts as before
    with torch.no_grad(), torch.autocast(DEVICE, dtype=torch.bfloat16):
        got = converted(x)
        expected = model(x)
    torch.testing.assert_close(got.float(), expected.float(), rtol=0.05, atol=0.05)


def test_the_speed_evaluator_times_both_models_and_the_report_shows_it(monkeypatch, tmp_path):
    from types import SimpleNamespace

    from sparsify.evaluate import EVALUATORS
    from sparsify.evaluate.speed import SpeedSettings
    from sparsify.records import LayerCount, LevelRecord, RunResults
    from sparsify.report.parts import ReportInput
    from sparsify.report.writer import build_report
    from sparsify.rundir import RunDir
    from sparsify.seeding import seeded_generator

    convert_module = importlib.import_module("sparsify.kernels.convert")
    # each converted layer: kernel 1 ms against torch 2 ms; then both models 1 ms
    monkeypatch.setattr(convert_module, "cuda_time", _Clock([1.0, 2.0] * 3))
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a: "Test GPU")
    cfg = compose(["backend=triton", "backend.block=16", "eval.speed.dtype=float32"])
    ctx = SimpleNamespace(
        torch_model=_model(),
        data=SimpleNamespace(in_channels=3, image_size=8),
        device=torch.device(DEVICE),
        settings=SpeedSettings(**cfg.eval.speed),
        backend=cfg.backend,
        generator=lambda *keys: seeded_generator(0),
    )
    speed = EVALUATORS.get("speed")
    result = speed(ctx)
    assert result.scalars["speedup"] == result.scalars["torch_ms"] / result.scalars["triton_ms"]
    assert result.tables["setup"]["rows"] == [["Test GPU", 64, "float32", ""]]

    level = LevelRecord(0, 0.5, 1, 2, 3, {"w": LayerCount(1, 2)}, metrics=result.scalars)
    level.tables = {f"speed/{k}": t for k, t in result.tables.items()}
    results = RunResults("m", "x", "d", 0, "test", "run", "study", 0, [level])
    rd = RunDir(tmp_path)
    report = build_report(ReportInput(rd, results, [level], [speed], dict(speed.metrics)))
    (section,) = [s for s in report.sections if s.title.startswith("Speed on")]
    assert section.title == "Speed on Test GPU (forward pass, batch 64, float32)"
    assert section.blocks[0].rows == [["0", "50.00%", "1.000", "1.000", "1.00x"]]


def test_neither_the_backend_nor_evaluation_enters_a_run_name():
    from omegaconf import OmegaConf

    def container(overrides):
        return OmegaConf.to_container(compose(overrides), resolve=True)

    plain = container([])
    assert config_hash(container(["backend=triton"])) == config_hash(plain)
    assert config_hash(container(["eval.speed.reps=5", "eval.split=val"])) == config_hash(plain)


def test_backend_triton_refuses_devices_it_cannot_run_on():
    from sparsify.errors import UserError
    from sparsify.validate import validate

    with pytest.raises(UserError, match="device=mps is neither"):
        validate(compose(["backend=triton", "device=mps"]))


def test_winograd_layers_transform_their_filter_once_and_again_after_a_weight_change():
    model = _model()
    converted = convert(model, "winograd", block=16)
    layer = converted[0]
    x = torch.randn(1, 3, 8, 8, device=DEVICE)
    with torch.no_grad():
        first = layer(x)
        u = layer._filter
        assert torch.equal(layer(x), first) and layer._filter is u  # reused
        layer.torch_layer.weight.mul_(2)  # in place: the next call transforms it again
        second = layer(x)
        assert layer._filter is not u
        bias = layer.torch_layer.bias
        torch.testing.assert_close(second - bias[:, None, None], 2 * (first - bias[:, None, None]))
