"""Whole runs in-process on tiny settings: the run-directory contract, levels, resume, refusals."""

import json
from pathlib import Path

import pytest
import torch
import yaml

from sparsify.compose import compose
from sparsify.errors import UserError
from sparsify.models import build_model
from sparsify.run import run

FAST = ["train.epochs=2", "train.batch_size=128", "eval=accuracy"]


def _run(tmp_path: Path, *overrides: str, name: str = "run") -> tuple[dict, Path]:
    cfg = compose([*FAST, *overrides])
    run_dir = tmp_path / name
    return run(cfg, run_dir), run_dir


def _files(run_dir: Path) -> dict[Path, bytes]:
    """Every file under `run_dir` with its bytes: what "nothing written" compares."""
    return {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()}


def _untrain(run_dir: Path, level: int) -> None:
    """Make a trained level look as if its training never finished."""
    for name in ("training.json", "metrics.json"):
        (run_dir / f"levels/level_{level:02d}" / name).unlink()


def _plain_model(run_dir: Path) -> torch.nn.Module:
    cfg = yaml.safe_load((run_dir / "config.yaml").read_text())
    from sparsify.config import ModelConfig

    return build_model(ModelConfig(name=cfg["model"]["name"]), 10, 1, 8)


def test_lth_run_writes_the_run_directory_contract(tmp_path):
    results, run_dir = _run(tmp_path, "prune.levels=2")
    for name in [
        "config.yaml",
        "results.json",
        "report.md",
        "report.html",
        "log.jsonl",
        "checkpoint.pt",
    ]:
        assert (run_dir / name).is_file(), name
    assert list(run_dir.glob("*.png"))
    on_disk = json.loads((run_dir / "results.json").read_text())
    assert on_disk == results
    assert {k: results[k] for k in ("method", "model", "data", "seed")} == {
        "method": "lth",
        "model": "lenet300_100",
        "data": "digits",
        "seed": 0,
    }
    assert [lv["level"] for lv in results["levels"]] == [0, 1, 2]
    for lv in results["levels"]:
        d = run_dir / "levels" / f"level_{lv['level']:02d}"
        final = torch.load(d / "final.pt", weights_only=True)
        mask = torch.load(d / "mask.pt", weights_only=True)
        model = _plain_model(run_dir)
        model.load_state_dict(final)  # strict: loads into the plain architecture
        assert set(mask) <= set(final) and all(m.dtype == torch.bool for m in mask.values())
        # sparsity is counted from the saved weights, and pruned weights are exactly zero
        nonzero = sum(int(final[n].count_nonzero()) for n in mask)
        total = sum(final[n].numel() for n in mask)
        assert (lv["nonzero_params"], lv["prunable_params"]) == (nonzero, total)
        assert lv["sparsity"] == pytest.approx(1 - nonzero / total)
        assert all(torch.all(final[n][~m] == 0) for n, m in mask.items())
        assert 0.0 <= lv["metrics"]["accuracy"] <= 1.0 and lv["metrics"]["loss"] > 0
        assert json.loads((d / "metrics.json").read_text())["metrics"] == lv["metrics"]
    events = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
    assert {"start", "train", "epoch", "level", "finish"} <= {e["event"] for e in events}
    report = (run_dir / "report.md").read_text()
    assert "| 2 | 36.00% |" in report


def test_lth_levels_prune_rate_of_the_remaining_weights(tmp_path):
    results, _ = _run(tmp_path, "prune.levels=3", "prune.rate=0.5", "train.epochs=1")
    sparsities = [lv["sparsity"] for lv in results["levels"]]
    assert sparsities == pytest.approx([0.0, 0.5, 0.75, 0.875], abs=1e-4)


def test_lth_rewinds_survivors_to_the_rewind_point(tmp_path):
    from sparsify.methods import METHODS, Context
    from sparsify.rundir import RunDir
    from sparsify.sparsity import Mask

    _, run_dir = _run(tmp_path, "prune.levels=1", "prune.rewind=3it")
    rd = RunDir(run_dir)
    init = torch.load(run_dir / "init.pt", weights_only=True)
    rewind = torch.load(run_dir / "levels/level_00/rewind.pt", weights_only=True)
    assert not torch.equal(rewind["fc1.weight"], init["fc1.weight"])  # 3 steps were taken
    cfg = compose([*FAST, "prune.levels=1", "prune.rewind=3it"])
    prunable = [n for n in init if n.endswith("weight")]
    ctx = Context(
        init=init,
        prunable=prunable,
        iterations_per_epoch=11,
        total=22,
        schedule=None,
        final=lambda lv: torch.load(rd.level_dir(lv) / "final.pt", weights_only=True),
        mask=lambda lv: Mask(torch.load(rd.level_dir(lv) / "mask.pt", weights_only=True)),
        snapshot=lambda lv, n: torch.load(rd.level_dir(lv) / f"{n}.pt", weights_only=True),
    )
    plan = METHODS.get("lth")(cfg.prune).plan(1, ctx)
    assert plan.segment.start == 3 and plan.segment.end == 22
    assert all(torch.equal(plan.weights[k], rewind[k]) for k in rewind)
    # the new mask keeps the largest final weights of level 0
    final0 = ctx.final(0)
    kept = torch.cat([final0[n][plan.mask[n]].abs() for n in prunable])
    dropped = torch.cat([final0[n][~plan.mask[n]].abs() for n in prunable])
    assert kept.min() >= dropped.max()


def test_magnitude_prunes_once_to_the_target_and_fine_tunes(tmp_path):
    results, run_dir = _run(tmp_path, "prune=magnitude", "prune.sparsity=0.7", "prune.finetune=3it")
    assert [lv["sparsity"] for lv in results["levels"]] == pytest.approx([0.0, 0.7], abs=1e-4)
    assert results["levels"][1]["iterations"] == 3


def test_dense_runs_one_level(tmp_path):
    results, _ = _run(tmp_path, "prune=dense")
    assert len(results["levels"]) == 1 and results["levels"][0]["sparsity"] == 0.0


def test_rerun_in_the_same_directory_skips_finished_levels(tmp_path):
    first, run_dir = _run(tmp_path, "prune.levels=1")
    final_before = (run_dir / "levels/level_01/final.pt").read_bytes()
    n_train_events = (run_dir / "log.jsonl").read_text().count('"event": "train"')
    second, _ = _run(tmp_path, "prune.levels=1")
    assert second == first
    assert (run_dir / "levels/level_01/final.pt").read_bytes() == final_before
    assert (run_dir / "log.jsonl").read_text().count('"event": "train"') == n_train_events


def test_a_different_config_in_an_existing_run_directory_is_refused(tmp_path):
    _, run_dir = _run(tmp_path, "prune.levels=1")
    before = _files(run_dir)
    with pytest.raises(UserError, match="different config.*prune.rate"):
        _run(tmp_path, "prune.levels=1", "prune.rate=0.5")
    assert _files(run_dir) == before


def test_a_corrupt_checkpoint_is_a_user_error_and_nothing_is_written(tmp_path):
    _, run_dir = _run(tmp_path, "prune=dense")
    _untrain(run_dir, 0)  # pretend level 0 is unfinished
    (run_dir / "checkpoint.pt").write_bytes(b"not a checkpoint")
    before = _files(run_dir)
    with pytest.raises(UserError, match="checkpoint.*corrupt"):
        _run(tmp_path, "prune=dense")
    assert _files(run_dir) == before


def test_a_checkpoint_of_another_model_is_a_user_error(tmp_path):
    _, run_dir = _run(tmp_path, "prune=dense")
    _untrain(run_dir, 0)
    ckpt = torch.load(run_dir / "checkpoint.pt", weights_only=True)
    ckpt["model"] = {"other.weight": torch.zeros(3)}
    torch.save(ckpt, run_dir / "checkpoint.pt")
    with pytest.raises(UserError, match="does not match the model"):
        _run(tmp_path, "prune=dense")


def _unfinished(run_dir: Path) -> dict:
    """Level 0 of a finished one-level run, made to look interrupted mid-level: its checkpoint."""
    _untrain(run_dir, 0)
    ckpt = torch.load(run_dir / "checkpoint.pt", weights_only=True)
    ckpt["step"] = 3  # mid-level: the resume loads it
    return ckpt


def test_a_checkpoint_with_per_layer_scores_is_refused_before_any_write(tmp_path):
    """Checkpoints of edgepopup and supermask written before the scores became one flat
    parameter held one tensor per layer: refused with a message, nothing written."""
    _, run_dir = _run(tmp_path, "prune=edgepopup")
    ckpt = _unfinished(run_dir)
    flat = ckpt["scores"]["scores"]
    assert flat.dim() == 1 and flat.numel() == sum(int(m.numel()) for m in ckpt["mask"].values())
    ckpt["scores"] = {"scores.0": flat[:100], "scores.1": flat[100:]}
    torch.save(ckpt, run_dir / "checkpoint.pt")
    before = _files(run_dir)
    with pytest.raises(UserError, match="does not hold this run's scores.*one per layer"):
        _run(tmp_path, "prune=edgepopup")
    assert _files(run_dir) == before


def test_a_checkpoint_whose_optimizer_state_does_not_fit_is_a_user_error(tmp_path):
    _, run_dir = _run(tmp_path, "prune=dense")
    ckpt = _unfinished(run_dir)
    ckpt["optimizer"]["param_groups"][0]["params"] = [0]  # one parameter, not the model's
    torch.save(ckpt, run_dir / "checkpoint.pt")
    with pytest.raises(UserError, match="does not fit this run.*delete it to restart level 0"):
        _run(tmp_path, "prune=dense")


def test_a_checkpoint_with_a_momentum_buffer_of_another_shape_is_a_user_error(tmp_path):
    _, run_dir = _run(tmp_path, "prune=dense")
    ckpt = _unfinished(run_dir)
    state = ckpt["optimizer"]["state"]
    assert state, "SGD with momentum keeps a buffer per parameter"
    first = min(state)
    state[first]["momentum_buffer"] = torch.zeros(5)
    torch.save(ckpt, run_dir / "checkpoint.pt")
    with pytest.raises(UserError, match="momentum_buffer of parameter 0 has shape \\(5,\\)"):
        _run(tmp_path, "prune=dense")


@pytest.mark.parametrize(
    "override,message",
    [
        ("prune.sparsity=1.5", r"prune.sparsity=1.5 is out of range; valid: \[0.0, 1.0\)"),
        ("train.epochs=-1", r"train.epochs=-1 is out of range"),
        ("prune.rewind=abc", r"prune.rewind='abc' is not a step"),
        ("prune.allocation=random", r"choose one of: global, layerwise, erk"),
        ("eval.evaluators=[nope]", r"choose one of: accuracy"),
        ("prune.rewind=100ep", None),  # past the end of training: checked once data is built
    ],
)
def test_out_of_range_values_are_user_errors(tmp_path, override, message):
    with pytest.raises(UserError, match=message or "past the end of training"):
        _run(tmp_path, override)
    assert not (tmp_path / "run").exists()


def test_fixed_seed_gives_identical_results_on_cpu(tmp_path):
    a, _ = _run(tmp_path, "prune.levels=1", name="a")
    b, _ = _run(tmp_path, "prune.levels=1", name="b")
    c, _ = _run(tmp_path, "prune.levels=1", "seed=1", name="c")
    assert a == b
    assert a["levels"][0]["metrics"] != c["levels"][0]["metrics"]


@pytest.mark.parametrize(
    "overrides,message",
    [
        (["train.nesterov=true", "train.momentum=0"], "needs train.momentum > 0"),
        (["seed=99999999999999999999"], "seed="),
        (["prune.rate=0.9", "prune.levels=17"], "would prune every weight"),
        (["prune.exclude=[*]"], "leaves no conv or linear weight"),
        (["device=cuda:7"], "CUDA GPU"),
    ],
)
def test_inputs_that_would_fail_later_are_refused_before_any_write(tmp_path, overrides, message):
    with pytest.raises(UserError, match=message):
        _run(tmp_path, *overrides)
    assert not (tmp_path / "run").exists()


def test_written_files_follow_the_umask_not_mkstemps_0600(tmp_path):
    _, run_dir = _run(tmp_path, "prune=dense")
    import os

    umask = os.umask(0)
    os.umask(umask)
    for name in ["results.json", "config.yaml", "report.md", "init.pt"]:
        assert (run_dir / name).stat().st_mode & 0o777 == 0o666 & ~umask, name


def test_temporaries_left_by_a_killed_write_are_removed_on_resume(tmp_path):
    _, run_dir = _run(tmp_path, "prune=dense")
    stale = run_dir / "levels" / "level_00" / ".final.pt.abc123.tmp"
    stale.write_bytes(b"half a file")
    _untrain(run_dir, 0)
    _run(tmp_path, "prune=dense")
    assert not stale.exists()


def test_every_accuracy_in_the_report_carries_its_wilson_interval(tmp_path):
    from sparsify.analysis.intervals import wilson

    results, run_dir = _run(tmp_path, "prune.levels=1")
    assert results["eval_images"] == 359  # the digits' test split: one image is 0.28 points
    report = (run_dir / "report.md").read_text()
    for lv in results["levels"]:
        acc = lv["metrics"]["accuracy"]
        lo, hi = wilson(acc, 359)
        assert hi - lo > 0.02  # ±1.5 points or so at 95%: noise a reader must see
        assert f"{100 * acc:.2f}% [{100 * lo:.1f}, {100 * hi:.1f}]" in report
    assert "Wilson 95% interval on the 359 test images" in report
