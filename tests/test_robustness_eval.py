"""The default evaluation beyond accuracy on a tiny digits run: corruptions, fidelity and
calibration at every level against the dense parent, the verdict and prune potential over all
levels, re-evaluation without retraining, resumption, and bad evaluation settings refused."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from sparsify.compose import compose
from sparsify.corruptions import ORDER
from sparsify.data import build_data
from sparsify.evaluate.__main__ import evaluate_run
from sparsify.evaluate.distributions import Inputs, corrupted, noisy
from sparsify.run import run

TINY = ["train.epochs=1", "prune.levels=1", "train.batch_size=128"]
TRAINING_FILES = ("config.yaml", "init.pt", "log.jsonl")


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("robust") / "run"
    run(compose(TINY), run_dir)
    return run_dir


def _results(run_dir: Path) -> dict:
    return json.loads((run_dir / "results.json").read_text())


def test_every_level_is_scored_against_its_dense_parent(finished):
    dense, pruned = (lv["metrics"] for lv in _results(finished)["levels"])
    for key in (
        "corruption_accuracy",
        "mce",
        "excess_error",
        "ece",
        "nll",
        "brier",
        "temperature",
        "corrupted_ece",
        "agreement",
        "softmax_l2",
        "noise_agreement",
        "corrupted_agreement",
    ):
        assert key in dense and key in pruned, key
    # the parent against itself
    assert dense["mce"] == 1.0 and dense["excess_error"] == 0.0
    assert dense["agreement"] == 1.0 and dense["softmax_l2"] == 0.0
    assert dense["noise_agreement"] == 1.0 and dense["corrupted_agreement"] == 1.0
    assert 0 < pruned["softmax_l2"] and pruned["agreement"] <= 1.0


def test_the_corruption_grid_holds_all_19_corruptions_at_5_severities(finished):
    level = _results(finished)["levels"][1]
    grid = level["tables"]["corruptions/grid"]
    assert grid["columns"] == ["corruption", "family", "1", "2", "3", "4", "5", "mean"]
    assert [r[0] for r in grid["rows"]] == list(ORDER)
    mean = sum(v for r in grid["rows"] for v in r[2:7]) / 95
    assert level["metrics"]["corruption_accuracy"] == pytest.approx(mean)


def test_results_carry_the_verdict_and_prune_potential(finished):
    summary = _results(finished)["summary"]
    v = summary["verdict"]
    sparsities = [lv["sparsity"] for lv in _results(finished)["levels"]]
    assert v["safe_sparsity"] in sparsities
    assert set(v["tolerances"]) == {"accuracy_drop", "mce_rise", "ece_rise", "agreement_drop"}
    pp = summary["prune_potential"]
    names = [r[0] for r in pp["table"]["rows"]]
    assert names[0] == "clean" and names[1:20] == list(ORDER)
    assert any(n.startswith("noise ε=") for n in names)
    assert all(p in sparsities for r in pp["table"]["rows"] for p in r[3:])


def test_the_report_opens_with_the_verdict_and_every_image_exists(finished):
    md = (finished / "report.md").read_text()
    sections = re.findall(r"^## (.+)$", md, flags=re.M)
    assert sections[0] == "Verdict"
    for title in ("Robustness to common corruptions", "Calibration", "Prune potential"):
        assert title in sections
    images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)
    assert len(images) >= 7
    for name in images:
        assert (finished / name).stat().st_size > 1000, name


def test_inputs_are_the_same_for_every_model_and_process():
    cfg = compose(TINY)
    data = build_data(cfg.data, 64, 128, 0)
    a = Inputs(data.test, data.stats, 0, torch.device("cpu"))
    b = Inputs(data.test, data.stats, 0, torch.device("cpu"))
    b.budget_bytes = 0  # never kept: made again on every pass
    for dist in (corrupted("glass_blur", 3), corrupted("gaussian_noise", 5), noisy(0.3, 2)):
        first = [x for x, _ in a.batches(dist)]
        assert all(torch.equal(x, y) for x, y in zip(first, (x for x, _ in b.batches(dist))))
        assert all(torch.equal(x, y) for x, y in zip(first, (x for x, _ in b.batches(dist))))
        clean = [x for x, _ in a.batches(corrupted("contrast", 1))]
        assert not torch.equal(first[0], clean[0])
    other_seed = Inputs(data.test, data.stats, 1, torch.device("cpu"))
    x0 = next(a.batches(corrupted("gaussian_noise", 5)))[0]
    assert not torch.equal(x0, next(other_seed.batches(corrupted("gaussian_noise", 5)))[0])


def test_reevaluating_with_eval_full_adds_evaluators_and_touches_no_training_file(finished):
    before = {n: (finished / n).read_bytes() for n in TRAINING_FILES}
    levels = {
        p: p.read_bytes() for p in (finished / "levels").rglob("*.pt") if "eval" not in p.parts
    }
    cached = {p: p.stat().st_mtime_ns for p in (finished / "levels").rglob("result.json")}
    results = evaluate_run(finished, ["eval=full"])
    assert {n: (finished / n).read_bytes() for n in TRAINING_FILES} == before
    assert {p: p.read_bytes() for p in levels} == levels
    assert {p: p.stat().st_mtime_ns for p in cached} == cached  # reused, not recomputed
    pruned = results["levels"][1]["metrics"]
    assert {"worst_class_recall", "worst_class_recall_drop", "cka_mean", "cka_min"} <= set(pruned)
    assert results["levels"][0]["metrics"]["cka_min"] == pytest.approx(1.0)
    assert "worst_class_recall_drop" in results["summary"]["verdict"]["tolerances"]
    cka = results["levels"][1]["tables"]["cka/layers"]["rows"]
    assert [r[0] for r in cka] == ["fc1", "fc2", "fc3"]
    assert (finished / "cka_layers.png").exists() and (finished / "per_class_recall.png").exists()
    folder = next((finished / "levels/level_01/eval").glob("per_class-*"))
    assert torch.load(folder / "confusion.pt", weights_only=True).sum() == 359


def test_evaluation_interrupted_and_rerun_ends_with_identical_results(tmp_path, finished):
    import shutil

    run_dir = tmp_path / "run"
    shutil.copytree(finished, run_dir)
    whole = run(compose(TINY), run_dir)  # the default evaluation, read back from disk
    # as if killed during level 1's evaluation: some results written, results.json not yet
    for folder in (run_dir / "levels/level_01/eval").glob("[cf]*"):
        shutil.rmtree(folder)
    (run_dir / "results.json").unlink()
    again = run(compose(TINY), run_dir)
    assert again == whole


@pytest.mark.parametrize(
    "override,needle",
    [
        ("eval.corruptions.names=[gaussian_noise,fake_rain]", "eval.corruptions.names='fake_rain'"),
        ("eval.corruptions.severities=[1,6]", "eval.corruptions.severities=6 is not valid"),
        ("eval.corruptions.preset=huge", "eval.corruptions.preset='huge' is not valid"),
        ("eval.prune_potential.deltas=[1.5]", "eval.prune_potential.deltas=1.5 is out of range"),
        ("eval.verdict.accuracy_drop=2", "eval.verdict.accuracy_drop=2.0 is out of range"),
        ("eval.fidelity.eps=[0.1,-1]", "eval.fidelity.eps=-1.0 is out of range"),
        ("eval.if_possible=[nope]", "eval.if_possible: 'nope' is not valid"),
        ("eval.summaries=[nope]", "eval.summaries: 'nope' is not valid"),
        ("eval.dense_level=5", "eval.dense_level=5 is not a level of this run"),
    ],
)
def test_bad_evaluation_settings_are_refused_before_any_work(tmp_path, override, needle):
    proc = subprocess.run(
        [sys.executable, "-m", "sparsify", *TINY, override, f"hydra.run.dir={tmp_path}/run"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    assert needle in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert not (tmp_path / "run").exists()


def test_evaluate_refuses_a_folder_that_is_not_a_run(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "sparsify.evaluate", str(tmp_path), "eval=full"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert list(tmp_path.iterdir()) == []


def test_a_users_own_state_dicts_are_evaluated_against_each_other(tmp_path, finished):
    dense, pruned = tmp_path / "dense.pt", tmp_path / "pruned.pt"
    state = torch.load(finished / "levels/level_01/final.pt", weights_only=True)
    torch.save(torch.load(finished / "levels/level_00/final.pt", weights_only=True), dense)
    torch.save(state, pruned)
    args = [sys.executable, "-m", "sparsify.evaluate", "--weights", str(pruned), "--dense"]
    args += [str(dense), "--out", str(tmp_path / "mine")]
    proc = subprocess.run([*args, "eval=accuracy"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    results = _results(tmp_path / "mine")
    ours = _results(finished)["levels"]
    assert [lv["sparsity"] for lv in results["levels"]] == [lv["sparsity"] for lv in ours]
    for mine, theirs in zip(results["levels"], ours):
        assert mine["metrics"]["accuracy"] == theirs["metrics"]["accuracy"]
    # another model's weights, or weights that differ from the folder's: refused, nothing written
    wrong = subprocess.run(
        [*args[:-1], str(tmp_path / "other"), "model=conv2"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert wrong.returncode == 2 and "does not match the model" in wrong.stderr, wrong.stderr
    assert not (tmp_path / "other").exists()
    state["fc1.weight"] = state["fc1.weight"] + 1
    torch.save(state, pruned)
    again = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert again.returncode == 2 and "holds other weights" in again.stderr, again.stderr


def test_a_later_level_can_be_the_dense_parent_and_earlier_levels_wait_for_it(tmp_path):
    overrides = ["train.epochs=1", "prune.levels=2", "train.batch_size=128", "eval=accuracy"]
    overrides += ["eval.if_possible=[fidelity]", "eval.dense_level=1"]
    results = run(compose(overrides), tmp_path / "run")
    assert results["dense_level"] == 1
    agreement = [lv["metrics"]["agreement"] for lv in results["levels"]]
    assert agreement[1] == 1.0 and agreement[0] < 1.0 and agreement[2] < 1.0
