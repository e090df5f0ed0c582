"""Analyses over studies: runs that differ only in their seed group together; `seeds` gives
their mean, spread and 95% interval per level; results are cached until the study changes."""

import json
import statistics
import subprocess
import sys

import pytest

from sparsify.analysis import ANALYSES, collect, run_analysis
from sparsify.analysis.seeds import describe, t975
from sparsify.compose import compose
from sparsify.run import run

TINY = [
    "train.epochs=1",
    "prune=magnitude",
    "prune.finetune=2it",
    "train.batch_size=128",
    "eval=accuracy",
]


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    root = tmp_path_factory.mktemp("sweep")
    for seed in (0, 1, 2):
        run(compose([*TINY, f"seed={seed}"]), root / f"s{seed}")
    run(compose([*TINY, "prune.sparsity=0.5"]), root / "other")
    (root / "broken" / "levels").mkdir(parents=True)  # a job that failed before results.json
    (root / "broken" / "config.yaml").write_text("seed: 0\n")
    return root


def test_runs_that_differ_only_in_the_seed_form_one_study(sweep):
    studies, left_out = collect([sweep])
    assert sorted(len(s.runs) for s in studies.values()) == [1, 3]
    (three,) = [s for s in studies.values() if len(s.runs) == 3]
    assert three.seeds == [0, 1, 2] and three.split == "test"
    assert [path for path, _ in left_out] == [sweep / "broken"]


def test_a_copied_run_is_not_another_seed_and_another_split_is_another_study(sweep, tmp_path):
    import shutil

    from sparsify.evaluate.__main__ import evaluate_run

    shutil.copytree(sweep / "s0", tmp_path / "copy")
    shutil.copytree(sweep / "s1", tmp_path / "s1_on_val")
    evaluate_run(tmp_path / "s1_on_val", ["eval.split=val"])
    studies, left_out = collect([sweep, tmp_path])
    (test,) = [s for s in studies.values() if len(s.runs) == 3]
    assert test.seeds == [0, 1, 2]  # the copy of s0 is not a fourth run
    assert [why for path, why in left_out if path == tmp_path / "copy"][0].startswith("a copy of")
    (val,) = [s for s in studies.values() if s.split == "val"]
    assert val.key == test.key and val.seeds == [1]


def test_seeds_gives_the_mean_spread_and_interval_of_every_level_metric(sweep):
    studies, _ = collect([sweep])
    (study,) = [s for s in studies.values() if len(s.runs) == 3]
    result = run_analysis("seeds", study, sweep)
    accs = [json.loads((sweep / f"s{s}" / "results.json").read_text()) for s in (0, 1, 2)]
    accs = [r["levels"][1]["metrics"]["accuracy"] for r in accs]
    got = result["levels"][1]["metrics"]["accuracy"]
    assert got["n"] == 3 and got["mean"] == pytest.approx(statistics.fmean(accs))
    assert got["std"] == pytest.approx(statistics.stdev(accs))
    assert got["ci95"] == pytest.approx(4.303 * statistics.stdev(accs) / 3**0.5)
    assert result["levels"][1]["sparsity"]["mean"] == pytest.approx(0.9, abs=1e-4)
    assert describe([0.5])["std"] is None and t975(1000) == 1.96


def test_an_analysis_is_cached_until_its_study_changes(sweep, monkeypatch):
    studies, _ = collect([sweep])
    (study,) = [s for s in studies.values() if len(s.runs) == 3]
    first = run_analysis("seeds", study, sweep)
    monkeypatch.setitem(ANALYSES._entries, "seeds", lambda s: pytest.fail("recomputed"))
    assert run_analysis("seeds", study, sweep) == first
    study.runs.pop()  # a study of other runs: computed anew
    with pytest.raises(pytest.fail.Exception, match="recomputed"):
        run_analysis("seeds", study, sweep)


def test_the_analysis_command_prints_one_table_per_study(sweep):
    proc = subprocess.run(
        [sys.executable, "-m", "sparsify.analysis", str(sweep)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("## magnitude-lenet300_100-digits-") == 2
    assert "(seeds 0, 1, 2)" in proc.stdout and "| level | sparsity | accuracy |" in proc.stdout
    assert "not included" in proc.stderr and "broken" in proc.stderr
