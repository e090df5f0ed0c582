"""Evaluation as a stage over saved levels: results cached per evaluator and settings, evaluation
changes never retrain, a crash in an evaluator never costs training, evaluators that cannot run
together or here are refused before any work, and `python -m sparsify.evaluate` re-evaluates a
finished run."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from sparsify.compose import compose
from sparsify.errors import UserError
from sparsify.evaluate import EVALUATORS, EvalResult, MetricSpec, evaluator
from sparsify.evaluate.__main__ import evaluate_run
from sparsify.registry import Registry
from sparsify.run import run

TINY = ["train.epochs=1", "prune.levels=1", "train.batch_size=128", "eval=accuracy"]


@pytest.fixture
def registry(monkeypatch):
    """Evaluators registered by a test exist for that test only."""
    monkeypatch.setattr(EVALUATORS, "_entries", dict(EVALUATORS._entries))
    monkeypatch.setattr(EVALUATORS, "_meta", dict(EVALUATORS._meta))
    return EVALUATORS


def _train_events(run_dir: Path) -> int:
    return (run_dir / "log.jsonl").read_text().count('"event": "train"')


def _results(run_dir: Path) -> dict:
    return json.loads((run_dir / "results.json").read_text())


def test_changing_eval_settings_on_a_finished_run_neither_renames_nor_retrains_it(tmp_path):
    run_dir = tmp_path / "run"
    on_test = run(compose(TINY), run_dir)
    trained = _train_events(run_dir)
    final = (run_dir / "levels/level_01/final.pt").read_bytes()
    on_val = run(compose([*TINY, "eval.split=val"]), run_dir)
    assert _train_events(run_dir) == trained
    assert (run_dir / "levels/level_01/final.pt").read_bytes() == final
    assert on_val["run"] == on_test["run"] and on_val["split"] == "val"
    assert on_val["levels"][1]["metrics"] != on_test["levels"][1]["metrics"]
    folders = sorted(p.name for p in (run_dir / "levels/level_01/eval").iterdir())
    assert len(folders) == 2 and all(f.startswith("accuracy-") for f in folders)

    # back on the test split: read from disk, not recomputed
    results = run_dir / "levels/level_01/eval" / folders[0] / "result.json"
    stamps = {p: p.stat().st_mtime_ns for p in (run_dir / "levels").rglob("result.json")}
    again = run(compose(TINY), run_dir)
    assert again == on_test
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps and results.exists()


def test_an_evaluator_that_raises_keeps_the_trained_level_and_a_rerun_only_evaluates(
    tmp_path, registry
):
    calls = {"n": 0}

    @evaluator("flaky", metrics={"flaky_score": MetricSpec("score")})
    def flaky(ctx):
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("evaluator bug")
        return EvalResult(scalars={"flaky_score": float(ctx.level)})

    cfg = compose([*TINY, "eval.evaluators=[accuracy,flaky]"])
    run_dir = tmp_path / "run"
    with pytest.raises(RuntimeError, match="evaluator bug"):
        run(cfg, run_dir)
    level = run_dir / "levels/level_00"
    assert (level / "final.pt").is_file() and (level / "mask.pt").is_file()
    assert (level / "training.json").is_file() and not (level / "metrics.json").exists()
    trained = _train_events(run_dir)
    results = run(cfg, run_dir)
    level_0_steps = sum(
        1
        for line in (run_dir / "log.jsonl").read_text().splitlines()
        if '"level": 0' in line and '"event": "train"' in line
    )
    assert level_0_steps == trained  # level 0 was not trained again
    assert [lv["metrics"]["flaky_score"] for lv in results["levels"]] == [0.0, 1.0]


def test_two_evaluators_reporting_the_same_key_are_refused(registry):
    for name in ("first", "second"):
        evaluator(name, metrics={"score": MetricSpec("score")})(lambda ctx: EvalResult())
    with pytest.raises(UserError, match="evaluators first and second both report 'score'"):
        compose([*TINY, "eval.evaluators=[first,second]"])
    compose([*TINY, "eval.evaluators=[first]"])


def test_an_evaluator_whose_needs_the_run_cannot_meet_is_refused_before_any_work(
    tmp_path, registry
):
    evaluator("vs_dense", metrics={"agreement": MetricSpec("agreement")}, needs=("dense",))(
        lambda ctx: EvalResult()
    )
    with pytest.raises(UserError, match="vs_dense needs a dense reference level"):
        run(compose(["train.epochs=1", "prune=gmp", "eval.evaluators=[vs_dense]"]), tmp_path / "g")
    with pytest.raises(UserError, match="speed needs a CUDA GPU"):
        run(compose([*TINY, "eval.evaluators=[speed]", "device=cpu"]), tmp_path / "cpu")
    assert not list(tmp_path.iterdir())


def test_the_context_gives_the_dense_parent_other_levels_a_generator_and_a_place_for_arrays(
    tmp_path, registry
):
    seen = {}

    @evaluator(
        "parent",
        metrics={"agreement": MetricSpec("agreement with the dense parent", percent=True)},
        needs=("dense",),
    )
    def parent(ctx):
        dense = ctx.dense()
        x, _ = next(ctx.loader.batches(0))
        with torch.no_grad():
            ours, theirs = ctx.model(x).argmax(1), dense(x).argmax(1)
        seen[ctx.level] = {
            "draw": torch.rand(3, generator=ctx.generator(7)),
            "mask": ctx.mask,
            "level0_mask": ctx.run.mask(0),
            "sparsity": ctx.record.sparsity,
        }
        return EvalResult(
            scalars={"agreement": float((ours == theirs).float().mean())},
            tables={"count": {"columns": ["n"], "rows": [[int(x.shape[0])]]}},
            arrays={"predictions": ours},
        )

    run_dir = tmp_path / "run"
    results = run(compose([*TINY, "eval.evaluators=[accuracy,parent]"]), run_dir)
    level0, level1 = results["levels"]
    assert level0["metrics"]["agreement"] == 1.0  # level 0 is the dense parent itself
    assert 0.0 < level1["metrics"]["agreement"] <= 1.0
    assert level1["tables"]["parent/count"]["rows"] == [[359]]
    assert seen[1]["mask"].sparsity == pytest.approx(level1["sparsity"], abs=1e-4)
    assert seen[1]["level0_mask"].sparsity == 0.0 and seen[1]["sparsity"] == level1["sparsity"]
    assert not torch.equal(seen[0]["draw"], seen[1]["draw"])  # keyed by level

    (folder,) = (run_dir / "levels/level_01/eval").glob("parent-*")
    predictions = torch.load(folder / "predictions.pt", weights_only=True)
    assert predictions.shape == (359,)
    draw = seen[1]["draw"]
    seen.clear()
    evaluate_run(run_dir, ["eval=accuracy", "eval.evaluators=[accuracy,parent]"])
    assert not seen  # every result was on disk
    for p in (run_dir / "levels").glob("*/eval/parent-*"):
        for f in p.iterdir():
            f.unlink()
    evaluate_run(run_dir, ["eval=accuracy", "eval.evaluators=[accuracy,parent]"])
    assert torch.equal(seen[1]["draw"], draw)  # the same draws on every re-evaluation


def test_the_evaluate_command_re_evaluates_without_training_and_refuses_training_keys(tmp_path):
    run_dir = tmp_path / "run"
    run(compose(TINY), run_dir)
    before = {p: p.read_bytes() for p in run_dir.rglob("*.pt")}
    log = (run_dir / "log.jsonl").read_bytes()
    ok = subprocess.run(
        [sys.executable, "-m", "sparsify.evaluate", str(run_dir), "eval.split=val"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert ok.returncode == 0, ok.stderr
    assert "[level 1/1]" in ok.stdout and "val accuracy" in ok.stdout
    assert _results(run_dir)["split"] == "val"
    assert {p: p.read_bytes() for p in run_dir.rglob("*.pt")} == before
    assert (run_dir / "log.jsonl").read_bytes() == log
    for bad, needle in [
        ("prune.rate=0.5", "changes only the evaluation"),
        ("eval.nosuchkey=1", "nosuchkey"),
        ("eval.evaluators=[nope]", "choose one of: accuracy"),
        ("+eval.speed.foo=1", "unknown key 'eval.speed.foo'; valid keys here: batch, dtype, reps"),
        ("device=cuda:x", "device='cuda:x' is not valid"),
    ]:
        proc = subprocess.run(
            [sys.executable, "-m", "sparsify.evaluate", str(run_dir), bad],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert proc.returncode == 2 and needle in proc.stderr, (bad, proc.stderr)
        assert len(proc.stderr.strip().splitlines()) == 1
    missing = subprocess.run(
        [sys.executable, "-m", "sparsify.evaluate", str(tmp_path / "nothing")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert missing.returncode == 2 and "is not a folder" in missing.stderr


def test_a_damaged_evaluation_result_is_a_user_error_naming_what_to_delete(tmp_path):
    run_dir = tmp_path / "run"
    run(compose(TINY), run_dir)
    (result,) = (run_dir / "levels/level_00/eval").glob("accuracy-*/result.json")
    result.write_text(json.dumps({"evaluator": "accuracy", "scalars": {"bogus": 1.0}}))
    with pytest.raises(UserError, match=f"delete {result.parent} to re-evaluate"):
        run(compose(TINY), run_dir)


def test_the_registry_refuses_a_name_twice():
    local: Registry = Registry("evaluator")
    evaluator("x", metrics={}, registry=local)(lambda ctx: EvalResult())
    with pytest.raises(AssertionError, match="registered twice"):
        evaluator("x", metrics={}, registry=local)(lambda ctx: EvalResult())
